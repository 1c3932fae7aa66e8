//! The page's files, compiled into the binary: no CDN, no request beyond the daemon.

/// A file of the page: its body and content type.
pub struct Asset {
    pub body: &'static str,
    pub content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("page/index.html"),
    content_type: "text/html; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    body: include_str!("page/app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset = Asset {
    body: include_str!("page/app.css"),
    content_type: "text/css; charset=utf-8",
};

/// The asset served at `path`, if any.
pub fn get(path: &str) -> Option<&'static Asset> {
    match path {
        "/" | "/index.html" => Some(&INDEX),
        "/app.js" => Some(&SCRIPT),
        "/app.css" => Some(&STYLE),
        _ => None,
    }
}

/// Every response of the dashboard carries these: scripts and styles only from the
/// daemon (no inline script), no framing, no referrer, nothing cached.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_and_no_foreign_source() {
        let page = get("/").map(|a| a.body).unwrap_or_default();
        assert!(page.contains("<script src=\"/app.js\""), "{page}");
        // Every <script> of the page loads a file; none carries code.
        for script in page.split("<script").skip(1) {
            let inside = script.split('>').nth(1).unwrap_or_default();
            assert!(inside.starts_with("</script"), "inline script: {script}");
        }
        for asset in ["/", "/app.js", "/app.css"] {
            let body = get(asset).map(|a| a.body).unwrap_or_default();
            // The SVG namespace is a name, not a request.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{asset}"
            );
            assert!(!body.contains(" style=\""), "{asset}: inline style");
        }
        assert!(get("/secret").is_none());
    }
}
