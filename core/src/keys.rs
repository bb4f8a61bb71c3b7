//! Typed keys into the scheduler's tables, and [`Table`], the slab they
//! index. A peer key cannot index the request table: each table takes only
//! its own key type.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

use slab::Slab;

/// A key of one table: a slab position with a type of its own.
pub(crate) trait Key: Copy {
    fn from_index(index: usize) -> Self;
    fn index(self) -> usize;
}

macro_rules! keys {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) struct $name(u32);

        impl Key for $name {
            fn from_index(index: usize) -> Self {
                // Tables stay far below 2³² entries (requests: 2²⁴).
                Self(u32::try_from(index).unwrap_or(u32::MAX))
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}

keys! {
    /// A live request's state.
    ReqKey;
    /// A live peer.
    PeerKey;
    /// A live (not cancelled) group.
    GroupKey;
    /// An interned host (host and port).
    HostKey;
    /// A running attempt.
    AttemptKey;
    /// One peer's waiting requests of one priority to one host.
    QueueKey;
}

/// A slab of `T` indexed by the key type `K`.
pub(crate) struct Table<K, T> {
    slab: Slab<T>,
    key: PhantomData<fn(K) -> K>,
}

impl<K, T> Default for Table<K, T> {
    fn default() -> Self {
        Self { slab: Slab::new(), key: PhantomData }
    }
}

impl<K, T: fmt::Debug> fmt::Debug for Table<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.slab.iter()).finish()
    }
}

impl<K: Key, T> Table<K, T> {
    pub(crate) fn insert(&mut self, value: T) -> K {
        K::from_index(self.slab.insert(value))
    }

    /// The key the next [`Table::insert`] returns.
    pub(crate) fn vacant_key(&self) -> K {
        K::from_index(self.slab.vacant_key())
    }

    pub(crate) fn remove(&mut self, key: K) -> T {
        self.slab.remove(key.index())
    }

    pub(crate) fn get(&self, key: K) -> Option<&T> {
        self.slab.get(key.index())
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        self.slab.iter().map(|(i, v)| (K::from_index(i), v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slab.iter().map(|(_, v)| v)
    }

    /// Give back spare capacity; an empty table starts afresh.
    pub(crate) fn shrink_to_fit(&mut self) {
        if self.slab.is_empty() {
            self.slab = Slab::new();
        } else {
            self.slab.shrink_to_fit();
        }
    }
}

impl<K: Key, T> Index<K> for Table<K, T> {
    type Output = T;
    fn index(&self, key: K) -> &T {
        &self.slab[key.index()]
    }
}

impl<K: Key, T> IndexMut<K> for Table<K, T> {
    fn index_mut(&mut self, key: K) -> &mut T {
        &mut self.slab[key.index()]
    }
}
