//! A `server.json` entry to the fields of one `[servers.NAME]` block: pure, so every
//! rule is a unit test. npm runs as `npx -y pkg@VERSION`, PyPI as `uvx pkg==VERSION`,
//! OCI as `docker run -i --rm image:tag`, a remote as `mode = "remote"` with its url
//! and headers. The version is always pinned. Arguments (positional and named, with
//! defaults and `{placeholders}`) become `args`; environment variables become `env`,
//! or secrets when the entry says `isSecret`. Whatever the user must still give is
//! collected and reported at once, and every word is checked ([`super::check`]).

use std::collections::{BTreeMap, BTreeSet};

use super::check::{self, Refused};
use super::entry::{Argument, Input, Package, ServerJson};

/// What the user gave on the command line.
#[derive(Debug, Default, Clone)]
pub struct Given {
    /// `--env K=V`.
    pub env: BTreeMap<String, String>,
    /// `--arg NAME=V`: an argument (its `valueHint` or flag without dashes), a
    /// `{placeholder}` or a header.
    pub args: BTreeMap<String, String>,
    /// The names of the `--secret`s given (their values stay with the caller).
    pub secrets: BTreeSet<String>,
}

/// The server block's fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Server {
    /// The entry's name (`io.github.owner/server`).
    pub entry: String,
    /// The pinned version.
    pub version: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    /// A remote's url.
    pub url: Option<String>,
    /// A remote's transport: `streamable-http` or `sse`.
    pub transport: Option<String>,
    pub env: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    /// Secrets to set (their names; the values are the caller's).
    pub secrets: Vec<String>,
    /// Said to the user: optional values left out.
    pub notes: Vec<String>,
}

/// Something the user must give before the server can be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// The flag that gives it: `--secret KEY`, `--env KEY=...`, `--arg NAME=...`.
    pub flag: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    #[error("{entry} needs {}", list(.needed))]
    Missing { entry: String, needed: Vec<Needed> },
    #[error("{0}")]
    Unsupported(String),
}

fn list(needed: &[Needed]) -> String {
    needed
        .iter()
        .map(|n| {
            if n.description.is_empty() {
                format!("\n  {}", n.flag)
            } else {
                format!("\n  {}  ({})", n.flag, n.description)
            }
        })
        .collect()
}

/// The runtimes mcpctl runs packages with, per registry type.
const NPM: &str = "npm";
const PYPI: &str = "pypi";
const OCI: &str = "oci";

/// Turns `entry` into a server's fields, with what the user `given`.
pub fn translate(entry: &ServerJson, given: &Given) -> Result<Server, Error> {
    check::entry_name(&entry.name)?;
    let mut t = Translation {
        given,
        server: Server {
            entry: entry.name.clone(),
            ..Server::default()
        },
        needed: Vec::new(),
    };
    let package = entry
        .packages
        .iter()
        .find(|p| matches!(p.registry_type.as_str(), NPM | PYPI | OCI));
    match (package, entry.remotes.first()) {
        (Some(package), _) => t.package(entry, package)?,
        (None, Some(_)) => t.remote(entry)?,
        (None, None) => {
            return Err(match entry.packages.first() {
                Some(p) => Refused {
                    field: "registryType".into(),
                    shown: crate::import::plan::printable(&p.registry_type),
                    why: "is not one mcpctl runs (npm, pypi, oci, or a remote)".into(),
                }
                .into(),
                None => Error::Unsupported(format!(
                    "{} has neither packages nor remotes: nothing to run",
                    entry.name
                )),
            });
        }
    }
    if !t.needed.is_empty() {
        return Err(Error::Missing {
            entry: entry.name.clone(),
            needed: t.needed,
        });
    }
    Ok(t.server)
}

struct Translation<'g> {
    given: &'g Given,
    server: Server,
    needed: Vec<Needed>,
}

