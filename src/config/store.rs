//! Reading and writing the file safely. Writes are atomic (temp file in the same
//! folder, fsync, rename, fsync of the folder) and serialised by a lock on a sidecar
//! file in `.mcpctl/`: locking `mcpctl.toml` itself would not work, because the rename
//! swaps the inode under the lock. Knows nothing of what an edit means.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Error;

/// The most mcpctl reads of a file it does not own (a client's config, a backup): a
/// real one is KiB; a bigger one is refused before it is read into memory.
pub const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// The bytes of `path`, refused (with its size) when over `max`. Read through a
/// bound too, so a file that grows while it is read cannot go past it.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let too_big = |len: u64| {
        Error::edit(
            format!(
                "{} is {len} bytes, over the {} MiB mcpctl reads of it",
                path.display(),
                max / (1024 * 1024)
            ),
            Some("is it the right file? name another with --config-path or --input".to_string()),
        )
    };
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > max {
        return Err(too_big(len));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_bounded`] as text.
pub fn read_text_bounded(path: &Path, max: u64) -> Result<String, Error> {
    String::from_utf8(read_bounded(path, max)?).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })
}

/// The runtime folder beside the config (state, logs, locks); ignored by git.
pub const RUNTIME_DIR: &str = ".mcpctl";

pub fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// The runtime folder of `config`: `.mcpctl/` beside `mcpctl.toml`, and
/// `.mcpctl/NAME/` beside any other config file, so that two configs in one folder
/// (each with its own daemon) never share a lock, socket or state.
pub fn runtime_dir(config: &Path) -> PathBuf {
    let base = shared_runtime_dir(config);
    match config.file_name().and_then(|n| n.to_str()) {
        Some(name) if name != crate::config::find::FILE_NAME => base.join(name),
        _ => base,
    }
}

/// `.mcpctl/` beside `config`, whatever its name.
pub fn shared_runtime_dir(config: &Path) -> PathBuf {
    parent_dir(config).join(RUNTIME_DIR)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Runs `edit` on the file's text under the lock and writes the result when it
/// differs. Returns whether the file changed. On any error the file is untouched.
pub fn update<F>(path: &Path, edit: F) -> Result<bool, Error>
where
    F: FnOnce(&str) -> Result<String, Error>,
{
    let _lock = lock(path)?;
    let before = read(path)?;
    let after = edit(&before)?;
    if after == before {
        return Ok(false);
    }
    write_atomic(path, &after)?;
    Ok(true)
}

/// Holds an exclusive lock on `.mcpctl/<file name>.lock` until dropped.
pub struct Lock(#[allow(dead_code)] File);

pub fn lock(config: &Path) -> Result<Lock, Error> {
    let dir = runtime_dir(config);
    create_private_dir(&dir)?;
    let name = config
        .file_name()
        .map_or_else(|| "mcpctl.toml".into(), |n| n.to_string_lossy());
    let lock_path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    file.lock().map_err(|e| Error::io(&lock_path, e))?;
    Ok(Lock(file))
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Replaces `path` with `contents` so that readers see the old or the new file,
/// never a mix, and a crash loses neither. Keeps the file's permissions.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), Error> {
    replace(path, contents, Durability::Synced)
}

/// [`write_atomic`] for the daemon's own runtime files (state, pid): readers still see
/// the old or the new file, but nothing waits for the disk. They matter only while
/// the machine runs (a power loss ends the processes they describe too).
pub fn write_runtime(path: &Path, contents: &str) -> Result<(), Error> {
    replace(path, contents, Durability::Volatile)
}

#[derive(PartialEq)]
enum Durability {
    Synced,
    Volatile,
}

fn replace(path: &Path, contents: &str, durability: Durability) -> Result<(), Error> {
    // A symlink (a dotfiles checkout, say) is written through: its target changes, and
    // the link stays a link.
    let target = fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| fs::canonicalize(path).ok());
    let path = target.as_deref().unwrap_or(path);
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".mcpctl-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, without_temp_path(e)))?;
    if let Ok(meta) = fs::metadata(path) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.write_all(contents.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    if durability == Durability::Synced {
        tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if durability == Durability::Synced {
        sync_dir(dir)?;
    }
    Ok(())
}

/// tempfile's error names the temp file it could not make (`.mcpctl-UD9zdp.tmp`), an
/// internal name: the error the OS gave, for the caller to name the file it asked for.
fn without_temp_path(e: std::io::Error) -> std::io::Error {
    // Its error is `{os error} at path "{temp}"`, with no way to the OS error but text.
    let text = e.to_string();
    match text.rsplit_once(" at path \"") {
        Some((message, _)) => std::io::Error::new(e.kind(), message.to_string()),
        None => e,
    }
}

/// Creates `path` with `contents`, refusing to replace an existing file.
pub fn create_new(path: &Path, contents: &str) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))?;
    sync_dir(parent_dir(path))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_file_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("mcpctl.toml"), "old").unwrap();
        let link = dir.path().join("mcpctl.toml");
        std::os::unix::fs::symlink(real.join("mcpctl.toml"), &link).unwrap();
        write_atomic(&link, "new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(real.join("mcpctl.toml")).unwrap(), "new");
        // A plain file is replaced as before.
        let plain = dir.path().join("plain.toml");
        fs::write(&plain, "a").unwrap();
        write_atomic(&plain, "b").unwrap();
        assert_eq!(fs::read_to_string(&plain).unwrap(), "b");
    }
}
