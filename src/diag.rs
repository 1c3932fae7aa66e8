//! User-facing diagnostics that point at the text: `file:line:col`, the source line,
//! a caret under the offending span and a one-line hint.
//!
//! This module never reads files: callers hand in the source text they already hold.

use std::fmt::Write as _;
use std::ops::Range;

/// One problem found in a source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Where the problem is; `None` when it concerns the file as a whole.
    pub span: Option<Range<usize>>,
    /// Short text printed under the caret.
    pub label: String,
    /// Further places that explain the problem (e.g. the first use of a duplicate port).
    pub related: Vec<(Range<usize>, String)>,
    pub hint: Option<String>,
    /// A secret not set yet (`auth` or a header names it): the file is unfinished
    /// rather than wrong, so an edit may leave such a problem as it found it.
    pub pending: bool,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            label: String::new(),
            related: Vec::new(),
            hint: None,
            pending: false,
        }
    }

    /// Marks the problem as a secret not set yet (see [`Self::pending`]).
    #[must_use]
    pub fn pending(mut self) -> Self {
        self.pending = true;
        self
    }

    pub fn at(mut self, span: Option<Range<usize>>, label: impl Into<String>) -> Self {
        self.span = span;
        self.label = label.into();
        self
    }

    pub fn related(mut self, span: Option<Range<usize>>, label: impl Into<String>) -> Self {
        if let Some(span) = span {
            self.related.push((span, label.into()));
        }
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the diagnostic against `source`, naming the file as `file`. For many
    /// diagnostics of one text, build its [`LineIndex`] once and use [`Self::render_in`].
    pub fn render(&self, file: &str, source: &str) -> String {
        self.render_in(file, &LineIndex::new(source))
    }

    /// Renders the diagnostic against the text `index` was built from.
    pub fn render_in(&self, file: &str, index: &LineIndex<'_>) -> String {
        let mut out = format!("error: {}\n", self.message);
        match &self.span {
            Some(span) => render_snippet(&mut out, file, index, span, &self.label),
            None => {
                let _ = writeln!(out, "  --> {file}");
            }
        }
        for (span, label) in &self.related {
            render_snippet(&mut out, file, index, span, label);
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = help: {hint}");
        }
        out
    }
}

/// Where every line of a text starts, found in one pass: the line of an offset is
/// then a binary search, not a count of the newlines before it. (Counting from the
/// top for each of thousands of diagnostics made rendering them quadratic.)
#[derive(Debug)]
pub struct LineIndex<'s> {
    source: &'s str,
    /// The byte offset of each line's first character; the first is 0.
    starts: Vec<usize>,
    /// Columns are then byte counts (a one-line file's columns cost no scan).
    ascii: bool,
}

impl<'s> LineIndex<'s> {
    pub fn new(source: &'s str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            source,
            starts,
            ascii: source.is_ascii(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset; an offset past the
    /// end, or inside a character, is moved back to the nearest place in the text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.source, offset.min(self.source.len()));
        let line = self.line_of(offset);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = if self.ascii {
            offset - start + 1
        } else {
            self.source[start..offset].chars().count() + 1
        };
        (line, col)
    }

    /// The 1-based line holding `offset` (a char boundary within the text).
    fn line_of(&self, offset: usize) -> usize {
        // Lines starting at or before `offset`: at least the first.
        self.starts.partition_point(|&start| start <= offset).max(1)
    }

    /// The bytes of 1-based `line`, without its `\n`.
    fn line_span(&self, line: usize) -> Range<usize> {
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let end = self
            .starts
            .get(line)
            .map_or(self.source.len(), |next| next - 1);
        start..end
    }
}

/// 1-based line and column (in characters) of a byte offset, for a single lookup
/// (many go through one [`LineIndex`]).
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(source).line_col(offset)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn render_snippet(
    out: &mut String,
    file: &str,
    index: &LineIndex<'_>,
    span: &Range<usize>,
    label: &str,
) {
    let source = index.source;
    let (line, col) = index.line_col(span.start);
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let line_span = index.line_span(line);
    let text = source[line_span.clone()].trim_end_matches('\r');
    let end = floor_char_boundary(source, span.end.clamp(start, line_span.end));
    let width = source[start..end].chars().count().max(1);
    let gutter = " ".repeat(line.to_string().len());
    let _ = writeln!(out, "{gutter}--> {file}:{line}:{col}");
    let _ = writeln!(out, "{gutter} |");
    let _ = writeln!(out, "{line} | {text}");
    let pad = " ".repeat(col - 1);
    let carets = "^".repeat(width);
    let label = if label.is_empty() {
        String::new()
    } else {
        format!(" {label}")
    };
    let _ = writeln!(out, "{gutter} | {pad}{carets}{label}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let src = "version = 1\n[servers.a]\nprot = 80\n";
        let start = src.find("prot").unwrap_or_default();
        let d = Diagnostic::new("unknown field `prot`")
            .at(Some(start..start + 4), "not a server field")
            .hint("did you mean `port`?");
        assert_eq!(
            d.render("mcpctl.toml", src),
            "error: unknown field `prot`\n \
             --> mcpctl.toml:3:1\n  |\n3 | prot = 80\n  | ^^^^ not a server field\n  \
             = help: did you mean `port`?\n"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let src = "a = \"é\" # x\n";
        let offset = src.find('#').unwrap_or_default();
        assert_eq!(line_col(src, offset), (1, 9));
    }

    /// What the index replaces: counting from the start of the text.
    fn line_col_by_scanning(source: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, source[line_start..offset].chars().count() + 1)
    }

    #[test]
    fn the_line_index_agrees_with_scanning_at_every_offset() {
        for src in [
            "",
            "\n",
            "\n\n",
            "abc",
            "version = 1\n[servers.a]\nport = 8000\n",
            "no newline at the end\nx",
            "crlf = 1\r\nnext = 2\r\n",
            "a = \"é\" # x\nb = \"日本\"\n\nc = 1",
        ] {
            let index = LineIndex::new(src);
            for offset in 0..=src.len() + 2 {
                assert_eq!(
                    index.line_col(offset),
                    line_col_by_scanning(src, offset),
                    "{src:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn line_spans_exclude_the_newline() {
        let src = "one\ntwo\r\n\nlast";
        let index = LineIndex::new(src);
        let lines: Vec<&str> = (1..=4).map(|l| &src[index.line_span(l)]).collect();
        assert_eq!(lines, ["one", "two\r", "", "last"]);
    }

    #[test]
    fn rendering_with_one_index_is_rendering_each_alone() {
        let src = "version = 1\n[servers.a]\nport = 8000\n[servers.b]\nport = 8000\n";
        let at = |needle: &str, nth: usize| {
            let start = src.match_indices(needle).nth(nth).map_or(0, |(i, _)| i);
            Some(start..start + needle.len())
        };
        let diags = [
            Diagnostic::new("port 8000 is used by both `a` and `b`")
                .at(at("8000", 1), "`b` uses it here")
                .related(at("8000", 0), "`a` uses it here"),
            Diagnostic::new("whole file"),
        ];
        let index = LineIndex::new(src);
        for d in &diags {
            assert_eq!(d.render_in("f", &index), d.render("f", src));
        }
        assert!(diags[0].render_in("f", &index).contains("f:5:8"));
    }

    #[test]
    fn span_past_end_is_clamped() {
        let src = "abc";
        let d = Diagnostic::new("m").at(Some(10..20), "");
        assert!(d.render("f", src).contains("f:1:4"));
    }
}
