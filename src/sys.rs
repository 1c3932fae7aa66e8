//! The few Linux process calls the supervisor needs, as safe functions. All `unsafe`
//! of the crate lives here, each call with the reason it is sound.
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

pub use libc::{SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGTERM, SIGUSR1, SIGUSR2};

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Ask the kernel to send `signal` to this process when the thread that forked it exits.
pub fn set_parent_death_signal(signal: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::c_ulong::try_from(signal).unwrap_or(0),
        )
    })
}

/// Other processes of this user (the servers this process runs among them) may no
/// longer read its memory or `/proc/PID/environ`, nor attach to it.
pub fn forbid_inspection() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes a flag and touches no memory.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong) })
}

/// Orphaned descendants are re-parented to this process instead of init.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a flag and touches no memory.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) })
}

/// This process ignores SIGTERM from now on (the echo fixture's `--ignore-sigterm`).
pub fn ignore_sigterm() {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

pub fn getppid() -> u32 {
    // SAFETY: getppid cannot fail.
    u32::try_from(unsafe { libc::getppid() }).unwrap_or(0)
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Sends `signal` to `pid`. A process that no longer exists is not an error.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Ok(());
    };
    if pid <= 0 {
        return Ok(());
    }
    // SAFETY: kill takes plain integers; pid > 0 so it never targets a group by accident.
    match check(unsafe { libc::kill(pid, signal) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}

/// Sends `signal` to every process of group `pgid`.
pub fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return Ok(());
    };
    if pgid <= 1 {
        return Ok(());
    }
    // SAFETY: killpg takes plain integers; pgid > 1 excludes "my own group" and init.
    match check(unsafe { libc::killpg(pgid, signal) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}

/// A set of blocked signals to wait for synchronously.
pub struct SignalSet(libc::sigset_t);

/// Blocks `signals` for this thread (and threads it starts) and returns the set to wait on.
pub fn block_signals(signals: &[i32]) -> io::Result<SignalSet> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, initialised sigset_t for all three calls.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let ret = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
    }
    Ok(SignalSet(set))
}

/// Marks every descriptor from 3 up close-on-exec, so a child gets only its stdio.
/// Async-signal-safe: for use between fork and exec (the descriptor std uses to
/// report a failed exec is close-on-exec already, so it keeps working).
fn cloexec_from_3() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } == 0;
    if done {
        return;
    }
    // Kernels before 5.11: each descriptor up to the limit (bounded, so a huge limit
    // cannot stall a start).
    // SAFETY: sysconf and fcntl take integers and touch no memory of ours.
    unsafe {
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(0, 65_536);
        for fd in 3..libc::c_int::try_from(max).unwrap_or(1024) {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// How the shim starts the server: no signal blocked (a blocked mask is inherited
/// across exec, and std does not always clear it, so the server would otherwise never
/// see SIGTERM), SIGKILL when the shim dies (so a killed shim orphans nothing; if the
/// shim is already gone the start fails), and only stdio inherited.
pub fn prepare_server_exec(command: &mut std::process::Command, shim_pid: u32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (sigemptyset, pthread_sigmask, prctl, getppid, close_range/fcntl) and allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if u32::try_from(libc::getppid()).ok() != Some(shim_pid) {
                return Err(io::Error::other("the shim died before the server started"));
            }
            cloexec_from_3();
            Ok(())
        });
    }
}

/// For a process that must outlive its caller's terminal and pipes (the daemon): a
/// session of its own (no terminal signals, no job control) and only stdio inherited,
/// so `x=$(mcpctl apply)` returns once `apply` does.
pub fn detach_on_exec(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and close_range/fcntl are async-signal-safe and allocate nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            cloexec_from_3();
            Ok(())
        });
    }
}

/// Only stdio reaches the child (the shim): descriptors the daemon inherited from
/// whoever started it stay with the daemon.
pub fn stdio_only_on_exec(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range/fcntl are async-signal-safe and allocate nothing.
    unsafe {
        command.pre_exec(|| {
            cloexec_from_3();
            Ok(())
        });
    }
}

