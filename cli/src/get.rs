//! `weir get` and `weir head`.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir::{Config, Request, RequestPriority, RetryPolicy, Url};
use weir_ureq::{Download, Downloader, Expect, Fetch, FetchError, Headers, Sink};

use crate::ui::{event_json, say, Bars};

/// Options of `weir get`, as its flags (`weir get --help`).
#[derive(clap::Args)]
pub struct GetOptions {
    /// URLs to download.
    pub urls: Vec<String>,
    /// Read more URLs from FILE, one per line (`-` for stdin).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<String>,
    /// Directory to save into (file names come from the URL path, sanitised).
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Transfers at once (1 to 1024).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024), allow_negative_numbers = true)]
    pub max_concurrent: u16,
    /// Transfers at once per host (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub per_host: Option<u32>,
    /// Priority of these downloads.
    #[arg(long, value_enum, default_value_t = Prio::Low)]
    pub priority: Prio,
    /// Retries per download after the first attempt.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Give up on an attempt after this many seconds without data
    /// (default 30; 0 waits forever; 0.001 to 1000000).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Option<IdleTimeout>,
    /// Give up on an attempt that runs longer than this many seconds in
    /// all, data flowing or not (0 or absent: no limit; 0.001 to 1000000).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, allow_negative_numbers = true)]
    pub max_time: Option<IdleTimeout>,
    /// Refuse URLs that are not https (redirects from https to http are
    /// always refused).
    #[arg(long)]
    pub https_only: bool,
    /// Skip a URL whose DIR/NAME already exists instead of replacing it.
    #[arg(long)]
    pub no_clobber: bool,
    /// Check the file against sha256=HEX (one URL; in an -i list, put
    /// "URL sha256=HEX" on a line). A mismatch fetches it once more from
    /// zero; a second one removes it and fails.
    #[arg(long, value_name = "sha256=HEX")]
    pub checksum: Option<String>,
    /// Another URL of the same file, tried when the first fails (a 404,
    /// a reset, a timeout: any error of that server); repeatable, tried in
    /// order, one URL only (in an -i list: "URL MIRROR... [sha256=HEX]").
    /// A partial file continues from a mirror only if it serves the same
    /// version (ETag); otherwise it starts over.
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
    /// Give up on a download that has not finished this many seconds after
    /// it started, retries and waits included (0.001 to 1000000; 0 or
    /// absent: no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, allow_negative_numbers = true)]
    pub deadline: Option<IdleTimeout>,
    /// Send this header with every request ("Name: value"; repeatable).
    /// Authorization, Cookie and Proxy-Authorization are not sent to
    /// another host after a redirect.
    #[arg(short = 'H', long = "header", value_name = "LINE")]
    pub headers: Vec<String>,
    /// The User-Agent to send (default weir/VERSION).
    #[arg(long, value_name = "TEXT")]
    pub user_agent: Option<String>,
    /// Go through this proxy (http://HOST:PORT, an HTTP CONNECT proxy).
    /// Without it: HTTPS_PROXY, HTTP_PROXY or ALL_PROXY from the
    /// environment, minus the hosts in NO_PROXY.
    #[arg(short = 'x', long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Connect directly, whatever the environment says.
    #[arg(long)]
    pub no_proxy: bool,
    /// Rename each completed file into place without waiting for the
    /// disk, as curl and wget do: faster (most of all on large files), but
    /// after a power loss a file may be short under its final name. By
    /// default every byte is on disk before "saved" (the files completed
    /// meanwhile are synced together while the next downloads run).
    #[arg(long)]
    pub no_fsync: bool,
    /// Print the event stream as JSON lines.
    #[arg(long)]
    pub events: bool,
    /// Print nothing but failures.
    #[arg(short, long)]
    pub quiet: bool,
    /// Record what the scheduler saw (every input and output, timed) to
    /// FILE, a trace `weir replay FILE` replays: a bug report.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// `--priority`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Prio {
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
    Ok(IdleTimeout(Some(Duration::from_secs_f64(secs))))
}

