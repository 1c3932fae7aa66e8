//! The registry's documents as it sends them: a `server.json` entry and the list
//! and get responses of the registry API v0.1 (camelCase, as the official schema).
//! Only what `search`, `add` and `outdated` read is kept; unknown fields are
//! ignored, because registries add their own (`_meta` extensions). Nothing here is
//! trusted: [`super::check`] decides what may become a command line.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One `server.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerJson {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub remotes: Vec<Remote>,
}

/// `packages[]`: something a package manager fetches and runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `npm`, `pypi`, `oci` (others exist: `nuget`, `mcpb`; not run by mcpctl).
    pub registry_type: String,
    #[serde(default)]
    pub registry_base_url: Option<String>,
    pub identifier: String,
    #[serde(default)]
    pub version: Option<String>,
    /// The command that runs it: `npx`, `uvx`, `docker`...
    #[serde(default)]
    pub runtime_hint: Option<String>,
    #[serde(default)]
    pub transport: Option<Transport>,
    /// For the runtime (`docker run ARGS image`, `npx ARGS pkg`).
    #[serde(default)]
    pub runtime_arguments: Vec<Argument>,
    /// For the server itself, after the package.
    #[serde(default)]
    pub package_arguments: Vec<Argument>,
    #[serde(default)]
    pub environment_variables: Vec<Input>,
}

/// How a package speaks: `stdio` unless said otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Transport {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `remotes[]`: a hosted server.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Remote {
    /// `streamable-http` or `sse`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<Input>,
    /// `{placeholders}` of the url.
    #[serde(default)]
    pub variables: BTreeMap<String, Input>,
}

/// One argument: `positional` (a value) or `named` (`--name value`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    #[serde(rename = "type")]
    pub kind: String,
    /// What a positional argument is called, for asking for it.
    #[serde(default)]
    pub value_hint: Option<String>,
    /// Its value; `input.name` is a named argument's flag (`--port`).
    #[serde(flatten)]
    pub input: Input,
}

/// A value the entry describes: an environment variable, a header, an argument's
/// value or a `{placeholder}` of one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// An environment variable's or a header's name, or a named argument's flag.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The value, possibly with `{placeholders}` from `variables`.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub is_secret: bool,
    #[serde(default)]
    pub variables: BTreeMap<String, Input>,
}

/// `GET /v0.1/servers`: a page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub servers: Vec<Listed>,
    #[serde(default)]
    pub metadata: PageMeta,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One entry of a page, or the answer of `GET /v0.1/servers/NAME/versions/V`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Listed {
    pub server: ServerJson,
    #[serde(default, rename = "_meta")]
    pub meta: Option<serde_json::Value>,
}

impl Listed {
    /// Whether the registry marks this version as the latest (absent: assumed).
    pub fn is_latest(&self) -> bool {
        self.meta
            .as_ref()
            .and_then(|m| m.get("io.modelcontextprotocol.registry/official"))
            .and_then(|o| o.get("isLatest"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true)
    }
}

impl ServerJson {
    /// How it runs, for a listing: `npm`, `pypi`, `oci`, `remote` (comma-separated).
    pub fn kinds(&self) -> String {
        let mut kinds: Vec<&str> = self
            .packages
            .iter()
            .map(|p| p.registry_type.as_str())
            .collect();
        if !self.remotes.is_empty() {
            kinds.push("remote");
        }
        kinds.dedup();
        kinds.join(",")
    }
}
