//! `weir`: see weir work in a minute (`weir demo`), download real files
//! (`weir get`), look at headers (`weir head`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod demo;
mod get;
mod ui;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use weir::RequestPriority;

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
    },
    /// Download URLs into a directory, resuming partial files of earlier runs.
    Get {
        /// URLs to download.
        urls: Vec<String>,
        /// Read more URLs from FILE, one per line (`-` for stdin).
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<String>,
        /// Directory to save into (file names come from the URL path, sanitised).
        #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Transfers at once.
        #[arg(long, default_value_t = 4)]
        max_concurrent: usize,
        /// Transfers at once per host.
        #[arg(long)]
        per_host: Option<usize>,
        /// Priority of these downloads.
        #[arg(long, value_enum, default_value_t = Prio::Low)]
        priority: Prio,
        /// Retries per download after the first attempt.
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// Give up on an attempt after this many seconds without data.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Print the event stream as JSON lines.
        #[arg(long)]
        events: bool,
        /// Print nothing but failures.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show status, size and headers of URLs (HTTP HEAD).
    Head {
        /// URLs to ask about.
        urls: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Prio {
    High,
    Low,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Demo { events } => demo::demo(events),
        Cmd::Get { urls, input, out, max_concurrent, per_host, priority, retries, timeout, events, quiet } => {
            get::get(get::GetOptions {
                urls,
                input,
                out,
                max_concurrent,
                per_host,
                priority: match priority {
                    Prio::High => RequestPriority::High,
                    Prio::Low => RequestPriority::Low,
                },
                retries,
                timeout,
                events,
                quiet,
            })
        }
        Cmd::Head { urls } => get::head(&urls),
    };
    std::process::exit(code);
}
