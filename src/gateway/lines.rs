//! Lines of a child's output as bytes, with a bound on how much one line may hold.
//!
//! A child's stdout carries protocol messages and its stderr log lines; either can be
//! anything: invalid UTF-8, or one line of 50 MB. Reading them as `String` lines ends
//! the reader on the first bad byte and buffers a long line whole. Here a line is
//! bytes; a line longer than the bound keeps its first `max` bytes (and its last
//! [`TAIL`] bytes, where a response's `id` may stand), the rest is counted and
//! dropped, and the buffer shrinks back afterwards, so memory returns to baseline.
//!
//! `next_line` is cancel-safe (used in `select!`): everything read so far lives in
//! `self`, and the only await is `fill_buf`, which consumes nothing.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Bytes kept from the end of a line that was cut.
pub const TAIL: usize = 256;
/// A buffer that grew past this is given back after its line.
const KEEP_CAPACITY: usize = 64 << 10;

pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    /// The line being read: at most `max` bytes of it.
    head: Vec<u8>,
    /// The last [`TAIL`] bytes of a line longer than `max`.
    tail: Vec<u8>,
    /// The whole length of the line being read.
    len: usize,
    /// The previous call returned a line: start afresh.
    delivered: bool,
}

/// One line, without its `\n` (or `\r\n`).
#[derive(Debug)]
pub struct Line<'a> {
    /// The line, or its first `max` bytes when it was longer.
    pub head: &'a [u8],
    /// For a cut line, its last bytes; empty otherwise.
    pub tail: &'a [u8],
    /// The line's whole length in bytes.
    pub len: usize,
}

impl Line<'_> {
    /// Whether the line was longer than the bound (only `head` and `tail` were kept).
    pub fn is_cut(&self) -> bool {
        self.len > self.head.len()
    }

    /// The line as text for a log, at most `max` bytes of it: invalid UTF-8
    /// replaced, a cut line marked.
    pub fn to_log_text(&self, max: usize) -> String {
        let kept = &self.head[..self.head.len().min(max)];
        let text = String::from_utf8_lossy(kept);
        if self.len > kept.len() {
            format!("{text}… (line of {} bytes cut at {})", self.len, kept.len())
        } else {
            text.into_owned()
        }
    }
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    pub fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            max,
            head: Vec::new(),
            tail: Vec::new(),
            len: 0,
            delivered: false,
        }
    }

    /// The next line; `None` at the end of the stream (a last line without a newline
    /// is still returned first).
    pub async fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        if self.delivered {
            self.reset();
        }
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                if self.len == 0 && self.head.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            let room = self.max.saturating_sub(self.head.len());
            let (kept, over) = chunk.split_at(chunk.len().min(room));
            self.head.extend_from_slice(kept);
            if !over.is_empty() {
                self.tail.extend_from_slice(over);
                let extra = self.tail.len().saturating_sub(TAIL);
                self.tail.drain(..extra);
            }
            self.len += chunk.len();
            let used = chunk.len() + usize::from(newline.is_some());
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.delivered = true;
        if self.len <= self.max && self.head.last() == Some(&b'\r') {
            self.head.pop();
            self.len -= 1;
        }
        Ok(Some(Line {
            head: &self.head,
            tail: &self.tail,
            len: self.len,
        }))
    }

    fn reset(&mut self) {
        self.head.clear();
        self.tail.clear();
        self.len = 0;
        self.delivered = false;
        if self.head.capacity() > KEEP_CAPACITY {
            self.head.shrink_to(KEEP_CAPACITY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, BufReader};

    async fn all_lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, Vec<u8>, usize)> {
        let mut lines = BoundedLines::new(BufReader::with_capacity(7, input), max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push((line.head.to_vec(), line.tail.to_vec(), line.len));
        }
        out
    }

    #[tokio::test]
    async fn invalid_utf8_is_a_line_like_any_other() {
        let got = all_lines(b"{\"a\":1}\n\xff\xfe bad\r\nlast", 100).await;
        assert_eq!(
            got,
            vec![
                (b"{\"a\":1}".to_vec(), vec![], 7),
                (b"\xff\xfe bad".to_vec(), vec![], 6),
                (b"last".to_vec(), vec![], 4),
            ]
        );
    }

    #[tokio::test]
    async fn a_long_line_keeps_its_head_and_tail_and_the_next_line_is_whole() {
        let mut input = vec![b'x'; 10];
        input.extend(vec![b'y'; 1000]);
        input.extend(b"END\nnext\n");
        let got = all_lines(&input, 10).await;
        assert_eq!(got.len(), 2);
        let (head, tail, len) = &got[0];
        assert_eq!((head.as_slice(), *len), (&b"xxxxxxxxxx"[..], 1013));
        assert_eq!(tail.len(), TAIL);
        assert!(tail.ends_with(b"yyyEND"));
        assert_eq!(got[1], (b"next".to_vec(), vec![], 4));
    }

    #[tokio::test]
    async fn memory_is_given_back_after_a_huge_line() {
        let huge = vec![b'z'; 4 << 20];
        let (mut writer, reader) = tokio::io::duplex(1 << 16);
        let feed = crate::gateway::owned::owned(async move {
            writer.write_all(&huge).await.unwrap();
            writer.write_all(b"\nsmall\n").await.unwrap();
        });
        let mut lines = BoundedLines::new(BufReader::new(reader), 8 << 20);
        assert_eq!(lines.next_line().await.unwrap().unwrap().len, 4 << 20);
        assert_eq!(lines.next_line().await.unwrap().unwrap().head, b"small");
        assert!(lines.head.capacity() <= KEEP_CAPACITY);
        feed.await.unwrap();
    }

    #[test]
    fn a_cut_line_says_so_in_the_log() {
        let line = Line {
            head: b"ab\xff",
            tail: b"",
            len: 10,
        };
        assert_eq!(
            line.to_log_text(99),
            "ab\u{fffd}… (line of 10 bytes cut at 3)"
        );
        assert_eq!(line.to_log_text(1), "a… (line of 10 bytes cut at 1)");
    }
}
