//! `weir replay`: feed a trace into a fresh scheduler (`weir_http::trace`).

use std::io::BufReader;
use std::path::Path;

use weir_http::trace::replay as run;

use crate::get::escape;

/// Replay `path`; print the outputs, or with `diff` the first difference.
pub fn replay(path: &Path, diff: bool) -> i32 {
    let name = escape(&path.display().to_string());
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("weir: cannot open {name}: {e}");
            return 2;
        }
    };
    let replayed = match run(BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: {name}: {e}");
            return 2;
        }
    };
    let line = |at: std::time::Duration, out: &weir::Output| {
        let out = serde_json::to_string(out).unwrap_or_else(|e| format!("\"unprintable: {e}\""));
        format!("{{\"at\":{},\"out\":{out}}}", at.as_secs_f64())
    };
    if !diff {
        for (at, out) in &replayed.outputs {
            println!("{}", line(*at, out));
        }
        summary(&replayed.outputs);
        return 0;
    }
    if replayed.recorded.is_empty() {
        eprintln!("weir: {name} holds no recorded outputs to compare with");
        return 2;
    }
    match replayed.first_divergence() {
        None => {
            println!("identical: {} outputs", replayed.outputs.len());
            0
        }
        Some(i) => {
            let show =
                |o: Option<&(std::time::Duration, weir::Output)>| o.map_or("(none)".to_owned(), |(at, o)| line(*at, o));
            println!("the outputs differ at output {i}:");
            println!("  replayed: {}", show(replayed.outputs.get(i)));
            println!("  recorded: {}", show(replayed.recorded.get(i)));
            if let Some(&n) = replayed.after_line.get(i) {
                let text = std::fs::read_to_string(path).ok().and_then(|t| t.lines().nth(n - 1).map(str::to_owned));
                println!("  after the input on trace line {n}: {}", escape(&text.unwrap_or_default()));
            }
            1
        }
    }
}

/// Per peer, on stderr: requests, how they ended, bytes, retries.
fn summary(outputs: &[(std::time::Duration, weir::Output)]) {
    use std::collections::BTreeMap;
    use weir::{DownloaderEvent as E, Output};
    #[derive(Default)]
    struct Peer {
        requests: usize,
        completed: usize,
        failed: usize,
        cancelled: usize,
        retries: usize,
        bytes: u64,
    }
    let mut peers: BTreeMap<weir::PeerId, Peer> = BTreeMap::new();
    for (_, out) in outputs {
        let Output::Event(peer, e) = out else { continue };
        let p = peers.entry(*peer).or_default();
        match e {
            E::RequestEnqueued { .. } => p.requests += 1,
            E::RequestRetrying { .. } => p.retries += 1,
            E::RequestCompleted { bytes_transferred, .. } => {
                p.completed += 1;
                p.bytes += bytes_transferred;
            }
            E::RequestFailed { .. } => p.failed += 1,
            E::RequestCancelled { bytes_transferred, .. } => {
                p.cancelled += 1;
                p.bytes += bytes_transferred;
            }
            _ => {}
        }
    }
    eprintln!("peer        requests  completed  failed  cancelled  retries  bytes");
    for (id, p) in &peers {
        eprintln!(
            "{:<10}  {:>8}  {:>9}  {:>6}  {:>9}  {:>7}  {}",
            id.to_string(),
            p.requests,
            p.completed,
            p.failed,
            p.cancelled,
            p.retries,
            p.bytes
        );
    }
}
