//! The disk, off the workers: one thread puts every completed file in
//! place. A file must be on disk before it takes its final name; the
//! thread does that for every download that completed meanwhile at once
//! ([`weir_http::sync_together`]), then renames them (one thread renaming
//! in a directory, not every worker contending for its lock) and wakes
//! their waiters. A worker hands its completed download over and starts
//! its next transfer at once; the more complete while one batch syncs, the
//! larger the next (up to [`MOST_FILES_WAITING`], past which a worker
//! waits for room).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use weir_http::{Settlement, MOST_FILES_WAITING};

#[derive(Default)]
struct Queue {
    waiting: Vec<Settlement>,
    /// Closed once the downloader stopped: settle on the caller's thread.
    closed: bool,
    /// The sync thread sleeps on `ready` (a hand-over must wake it).
    idle: bool,
}

#[derive(Default)]
pub(crate) struct Syncer {
    queue: Mutex<Queue>,
    /// The sync thread waits on it for work.
    ready: Condvar,
    /// Workers wait on it for room in a full queue.
    room: Condvar,
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Syncer {
    /// Settle `s`: at once, or on the sync thread when it puts a file in place.
    pub(crate) fn settle(&self, s: Settlement) {
        if !s.places_file() {
            return s.run();
        }
        let mut q = lock(&self.queue);
        // A full queue: wait for the sync thread to take it (one batch).
        while q.waiting.len() >= MOST_FILES_WAITING && !q.closed {
            q = self.room.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        if q.closed {
            drop(q);
            return s.run();
        }
        q.waiting.push(s);
        if q.idle {
            self.ready.notify_one();
        }
    }

    /// The sync thread: batch after batch until closed and empty.
    pub(crate) fn run(&self) {
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                while q.waiting.is_empty() && !q.closed {
                    q.idle = true;
                    q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                    q.idle = false;
                }
                if q.waiting.is_empty() {
                    return;
                }
                let batch = std::mem::take(&mut q.waiting);
                self.room.notify_all();
                batch
            };
            weir_http::place_files(batch);
        }
    }

    /// No more hand-overs: the sync thread ends once what it holds is settled.
    pub(crate) fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_all();
        self.room.notify_all();
    }
}
