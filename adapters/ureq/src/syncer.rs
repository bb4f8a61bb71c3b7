//! The disk, off the workers: one thread puts every completed file in
//! place. A file must be on disk before it takes its final name; the
//! thread does that for every download that completed meanwhile at once,
//! then renames them (one thread renaming in a directory, not every worker
//! contending for its lock) and wakes their waiters
//! ([`weir_http::place_files`]). A worker hands its completed download
//! over and starts its next transfer at once; the more complete while one
//! batch syncs, the larger the next (up to [`MOST_FILES_WAITING`] wait,
//! past which a worker waits for room).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};

use weir_http::{Settlement, MOST_FILES_WAITING};

/// Where workers hand over completed files.
pub(crate) struct Syncer {
    /// `None` once the downloader stopped: settle on the caller's thread.
    hand_over: Mutex<Option<SyncSender<Settlement>>>,
}

impl Syncer {
    /// The hand-over and what the sync thread ([`run`]) reads.
    pub(crate) fn new() -> (Self, Receiver<Settlement>) {
        let (tx, rx) = sync_channel(MOST_FILES_WAITING);
        (Self { hand_over: Mutex::new(Some(tx)) }, rx)
    }

    /// Settle `s`: at once, or on the sync thread when it puts a file in
    /// place (waiting for room while the queue is full).
    pub(crate) fn settle(&self, s: Settlement) {
        if !s.places_file() {
            return s.run();
        }
        let tx = self.hand_over.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match tx {
            Some(tx) => {
                if let Err(back) = tx.send(s) {
                    back.0.run();
                }
            }
            None => s.run(),
        }
    }

    /// No more hand-overs: the sync thread ends once what it holds is settled.
    pub(crate) fn close(&self) {
        self.hand_over.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// The sync thread: batch after batch (whatever waits), until the
/// downloader stopped and everything handed over is settled.
pub(crate) fn run(waiting: &Receiver<Settlement>) {
    while let Ok(first) = waiting.recv() {
        weir_http::place_files(std::iter::once(first).chain(waiting.try_iter()).collect());
    }
}
