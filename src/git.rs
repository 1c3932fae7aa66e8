//! The few questions mcpctl asks git, by running `git` (no library): which commit the
//! config file is at and whether it has changes that are not committed, and the file
//! as it is at a revision. A file outside a repository, or no git at all, is not an
//! error for the questions that only add information.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run git: {0}")]
    NoGit(#[source] std::io::Error),
    #[error("{} is not in a git repository", .0.display())]
    NotARepo(PathBuf),
    #[error("`{rev}` is not a commit of this repository: {why}")]
    BadRevision { rev: String, why: String },
    #[error("{file} is not in commit {commit} (`{rev}`): {why}")]
    NotInRevision {
        file: String,
        rev: String,
        commit: String,
        why: String,
    },
}

/// The folder and name git is asked about.
fn split(file: &Path) -> (&Path, String) {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    (dir, name)
}

/// `git -C DIR ARGS...`: stdout when it succeeds, else its stderr.
fn git(dir: &Path, args: &[&str]) -> Result<Result<String, String>, Error> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::NoGit)?;
    if output.status.success() {
        Ok(Ok(String::from_utf8_lossy(&output.stdout).into_owned()))
    } else {
        Ok(Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_string()))
    }
}

/// Where `file` stands in git: the commit checked out and whether the file differs
/// from it (untracked counts as modified). `None` outside a repository, in one
/// without commits, or without git.
pub fn head(file: &Path) -> Option<(String, bool)> {
    let [commit, status] = head_questions(file).map(|mut q| {
        let out = q.output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    head_from(commit, status)
}

/// The two commands [`head`] runs (for a caller that runs them its own way: the
/// daemon, whose children must be spawned where it lists them): the commit, and the
/// file's status. Their stdout goes to [`head_from`].
pub fn head_questions(file: &Path) -> [Command; 2] {
    let (dir, name) = split(file);
    let ask = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    };
    [
        ask(&["rev-parse", "--verify", "-q", "HEAD"]),
        ask(&["status", "--porcelain", "--", &name]),
    ]
}

/// PURE. [`head`]'s answer from what its two questions printed (`None`: it failed).
pub fn head_from(commit: Option<String>, status: Option<String>) -> Option<(String, bool)> {
    Some((commit?.trim().to_string(), !status?.trim().is_empty()))
}

/// The text of `file` at `rev`, with the full commit id `rev` names.
pub fn show(file: &Path, rev: &str) -> Result<(String, String), Error> {
    let (dir, name) = split(file);
    if git(dir, &["rev-parse", "--git-dir"])?.is_err() {
        return Err(Error::NotARepo(dir.to_path_buf()));
    }
    let commit = git(
        dir,
        &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
    )?
    .map_err(|why| Error::BadRevision {
        rev: rev.to_string(),
        why: if why.is_empty() {
            "unknown revision".into()
        } else {
            why
        },
    })?
    .trim()
    .to_string();
    let text = git(dir, &["show", &format!("{commit}:./{name}")])?.map_err(|why| {
        Error::NotInRevision {
            file: name.clone(),
            rev: rev.to_string(),
            commit: short(&commit).to_string(),
            why,
        }
    })?;
    Ok((commit, text))
}

/// The short form of a commit id, as status shows it.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