impl Translation<'_> {
    fn package(&mut self, entry: &ServerJson, package: &Package) -> Result<(), Error> {
        if let Some(kind) = package.transport.as_ref().map(|t| t.kind.as_str())
            && kind != "stdio"
        {
            return Err(Error::Unsupported(format!(
                "{} serves {} on a port of its own: mcpctl adds packages that speak stdio \
                 (write its block by hand, with `transport = \"{}\"`)",
                entry.name,
                crate::import::plan::printable(kind),
                crate::import::plan::printable(kind),
            )));
        }
        let version = package
            .version
            .clone()
            .unwrap_or_else(|| entry.version.clone());
        let id = package.identifier.as_str();
        let kind = package.registry_type.as_str();
        let runtime = package.runtime_hint.clone().unwrap_or_else(|| {
            match kind {
                NPM => "npx",
                PYPI => "uvx",
                _ => "docker",
            }
            .to_string()
        });
        let accepted: &[&str] = match kind {
            NPM => &["npx"],
            PYPI => &["uvx"],
            _ => &["docker", "podman"],
        };
        if !accepted.contains(&runtime.as_str()) {
            return Err(Refused {
                field: "runtimeHint".into(),
                shown: crate::import::plan::printable(&runtime),
                why: format!(
                    "is not how mcpctl runs a {kind} package ({})",
                    accepted.join(", ")
                ),
            }
            .into());
        }
        let (reference, pinned) = match kind {
            NPM => {
                check::npm_package(id)?;
                check::npm_version(&version)?;
                (format!("{id}@{version}"), version)
            }
            PYPI => {
                check::pypi_package(id)?;
                check::version(&version)?;
                (format!("{id}=={version}"), version)
            }
            _ => {
                check::oci_image(id)?;
                match image_tag(id) {
                    Some(tag) => {
                        check::oci_tag(tag)?;
                        (id.to_string(), tag.to_string())
                    }
                    None => {
                        check::oci_tag(&version)?;
                        (format!("{id}:{version}"), version)
                    }
                }
            }
        };
        self.server.version = pinned;
        let mut args: Vec<String> = match kind {
            NPM => vec!["-y".into()],
            OCI => vec!["run".into(), "-i".into(), "--rm".into()],
            _ => Vec::new(),
        };
        for argument in &package.runtime_arguments {
            // A positional runtime argument would be read as the package (or image)
            // to run: `npx -y evil-pkg pkg@1.0.0` runs evil-pkg.
            if argument.kind != "named" {
                return Err(Refused {
                    field: "runtime argument".into(),
                    shown: crate::import::plan::printable(
                        argument
                            .input
                            .value
                            .as_deref()
                            .or(argument.value_hint.as_deref())
                            .unwrap_or_default(),
                    ),
                    why: "is positional: a registry may give the runtime named options only".into(),
                }
                .into());
            }
            let before = args.len();
            self.argument(argument, &mut args)?;
            if let Some(flag) = args.get(before) {
                check::runtime_flag(&runtime, flag)?;
                // A bind of the host's files: only of a folder the user named (`--arg`),
                // never one the entry chose (`src=/`, the docker socket).
                if matches!(flag.as_str(), "--mount" | "-v" | "--volume") {
                    let value = args.get(before + 1).map(String::as_str).unwrap_or_default();
                    let source = check::bind_source(flag, value).unwrap_or_default();
                    if !self.given.args.values().any(|v| *v == source) {
                        return Err(Refused {
                            field: "runtime argument".into(),
                            shown: crate::import::plan::printable(&format!("{flag} {value}")),
                            why: "binds a host path the entry chose: only a folder you give with --arg may be mounted".into(),
                        }
                        .into());
                    }
                }
            }
        }
        for input in &package.environment_variables {
            self.env_var(input)?;
        }
        if kind == OCI {
            // The container sees only what `-e NAME` passes from docker's own env.
            let names: BTreeSet<&String> =
                self.server.env.keys().chain(&self.server.secrets).collect();
            for name in names {
                args.push("-e".into());
                args.push(name.clone());
            }
        }
        args.push(reference);
        for argument in &package.package_arguments {
            self.argument(argument, &mut args)?;
        }
        self.server.command = Some(runtime);
        self.server.args = args;
        Ok(())
    }

    fn remote(&mut self, entry: &ServerJson) -> Result<(), Error> {
        let Some(remote) = entry
            .remotes
            .iter()
            .find(|r| matches!(r.kind.as_str(), "streamable-http" | "sse"))
        else {
            let kind = entry
                .remotes
                .first()
                .map(|r| r.kind.as_str())
                .unwrap_or_default();
            return Err(Refused {
                field: "remote type".into(),
                shown: crate::import::plan::printable(kind),
                why: "is not streamable-http or sse".into(),
            }
            .into());
        };
        check::version(&entry.version)?;
        self.server.version = entry.version.clone();
        let url = self.fill("url", &remote.url, &remote.variables, None)?;
        check::url("remote url", &url, false)?;
        self.server.url = Some(url);
        self.server.transport = Some(remote.kind.clone());
        for header in &remote.headers {
            let name = header.name.clone().unwrap_or_default();
            check::header_name(&name)?;
            let key = env_key(&name);
            let value = if header.is_secret {
                match &header.value {
                    // `Bearer {token}`: the placeholders are the secrets.
                    Some(template) => {
                        Some(self.fill(&name, template, &header.variables, Some(&key))?)
                    }
                    None => self.secret(&key, header).then(|| format!("${{{key}}}")),
                }
            } else {
                self.plain(&name, header)?
            };
            if let Some(value) = value {
                self.server.headers.insert(name, value);
            }
        }
        Ok(())
    }

    /// One argument, appended to `args` (nothing when it is optional and unset).
    fn argument(&mut self, argument: &Argument, args: &mut Vec<String>) -> Result<(), Error> {
        let input = &argument.input;
        let named = argument.kind == "named";
        if !named && argument.kind != "positional" {
            return Err(Refused {
                field: "argument type".into(),
                shown: crate::import::plan::printable(&argument.kind),
                why: "is not positional or named".into(),
            }
            .into());
        }
        let key = if named {
            let flag = input.name.clone().unwrap_or_default();
            check::flag(&flag)?;
            flag.trim_start_matches('-').to_string()
        } else {
            argument
                .value_hint
                .clone()
                .unwrap_or_else(|| format!("arg{}", args.len()))
        };
        if input.is_secret {
            return Err(Error::Unsupported(format!(
                "argument `{}` is a secret on the command line, which mcpctl does not write \
                 into the file in plain text: add this server by hand",
                crate::import::plan::printable(&key)
            )));
        }
        let needed = self.needed.len();
        let value = match self.given.args.get(&key) {
            Some(v) => Some(v.clone()),
            None => match input.value.as_ref().or(input.default.as_ref()) {
                Some(template) => Some(self.fill(&key, template, &input.variables, None)?),
                None if input.is_required => {
                    self.need(format!("--arg {key}=..."), input);
                    None
                }
                None => None,
            },
        };
        // A placeholder still to give: the value is checked once it is given.
        if self.needed.len() > needed {
            return Ok(());
        }
        if let Some(value) = value {
            check::value("argument", &value)?;
            if named {
                args.push(input.name.clone().unwrap_or_default());
            }
            args.push(value);
        }
        Ok(())
    }

    fn env_var(&mut self, input: &Input) -> Result<(), Error> {
        let name = input.name.clone().unwrap_or_default();
        crate::model::names::check_env_name(&name).map_err(|why| Refused {
            field: "environment variable".into(),
            shown: crate::import::plan::printable(&name),
            why,
        })?;
        check::entry_env_name(&name)?;
        if input.is_secret || self.given.secrets.contains(&name) {
            self.secret(&name, input);
            return Ok(());
        }
        if let Some(value) = self.plain(&name, input)? {
            self.server.env.insert(name, value);
        }
        Ok(())
    }

    /// A plain value: given (`--env`, or `--arg` for a header), the entry's value or
    /// default, or needed when required.
    fn plain(&mut self, name: &str, input: &Input) -> Result<Option<String>, Error> {
        let needed = self.needed.len();
        let given = self
            .given
            .env
            .get(name)
            .or_else(|| self.given.args.get(name));
        let value = match given {
            Some(v) => Some(v.clone()),
            None => match input.value.as_ref().or(input.default.as_ref()) {
                Some(template) => Some(self.fill(name, template, &input.variables, None)?),
                None if input.is_required => {
                    let flag = if self.server.url.is_some() {
                        "--arg"
                    } else {
                        "--env"
                    };
                    self.need(format!("{flag} {name}=..."), input);
                    None
                }
                None => {
                    self.server.notes.push(format!(
                        "left out {name} (optional{}): set it with --env {name}=...",
                        describe(input)
                    ));
                    None
                }
            },
        };
        // A placeholder still to give: the value is checked once it is given.
        if let Some(v) = &value
            && self.needed.len() == needed
        {
            check::value(name, v)?;
        }
        Ok(value)
    }

    /// Records secret `key`: given, needed, or left out. Returns whether it is set.
    fn secret(&mut self, key: &str, input: &Input) -> bool {
        if self.given.secrets.contains(key) {
            if !self.server.secrets.iter().any(|s| s == key) {
                self.server.secrets.push(key.to_string());
            }
            true
        } else if input.is_required {
            self.need(format!("--secret {key}"), input);
            false
        } else {
            self.server.notes.push(format!(
                "left out secret {key} (optional{}): set it with --secret {key}",
                describe(input)
            ));
            false
        }
    }

    fn need(&mut self, flag: String, input: &Input) {
        // Its names (a value hint, a placeholder) are the entry's: shown escaped.
        let flag = crate::import::plan::printable(&flag);
        let description = input
            .description
            .as_deref()
            .map(crate::import::plan::printable)
            .unwrap_or_default();
        if !self.needed.iter().any(|n| n.flag == flag) {
            self.needed.push(Needed { flag, description });
        }
    }

    /// `template` with each `{name}` replaced: given with `--arg`, else the
    /// variable's value or default; a secret variable becomes `${NAME}` when
    /// `secret_ok` (a header, which the gateway fills from secrets).
    fn fill(
        &mut self,
        field: &str,
        template: &str,
        variables: &BTreeMap<String, Input>,
        secret_ok: Option<&str>,
    ) -> Result<String, Error> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                break;
            };
            out.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            let variable = variables.get(name).cloned().unwrap_or_default();
            if variable.is_secret || (secret_ok.is_some() && !variables.contains_key(name)) {
                let Some(_) = secret_ok else {
                    return Err(Error::Unsupported(format!(
                        "`{}` puts a secret on the command line: add this server by hand",
                        crate::import::plan::printable(field)
                    )));
                };
                let key = env_key(name);
                crate::model::names::check_env_name(&key).map_err(|why| Refused {
                    field: "placeholder".into(),
                    shown: crate::import::plan::printable(name),
                    why,
                })?;
                self.secret(
                    &key,
                    &Input {
                        is_required: true,
                        ..variable
                    },
                );
                out.push_str(&format!("${{{key}}}"));
            } else {
                match self
                    .given
                    .args
                    .get(name)
                    .or(variable.value.as_ref())
                    .or(variable.default.as_ref())
                {
                    Some(v) => out.push_str(v),
                    None => {
                        self.need(format!("--arg {name}=..."), &variable);
                        out.push_str(&format!("{{{name}}}"));
                    }
                }
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn describe(input: &Input) -> String {
    input
        .description
        .as_deref()
        .map(|d| format!(": {}", crate::import::plan::printable(d)))
        .unwrap_or_default()
}

/// A header's or a placeholder's name as an environment variable: `X-API-Key` ->
/// `X_API_KEY`.
pub fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The tag of an image reference that has one (`ghcr.io:5000/a/b:1.2` -> `1.2`).
pub fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next()?;
    let last = last.split('@').next()?;
    last.split_once(':').map(|(_, tag)| tag)
}

/// The server's local name: the entry's last segment, as mcpctl names servers.
pub fn local_name(entry: &str) -> String {
    crate::import::plan::server_name(entry.rsplit('/').next().unwrap_or(entry))
}
