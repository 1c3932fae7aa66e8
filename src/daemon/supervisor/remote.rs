//! A remote server runs nothing: it is ready when its address accepts connections,
//! and checked every few seconds after that.

use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::policy::Ending;
use super::*;

/// How often a remote server's address is checked.
pub(super) const REMOTE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// `host:port` of an `http(s)://` URL.
pub(super) fn authority(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

/// Why a remote server's address is not reachable.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unreachable {
    #[error("{host}:{port} unreachable: {source}")]
    Refused {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("{host}:{port} did not answer within 5s")]
    Silent { host: String, port: u16 },
}

pub(super) async fn reachable(host: &str, port: u16) -> Result<(), Unreachable> {
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(Unreachable::Refused {
            host: host.to_string(),
            port,
            source,
        }),
        Err(_) => Err(Unreachable::Silent {
            host: host.to_string(),
            port,
        }),
    }
}

/// A remote server runs nothing: it is ready when its address accepts connections,
/// and checked every few seconds after that (the result shows in status).
pub(super) async fn watch_remote(
    ctx: &mut InstanceCtx,
    control: &mut mpsc::Receiver<Control>,
    view: &watch::Sender<View>,
) -> Once {
    let Some((host, port)) = ctx.spec.url.as_deref().and_then(authority) else {
        view.send_modify(|v| v.last_error = Some("the url has no host".into()));
        return Once::Ended {
            ending: Ending::NotReady,
            uptime: Duration::ZERO,
        };
    };
    if let Err(why) = reachable(&host, port).await {
        view.send_modify(|v| v.last_error = Some(why.to_string()));
        return Once::Ended {
            ending: Ending::NotReady,
            uptime: Duration::ZERO,
        };
    }
    view.send_modify(|v| {
        v.state = State::Running {
            process: None,
            upstream: None,
            since: SystemTime::now(),
        };
    });
    loop {
        tokio::select! {
            () = tokio::time::sleep(REMOTE_CHECK_EVERY) => {
                let health = reachable(&host, port).await.err().map(|e| e.to_string());
                view.send_modify(|v| v.last_error = health);
            }
            msg = control.recv() => match msg {
                Some(Control::Update(spec)) => ctx.spec = *spec,
                Some(Control::Restart(_) | Control::Drain) => {}
                Some(Control::Stop { done, .. }) => {
                    let _ = done.send(());
                    return Once::Stopped;
                }
                None => return Once::Stopped,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authorities_of_urls() {
        assert_eq!(
            authority("http://127.0.0.1:9000/mcp"),
            Some(("127.0.0.1".into(), 9000))
        );
        assert_eq!(
            authority("https://mcp.example.com/mcp"),
            Some(("mcp.example.com".into(), 443))
        );
        assert_eq!(authority("http://host"), Some(("host".into(), 80)));
        assert_eq!(authority("http://[::1]:8080/x"), Some(("::1".into(), 8080)));
        assert_eq!(authority("http://[::1]/x"), Some(("::1".into(), 80)));
        assert_eq!(authority("nope"), None);
    }
}
