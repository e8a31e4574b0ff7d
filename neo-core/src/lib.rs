#![warn(missing_docs)]
//! NEO node behaviour, without I/O: what every node — master, storage,
//! admin, client — does, as deterministic state machines. Sockets, files,
//! threads and clocks belong to the runtime (neo-mio) or to a simulator.
//!
//! # The contract
//!
//! Every node kind implements [`Node`], in the style of quinn-proto:
//!
//! - **inputs**: [`Node::handle`] takes the current [`Time`] and an
//!   [`Input`]: a connection came up, was accepted, failed or closed, a
//!   packet arrived (with its message id), the node's timer fired;
//! - **outputs**: [`Node::poll_output`] yields, in order, what the node
//!   wants done ([`Output`]): open a connection, send a packet with a
//!   message id, close a connection, sync the store (storage), log, exit, or
//!   a node-specific event for the application;
//! - **timers**: [`Node::poll_timeout`] tells when to feed
//!   [`Input::Timeout`];
//! - **mutators** specific to a kind (a client's operations, a storage's
//!   [`storage::Storage::sync_store`]) and **getters**.
//!
//! After creating a node and after every input, drain `poll_output` until
//! it returns `None`; then wait for the next input or the timeout. Time is
//! only ever an argument and randomness comes from a seed in the
//! configuration, so the same inputs give the same outputs: that is what
//! the simulator, the transcript snapshots and the fuzz targets rely on.
//!
//! The runtime owns the byte streams: it sends the handshake, encodes
//! packets (`neo_proto::encode`), decodes what arrives
//! (`neo_proto::Decoder`) and closes, without a word, a connection whose
//! bytes are not valid NEO — reporting [`Input::Closed`].
//!
//! # Example: a master and a storage driven by hand
//!
//! ```
//! use std::collections::VecDeque;
//! use neo_core::master::{Master, MasterConfig};
//! use neo_core::storage::{memory::MemoryStore, Storage, StorageConfig};
//! use neo_core::{ConnId, Input, Node, Output, Time, WallTime};
//! use neo_proto::{Address, ClusterState};
//!
//! // The monotonic clock (timers) and the wall clock (TIDs, timestamps).
//! let now = Time::from_nanos(1_000_000_000);
//! let wall = WallTime::from_unix_secs_f64(1_767_225_600.0);
//! let master_addr = Address::new("127.0.0.1", 10000);
//! let mut master = Master::new(
//!     MasterConfig {
//!         cluster: "demo".into(),
//!         bind: master_addr.clone(),
//!         masters: vec![master_addr.clone()],
//!         partitions: neo_proto::Partitions::new(4).unwrap(),
//!         replicas: 0,
//!         autostart: Some(1), // create the cluster with the first storage
//!         nid: None,
//!         storage_ping: MasterConfig::DEFAULT_STORAGE_PING,
//!     },
//!     now,
//!     wall,
//! );
//! let mut storage = Storage::new(
//!     StorageConfig {
//!         cluster: "demo".into(),
//!         bind: Address::new("127.0.0.1", 20000),
//!         masters: vec![master_addr],
//!         devpath: vec![],
//!         nid: None,
//!         seed: 1,
//!     },
//!     MemoryStore::new(),
//!     now,
//! )
//! .unwrap();
//!
//! // The storage asks for a connection to the master (after logging that it
//! // started): play the network.
//! let s_conn = std::iter::from_fn(|| storage.poll_output())
//!     .find_map(|output| match output {
//!         Output::Connect { conn, .. } => Some(conn),
//!         _ => None,
//!     })
//!     .unwrap();
//! let m_conn = ConnId::incoming(1);
//! master.handle(now, Input::Accepted { conn: m_conn });
//! storage.handle(now, Input::Connected { conn: s_conn });
//!
//! // Carry packets both ways until both are quiet.
//! for _ in 0..20 {
//!     let mut to_master = VecDeque::new();
//!     while let Some(output) = storage.poll_output() {
//!         match output {
//!             Output::Send { msg_id, packet, .. } => to_master.push_back((msg_id, packet)),
//!             Output::SyncStore => storage.sync_store(now),
//!             _ => {}
//!         }
//!     }
//!     for (msg_id, packet) in to_master {
//!         master.handle(now, Input::Packet { conn: m_conn, msg_id, packet });
//!     }
//!     let mut to_storage = VecDeque::new();
//!     while let Some(output) = master.poll_output() {
//!         if let Output::Send { msg_id, packet, .. } = output {
//!             to_storage.push_back((msg_id, packet));
//!         }
//!     }
//!     for (msg_id, packet) in to_storage {
//!         storage.handle(now, Input::Packet { conn: s_conn, msg_id, packet });
//!     }
//! }
//! assert_eq!(master.cluster_state(), Some(ClusterState::Running));
//! assert!(storage.is_operational());
//! ```
//!
//! # Modules
//!
//! - [`node`]: the contract. Internal: `net` (message ids, pending
//!   requests, outputs, the packet prologue every node shares), `identity`
//!   (what a node says when it identifies), `primary_link` (following the
//!   primary master: storages, admins, clients) over `bootstrap` and
//!   `throttle` (finding it, pacing), `liveness` (the primary's pings).
//! - [`node_table`]: the node table; [`pt`]: the partition table and the
//!   master's algorithms on it.
//! - [`master`], [`storage`], [`admin`], [`client`]: the node kinds.
//! - [`data`]: object data as stored and transmitted.
//! - [`time`], [`rng`]: time and randomness, both inputs.

pub mod admin;
mod bootstrap;
pub mod client;
pub mod data;
mod identity;
mod liveness;
pub mod master;
mod net;
pub mod node;
pub mod node_table;
mod primary_link;
pub mod pt;
pub mod rng;
pub mod storage;
mod throttle;
pub mod time;

pub use node::{ConnId, Input, Level, Node, Output};
pub use time::{Time, WallTime};
