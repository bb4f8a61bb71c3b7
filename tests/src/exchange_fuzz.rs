//! The `attempt` fuzz target's body, kept here so proptest runs it on
//! stable too: attempts in a row against a model resource whose server
//! changes versions, ignores `Range` or `If-Range`, lies about
//! `Content-Range`, `Content-Length` and totals, sends over-long bodies,
//! cuts bodies short, resets, redirects and fails. The bytes it sends are
//! always true bytes of the version it names (a server that sends one
//! version's bytes under another's `ETag` cannot be caught by anyone).
//!
//! Checked after every exchange: the sink holds a prefix of the wanted
//! range of exactly one version (never two spliced, never a byte out of
//! place); when the request completes, it holds the whole wanted range of
//! one version; a writer sink is never asked to start over.

use weir::{NetError, RequestMethod};
use weir_http::attempt::End;

use crate::exchange::{is_one_version, play, Body, ModelSink, Played};

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn version(len: usize, seed: u8, etag: bool) -> Body {
    let bytes = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed)).collect();
    Body { bytes, etag: etag.then(|| format!("\"v{seed}\"")) }
}

fn prefix_of_one_version(sink: &[u8], versions: &[Body], range: Option<(u64, Option<u64>)>) -> bool {
    let (start, end) = range.unwrap_or((0, None));
    versions.iter().any(|v| {
        let len = v.bytes.len() as u64;
        let from = start.min(len) as usize;
        let to = end.map_or(len, |e| e.saturating_add(1).min(len)) as usize;
        let want = v.bytes.get(from..to.max(from)).unwrap_or(&[]);
        want.starts_with(sink)
    })
}

