//! `MemoryStore` against the store scenarios every `Store` must pass (the
//! same ones LMDB runs in neo-mio).

use neo_core::storage::memory::MemoryStore;

neo_core::store_scenarios!(|_name: &str| ((), MemoryStore::new()));
