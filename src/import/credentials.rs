//! PURE. Which env values and headers are credentials (they become encrypted
//! secrets), and which are `${VAR}` references (they stay as written).

/// Parts of a name that mark its value as a credential.
const NAMES: [&str; 7] = [
    "TOKEN",
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
    let upper = name.to_ascii_uppercase();
    NAMES.iter().any(|n| upper.contains(n)) || looks_like_token(value)
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
