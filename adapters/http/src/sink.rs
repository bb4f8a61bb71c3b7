//! Where a body goes: memory, a file (renamed into place on completion), or
//! the caller's writer. A sink outlives attempts, so retries and resumes
//! append to it and every byte of the resource lands exactly once.

use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use weir::{NetError, RequestId};

use crate::attempt::{Held, Version};

/// The destination of a download's body.
pub enum Sink {
    /// Keep the body in memory; the adapter's response hands it over.
    Memory,
    /// Write to this path. The body goes to a temporary file beside it that is
    /// renamed into place only when the download completed, so a reader never
    /// sees a partial file. An existing file at the path is replaced.
    File(PathBuf),
    /// Write to the caller's writer. It cannot be rewound, so a resource that
    /// changes between attempts fails the download instead of restarting it.
    Writer(Box<dyn Write + Send>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Memory => f.write_str("Sink::Memory"),
            Sink::File(p) => f.debug_tuple("Sink::File").field(p).finish(),
            Sink::Writer(_) => f.write_str("Sink::Writer(..)"),
        }
    }
}

enum Target {
    Memory(Vec<u8>),
    File { file: Option<File>, tmp: PathBuf, dest: PathBuf },
    Writer(Box<dyn Write + Send>),
}

/// What a finished sink hands back.
#[derive(Debug)]
pub enum Delivered {
    /// The body, from [`Sink::Memory`].
    Memory(Vec<u8>),
    /// Where the file now is, from [`Sink::File`].
    File(PathBuf),
    /// The writer got everything, from [`Sink::Writer`].
    Writer,
}

fn sink_err(what: &str, path: &Path, e: &io::Error) -> NetError {
    NetError::Sink(format!("{what} {}: {e}", path.display()))
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
}

impl SinkState {
    /// A fresh state for request `id`'s sink.
    pub fn new(sink: Sink, id: RequestId, memory_limit: u64) -> Self {
        let target = match sink {
            Sink::Memory => Target::Memory(Vec::new()),
            Sink::File(dest) => {
                let name = dest.file_name().map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
                let tmp = dest.with_file_name(format!(".{name}.weir-{}.part", id.seq()));
                Target::File { file: None, tmp, dest }
            }
            Sink::Writer(w) => Target::Writer(w),
        };
        Self { target, written: 0, version: Version::default(), status: 0, headers: Vec::new(), memory_limit }
    }

    /// What the sink holds, for the next [`Attempt`](crate::Attempt).
    #[must_use]
    pub fn held(&self) -> Held {
        Held { bytes: self.written, version: self.version.clone() }
    }

    /// Whether the sink can start over from zero (memory and file can; a
    /// caller's writer cannot).
    #[must_use]
    pub fn rewindable(&self) -> bool {
        !matches!(self.target, Target::Writer(_))
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
            Target::File { file, tmp, .. } => {
                if file.is_none() {
                    *file = Some(File::create(&*tmp).map_err(|e| sink_err("cannot create", tmp, &e))?);
                }
                let f = file.as_mut().expect("opened above");
                f.write_all(buf).map_err(|e| sink_err("cannot write", tmp, &e))?;
            }
            Target::Writer(w) => w.write_all(buf).map_err(|e| NetError::Sink(e.to_string()))?,
        }
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Start over from byte zero (the resource changed between attempts).
    ///
    /// # Errors
    /// A writer sink cannot be rewound ([`NetError::Protocol`]).
    pub fn reset(&mut self) -> Result<(), NetError> {
        match &mut self.target {
            Target::Memory(v) => v.clear(),
            Target::File { file: Some(f), tmp, .. } => {
                f.set_len(0).and_then(|()| f.rewind()).map_err(|e| sink_err("cannot truncate", tmp, &e))?;
            }
            Target::File { file: None, .. } => {}
            Target::Writer(_) => {
                return Err(NetError::Protocol(
                    "the resource changed between attempts and the writer cannot be rewound".into(),
                ))
            }
        }
        self.written = 0;
        self.version = Version::default();
        Ok(())
    }

    /// The download completed: flush and hand over the body.
    ///
    /// # Errors
    /// [`NetError::Sink`] when flushing or renaming into place fails.
    pub fn finish(self) -> Result<Delivered, NetError> {
        match self.target {
            Target::Memory(v) => Ok(Delivered::Memory(v)),
            Target::File { file, tmp, dest } => {
                let file = match file {
                    Some(f) => f,
                    // An empty body: still create the (empty) file.
                    None => File::create(&tmp).map_err(|e| sink_err("cannot create", &tmp, &e))?,
                };
                file.sync_all().map_err(|e| sink_err("cannot sync", &tmp, &e))?;
                drop(file);
                fs::rename(&tmp, &dest).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    sink_err("cannot rename into", &dest, &e)
                })?;
                Ok(Delivered::File(dest))
            }
            Target::Writer(mut w) => {
                w.flush().map_err(|e| NetError::Sink(e.to_string()))?;
                Ok(Delivered::Writer)
            }
        }
    }

    /// The download failed or was cancelled: leave no partial file behind.
    pub fn abandon(self) {
        if let Target::File { file, tmp, .. } = self.target {
            drop(file);
            let _ = fs::remove_file(tmp);
        }
    }
}
