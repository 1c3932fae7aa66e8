//! The supervision of one instance: a handle (`handle`) to a task (`task`) that runs
//! the server under the shim (`command`), probes it (`probe`), captures its output
//! (`output`), checks its health (`health`), watches a remote one (`remote`), and
//! restarts it by the pure rules of `policy`.

mod child;
mod command;
mod handle;
mod health;
mod output;
pub mod policy;
mod probe;
mod remote;
mod state;
mod task;

pub use child::{Input, Launched, Launcher, Launching, Os, Output, Processes, Signal};
pub use handle::{Control, Handle, InstanceCtx, start};
pub use state::{Phase, Process, State, View};
pub use task::describe_exit;

use command::shim_command;
use health::until_unhealthy;
use output::{SharedLog, drain, log_notification, pump_lines, write_log};
use probe::probe;
use remote::watch_remote;
use task::{Once, run};

#[cfg(test)]
mod tests;
