//! What the user sees: progress bars on a terminal, plain lines otherwise,
//! JSON lines with `--events`, and the summary table.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir::{DownloaderEvent, PeerId, RequestId, RequestPriority};
use weir_ureq::Progress;

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
    let json = serde_json::to_string(&EventLine { peer, event });
    // serde_json leaves C1 controls and bidi controls raw; a terminal would
    // act on them. They can only sit inside strings, where \uXXXX is the same.
    json.map(|j| {
        j.chars()
            .map(|c| match c {
                '\u{80}'..='\u{9f}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{61c}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' => {
                    format!("\\u{:04x}", c as u32)
                }
                c => c.to_string(),
            })
            .collect::<String>()
    })
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

/// Progress bars for running transfers plus a status line; hidden when
/// not drawing to a terminal. A download is shown once it is both
/// [tracked](Bars::track) (so its label is right from the first frame) and
/// running (from its events); a ticker thread reads each shown download's
/// [`Progress`] every 100 ms: bytes, total, percent, rate and ETA when the
/// size is known, a spinner otherwise.
#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    status: ProgressBar,
    state: Arc<Mutex<Shown>>,
}

#[derive(Default)]
struct Shown {
    tracked: HashMap<RequestId, (String, Arc<Progress>)>,
    running: std::collections::HashSet<RequestId>,
    bars: HashMap<RequestId, ProgressBar>,
    stop: bool,
}

fn bar_style(total_known: bool) -> ProgressStyle {
    let t = if total_known {
        "  {bytes:>10}/{total_bytes:<10} {percent:>3}% {bytes_per_sec:>12} {eta:>4} {wide_msg}"
    } else {
        "  {spinner} {bytes:>10} {bytes_per_sec:>12} {wide_msg}"
    };
    ProgressStyle::with_template(t).expect("template")
}

impl Shown {
    /// Bring the bars in line with what is tracked and running.
    fn refresh(&mut self, multi: &MultiProgress) {
        let Shown { tracked, running, bars, .. } = self;
        bars.retain(|id, b| {
            let keep = running.contains(id) && tracked.contains_key(id);
            if !keep {
                b.finish_and_clear();
                multi.remove(b);
            }
            keep
        });
        for id in running.iter() {
            let Some((label, progress)) = tracked.get(id) else { continue };
            let now = progress.get();
            let bar = bars.entry(*id).or_insert_with(|| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(bar_style(false));
                b.set_message(label.clone());
                b
            });
            match now.total {
                Some(t) if bar.length() != Some(t) => {
                    bar.set_style(bar_style(true));
                    bar.set_length(t);
                }
                _ => {}
            }
            bar.set_position(now.bytes);
            bar.tick();
        }
    }
}

impl Bars {
    /// Bars drawn to stderr when `visible`.
    pub fn new(visible: bool) -> Self {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let status = multi.add(ProgressBar::new_spinner());
        status.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
        let bars = Self { multi, status, state: Arc::default() };
        if visible {
            let b = bars.clone();
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let mut st = b.state.lock().expect("bars");
                if st.stop {
                    return;
                }
                st.refresh(&b.multi);
                drop(st);
                b.status.tick();
            });
        }
        bars
    }

    /// Whether the bars are drawn (to a terminal).
    pub fn visible(&self) -> bool {
        !self.multi.is_hidden()
    }

    /// Show `id` as `label` while it runs, reading `progress`.
    pub fn track(&self, id: RequestId, label: String, progress: Arc<Progress>) {
        self.state.lock().expect("bars").tracked.insert(id, (label, progress));
    }

    /// Update the status line.
    pub fn status(&self, msg: String) {
        self.status.set_message(msg);
    }

    /// React to an event: which downloads run.
    pub fn event(&self, e: &DownloaderEvent) {
        let id = e.request_id();
        let mut st = self.state.lock().expect("bars");
        match e {
            DownloaderEvent::RequestStarted { .. } => {
                st.running.insert(id);
            }
            DownloaderEvent::RequestPreempted { .. } | DownloaderEvent::RequestRetrying { .. } => {
                st.running.remove(&id);
            }
            e if e.is_terminal() => {
                st.running.remove(&id);
                st.tracked.remove(&id);
            }
            _ => {}
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

    /// Remove every bar and stop the ticker.
    pub fn finish(&self) {
        let mut st = self.state.lock().expect("bars");
        st.stop = true;
        for (_, b) in st.bars.drain() {
            b.finish_and_clear();
        }
        drop(st);
        self.status.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// A display name for a peer id in events.
pub fn peer_name(names: &[(PeerId, String)], p: PeerId) -> String {
    names.iter().find(|(id, _)| *id == p).map_or_else(|| p.to_string(), |(_, n)| n.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_escape_what_a_terminal_would_act_on_and_stay_json() {
        let id = RequestId::new(std::num::NonZeroU64::new(1 << 24).expect("non-zero"));
        let error = weir::NetError::Protocol("bad \u{9b}31m header \u{202e}gnp.exe".into());
        let line = event_json(
            "get",
            &DownloaderEvent::RequestFailed { request_id: id, error: error.clone(), retryable: false },
        );
        assert!(!line.contains('\u{9b}') && !line.contains('\u{202e}'), "{line}");
        assert!(line.contains("\\u009b") && line.contains("\\u202e"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(
            v["error"]["detail"].as_str(),
            Some("bad \u{9b}31m header \u{202e}gnp.exe"),
            "same text once parsed"
        );
    }
}
