//! The client's object cache (cluster.md 6.4): per oid, revisions sorted
//! by serial, each valid until `next_serial` (`None`: the current one as
//! far as the client knows). Invalidations close the current revision;
//! lookups are "current", "before T" and "at S". The size is bounded
//! (least recently used revisions go first); the eviction policy is
//! internal (NEO/py uses a multi-queue), what is returned is not.

use std::collections::BTreeMap;

use bytes::Bytes;
use neo_proto::{Oid, Tid};

#[derive(Debug, Clone)]
struct Item {
    serial: Tid,
    next_serial: Option<Tid>,
    data: Bytes,
    /// Access clock, for eviction.
    used: u64,
}

/// A cached revision: data, serial, next serial.
pub(super) type Revision = (Bytes, Tid, Option<Tid>);

#[derive(Debug)]
pub(super) struct Cache {
    max_size: usize,
    size: usize,
    clock: u64,
    items: BTreeMap<Oid, Vec<Item>>,
    /// Access clock → revision, oldest first.
    lru: BTreeMap<u64, (Oid, Tid)>,
}

impl Cache {
    pub(super) fn new(max_size: usize) -> Cache {
        Cache {
            max_size,
            size: 0,
            clock: 0,
            items: BTreeMap::new(),
            lru: BTreeMap::new(),
        }
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    fn touch(&mut self, oid: Oid, index: usize) -> Revision {
        self.clock += 1;
        let item = &mut self.items.get_mut(&oid).unwrap()[index];
        self.lru.remove(&item.used);
        item.used = self.clock;
        self.lru.insert(self.clock, (oid, item.serial));
        (item.data.clone(), item.serial, item.next_serial)
    }

    fn found(&mut self, oid: Oid, index: Option<usize>) -> Option<Revision> {
        index.map(|index| self.touch(oid, index))
    }

    /// The current revision, if known.
    pub(super) fn load_current(&mut self, oid: Oid) -> Option<Revision> {
        let index = self.items.get(&oid).and_then(|items| {
            let last = items.len() - 1;
            items[last].next_serial.is_none().then_some(last)
        });
        self.found(oid, index)
    }

    /// The revision that was current just before `before`.
    pub(super) fn load_before(&mut self, oid: Oid, before: Tid) -> Option<Revision> {
        let index = self.items.get(&oid).and_then(|items| {
            let index = items.iter().rposition(|item| item.serial < before)?;
            let valid = items[index].next_serial.is_none_or(|next| next >= before);
            valid.then_some(index)
        });
        self.found(oid, index)
    }

    /// The revision with this serial.
    pub(super) fn load_at(&mut self, oid: Oid, serial: Tid) -> Option<Revision> {
        let index = self
            .items
            .get(&oid)
            .and_then(|items| items.iter().position(|item| item.serial == serial));
        self.found(oid, index)
    }

    /// Records a revision read or written.
    pub(super) fn store(&mut self, oid: Oid, data: Bytes, serial: Tid, next_serial: Option<Tid>) {
        if data.len() >= self.max_size {
            return;
        }
        let items = self.items.entry(oid).or_default();
        match items.binary_search_by_key(&serial, |item| item.serial) {
            Ok(index) => {
                let item = &mut items[index];
                if next_serial.is_some() {
                    item.next_serial = next_serial;
                }
                self.touch(oid, index);
                return;
            }
            Err(index) => {
                self.size += data.len();
                items.insert(
                    index,
                    Item {
                        serial,
                        next_serial,
                        data,
                        used: 0,
                    },
                );
                self.touch(oid, index);
            }
        }
        while self.size > self.max_size {
            let Some((_, (oid, serial))) = self.lru.pop_first() else {
                break;
            };
            self.remove(oid, serial);
        }
    }

    fn remove(&mut self, oid: Oid, serial: Tid) {
        if let Some(items) = self.items.get_mut(&oid) {
            if let Some(index) = items.iter().position(|item| item.serial == serial) {
                let item = items.remove(index);
                self.size -= item.data.len();
                self.lru.remove(&item.used);
            }
            if items.is_empty() {
                self.items.remove(&oid);
            }
        }
    }

    /// `tid` modified `oid`: its current revision ends there.
    pub(super) fn invalidate(&mut self, oid: Oid, tid: Tid) {
        if let Some(last) = self.items.get_mut(&oid).and_then(|items| items.last_mut()) {
            if last.next_serial.is_none() {
                last.next_serial = Some(tid);
            }
        }
    }

    /// Forgets every current revision (invalidations may have been
    /// missed while disconnected).
    pub(super) fn clear_current(&mut self) {
        let current: Vec<(Oid, Tid)> = self
            .items
            .iter()
            .filter_map(|(oid, items)| {
                let last = items.last()?;
                last.next_serial.is_none().then_some((*oid, last.serial))
            })
            .collect();
        for (oid, serial) in current {
            self.remove(oid, serial);
        }
    }

    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.lru.clear();
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn lookups_follow_validity_ranges() {
        let mut cache = Cache::new(1 << 20);
        let oid = Oid(1);
        assert_eq!(cache.load_before(oid, Tid(10)), None);
        cache.store(oid, b("5"), Tid(5), Some(Tid(10)));
        assert_eq!(
            cache.load_before(oid, Tid(10)),
            Some((b("5"), Tid(5), Some(Tid(10))))
        );
        assert_eq!(cache.load_current(oid), None);
        assert_eq!(cache.load_before(oid, Tid(11)), None, "10 is not cached");
        cache.store(oid, b("15"), Tid(15), None);
        assert_eq!(cache.load_current(oid), Some((b("15"), Tid(15), None)));
        assert_eq!(
            cache.load_before(oid, Tid(99)),
            Some((b("15"), Tid(15), None))
        );
        cache.invalidate(oid, Tid(20));
        assert_eq!(cache.load_current(oid), None);
        assert_eq!(
            cache.load_before(oid, Tid(20)),
            Some((b("15"), Tid(15), Some(Tid(20))))
        );
        assert_eq!(cache.load_before(oid, Tid(21)), None);
        assert_eq!(
            cache.load_at(oid, Tid(5)),
            Some((b("5"), Tid(5), Some(Tid(10))))
        );
        cache.store(oid, b("20"), Tid(20), None);
        cache.clear_current();
        assert_eq!(cache.load_current(oid), None);
        assert!(cache.load_at(oid, Tid(15)).is_some());
    }

    #[test]
    fn the_size_is_bounded_and_least_recently_used_goes_first() {
        let mut cache = Cache::new(10);
        cache.store(Oid(1), b("aaaa"), Tid(1), None);
        cache.store(Oid(2), b("bbbb"), Tid(1), None);
        assert!(cache.load_current(Oid(1)).is_some()); // 2 is now older
        cache.store(Oid(3), b("cccc"), Tid(1), None);
        assert!(cache.load_current(Oid(2)).is_none());
        assert!(cache.load_current(Oid(1)).is_some());
        cache.store(Oid(4), b("too large!!"), Tid(1), None);
        assert!(cache.load_current(Oid(4)).is_none());
    }
}
