//! The documented exit codes, chosen in one place.

use std::process::ExitCode;

/// Success; for `plan --detailed-exitcode`: no changes.
pub const OK: u8 = 0;
/// Any error: bad input (a usage error too, unlike clap's 2), bad file, failed operation.
pub const ERROR: u8 = 1;
/// `plan --detailed-exitcode` only: the plan has changes.
pub const CHANGES: u8 = 2;

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
