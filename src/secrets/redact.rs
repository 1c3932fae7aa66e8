//! Known secret values removed from captured output before it is written anywhere.

use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};

/// Values shorter than this are not redacted: replacing every `1` or `on` in a log
/// would destroy it and hide nothing worth hiding.
const MIN_LEN: usize = 4;
pub const REDACTED: &str = "(redacted)";

#[derive(Clone, Default)]
pub struct Redactor {
    values: Arc<Vec<SecretString>>,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut values: Vec<SecretString> = values
            .into_iter()
            .filter(|v| v.expose_secret().len() >= MIN_LEN)
            .cloned()
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.expose_secret().len()));
        Self {
            values: Arc::new(values),
        }
    }

    /// The length of the longest value (0 without any): how far a cut line must be
    /// read past its cut for a value straddling it to be matched.
    pub fn longest(&self) -> usize {
        self.values.first().map_or(0, |v| v.expose_secret().len())
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in self.values.iter() {
            if out.contains(value.expose_secret()) {
                out = out.replace(value.expose_secret(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_known_values_only() {
        let r = Redactor::new(&[
            SecretString::from("tok-123456".to_string()),
            SecretString::from("on".to_string()),
        ]);
        assert_eq!(r.redact("auth tok-123456 is on"), "auth (redacted) is on");
        assert_eq!(Redactor::default().redact("x"), "x");
    }
}