/// A parsed `--timeout`: `None` turns the idle timeout off.
#[derive(Clone, Copy, Debug)]
pub struct IdleTimeout(Option<Duration>);

/// Longest file name, in bytes, leaving room for the `.part.meta` suffix
/// (the partial file's version, which a later run resumes by) within the
/// 255 bytes most file systems allow.
const NAME_MAX: usize = 245;

/// Characters that may not appear in a name: path separators, `:`, every
/// C0/C1 control, and the bidi controls that make a name display as
/// something else (U+202E turns `evil\u{202E}gnp.exe` into `evilexe.png`).
fn forbidden(c: char) -> bool {
    matches!(c, '/' | '\\' | ':' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || c.is_control()
}

/// A safe file name for a URL: its last path segment, percent-decoded, with
/// separators, controls and bidi controls replaced, never `.`/`..`/hidden,
/// at most [`NAME_MAX`] bytes cut on a character boundary.
pub fn file_name(url: &Url) -> String {
    let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    let name: String = decoded.chars().map(|c| if forbidden(c) { '_' } else { c }).collect();
    let name = name.trim_start_matches('.');
    if name.is_empty() {
        return "index.html".to_owned();
    }
    let mut end = name.len().min(NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// `sha256=HEX`, the one algorithm weir checks.
fn checksum(s: &str) -> Result<[u8; 32], String> {
    let hex = s.trim().strip_prefix("sha256=").ok_or_else(|| format!("{s:?} is not sha256=HEX"))?;
    Expect::parse_sha256(hex)
}

/// One file to fetch: its URL, its mirrors, its expected SHA-256.
#[derive(Default)]
struct Entry {
    url: String,
    mirrors: Vec<String>,
    sha256: Option<[u8; 32]>,
}

/// A list line: `URL [MIRROR...] [sha256=HEX]`.
fn list_entry(line: &str) -> Result<Entry, String> {
    let mut parts = line.split_whitespace();
    let mut entry = Entry { url: parts.next().unwrap_or_default().to_owned(), ..Entry::default() };
    for part in parts {
        if entry.sha256.is_some() {
            return Err(format!("unexpected {part:?} after the checksum"));
        }
        if part.contains('=') && !part.contains("://") {
            entry.sha256 = Some(checksum(part)?);
        } else {
            entry.mirrors.push(part.to_owned());
        }
    }
    Ok(entry)
}

fn read_list(input: &str) -> std::io::Result<Vec<String>> {
    let lines: Vec<String> = if input == "-" {
        std::io::stdin().lock().lines().collect::<Result<_, _>>()?
    } else {
        fs::read_to_string(input)?.lines().map(str::to_owned).collect()
    };
    Ok(lines.into_iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty() && !l.starts_with('#')).collect())
}

struct Job {
    url: String,
    dest: PathBuf,
    download: Download,
}

/// What the downloads ended with, as they end.
struct Tally {
    total: usize,
    done: usize,
    /// Sizes of the files saved.
    saved_bytes: u64,
    failures: Vec<(String, String)>,
    /// No "saved" lines.
    quiet: bool,
}

impl Tally {
    /// Wait for `job` to end and count how.
    fn settle(&mut self, job: Job, interrupted: &AtomicBool, bars: &Bars) {
        let Job { url, dest, download } = job;
        match download.wait() {
            Ok(resp) => {
                self.done += 1;
                // The file's size: a resumed download counts what it held too.
                self.saved_bytes += resp.bytes;
                if !self.quiet {
                    bars.println(&format!("saved {} ({} bytes)", escape(&dest.display().to_string()), resp.bytes));
                }
            }
            Err(e) => {
                let why = match e {
                    FetchError::Cancelled(_) if interrupted.load(Ordering::SeqCst) => "interrupted".to_owned(),
                    FetchError::Failed(e) => e.to_string(),
                    e => e.to_string(),
                };
                self.failures.push((url, why));
            }
        }
    }

    /// The totals line, with `running` bytes of downloads not yet ended.
    fn status(&self, running: u64, started: std::time::Instant) -> String {
        let all = self.saved_bytes + running;
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{}/{} done, {} failed, {} at {}/s",
            self.done,
            self.total,
            self.failures.len(),
            human(all),
            human((all as f64 / secs) as u64)
        )
    }
}

/// Run `weir get`; returns the exit code.
pub fn get(opts: GetOptions) -> i32 {
    // From the arguments, then the list's lines.
    let mut urls: Vec<Entry> = opts.urls.iter().map(|u| Entry { url: u.clone(), ..Entry::default() }).collect();
    if let Some(input) = &opts.input {
        match read_list(input) {
            Ok(lines) => {
                for line in lines {
                    match list_entry(&line) {
                        Ok(entry) => urls.push(entry),
                        Err(e) => {
                            eprintln!("weir: {input}: {e}");
                            return 2;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("weir: cannot read {input}: {e}");
                return 2;
            }
        }
    }
    if urls.is_empty() {
        eprintln!("weir: no URL given (weir get URL..., or -i FILE, or -i - for stdin)");
        return 2;
    }
    if let Some(sum) = &opts.checksum {
        if urls.len() != 1 {
            eprintln!("weir: --checksum applies to a single URL (give one per line in -i: URL sha256=HEX)");
            return 2;
        }
        match checksum(sum) {
            Ok(digest) => urls[0].sha256 = Some(digest),
            Err(e) => {
                eprintln!("weir: --checksum: {e}");
                return 2;
            }
        }
    }
    if !opts.mirror.is_empty() {
        if urls.len() != 1 {
            eprintln!("weir: --mirror applies to a single URL (give them on its line in -i: URL MIRROR...)");
            return 2;
        }
        urls[0].mirrors.extend(opts.mirror.iter().cloned());
    }
    let mut headers = Headers::new();
    for line in &opts.headers {
        if let Err(e) = headers.insert_line(line) {
            eprintln!("weir: --header {}: {e}", escape(line));
            return 2;
        }
    }
    if let Some(ua) = &opts.user_agent {
        if let Err(e) = headers.insert("User-Agent", ua) {
            eprintln!("weir: --user-agent: {e}");
            return 2;
        }
    }
    if let Err(e) = fs::create_dir_all(&opts.out) {
        eprintln!("weir: cannot create {}: {e}", opts.out.display());
        return 1;
    }
    let cfg = Config {
        max_concurrent: usize::from(opts.max_concurrent),
        max_per_host: opts.per_host.map(|n| n as usize),
        idle_timeout: opts.timeout.map_or(Some(Duration::from_secs(30)), |t| t.0),
        hard_timeout: opts.max_time.and_then(|t| t.0),
        soft_timeout: None,
        retry: RetryPolicy { max_retries: opts.retries, ..RetryPolicy::default() },
        ..Config::default()
    };
    let record = match &opts.record {
        None => None,
        Some(path) => match fs::File::create(path) {
            Ok(f) => Some(weir_http::trace::RecordTo::file(f, true)),
            Err(e) => {
                eprintln!("weir: cannot create the trace {}: {e}", escape(&path.display().to_string()));
                return 2;
            }
        },
    };
    let mut options = weir_ureq::Options { headers, record, durable: !opts.no_fsync, ..weir_ureq::Options::default() };
    if opts.no_proxy {
        options = options.with_proxy(None);
    }
    if let Some(p) = &opts.proxy {
        match weir_ureq::ureq::Proxy::new(p) {
            Ok(proxy) => options = options.with_proxy(Some(proxy)),
            Err(e) => {
                eprintln!("weir: --proxy {}: {e}", escape(p));
                return 2;
            }
        }
    }
    let dl = match Downloader::try_new(cfg, options) {
        Ok(dl) => Arc::new(dl),
        Err(e) => {
            eprintln!("weir: cannot start: {e}");
            return 1;
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (dl, flag) = (Arc::clone(&dl), Arc::clone(&interrupted));
        let _ = ctrlc::set_handler(move || {
            flag.store(true, Ordering::SeqCst);
            dl.shutdown();
        });
    }
    let bars = Bars::new(!opts.quiet && !opts.events && std::io::stderr().is_terminal());
    let priority = match opts.priority {
        Prio::High => RequestPriority::High,
        Prio::Low => RequestPriority::Low,
    };
    let peer = dl.peer(priority);
    // Events are read only when something shows them (the bars, --events):
    // otherwise every download is simply waited for, in the list's order.
    let events = (bars.visible() || opts.events).then(|| peer.subscribe());

    let mut failures: Vec<(String, String)> = Vec::new();
    let mut jobs = Vec::new();
    let mut names = Names::default();
    'entries: for Entry { url: u, mirrors, sha256 } in urls {
        let url = match Url::parse(&u) {
            Ok(url) => url,
            Err(e) => {
                failures.push((u, format!("invalid URL: {e}")));
                continue;
            }
        };
        if opts.https_only && url.scheme() != "https" {
            failures.push((u, "not an https URL (--https-only)".to_owned()));
            continue;
        }
        let mut req = Request::get(url.clone()).priority(priority);
        for m in mirrors {
            match Url::parse(&m) {
                Ok(m) if opts.https_only && m.scheme() != "https" => {
                    failures.push((u, format!("mirror {m} is not https (--https-only)")));
                    continue 'entries;
                }
                Ok(m) => req = req.mirror(m),
                Err(e) => {
                    failures.push((u, format!("invalid mirror URL {m}: {e}")));
                    continue 'entries;
                }
            }
        }
        if let Some(d) = opts.deadline.and_then(|d| d.0) {
            req = req.deadline(d);
        }
        let name = names.claim(&file_name(&url));
        let dest = opts.out.join(&name);
        if opts.no_clobber && fs::symlink_metadata(&dest).is_ok() {
            if !opts.quiet && !opts.events {
                bars.println(&format!("exists, skipped {}", escape(&dest.display().to_string())));
            }
            continue;
        }
        // Nothing touches the disk before a transfer starts: the partial
        // file is opened (never through a symlink) when bytes arrive, resumed
        // with If-Range when an earlier run left one, restarted when the
        // resource changed.
        let mut fetch = Fetch::new();
        if let Some(digest) = sha256 {
            fetch = fetch.sha256(digest);
        }
        match peer.fetch_with(req, Sink::Resumable(dest.clone()), fetch) {
            Ok(download) => {
                if bars.visible() {
                    bars.track(download.id(), name, download.progress_handle());
                }
                jobs.push(Job { url: u, dest, download });
            }
            Err(e) => failures.push((u, e.to_string())),
        }
    }
    let mut tally = Tally { total: jobs.len(), done: 0, saved_bytes: 0, failures, quiet: opts.quiet || opts.events };
    match events {
        None => {
            for job in jobs {
                tally.settle(job, &interrupted, &bars);
            }
        }
        Some(events) => {
            let started = std::time::Instant::now();
            let mut last_status = started;
            let mut pending: std::collections::HashMap<weir::RequestId, Job> =
                jobs.into_iter().map(|j| (j.download.id(), j)).collect();
            while !pending.is_empty() {
                match events.recv_timeout(Duration::from_millis(100)) {
                    Ok((_, e)) => {
                        if opts.events {
                            say(format_args!("{}", event_json("get", &e)));
                        }
                        bars.event(&e);
                        if let Some(job) = e.is_terminal().then(|| pending.remove(&e.request_id())).flatten() {
                            tally.settle(job, &interrupted, &bars);
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                // The totals line, at most every 100 ms (it reads every pending download).
                if !bars.visible() || last_status.elapsed() < Duration::from_millis(100) {
                    continue;
                }
                last_status = std::time::Instant::now();
                bars.status(tally.status(pending.values().map(|j| j.download.progress().bytes).sum(), started));
            }
            // Only when the event stream ended early (the downloader stopped).
            for job in pending.into_values() {
                tally.settle(job, &interrupted, &bars);
            }
        }
    }
    let failures = tally.failures;
    bars.finish();
    drop(peer);
    dl.shutdown();
    drop(dl);
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("weir: interrupted; partial files are kept as *.part and resume on the next run");
        return 130;
    }
    if failures.is_empty() {
        return 0;
    }
    for (u, why) in &failures {
        eprintln!("failed: {}: {}", escape(u), escape(why));
    }
    1
}

/// Byte counts for people: `12.3 MiB`.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Escape what a terminal would interpret (C0/C1 controls, bidi controls)
/// in text weir prints but did not write itself (URLs, names, errors).
pub fn escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if forbidden(c) && c != '/' && c != ':' && c != '\\' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// File names given out in one run: a name is free only when neither it
/// nor its partial files (`NAME.part`, `NAME.part.meta`) collide with any
/// name or partial file already given (URLs named `x` and `x.part` in one
/// run get distinct files).
#[derive(Default)]
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn claim(&mut self, base: &str) -> String {
        let free = |used: &HashSet<String>, n: &str| {
            ![n.to_owned(), format!("{n}.part"), format!("{n}.part.meta")].iter().any(|x| used.contains(x))
        };
        let mut name = base.to_owned();
        for n in 1.. {
            if free(&self.used, &name) {
                break;
            }
            name = format!("{base}-{n}");
        }
        for x in [name.clone(), format!("{name}.part"), format!("{name}.part.meta")] {
            self.used.insert(x);
        }
        name
    }
}

/// Run `weir head`; returns the exit code.
pub fn head(urls: &[String]) -> i32 {
    if urls.is_empty() {
        eprintln!("weir: no URL given");
        return 2;
    }
    let dl = Downloader::new(Config::default());
    let peer = dl.peer(RequestPriority::High);
    let mut code = 0;
    for u in urls {
        let result = Url::parse(u)
            .map_err(|e| format!("invalid URL: {e}"))
            .and_then(|url| peer.execute(Request::head(url)).map_err(|e| e.to_string()));
        match result {
            Ok(resp) => {
                say(format_args!("{u}"));
                say(format_args!("  status: {}", resp.status));
                say(format_args!("  size:   {}", resp.header("content-length").unwrap_or("unknown")));
                for (k, v) in &resp.headers {
                    say(format_args!("  {}: {}", escape(k), escape(v)));
                }
            }
            Err(e) => {
                eprintln!("failed: {u}: {e}");
                code = 1;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Whether `p` stays inside `dir`.
    fn inside(dir: &Path, p: &Path) -> bool {
        p.parent() == Some(dir)
    }

    #[test]
    fn file_names_never_escape_the_directory() {
        let cases = [
            ("http://h/a/b/file.bin", "file.bin"),
            ("http://h/", "index.html"),
            ("http://h/..%2F..%2Fetc%2Fpasswd", "_.._etc_passwd"),
            ("http://h/%2e%2e", "index.html"),
            ("http://h/.hidden", "hidden"),
            ("http://h/a%20b.txt", "a b.txt"),
            ("http://h/x%5C..%5Cy", "x_.._y"),
            ("http://h/evil%E2%80%AEgnp.exe", "evil_gnp.exe"),
            ("http://h/a%C2%85b%07c", "a_b_c"),
            ("http://h/%E2%81%A6x%E2%80%8F", "_x_"),
            ("http://h/bad%FFutf8", "bad\u{FFFD}utf8"),
        ];
        for (u, want) in cases {
            let name = file_name(&Url::parse(u).unwrap());
            assert_eq!(name, want, "{u}");
            assert!(inside(Path::new("/out"), &Path::new("/out").join(&name)), "{u} -> {name}");
        }
    }

    #[test]
    fn long_names_are_cut_by_bytes_on_a_character_boundary() {
        // 200 three-byte characters: 600 bytes, over every file system's limit.
        let url = Url::parse(&format!("http://h/{}", "%E2%82%AC".repeat(200))).unwrap();
        let name = file_name(&url);
        assert!(name.len() <= NAME_MAX && name.len() > NAME_MAX - 3, "{} bytes", name.len());
        assert!(name.chars().all(|c| c == '\u{20AC}'), "cut on a boundary");
        let short = file_name(&Url::parse("http://h/short.bin").unwrap());
        assert_eq!(short, "short.bin");
    }
}
