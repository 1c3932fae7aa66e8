//! cgroup v2 enforcement of `limits.memory` (`memory.max`) and `limits.cpu` (`cpu.max`),
//! where the daemon can make groups of its own: its group is on a cgroup2 mount, offers
//! the controller, and is writable by it (a systemd service with `Delegate=yes`, a
//! container with its own cgroup namespace, root). cgroup v2 lets only leaf groups hold
//! processes once controllers are enabled below a group, so the daemon first moves
//! itself to a leaf `mcpctl-daemon`, then enables the controllers for its group's
//! children and gives each instance a group of its own, which the shim joins before it
//! runs anything (the whole tree is inside). When its group also holds other processes
//! (a daemon started from a shell) the controllers cannot be enabled and nothing is
//! enforced there: `support` says why, and `validate`, `plan` and `status` tell it.
//! An instance's group is emptied (`cgroup.kill`) and removed when the instance ends.

pub mod parse;

use std::path::{Path, PathBuf};

/// The controllers mcpctl uses.
const CONTROLLERS: [&str; 2] = ["memory", "cpu"];
/// The daemon's own leaf inside its group.
const DAEMON_LEAF: &str = "mcpctl-daemon";

/// Whether each limit can be enforced through cgroups here, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub memory: Result<(), String>,
    pub cpu: Result<(), String>,
}

/// This process's cgroup v2 group folder, and the controllers it offers.
fn locate() -> Result<(PathBuf, String), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount = parse::v2_mount(&mountinfo).ok_or("no cgroup v2 hierarchy is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let group = parse::own_group(&own).ok_or("this process is in no cgroup v2 group")?;
    let dir = match group.trim_start_matches('/') {
        "" => mount,
        below => mount.join(below),
    };
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).map_err(|e| {
        format!(
            "cannot read {}: {e}",
            dir.join("cgroup.controllers").display()
        )
    })?;
    Ok((dir, controllers))
}

/// What can be enforced here, found without changing anything.
pub fn support() -> Support {
    let found = locate().map(|(dir, controllers)| {
        let writable = writable(&dir.join("cgroup.subtree_control"));
        (dir, controllers, writable)
    });
    let check = |name: &str| -> Result<(), String> {
        let (dir, controllers, writable) = found.as_ref().map_err(Clone::clone)?;
        if !parse::offers(controllers, name) {
            return Err(format!(
                "the cgroup v2 group {} does not offer the {name} controller (on a hybrid host it is still a v1 controller)",
                dir.display()
            ));
        }
        if !writable {
            return Err(format!(
                "the daemon cannot write to its cgroup {} (run it as a systemd service with Delegate=yes)",
                dir.display()
            ));
        }
        Ok(())
    };
    Support {
        memory: check("memory"),
        cpu: check("cpu"),
    }
}

fn writable(path: &Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(path).is_ok()
}

/// The daemon's group, prepared to hold one child group per instance.
#[derive(Debug)]
pub struct Hierarchy {
    dir: PathBuf,
    memory: bool,
    cpu: bool,
}

impl Hierarchy {
    /// Moves this process to a leaf of its group and enables the controllers for the
    /// group's children. Once per daemon, and only when a server has a limit.
    pub fn adopt() -> Result<Self, String> {
        let (dir, controllers) = locate()?;
        let wanted: Vec<&str> = CONTROLLERS
            .into_iter()
            .filter(|c| parse::offers(&controllers, c))
            .collect();
        if wanted.is_empty() {
            return Err(format!(
                "the cgroup v2 group {} offers neither the memory nor the cpu controller",
                dir.display()
            ));
        }
        let leaf = dir.join(DAEMON_LEAF);
        create_dir(&leaf)?;
        write(&leaf.join("cgroup.procs"), "0")?;
        let enable: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
        write(&dir.join("cgroup.subtree_control"), &enable.join(" ")).map_err(|e| {
            format!("{e} (other processes share the daemon's group: run it as a systemd service with Delegate=yes)")
        })?;
        Ok(Self {
            memory: wanted.contains(&"memory"),
            cpu: wanted.contains(&"cpu"),
            dir,
        })
    }

    /// A group for one instance with its limits written; the shim joins it.
    pub fn instance(
        &self,
        server: &str,
        index: u32,
        memory_bytes: Option<u64>,
        cpu_millis: Option<u64>,
    ) -> Result<Group, String> {
        let dir = self.dir.join(parse::instance_group(server, index));
        create_dir(&dir)?;
        let group = Group { dir };
        if let (Some(bytes), true) = (memory_bytes, self.memory) {
            write(&group.dir.join("memory.max"), &bytes.to_string())?;
        }
        if let (Some(millis), true) = (cpu_millis, self.cpu) {
            write(&group.dir.join("cpu.max"), &parse::cpu_max(millis))?;
        }
        Ok(group)
    }
}

/// One instance's group; emptied and removed when dropped.
#[derive(Debug)]
pub struct Group {
    dir: PathBuf,
}

impl Group {
    /// `cgroup.procs`, open for the shim to write itself into between fork and exec.
    pub fn procs(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Whatever escaped the process group (a setsid grandchild) is still in here.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        for _ in 0..10 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// Where this machine stands, for a server with `limits`: a sentence per limit that
/// cgroups cannot enforce here (empty when they can, or when no limit asks).
pub fn unenforced(
    server: &str,
    memory_bytes: Option<u64>,
    cpu_millis: Option<u64>,
    support: &Support,
) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(cpu), Err(why)) = (cpu_millis, &support.cpu) {
        out.push(format!(
            "server `{server}`: `limits.cpu = {}` is not enforced: {why}",
            cpu as f64 / 1000.0
        ));
    }
    if let (Some(_), Err(why)) = (memory_bytes, &support.memory) {
        out.push(format!(
            "server `{server}`: `limits.memory` is enforced by restarts only (two samples above it), not by memory.max: {why}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_group_gets_the_limits_the_controllers_allow() {
        let root = tempfile::tempdir().unwrap();
        let both = Hierarchy {
            dir: root.path().to_path_buf(),
            memory: true,
            cpu: true,
        };
        let group = both
            .instance("github", 2, Some(64 << 20), Some(1500))
            .unwrap();
        assert_eq!(group.dir(), root.path().join("github-2"));
        let read = |f: &str| std::fs::read_to_string(group.dir().join(f)).ok();
        assert_eq!(read("memory.max").as_deref(), Some("67108864"));
        assert_eq!(read("cpu.max").as_deref(), Some("150000 100000"));
        let memory_only = Hierarchy { cpu: false, ..both };
        let group = memory_only.instance("s", 0, None, Some(500)).unwrap();
        assert!(!group.dir().join("cpu.max").exists(), "no cpu controller");
        assert!(!group.dir().join("memory.max").exists(), "no memory limit");
    }

    #[test]
    fn what_cannot_be_enforced_is_said_with_why() {
        let none = Support {
            memory: Err("no memory controller".into()),
            cpu: Err("no cpu controller".into()),
        };
        let said = unenforced("s", Some(1 << 30), Some(1500), &none);
        assert_eq!(said.len(), 2);
        assert!(said[0].contains("`limits.cpu = 1.5` is not enforced: no cpu controller"));
        assert!(said[1].contains("restarts only"));
        let all = Support {
            memory: Ok(()),
            cpu: Ok(()),
        };
        assert!(unenforced("s", Some(1 << 30), Some(1500), &all).is_empty());
        assert!(unenforced("s", None, None, &none).is_empty());
    }
}
