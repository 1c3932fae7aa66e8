//! PURE. Server-sent events, read: the `data` of each event of a stream, chunk by
//! chunk, bounded.

/// Splits an SSE stream into the `data` of its events, chunk by chunk. An event
/// larger than `max` bytes is dropped whole (and counted) rather than buffered.
pub struct SseEvents {
    max: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The current event outgrew `max`: skip it to its end.
    skipping: bool,
    pub dropped: usize,
}

impl SseEvents {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skipping: false,
            dropped: 0,
        }
    }

    /// Feeds bytes; returns the data of every event they complete.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        while !chunk.is_empty() {
            let end = chunk.iter().position(|&b| b == b'\n');
            let (part, rest) = match end {
                Some(i) => (&chunk[..i], &chunk[i + 1..]),
                None => (chunk, &[][..]),
            };
            if !self.skipping {
                self.line.extend_from_slice(part);
                if self.line.len() + self.data.len() > self.max {
                    self.skipping = true;
                    self.dropped += 1;
                    self.line.clear();
                    self.data.clear();
                }
            }
            if end.is_some() {
                let line = std::mem::take(&mut self.line);
                if let Some(event) = self.end_line(&line) {
                    events.push(event);
                }
            }
            chunk = rest;
        }
        events
    }

    fn end_line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            let was_skipping = std::mem::replace(&mut self.skipping, false);
            let has = std::mem::replace(&mut self.has_data, false);
            let data = std::mem::take(&mut self.data);
            return (has && !was_skipping).then_some(data);
        }
        if self.skipping {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_across_chunks_and_bounds() {
        let mut sse = SseEvents::new(64);
        assert!(sse.feed(b"event: message\r\nda").is_empty());
        let got = sse.feed(b"ta: {\"a\":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\n");
        assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"x\ny".to_vec()]);
        let big = format!("data: {}\n\ndata: ok\n\n", "z".repeat(100));
        assert_eq!(sse.feed(big.as_bytes()), vec![b"ok".to_vec()]);
        assert_eq!(sse.dropped, 1);
    }
}