/// Run one fuzz case. Panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let mut r = Reader(data);
    let flags = r.u8();
    let rewindable = flags & 1 == 0;
    let head = flags & 2 != 0 && flags & 4 != 0;
    // Whether the resource keeps its identity visible: without an ETag the
    // versions differ in length (the total tells them apart).
    let etags = flags & 8 == 0;
    let len0 = usize::from(r.u8() % 64) + 1;
    let mut versions = vec![version(len0, 1, etags)];
    let range = match r.u8() % 4 {
        0 | 1 => None,
        2 => Some((u64::from(r.u8() % 70), None)),
        _ => {
            let a = u64::from(r.u8() % 70);
            Some((a, Some(a + u64::from(r.u8() % 70))))
        }
    };
    let range = if head { None } else { range };
    let method = if head { RequestMethod::Head } else { RequestMethod::Get };
    let mut current = 0usize;
    let mut sink = ModelSink::new(rewindable);
    for _round in 0..12 {
        if r.empty() {
            break;
        }
        let op = r.u8();
        if op & 0x80 != 0 && versions.len() < 6 {
            // The resource changes: a new version (other length when no ETags).
            let seed = versions.len() as u8 + 1;
            let len = if etags { usize::from(r.u8() % 64) + 1 } else { len0 + versions.len() * 7 };
            versions.push(version(len, seed, etags));
            current = versions.len() - 1;
        }
        let mut attempt = sink.attempt(method, range);
        let Some(ask) = attempt.ask() else {
            assert!(attempt.is_complete(), "no ask means complete");
            assert!(is_one_version(&sink.bytes, &versions, range), "complete without an exchange");
            return;
        };
        let v = &versions[current];
        let total = v.bytes.len() as u64;
        let asked_range = ask.headers.iter().find(|(k, _)| *k == "Range").map(|(_, v)| v.clone());
        let if_range = ask.headers.iter().find(|(k, _)| *k == "If-Range").map(|(_, v)| v.clone());
        let lie = r.u8();
        let honour_range = lie & 1 == 0;
        let honour_if_range = lie & 2 == 0;
        let mut headers: Vec<(String, String)> = Vec::new();
        // Leaving the ETag out is a lie only when no other version has this
        // length: otherwise nothing at all would tell the two apart.
        let unique_length = versions.iter().filter(|o| o.bytes.len() == v.bytes.len()).count() == 1;
        if let Some(e) = &v.etag {
            if lie & 4 == 0 || !unique_length {
                headers.push(("ETag".into(), e.clone()));
            }
        }
        // The span the server picks: what was asked, if it honours Range.
        let parsed = asked_range.as_deref().and_then(|h| {
            let (a, b) = h.strip_prefix("bytes=")?.split_once('-')?;
            Some((a.parse::<u64>().ok()?, if b.is_empty() { None } else { b.parse::<u64>().ok() }))
        });
        let if_range_ok = if_range.as_ref().is_none_or(|ir| Some(ir) == v.etag.as_ref()) || !honour_if_range;
        let status_pick = r.u8() % 16;
        let (status, span): (u16, Option<(u64, u64)>) = match (status_pick, parsed) {
            (0, _) => (503, None),
            (1, _) => (302, None),
            (2, _) => (101, None),
            (_, Some((a, b))) if honour_range && if_range_ok && !head => {
                if a >= total {
                    (416, None)
                } else {
                    (206, Some((a, b.unwrap_or(u64::MAX).min(total - 1))))
                }
            }
            _ => (200, None),
        };
        let mut body: Vec<u8> = Vec::new();
        match status {
            206 => {
                let (a, mut b) = span.expect("a span");
                if lie & 8 != 0 && b > a {
                    b = a + (b - a) / 2; // a shorter span than asked
                }
                let first_claim = if lie & 16 != 0 { a.saturating_sub(1) } else { a };
                // A lied total is one no version has: a lie that names another
                // version's identity (its ETag or its total) cannot be caught.
                let total_claim = if lie & 32 != 0 { (total + 1000).to_string() } else { total.to_string() };
                headers.push(("Content-Range".into(), format!("bytes {first_claim}-{b}/{total_claim}")));
                body.extend_from_slice(&v.bytes[first_claim as usize..=b as usize]);
                if lie & 64 != 0 {
                    body.extend_from_slice(b"GARBAGE");
                }
                if lie & 128 != 0 {
                    headers.push(("Content-Length".into(), (b - first_claim + 1).to_string()));
                }
            }
            200 => {
                if !head {
                    body.extend_from_slice(&v.bytes);
                }
                if lie & 128 == 0 {
                    let claim = if lie & 64 != 0 { total + 1000 } else { total };
                    headers.push(("Content-Length".into(), claim.to_string()));
                }
            }
            416 => headers.push(("Content-Range".into(), format!("bytes */{total}"))),
            503 => headers.push(("Retry-After".into(), "1".into())),
            302 => headers.push(("Location".into(), "/r".into())),
            _ => {}
        }
        // How the body arrives and ends.
        let full_len = body.len();
        let cut = r.u16() as usize % (body.len() + 8);
        let body = &body[..cut.min(body.len())];
        let split = usize::from(r.u8()) % (body.len() + 1);
        let (c1, c2) = body.split_at(split);
        // A body without a length that is cut short can only end broken (a
        // chunked body misses its last chunk); a clean close of such a body
        // is indistinguishable from its end, for any client.
        let framed = headers.iter().any(|(k, _)| k == "Content-Length") || status == 206;
        let cut_short = body.len() < full_len;
        let broken = r.u8() % 3 == 0 || cut_short && !framed;
        let end = if broken { End::Broken(NetError::Reset("reset".into())) } else { End::Clean };
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let played = play(&mut attempt, &mut sink, status, &hdrs, &[c1, c2], end);
        assert!(
            prefix_of_one_version(&sink.bytes, &versions, range),
            "the sink is not a prefix of one version after {played:?}: {:?}",
            sink.bytes
        );
        match played {
            Played::Complete => {
                if !head {
                    assert!(
                        is_one_version(&sink.bytes, &versions, range),
                        "complete but not exactly one version's range: {:?}",
                        sink.bytes
                    );
                }
                return;
            }
            Played::Failed(NetError::Protocol(_)) if !rewindable => return,
            Played::Failed(_) | Played::Redirect(_) => {}
        }
    }
}
