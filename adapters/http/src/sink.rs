//! Where a body goes: memory, a file (renamed into place on completion), or
//! the caller's writer. A sink outlives attempts, so retries and resumes
//! append to it and every byte of the resource lands exactly once.

use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir::NetError;

use crate::attempt::{Attempt, Held, Version};
use crate::integrity::{Expect, Verifier};
use crate::partial::Partial;
use crate::progress::Progress;

/// The destination of a download's body.
pub enum Sink {
    /// Keep the body in memory; the adapter's response hands it over.
    Memory,
    /// Write to this path. The body goes to a temporary file beside it,
    /// created exclusively under an unpredictable name (never following a
    /// symlink, never shared with another process), renamed into place only
    /// when the download completed and removed when it failed, so a reader
    /// never sees a partial file. An existing file at the path is replaced.
    File(PathBuf),
    /// Write to the caller's writer. It cannot be rewound, so a resource that
    /// changes between attempts fails the download instead of restarting it.
    Writer(Box<dyn Write + Send>),
    /// Write to `DEST.part`, kept with the version it was fetched under in
    /// `DEST.part.meta` when the download fails or is cancelled, so a later
    /// run (another process) resumes it with `If-Range`, or starts it over
    /// when the resource changed. Renamed to `DEST` when complete. See
    /// [`crate::partial`].
    Resumable(PathBuf),
    /// Write to the caller's async writer (feature `async`, written by
    /// `weir-async`; the blocking adapter refuses it with a clear error).
    /// It cannot be rewound, like [`Sink::Writer`].
    #[cfg(feature = "async")]
    AsyncWriter(Box<dyn futures_io::AsyncWrite + Send + Unpin>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Memory => f.write_str("Sink::Memory"),
            Sink::File(p) => f.debug_tuple("Sink::File").field(p).finish(),
            Sink::Writer(_) => f.write_str("Sink::Writer(..)"),
            Sink::Resumable(p) => f.debug_tuple("Sink::Resumable").field(p).finish(),
            #[cfg(feature = "async")]
            Sink::AsyncWriter(_) => f.write_str("Sink::AsyncWriter(..)"),
        }
    }
}

enum Target {
    Memory(Vec<u8>),
    /// The temporary file is created at the first byte (or at completion
    /// for an empty body), so a queued download holds no file open.
    File {
        file: Option<tempfile::NamedTempFile>,
        dest: PathBuf,
    },
    Writer(Box<dyn Write + Send>),
    Resumable(Partial),
    /// Written by the async adapter through [`SinkState::async_writer`] and
    /// [`SinkState::wrote`].
    #[cfg(feature = "async")]
    AsyncWriter(Box<dyn futures_io::AsyncWrite + Send + Unpin>),
    /// A sink this state cannot write; every write fails with this reason.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Refused(&'static str),
}

/// What a finished sink hands back.
#[derive(Debug)]
pub enum Delivered {
    /// The body, from [`Sink::Memory`].
    Memory(Vec<u8>),
    /// Where the file now is, from [`Sink::File`] or [`Sink::Resumable`].
    File(PathBuf),
    /// The writer got everything, from [`Sink::Writer`].
    Writer,
}

fn sink_err(what: &str, path: &Path, e: &io::Error) -> NetError {
    NetError::Sink(format!("{what} {}: {e}", path.display()))
}

/// Most bytes of the final name a temporary file's name repeats.
const TEMP_NAME_MAX: usize = 200;

/// A new temporary file in `dest`'s directory: created exclusively
/// (`O_EXCL`, so never through a planted symlink) under a random name.
fn temp_beside(dest: &Path) -> Result<tempfile::NamedTempFile, NetError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut name = dest.file_name().map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    // The temporary name adds 18 bytes to the final one: keep it within
    // the 255 a file name may have, cut on a character boundary.
    let mut end = name.len().min(TEMP_NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".weir.part")
        .tempfile_in(dir)
        .map_err(|e| sink_err("cannot create a temporary file in", dir, &e))
}

