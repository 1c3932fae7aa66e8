//! PURE. `mcpctl client link|unlink|show|status`: the entry each client gets for a
//! server (a URL where the client takes one, else the `mcpctl connect` bridge), the
//! in-place JSON edit of the client's file ([`jsonedit`]), and the ownership record
//! that tells mcpctl's entries (in sync or drifted) from foreign ones ([`records`]).

pub mod jsonedit;
pub mod records;
pub mod tomledit;

use serde_json::{Value, json};

use crate::import::Client;

/// What a client's entry for one server is made from.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The server's Streamable HTTP (or SSE) endpoint.
    pub url: String,
    /// The variable the client's user sets to the bearer, when auth is on.
    pub bearer_var: Option<String>,
}

/// The object of the client's file that holds its servers.
pub fn section(client: Client) -> Option<&'static str> {
    match client {
        Client::Vscode => Some("servers"),
        Client::Zed => Some("context_servers"),
        Client::Codex => Some("mcp_servers"),
        Client::File => None,
        _ => Some("mcpServers"),
    }
}

/// The client's own syntax for an environment variable in its file.
fn variable(client: Client, var: &str) -> String {
    match client {
        Client::ClaudeCode => format!("${{{var}}}"),
        _ => format!("${{env:{var}}}"),
    }
}

/// The entry for `target`: a URL for clients that take one, the stdio bridge
/// (`connect`: the command line of `mcpctl connect NAME`) for the others.
pub fn entry(client: Client, target: &Target, connect: &[String]) -> Value {
    let headers = target
        .bearer_var
        .as_ref()
        .map(|var| json!({"Authorization": format!("Bearer {}", variable(client, var))}));
    let mut entry = match client {
        Client::ClaudeCode | Client::Vscode => json!({"type": "http", "url": target.url}),
        Client::Cursor => json!({"url": target.url}),
        Client::Windsurf => json!({"serverUrl": target.url}),
        _ => {
            let (command, args) = connect
                .split_first()
                .map_or(("mcpctl", &[][..]), |(c, a)| (c.as_str(), a));
            return json!({"command": command, "args": args});
        }
    };
    if let (Some(headers), Some(obj)) = (headers, entry.as_object_mut()) {
        obj.insert("headers".into(), headers);
    }
    entry
}

/// The client's file holds TOML (Codex), not JSON.
fn is_toml(client: Client) -> bool {
    client == Client::Codex
}

/// `section.name` of the client's file, as text a digest reads.
pub fn get(
    client: Client,
    text: &str,
    section: &str,
    name: &str,
) -> Result<Option<String>, String> {
    if is_toml(client) {
        tomledit::get(text, section, name)
    } else {
        Ok(jsonedit::get(text, section, name)?.map(str::to_string))
    }
}

/// `section.name` as the file has it, to be put back byte for byte by [`put_raw`].
pub fn get_raw(
    client: Client,
    text: &str,
    section: &str,
    name: &str,
) -> Result<Option<String>, String> {
    // A JSON member's text is already its bytes as the file has them.
    if is_toml(client) {
        tomledit::get_raw(text, section, name)
    } else {
        get(client, text, section, name)
    }
}

/// `text` with `section.name` as [`get_raw`] read it.
pub fn put_raw(
    client: Client,
    text: &str,
    section: &str,
    name: &str,
    raw: &str,
) -> Result<String, String> {
    if is_toml(client) {
        tomledit::put_raw(text, section, name, raw)
    } else {
        jsonedit::replace_raw(text, section, name, raw)
    }
}

pub fn has_section(client: Client, text: &str, section: &str) -> Result<bool, String> {
    if is_toml(client) {
        tomledit::has_section(text, section)
    } else {
        jsonedit::has_section(text, section)
    }
}

pub fn upsert(
    client: Client,
    text: &str,
    section: &str,
    name: &str,
    value: &Value,
) -> Result<String, String> {
    if is_toml(client) {
        tomledit::upsert(text, section, name, value)
    } else {
        jsonedit::upsert(text, section, name, value)
    }
}

pub fn remove(client: Client, text: &str, section: &str, name: &str) -> Result<String, String> {
    if is_toml(client) {
        tomledit::remove(text, section, name)
    } else {
        jsonedit::remove(text, section, name)
    }
}

pub fn remove_section_if_empty(
    client: Client,
    text: &str,
    section: &str,
) -> Result<String, String> {
    if is_toml(client) {
        tomledit::remove_section_if_empty(text, section)
    } else {
        jsonedit::remove_section_if_empty(text, section)
    }
}

/// Whether the file holds nothing at all (`{}`, or no TOML keys).
pub fn is_empty_file(client: Client, text: &str) -> bool {
    if is_toml(client) {
        text.parse::<toml_edit::DocumentMut>()
            .is_ok_and(|d| d.is_empty())
    } else {
        serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.as_object().map(serde_json::Map::is_empty))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_clients_get_urls_with_their_variable_syntax_others_the_bridge() {
        let t = Target {
            name: "gh".into(),
            url: "http://127.0.0.1:8000/mcp".into(),
            bearer_var: Some("GH_TOKEN".into()),
        };
        let connect = [
            "/bin/mcpctl".to_string(),
            "-f".into(),
            "/p/mcpctl.toml".into(),
            "connect".into(),
            "gh".into(),
        ];
        assert_eq!(
            entry(Client::ClaudeCode, &t, &connect),
            json!({"type": "http", "url": t.url, "headers": {"Authorization": "Bearer ${GH_TOKEN}"}})
        );
        assert_eq!(
            entry(Client::Cursor, &t, &connect)["headers"]["Authorization"],
            "Bearer ${env:GH_TOKEN}"
        );
        assert_eq!(entry(Client::Windsurf, &t, &connect)["serverUrl"], t.url);
        assert_eq!(
            entry(Client::ClaudeDesktop, &t, &connect),
            json!({"command": "/bin/mcpctl", "args": ["-f", "/p/mcpctl.toml", "connect", "gh"]})
        );
        assert_eq!(section(Client::Vscode), Some("servers"));
        assert_eq!(section(Client::Codex), Some("mcp_servers"));
        assert_eq!(section(Client::File), None);
    }
}

/// What a client's file wears around its text: a byte-order mark, CRLF line ends.
/// Edits work on the plain text; the written file gets them back, so a linked line
/// ends as the file's other lines do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dress {
    pub bom: bool,
    pub crlf: bool,
}

impl Dress {
    /// `text` undressed, and what it wore.
    pub fn strip(text: &str) -> (String, Dress) {
        let (bom, rest) = match text.strip_prefix('\u{feff}') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let crlf = rest.contains("\r\n");
        let plain = if crlf {
            rest.replace("\r\n", "\n")
        } else {
            rest.to_string()
        };
        (plain, Dress { bom, crlf })
    }

    /// `plain` dressed again.
    pub fn apply(self, plain: &str) -> String {
        let body = if self.crlf {
            plain.replace('\n', "\r\n")
        } else {
            plain.to_string()
        };
        if self.bom {
            format!("\u{feff}{body}")
        } else {
            body
        }
    }
}

#[cfg(test)]
mod dress_tests {
    use super::Dress;

    #[test]
    fn a_bom_and_crlf_come_back_as_they_were() {
        let text = "\u{feff}{\r\n  \"a\": 1\r\n}\r\n";
        let (plain, dress) = Dress::strip(text);
        assert_eq!(plain, "{\n  \"a\": 1\n}\n");
        assert_eq!(dress.apply(&plain), text);
        assert_eq!(Dress::strip("{}\n").1, Dress::default());
    }
}
