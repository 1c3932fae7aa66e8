//! What of a client's text goes into a span: cut to a bound, so a span's size and the
//! queue's bytes stay bounded; a `tracestate` beyond W3C's is not passed on.

/// A client's text in a span, at most this many bytes (cut at a character).
pub(super) const MAX_ATTR: usize = 256;

pub(super) fn capped(text: &str) -> String {
    if text.len() <= MAX_ATTR {
        return text.to_string();
    }
    let mut end = MAX_ATTR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A `tracestate` as W3C allows it: at most 512 characters and 32 members, printable
/// ASCII. Another is dropped (not passed on, not exported).
pub(super) fn valid_tracestate(state: &str) -> bool {
    state.len() <= 512
        && state.split(',').count() <= 32
        && state.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_text_is_cut_and_an_oversized_tracestate_dropped() {
        assert_eq!(capped("short"), "short");
        let long = "é".repeat(500);
        let cut = capped(&long);
        assert!(cut.len() <= MAX_ATTR && long.starts_with(&cut));
        assert!(valid_tracestate("k=v,a=b"));
        assert!(!valid_tracestate(&format!("k={}", "a".repeat(600))));
        assert!(!valid_tracestate(
            &(0..40)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        ));
        assert!(!valid_tracestate("k=v\u{7f}"));
    }
}
