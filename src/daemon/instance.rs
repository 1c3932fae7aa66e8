//! One instance of a server: a handle (control messages, a watch of its state) and
//! the task that runs it through the shim, probes it, captures its output, applies
//! the restart policy and stops it gracefully.

use std::collections::BTreeMap;
use std::path::PathBuf;

use age::secrecy::{ExposeSecret, SecretString};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::inner_port;
use super::logs::{self, LogWriter, detect_level};
use super::policy::{Decision, Ending, Tracker};
use super::spawner::Spawner;
use crate::gateway::era::{self, Era};
use crate::gateway::lines::BoundedLines;
use crate::gateway::{SUPPORTED_VERSIONS, Upstream, mux};
use crate::model::ServerSpec;
use crate::model::spec::{Mode, Transport};
use crate::secrets::redact::Redactor;
use crate::sys;

/// Everything an instance needs, none of it shared with other instances but the spawner.
#[derive(Clone)]
pub struct InstanceCtx {
    pub spec: ServerSpec,
    pub index: u32,
    pub config_dir: PathBuf,
    pub log_path: PathBuf,
    pub daemon_pid: u32,
    pub shim: crate::shim::ShimCommand,
    pub spawner: Spawner,
    /// Poked whenever something worth persisting changed (a new pid).
    pub changed: Arc<Notify>,
    /// For servers that speak HTTP themselves: the port they listen on, behind the
    /// gateway's (given to them as `{port}` in args and `PORT` in env).
    pub inner_port: Option<u16>,
    /// This server's secrets, handed to the process as environment variables only.
    pub secrets: BTreeMap<String, SecretString>,
    /// Removes every known secret from what is logged.
    pub redactor: Redactor,
}

pub enum Control {
    Stop {
        force: bool,
        timeout: Duration,
        done: oneshot::Sender<()>,
    },
    /// Adopt fields that need no restart (restart policy, timeouts).
    Update(Box<ServerSpec>),
}

pub use crate::api::Phase;

#[derive(Debug, Clone)]
pub struct View {
    pub phase: Phase,
    /// The shim's pid (what the daemon signals and records).
    pub pid: Option<u32>,
    /// The server's own pid: the shim's child, once it runs.
    pub server_pid: Option<u32>,
    /// `/proc` start time of the shim, to recognise it after a daemon restart.
    pub start_ticks: Option<u64>,
    pub started_at: Option<SystemTime>,
    pub restarts: u32,
    pub attempts: u32,
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
    /// The shared stdio channel of a running stdio server, for the gateway.
    pub upstream: Option<Upstream>,
    /// Where a server that speaks HTTP itself listens, behind the gateway.
    pub inner_port: Option<u16>,
}

#[derive(Clone)]
pub struct Handle {
    /// The instance's id: unique among the server's instances for the daemon's life.
    pub index: u32,
    control: mpsc::Sender<Control>,
    pub view: watch::Receiver<View>,
}

pub fn start(ctx: InstanceCtx) -> Handle {
    let (control, rx) = mpsc::channel(8);
    let (tx, view) = watch::channel(View {
        phase: Phase::Starting,
        pid: None,
        server_pid: None,
        start_ticks: None,
        started_at: None,
        restarts: 0,
        attempts: 0,
        last_exit: None,
        last_error: None,
        upstream: None,
        inner_port: ctx.inner_port,
    });
    let index = ctx.index;
    tokio::spawn(run(ctx, rx, tx));
    Handle {
        index,
        control,
        view,
    }
}

