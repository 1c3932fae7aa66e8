//! The owner's actions on the page: start, stop, restart, scale. Each is the CLI's
//! edit of the file (`config::checked_edit`) and a converge of that one server, so the
//! file stays the truth. Asked without `confirm`, an action only answers its plan and
//! the digests it was made from (file and what runs); asked again with them, it runs
//! unless either moved meanwhile (409, with the new plan), as a saved plan does.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;
use toml_edit::{DocumentMut, Value};

use super::routes::{Ui, error, json, stopping};
use crate::api::{ApplyBy, ApplyOptions, Expected};
use crate::config::{self, checked_edit};
use crate::model::raw::RawConfig;

/// `instances` a page may ask for, at most (the file allows more; a click should not).
const MAX_INSTANCES: u32 = 64;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    /// `scale`: the new count.
    #[serde(default)]
    instances: Option<u32>,
    /// The digests the plan shown was made from: carry it out.
    #[serde(default)]
    confirm: Option<Expected>,
}

/// An action the page may not ask for.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error(
        "{0} instances is more than a page may ask ({MAX_INSTANCES}); use `mcpctl server scale`"
    )]
    TooMany(u32),
    #[error("scale needs `instances`")]
    NoCount,
    #[error("no action `{0}` (start, stop, restart, scale)")]
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Restart,
    Scale(u32),
}

impl Action {
    fn parse(word: &str, ask: &Ask) -> Result<Self, AskError> {
        Ok(match word {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "restart" => Self::Restart,
            "scale" => match ask.instances {
                Some(n) if n <= MAX_INSTANCES => Self::Scale(n),
                Some(n) => return Err(AskError::TooMany(n)),
                None => return Err(AskError::NoCount),
            },
            other => return Err(AskError::Unknown(other.to_string())),
        })
    }

    /// The edit of the file, as the CLI's command makes it.
    fn edit(
        self,
        name: &str,
    ) -> impl FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), config::Error> + Send + 'static
    {
        let name = name.to_string();
        move |doc, raw| {
            let (field, value) = match self {
                Self::Start | Self::Restart => ("state", Value::from("running")),
                Self::Stop => ("state", Value::from("stopped")),
                Self::Scale(n) => ("instances", Value::from(i64::from(n))),
            };
            checked_edit::set_field(doc, raw, &name, field, value)
        }
    }

    /// The converge of this server (the file and what runs were checked just before).
    fn options(self, name: &str) -> ApplyOptions {
        ApplyOptions {
            only: vec![name.to_string()],
            restart: (self == Self::Restart).then(|| name.to_string()),
            by: ApplyBy::Page,
            ..ApplyOptions::default()
        }
    }
}

pub(super) async fn act(
    State(ui): State<Ui>,
    Path((name, word)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let ask: Ask = if body.is_empty() {
        Ask::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(ask) => ask,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
        }
    };
    let action = match Action::parse(&word, &ask) {
        Ok(a) => a,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why.to_string()),
    };
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    let path = daemon.config_path.clone();
    // The plan of the edit, made as the CLI makes it: the edited text, unlocked,
    // against what runs, focused on this server.
    let before = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &config::Error::io(&path, e).to_string(),
            );
        }
    };
    let after = match checked_edit::edited(&path, &before, action.edit(&name), false) {
        Ok(text) => text,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let plan = {
        let mut loaded = match config::load_text(&path, &path.display().to_string(), after.clone())
        {
            Ok(l) => l,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        if let Err(e) = crate::secrets::unlock::unlock(&mut loaded) {
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
        let observed = daemon.observe().await;
        let options = action.options(&name);
        let shown = crate::plan::focus(
            crate::plan::plan(&loaded.config.servers, &observed),
            &options.only,
            options.restart.as_deref(),
        );
        let expect = Expected {
            file_digest: config::digest(&after),
            observed_digest: crate::plan::saved::observed_digest(&observed),
        };
        (
            crate::render::plan_text(&shown, crate::render::Colour(false)),
            expect,
        )
    };
    let (text, expect) = plan;
    let Some(confirmed) = ask.confirm else {
        return json(
            StatusCode::OK,
            &serde_json::json!({ "plan": text, "confirm": expect }),
        );
    };
    // What runs must be as the plan saw it; the file is checked under its lock, as
    // it is written, so two pages (or a page and a command) never both go ahead on
    // the same file.
    let moved = || {
        json(
            StatusCode::CONFLICT,
            &serde_json::json!({
                "error": "the file or what runs changed since this plan was shown: look at it again",
                "plan": text,
                "confirm": expect,
            }),
        )
    };
    if confirmed.observed_digest != expect.observed_digest {
        return moved();
    }
    let wanted = confirmed.file_digest.clone();
    let write = {
        let path = path.clone();
        let edit = action.edit(&name);
        let stale = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::clone(&stale);
        // The file's lock may be held by a CLI command: waited for off the runtime.
        let written = tokio::task::spawn_blocking(move || {
            config::store::update(&path, |before| {
                let after = checked_edit::edited(&path, before, edit, false)?;
                if config::digest(&after) != wanted {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(config::Error::edit("the file changed since the plan", None));
                }
                Ok(after)
            })
        })
        .await;
        (written, stale.load(std::sync::atomic::Ordering::Relaxed))
    };
    match write {
        (_, true) => return moved(),
        (Ok(Ok(_)), false) => {}
        (Ok(Err(e)), false) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        (Err(e), false) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the edit failed: {e}"),
            );
        }
    }
    let (progress, mut lines) = mpsc::channel::<String>(64);
    let apply = daemon.apply(action.options(&name), progress);
    let drain = async {
        let mut said = Vec::new();
        while let Some(line) = lines.recv().await {
            if said.len() < 256 {
                said.push(line);
            }
        }
        said
    };
    let (applied, said) = tokio::join!(apply, drain);
    match applied {
        Ok(applied) => {
            let failures: Vec<String> = applied.failures.iter().map(ToString::to_string).collect();
            let status = if failures.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            json(
                status,
                &serde_json::json!({ "plan": text, "progress": said, "failures": failures }),
            )
        }
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}
