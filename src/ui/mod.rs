//! The dashboard (`mcpctl ui`), pure: the page's files, its logins, the hour of
//! samples it plots and the events it lists. The daemon serves it (`daemon/ui/`): it
//! feeds these with what it measures and answers the page's requests with them.

pub mod assets;
pub mod events;
pub mod history;
pub mod logins;
