//! The NEO runtime: what turns neo-core's state machines into processes.
//!
//! For now it holds the command-line tools of the `neo` binary and the
//! storage node's LMDB store ([`lmdb`]); the mio event loop and the node
//! subcommands come next.

pub mod cli;
pub mod lmdb;
