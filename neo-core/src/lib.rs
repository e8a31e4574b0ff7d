//! NEO node behaviour, without I/O: what every node (master, storage,
//! admin, client) does, as deterministic state machines that consume
//! events and emit actions. Sockets, files, threads and clocks belong to
//! the runtime (neo-mio) or to a simulator.
//!
//! - [`data`]: object data as stored and transmitted (compression,
//!   checksums).

pub mod data;
