//! `mcpctl ui`: asks the daemon (started if none runs) to serve the dashboard, prints
//! the one-time login link, and opens it in the browser when there is a display.

use std::net::SocketAddr;
use std::path::Path;

use super::{Error, ok, print};
use crate::api::{Reply, Request};
use crate::client;
use crate::config::store;

pub(super) fn open(path: &Path, bind: Option<SocketAddr>, no_open: bool) -> Result<u8, Error> {
    if let Some(addr) = bind
        && !addr.ip().is_loopback()
    {
        return Err(Error::Failed(format!(
            "the dashboard listens on loopback only, not on {} (reach it through `ssh -L`)",
            addr.ip()
        )));
    }
    // A file that cannot be read still gets its dashboard (which says so), but its
    // `[daemon] ui` is then not followed: say why here.
    if let Err(e) = crate::config::load(path) {
        crate::note!("warning: {e}\nthe dashboard opens where it last was, or on a free port");
    }
    let stream = client::connect_or_start(path)?;
    let reply = client::request(stream, &Request::Ui { bind }, |_| {})?;
    let Reply::Ui { url } = reply else {
        return Err(client::Error::BadReply(format!("{reply:?}")).into());
    };
    print(&format!("{url}\n"))?;
    crate::note!("the link works once; `mcpctl ui` prints a new one");
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    if !no_open && display {
        let runtime =
            store::runtime_dir(&std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        if let Err(e) = open_in_browser(&runtime, &url) {
            crate::note!("could not open a browser ({e}); open the link above");
        }
    }
    ok()
}

/// Opens `url` through a page in the runtime folder (only its owner can read it), so
/// the token is in no other process's command line.
fn open_in_browser(runtime: &Path, url: &str) -> std::io::Result<()> {
    let page = runtime.join("ui-open.html");
    let html = format!(
        "<!doctype html><meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>mcpctl</title>\n"
    );
    store::write_runtime(&page, &html).map_err(std::io::Error::other)?;
    std::process::Command::new("xdg-open")
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
}
