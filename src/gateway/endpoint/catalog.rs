//! What each member lists, read as a client reads it: `initialize`, then every page of
//! its tools, prompts, resources and templates, bounded in items, pages and time.

use serde_json::{Value, json};

use super::link::{self, HttpClient, Link};
use super::{Address, LIST_TIMEOUT, MAX_ITEMS, MAX_PAGES};

/// Why a member's lists could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// Not reachable, or not answering as a server does.
    #[error("{0}")]
    Unreachable(String),
    /// Up, but taking no more now (503): not down.
    #[error("busy: {0}")]
    Busy(String),
    /// It answered a list with a JSON-RPC error (its text, as sent).
    #[error("{method} failed: {error}")]
    Failed { method: String, error: String },
    #[error("did not list its tools within {0:?}")]
    Timeout(std::time::Duration),
    #[error("cannot make an HTTP client: {0}")]
    Client(String),
}

impl From<link::LinkError> for ListError {
    fn from(e: link::LinkError) -> Self {
        match e {
            link::LinkError::Busy(why) => Self::Busy(why),
            e => Self::Unreachable(e.to_string()),
        }
    }
}

/// What one member listed, last time it was asked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lists {
    pub init: Option<Value>,
    pub tools: Vec<Value>,
    pub prompts: Vec<Value>,
    pub resources: Vec<Value>,
    pub templates: Vec<Value>,
    /// Why it could not be listed, last time.
    pub error: Option<ListError>,
    /// Cut at [`MAX_ITEMS`], or items dropped as garbage.
    pub notes: Vec<String>,
    /// It answered 503 (busy, not down): what it listed before still stands.
    pub busy: bool,
}

/// Everything a member lists, pages followed, bounded in items, pages and time.
pub(super) async fn list_member(client: &HttpClient, address: &Address) -> Lists {
    let link = Link::new(client.clone(), address);
    let read = async {
        let init = link.open(&json!({})).await?;
        let mut lists = Lists {
            init: Some(init.clone()),
            ..Lists::default()
        };
        let has = |cap: &str| init.pointer(&format!("/capabilities/{cap}")).is_some();
        if has("tools") {
            lists.tools = list_all(&link, "tools/list", "tools", &mut lists.notes).await?;
        }
        if has("prompts") {
            lists.prompts = list_all(&link, "prompts/list", "prompts", &mut lists.notes).await?;
        }
        if has("resources") {
            lists.resources =
                list_all(&link, "resources/list", "resources", &mut lists.notes).await?;
            lists.templates = list_all(
                &link,
                "resources/templates/list",
                "resourceTemplates",
                &mut lists.notes,
            )
            .await
            .unwrap_or_default();
        }
        Ok::<Lists, ListError>(lists)
    };
    let lists = match tokio::time::timeout(LIST_TIMEOUT, read).await {
        Ok(Ok(lists)) => lists,
        Ok(Err(ListError::Busy(_))) => Lists {
            busy: true,
            ..Lists::default()
        },
        Ok(Err(why)) => Lists {
            error: Some(why),
            ..Lists::default()
        },
        Err(_) => Lists {
            error: Some(ListError::Timeout(LIST_TIMEOUT)),
            ..Lists::default()
        },
    };
    link.close().await;
    lists
}

/// Every tool a server lists, asked as a client asks it (its own policy applies).
pub async fn list_tools(address: &Address) -> Result<Vec<Value>, ListError> {
    let client = super::super::proxy::client().map_err(|e| ListError::Client(e.to_string()))?;
    let lists = list_member(&client, address).await;
    match lists.error {
        Some(why) => Err(why),
        None => Ok(lists.tools),
    }
}

/// One list, every page, at most [`MAX_ITEMS`]; entries that are not objects dropped.
async fn list_all(
    link: &Link,
    method: &str,
    key: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<Value>, ListError> {
    let mut items = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let request = json!({"jsonrpc": "2.0", "id": page + 1, "method": method, "params": params});
        let answer = link.call(&request, None).await?;
        if let Some(error) = answer.get("error") {
            return Err(ListError::Failed {
                method: method.to_string(),
                error: error.to_string(),
            });
        }
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        let got = match result.get(key) {
            Some(Value::Array(items)) => items.clone(),
            None => Vec::new(),
            Some(_) => {
                notes.push(format!(
                    "{method}: `{key}` is not a list; nothing of it is served"
                ));
                Vec::new()
            }
        };
        let before = got.len();
        items.extend(got.into_iter().filter(Value::is_object));
        if items.len() < before {
            notes.push(format!(
                "{method}: entries that are not objects were dropped"
            ));
        }
        if items.len() > MAX_ITEMS {
            items.truncate(MAX_ITEMS);
            notes.push(format!(
                "{method}: more than {MAX_ITEMS}; the rest are not served"
            ));
            break;
        }
        cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            break;
        }
        if page + 1 == MAX_PAGES {
            notes.push(format!(
                "{method}: more than {MAX_PAGES} pages; the rest are not served"
            ));
        }
    }
    Ok(items)
}
