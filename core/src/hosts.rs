//! Interned hosts (host + port) with their running-transfer counts, for
//! `max_per_host`.

use std::collections::BTreeMap;

use slab::Slab;
use url::Url;

#[derive(Debug)]
struct Host {
    name: Box<str>,
    port: u16,
    /// Live requests that point at this host.
    refs: usize,
    /// Transfers to this host running now.
    running: usize,
}

/// Interning table. A host lives while any live request refers to it, so the
/// table tracks live requests, not history. Looking up a known host
/// allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    /// Host name → (port, id) pairs (usually one).
    by_name: BTreeMap<Box<str>, Vec<(u16, u32)>>,
    hosts: Slab<Host>,
}

impl Hosts {
    /// The per-host key of a URL: its host name (lower-cased by `url`) and
    /// port (known defaults filled in), or `None` when it has no host.
    pub(crate) fn key_of(url: &Url) -> Option<(&str, u16)> {
        let host = url.host_str().filter(|h| !h.is_empty())?;
        Some((host, url.port_or_known_default().unwrap_or(0)))
    }

    /// Take a reference to the host, interning it if new.
    pub(crate) fn acquire(&mut self, name: &str, port: u16) -> u32 {
        if let Some(ports) = self.by_name.get(name) {
            if let Some(&(_, h)) = ports.iter().find(|(p, _)| *p == port) {
                self.hosts[h as usize].refs += 1;
                return h;
            }
        }
        let h = self.hosts.insert(Host { name: name.into(), port, refs: 1, running: 0 }) as u32;
        self.by_name.entry(name.into()).or_default().push((port, h));
        h
    }

    /// Drop a reference; the host is forgotten when none remain.
    pub(crate) fn release(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        host.refs -= 1;
        if host.refs == 0 {
            debug_assert_eq!(host.running, 0);
            let host = self.hosts.remove(h as usize);
            if let Some(ports) = self.by_name.get_mut(&host.name) {
                ports.retain(|&(p, _)| p != host.port);
                if ports.is_empty() {
                    self.by_name.remove(&host.name);
                }
            }
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
