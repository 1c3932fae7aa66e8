//! PURE. Which env values and headers are credentials (they become encrypted
//! secrets), and which are `${VAR}` references (they stay as written).

/// Parts of a name that mark its value as a credential.
const NAMES: [&str; 8] = [
    "TOKEN",
    "COOKIE",
    "KEY",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "AUTH",
    "CREDENTIAL",
];

/// Prefixes of well-known token formats.
const PREFIXES: [&str; 10] = [
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "sk-",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "Bearer ",
];

/// Whether the value is (or holds) a `${VAR}` / `${input:ID}` / `${env:VAR}` reference.
pub fn is_reference(value: &str) -> bool {
    value
        .find("${")
        .is_some_and(|start| value[start..].contains('}'))
}

/// Whether `name = value` is a credential: by its name, or a value that looks like one.
pub fn is_credential(name: &str, value: &str) -> bool {
    if value.is_empty() || is_reference(value) {
        return false;
    }
    is_credential_name(name) || looks_like_token(value) || has_url_password(value)
}

/// Whether a value holds a URL with a password in it (`postgres://user:pw@host/db`):
/// the whole value is then a credential.
pub fn has_url_password(value: &str) -> bool {
    value.match_indices("://").any(|(at, _)| {
        let rest = &value[at + 3..];
        let authority = rest
            .split(['/', '?', '#', ' ', '"', '\''])
            .next()
            .unwrap_or_default();
        authority.rsplit_once('@').is_some_and(|(userinfo, _)| {
            userinfo
                .split_once(':')
                .is_some_and(|(_, pw)| !pw.is_empty())
        })
    })
}

/// `Name: value` where Name names a credential (`X-Api-Key: ...`, `Cookie: ...`,
/// `Authorization: ...`): the header's name, for a header passed as an argument.
fn credential_header(arg: &str) -> Option<&str> {
    let (name, value) = arg.split_once(':')?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (valid && !value.trim().is_empty() && !is_reference(value) && is_credential_name(name))
        .then_some(name)
}

/// A known token prefix, or a long run of letters and digits with both in it and no
/// spaces, slashes or dots (which paths, URLs and words have).
pub fn looks_like_token(value: &str) -> bool {
    if PREFIXES.iter().any(|p| value.starts_with(p)) && value.len() >= 12 {
        return true;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '+');
    value.len() >= 24
        && value.chars().all(allowed)
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
}

/// Whether a name (an env key, a header, a flag such as `--api-key`) names a
/// credential.
pub fn is_credential_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    NAMES.iter().any(|n| upper.contains(n))
}

/// Where `args` hold a credential in plain text, each place named without its value:
/// `--token=VALUE`, `--api-key VALUE`, an `Authorization` header, a value that looks
/// like a token, a URL with one. mcpctl has no `${...}` in args, so these can only be
/// reported.
pub fn plaintext_in_args(args: &[String]) -> Vec<String> {
    let mut places = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let n = i + 1;
        let flag_value = arg
            .split_once('=')
            .filter(|(flag, value)| flag.starts_with('-') && !value.is_empty());
        if let Some((flag, value)) = flag_value
            && is_credential_name(flag)
            && !is_reference(value)
        {
            places.push(format!("argument {n} (`{flag}=...`)"));
        } else if arg.starts_with('-')
            && !arg.contains('=')
            && is_credential_name(arg)
            && let Some(value) = args.get(i + 1)
            && !value.starts_with('-')
            && !is_reference(value)
        {
            places.push(format!("argument {} (the value of `{arg}`)", n + 1));
            i += 1;
        } else if arg.to_ascii_lowercase().contains("authorization:")
            || (arg.starts_with("Bearer ") && !is_reference(arg))
        {
            places.push(format!("argument {n} (an `Authorization` header)"));
        } else if let Some(header) = credential_header(arg) {
            places.push(format!("argument {n} (a `{header}` header)"));
        } else if arg.contains("://") {
            places.extend(
                plaintext_in_url(arg)
                    .into_iter()
                    .map(|p| format!("argument {n} ({p})")),
            );
        } else if looks_like_token(arg) {
            places.push(format!("argument {n} (it looks like a token)"));
        }
        i += 1;
    }
    places
}

