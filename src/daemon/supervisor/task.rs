//! The task that runs one instance: start through the shim, probe, run (watching
//! its exit, its protocol channel, its health and the control messages, every one in
//! every state), stop gracefully, and restart by the pure rules of `policy`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

// Tokio's clock, so tests can pause it; the pure policy takes it as `std` instants.
use tokio::time::Instant;

use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot, watch};

use super::super::inner_port;
use super::policy::{Decision, Ending, Tracker};
use super::*;
use crate::logs::LogWriter;
use crate::model::spec::Mode;

/// How one run of the process ended.
pub(super) enum Once {
    Ended { ending: Ending, uptime: Duration },
    Stopped,
}

pub(super) async fn run(
    mut ctx: InstanceCtx,
    mut control: mpsc::Receiver<Control>,
    view: watch::Sender<View>,
) {
    let log = match LogWriter::open(&ctx.log_path, ctx.redactor.clone()) {
        Ok(w) => {
            let label = ctx
                .tee_logs
                .then(|| format!("{}#{}", ctx.spec.name, ctx.index));
            Some(Arc::new(Mutex::new(w.tee(label))))
        }
        Err(e) => {
            tracing::warn!("cannot open {}: {e}", ctx.log_path.display());
            None
        }
    };
    let mut tracker = Tracker::default();
    loop {
        tracker.record_start(Instant::now().into_std());
        view.send_modify(|v| {
            v.state = State::Starting { process: None };
            v.attempts += 1;
        });
        let decision = match run_once(&mut ctx, &mut control, &view, log.clone()).await {
            Once::Stopped => break,
            Once::Ended { ending, uptime } => {
                tracker.on_exit(ctx.spec.restart, ending, uptime, Instant::now().into_std())
            }
        };
        // Every ending is told: in daemon.log (the container's log under `mcpctl gateway`)
        // and the instance's own log.
        let told = {
            let v = view.borrow();
            let exit = v.last_exit.clone().unwrap_or_else(|| "ended".into());
            let why = v
                .last_error
                .clone()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let next = match decision {
                Decision::Restart { after } => format!(
                    "restarting in {}",
                    humantime::format_duration(Duration::from_millis(after.as_millis() as u64))
                ),
                Decision::CrashLoop => "crash loop: not restarted until the next apply".into(),
                Decision::Stay => "not restarted (restart policy)".into(),
            };
            format!("instance {}: {exit}{why}; {next}", ctx.index)
        };
        tracing::warn!("{}: {told}", ctx.spec.name);
        write_log(log.as_ref(), "mcpctl", &told);
        match decision {
            Decision::Restart { after } => {
                view.send_modify(|v| {
                    v.state = State::Backoff;
                    v.restarts += 1;
                });
                if !sleep_unless_stopped(&mut ctx, &mut control, after).await {
                    break;
                }
            }
            Decision::CrashLoop => {
                view.send_modify(|v| v.state = State::CrashLoop);
                wait_for_stop(&mut ctx, &mut control).await;
                break;
            }
            Decision::Stay => {
                view.send_modify(|v| v.state = State::Exited);
                wait_for_stop(&mut ctx, &mut control).await;
                break;
            }
        }
    }
    view.send_modify(|v| {
        v.state = State::Stopped;
    });
}

/// Sleeps for `time`; false when a stop arrived first (and was acknowledged).
pub(super) async fn sleep_unless_stopped(
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
                Some(Control::Restart(_) | Control::Drain) => {}
                Some(Control::Stop { done, .. }) => {
                    let _ = done.send(());
                    return false;
                }
                None => return false,
            },
        }
    }
}

pub(super) async fn wait_for_stop(ctx: &mut InstanceCtx, control: &mut mpsc::Receiver<Control>) {
    while let Some(msg) = control.recv().await {
        match msg {
            Control::Update(spec) => ctx.spec = *spec,
            Control::Restart(_) | Control::Drain => {}
            Control::Stop { done, .. } => {
                let _ = done.send(());
                return;
            }
        }
    }
}