impl Handle {
    /// Stops the instance and waits until its process group is gone.
    pub async fn stop(&self, force: bool, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self
            .control
            .send(Control::Stop {
                force,
                timeout,
                done,
            })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    pub async fn update(&self, spec: &ServerSpec) {
        let _ = self
            .control
            .send(Control::Update(Box::new(spec.clone())))
            .await;
    }

    /// Waits until the first start has succeeded or failed.
    pub async fn settled(&self) -> View {
        let mut view = self.view.clone();
        let settled = view
            .wait_for(|v| {
                v.phase == Phase::Running || (v.attempts >= 1 && v.phase != Phase::Starting)
            })
            .await
            .map(|v| v.clone());
        settled.unwrap_or_else(|_| view.borrow().clone())
    }
}

/// How one run of the process ended.
enum Once {
    Ended { ending: Ending, uptime: Duration },
    Stopped,
}

async fn run(
    mut ctx: InstanceCtx,
    mut control: mpsc::Receiver<Control>,
    view: watch::Sender<View>,
) {
    let log = match LogWriter::open(&ctx.log_path, ctx.redactor.clone()) {
        Ok(w) => Some(Arc::new(Mutex::new(w))),
        Err(e) => {
            tracing::warn!("cannot open {}: {e}", ctx.log_path.display());
            None
        }
    };
    let mut tracker = Tracker::default();
    loop {
        tracker.record_start(Instant::now());
        view.send_modify(|v| {
            v.phase = Phase::Starting;
            v.attempts += 1;
            v.pid = None;
        });
        let decision = match run_once(&mut ctx, &mut control, &view, log.clone()).await {
            Once::Stopped => break,
            Once::Ended { ending, uptime } => {
                tracker.on_exit(ctx.spec.restart, ending, uptime, Instant::now())
            }
        };
        view.send_modify(|v| {
            v.pid = None;
            v.server_pid = None;
            v.upstream = None;
        });
        match decision {
            Decision::Restart { after } => {
                view.send_modify(|v| {
                    v.phase = Phase::Backoff;
                    v.restarts += 1;
                });
                if !sleep_unless_stopped(&mut ctx, &mut control, after).await {
                    break;
                }
            }
            Decision::CrashLoop => {
                view.send_modify(|v| v.phase = Phase::CrashLoop);
                wait_for_stop(&mut ctx, &mut control).await;
                break;
            }
            Decision::Stay => {
                view.send_modify(|v| v.phase = Phase::Exited);
                wait_for_stop(&mut ctx, &mut control).await;
                break;
            }
        }
    }
    view.send_modify(|v| {
        v.phase = Phase::Stopped;
        v.pid = None;
    });
}

/// Sleeps for `time`; false when a stop arrived first (and was acknowledged).
async fn sleep_unless_stopped(
    ctx: &mut InstanceCtx,
    control: &mut mpsc::Receiver<Control>,
    time: Duration,
) -> bool {
    let sleep = tokio::time::sleep(time);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            msg = control.recv() => match msg {
                Some(Control::Update(spec)) => ctx.spec = *spec,
                Some(Control::Stop { done, .. }) => {
                    let _ = done.send(());
                    return false;
                }
                None => return false,
            },
        }
    }
}

async fn wait_for_stop(ctx: &mut InstanceCtx, control: &mut mpsc::Receiver<Control>) {
    while let Some(msg) = control.recv().await {
        match msg {
            Control::Update(spec) => ctx.spec = *spec,
            Control::Stop { done, .. } => {
                let _ = done.send(());
                return;
            }
        }
    }
}

/// How often a remote server's address is checked.
const REMOTE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// `host:port` of an `http(s)://` URL.
fn authority(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

async fn reachable(host: &str, port: u16) -> Result<(), String> {
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{host}:{port} unreachable: {e}")),
        Err(_) => Err(format!("{host}:{port} did not answer within 5s")),
    }
}

/// A remote server runs nothing: it is ready when its address accepts connections,
/// and checked every few seconds after that (the result shows in status).
async fn watch_remote(
    ctx: &mut InstanceCtx,
    control: &mut mpsc::Receiver<Control>,
    view: &watch::Sender<View>,
) -> Once {
    let Some((host, port)) = ctx.spec.url.as_deref().and_then(authority) else {
        view.send_modify(|v| v.last_error = Some("the url has no host".into()));
        return Once::Ended {
            ending: Ending::NotReady,
            uptime: Duration::ZERO,
        };
    };
    if let Err(why) = reachable(&host, port).await {
        view.send_modify(|v| v.last_error = Some(why));
        return Once::Ended {
            ending: Ending::NotReady,
            uptime: Duration::ZERO,
        };
    }
    view.send_modify(|v| {
        v.phase = Phase::Running;
        v.started_at = Some(SystemTime::now());
    });
    loop {
        tokio::select! {
            () = tokio::time::sleep(REMOTE_CHECK_EVERY) => {
                let health = reachable(&host, port).await.err();
                view.send_modify(|v| v.last_error = health);
            }
            msg = control.recv() => match msg {
                Some(Control::Update(spec)) => ctx.spec = *spec,
                Some(Control::Stop { done, .. }) => {
                    let _ = done.send(());
                    return Once::Stopped;
                }
                None => return Once::Stopped,
            },
        }
    }
}

