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
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            label: String::new(),
            related: Vec::new(),
            hint: None,
        }
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

    /// Renders the diagnostic against `source`, naming the file as `file`.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        match &self.span {
            Some(span) => render_snippet(&mut out, file, source, span, &self.label),
            None => {
                let _ = writeln!(out, "  --> {file}");
            }
        }
        for (span, label) in &self.related {
            render_snippet(&mut out, file, source, span, label);
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = help: {hint}");
        }
        out
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn render_snippet(out: &mut String, file: &str, source: &str, span: &Range<usize>, label: &str) {
    let (line, col) = line_col(source, span.start);
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let text = source[line_start..line_end].trim_end_matches('\r');
    let end = floor_char_boundary(source, span.end.clamp(start, line_end));
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

    #[test]
    fn span_past_end_is_clamped() {
        let src = "abc";
        let d = Diagnostic::new("m").at(Some(10..20), "");
        assert!(d.render("f", src).contains("f:1:4"));
    }
}