/// A sink plus what the adapter learned about the resource so far.
pub struct SinkState {
    target: Target,
    /// Bytes of the requested range delivered to the sink, across attempts.
    pub written: u64,
    /// The version of the resource the bytes belong to (validator, total):
    /// the next attempt resumes only an answer of the same version.
    pub version: Version,
    /// Status of the first answer that carried the body.
    pub status: u16,
    /// Headers of that answer.
    pub headers: Vec<(String, String)>,
    /// Largest body a memory sink accepts.
    pub memory_limit: u64,
    /// What the download's handle reads.
    progress: Arc<Progress>,
    /// The size and digest its bytes must have, checked as they come.
    verify: Option<Verifier>,
    /// Every byte is on disk (or flushed to the writer): finishing only renames.
    synced: bool,
    /// Whether a completed file is put on disk (`fsync`) before it takes
    /// its final name; see [`SinkState::trusting_the_os`].
    durable: bool,
    /// The last check of the whole body failed and the sink started over
    /// (it holds nothing now): the download may be fetched again from zero.
    discarded: bool,
}

impl std::fmt::Debug for SinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkState")
            .field("written", &self.written)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl SinkState {
    /// A fresh state for a download's sink.
    #[must_use]
    pub fn new(sink: Sink, memory_limit: u64) -> Self {
        Self::with_progress(sink, memory_limit, Arc::default())
    }

    /// A fresh state that keeps `progress` (held by the download's handle) current.
    #[must_use]
    pub fn with_progress(sink: Sink, memory_limit: u64, progress: Arc<Progress>) -> Self {
        let target = match sink {
            Sink::Memory => Target::Memory(Vec::new()),
            Sink::File(dest) => Target::File { file: None, dest },
            Sink::Writer(w) => Target::Writer(w),
            Sink::Resumable(dest) => Target::Resumable(Partial::new(dest)),
            #[cfg(feature = "async")]
            Sink::AsyncWriter(w) => Target::AsyncWriter(w),
        };
        Self {
            target,
            written: 0,
            version: Version::default(),
            status: 0,
            headers: Vec::new(),
            memory_limit,
            progress,
            verify: None,
            synced: false,
            durable: true,
            discarded: false,
        }
    }

    /// Refuse an async writer (the blocking adapter cannot drive one): every
    /// attempt then fails with a clear [`NetError::Sink`].
    #[must_use]
    pub fn refusing_async_writer(self) -> Self {
        #[cfg(feature = "async")]
        if matches!(self.target, Target::AsyncWriter(_)) {
            return Self {
                target: Target::Refused("an async writer sink needs the async adapter (weir-async)"),
                ..self
            };
        }
        self
    }

    /// The caller's async writer, for a [`Sink::AsyncWriter`]: the async
    /// adapter writes each part to it and then counts what the writer
    /// accepted ([`Transfer::wrote`](crate::Transfer::wrote)). `None` for every other sink (use
    /// [`SinkState::write`]).
    #[cfg(feature = "async")]
    pub fn async_writer(&mut self) -> Option<&mut (dyn futures_io::AsyncWrite + Send + Unpin)> {
        match &mut self.target {
            Target::AsyncWriter(w) => Some(&mut **w),
            _ => None,
        }
    }

    /// Count bytes the async writer accepted (see [`SinkState::async_writer`]).
    pub(crate) fn wrote(&mut self, buf: &[u8]) {
        self.count(buf);
    }

    fn count(&mut self, buf: &[u8]) {
        self.synced = false;
        self.written += buf.len() as u64;
        self.progress.set_bytes(self.written);
        if let Some(v) = &mut self.verify {
            v.update(buf);
        }
    }

    /// Complete files take their final name without an `fsync` first, as
    /// curl and wget do: faster on many small files, but after a power
    /// loss or an OS crash (not a crash of the process) a file may be
    /// short or empty under its final name. The default puts every byte
    /// on disk first.
    #[must_use]
    pub fn trusting_the_os(mut self) -> Self {
        self.durable = false;
        self
    }

    /// Check the bytes against `expect` (nothing expected: no check).
    #[must_use]
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.verify = (!expect.is_empty()).then(|| Verifier::new(expect));
        self
    }

    /// An answer announced the size the sink will have when complete:
    /// a size that is not the expected one fails before any byte is fetched.
    ///
    /// # Errors
    /// [`NetError::Integrity`].
    pub fn check_announced(&self, size: Option<u64>) -> Result<(), NetError> {
        self.verify.as_ref().map_or(Ok(()), |v| v.announced(size))
    }

    /// Every byte is in: check size and digest before the download is
    /// reported complete. On a mismatch the sink starts over (a resumable
    /// partial file is emptied, so no later run resumes wrong bytes).
    ///
    /// # Errors
    /// [`NetError::Integrity`] naming what differs.
    pub fn verify_complete(&mut self) -> Result<(), NetError> {
        let Some(v) = &self.verify else { return Ok(()) };
        if let Err(e) = v.finish() {
            self.discarded = self.reset().is_ok();
            return Err(e);
        }
        Ok(())
    }

    /// Whether the last [`SinkState::verify_complete`] found wrong bytes
    /// and started the sink over (a caller's writer cannot); asking clears it.
    pub fn take_discarded(&mut self) -> bool {
        std::mem::take(&mut self.discarded)
    }

    /// What the sink holds, for the next [`Attempt`]. A
    /// resumable sink reads its partial file's length and metadata from
    /// disk the first time.
    ///
    /// # Errors
    /// [`NetError::Sink`] when a partial file is refused (a symlink, not a
    /// regular file) or cannot be read.
    pub fn prepare(&mut self) -> Result<Held, NetError> {
        if let Target::Refused(why) = &self.target {
            return Err(NetError::Sink((*why).to_owned()));
        }
        if let Target::Resumable(p) = &mut self.target {
            let first = !p.is_open();
            let held = p.held()?;
            (self.written, self.version) = (held.bytes, held.version);
            self.progress.set_bytes(self.written);
            // Bytes an earlier run left count for the digest too.
            if let (true, Some(v)) = (first && held.bytes > 0, &mut self.verify) {
                p.read_all(|chunk| v.update(chunk))?;
            }
        }
        Ok(Held { bytes: self.written, version: self.version.clone() })
    }

    /// Apply an answer `attempt` accepted: start over if `restart`, record
    /// `record` (status, headers) as the download's response, keep the
    /// version the bytes now belong to, and check and publish the size the
    /// sink will have when complete.
    ///
    /// # Errors
    /// As [`SinkState::reset`]; when a resumable sink cannot keep its
    /// metadata; [`NetError::Integrity`] for a size other than the expected
    /// one; [`NetError::TooLarge`] past a memory sink's limit.
    pub fn accept(
        &mut self,
        restart: bool,
        record: Option<(u16, Vec<(String, String)>)>,
        attempt: &Attempt,
    ) -> Result<(), NetError> {
        if restart {
            self.reset()?;
        }
        if let Some((status, headers)) = record {
            (self.status, self.headers) = (status, headers);
        }
        let version = attempt.version().clone();
        if let Target::Resumable(p) = &mut self.target {
            p.set_version(&version)?;
        }
        self.version = version;
        let size = attempt.final_size();
        self.progress.set_total(size);
        self.check_announced(size)?;
        if size.is_some_and(|n| !self.fits(n)) {
            return Err(NetError::TooLarge);
        }
        Ok(())
    }

    /// Whether the sink can start over from zero (memory and file can; a
    /// caller's writer cannot).
    #[must_use]
    pub fn rewindable(&self) -> bool {
        match self.target {
            Target::Writer(_) | Target::Refused(_) => false,
            #[cfg(feature = "async")]
            Target::AsyncWriter(_) => false,
            _ => true,
        }
    }

    /// Whether more bytes up to `total` would fit.
    pub fn fits(&self, total: u64) -> bool {
        !matches!(self.target, Target::Memory(_)) || total <= self.memory_limit
    }

    /// Append bytes.
    ///
    /// # Errors
    /// [`NetError::Sink`] on an I/O error, [`NetError::TooLarge`] past a memory sink's limit.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), NetError> {
        match &mut self.target {
            Target::Memory(v) => {
                if v.len() as u64 + buf.len() as u64 > self.memory_limit {
                    return Err(NetError::TooLarge);
                }
                v.extend_from_slice(buf);
            }
            Target::File { file, dest } => {
                let f = match file {
                    Some(f) => f,
                    None => file.insert(temp_beside(dest)?),
                };
                f.write_all(buf).map_err(|e| sink_err("cannot write", f.path(), &e))?;
            }
            Target::Writer(w) => w.write_all(buf).map_err(|e| NetError::Sink(e.to_string()))?,
            Target::Resumable(p) => p.write(buf)?,
            #[cfg(feature = "async")]
            Target::AsyncWriter(_) => {
                return Err(NetError::Sink("an async writer is written through async_writer()".into()))
            }
            Target::Refused(why) => return Err(NetError::Sink((*why).to_owned())),
        }
        self.count(buf);
        Ok(())
    }

    /// Start over from byte zero (the resource changed between attempts).
    ///
    /// # Errors
    /// A writer sink cannot be rewound ([`NetError::Protocol`]).
    pub fn reset(&mut self) -> Result<(), NetError> {
        match &mut self.target {
            Target::Memory(v) => v.clear(),
            Target::File { file: Some(f), .. } => {
                let path = f.path().to_owned();
                let f = f.as_file_mut();
                f.set_len(0).and_then(|()| f.rewind()).map_err(|e| sink_err("cannot truncate", &path, &e))?;
            }
            Target::File { file: None, .. } => {}
            Target::Resumable(p) => p.reset()?,
            Target::Refused(why) => return Err(NetError::Sink((*why).to_owned())),
            Target::Writer(_) => {
                return Err(NetError::Protocol(
                    "the resource changed between attempts and the writer cannot be rewound".into(),
                ))
            }
            #[cfg(feature = "async")]
            Target::AsyncWriter(_) => {
                return Err(NetError::Protocol(
                    "the resource changed between attempts and the async writer cannot be rewound".into(),
                ))
            }
        }
        self.written = 0;
        self.synced = false;
        self.version = Version::default();
        self.progress.set_bytes(0);
        if let Some(v) = &mut self.verify {
            v.reset();
        }
        Ok(())
    }

    /// Every byte is in: flush a caller's writer. The transfer that
    /// completes the download calls it, on its own thread. A file is not
    /// put on disk here: that waits for the download's settlement, where
    /// the files of many downloads reach the disk together
    /// ([`sync_together`](crate::hub::sync_together)), or each alone in
    /// [`SinkState::finish`]; a worker never waits for the disk.
    ///
    /// # Errors
    /// [`NetError::Sink`] when flushing the writer fails.
    pub fn sync(&mut self) -> Result<(), NetError> {
        match &mut self.target {
            Target::File { .. } | Target::Resumable(_) if self.durable => return Ok(()),
            Target::Writer(w) => w.flush().map_err(|e| NetError::Sink(e.to_string()))?,
            _ => {}
        }
        self.mark_synced();
        Ok(())
    }

    /// The open file whose bytes must still reach the disk before it takes
    /// its final name: a durable file or partial file not yet synced.
    #[must_use]
    pub fn unsynced_file(&self) -> Option<&std::fs::File> {
        if self.synced || !self.durable {
            return None;
        }
        match &self.target {
            Target::File { file: Some(f), .. } => Some(f.as_file()),
            Target::Resumable(p) => p.open_file(),
            _ => None,
        }
    }

    /// Whether the bytes are in a file that finishing renames into place.
    #[must_use]
    pub fn is_file(&self) -> bool {
        matches!(self.target, Target::File { file: Some(_), .. } | Target::Resumable(_))
    }

    /// The file's bytes reached the disk by other means (a `syncfs` of its
    /// file system): [`SinkState::finish`] only renames.
    pub fn mark_synced(&mut self) {
        if let Target::Resumable(p) = &mut self.target {
            p.trust_the_os();
        }
        self.synced = true;
    }

    /// The download completed: flush and hand over the body.
    ///
    /// # Errors
    /// [`NetError::Sink`] when flushing or renaming into place fails.
    pub fn finish(self) -> Result<Delivered, NetError> {
        match self.target {
            Target::Memory(v) => Ok(Delivered::Memory(v)),
            Target::File { file, dest } => {
                let file = match file {
                    Some(f) => f,
                    // An empty body: still create the (empty) file.
                    None => temp_beside(&dest)?,
                };
                if !self.synced {
                    file.as_file().sync_all().map_err(|e| sink_err("cannot sync", file.path(), &e))?;
                }
                // A failed rename drops (and so removes) the temporary file.
                file.persist(&dest).map_err(|e| sink_err("cannot rename into", &dest, &e.error))?;
                Ok(Delivered::File(dest))
            }
            Target::Writer(mut w) => {
                if !self.synced {
                    w.flush().map_err(|e| NetError::Sink(e.to_string()))?;
                }
                Ok(Delivered::Writer)
            }
            // The async adapter flushed it before reporting the download complete.
            #[cfg(feature = "async")]
            Target::AsyncWriter(_) => Ok(Delivered::Writer),
            Target::Resumable(p) => p.finish().map(Delivered::File),
            Target::Refused(why) => Err(NetError::Sink(why.to_owned())),
        }
    }

    /// The download failed or was cancelled: leave no partial file behind
    /// (dropping the temporary file removes it), except a resumable sink's,
    /// which stays with its metadata for a later run.
    pub fn abandon(self) {
        match self.target {
            Target::Resumable(mut p) => p.close(),
            other => drop(other),
        }
    }
}
