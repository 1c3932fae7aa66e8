//! What a reload of the file's tokens and of `mcpctl.lock` does (`token create/revoke/
//! rotate`, `tools --pin`): callers and pins into force, nothing run or stopped.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::error::{Applied, ApplyError};
use super::{Daemon, Source};
use crate::config;

impl Daemon {
    /// The file's tokens into force, nothing else touched (no secret is decrypted).
    pub(super) async fn reload_tokens(
        &self,
        progress: &mpsc::Sender<String>,
    ) -> Result<Applied, ApplyError> {
        let tokens = match &self.source {
            Source::File => match config::load(&self.config_path) {
                Ok(loaded) => loaded.config.tokens,
                Err(e) => {
                    // A broken entry elsewhere must not keep a revoked or rotated token
                    // in force: what is gone from the file (or changed) stops now.
                    let kept = std::fs::read_to_string(&self.config_path)
                        .ok()
                        .and_then(|text| crate::model::parse_raw(&text).ok())
                        .map(|raw| {
                            self.callers.keep_only(|name, hash| {
                                raw.tokens
                                    .get(name)
                                    .and_then(|t| crate::model::token::parse_hash(&t.hash))
                                    == Some(*hash)
                            })
                        });
                    if let Some(kept) = kept {
                        let _ = progress
                            .send(format!(
                                "tokens: the file is invalid; only removals taken ({kept} still in force)"
                            ))
                            .await;
                    }
                    return Err(e.into());
                }
            },
            Source::Fixed { .. } => BTreeMap::new(),
        };
        self.callers.set(&tokens);
        let _ = progress
            .send(format!("tokens: {} in force", tokens.len()))
            .await;
        self.apply_pins(progress).await;
        Ok(Applied {
            changed: false,
            failures: Vec::new(),
            endpoints: BTreeMap::new(),
            actions: vec!["tokens".into()],
        })
    }

    /// `mcpctl.lock` (beside the file) to every server with `pin = true`, live; open
    /// sessions of a server whose pins changed hear `list_changed`.
    pub(super) async fn apply_pins(&self, progress: &mpsc::Sender<String>) {
        let path = self.config_path.with_extension("lock");
        let lock = match std::fs::read_to_string(&path) {
            Ok(text) => match crate::model::lock::parse(&text) {
                Ok(lock) => lock,
                Err(why) => {
                    // Fail closed: a pinned server then shows nothing it cannot prove.
                    let _ = progress
                        .send(format!(
                            "{}: {why}; pinned servers show no tools",
                            path.display()
                        ))
                        .await;
                    Default::default()
                }
            },
            Err(_) => Default::default(),
        };
        if let Ok(mut pins) = self.pins.write() {
            pins.clone_from(&lock);
        }
        for rt in self.endpoints.lock().await.values() {
            rt.endpoint.set_pins(self.endpoint_pins(&rt.spec));
        }
        let servers = self.servers.lock().await;
        for (name, rt) in servers.iter() {
            let Some(gateway) = &rt.gateway else { continue };
            let pins = rt
                .spec
                .pin
                .then(|| lock.get(name).cloned().unwrap_or_default());
            if gateway.set_pins(pins) {
                for h in &rt.instances {
                    if let Some(upstream) = h.view.borrow().upstream() {
                        upstream.publish(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}));
                    }
                }
            }
        }
    }
}
