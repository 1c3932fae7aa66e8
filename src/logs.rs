//! Captured server output: one size-rotated file per instance under `.mcpctl/logs/`,
//! each line `TIMESTAMP SOURCE MESSAGE` (source: `stderr`, `stdout` or `mcp` for
//! `notifications/message`). Level detection is a pure function used when reading.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::secrets::redact::Redactor;

/// A file is rotated when it reaches this size; `KEEP` old generations are kept.
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;
pub const KEEP: usize = 2;
/// Longest line kept; the rest is cut so one runaway line cannot fill the disk.
pub const MAX_LINE: usize = 16 * 1024;
/// Room beyond [`MAX_LINE`] for the note that says a line was cut.
const NOTE_ROOM: usize = 128;

/// The instance ids of `server` that have a log, in order.
pub fn instances_with_logs(runtime_dir: &Path, server: &str) -> Vec<u32> {
    let prefix = format!("{server}-");
    let mut ids: Vec<u32> = fs::read_dir(runtime_dir.join("logs"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.strip_prefix(&prefix)?
                        .strip_suffix(".log")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

pub fn log_path(runtime_dir: &Path, server: &str, index: u32) -> PathBuf {
    runtime_dir
        .join("logs")
        .join(format!("{server}-{index}.log"))
}

pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    redactor: Redactor,
    /// Also hand every line to `tracing` under this label (the server and instance;
    /// `mcpctl gateway`: a container's logs).
    tee: Option<String>,
}

impl LogWriter {
    /// Opens (appends to) a log; every line written is first cleared of `redactor`'s values.
    pub fn open(path: &Path, redactor: Redactor) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = private().open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            redactor,
            tee: None,
        })
    }

    /// Every line also goes to `tracing` (target `mcpctl::server`, field `server` the
    /// label, `stream` the source), redacted.
    pub fn tee(mut self, label: Option<String>) -> Self {
        self.tee = label;
        self
    }

    /// How many bytes of a line to read before it is cut: [`MAX_LINE`] plus the
    /// longest secret, so a secret that starts before the cut is read whole and
    /// redacted, never kept as a prefix.
    pub fn read_bound(&self) -> usize {
        MAX_LINE + self.redactor.longest()
    }

    pub fn write_line(&mut self, source: &str, message: &str) {
        self.write_head(source, message, None);
    }

    /// Writes a line; `cut`: only its first bytes, `head`, were read (at most
    /// [`Self::read_bound`]) of a line of that many bytes. Redacted first, then cut:
    /// a secret straddling the cut is matched whole.
    pub fn write_head(&mut self, source: &str, head: &str, cut: Option<usize>) {
        let head = head.trim_end_matches(['\r', '\n']);
        let redacted = self.redactor.redact(head);
        let message = if cut.is_some() || redacted.len() > MAX_LINE + NOTE_ROOM {
            let mut at = MAX_LINE.min(redacted.len());
            if cut.is_some() {
                // The head's last bytes may be a secret's beginning, its end unread:
                // shorter than the longest secret, and after every redaction.
                at = at.min(redacted.len().saturating_sub(self.redactor.longest()));
            }
            while !redacted.is_char_boundary(at) {
                at -= 1;
            }
            format!(
                "{}… (line of {} bytes cut at {at})",
                &redacted[..at],
                cut.unwrap_or(head.len())
            )
        } else {
            redacted
        };
        if let Some(server) = &self.tee {
            // At the level the line names (`ERROR ...`, `[warn] ...`), else info.
            match detect_level(&message) {
                Some(Level::Error) => {
                    tracing::error!(target: "mcpctl::server", server = %server, stream = source, "{message}")
                }
                Some(Level::Warn) => {
                    tracing::warn!(target: "mcpctl::server", server = %server, stream = source, "{message}")
                }
                Some(Level::Debug | Level::Trace) => {
                    tracing::debug!(target: "mcpctl::server", server = %server, stream = source, "{message}")
                }
                _ => {
                    tracing::info!(target: "mcpctl::server", server = %server, stream = source, "{message}")
                }
            }
        }
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        let line = format!("{stamp} {source} {message}\n");
        if self.size + line.len() as u64 > MAX_BYTES {
            self.rotate();
        }
        if self.file.write_all(line.as_bytes()).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// Writes `line` as it is (one line of a JSON-lines log: the audit's), rotated
    /// like the rest.
    pub fn write_raw(&mut self, line: &str) {
        let mut line = line.trim_end_matches(['\r', '\n']).to_string();
        line.push('\n');
        if self.size + line.len() as u64 > MAX_BYTES {
            self.rotate();
        }
        if self.file.write_all(line.as_bytes()).is_ok() {
            self.size += line.len() as u64;
        }
    }

    fn rotate(&mut self) {
        for generation in (1..KEEP).rev() {
            let _ = fs::rename(
                rotated(&self.path, generation),
                rotated(&self.path, generation + 1),
            );
        }
        let _ = fs::rename(&self.path, rotated(&self.path, 1));
        if let Ok(file) = private().open(&self.path) {
            self.file = file;
            self.size = 0;
        }
    }
}