/// Waits up to `timeout` for one of the blocked signals; `None` on timeout.
/// And the value sent with it by [`queue_signal`] (0 for a plain signal).
pub fn wait_signal(set: &SignalSet, timeout: Duration) -> Option<(i32, usize)> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: siginfo_t is plain data that sigtimedwait fills in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: all three pointers refer to live, initialised values.
    let sig = unsafe { libc::sigtimedwait(&set.0, &mut info, &ts) };
    if sig <= 0 {
        return None;
    }
    // SAFETY: si_value is read from a siginfo the kernel filled for this signal; for
    // a signal sent without a value it is zero (the struct was zeroed).
    let value = unsafe { info.si_value().sival_ptr } as usize;
    Some((sig, value))
}

/// Sends `signal` to `pid` with `value` attached (the shim reads it with
/// [`wait_signal`]). A process that no longer exists is not an error.
pub fn queue_signal(pid: u32, signal: i32, value: usize) -> io::Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Ok(());
    };
    if pid <= 0 {
        return Ok(());
    }
    let value = libc::sigval {
        sival_ptr: value as *mut libc::c_void,
    };
    // SAFETY: sigqueue takes integers and a sigval by value; pid > 0 targets one process.
    match check(unsafe { libc::sigqueue(pid, signal, value) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}

pub enum Reaped {
    /// A child ended: pid and its shell-style exit code (128 + signal when killed).
    Child(u32, i32),
    /// Children exist but none has ended.
    Running,
    /// No children at all.
    NoChildren,
}

/// Reaps one ended child without blocking.
pub fn reap_any() -> Reaped {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid out-pointer; WNOHANG keeps the call from blocking.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    match pid {
        0 => Reaped::Running,
        -1 => Reaped::NoChildren,
        pid => {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            Reaped::Child(u32::try_from(pid).unwrap_or(0), code)
        }
    }
}

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    pub pgrp: u32,
    /// Clock ticks after boot; with the pid, identifies a process across pid reuse.
    pub start_time: u64,
    pub zombie: bool,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses a stat line; the command name may hold spaces and parentheses, so fields
/// are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        zombie: *fields.first()? == "Z",
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Processes whose parent is `parent` (zombies included), oldest first.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut children: Vec<(u64, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| {
            let s = proc_stat(p)?;
            (s.ppid == parent).then_some((s.start_time, p))
        })
        .collect();
    children.sort_unstable();
    children.into_iter().map(|(_, p)| p).collect()
}

/// Reaps `pid` if it is a child of ours that has ended; never blocks, and never
/// touches another child (so it cannot steal a status some thread waits for).
pub fn reap_if_ended(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid out-pointer; WNOHANG keeps the call from blocking.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
}

