//! `TestEnv`: a temp folder, files written into it, and the real binary run there.
//! On a failed expectation, everything about the run is printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestEnv {
    dir: tempfile::TempDir,
}

pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn dump(&self) -> String {
        format!(
            "mcpctl {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts the exit code and returns the run for more checks.
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "wrong exit code\n{}", self.dump());
        self
    }

    pub fn success(&self) -> &Self {
        self.code(0)
    }

    pub fn failure(&self) -> &Self {
        self.code(1)
    }

    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks `{needle}`\n{}",
            self.dump()
        );
        self
    }

    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks `{needle}`\n{}",
            self.dump()
        );
        self
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcpctl")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl TestEnv {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A folder with `mcpctl.toml` holding `config`.
    pub fn with_config(config: &str) -> Self {
        let env = Self::new();
        env.write("mcpctl.toml", config);
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("MCPCTL_FILE")
            .env_remove("MCPCTL_LOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run mcpctl");
        to_run(args, &output)
    }
}

pub fn to_run(args: &[&str], output: &Output) -> Run {
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A small valid config with one server.
pub const ONE_SERVER: &str = "version = 1\n\n[servers.echo]\ncommand = \"mcp-echo\"\nport = 8000\n";
