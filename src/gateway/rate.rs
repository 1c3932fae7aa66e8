//! Rate limits per caller: a token bucket each (refilled at its rate, holding at most
//! one period's worth), and how many requests each was refused. The table is bounded:
//! at its cap, buckets that have refilled (an idle caller's) go first, then the oldest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use crate::model::token::Rate;

/// Buckets for callers whose names come from outside the file (OIDC subjects).
pub const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
    capacity: f64,
}

#[derive(Default)]
struct Table {
    buckets: HashMap<String, Bucket>,
    /// Refusals by what they are counted as (a token's name, an OIDC port's target).
    limited: BTreeMap<String, u64>,
}

pub struct Buckets {
    table: Mutex<Table>,
    cap: usize,
}

impl Buckets {
    pub fn new(cap: usize) -> Self {
        Self {
            table: Mutex::default(),
            cap: cap.max(1),
        }
    }

    /// Takes one request from `key`'s bucket; `Err` is the seconds until one is left
    /// (the refusal counted under `counted_as`).
    pub fn take(&self, key: &str, counted_as: &str, rate: Rate, now: Instant) -> Result<(), u64> {
        let Ok(mut table) = self.table.lock() else {
            return Ok(());
        };
        let capacity = f64::from(rate.requests);
        let per_sec = capacity / f64::from(rate.per_secs);
        if !table.buckets.contains_key(key) && table.buckets.len() >= self.cap {
            evict(&mut table.buckets, now, per_sec);
        }
        let bucket = table.buckets.entry(key.to_string()).or_insert(Bucket {
            left: capacity,
            at: now,
            capacity,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.left = (bucket.left + elapsed * per_sec).min(capacity);
        bucket.capacity = capacity;
        bucket.at = now;
        if bucket.left >= 1.0 {
            bucket.left -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.left) / per_sec).ceil().max(1.0);
        *table.limited.entry(counted_as.to_string()).or_default() += 1;
        // At most an hour (a period), so the cast cannot overflow.
        Err(wait.min(3600.0) as u64)
    }

    /// Requests refused, by what they were counted as.
    pub fn limited(&self) -> BTreeMap<String, u64> {
        self.table
            .lock()
            .map(|t| t.limited.clone())
            .unwrap_or_default()
    }

    /// Forgets the buckets and counts of callers `keep` says are gone.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        if let Ok(mut table) = self.table.lock() {
            table.buckets.retain(|k, _| keep(k));
            table.limited.retain(|k, _| keep(k));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().map(|t| t.buckets.len()).unwrap_or(0)
    }
}

/// Makes room for one: refilled buckets go (they hold nothing a new one would not),
/// else the least recently used.
fn evict(buckets: &mut HashMap<String, Bucket>, now: Instant, per_sec: f64) {
    let before = buckets.len();
    buckets.retain(|_, b| {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.left + elapsed * per_sec < b.capacity
    });
    if buckets.len() < before {
        return;
    }
    if let Some(oldest) = buckets
        .iter()
        .min_by_key(|(_, b)| b.at)
        .map(|(k, _)| k.clone())
    {
        buckets.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn over_its_rate_a_caller_waits_and_the_table_stays_bounded() {
        let buckets = Buckets::new(3);
        let rate = Rate::parse("2/min").unwrap();
        let start = Instant::now();
        assert!(buckets.take("a", "t", rate, start).is_ok());
        assert!(buckets.take("a", "t", rate, start).is_ok());
        assert_eq!(buckets.take("a", "t", rate, start), Err(30));
        assert_eq!(buckets.limited().get("t"), Some(&1));
        // Many callers: never more buckets than the cap; the limited one is kept
        // while it has not refilled.
        for i in 0..100 {
            let _ = buckets.take(&format!("s{i}"), "t", rate, start);
        }
        assert!(buckets.len() <= 3);
        let later = start + Duration::from_secs(30);
        assert!(buckets.take("b", "t", rate, later).is_ok());
        buckets.retain(|k| k != "t");
        assert!(buckets.limited().is_empty());
    }
}