/// Where a URL holds a credential: its `user:password@`, or a query parameter named
/// like one (`api_key`, `token`) or whose value looks like a token.
pub fn plaintext_in_url(url: &str) -> Vec<String> {
    let mut places = Vec::new();
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        places.push("the url's `user:password@`".to_string());
    }
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !value.is_empty()
            && !is_reference(value)
            && (is_credential_name(name) || looks_like_token(value))
        {
            places.push(format!("the url's query parameter `{name}`"));
        }
    }
    places
}

/// A secret's name for a header (`X-Api-Key` -> `X_API_KEY`).
pub fn header_secret_name(header: &str) -> String {
    let mut name: String = header
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_name_and_by_look() {
        assert!(is_credential("GITHUB_TOKEN", "abc"));
        assert!(is_credential("OPENAI_API_KEY", "x"));
        assert!(is_credential("db_password", "hunter2"));
        assert!(is_credential("Authorization", "Bearer abc"));
        assert!(is_credential("VALUE", "ghp_1234567890abcdefghij"));
        assert!(is_credential("X", "a8f3k29dk3j4h5g6f7d8s9a0q1w2"));
        assert!(!is_credential("GITHUB_TOKEN", "${GITHUB_TOKEN}"));
        assert!(!is_credential("LOG_LEVEL", "debug"));
        assert!(!is_credential(
            "ROOT",
            "/home/user/projects/some-long-folder-2024"
        ));
        assert!(!is_credential("API_BASE", "https://api.example.com/v1"));
        assert!(!is_credential("REGION", "eu-west-1"));
        // Issue 28: a password in a URL, and cookies.
        assert!(is_credential(
            "DATABASE_URL",
            "postgres://user:password@db.example/app"
        ));
        assert!(!is_credential("DATABASE_URL", "postgres://db.example/app"));
        assert!(!is_credential(
            "DATABASE_URL",
            "postgres://user@db.example/app"
        ));
        assert!(is_credential("Cookie", "session=abc"));
        let args: Vec<String> = [
            "-H",
            "X-Api-Key: k3y",
            "-H",
            "Cookie: s=1",
            "-H",
            "Accept: x",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            plaintext_in_args(&args),
            [
                "argument 2 (a `X-Api-Key` header)",
                "argument 4 (a `Cookie` header)"
            ]
        );
    }

    #[test]
    fn credentials_in_args_and_urls_are_found_and_named_without_their_values() {
        let args: Vec<String> = [
            "-y",
            "server",
            "--token=abc123",
            "--api-key",
            "s3cret",
            "--header",
            "Authorization: Bearer xyz",
            "--url",
            "https://x.example/mcp?api_key=k3y&team=core",
            "ghp_1234567890abcdefghij",
            "--key=${KEY}",
            "--log-level=debug",
        ]
        .map(String::from)
        .to_vec();
        let places = plaintext_in_args(&args);
        assert_eq!(
            places,
            [
                "argument 3 (`--token=...`)",
                "argument 5 (the value of `--api-key`)",
                "argument 7 (an `Authorization` header)",
                "argument 9 (the url's query parameter `api_key`)",
                "argument 10 (it looks like a token)",
            ]
        );
        assert!(
            places
                .iter()
                .all(|p| !p.contains("abc123") && !p.contains("s3cret"))
        );
        assert_eq!(
            plaintext_in_url("https://me:pw@host/mcp?token=t0k#x"),
            [
                "the url's `user:password@`",
                "the url's query parameter `token`"
            ]
        );
        assert!(plaintext_in_url("https://host/mcp?page=2").is_empty());
        assert!(plaintext_in_url("https://user@host/mcp").is_empty());
    }

    #[test]
    fn references_and_header_names() {
        assert!(is_reference("${input:token}"));
        assert!(is_reference("Bearer ${env:TOKEN}"));
        assert!(!is_reference("${"));
        assert_eq!(header_secret_name("X-Api-Key"), "X_API_KEY");
        assert_eq!(header_secret_name("Authorization"), "AUTHORIZATION");
    }
}
