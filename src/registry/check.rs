//! The strict patterns an entry's words must match before they become a command
//! line or a file's text. A registry is a stranger: its package names, versions,
//! flags and values are data, and anything that could be read as more than data
//! (a shell character, a path out of a folder, an option that changes where a
//! package comes from or what a container may do) is refused, naming the field.

/// Why a word of an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} `{shown}` {why}")]
pub struct Refused {
    pub field: String,
    /// The value as it may be shown on a terminal.
    pub shown: String,
    pub why: String,
}

fn refuse(field: &str, value: &str, why: impl Into<String>) -> Refused {
    let mut shown = crate::import::plan::printable(value);
    if shown.chars().count() > 80 {
        shown = shown.chars().take(77).collect::<String>() + "...";
    }
    Refused {
        field: field.to_string(),
        shown,
        why: why.into(),
    }
}

/// Every character of `value` is in `allowed`, it is 1..=`max` long, it starts with
/// a letter or digit (never `-`: an option) and has no `..` (a path out of a folder).
fn word(
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), Refused> {
    if value.is_empty() {
        return Err(refuse(field, value, "is empty"));
    }
    if value.len() > max {
        return Err(refuse(
            field,
            value,
            format!("is longer than {max} characters"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(refuse(
            field,
            value,
            format!(
                "contains `{}`, which is not allowed here",
                bad.escape_default()
            ),
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '@') {
        return Err(refuse(field, value, "must start with a letter or digit"));
    }
    if value.contains("..") {
        return Err(refuse(field, value, "contains `..`"));
    }
    Ok(())
}

/// A registry entry's name: `io.github.owner/server` (reverse DNS, a slash, a name).
pub fn entry_name(name: &str) -> Result<(), Refused> {
    word("entry name", name, 200, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/')
    })?;
    if name.matches('/').count() != 1 || name.ends_with('/') {
        return Err(refuse(
            "entry name",
            name,
            "is not NAMESPACE/NAME (as io.github.owner/server)",
        ));
    }
    Ok(())
}

/// An npm package: `name` or `@scope/name`, lowercase.
pub fn npm_package(id: &str) -> Result<(), Refused> {
    word("npm package", id, 214, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '/' | '@')
    })?;
    let plain = id.strip_prefix('@').map_or(Some(id), |scoped| {
        scoped.split_once('/').map(|(_, name)| name)
    });
    match plain {
        Some(name) if !name.is_empty() && !name.contains(['/', '@']) => Ok(()),
        _ => Err(refuse("npm package", id, "is not `name` or `@scope/name`")),
    }
}

/// A PyPI project name (PEP 508: letters, digits, `.`, `-`, `_`).
pub fn pypi_package(id: &str) -> Result<(), Refused> {
    word("PyPI package", id, 200, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
    })
}

/// An OCI image reference: `[registry[:port]/]path[:tag][@sha256:digest]`.
pub fn oci_image(id: &str) -> Result<(), Refused> {
    word("OCI image", id, 255, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':' | '@')
    })?;
    if id.contains("//") || id.ends_with(['/', ':']) {
        return Err(refuse("OCI image", id, "is not an image reference"));
    }
    Ok(())
}

/// A pinned version: `1.2.3`, `0.4.0-beta.1`, `2025.10.1`, `1.0rc1`; never a range
/// (`1.x`, `x`), a dist-tag (`next`, `latest`) or a `v`: it starts with a digit and
/// each dotted part before `-` or `+` is a number (PEP 440's `rc1`, `a2`, `post3`,
/// `dev4` may follow one).
pub fn version(v: &str) -> Result<(), Refused> {
    word("version", v, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')
    })?;
    let main = v.split(['-', '+']).next().unwrap_or_default();
    let part_ok = |part: &str| {
        let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let rest = &part[digits..];
        let tail_ok = |tag: &str| {
            rest.strip_prefix(tag)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        };
        (digits > 0 && (rest.is_empty() || ["a", "b", "rc"].iter().any(|t| tail_ok(t))))
            || ["post", "dev"].iter().any(|t| tail_ok(t))
    };
    if !v.starts_with(|c: char| c.is_ascii_digit()) || !main.split('.').all(part_ok) {
        return Err(refuse(
            "version",
            v,
            "is not a pinned version (numbers: 1.2.3; no range, tag or `v`)",
        ));
    }
    Ok(())
}

