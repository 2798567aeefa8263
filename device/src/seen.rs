//! The correlation ids a device has recently run, so a redelivered request
//! (QoS 1 retry, a gateway resending after a reconnect) runs at most once.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;

/// How many recent correlation ids a device remembers.
pub(crate) const REMEMBERED: usize = 1024;

/// A bounded, insertion-ordered set of correlation ids.
///
/// Ids are kept as 64-bit keyed hashes (8 bytes each, at most 8 KiB per
/// device) because one process runs thousands of devices; the per-device
/// random key makes a false "duplicate" a 2^-54 event even when full. A
/// linear scan over at most 1024 integers is cheaper than a hash set's
/// bookkeeping at this size.
pub(crate) struct Seen {
    hasher: RandomState,
    ids: VecDeque<u64>,
}

impl Seen {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            ids: VecDeque::new(),
        }
    }

    /// Records `id`; `false` if it was already there (a duplicate).
    pub(crate) fn insert(&mut self, id: &[u8]) -> bool {
        let key = self.hasher.hash_one(id);
        if self.ids.contains(&key) {
            return false;
        }
        if self.ids.len() == REMEMBERED {
            self.ids.pop_front();
        }
        self.ids.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_window() {
        let mut s = Seen::new();
        assert!(s.insert(b"a"));
        assert!(!s.insert(b"a"));
        assert!(s.insert(b"b"));
        for i in 0..REMEMBERED as u32 {
            assert!(s.insert(&i.to_be_bytes()));
        }
        assert_eq!(s.ids.len(), REMEMBERED);
        // "a" and "b" have been pushed out; the latest ones are remembered.
        assert!(s.insert(b"a"));
        assert!(!s.insert(&(REMEMBERED as u32 - 1).to_be_bytes()));
    }
}
