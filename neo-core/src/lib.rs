//! NEO node behaviour, without I/O: what every node (master, storage,
//! admin, client) does, as deterministic state machines that consume
//! events and emit actions. Sockets, files, threads and clocks belong to
//! the runtime (neo-mio) or to a simulator.
//!
//! - [`io`]: the input/output contract shared by every node kind.
//! - [`net`]: connection bookkeeping (message ids, pending requests).
//! - [`nodes`]: the node table.
//! - [`pt`]: the partition table and the master's algorithms on it.
//! - [`data`]: object data as stored and transmitted.
//! - [`time`], [`rng`]: time and randomness, both inputs.

pub mod admin;
pub mod bootstrap;
pub mod data;
pub mod io;
pub mod master;
pub mod net;
pub mod nodes;
pub mod pt;
pub mod rng;
pub mod storage;
pub mod throttle;
pub mod time;

pub use io::{ConnId, Input, Level, Node, Output};
pub use time::Time;