/// An npm version pins only with three numbers (`1` and `1.2` are ranges to npm).
pub fn npm_version(v: &str) -> Result<(), Refused> {
    version(v)?;
    let main = v.split(['-', '+']).next().unwrap_or_default();
    if main.split('.').count() < 3 || !main.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(refuse(
            "version",
            v,
            "is a range to npm: an exact version has three numbers (1.2.3)",
        ));
    }
    Ok(())
}

/// An image tag (a literal name: `1.0`, `v1.2.3`, `2025-10-01`), never `latest`.
pub fn oci_tag(tag: &str) -> Result<(), Refused> {
    word("image tag", tag, 128, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
    })?;
    if tag.eq_ignore_ascii_case("latest") {
        return Err(refuse("image tag", tag, "is not a pinned version"));
    }
    Ok(())
}

/// The host path a `--mount` (`src=`/`source=`) or `-v` (`SRC:DST`) value binds.
pub fn bind_source(flag: &str, value: &str) -> Option<String> {
    if flag == "--mount" {
        return value.split(',').find_map(|part| {
            let (k, v) = part.split_once('=')?;
            matches!(k.trim(), "src" | "source").then(|| v.trim().to_string())
        });
    }
    value.split(':').next().map(str::to_string)
}

/// An environment variable a registry entry may set: not one that changes how the
/// runtime itself behaves (what it loads, where packages come from, which daemon or
/// proxy it talks to), whatever the entry says of it.
pub fn entry_env_name(name: &str) -> Result<(), Refused> {
    let upper = name.to_ascii_uppercase();
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "SHELL",
        "ENV",
        "BASH_ENV",
        "TMPDIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "REQUESTS_CA_BUNDLE",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "GCONV_PATH",
        "PERL5OPT",
        "RUBYOPT",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "DYLD_",
        "NODE_",
        "NPM_CONFIG_",
        "NPX_",
        "COREPACK_",
        "YARN_",
        "PNPM_",
        "BUN_",
        "DENO_",
        "UV_",
        "PIP_",
        "PYTHON",
        "VIRTUAL_ENV",
        "CONDA_",
        "DOCKER_",
        "PODMAN_",
        "CONTAINER_",
        "BUILDKIT_",
        "GIT_",
        "SSL_",
        "CURL_",
        "MCPCTL_",
    ];
    if EXACT.contains(&upper.as_str()) || PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Err(refuse(
            "environment variable",
            name,
            "is not accepted from a registry (it changes how the runtime loads or fetches what runs)",
        ));
    }
    Ok(())
}

/// A named argument's flag: `--port`, `-e`.
pub fn flag(name: &str) -> Result<(), Refused> {
    let body = name.trim_start_matches('-');
    let dashes = name.len() - body.len();
    if !(1..=2).contains(&dashes) {
        return Err(refuse("argument", name, "is not a flag (`-x` or `--name`)"));
    }
    word("argument", body, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
    })
}

/// An argument's or an environment variable's value, once its placeholders are
/// filled: printable, no shell characters (it is never given to a shell, but a
/// server may pass it to one), no placeholder left.
pub fn value(field: &str, v: &str) -> Result<(), Refused> {
    if v.len() > 4096 {
        return Err(refuse(field, v, "is longer than 4096 characters"));
    }
    let shell = |c: char| {
        matches!(
            c,
            '$' | '`' | ';' | '|' | '&' | '<' | '>' | '\\' | '"' | '\'' | '(' | ')'
        )
    };
    if let Some(bad) = v.chars().find(|c| c.is_control() || shell(*c)) {
        return Err(refuse(
            field,
            v,
            format!(
                "contains `{}`, which is not allowed in a value",
                bad.escape_default()
            ),
        ));
    }
    if v.contains(['{', '}']) {
        return Err(refuse(field, v, "has a `{placeholder}` with no value"));
    }
    Ok(())
}

