//! The liveness check of a running stdio server: a `ping` through its own channel.

use tokio::sync::watch;

use super::*;
use crate::gateway::Upstream;

/// Pings the server every `interval` through its channel; any answer within
/// `timeout` (an error too: a 2026-07-28 server has no `ping`) shows it alive. A miss
/// marks it unhealthy, an answer running again; resolves with the count once
/// `failures` pings in a row went unanswered.
pub(super) async fn until_unhealthy(
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
                    if v.phase() == Phase::Unhealthy {
                        v.state = std::mem::replace(&mut v.state, State::Backoff).with_health(true);
                        v.last_error = None;
                    }
                });
            }
            continue;
        }
        // A child serving one request at a time cannot answer while it works on one;
        // a call that never ends is `call_timeout`'s to end, and then pings resume.
        if upstream.busy() > 0 {
            continue;
        }
        missed += 1;
        view.send_modify(|v| {
            v.state = std::mem::replace(&mut v.state, State::Backoff).with_health(false);
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