/// The socket inodes `pid` holds open (from `/proc/PID/fd`; none when unreadable).
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| {
                    let link = std::fs::read_link(e.path()).ok()?;
                    let link = link.to_str()?;
                    link.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Points this process's stdin and stdout at /dev/null (the shim, once the server
/// runs: its own copies of the server's pipes would keep them open after the server
/// closed them, and the daemon would never see the end of the server's output).
pub fn stdin_stdout_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in [0, 1] {
        // SAFETY: dup2 takes two descriptors; `null` is open for the whole call.
        check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// Live (non-zombie) processes in group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| proc_stat(p).is_some_and(|s| s.pgrp == pgid && !s.zombie))
        .collect()
}

/// The soft limit of open descriptors, raised to the hard limit first (the gateway
/// holds one per connection); `None` when it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write one rlimit that lives on the stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// The child gets at most `limit` open descriptors (soft and hard), set between fork
/// and exec (`limits.nofile`: the shim and the server it runs inherit it).
pub fn limit_open_files_on_exec(command: &mut std::process::Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: setrlimit is async-signal-safe and reads one rlimit copied into the closure.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the child join the cgroup whose `cgroup.procs` is `procs` between fork and
/// exec, so that everything it starts is inside from its first instruction.
pub fn join_cgroup_on_exec(command: &mut std::process::Command, procs: std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: write(2) is async-signal-safe; the file stays open in the closure (it is
    // close-on-exec, so the server does not inherit it).
    unsafe {
        command.pre_exec(move || {
            let fd = procs.as_raw_fd();
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The soft limit of open descriptors.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit that lives on the stack.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
}

/// Whether `fd`'s open file description is non-blocking (`None`: not an open fd).
pub fn is_nonblocking(fd: i32) -> Option<bool> {
    // SAFETY: F_GETFL reads the flags of a descriptor and touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    (flags >= 0).then_some(flags & libc::O_NONBLOCK != 0)
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description (which every process
/// holding it shares: a parent that gave it as stdin sees the change).
pub fn set_nonblocking(fd: i32, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL read and write a descriptor's flags, no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if wanted != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many processors are online (1 when the system does not say).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf takes a name and touches no memory.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// The epoll instance of this process that watches descriptor `target`, found from
/// `/proc/self/fdinfo` (none when it cannot be read or none does).
pub fn epoll_watching(target: i32) -> Option<i32> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    dir.filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|link| link.as_os_str() == "anon_inode:[eventpoll]")
        })
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .find(|epoll: &i32| {
            std::fs::read_to_string(format!("/proc/self/fdinfo/{epoll}"))
                .is_ok_and(|info| watches(&info, target))
        })
}

/// Whether an epoll instance's fdinfo lists `target` (`tfd: N events: ...` lines).
fn watches(fdinfo: &str, target: i32) -> bool {
    fdinfo.lines().any(|line| {
        line.strip_prefix("tfd:")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|fd| fd.parse::<i32>().ok())
            == Some(target)
    })
}

/// Whether `fd` is readable right now; never blocks (an epoll descriptor is readable
/// while it has events to hand out).
pub fn readable_now(fd: i32) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd that lives through the call, a count of one, timeout zero.
    unsafe { libc::poll(&mut poll, 1, 0) > 0 }
}

/// Moves this process into a network namespace of its own, with only a loopback
/// interface (up): what it binds, even on every interface, no other process of the
/// machine can reach. Without the privilege for a bare network namespace, a user
/// namespace comes with it, mapping only this process's own user and group (so files
/// keep their owners). The process must still be single-threaded (a user namespace
/// refuses threaded callers).
pub fn isolate_network() -> io::Result<()> {
    // SAFETY: unshare takes flags and touches no memory.
    let bare = check(unsafe { libc::unshare(libc::CLONE_NEWNET) });
    if bare.is_err() {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // SAFETY: as above.
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) })?;
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    }
    loopback_up()
}

/// Brings `lo` up in this process's network namespace (127.0.0.1 and ::1 come with it).
fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket takes constants; the descriptor is owned (and closed) below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    // SAFETY: `raw` is a descriptor this function just opened and nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data for which all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of the ifreq
    // passed, which lives for both calls.
    unsafe {
        check(libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut request,
        ))?;
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &request,
        ))
    }
}

/// A new, unconnected IPv4 TCP socket (close-on-exec), in this process's network
/// namespace: connected later, by whoever it is passed to, it reaches this namespace.
pub fn tcp_socket() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket takes constants; the descriptor is owned by the result.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    // SAFETY: `raw` was just opened and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}

/// Sends `fd` over the Unix socket `socket` (SCM_RIGHTS), with one byte of data.
/// A message of one data byte (`iov`) and a control buffer (`space`, room for one
/// descriptor's control message, aligned as cmsghdr wants) of `controllen` bytes.
fn fd_message(iov: &mut libc::iovec, space: &mut [u64; 8], controllen: usize) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all zeroes is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = controllen.min(std::mem::size_of_val(space)) as _;
    msg
}