/// A header's name (an HTTP token).
pub fn header_name(name: &str) -> Result<(), Refused> {
    word("header", name, 64, |c| {
        c.is_ascii_alphanumeric() || c == '-'
    })
}

/// A URL mcpctl will connect to: `https://` with a host, no credentials in it,
/// nothing but URL characters. `loopback_http`: `http://` to 127.0.0.1, `[::1]` or
/// localhost is accepted too (a registry served on this machine).
pub fn url(field: &str, u: &str, loopback_http: bool) -> Result<(), Refused> {
    if u.len() > 2048 {
        return Err(refuse(field, u, "is longer than 2048 characters"));
    }
    let rest = if let Some(rest) = u.strip_prefix("https://") {
        rest
    } else if let Some(rest) = u.strip_prefix("http://").filter(|_| loopback_http) {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(refuse(
                field,
                u,
                "is not https:// (plain http only to this machine)",
            ));
        }
        rest
    } else {
        return Err(refuse(field, u, "is not an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(refuse(field, u, "has no host"));
    }
    if authority.contains('@') {
        return Err(refuse(field, u, "has credentials in it"));
    }
    let url_char = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | ':'
                    | '/'
                    | '?'
                    | '#'
                    | '['
                    | ']'
                    | '@'
                    | '!'
                    | '&'
                    | '='
                    | '+'
                    | ','
                    | ';'
                    | '%'
                    | '*'
            )
    };
    if let Some(bad) = u.chars().find(|c| !url_char(*c)) {
        return Err(refuse(
            field,
            u,
            format!(
                "contains `{}`, which is not allowed in a URL",
                bad.escape_default()
            ),
        ));
    }
    Ok(())
}

