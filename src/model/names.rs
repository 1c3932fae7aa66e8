//! Rules for the names users choose: servers, profiles and environment variables.

pub const NAME_HINT: &str = "names use lowercase letters, digits, `-` and `_`, start with a letter or digit, at most 63 characters";

/// Server and profile names; they end up in paths, URLs and (later) Kubernetes objects.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("empty name".into()),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return Err(format!("starts with `{c}`"));
        }
        Some(_) => {}
    }
    if let Some(bad) =
        chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(format!("contains `{bad}`"));
    }
    if name.len() > 63 {
        return Err("longer than 63 characters".into());
    }
    Ok(())
}

/// POSIX-portable environment variable names.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("empty name".into()),
        Some(c) if c.is_ascii_digit() => return Err("starts with a digit".into()),
        Some(_) => {}
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        Some(bad) => Err(format!("contains `{bad}`")),
        None => Ok(()),
    }
}

/// The kernel's bound on one string of a process's environment (`MAX_ARG_STRLEN`,
/// 32 pages): `execve` refuses a longer `KEY=VALUE`.
pub const MAX_ENV_STRING: usize = 128 * 1024;

/// Whether `KEY=VALUE` can be in a process's environment: no NUL byte (environment
/// strings are C strings) and at most [`MAX_ENV_STRING`] bytes with its NUL. Caught
/// here, a bad value is a validation error instead of a server that cannot start.
pub fn check_env_value(key: &str, value: &str) -> Result<(), String> {
    if let Some(at) = value.find('\0') {
        return Err(format!("it holds a NUL byte (at byte {at})"));
    }
    let len = key.len() + 1 + value.len() + 1;
    if len > MAX_ENV_STRING {
        return Err(format!(
            "`{key}=VALUE` is {len} bytes, over the kernel's 128 KiB ({MAX_ENV_STRING} bytes) for one"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("web-1_a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("Web").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_env_name("API_KEY2").is_ok());
        assert!(check_env_name("_X").is_ok());
        assert!(check_env_name("2X").is_err());
        assert!(check_env_name("A-B").is_err());
        assert!(check_env_name("").is_err());
        assert!(check_env_value("A", "b").is_ok());
        assert!(check_env_value("A", "a\0b").is_err());
        assert!(check_env_value("A", &"x".repeat(MAX_ENV_STRING - 3)).is_ok());
        assert!(check_env_value("A", &"x".repeat(MAX_ENV_STRING - 2)).is_err());
    }
}
