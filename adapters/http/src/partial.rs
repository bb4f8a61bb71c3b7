//! A partial file that outlives the process: `DEST.part` holds the bytes
//! fetched so far, `DEST.part.meta` the version they were fetched under
//! (validator and total). A later process resumes it with `If-Range`, and
//! the [`Attempt`](crate::Attempt) restarts it from zero when the resource
//! changed, so two versions are never spliced. When the download completes
//! the partial file is renamed to `DEST` and its metadata removed; when it
//! fails or is cancelled both stay for the next run.
//!
//! The partial file is opened when the download's first transfer starts
//! (not when it is queued, so a long list holds few files open) and kept
//! open, under an exclusive advisory lock, until the download ends: a
//! second process (another `weir get` into the same directory) finds it
//! locked and fails that download with a clear error instead of writing
//! into it. It is never opened through a symlink: a partial path that is
//! a symlink or not a regular file is refused (checked on the opened handle
//! against the path, so a link swapped in between is caught too).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use weir::NetError;

use crate::attempt::{Held, Version};

/// First line of a metadata file; a file without it is not ours.
const MAGIC: &str = "weir-partial 1";

/// `DEST.part`: where the bytes of `dest` accumulate.
#[must_use]
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// `DEST.part.meta`: the version of the partial file's bytes.
#[must_use]
pub fn meta_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part.meta");
    PathBuf::from(s)
}

fn err(what: &str, path: &Path, e: &io::Error) -> NetError {
    NetError::Sink(format!("{what} {}: {e}", path.display()))
}

/// Open `path` for appending without following a symlink: it must be a
/// regular file (created exclusively when missing), and the opened handle
/// must be the file the path names. `true` with a file this call created
/// (so empty).
fn open_regular(path: &Path) -> Result<(File, bool), NetError> {
    // Exclusive creation never follows a symlink, not even a dangling one:
    // the common case (nothing there yet) costs one call.
    match OpenOptions::new().read(true).append(true).create_new(true).open(path) {
        Ok(file) => return lock(file, path).map(|f| (f, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("cannot create", path, &e)),
    }
    let before = fs::symlink_metadata(path).map_err(|e| err("cannot inspect", path, &e))?;
    if !before.file_type().is_file() {
        return Err(NetError::Sink(format!("{} is not a regular file (a symlink?); refusing it", path.display())));
    }
    let file = OpenOptions::new().read(true).append(true).open(path).map_err(|e| err("cannot open", path, &e))?;
    let opened = file.metadata().map_err(|e| err("cannot inspect", path, &e))?;
    if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) || !opened.file_type().is_file() {
        return Err(NetError::Sink(format!("{} changed while it was opened; refusing it", path.display())));
    }
    lock(file, path).map(|f| (f, false))
}

