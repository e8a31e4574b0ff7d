//! Subcommands of the `neo` binary that are more than option plumbing.

pub mod ctl;
pub mod wire;
