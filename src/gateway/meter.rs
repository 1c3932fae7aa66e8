//! What one gateway port counts, for `server monitor`, `status` and `/metrics`: bytes in
//! and out, open connections, live sessions, and per MCP method the requests, the errors
//! and a histogram of response times. Fixed tables of atomics: recording takes no lock
//! and the memory is the same after a billion requests. Method names outside the
//! protocol's own count as `other`, so a client cannot grow the table (nor the labels).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{MethodTraffic, Traffic};

/// The MCP methods counted by name; anything else is `other`.
pub const METHODS: [&str; 20] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "other",
];

/// Upper bounds of the response-time buckets, in seconds (the last bucket is +Inf).
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

#[derive(Default)]
struct Method {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Per bucket (not cumulative), the last one past every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// The counters of one port.
#[derive(Default)]
pub struct Meter {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicU64,
    connections_total: AtomicU64,
    sessions: AtomicU64,
    /// Requests begun and not yet answered (what an autoscaler's in-flight target reads).
    in_flight: AtomicU64,
    /// Requests begun, ever: a change between two readings is activity.
    begun: AtomicU64,
    /// Session-less streams open now (2026-07-28 `subscriptions/listen`).
    streams: AtomicU64,
    methods: [Method; METHODS.len()],
}

/// The slot of `method` in [`METHODS`].
fn slot(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The bucket of a response time.
pub fn bucket(elapsed: Duration) -> usize {
    let secs = elapsed.as_secs_f64();
    BUCKETS
        .iter()
        .position(|bound| secs <= *bound)
        .unwrap_or(BUCKETS.len())
}

impl Meter {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn read(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn wrote(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A connection opened; it is counted as open until the guard drops.
    pub fn connection(self: &Arc<Self>) -> Connection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        Connection(Arc::clone(self))
    }

    pub fn set_sessions(&self, n: usize) {
        self.sessions.store(n as u64, Ordering::Relaxed);
    }

    /// Counts one answered request of `method`.
    pub fn record(&self, method: &str, elapsed: Duration, error: bool) {
        let m = &self.methods[slot(method)];
        m.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
        m.buckets[bucket(elapsed)].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        m.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Starts timing a request; see [`Timing`].
    pub fn begin(self: &Arc<Self>, method: &str) -> Timing {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
        Timing {
            meter: Some(Arc::clone(self)),
            slot: slot(method),
            start: Instant::now(),
        }
    }

    /// `(requests begun ever, requests being answered or session-less streams open
    /// now)`: what an idle check reads. (A `subscriptions/listen` stream has no session,
    /// and its request is answered once the stream starts; an idle keep-alive connection,
    /// a prober's say, is no activity.)
    pub fn activity(&self) -> (u64, u64) {
        (
            self.begun.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed) + self.streams.load(Ordering::Relaxed),
        )
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a session-less stream until the guard drops.
    pub fn open_stream(self: &Arc<Self>) -> OpenStream {
        self.streams.fetch_add(1, Ordering::Relaxed);
        OpenStream(Arc::clone(self))
    }

    /// Everything counted so far (methods with no request left out).
    pub fn snapshot(&self) -> Traffic {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let methods = METHODS
            .iter()
            .zip(&self.methods)
            .filter(|(_, m)| load(&m.requests) > 0)
            .map(|(name, m)| MethodTraffic {
                method: (*name).to_string(),
                requests: load(&m.requests),
                errors: load(&m.errors),
                buckets: m.buckets.iter().map(load).collect(),
                sum_secs: load(&m.sum_micros) as f64 / 1e6,
                latency: Default::default(),
            })
            .collect();
        Traffic {
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            connections: load(&self.connections),
            connections_total: load(&self.connections_total),
            sessions: load(&self.sessions),
            in_flight: load(&self.in_flight),
            methods,
            ..Traffic::default()
        }
    }
}

/// An open connection, counted until dropped.
pub struct Connection(Arc<Meter>);

/// A session-less stream, counted until dropped.
pub struct OpenStream(Arc<Meter>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request being answered. [`Timing::done`] records it with its response; dropped
/// unfinished (the client left, the instance ended) it counts as an error.
pub struct Timing {
    meter: Option<Arc<Meter>>,
    slot: usize,
    start: Instant,
}

impl Timing {
    pub fn done(mut self, response: &Value) {
        self.finish(response.get("error").is_some());
    }

    /// For an answer known only by its HTTP status (a 2026-07-28 call's stream).
    pub fn done_with_status(mut self, status: u16) {
        self.finish(status >= 400);
    }

    fn finish(&mut self, error: bool) {
        if let Some(meter) = self.meter.take() {
            meter.in_flight.fetch_sub(1, Ordering::Relaxed);
            meter.record(METHODS[self.slot], self.start.elapsed(), error);
        }
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        self.finish(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_land_in_their_method_and_bucket_and_unknown_methods_in_other() {
        let meter = Meter::new();
        meter.record("tools/call", Duration::from_micros(80), false);
        meter.record("tools/call", Duration::from_millis(3), true);
        meter.record("my/own-method", Duration::from_secs(100), false);
        meter.begin("ping").done(&json!({"result": {}}));
        drop(meter.begin("tools/list"));
        let t = meter.snapshot();
        let of = |name: &str| t.methods.iter().find(|m| m.method == name).unwrap();
        let calls = of("tools/call");
        assert_eq!((calls.requests, calls.errors), (2, 1));
        assert_eq!(calls.buckets[0], 1, "80 µs is in the first bucket");
        assert_eq!(calls.buckets[5], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(
            of("other").buckets[BUCKETS.len()],
            1,
            "100 s is past every bound"
        );
        assert_eq!((of("ping").requests, of("ping").errors), (1, 0));
        assert_eq!(
            of("tools/list").errors,
            1,
            "an unfinished request is an error"
        );
        assert_eq!(t.methods.len(), 4);
        assert_eq!(t.in_flight, 0, "every begun request has ended");
        let open = meter.begin("tools/call");
        let also = meter.begin("ping");
        assert_eq!(meter.snapshot().in_flight, 2);
        open.done(&json!({"result": {}}));
        drop(also);
        assert_eq!(meter.snapshot().in_flight, 0);
    }

    #[test]
    fn connections_are_counted_while_open() {
        let meter = Meter::new();
        let a = meter.connection();
        let b = meter.connection();
        drop(a);
        let t = meter.snapshot();
        assert_eq!((t.connections, t.connections_total), (1, 2));
        drop(b);
        assert_eq!(meter.snapshot().connections, 0);
    }
}
