//! A set that keeps its newest entries only, for what an engine remembers to drop
//! repeats (message hashes, verified inputs, key packages seen) without growing forever.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// A set of at most `capacity` entries; the oldest leave first.
#[derive(Debug)]
pub(crate) struct BoundedSet<T> {
    capacity: usize,
    set: HashSet<T>,
    order: VecDeque<T>,
}

impl<T: Hash + Eq + Clone> BoundedSet<T> {
    /// An empty set holding at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Adds `value`; false if it was there already.
    pub(crate) fn insert(&mut self, value: T) -> bool {
        if !self.set.insert(value.clone()) {
            return false;
        }
        self.order.push_back(value);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    /// Forgets `value`. Its place in the age order stays until it would have left (so this
    /// costs no scan): if `value` is added again meanwhile, it may leave that much early.
    pub(crate) fn forget(&mut self, value: &T) {
        self.set.remove(value);
    }

    /// Whether `value` is in the set.
    pub(crate) fn contains(&self, value: &T) -> bool {
        self.set.contains(value)
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.order.iter()
    }
}
