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
    ///
    /// Each URL is saved as DIR/NAME, NAME from the URL's last path segment
    /// (percent-decoded, made safe, at most 250 bytes, unique within the run).
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
    Get {
        /// URLs to download.
        urls: Vec<String>,
        /// Read more URLs from FILE, one per line (`-` for stdin).
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<String>,
        /// Directory to save into (file names come from the URL path, sanitised).
        #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Transfers at once (1 to 1024).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024), allow_negative_numbers = true)]
        max_concurrent: u16,
        /// Transfers at once per host (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        per_host: Option<u32>,
        /// Priority of these downloads.
        #[arg(long, value_enum, default_value_t = Prio::Low)]
        priority: Prio,
        /// Retries per download after the first attempt.
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// Give up on an attempt after this many seconds without data
        /// (default 30; 0 waits forever; 0.001 to 1000000).
        #[arg(long, value_name = "SECS", value_parser = parse_timeout, allow_negative_numbers = true)]
        timeout: Option<IdleTimeout>,
        /// Give up on an attempt that runs longer than this many seconds in
        /// all, data flowing or not (0 or absent: no limit; 0.001 to 1000000).
        #[arg(long, value_name = "SECS", value_parser = parse_timeout, allow_negative_numbers = true)]
        max_time: Option<IdleTimeout>,
        /// Refuse URLs that are not https (redirects from https to http are
        /// always refused).
        #[arg(long)]
        https_only: bool,
        /// Skip a URL whose DIR/NAME already exists instead of replacing it.
        #[arg(long)]
        no_clobber: bool,
        /// Check the file against sha256=HEX (one URL; in an -i list, put
        /// "URL sha256=HEX" on a line). A mismatch removes it and fails.
        #[arg(long, value_name = "sha256=HEX")]
        checksum: Option<String>,
        /// Send this header with every request ("Name: value"; repeatable).
        /// Authorization, Cookie and Proxy-Authorization are not sent to
        /// another host after a redirect.
        #[arg(short = 'H', long = "header", value_name = "LINE")]
        headers: Vec<String>,
        /// The User-Agent to send (default weir/VERSION).
        #[arg(long, value_name = "TEXT")]
        user_agent: Option<String>,
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

/// `--timeout SECS`: a finite number of seconds, at least 1 ms, at most
/// 10^6 s; 0 turns the idle timeout off.
fn parse_timeout(s: &str) -> Result<IdleTimeout, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs == 0.0 {
        return Ok(IdleTimeout(None));
    }
    if !secs.is_finite() || !(0.001..=1e6).contains(&secs) {
        return Err(format!("{s} is out of range (0, or 0.001 to 1000000 seconds)"));
    }
    Ok(IdleTimeout(Some(std::time::Duration::from_secs_f64(secs))))
}

/// A parsed `--timeout`: `None` turns the idle timeout off.
#[derive(Clone, Copy, Debug)]
struct IdleTimeout(Option<std::time::Duration>);

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Demo { events } => demo::demo(events),
        Cmd::Get {
            urls,
            input,
            out,
            max_concurrent,
            per_host,
            priority,
            retries,
            timeout,
            max_time,
            https_only,
            no_clobber,
            checksum,
            headers,
            user_agent,
            events,
            quiet,
        } => get::get(get::GetOptions {
            urls,
            input,
            out,
            max_concurrent: usize::from(max_concurrent),
            per_host: per_host.map(|n| n as usize),
            priority: match priority {
                Prio::High => RequestPriority::High,
                Prio::Low => RequestPriority::Low,
            },
            retries,
            timeout: timeout.map(|t| t.0),
            max_time: max_time.and_then(|t| t.0),
            https_only,
            no_clobber,
            checksum,
            headers,
            user_agent,
            events,
            quiet,
        }),
        Cmd::Head { urls } => get::head(&urls),
    };
    std::process::exit(code);
}
