//! The terminal edge for messages: stderr writes that never panic.
//!
//! `eprintln!` panics (exit 101) when stderr is a closed pipe or a full disk. A
//! message that cannot be shown is not worth failing the command for: it is
//! dropped, and the command ends with its own exit code. (Stdout goes through
//! `cli::print`, which returns the error: a reader that went away means success.)

use std::fmt;
use std::io::{self, Write};

/// Writes one line to stderr; a write that fails is ignored.
pub fn line(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// `eprintln!` without the panic: one line to stderr, dropped when stderr is gone.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
