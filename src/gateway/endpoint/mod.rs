//! An endpoint: a set of servers behind one port (see `crate::model::endpoint`).

pub mod table;