pub(super) async fn run_once(
    ctx: &mut InstanceCtx,
    control: &mut mpsc::Receiver<Control>,
    view: &watch::Sender<View>,
    log: Option<SharedLog>,
) -> Once {
    if ctx.spec.mode == Mode::Remote {
        return watch_remote(ctx, control, view).await;
    }
    // A restart takes a new inner port: one that another process took meanwhile is
    // never waited on again.
    if ctx.inner_port.is_some() && view.borrow().attempts > 1 {
        match inner_port::free() {
            Ok(port) => {
                ctx.inner_port = Some(port);
                view.send_modify(|v| v.inner_port = Some(port));
            }
            Err(why) => {
                view.send_modify(|v| v.last_error = Some(why.to_string()));
                return Once::Ended {
                    ending: Ending::NotReady,
                    uptime: Duration::ZERO,
                };
            }
        }
    }
    let launched = match shim_command(ctx) {
        Ok((command, sockets)) => ctx
            .launcher
            .launch(command)
            .await
            .map(|launched| (launched, sockets)),
        Err(e) => Err(e),
    };
    let (mut spawned, sockets) = match launched {
        Ok(s) => s,
        Err(e) => {
            view.send_modify(|v| v.last_error = Some(format!("cannot start mcpctl's shim: {e}")));
            return Once::Ended {
                ending: Ending::NotReady,
                uptime: Duration::ZERO,
            };
        }
    };
    // An isolated server's inner port is reached through its shim while this run lasts.
    let namespace = match sockets
        .map(crate::gateway::dial::Namespace::new)
        .transpose()
    {
        Ok(namespace) => namespace.map(Arc::new),
        Err(e) => {
            view.send_modify(|v| v.last_error = Some(format!("no socket to the shim: {e}")));
            spawned.stop(true, Duration::ZERO).await;
            return Once::Ended {
                ending: Ending::NotReady,
                uptime: Duration::ZERO,
            };
        }
    };
    let _registered = namespace
        .as_ref()
        .zip(ctx.inner_port)
        .map(|(namespace, port)| crate::gateway::dial::register(port, namespace));
    let pid = spawned.pid;
    let mut process = Process {
        shim: pid,
        start_ticks: spawned.processes.start_ticks(pid),
        server: None,
    };
    view.send_modify(|v| {
        v.state = State::Starting {
            process: Some(process),
        };
    });
    ctx.changed.notify_one();
    let mut stderr_pump = spawned.stderr.take().map(|stderr| {
        crate::gateway::owned::owned(pump_lines(BufReader::new(stderr), log.clone(), "stderr"))
    });
    let started = Instant::now();

    let pipes = (spawned.stdin.take(), spawned.stdout.take());
    let start_timeout = ctx.spec.start_timeout;
    // Updates that arrive while starting are adopted once the probe is done with ctx.
    let mut updates = Vec::new();
    let ready = {
        let probe = probe(ctx, pid, pipes, log.clone());
        tokio::pin!(probe);
        loop {
            tokio::select! {
                r = tokio::time::timeout(start_timeout, &mut probe) => break match r {
                    // The probe failing usually means the server closed its pipes by dying.
                    Ok(r) => r.map_err(|f| (f.why, f.may_have_died)),
                    Err(_) => Err((format!(
                        "not ready after {} (start_timeout)",
                        humantime::format_duration(start_timeout)
                    ), false)),
                },
                code = &mut spawned.exited => {
                    let code = code.unwrap_or(-1);
                    let mut why = format!("{} before it was ready", describe_exit(code));
                    // A server that exits on a refused handshake: the refusal is the
                    // reason, the exit only its consequence.
                    if let Some(Err(failed)) = futures_util::FutureExt::now_or_never(&mut probe) {
                        why = format!("{why} ({})", failed.why);
                    }
                    view.send_modify(|v| {
                        v.last_exit = Some(describe_exit(code));
                        v.last_error = Some(why);
                    });
                    drain(&mut stderr_pump).await;
                    return Once::Ended { ending: Ending::NotReady, uptime: started.elapsed() };
                }
                // A stop is honoured while starting too.
                msg = control.recv() => match msg {
                    // Told to the shim once it runs (it blocks SIGUSR2 first thing, and
                    // a signal before that would end it).
                    Some(Control::Update(spec)) => updates.push(spec),
                    // Measured only once it runs.
                    Some(Control::Restart(_) | Control::Drain) => {}
                    Some(Control::Stop { force, timeout, done }) => {
                        return stop_run(&mut spawned, view, force, timeout, Some(done)).await;
                    }
                    None => return stop_run(&mut spawned, view, true, Duration::ZERO, None).await,
                },
            }
        }
    };
    if let Some(spec) = updates.pop() {
        spawned.signal(Signal::StopTimeout(spec.stop_timeout));
        ctx.spec = *spec;
    }
    let upstream = match ready {
        Ok(upstream) => upstream,
        Err(failure) => {
            return fail_start(view, failure, &mut spawned, &mut stderr_pump, started).await;
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
    process.server = spawned.processes.server_pid(pid);
    view.send_modify(|v| {
        v.state = State::Running {
            process: Some(process),
            upstream,
            since: SystemTime::now(),
        };
        v.last_error = None;
    });

    loop {
        tokio::select! {
            missed = &mut health => {
                let code = spawned.stop(true, Duration::ZERO).await;
                view.send_modify(|v| {
                    v.last_exit = code.map(describe_exit);
                    let why = format!("missed {missed} health checks in a row: killed");
                    v.last_restart = Some(why.clone());
                    v.last_error = Some(why);
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
                        let code = spawned.stop(true, Duration::ZERO).await;
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
                    spawned.signal(Signal::StopTimeout(spec.stop_timeout));
                    if let Some(upstream) = &protocol {
                        upstream.set_call_timeout(spec.call_timeout);
                    }
                    let _ = health_tx.send(spec.health);
                    ctx.spec = *spec;
                }
                Some(Control::Drain) => {
                    view.send_modify(|v| v.state = v.state.clone().draining());
                }
                Some(Control::Restart(reason)) => {
                    write_log(log.as_ref(), "mcpctl", &reason);
                    let code = spawned.stop(false, ctx.spec.stop_timeout).await;
                    view.send_modify(|v| {
                        v.last_exit = code.map(describe_exit);
                        v.last_restart = Some(reason.clone());
                        v.last_error = Some(reason);
                    });
                    drain(&mut stderr_pump).await;
                    return Once::Ended { ending: Ending::Lost, uptime: started.elapsed() };
                }
                Some(Control::Stop { force, timeout, done }) => {
                    return stop_run(&mut spawned, view, force, timeout, Some(done)).await;
                }
                None => return stop_run(&mut spawned, view, true, Duration::ZERO, None).await,
            },
        }
    }
}

/// How long a server whose stdout closed has to exit by itself before it is killed.
pub(super) const PROTOCOL_EXIT_GRACE: Duration = Duration::from_secs(2);

/// A stop the daemon asked for (`done` acknowledges it; `None`: the handle is gone):
/// ends this run, and the task.
async fn stop_run(
    spawned: &mut Launched,
    view: &watch::Sender<View>,
    force: bool,
    timeout: Duration,
    done: Option<oneshot::Sender<()>>,
) -> Once {
    let code = spawned.stop(force, timeout).await;
    view.send_modify(|v| v.last_exit = code.map(describe_exit));
    if let Some(done) = done {
        let _ = done.send(());
    }
    Once::Stopped
}

/// Records why a start failed and makes sure the process is gone.
pub(super) async fn fail_start(
    view: &watch::Sender<View>,
    (why, may_have_died): (String, bool),
    spawned: &mut Launched,
    stderr_pump: &mut Option<crate::gateway::owned::Owned<()>>,
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
            spawned.stop(true, Duration::ZERO).await
        }
    };
    view.send_modify(|v| v.last_exit = code.map(describe_exit));
    drain(stderr_pump).await;
    Once::Ended {
        ending: Ending::NotReady,
        uptime: started.elapsed(),
    }
}

pub fn describe_exit(code: i32) -> String {
    if code > 128 {
        format!("killed by signal {}", code - 128)
    } else {
        format!("exit code {code}")
    }
}
