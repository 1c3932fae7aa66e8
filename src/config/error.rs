use std::fmt;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, LineIndex};

/// How many diagnostics an invalid file shows: a screenful. The rest are counted,
/// and `mcpctl validate --all` shows them.
pub const SHOWN: usize = 20;

/// Everything that can go wrong finding, reading, editing or writing the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no {name} in {} or any parent folder\n  = help: create one with `mcpctl init`, or name one with `--file PATH`", .start.display())]
    NotFound { name: &'static str, start: PathBuf },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file (or the file as an edit would leave it) does not validate. Shows the
    /// first [`SHOWN`] diagnostics and counts the rest, unless `all`.
    #[error("{}", render_diags(.file, .source_text, .diagnostics, *.all))]
    Invalid {
        file: String,
        source_text: String,
        diagnostics: Vec<Diagnostic>,
        all: bool,
    },

    /// An edit that cannot be made (unknown server, missing key...).
    #[error("{message}{}", .hint.as_ref().map(|h| format!("\n  = help: {h}")).unwrap_or_default())]
    Edit {
        message: String,
        hint: Option<String>,
    },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn invalid(path: &Path, source: &str, diagnostics: Vec<Diagnostic>) -> Self {
        Self::Invalid {
            file: path.display().to_string(),
            source_text: source.to_string(),
            diagnostics,
            all: false,
        }
    }

    /// Shows every diagnostic of an invalid file, not the first [`SHOWN`].
    #[must_use]
    pub fn show_all(self) -> Self {
        match self {
            Self::Invalid {
                file,
                source_text,
                diagnostics,
                ..
            } => Self::Invalid {
                file,
                source_text,
                diagnostics,
                all: true,
            },
            other => other,
        }
    }

    pub fn edit(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Self::Edit {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

fn render_diags(file: &str, source: &str, diags: &[Diagnostic], all: bool) -> impl fmt::Display {
    let index = LineIndex::new(source);
    let shown = if all {
        diags.len()
    } else {
        SHOWN.min(diags.len())
    };
    let mut text: Vec<String> = diags[..shown]
        .iter()
        .map(|d| d.render_in(file, &index))
        .collect();
    let rest = diags.len() - shown;
    if rest > 0 {
        text.push(format!(
            "... and {rest} more error{}; `mcpctl validate --all` shows every one",
            if rest == 1 { "" } else { "s" }
        ));
    }
    text.join("\n")
        .trim_end()
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_with(n: usize) -> Error {
        let source = "version = 1\n".repeat(n);
        let diags = (0..n)
            .map(|i| Diagnostic::new(format!("problem {i}")).at(Some(i * 12..i * 12 + 7), ""))
            .collect();
        Error::invalid(std::path::Path::new("f.toml"), &source, diags)
    }

    #[test]
    fn a_screenful_of_diagnostics_is_shown_and_the_rest_counted() {
        let text = invalid_with(SHOWN + 3).to_string();
        assert_eq!(text.matches("problem ").count(), SHOWN, "{text}");
        assert!(text.contains(&format!("f.toml:{SHOWN}:1")), "{text}");
        assert!(!text.contains(&format!("problem {SHOWN}\n")), "{text}");
        assert!(
            text.ends_with("... and 3 more errors; `mcpctl validate --all` shows every one"),
            "{text}"
        );

        let text = invalid_with(SHOWN + 1).to_string();
        assert!(text.ends_with("... and 1 more error; `mcpctl validate --all` shows every one"));
        let text = invalid_with(SHOWN).to_string();
        assert!(!text.contains("more error"), "{text}");
    }

    #[test]
    fn show_all_shows_every_diagnostic() {
        let text = invalid_with(SHOWN + 3).show_all().to_string();
        assert_eq!(text.matches("problem ").count(), SHOWN + 3, "{text}");
        assert!(!text.contains("more error"), "{text}");
    }
}
