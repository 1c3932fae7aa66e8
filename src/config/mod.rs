//! The shell around the model: finding `mcpctl.toml`, reading it, editing it with
//! `toml_edit` (comments and layout kept) and writing it atomically under a lock.

pub mod checked_edit;
pub mod edit;
pub mod error;
pub mod find;
pub mod fmt;
pub mod store;

use std::path::{Path, PathBuf};

pub use error::Error;

use crate::model::{self, Config};

/// A file read from disk and validated.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub source: String,
    pub config: Config,
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let source = store::read(path)?;
    let config = model::parse(&source).map_err(|diags| Error::invalid(path, &source, diags))?;
    Ok(Loaded {
        path: path.to_path_buf(),
        source,
        config,
    })
}

/// Validates `source` as the file at `path` although it was read from elsewhere (a
/// git revision); `label` names it in errors.
pub fn load_text(path: &Path, label: &str, source: String) -> Result<Loaded, Error> {
    let config = model::parse(&source).map_err(|diagnostics| Error::Invalid {
        file: label.to_string(),
        source_text: source.clone(),
        diagnostics,
        all: false,
    })?;
    Ok(Loaded {
        path: path.to_path_buf(),
        source,
        config,
    })
}

/// The digest of a file's text that apply records and saved plans compare.
pub fn digest(source: &str) -> String {
    format!("blake3:{}", blake3::hash(source.as_bytes()).to_hex())
}
