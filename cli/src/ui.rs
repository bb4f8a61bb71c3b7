//! What the user sees: progress bars on a terminal, plain lines otherwise,
//! JSON lines with `--events`, and the summary table.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir::{DownloaderEvent, PeerId, RequestId, RequestPriority};

/// Print a line on stdout. A closed pipe (`weir get --events | head`) is
/// not an error worth a panic: the line is dropped.
pub fn say(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// One line of `--events`: the peer's name, then the event as the `weir`
/// crate serializes it (`"event"` names the variant in snake case, every
/// field follows; durations in seconds, errors as `{"kind", "detail"}`).
#[derive(serde::Serialize)]
struct EventLine<'a> {
    peer: &'a str,
    #[serde(flatten)]
    event: &'a DownloaderEvent,
}

/// One event as a JSON object on one line.
pub fn event_json(peer: &str, event: &DownloaderEvent) -> String {
    serde_json::to_string(&EventLine { peer, event })
        .unwrap_or_else(|e| format!("{{\"peer\":{peer:?},\"event\":\"unserializable\",\"error\":{:?}}}", e.to_string()))
}

/// Per-request numbers gathered from events, for the summary.
#[derive(Debug, Default, Clone)]
struct Row {
    peer: String,
    priority: Option<RequestPriority>,
    waits: Vec<Duration>,
    retries: u64,
    bytes: u64,
    bandwidth: Option<u64>,
    end: Option<&'static str>,
}

/// Collects events into the summary table.
#[derive(Debug, Default)]
pub struct Summary {
    rows: HashMap<RequestId, Row>,
    order: Vec<RequestId>,
}

impl Summary {
    /// Account one event of `peer`.
    pub fn add(&mut self, peer: &str, e: &DownloaderEvent) {
        let id = e.request_id();
        if !self.rows.contains_key(&id) {
            self.order.push(id);
        }
        let r = self.rows.entry(id).or_insert_with(|| Row { peer: peer.to_owned(), ..Row::default() });
        match e {
            DownloaderEvent::RequestEnqueued { priority, .. } => r.priority = Some(*priority),
            DownloaderEvent::PriorityChanged { to, .. } => r.priority = Some(*to),
            DownloaderEvent::RequestStarted { wait_in_queue, .. } => r.waits.push(*wait_in_queue),
            DownloaderEvent::RequestRetrying { .. } => r.retries += 1,
            DownloaderEvent::RequestCompleted { bytes_transferred, bandwidth_bps, .. } => {
                r.bytes = *bytes_transferred;
                r.bandwidth = Some(*bandwidth_bps);
                r.end = Some("completed");
            }
            DownloaderEvent::RequestFailed { .. } => r.end = Some("failed"),
            DownloaderEvent::RequestCancelled { bytes_transferred, .. } => {
                r.bytes = *bytes_transferred;
                r.end = Some("cancelled");
            }
            _ => {}
        }
    }

    /// The table: per peer and final priority.
    pub fn table(&self) -> String {
        let mut groups: Vec<((String, String), Vec<&Row>)> = Vec::new();
        for id in &self.order {
            let r = &self.rows[id];
            let key = (r.peer.clone(), r.priority.map_or("?".into(), |p| format!("{p:?}")));
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(r),
                None => groups.push((key, vec![r])),
            }
        }
        let mut out = String::new();
        out.push_str(&format!(
            "{:<12} {:<5} {:>5} {:>5} {:>6} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}\n",
            "peer",
            "prio",
            "count",
            "done",
            "failed",
            "cancelled",
            "wait p50",
            "wait p95",
            "retries",
            "bytes",
            "Mbit/s"
        ));
        for ((peer, prio), rows) in groups {
            let count = |k: &str| rows.iter().filter(|r| r.end == Some(k)).count();
            let mut waits: Vec<Duration> = rows.iter().flat_map(|r| r.waits.iter().copied()).collect();
            waits.sort();
            let pct = |p: f64| {
                if waits.is_empty() {
                    "-".to_owned()
                } else {
                    let i = ((waits.len() - 1) as f64 * p).round() as usize;
                    format!("{:.0} ms", waits[i].as_secs_f64() * 1e3)
                }
            };
            let bw: Vec<u64> = rows.iter().filter_map(|r| r.bandwidth).collect();
            let mbit = if bw.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.1}", bw.iter().sum::<u64>() as f64 / bw.len() as f64 / 1e6)
            };
            out.push_str(&format!(
                "{:<12} {:<5} {:>5} {:>5} {:>6} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}\n",
                peer,
                prio,
                rows.len(),
                count("completed"),
                count("failed"),
                count("cancelled"),
                pct(0.5),
                pct(0.95),
                rows.iter().map(|r| r.retries).sum::<u64>(),
                rows.iter().map(|r| r.bytes).sum::<u64>(),
                mbit
            ));
        }
        out
    }
}

/// Progress bars for active transfers plus a queue line; hidden when not
/// drawing to a terminal.
#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    queue: ProgressBar,
    bars: Arc<Mutex<HashMap<RequestId, ProgressBar>>>,
    labels: Arc<Mutex<HashMap<RequestId, String>>>,
}

impl Bars {
    /// Bars drawn to stderr when `visible`.
    pub fn new(visible: bool) -> Self {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let queue = multi.add(ProgressBar::new_spinner());
        queue.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
        queue.enable_steady_tick(Duration::from_millis(120));
        Self { multi, queue, bars: Arc::default(), labels: Arc::default() }
    }

    /// Name a request (shown on its bar).
    pub fn label(&self, id: RequestId, label: String) {
        self.labels.lock().expect("labels").insert(id, label);
    }

    /// Update the queue line.
    pub fn status(&self, msg: String) {
        self.queue.set_message(msg);
    }

    /// React to an event: a bar per running transfer.
    pub fn event(&self, e: &DownloaderEvent) {
        let id = e.request_id();
        match e {
            DownloaderEvent::RequestStarted { attempt, .. } => {
                let label = self.labels.lock().expect("labels").get(&id).cloned().unwrap_or_else(|| id.to_string());
                let mut bars = self.bars.lock().expect("bars");
                let bar = bars.entry(id).or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("  {spinner} {bytes:>10} {bytes_per_sec:>12} {wide_msg}")
                            .expect("template"),
                    );
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                let retry = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                bar.set_message(format!("{label}{retry}"));
            }
            e if e.is_terminal()
                || matches!(e, DownloaderEvent::RequestPreempted { .. } | DownloaderEvent::RequestRetrying { .. }) =>
            {
                if let Some(b) = self.bars.lock().expect("bars").remove(&id) {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
            }
            _ => {}
        }
    }

    /// Count `n` more bytes for `id`.
    pub fn bytes(&self, id: RequestId, n: u64) {
        if let Some(b) = self.bars.lock().expect("bars").get(&id) {
            b.inc(n);
        }
    }

    /// Print a line above the bars (or plainly when hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            say(line);
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Remove every bar.
    pub fn finish(&self) {
        self.queue.finish_and_clear();
        for (_, b) in self.bars.lock().expect("bars").drain() {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// A writer that counts bytes into a progress bar (the request id is set
/// once known, since the sink is built before the id exists).
pub struct Counting<W> {
    pub inner: W,
    pub bars: Bars,
    pub id: Arc<Mutex<Option<RequestId>>>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(id) = *self.id.lock().expect("id") {
            self.bars.bytes(id, n as u64);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A display name for a peer id in events.
pub fn peer_name(names: &[(PeerId, String)], p: PeerId) -> String {
    names.iter().find(|(id, _)| *id == p).map_or_else(|| p.to_string(), |(_, n)| n.clone())
}
