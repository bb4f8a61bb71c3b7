//! Interned hosts (host + port) with their running-transfer counts, for
//! `max_per_host`.

use std::collections::BTreeMap;

use slab::Slab;
use url::Url;

/// Host name (lower-cased by `url`) and port (known defaults filled in).
pub(crate) type HostKey = (String, u16);

#[derive(Debug)]
struct Host {
    key: HostKey,
    /// Live requests that point at this host.
    refs: usize,
    /// Transfers to this host running now.
    running: usize,
}

/// Interning table. A host lives while any live request refers to it, so the
/// table tracks live requests, not history.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    by_key: BTreeMap<HostKey, u32>,
    hosts: Slab<Host>,
}

impl Hosts {
    /// The per-host key of a URL, or `None` when it has no host.
    pub(crate) fn key_of(url: &Url) -> Option<HostKey> {
        let host = url.host_str()?;
        if host.is_empty() {
            return None;
        }
        Some((host.to_owned(), url.port_or_known_default().unwrap_or(0)))
    }

    /// Take a reference to the host, interning it if new.
    pub(crate) fn acquire(&mut self, key: HostKey) -> u32 {
        if let Some(&h) = self.by_key.get(&key) {
            self.hosts[h as usize].refs += 1;
            return h;
        }
        let h = self.hosts.insert(Host { key: key.clone(), refs: 1, running: 0 }) as u32;
        self.by_key.insert(key, h);
        h
    }

    /// Drop a reference; the host is forgotten when none remain.
    pub(crate) fn release(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        host.refs -= 1;
        if host.refs == 0 {
            debug_assert_eq!(host.running, 0);
            let host = self.hosts.remove(h as usize);
            self.by_key.remove(&host.key);
        }
    }

    pub(crate) fn running(&self, h: u32) -> usize {
        self.hosts[h as usize].running
    }

    pub(crate) fn started(&mut self, h: u32) {
        self.hosts[h as usize].running += 1;
    }

    pub(crate) fn stopped(&mut self, h: u32) {
        self.hosts[h as usize].running -= 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.hosts.len()
    }
}
