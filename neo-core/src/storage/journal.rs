//! The store behind a write counter: the storage reaches it for writing
//! only through [`Journal::write`], which counts the write. Answers that
//! promise durability are held until the count they were sent at is
//! synced ([`crate::net::Net::answer_after`]), so no write can be made
//! without the answers after it waiting for it.

use std::ops::Deref;

use super::store::Store;

#[derive(Debug)]
pub(super) struct Journal<S> {
    store: S,
    /// Writes made, and made durable (`synced <= written`).
    written: u64,
    synced: u64,
}

impl<S: Store> Journal<S> {
    pub(super) fn new(store: S) -> Journal<S> {
        Journal {
            store,
            written: 0,
            synced: 0,
        }
    }

    /// The store, for one write (or several that become durable together).
    pub(super) fn write(&mut self) -> &mut S {
        self.written += 1;
        &mut self.store
    }

    /// Writes made so far: what an answer sent now waits for.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    /// Writes made durable so far (never more than [`written`]).
    ///
    /// [`written`]: Self::written
    pub(super) fn synced(&self) -> u64 {
        self.synced
    }

    /// Whether writes wait to be made durable.
    pub(super) fn is_behind(&self) -> bool {
        self.synced < self.written
    }

    /// Makes every write so far durable; returns how far that is.
    pub(super) fn sync(&mut self) -> u64 {
        self.store.sync();
        self.synced = self.written;
        debug_assert!(self.synced <= self.written);
        self.synced
    }

    /// The store, bypassing the count: only for the embedder (a
    /// simulator's crash, a test's corruption).
    pub(super) fn unjournaled(&mut self) -> &mut S {
        &mut self.store
    }
}

impl<S> Deref for Journal<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.store
    }
}