async fn run_once(
    ctx: &mut InstanceCtx,
    control: &mut mpsc::Receiver<Control>,
    view: &watch::Sender<View>,
    log: Option<SharedLog>,
) -> Once {
    if ctx.spec.mode == Mode::Remote {
        return watch_remote(ctx, control, view).await;
    }
    let mut spawned = match ctx.spawner.spawn(shim_command(ctx)).await {
        Ok(s) => s,
        Err(e) => {
            view.send_modify(|v| v.last_error = Some(format!("cannot start mcpctl's shim: {e}")));
            return Once::Ended {
                ending: Ending::NotReady,
                uptime: Duration::ZERO,
            };
        }
    };
    let pid = spawned.pid;
    view.send_modify(|v| {
        v.pid = Some(pid);
        v.start_ticks = sys::proc_stat(pid).map(|s| s.start_time);
    });
    ctx.changed.notify_one();
    let mut stderr_pump = spawned
        .stderr
        .take()
        .and_then(|e| tokio::process::ChildStderr::from_std(e).ok())
        .map(|stderr| tokio::spawn(pump_lines(BufReader::new(stderr), log.clone(), "stderr")));
    let started = Instant::now();

    let pipes = (spawned.stdin.take(), spawned.stdout.take());
    let start_timeout = ctx.spec.start_timeout;
    // Updates that arrive while starting are adopted once the probe is done with ctx.
    let mut updates = Vec::new();
    let ready = {
        let probe = probe(ctx, pipes, log.clone());
        tokio::pin!(probe);
        loop {
            tokio::select! {
                r = tokio::time::timeout(start_timeout, &mut probe) => break match r {
                    // The probe failing usually means the server closed its pipes by dying.
                    Ok(r) => r.map_err(|why| (why, true)),
                    Err(_) => Err((format!(
                        "not ready after {} (start_timeout)",
                        humantime::format_duration(start_timeout)
                    ), false)),
                },
                code = &mut spawned.exited => {
                    let code = code.unwrap_or(-1);
                    let why = format!("{} before it was ready", describe_exit(code));
                    view.send_modify(|v| {
                        v.last_exit = Some(describe_exit(code));
                        v.last_error = Some(why);
                    });
                    drain(&mut stderr_pump).await;
                    return Once::Ended { ending: Ending::NotReady, uptime: started.elapsed() };
                }
                // A stop is honoured while starting too.
                msg = control.recv() => match msg {
                    Some(Control::Update(spec)) => {
                        tell_shim_stop_timeout(pid, &spec);
                        updates.push(spec);
                    }
                    Some(Control::Stop { force, timeout, done }) => {
                        let code = stop_process(pid, force, timeout, &mut spawned.exited).await;
                        view.send_modify(|v| v.last_exit = code.map(describe_exit));
                        let _ = done.send(());
                        return Once::Stopped;
                    }
                    None => {
                        stop_process(pid, true, Duration::ZERO, &mut spawned.exited).await;
                        return Once::Stopped;
                    }
                },
            }
        }
    };
    if let Some(spec) = updates.pop() {
        tell_shim_stop_timeout(pid, &spec);
        ctx.spec = *spec;
    }
    let upstream = match ready {
        Ok(upstream) => upstream,
        Err(failure) => {
            return fail_start(view, pid, failure, &mut spawned, &mut stderr_pump, started).await;
        }
    };
    // The protocol reader's end, for a stdio server (an HTTP one has none).
    let protocol = upstream.clone();
    let protocol_ended = async {
        match &protocol {
            Some(upstream) => upstream.closed().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(protocol_ended);
    let (health_tx, health_rx) = watch::channel(ctx.spec.health);
    let health = async {
        match &protocol {
            Some(upstream) => until_unhealthy(upstream, health_rx, view).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(health);
    view.send_modify(|v| {
        v.phase = Phase::Running;
        v.started_at = Some(SystemTime::now());
        v.last_error = None;
        v.upstream = upstream;
        v.server_pid = sys::children_of(pid).first().copied();
    });

    loop {
        tokio::select! {
            missed = &mut health => {
                let code = stop_process(pid, true, Duration::ZERO, &mut spawned.exited).await;
                view.send_modify(|v| {
                    v.last_exit = code.map(describe_exit);
                    v.last_error = Some(format!("missed {missed} health checks in a row: killed"));
                });
                drain(&mut stderr_pump).await;
                return Once::Ended { ending: Ending::Lost, uptime: started.elapsed() };
            }
            () = &mut protocol_ended => {
                // Its stdout closed: a dying server does that first, so give its exit a
                // moment to be seen; one that lives on without a protocol is useless and
                // is killed, a failure for the restart policy.
                let ending = match tokio::time::timeout(PROTOCOL_EXIT_GRACE, &mut spawned.exited).await {
                    Ok(code) => {
                        let code = code.unwrap_or(-1);
                        view.send_modify(|v| v.last_exit = Some(describe_exit(code)));
                        Ending::Exit(code)
                    }
                    Err(_) => {
                        let code = stop_process(pid, true, Duration::ZERO, &mut spawned.exited).await;
                        view.send_modify(|v| {
                            v.last_exit = code.map(describe_exit);
                            v.last_error = Some("its stdout closed while it ran: killed".into());
                        });
                        Ending::Lost
                    }
                };
                drain(&mut stderr_pump).await;
                return Once::Ended { ending, uptime: started.elapsed() };
            }
            code = &mut spawned.exited => {
                let code = code.unwrap_or(-1);
                view.send_modify(|v| v.last_exit = Some(describe_exit(code)));
                drain(&mut stderr_pump).await;
            return Once::Ended { ending: Ending::Exit(code), uptime: started.elapsed() };
            }
            msg = control.recv() => match msg {
                Some(Control::Update(spec)) => {
                    tell_shim_stop_timeout(pid, &spec);
                    if let Some(upstream) = &protocol {
                        upstream.set_call_timeout(spec.call_timeout);
                    }
                    let _ = health_tx.send(spec.health);
                    ctx.spec = *spec;
                }
                Some(Control::Stop { force, timeout, done }) => {
                    let code = stop_process(pid, force, timeout, &mut spawned.exited).await;
                    view.send_modify(|v| v.last_exit = code.map(describe_exit));
                    let _ = done.send(());
                    return Once::Stopped;
                }
                None => {
                    stop_process(pid, true, Duration::ZERO, &mut spawned.exited).await;
                    return Once::Stopped;
                }
            },
        }
    }
}

type SharedLog = Arc<Mutex<LogWriter>>;

/// The shim times a stop itself when the daemon is gone: give it the new value.
fn tell_shim_stop_timeout(shim: u32, spec: &ServerSpec) {
    let ms = usize::try_from(spec.stop_timeout.as_millis()).unwrap_or(usize::MAX);
    let _ = sys::queue_signal(shim, sys::SIGUSR2, ms);
}

/// Pings the server every `interval` through its channel; any answer within
/// `timeout` (an error too: a 2026-07-28 server has no `ping`) shows it alive. A miss
/// marks it unhealthy, an answer running again; resolves with the count once
/// `failures` pings in a row went unanswered.
async fn until_unhealthy(
    upstream: &Upstream,
    mut health: watch::Receiver<crate::model::spec::HealthCheck>,
    view: &watch::Sender<View>,
) -> u32 {
    let mut missed = 0;
    loop {
        let check = *health.borrow_and_update();
        tokio::time::sleep(check.interval).await;
        let answer = tokio::time::timeout(check.timeout, upstream.request("ping", None)).await;
        if matches!(answer, Ok(Ok(_))) {
            if missed > 0 {
                missed = 0;
                view.send_modify(|v| {
                    if v.phase == Phase::Unhealthy {
                        v.phase = Phase::Running;
                        v.last_error = None;
                    }
                });
            }
            continue;
        }
        missed += 1;
        view.send_modify(|v| {
            v.phase = Phase::Unhealthy;
            v.last_error = Some(format!(
                "no answer to {missed} health check(s) in a row (ping within {})",
                humantime::format_duration(check.timeout)
            ));
        });
        if missed >= check.failures {
            return missed;
        }
    }
}

/// How long a server whose stdout closed has to exit by itself before it is killed.
const PROTOCOL_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Waits (briefly) for the stderr pump to finish, so a dead process's last words are
/// in its log before anyone reads the log to explain the failure.
async fn drain(pump: &mut Option<tokio::task::JoinHandle<()>>) {
    if let Some(pump) = pump.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
    }
}

fn write_log(log: Option<&SharedLog>, source: &str, message: &str) {
    if let Some(log) = log
        && let Ok(mut w) = log.lock()
    {
        w.write_line(source, message);
    }
}

/// Copies a child's output to its log, line by line, each line bounded.
async fn pump_lines<R: AsyncBufRead + Unpin>(
    reader: R,
    log: Option<SharedLog>,
    source: &'static str,
) {
    let mut lines = BoundedLines::new(reader, logs::MAX_LINE);
    while let Ok(Some(line)) = lines.next_line().await {
        write_log(log.as_ref(), source, &line.to_log_text(logs::MAX_LINE));
    }
}

/// Records why a start failed and makes sure the process is gone.
async fn fail_start(
    view: &watch::Sender<View>,
    pid: u32,
    (why, may_have_died): (String, bool),
    spawned: &mut super::spawner::Spawned,
    stderr_pump: &mut Option<tokio::task::JoinHandle<()>>,
    started: Instant,
) -> Once {
    // A server that died closes stdout before its exit is reaped: name the exit.
    // After a timeout, its exit says nothing (dropping the probe closed its stdin).
    let died = if may_have_died {
        tokio::time::timeout(Duration::from_millis(500), &mut spawned.exited)
            .await
            .ok()
    } else {
        None
    };
    let code = match died {
        Some(code) => {
            let code = code.unwrap_or(-1);
            let why = format!("{} before it was ready", describe_exit(code));
            view.send_modify(|v| v.last_error = Some(why));
            Some(code)
        }
        None => {
            view.send_modify(|v| v.last_error = Some(why));
            stop_process(pid, true, Duration::ZERO, &mut spawned.exited).await
        }
    };
    view.send_modify(|v| v.last_exit = code.map(describe_exit));
    drain(stderr_pump).await;
    Once::Ended {
        ending: Ending::NotReady,
        uptime: started.elapsed(),
    }
}

/// `mcpctl-shim --stop-timeout-ms N --daemon-pid P -- COMMAND ARGS...` (or `mcpctl
/// __shim ...`), in a new
/// process group, with the server's environment and working folder.
fn shim_command(ctx: &InstanceCtx) -> Command {
    let spec = &ctx.spec;
    let program = spec.command.clone().unwrap_or_default();
    // A relative path is relative to the config file, as `cwd` is; a bare name is
    // looked up on PATH.
    let program = if program.contains('/') && !program.starts_with('/') {
        ctx.config_dir.join(&program).to_string_lossy().into_owned()
    } else {
        program
    };
    let (program, bundled) = match bundled_echo(&program) {
        Some(mcpctl) => (mcpctl, Some("__mcp-echo")),
        None => (program, None),
    };
    let port = ctx.inner_port.unwrap_or(spec.port);
    let mut cmd = Command::new(&ctx.shim.exe);
    // mcpctl's own settings (the identity's path among them) are not the server's.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MCPCTL_") {
            cmd.env_remove(key);
        }
    }
    if ctx.shim.subcommand {
        cmd.arg("__shim");
    }
    cmd.arg("--stop-timeout-ms")
        .arg(spec.stop_timeout.as_millis().to_string())
        .arg("--daemon-pid")
        .arg(ctx.daemon_pid.to_string())
        .arg("--")
        .arg(program)
        .args(bundled)
        .args(spec.args.iter().map(|a| inner_port::fill(a, port)))
        .envs(&spec.env)
        .envs(ctx.secrets.iter().map(|(k, v)| (k, v.expose_secret())))
        .current_dir(
            spec.cwd
                .as_ref()
                .map_or_else(|| ctx.config_dir.clone(), |c| ctx.config_dir.join(c)),
        )
        .stdin(if spec.transport == Transport::Stdio {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if spec.transport != Transport::Stdio {
        cmd.env("PORT", port.to_string())
            .env("HOST", inner_port::HOST);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    sys::stdio_only_on_exec(&mut cmd);
    cmd
}

/// `mcp-echo` ships inside mcpctl: when no `mcp-echo` is on PATH, it is this mcpctl
/// (`mcpctl __mcp-echo`), so the quickstart runs without building anything else.
fn bundled_echo(program: &str) -> Option<String> {
    if program != "mcp-echo" {
        return None;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if on_path {
        return None;
    }
    let me = std::env::current_exe().ok()?;
    Some(me.to_string_lossy().into_owned())
}

/// Ready means: a stdio server answered `initialize` (through the mux that then
/// serves the gateway); an HTTP server accepts connections on its port.
async fn probe(
    ctx: &InstanceCtx,
    (stdin, stdout): (
        Option<std::process::ChildStdin>,
        Option<std::process::ChildStdout>,
    ),
    log: Option<SharedLog>,
) -> Result<Option<Upstream>, String> {
    let stdout = stdout.and_then(|o| ChildStdout::from_std(o).ok());
    if ctx.spec.transport != Transport::Stdio {
        if let Some(out) = stdout {
            tokio::spawn(pump_lines(BufReader::new(out), log, "stdout"));
        }
        let port = ctx.inner_port.unwrap_or(ctx.spec.port);
        loop {
            if tokio::net::TcpStream::connect((inner_port::HOST, port))
                .await
                .is_ok()
            {
                let beyond = inner_port::listening_beyond_loopback(port);
                if !beyond.is_empty() {
                    return Err(inner_port::refusal(port, &beyond));
                }
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stdin = stdin.and_then(|i| ChildStdin::from_std(i).ok());
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        return Err("no stdio pipes".into());
    };
    let on_message: mux::OnMessage = {
        let log = log.clone();
        Arc::new(move |msg: &Value| log_notification(log.as_ref(), msg))
    };
    let on_noise: mux::OnNoise = {
        let log = log.clone();
        Arc::new(move |line: &str| write_log(log.as_ref(), "stdout", line))
    };
    let limits = mux::Limits {
        max_message: max_message(),
        call_timeout: ctx.spec.call_timeout,
    };
    let upstream = mux::start(stdin, stdout, limits, on_message, on_noise);
    if let Some(discovered) = discover(&upstream).await? {
        let upstream = upstream.initialized(discovered, Era::Modern);
        listen_for_changes(&upstream).await;
        return Ok(Some(upstream));
    }
    let params = json!({
        "protocolVersion": SUPPORTED_VERSIONS[0],
        // What the gateway can bridge to its clients (routed to the calling session).
        "capabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
        "clientInfo": client_info(),
    });
    let response = upstream
        .request("initialize", Some(params))
        .await
        .map_err(|_| "closed its stdout before answering initialize".to_string())?;
    if let Some(error) = response.get("error") {
        return Err(format!("initialize failed: {error}"));
    }
    let init = response.get("result").cloned().unwrap_or(Value::Null);
    upstream
        .notify("notifications/initialized", None)
        .await
        .map_err(|_| "closed its stdin after initialize".to_string())?;
    Ok(Some(upstream.initialized(init, Era::Legacy)))
}

/// The bound on one message of a child's: [`mux::MAX_MESSAGE`], or
/// `MCPCTL_MAX_MESSAGE_BYTES` from the daemon's environment.
fn max_message() -> usize {
    std::env::var("MCPCTL_MAX_MESSAGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 1024)
        .unwrap_or(mux::MAX_MESSAGE)
}

/// How long a child may take to answer `server/discover` before it counts as legacy.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(5);

fn client_info() -> Value {
    json!({"name": "mcpctl", "version": env!("CARGO_PKG_VERSION")})
}

/// The era probe's first half (G2): a 2026-07-28 child answers `server/discover` with
/// a version we speak. Any error or silence means legacy; the child then gets exactly
/// one `initialize`, never both eras.
async fn discover(upstream: &Upstream) -> Result<Option<Value>, String> {
    let params = json!({"_meta": {
        era::META_VERSION: era::MODERN_VERSIONS[0],
        era::META_CAPABILITIES: {},
        era::META_CLIENT_INFO: client_info(),
    }});
    let asked = upstream.request("server/discover", Some(params));
    match tokio::time::timeout(DISCOVER_TIMEOUT, asked).await {
        Ok(Err(_)) => Err("closed its stdout before answering server/discover".to_string()),
        Ok(Ok(response)) if era::is_modern_discover(&response) => {
            Ok(response.get("result").cloned())
        }
        _ => Ok(None),
    }
}

/// A modern child sends change notifications only on a listen: hold one open for
/// every kind of change, so the gateway can fan them out to its clients.
async fn listen_for_changes(upstream: &Upstream) {
    let params = json!({
        "notifications": {"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true},
        "_meta": {
            era::META_VERSION: era::MODERN_VERSIONS[0],
            era::META_CAPABILITIES: {},
            era::META_CLIENT_INFO: client_info(),
        }
    });
    let (events, mut changes) = tokio::sync::mpsc::channel(64);
    let options = mux::CallOptions {
        events: Some(events),
        ..mux::CallOptions::default()
    };
    if upstream
        .start_request("subscriptions/listen", Some(params), options)
        .await
        .is_err()
    {
        return;
    }
    let upstream = upstream.clone();
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            upstream.publish(change);
        }
    });
}

/// `notifications/message` goes to the log with its level.
fn log_notification(log: Option<&SharedLog>, msg: &Value) {
    if msg.get("method").and_then(Value::as_str) != Some("notifications/message") {
        return;
    }
    let params = msg.get("params");
    let level = params
        .and_then(|p| p.get("level"))
        .and_then(Value::as_str)
        .unwrap_or("info");
    let data = params
        .and_then(|p| p.get("data"))
        .map_or(String::new(), |d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let level = detect_level(level).map_or("INFO".to_string(), |l| format!("{l:?}").to_uppercase());
    write_log(log, "mcp", &format!("{level} {data}"));
}

/// SIGTERM (SIGUSR1 when forced) to the shim, which stops the whole group; SIGUSR1
/// after `timeout`; SIGKILL to the group as a last resort. Returns the exit code.
async fn stop_process(
    pid: u32,
    force: bool,
    timeout: Duration,
    exited: &mut oneshot::Receiver<i32>,
) -> Option<i32> {
    let grace = if force { Duration::ZERO } else { timeout };
    let _ = sys::kill(pid, if force { sys::SIGUSR1 } else { sys::SIGTERM });
    if let Ok(code) = tokio::time::timeout(grace, &mut *exited).await {
        return code.ok();
    }
    let _ = sys::kill(pid, sys::SIGUSR1);
    if let Ok(code) = tokio::time::timeout(Duration::from_secs(5), &mut *exited).await {
        return code.ok();
    }
    let _ = sys::kill_group(pid, sys::SIGKILL);
    tokio::time::timeout(Duration::from_secs(5), exited)
        .await
        .ok()
        .and_then(Result::ok)
}

pub fn describe_exit(code: i32) -> String {
    if code > 128 {
        format!("killed by signal {}", code - 128)
    } else {
        format!("exit code {code}")
    }
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authorities_of_urls() {
        assert_eq!(
            authority("http://127.0.0.1:9000/mcp"),
            Some(("127.0.0.1".into(), 9000))
        );
        assert_eq!(
            authority("https://mcp.example.com/mcp"),
            Some(("mcp.example.com".into(), 443))
        );
        assert_eq!(authority("http://host"), Some(("host".into(), 80)));
        assert_eq!(authority("http://[::1]:8080/x"), Some(("::1".into(), 8080)));
        assert_eq!(authority("http://[::1]/x"), Some(("::1".into(), 80)));
        assert_eq!(authority("nope"), None);
    }
}
