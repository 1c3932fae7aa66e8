//! The instance task through its seam: a scripted child behind [`Launcher`], over
//! in-memory pipes, with a paused clock (so backoff, timeouts and health checks take
//! no real time and no process is spawned).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::policy::START_BURST;
use super::*;
use crate::secrets::redact::Redactor;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Answers the handshake and pings.
    Answers,
    /// Answers the handshake, never a ping (a wedged server).
    IgnoresPings,
    /// Reads everything, answers nothing.
    Silent,
    /// Exits at once with this code.
    ExitsAtStart(i32),
}

/// A scripted child per launch; records launches and signals.
struct Fake {
    behaviour: Behaviour,
    /// Whether a graceful stop is ignored (only `StopNow` ends it).
    ignores_stop: bool,
    launches: Mutex<u32>,
    signals: Arc<Mutex<Vec<(u32, Signal)>>>,
}

impl Fake {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            ignores_stop: false,
            launches: Mutex::new(0),
            signals: Arc::default(),
        })
    }

    fn launches(&self) -> u32 {
        *self.launches.lock().unwrap()
    }

    fn signals(&self) -> Vec<(u32, Signal)> {
        self.signals.lock().unwrap().clone()
    }
}

/// One scripted process: its exit, sent on the first signal that ends it.
struct FakeProcess {
    exit: Mutex<Option<oneshot::Sender<i32>>>,
    ended: Arc<Notify>,
    ignores_stop: bool,
    signals: Arc<Mutex<Vec<(u32, Signal)>>>,
}

impl Processes for FakeProcess {
    fn signal(&self, pid: u32, signal: Signal) {
        self.signals.lock().unwrap().push((pid, signal));
        let code = match signal {
            Signal::Stop if !self.ignores_stop => 143,
            Signal::StopNow | Signal::KillGroup => 137,
            _ => return,
        };
        if let Some(exit) = self.exit.lock().unwrap().take() {
            let _ = exit.send(code);
            self.ended.notify_one();
        }
    }

    fn server_pid(&self, shim: u32) -> Option<u32> {
        Some(shim + 1000)
    }

    fn start_ticks(&self, _pid: u32) -> Option<u64> {
        Some(1)
    }
}

impl Launcher for Fake {
    fn launch(&self, _command: std::process::Command) -> Launching<'_> {
        Box::pin(async move {
            let pid = {
                let mut n = self.launches.lock().unwrap();
                *n += 1;
                *n
            };
            let (stdin, child_in) = tokio::io::duplex(1 << 16);
            let (child_out, stdout) = tokio::io::duplex(1 << 16);
            let (child_err, stderr) = tokio::io::duplex(1 << 10);
            let (exit, exited) = oneshot::channel();
            let ended = Arc::new(Notify::new());
            let behaviour = self.behaviour;
            let process = FakeProcess {
                exit: Mutex::new(None),
                ended: Arc::clone(&ended),
                ignores_stop: self.ignores_stop,
                signals: Arc::clone(&self.signals),
            };
            if let Behaviour::ExitsAtStart(code) = behaviour {
                let _ = exit.send(code);
            } else {
                *process.exit.lock().unwrap() = Some(exit);
                crate::gateway::owned::Scope::new().spawn(async move {
                    tokio::select! {
                        () = script(behaviour, child_in, child_out) => {}
                        () = ended.notified() => {}
                    }
                    drop(child_err);
                });
            }
            Ok(Launched {
                pid,
                stdin: Some(Box::new(stdin) as Input),
                stdout: Some(Box::new(stdout) as Output),
                stderr: Some(Box::new(stderr) as Output),
                exited,
                processes: Arc::new(process),
            })
        })
    }
}

/// The child's side: answers per `behaviour` until its stdin ends.
async fn script(
    behaviour: Behaviour,
    stdin: tokio::io::DuplexStream,
    mut stdout: tokio::io::DuplexStream,
) {
    let mut lines = BufReader::new(stdin).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = msg.get("id").cloned() else {
            continue;
        };
        let answer = match (behaviour, msg["method"].as_str()) {
            (Behaviour::Silent, _) => continue,
            (_, Some("initialize")) => json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "fake", "version": "1"}}}),
            (Behaviour::IgnoresPings, Some("ping")) => continue,
            (_, Some("ping")) => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
        };
        let _ = stdout.write_all(format!("{answer}\n").as_bytes()).await;
    }
}

fn spec(extra: &str) -> crate::model::ServerSpec {
    let text = format!("version = 1\n[servers.s]\ncommand = \"fake\"\nport = 1\n{extra}");
    match crate::model::parse(&text) {
        Ok(mut config) => config.servers.remove("s").unwrap(),
        Err(e) => panic!("{e:?}"),
    }
}

