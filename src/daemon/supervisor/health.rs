//! The liveness check of a running stdio server: a `ping` through its own channel.

use tokio::sync::watch;

use super::*;
use crate::gateway::Upstream;

/// Pings the server every `interval` through its channel; any answer within
/// `timeout` (an error too: a 2026-07-28 server has no `ping`) shows it alive. A miss
/// marks it unhealthy (no new sessions), an answer running again; resolves with the
/// count once `failures` pings in a row went unanswered while it had no call in flight.
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
            missed = 0;
            // A miss while busy left `missed` at 0: the phase says whether to recover.
            view.send_if_modified(|v| {
                if v.phase() != Phase::Unhealthy {
                    return false;
                }
                v.state = std::mem::replace(&mut v.state, State::Backoff).with_health(true);
                v.last_error = None;
                true
            });
            continue;
        }
        // A child serving one request at a time cannot answer while it works on one,
        // and neither can a stopped or hung one: either way new work would wait, so it
        // leaves the pool for new sessions. Its calls in flight are `call_timeout`'s to
        // end; only misses while idle count towards killing it.
        let busy = upstream.busy();
        if busy == 0 {
            missed += 1;
        }
        view.send_modify(|v| {
            v.state = std::mem::replace(&mut v.state, State::Backoff).with_health(false);
            v.last_error = Some(if busy == 0 {
                format!(
                    "no answer to {missed} health check(s) in a row (ping within {})",
                    humantime::format_duration(check.timeout)
                )
            } else {
                format!(
                    "no answer to a health check (ping within {}) while busy with {busy} call(s): takes no new sessions until it answers",
                    humantime::format_duration(check.timeout)
                )
            });
        });
        if missed >= check.failures {
            return missed;
        }
    }
}
