//! The NEO runtime: what turns neo-core's state machines into processes.
//!
//! For now it holds the command-line tools of the `neo` binary; the mio
//! event loop, the LMDB store and the node subcommands come next.

pub mod cli;
