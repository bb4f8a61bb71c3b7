//! Interned hosts (host + port) with their running-transfer counts, for
//! `max_per_host`, and their pauses (host health: a 429 or 503 with
//! `Retry-After` holds new starts to the host until a deadline).

use std::collections::BTreeSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use smallvec::SmallVec;
use url::Url;

use crate::keys::{HostKey, Table};

#[derive(Debug)]
struct Host {
    name: Box<str>,
    port: u16,
    /// Live requests that point at this host.
    refs: usize,
    /// Transfers to this host running now.
    running: usize,
    /// No new start to this host before this instant.
    paused_until: Option<Instant>,
}

/// A fixed multiply-rotate hash over 8-byte words (the shape of rustc's
/// FxHash): the same on every run, a few nanoseconds for a host name.
/// Host names come from URLs the caller enqueues; a caller that floods one
/// scheduler with colliding names only slows its own lookups.
#[derive(Default)]
struct WordHash(u64);

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(tail) ^ bytes.len() as u64).wrapping_mul(K);
    }
}

/// Host name → (port, id) pairs (usually one). Only looked up, never
/// iterated, so hash order cannot leak into outputs.
#[allow(clippy::disallowed_types)]
type ByName = std::collections::HashMap<Box<str>, SmallVec<[(u16, HostKey); 1]>, BuildHasherDefault<WordHash>>;

/// Interning table. A host lives while any live request refers to it, so the
/// table tracks live requests, not history. Looking up a known host
/// allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    by_name: ByName,
    hosts: Table<HostKey, Host>,
    /// The armed pauses, `(end, host)`, earliest first.
    pauses: BTreeSet<(Instant, HostKey)>,
}

impl Hosts {
    /// The per-host key of a URL: its host name (lower-cased by `url`) and
    /// port (known defaults filled in), or `None` when it has no host.
    pub(crate) fn key_of(url: &Url) -> Option<(&str, u16)> {
        let host = url.host_str().filter(|h| !h.is_empty())?;
        Some((host, url.port_or_known_default().unwrap_or(0)))
    }

    /// Take a reference to the host, interning it if new.
    pub(crate) fn acquire(&mut self, name: &str, port: u16) -> HostKey {
        if let Some(ports) = self.by_name.get(name) {
            if let Some(&(_, h)) = ports.iter().find(|(p, _)| *p == port) {
                self.hosts[h].refs += 1;
                return h;
            }
        }
        let h = self.hosts.insert(Host { name: name.into(), port, refs: 1, running: 0, paused_until: None });
        self.by_name.entry(name.into()).or_default().push((port, h));
        h
    }

    /// Drop a reference; the host is forgotten when none remain.
    pub(crate) fn release(&mut self, h: HostKey) {
        let host = &mut self.hosts[h];
        host.refs -= 1;
        if host.refs == 0 {
            debug_assert_eq!(host.running, 0);
            let host = self.hosts.remove(h);
            // Forgotten with the host: no live request points at it.
            if let Some(at) = host.paused_until {
                self.pauses.remove(&(at, h));
            }
            if let Some(ports) = self.by_name.get_mut(&host.name) {
                ports.retain(|&mut (p, _)| p != host.port);
                if ports.is_empty() {
                    self.by_name.remove(&host.name);
                }
            }
        }
    }

    pub(crate) fn running(&self, h: HostKey) -> usize {
        self.hosts[h].running
    }

    /// Only [`Running`](crate::running::Running) counts starts and stops.
    pub(crate) fn started(&mut self, h: HostKey) {
        self.hosts[h].running += 1;
    }

    pub(crate) fn stopped(&mut self, h: HostKey) {
        self.hosts[h].running -= 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Hold new starts to `h` until `until` (a later pause than one already
    /// armed replaces it; an earlier one changes nothing).
    pub(crate) fn pause(&mut self, h: HostKey, until: Instant) {
        let host = &mut self.hosts[h];
        if host.paused_until.is_some_and(|at| at >= until) {
            return;
        }
        if let Some(at) = host.paused_until.replace(until) {
            self.pauses.remove(&(at, h));
        }
        self.pauses.insert((until, h));
    }

    /// Whether new starts to `h` are held at `now`.
    pub(crate) fn is_paused(&self, h: HostKey, now: Instant) -> bool {
        self.hosts[h].paused_until.is_some_and(|at| at > now)
    }

    /// When the pause of the host of `url` ends, if it is paused at `now`.
    pub(crate) fn paused_until(&self, url: &Url, now: Instant) -> Option<Instant> {
        let (name, port) = Self::key_of(url)?;
        let &(_, h) = self.by_name.get(name)?.iter().find(|(p, _)| *p == port)?;
        self.hosts[h].paused_until.filter(|&at| at > now)
    }

    /// The earliest end of a pause.
    pub(crate) fn next_resume(&self) -> Option<Instant> {
        self.pauses.first().map(|&(at, _)| at)
    }

    /// End the pauses due at `now`.
    pub(crate) fn resume_due(&mut self, now: Instant) {
        while let Some(&(at, h)) = self.pauses.first() {
            if at > now {
                return;
            }
            self.pauses.pop_first();
            self.hosts[h].paused_until = None;
        }
    }
}
