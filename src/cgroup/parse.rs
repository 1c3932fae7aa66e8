//! What the kernel's cgroup files say, read without touching them: where the cgroup2
//! hierarchy is mounted, which group a process is in, which controllers it offers, and
//! the values `memory.max` and `cpu.max` take.

use std::path::PathBuf;

/// The group of a process in the unified (v2) hierarchy, from `/proc/PID/cgroup`
/// (its `0::/PATH` line).
pub fn own_group(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim)
        .filter(|path| path.starts_with('/'))
}

/// Where a cgroup2 file system is mounted, from `/proc/self/mountinfo`: the one at
/// `/sys/fs/cgroup` when there are several (a hybrid host also has `.../unified`).
pub fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            (fs.split_whitespace().next()? == "cgroup2").then_some(())?;
            fields.split_whitespace().nth(4)
        })
        .collect();
    let best = mounts
        .iter()
        .find(|m| **m == "/sys/fs/cgroup")
        .or_else(|| mounts.first())?;
    Some(PathBuf::from(unescape(best)))
}

/// mountinfo escapes space, tab, newline and backslash as `\\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `cgroup.controllers` offers `name`.
pub fn offers(controllers: &str, name: &str) -> bool {
    controllers.split_whitespace().any(|c| c == name)
}

/// `cpu.max` for `millis` thousandths of a core: the quota per 100 ms period.
pub fn cpu_max(millis: u64) -> String {
    const PERIOD_US: u64 = 100_000;
    let quota = (millis.saturating_mul(PERIOD_US) / 1000).max(1000);
    format!("{quota} {PERIOD_US}")
}

/// A group name for an instance: the server's name is already `[a-z0-9_-]`.
pub fn instance_group(server: &str, index: u32) -> String {
    format!("{server}-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_group_and_mount_are_found_on_pure_and_hybrid_hosts() {
        assert_eq!(
            own_group("0::/user.slice/app.service\n"),
            Some("/user.slice/app.service")
        );
        let hybrid = "12:memory:/x\n4:cpu:/\n0::/\n";
        assert_eq!(own_group(hybrid), Some("/"));
        assert_eq!(own_group("4:cpu:/\n"), None, "v1 only");
        let mountinfo = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        assert_eq!(
            v2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n31 1 0:27 / /mnt/with\\040space rw - cgroup2 none rw\n";
        assert_eq!(v2_mount(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        let spaced = "31 1 0:27 / /mnt/with\\040space rw - cgroup2 none rw\n";
        assert_eq!(v2_mount(spaced), Some(PathBuf::from("/mnt/with space")));
        assert_eq!(v2_mount("garbage\n\n - \n"), None);
    }

    #[test]
    fn controllers_and_limit_values() {
        assert!(offers("cpuset cpu io memory pids\n", "memory"));
        assert!(offers("cpuset cpu io memory pids", "cpu"));
        assert!(!offers("cpuset io", "cpu"), "cpuset is not cpu");
        assert!(!offers("hugetlb\n", "memory"));
        assert_eq!(cpu_max(1500), "150000 100000");
        assert_eq!(cpu_max(250), "25000 100000");
        assert_eq!(
            cpu_max(1),
            "1000 100000",
            "the kernel's minimum quota is 1 ms"
        );
        assert_eq!(instance_group("github", 3), "github-3");
    }
}