/// Logs are their owner's alone (a server's output, the audit trail), rotated ones too.
fn private() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.create(true).append(true).mode(0o600);
    options
}

fn rotated(path: &Path, generation: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{generation}"));
    PathBuf::from(name)
}

/// The audit log of the daemon whose runtime folder is `runtime_dir`.
pub fn audit_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("audit.log")
}

/// A log and its rotated files, oldest first (those that exist).
pub fn generations(path: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = (1..=KEEP).rev().map(|g| rotated(path, g)).collect();
    all.push(path.to_path_buf());
    all.into_iter().filter(|p| p.exists()).collect()
}

/// The last `n` lines of a log, reading the newest rotated file too when needed.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let mut lines = read_tail(path, n);
    if lines.len() < n {
        let mut older = read_tail(&rotated(path, 1), n - lines.len());
        older.append(&mut lines);
        lines = older;
    }
    lines
}

fn read_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    // Read at most the last 1 MiB: enough for any reasonable `--lines`.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(1024 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // a partial first line
    }
    let skip = lines.len().saturating_sub(n);
    lines.split_off(skip)
}

/// Reads the lines added to a log file since the last read (`server logs --follow`,
/// the dashboard's log tail): a rotated file is read from its start; bytes, not
/// text, until a newline (a chunk may end inside a character, or hold invalid UTF-8).
pub struct Follower {
    file: PathBuf,
    offset: u64,
    pending: Vec<u8>,
}

/// Read per call, at most: a server that floods its log is followed a MiB at a time.
const FOLLOW_CHUNK: u64 = 1 << 20;

impl Follower {
    /// Follows `file` from its current end.
    pub fn from_end(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            offset: fs::metadata(file).map(|m| m.len()).unwrap_or(0),
            pending: Vec::new(),
        }
    }

    /// The whole lines written since the last call (invalid UTF-8 replaced).
    pub fn new_lines(&mut self) -> Vec<String> {
        self.new_lines_at_most(FOLLOW_CHUNK)
    }

    /// [`Self::new_lines`], reading at most `chunk` bytes (the rest at the next call).
    pub fn new_lines_at_most(&mut self, chunk: u64) -> Vec<String> {
        let len = fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // rotated
        }
        if len == self.offset {
            return Vec::new();
        }
        let Ok(mut f) = fs::File::open(&self.file) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let _ = f.take(chunk).read_to_end(&mut bytes);
        self.offset += bytes.len() as u64;
        self.pending.extend_from_slice(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let bytes: Vec<u8> = self.pending.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&bytes[..end]).into_owned());
        }
        if self.pending.len() > 4 * MAX_LINE {
            self.pending.clear(); // not a line of ours
        }
        lines
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn from_word(word: &str) -> Option<Self> {
        let word = word
            .trim_matches(|c: char| !c.is_ascii_alphabetic())
            .to_ascii_lowercase();
        Some(match word.as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" | "notice" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "err" | "critical" | "crit" | "fatal" | "alert" | "emergency" | "panic" => {
                Level::Error
            }
            _ => return None,
        })
    }
}

