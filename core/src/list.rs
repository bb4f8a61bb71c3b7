//! Intrusive doubly linked lists over slab keys.
//!
//! A peer and a group each keep their live requests in such a list, in
//! acceptance order (ascending `RequestId`), so cancelling all of them emits
//! in id order without sorting, and unlinking one request is O(1).

use slab::Slab;

/// "No item": slab keys stay below 2²⁴, so this never names one.
const NIL: u32 = u32::MAX;

/// The links one list threads through an item (8 bytes: `NIL` for none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    prev: u32,
    next: u32,
}

impl Default for Link {
    fn default() -> Self {
        Self { prev: NIL, next: NIL }
    }
}

fn opt(k: u32) -> Option<u32> {
    (k != NIL).then_some(k)
}

/// Selects which of an item's links a list uses.
pub(crate) type LinkOf<T> = fn(&mut T) -> &mut Link;

/// Head, tail and length of one list.
#[derive(Debug, Default)]
pub(crate) struct List {
    head: Option<u32>,
    tail: Option<u32>,
    len: usize,
}

impl List {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push_back<T>(&mut self, slab: &mut Slab<T>, key: u32, link: LinkOf<T>) {
        *link(&mut slab[key as usize]) = Link { prev: self.tail.unwrap_or(NIL), next: NIL };
        match self.tail {
            Some(t) => link(&mut slab[t as usize]).next = key,
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        self.len += 1;
    }

    pub(crate) fn unlink<T>(&mut self, slab: &mut Slab<T>, key: u32, link: LinkOf<T>) {
        let Link { prev, next } = std::mem::take(link(&mut slab[key as usize]));
        match opt(prev) {
            Some(p) => link(&mut slab[p as usize]).next = next,
            None => self.head = opt(next),
        }
        match opt(next) {
            Some(n) => link(&mut slab[n as usize]).prev = prev,
            None => self.tail = opt(prev),
        }
        self.len -= 1;
    }

    /// The keys in list order.
    pub(crate) fn keys<T>(&self, slab: &mut Slab<T>, link: LinkOf<T>) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len);
        let mut cur = self.head;
        while let Some(k) = cur {
            out.push(k);
            cur = opt(link(&mut slab[k as usize]).next);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(Link);
    fn l(i: &mut Item) -> &mut Link {
        &mut i.0
    }

    #[test]
    fn push_unlink_keeps_order() {
        let mut slab = Slab::new();
        let mut list = List::default();
        let keys: Vec<u32> = (0..5).map(|_| slab.insert(Item(Link::default())) as u32).collect();
        for &k in &keys {
            list.push_back(&mut slab, k, l);
        }
        list.unlink(&mut slab, keys[0], l);
        list.unlink(&mut slab, keys[2], l);
        list.unlink(&mut slab, keys[4], l);
        assert_eq!(list.keys(&mut slab, l), vec![keys[1], keys[3]]);
        assert_eq!(list.len(), 2);
        list.unlink(&mut slab, keys[1], l);
        list.unlink(&mut slab, keys[3], l);
        assert_eq!(list.keys(&mut slab, l), Vec::<u32>::new());
        assert!(list.head.is_none() && list.tail.is_none());
    }
}
