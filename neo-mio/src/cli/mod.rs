//! Subcommands of the `neo` binary that are more than option plumbing.

pub mod bench;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod digest;
pub mod local;
pub mod node;
pub mod progress;
pub mod wire;
