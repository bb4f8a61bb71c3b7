//! `weir`: see weir work in a minute (`weir demo`), download real files
//! (`weir get`), look at headers (`weir head`), replay a recorded run
//! (`weir replay`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod demo;
mod get;
mod replay;
mod ui;

use clap::{Parser, Subcommand};

/// weir: a download scheduler with priorities, epochs, timeouts and resumable retries.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a media-player-like workload against an embedded loopback server
    /// (slow, flaky and 503 files included), with live progress and a summary.
    Demo {
        /// Print the event stream as JSON lines instead.
        #[arg(long)]
        events: bool,
        /// Record what the scheduler saw to FILE (see `weir replay`).
        #[arg(long, value_name = "FILE")]
        record: Option<std::path::PathBuf>,
    },
    /// Download URLs into a directory, resuming partial files of earlier runs.
    ///
    /// Each URL is saved as DIR/NAME, NAME from the URL's last path segment
    /// (percent-decoded, made safe, at most 245 bytes, unique within the run).
    /// While it downloads, its bytes go to NAME.part and the version they
    /// belong to (ETag or Last-Modified, and length) to NAME.part.meta; a later
    /// run resumes them with If-Range and starts over when the file changed on
    /// the server (as its ETag, Last-Modified and length tell), so a saved
    /// file is never two versions spliced. A partial
    /// file that another weir is writing is left alone: that URL fails. A
    /// complete download replaces an existing DIR/NAME.
    ///
    /// Exit codes: 0 every URL saved; 1 some failed (each listed on stderr);
    /// 2 usage error (nothing downloaded); 130 interrupted (partial files
    /// kept for the next run).
    Get(Box<get::GetOptions>),
    /// Show status, size and headers of URLs (HTTP HEAD).
    Head {
        /// URLs to ask about.
        urls: Vec<String>,
    },
    /// Replay a trace (`weir get --record FILE`) into a fresh scheduler and
    /// print its outputs as JSON lines, or with --diff compare them with
    /// the recorded ones.
    ///
    /// Exit codes: 0 replayed (with --diff: identical); 1 with --diff: the
    /// outputs differ (the first difference is printed); 2 the trace cannot
    /// be read (the line that is wrong is named).
    Replay {
        /// The trace file.
        trace: std::path::PathBuf,
        /// Compare with the outputs recorded in the trace.
        #[arg(long)]
        diff: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Demo { events, record } => demo::demo(events, record.as_deref()),
        Cmd::Get(opts) => get::get(*opts),
        Cmd::Head { urls } => get::head(&urls),
        Cmd::Replay { trace, diff } => replay::replay(&trace, diff),
    };
    std::process::exit(code);
}
