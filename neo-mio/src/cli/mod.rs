//! Subcommands of the `neo` binary that are more than option plumbing.

pub mod wire;
