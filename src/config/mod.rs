//! The shell around the model: finding `mcpctl.toml`, reading it, editing it with
//! `toml_edit` (comments and layout kept) and writing it atomically under a lock.

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