/// Take the partial file's exclusive advisory lock, or say who holds it.
fn lock(file: File, path: &Path) -> Result<File, NetError> {
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(NetError::Sink(format!(
            "{} is being written by another download (another process?); leaving it alone",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(err("cannot lock", path, &e)),
    }
}

/// Read the metadata file; anything unreadable or foreign is "unknown".
fn read_meta(path: &Path) -> Version {
    let Ok(m) = fs::symlink_metadata(path) else { return Version::default() };
    if !m.file_type().is_file() || m.len() > 4096 {
        return Version::default();
    }
    let Ok(text) = fs::read_to_string(path) else { return Version::default() };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Version::default();
    }
    let mut v = Version::default();
    for line in lines {
        match line.split_once('=') {
            Some(("validator", val)) if !val.is_empty() => v.validator = Some(val.to_owned()),
            Some(("total", t)) => v.total = t.parse().ok(),
            _ => {}
        }
    }
    v
}

/// Write the metadata file beside the partial one (a temporary file renamed
/// over it, so a reader never sees half of it).
fn write_meta(path: &Path, v: &Version) -> Result<(), NetError> {
    let mut text = format!("{MAGIC}\n");
    if let Some(val) = v.validator.as_deref().filter(|val| !val.contains(['\n', '\r'])) {
        text.push_str(&format!("validator={val}\n"));
    }
    if let Some(t) = v.total {
        text.push_str(&format!("total={t}\n"));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".weir-meta.")
        .tempfile_in(dir)
        .map_err(|e| err("cannot create a temporary file in", dir, &e))?;
    tmp.write_all(text.as_bytes()).map_err(|e| err("cannot write", tmp.path(), &e))?;
    tmp.persist(path).map_err(|e| err("cannot write", path, &e.error))?;
    Ok(())
}

/// A resumable partial file of `dest`.
#[derive(Debug)]
pub struct Partial {
    dest: PathBuf,
    part: PathBuf,
    meta: PathBuf,
    /// Open (and locked) from the first transfer until the download ends.
    file: Option<File>,
    /// Bytes in the partial file.
    len: u64,
    /// The version of the bytes, once read (or learnt).
    version: Option<Version>,
    /// Whether `DEST.part.meta` on disk describes the bytes.
    meta_written: bool,
    /// Whether every byte written is on disk ([`Partial::sync`]).
    synced: bool,
}

impl Partial {
    /// The partial file of `dest`. Nothing is opened yet.
    #[must_use]
    pub fn new(dest: PathBuf) -> Self {
        let (part, meta) = (part_path(&dest), meta_path(&dest));
        Partial { dest, part, meta, file: None, len: 0, version: None, meta_written: false, synced: false }
    }

    /// What the partial file holds: the first time, it is opened (created
    /// when missing) and locked, and its length and the version in its
    /// metadata are read, so no other process can change it from then on.
    ///
    /// # Errors
    /// [`NetError::Sink`] when the partial path is a symlink or not a
    /// regular file, another process holds it, or it cannot be read.
    pub fn held(&mut self) -> Result<Held, NetError> {
        if self.version.is_none() {
            let part = self.part.clone();
            let mut created = false;
            if self.file.is_none() {
                let (f, new) = open_regular(&part)?;
                (self.file, created) = (Some(f), new);
            }
            // A file just created is empty: no need to ask.
            self.len =
                if created { 0 } else { self.file()?.metadata().map_err(|e| err("cannot inspect", &part, &e))?.len() };
            let v = if self.len > 0 { read_meta(&self.meta) } else { Version::default() };
            self.meta_written = v != Version::default();
            self.version = Some(v);
        }
        Ok(Held { bytes: self.len, version: self.version.clone().unwrap_or_default() })
    }

    /// Whether the partial file is open (its first transfer started).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Feed `f` every byte the partial file holds, from its start.
    ///
    /// # Errors
    /// [`NetError::Sink`] when it cannot be read.
    pub fn read_all(&mut self, mut f: impl FnMut(&[u8])) -> Result<(), NetError> {
        use std::os::unix::fs::FileExt;
        let (len, part) = (self.len, self.part.clone());
        let file = self.file()?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0u64;
        while at < len {
            let n = file.read_at(&mut buf, at).map_err(|e| err("cannot read", &part, &e))?;
            if n == 0 {
                break;
            }
            let n = n.min(usize::try_from(len - at).unwrap_or(usize::MAX));
            f(&buf[..n]);
            at += n as u64;
        }
        Ok(())
    }

    /// The bytes now belong to `version`: keep it on disk beside them.
    ///
    /// # Errors
    /// [`NetError::Sink`] when the metadata cannot be written.
    ///
    /// Written to `DEST.part.meta` only when the download stops without
    /// completing ([`Partial::close`]): a download that completes writes no
    /// metadata at all. A process killed outright leaves a partial file
    /// without (new) metadata, which the next run cannot vouch for and so
    /// fetches again from zero: never a splice.
    pub fn set_version(&mut self, version: &Version) -> Result<(), NetError> {
        if self.version.as_ref() != Some(version) {
            // What is on disk no longer describes the bytes: drop it now.
            if self.meta_written {
                let _ = fs::remove_file(&self.meta);
                self.meta_written = false;
            }
            self.version = Some(version.clone());
        }
        Ok(())
    }

    fn file(&mut self) -> Result<&mut File, NetError> {
        if self.file.is_none() {
            self.file = Some(open_regular(&self.part)?.0);
        }
        self.file.as_mut().ok_or_else(|| NetError::Sink(format!("cannot open {}", self.part.display())))
    }

    /// Append bytes.
    ///
    /// # Errors
    /// [`NetError::Sink`] on an I/O error or a refused partial path.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), NetError> {
        let part = self.part.clone();
        self.file()?.write_all(buf).map_err(|e| err("cannot write", &part, &e))?;
        self.len += buf.len() as u64;
        self.synced = false;
        Ok(())
    }

    /// Put every byte written on disk (`fsync`), so that [`Partial::finish`]
    /// only renames.
    ///
    /// # Errors
    /// [`NetError::Sink`] when the file cannot be synced.
    pub fn sync(&mut self) -> Result<(), NetError> {
        let part = self.part.clone();
        self.file()?.sync_all().map_err(|e| err("cannot sync", &part, &e))?;
        self.synced = true;
        Ok(())
    }

    /// The open partial file, while its download runs.
    #[must_use]
    pub fn open_file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// Take the bytes as written without an `fsync`: [`Partial::finish`]
    /// then only renames (see `SinkState::trusting_the_os`).
    pub fn trust_the_os(&mut self) {
        self.synced = true;
    }

    /// Start over from byte zero.
    ///
    /// # Errors
    /// [`NetError::Sink`] when the file cannot be truncated.
    pub fn reset(&mut self) -> Result<(), NetError> {
        let part = self.part.clone();
        if self.len > 0 || self.file.is_some() {
            let f = self.file()?;
            f.set_len(0)
                .and_then(|()| f.seek(SeekFrom::Start(0)).map(drop))
                .map_err(|e| err("cannot truncate", &part, &e))?;
        }
        self.len = 0;
        self.synced = false;
        self.version = Some(Version::default());
        let _ = fs::remove_file(&self.meta);
        self.meta_written = false;
        Ok(())
    }

    /// The download ended without completing (failed, cancelled): close
    /// and unlock the file, keep it and its metadata for a later run (an
    /// empty one, as a refused or failed first answer leaves, is removed).
    pub fn close(&mut self) {
        if self.file.is_some() && self.len == 0 {
            // Still locked by us: nobody else can be using it.
            let _ = fs::remove_file(&self.part);
            let _ = fs::remove_file(&self.meta);
        }
        if let Some(f) = self.file.take() {
            // Bytes first, then the record of their version, then unlock.
            let _ = f.sync_data();
            if self.len > 0 && !self.meta_written {
                if let Some(v) = &self.version {
                    let _ = write_meta(&self.meta, v);
                }
            }
        }
    }

    /// Complete: the partial file becomes `dest`; its metadata goes.
    ///
    /// # Errors
    /// [`NetError::Sink`] when syncing or renaming fails.
    pub fn finish(mut self) -> Result<PathBuf, NetError> {
        if !self.synced {
            self.sync()?;
        }
        self.file = None;
        fs::rename(&self.part, &self.dest).map_err(|e| err("cannot rename into", &self.dest, &e))?;
        // A look (no lock on the directory) spares the unlink of a
        // metadata file that, for a fresh download, is not there.
        if self.meta_written || fs::symlink_metadata(&self.meta).is_ok() {
            let _ = fs::remove_file(&self.meta);
        }
        Ok(self.dest)
    }
}