/// The level of a captured line's message: a JSON `level` field, or a leading word
/// such as `ERROR`, `[warn]` or `INFO:` (MCP log levels included).
pub fn detect_level(message: &str) -> Option<Level> {
    let message = message.trim_start();
    if message.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(message)
    {
        return map
            .get("level")
            .or_else(|| map.get("severity"))
            .and_then(serde_json::Value::as_str)
            .and_then(Level::from_word);
    }
    message.split_whitespace().next().and_then(Level::from_word)
}

/// The message part of a stored line (after timestamp and source).
pub fn message_of(line: &str) -> &str {
    line.splitn(3, ' ').nth(2).unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_common_formats() {
        assert_eq!(detect_level("ERROR something broke"), Some(Level::Error));
        assert_eq!(detect_level("[warn] careful"), Some(Level::Warn));
        assert_eq!(detect_level("INFO: hello"), Some(Level::Info));
        assert_eq!(
            detect_level(r#"{"level":"debug","msg":"x"}"#),
            Some(Level::Debug)
        );
        assert_eq!(
            detect_level(r#"{"severity":"CRITICAL"}"#),
            Some(Level::Error)
        );
        assert_eq!(detect_level("warning something"), Some(Level::Warn));
        assert_eq!(detect_level("just text"), None);
        assert_eq!(detect_level("mcp-echo: error later"), None);
    }

    /// Issue 28: a line was cut before it was redacted, so a secret straddling the
    /// cut left its prefix in the log.
    #[test]
    fn a_secret_straddling_the_cut_is_redacted_whole() {
        use age::secrecy::SecretString;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/s-0.log");
        let secret = format!("Sx{}", "q".repeat(60));
        let redactor = Redactor::new(&[SecretString::from(secret.clone())]);
        let mut w = LogWriter::open(&path, redactor).unwrap();
        // Across MAX_LINE, in a line the writer was given whole.
        let line = format!("{}{secret}{}", "a".repeat(MAX_LINE - 20), "b".repeat(500));
        w.write_line("stderr", &line);
        // Across the read bound, in a line only its head of was read.
        let bound = w.read_bound();
        let head = format!("{}{}", "a".repeat(bound - 30), &secret[..30]);
        w.write_head("stderr", &head, Some(1 << 20));
        let log = fs::read_to_string(&path).unwrap();
        assert!(!log.contains("Sxqq"), "{}", &log[log.len() - 300..]);
        assert!(log.contains("(line of 1048576 bytes cut at"), "{log}");
        assert!(log.lines().all(|l| l.len() <= MAX_LINE + NOTE_ROOM + 64));
    }

    #[test]
    fn rotation_keeps_recent_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/s-0.log");
        let mut w = LogWriter::open(&path, Redactor::default()).unwrap();
        let long = "x".repeat(1000);
        let lines = (MAX_BYTES / 1000) as usize + 50;
        for i in 0..lines {
            w.write_line("stderr", &format!("{i} {long}"));
        }
        assert!(rotated(&path, 1).exists());
        let last = tail(&path, 3);
        assert_eq!(last.len(), 3);
        assert!(
            message_of(&last[2]).starts_with(&format!("{} ", lines - 1)),
            "{}",
            &last[2][..40]
        );
        assert!(fs::metadata(&path).unwrap().len() <= MAX_BYTES);
    }

    #[test]
    fn logs_and_their_rotated_files_are_their_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut writer = LogWriter::open(&path, Redactor::new([])).unwrap();
        let line = "x".repeat(64 * 1024);
        for _ in 0..(MAX_BYTES / (64 * 1024) + 2) {
            writer.write_raw(&line);
        }
        for file in [path.clone(), rotated(&path, 1)] {
            let mode = fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}", file.display());
        }
    }
}
