//! Turns values into output: the plan as Terraform-style text or as JSON. Pure: it
//! writes to strings and never re-decides anything the plan decided.

mod human;
mod json;
#[cfg(test)]
mod plan_tests;
pub mod status;

pub use human::plan_text;
pub use json::plan_json;

/// Whether to emit ANSI colour. The CLI decides (terminal, `NO_COLOR`); renderers obey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour(pub bool);

impl Colour {
    pub(crate) fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub(crate) fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    pub(crate) fn red(self, t: &str) -> String {
        self.paint("31", t)
    }
    pub(crate) fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    pub(crate) fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
}
pub mod k8s;