pub fn send_fd(socket: i32, fd: i32) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    // SAFETY: CMSG_SPACE computes a size from a constant.
    let needed = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let msg = fd_message(&mut iov, &mut space, needed);
    // SAFETY: the control buffer is large enough for one descriptor (CMSG_SPACE of an
    // int is 24 bytes, the buffer 64) and aligned to 8; CMSG_FIRSTHDR/CMSG_DATA point
    // inside it; sendmsg reads `msg`, `iov` and the buffer, which outlive the call.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        if header.is_null() {
            return Err(io::Error::other("no room for a control message"));
        }
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<i32>(), fd);
        if libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`], without waiting (`WouldBlock` when
/// none has arrived); it is close-on-exec. `Ok(None)`: the other end closed.
pub fn recv_fd(socket: i32) -> io::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    let mut msg = fd_message(&mut iov, &mut space, 64);
    // SAFETY: recvmsg writes at most iov_len bytes to `byte` and msg_controllen bytes
    // to `space`, both alive for the call.
    let n = unsafe {
        libc::recvmsg(
            socket,
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n == -1 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled `msg`'s control buffer; CMSG_FIRSTHDR/CMSG_NXTHDR walk
    // it within msg_controllen, and an SCM_RIGHTS message's data holds descriptors
    // this process now owns.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<i32>());
                return Ok(Some(std::os::fd::OwnedFd::from_raw_fd(fd)));
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    Err(io::Error::other("a message without a descriptor"))
}

/// Turns the terminal's echo on standard input on or off (a secret typed at a
/// prompt is not shown). Returns whether it was on.
pub fn set_stdin_echo(on: bool) -> io::Result<bool> {
    // SAFETY: termios is plain data; tcgetattr fills it before it is read.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 and a valid pointer to a termios this frame owns.
    check(unsafe { libc::tcgetattr(0, &mut term) })?;
    let was = term.c_lflag & libc::ECHO != 0;
    if on {
        term.c_lflag |= libc::ECHO;
    } else {
        term.c_lflag &= !libc::ECHO;
    }
    // SAFETY: as above; TCSANOW applies the change at once.
    check(unsafe { libc::tcsetattr(0, libc::TCSANOW, &term) })?;
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1 1";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            (stat.ppid, stat.pgrp, stat.start_time, stat.zombie),
            (7, 42, 123456, false)
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn fdinfo_lines_name_the_watched_descriptors() {
        let info = "pos:\t0\nflags:\t02000002\ntfd:        4 events:       19 data:  4  pos:0 ino:774f sdev:9\ntfd:       12 events: 19 data: c\n";
        assert!(watches(info, 4) && watches(info, 12));
        assert!(!watches(info, 1) && !watches(info, 19));
        assert!(!watches("garbage\ntfd:\n", 0));
    }

    #[test]
    fn the_epoll_watching_a_descriptor_is_found_and_readable_only_with_events() {
        use std::os::fd::AsRawFd;
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epoll >= 0);
        let (reader, mut writer) = std::io::pipe().unwrap();
        assert_eq!(epoll_watching(reader.as_raw_fd()), None);
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: both descriptors are open; the event outlives the call.
        let added =
            unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, reader.as_raw_fd(), &mut event) };
        assert_eq!(added, 0);
        assert_eq!(epoll_watching(reader.as_raw_fd()), Some(epoll));
        assert!(!readable_now(epoll));
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        assert!(readable_now(epoll));
        // SAFETY: closes the descriptor this test opened, once.
        unsafe { libc::close(epoll) };
    }

    #[test]
    fn this_process_is_visible() {
        let me = std::process::id();
        let stat = proc_stat(me).unwrap();
        assert_eq!(stat.ppid, getppid());
        assert!(all_pids().contains(&me));
    }
}