/// The runtime options a registry entry may ask for: a short list of harmless ones.
/// Anything else (where a package comes from, another package, host paths, devices,
/// the host's network, another user) is refused, so a new option of a runtime is
/// refused until it is known to be harmless.
pub fn runtime_flag(runtime: &str, flag: &str) -> Result<(), Refused> {
    let base = flag.split_once('=').map_or(flag, |(f, _)| f);
    let allowed: &[&str] = match runtime {
        "npx" => &["-y", "--yes", "-q", "--quiet"],
        "uvx" => &["-q", "--quiet", "--no-cache", "--isolated"],
        // `--mount`/`-v` only of a folder the user named (see [`bind_source`]).
        "docker" | "podman" => &[
            "-e",
            "--env",
            "--init",
            "--read-only",
            "--memory",
            "-m",
            "--cpus",
            "--pull",
            "--mount",
            "-v",
            "--volume",
        ],
        _ => &[],
    };
    if !allowed.contains(&base) {
        return Err(refuse(
            "runtime argument",
            flag,
            format!(
                "is not accepted from a registry for {runtime} (only {})",
                allowed.join(", ")
            ),
        ));
    }
    // The denylist below stays as a second check (documentation of what matters most).
    let forbidden: &[&str] = match runtime {
        "npx" => &[
            "--registry",
            "--userconfig",
            "--package",
            "-p",
            "--call",
            "-c",
            "--prefix",
        ],
        "uvx" => &[
            "--index",
            "--index-url",
            "--extra-index-url",
            "--default-index",
            "--find-links",
            "-f",
            "--from",
            "--with",
            "--with-requirements",
            "--python",
            "-p",
        ],
        "docker" | "podman" => &[
            "--privileged",
            "--cap-add",
            "--security-opt",
            "--pid",
            "--ipc",
            "--userns",
            "--device",
            "--network",
            "--net",
            "--uts",
            "--cgroupns",
            "--volumes-from",
            "--entrypoint",
        ],
        _ => &[],
    };
    if forbidden.contains(&base) {
        return Err(refuse(
            "runtime argument",
            flag,
            format!(
                "is not accepted from a registry for {runtime} (it changes what runs or what it may reach)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_with_shell_or_path_characters_are_refused() {
        for bad in [
            "pkg;rm -rf /",
            "pkg name",
            "$(curl x)",
            "../../etc",
            "@scope/../x",
            "-rf",
            "@a/b/c",
            "",
        ] {
            assert!(npm_package(bad).is_err(), "{bad}");
        }
        for good in [
            "@modelcontextprotocol/server-everything",
            "mcp-server",
            "a.b_c",
        ] {
            npm_package(good).unwrap();
        }
        assert!(pypi_package("weather-mcp;x").is_err());
        pypi_package("weather-mcp-server").unwrap();
        oci_image("ghcr.io/owner/image:1.0.2").unwrap();
        oci_image("docker.io/mcp/filesystem").unwrap();
        for bad in ["img$(x)", "a//b", "../img", "img:", "img name"] {
            assert!(oci_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_are_pinned() {
        for good in ["1.0.2", "0.4.0-beta.1", "2025.10.1", "1.0.0+build.5"] {
            version(good).unwrap();
        }
        for bad in ["latest", "^1.0.0", "~1.2", "*", "1.x || 2", "", "1.0;x"] {
            assert!(version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_and_urls() {
        value("argument", "type=bind,src=/home/a,dst=/project").unwrap();
        for bad in ["a;b", "$(id)", "`id`", "x\ny", "{missing}", "a\u{1b}[31m"] {
            assert!(value("argument", bad).is_err(), "{bad:?}");
        }
        url("url", "https://mcp.example.com/mcp", false).unwrap();
        url("registry", "http://127.0.0.1:8080", true).unwrap();
        for bad in [
            "http://mcp.example.com/mcp",
            "https://user:pw@x.com/",
            "ftp://x",
            "https://",
            "https://x.com/a b",
        ] {
            assert!(url("url", bad, false).is_err(), "{bad}");
        }
        assert!(url("registry", "http://example.com", true).is_err());
        assert!(url("registry", "http://127.0.0.1.evil.com/", true).is_err());
    }

    #[test]
    fn flags_and_dangerous_runtime_options() {
        flag("--port").unwrap();
        flag("-e").unwrap();
        for bad in ["port", "---x", "--a;b", "--"] {
            assert!(flag(bad).is_err(), "{bad}");
        }
        assert!(runtime_flag("docker", "--privileged").is_err());
        assert!(runtime_flag("docker", "--network=host").is_err());
        assert!(runtime_flag("npx", "--registry=https://evil").is_err());
        runtime_flag("docker", "--mount").unwrap();
        for bad in [
            "-v/:/host",
            "--user",
            "--env-file",
            "--runtime",
            "--gpus",
            "--add-host",
        ] {
            assert!(runtime_flag("docker", bad).is_err(), "{bad}");
        }
        assert!(runtime_flag("uvx", "-w").is_err());
        assert!(runtime_flag("npx", "--REGISTRY").is_err());
        assert_eq!(
            bind_source("--mount", "type=bind,src=/home/me,dst=/p").as_deref(),
            Some("/home/me")
        );
        assert_eq!(bind_source("-v", "/:/host").as_deref(), Some("/"));
        for bad in [
            "1.x", "x", "X", "1.0.x", "next", "beta", "canary", "v1.0.0", "latest", "1.0.0;id",
        ] {
            assert!(version(bad).is_err(), "{bad}");
        }
        for ok in [
            "1.2.3",
            "0.4.0-beta.1",
            "2025.10.1",
            "1.0rc1",
            "2.0.post1",
            "1",
        ] {
            version(ok).unwrap();
        }
        for bad in ["1", "1.0", "1.0.0rc1"] {
            assert!(npm_version(bad).is_err(), "{bad}");
        }
        npm_version("1.0.0-rc.1").unwrap();
        for bad in [
            "NODE_OPTIONS",
            "npm_config_registry",
            "LD_PRELOAD",
            "PATH",
            "UV_INDEX_URL",
            "DOCKER_HOST",
        ] {
            assert!(entry_env_name(bad).is_err(), "{bad}");
        }
        entry_env_name("BRAVE_API_KEY").unwrap();
    }

    #[test]
    fn what_is_shown_is_neutralised() {
        let e = npm_package("x\u{1b}]0;pwned\u{7}").unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }
}
