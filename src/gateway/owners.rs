//! Which caller opened each session of a server reached over HTTP (the ids are the
//! server's own, so the gateway cannot seal them): another caller's request on it is
//! answered as for an unknown session. Bounded: the oldest is forgotten first (the
//! server then decides alone, as before tokens).

use std::collections::{HashMap, VecDeque};

/// Sessions remembered, at most.
const MAX: usize = 16_384;

#[derive(Default)]
pub(super) struct Owners {
    by_id: HashMap<String, Option<String>>,
    order: VecDeque<String>,
}

impl Owners {
    /// Session `id` was opened by `caller` (`None`: the owner, or an open port).
    pub(super) fn opened(&mut self, id: &str, caller: Option<&str>) {
        if self.by_id.len() >= MAX {
            while let Some(old) = self.order.pop_front() {
                if self.by_id.remove(&old).is_some() {
                    break;
                }
            }
        }
        if self
            .by_id
            .insert(id.to_string(), caller.map(str::to_string))
            .is_none()
        {
            self.order.push_back(id.to_string());
        }
    }

    /// Whether `caller` may use session `id` (one not remembered: the server decides).
    pub(super) fn allows(&self, id: &str, caller: Option<&str>) -> bool {
        self.by_id
            .get(id)
            .is_none_or(|owner| owner.as_deref() == caller)
    }

    pub(super) fn ended(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_its_openers_and_the_table_is_bounded() {
        let mut owners = Owners::default();
        owners.opened("s1", Some("ci"));
        owners.opened("s2", None);
        assert!(owners.allows("s1", Some("ci")));
        assert!(!owners.allows("s1", Some("ops")));
        assert!(!owners.allows("s1", None));
        assert!(!owners.allows("s2", Some("ci")));
        assert!(owners.allows("unknown", Some("ci")));
        owners.ended("s1");
        assert!(owners.allows("s1", Some("ops")));
        for i in 0..(MAX + 10) {
            owners.opened(&format!("x{i}"), Some("ci"));
        }
        assert!(owners.by_id.len() <= MAX);
        assert!(!owners.allows(&format!("x{}", MAX + 9), Some("ops")));
    }
}
