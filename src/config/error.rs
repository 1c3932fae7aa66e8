use std::fmt;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;

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

    /// The file (or the file as an edit would leave it) does not validate.
    #[error("{}", render_diags(.file, .source_text, .diagnostics))]
    Invalid {
        file: String,
        source_text: String,
        diagnostics: Vec<Diagnostic>,
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
        }
    }

    pub fn edit(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Self::Edit {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

fn render_diags(file: &str, source: &str, diags: &[Diagnostic]) -> impl fmt::Display {
    let text: Vec<String> = diags.iter().map(|d| d.render(file, source)).collect();
    text.join("\n")
        .trim_end()
        .trim_start_matches("error: ")
        .to_string()
}