fn ctx(fake: &Arc<Fake>, spec: crate::model::ServerSpec, dir: &tempfile::TempDir) -> InstanceCtx {
    InstanceCtx {
        spec,
        index: 0,
        config_dir: dir.path().to_path_buf(),
        log_path: dir.path().join("s-0.log"),
        daemon_pid: 1,
        shim: crate::shim::ShimCommand {
            exe: "mcpctl-shim".into(),
            subcommand: false,
        },
        launcher: Arc::clone(fake) as Arc<dyn Launcher>,
        changed: Arc::new(Notify::new()),
        inner_port: None,
        secrets: std::collections::BTreeMap::new(),
        redactor: Redactor::new([]),
        tee_logs: false,
        hidden_env: Vec::new(),
        cgroup: None,
        isolated: false,
        tasks: crate::gateway::owned::Scope::new(),
    }
}

async fn until(handle: &Handle, want: impl Fn(&View) -> bool) -> View {
    let mut view = handle.view.clone();
    let seen = view.wait_for(|v| want(v)).await.map(|v| v.clone());
    seen.expect("the task ended before the wanted state")
}

#[tokio::test(start_paused = true)]
async fn a_stop_is_honoured_while_the_instance_starts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Behaviour::Silent);
    let handle = start(ctx(&fake, spec("start_timeout = \"30s\"\n"), &dir));
    until(&handle, |v| v.pid().is_some()).await;
    let asked = Instant::now();
    handle.stop(false, Duration::from_secs(1)).await;
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the stop waited for the start to time out"
    );
    assert_eq!(
        until(&handle, |v| v.phase() == Phase::Stopped)
            .await
            .attempts,
        1
    );
    assert_eq!(fake.signals(), [(1, Signal::Stop)]);
}

#[tokio::test(start_paused = true)]
async fn a_crashing_server_backs_off_then_is_a_bounded_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Behaviour::ExitsAtStart(3));
    let handle = start(ctx(&fake, spec("restart = \"always\"\n"), &dir));
    let looped = until(&handle, |v| v.phase() == Phase::CrashLoop).await;
    assert_eq!(fake.launches(), u32::try_from(START_BURST).unwrap());
    assert_eq!(looped.restarts, fake.launches() - 1);
    assert!(looped.last_exit.unwrap().contains("exit code 3"));
    // The loop is final for the task: a stop ends it, nothing restarts meanwhile.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(fake.launches(), u32::try_from(START_BURST).unwrap());
    handle.stop(false, Duration::from_secs(1)).await;
    until(&handle, |v| v.phase() == Phase::Stopped).await;
}

#[tokio::test(start_paused = true)]
async fn missed_health_checks_mark_it_unhealthy_then_kill_and_restart_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Behaviour::IgnoresPings);
    let health = "health = { interval = \"1s\", timeout = \"1s\", failures = 2 }\n";
    let handle = start(ctx(&fake, spec(health), &dir));
    let running = until(&handle, |v| v.phase() == Phase::Running).await;
    assert_eq!(
        running.server_pid(),
        Some(1001),
        "the server's pid, not the shim's"
    );
    let unhealthy = until(&handle, |v| v.phase() == Phase::Unhealthy).await;
    assert!(unhealthy.last_error.unwrap().contains("1 health check(s)"));
    until(&handle, |v| v.restarts == 1 && v.phase() == Phase::Running).await;
    assert_eq!(fake.launches(), 2);
    assert!(
        fake.signals().contains(&(1, Signal::StopNow)),
        "{:?}",
        fake.signals()
    );
    handle.stop(true, Duration::ZERO).await;
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_that_is_ignored_is_forced_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake {
        ignores_stop: true,
        ..Arc::try_unwrap(Fake::new(Behaviour::Answers)).ok().unwrap()
    });
    let handle = start(ctx(&fake, spec(""), &dir));
    until(&handle, |v| v.phase() == Phase::Running).await;
    let asked = Instant::now();
    handle.stop(false, Duration::from_secs(3)).await;
    assert!(asked.elapsed() >= Duration::from_secs(3));
    assert_eq!(fake.signals(), [(1, Signal::Stop), (1, Signal::StopNow)]);
}

#[tokio::test(start_paused = true)]
async fn an_in_place_stop_timeout_is_sent_to_the_running_shim() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Behaviour::Answers);
    let handle = start(ctx(&fake, spec(""), &dir));
    until(&handle, |v| v.phase() == Phase::Running).await;
    handle.update(&spec("stop_timeout = \"7s\"\n")).await;
    handle.stop(false, Duration::from_secs(1)).await;
    assert_eq!(
        fake.signals(),
        [
            (1, Signal::StopTimeout(Duration::from_secs(7))),
            (1, Signal::Stop)
        ]
    );
}
