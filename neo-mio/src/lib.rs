//! The NEO runtime: what turns neo-core's state machines into processes.
//!
//! - [`runtime`]: the mio event loop hosting any neo-core node;
//! - [`lmdb`]: the storage node's store, on LMDB;
//! - [`client`]: a blocking client API over neo-core's client;
//! - [`log`]: process logging;
//! - [`cli`]: the subcommands of the `neo` binary.

pub mod cli;
pub mod client;
pub mod lmdb;
pub mod log;
pub mod runtime;
