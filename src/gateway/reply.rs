//! HTTP responses that carry a JSON-RPC message: the one shape every refusal and
//! answer of a gateway port takes.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::wire::era;
use crate::wire::jsonrpc;

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_text(body),
    )
        .into_response()
}

/// A JSON-RPC error response to `id`.
pub(super) fn error_message(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

pub(super) fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(status, &error_message(id, code, message))
}

pub(super) fn rejection_response(rejection: &era::Rejection, id: Value) -> Response {
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"jsonrpc": "2.0", "id": id, "error": rejection.error()});
    json_response(status, &body)
}
