//! Finds where a path such as `servers.web.port` is written in the source text, so
//! errors found after deserialising (duplicate ports, unknown profiles) can still
//! point at the text. Pure: it parses the string it is given.

use std::ops::Range;

use toml_edit::{Document, Item};

/// A path into the document, one key per segment.
pub type KeyPath = Vec<String>;

/// Builds a [`KeyPath`] from string segments.
pub fn key_path<S: AsRef<str>>(segments: &[S]) -> KeyPath {
    segments.iter().map(|s| s.as_ref().to_string()).collect()
}

pub struct Locator<'a> {
    doc: Option<Document<&'a str>>,
}

impl<'a> Locator<'a> {
    pub fn new(source: &'a str) -> Self {
        Self {
            doc: Document::parse(source).ok(),
        }
    }

    /// The span of the value at `path`, or of its key when the value has none
    /// (a table, whose span is its header).
    pub fn value<S: AsRef<str>>(&self, path: &[S]) -> Option<Range<usize>> {
        let (key_span, item) = self.find(path)?;
        item.span().or(key_span)
    }

    /// The span of the last key of `path` (a name in a header or before `=`).
    pub fn key<S: AsRef<str>>(&self, path: &[S]) -> Option<Range<usize>> {
        let (key_span, item) = self.find(path)?;
        key_span.or_else(|| item.span())
    }

    fn find<S: AsRef<str>>(&self, path: &[S]) -> Option<(Option<Range<usize>>, &Item)> {
        let mut item = self.doc.as_ref()?.as_item();
        let mut key_span = None;
        for segment in path {
            let (key, next) = item.as_table_like()?.get_key_value(segment.as_ref())?;
            key_span = key.span();
            item = next;
        }
        Some((key_span, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(src: &str, span: Option<Range<usize>>) -> &str {
        span.map_or("", |s| &src[s])
    }

    #[test]
    fn finds_values_keys_and_inline_tables() {
        let src = "version = 1\n[servers.web]\nport = 8000\nenv = { A = \"x\" }\n";
        let loc = Locator::new(src);
        assert_eq!(text(src, loc.value(&["servers", "web", "port"])), "8000");
        assert_eq!(text(src, loc.key(&["servers", "web"])), "web");
        assert_eq!(text(src, loc.key(&["servers", "web", "env", "A"])), "A");
        assert_eq!(
            text(src, loc.value(&["servers", "web", "env", "A"])),
            "\"x\""
        );
        assert_eq!(loc.value(&["servers", "nope"]), None);
    }
}
