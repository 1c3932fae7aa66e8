//! Locating the config: `--file PATH` when given, else `mcpctl.toml` in the current
//! folder or the nearest parent that has one.

use std::path::{Path, PathBuf};

use super::Error;

pub const FILE_NAME: &str = "mcpctl.toml";

pub fn find(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return match std::fs::metadata(path) {
            Ok(_) => Ok(path.to_path_buf()),
            Err(e) => Err(Error::io(path, e)),
        };
    }
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            // Shown relative to where the user stands when it is below it.
            return Ok(candidate
                .strip_prefix(cwd)
                .map_or_else(|_| candidate.clone(), Path::to_path_buf));
        }
    }
    Err(Error::NotFound {
        name: FILE_NAME,
        start: cwd.to_path_buf(),
    })
}
