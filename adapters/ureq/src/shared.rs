//! The hub behind one lock, called directly by handles, workers and the
//! timer thread: a worker that finishes a transfer reports it and takes its
//! own next one in the same call, with no hand-off to another thread.
//!
//! Everything the hub does under the lock is quick; settling a download
//! (renaming a file into place, waking whoever waits for it) runs after the
//! lock is released, and a completed file goes to the sync thread first
//! ([`Syncer`]). The timer thread sleeps until the hub's next deadline; whoever makes an
//! earlier deadline wakes it.

use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use weir_http::{Action, Hub, Settlement, Transfer};

use crate::syncer::Syncer;

struct State {
    hub: Hub,
    /// What the timer thread sleeps toward (`None`: until woken).
    timer_at: Option<Instant>,
    /// Transfers for the workers; `None` once the downloader stopped.
    jobs: Option<Sender<Box<Transfer>>>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The timer thread waits on it.
    timer: Condvar,
    /// Shutdown waits on it for the last sink to come back.
    returned: Condvar,
    /// Completed files reach the disk on their own thread.
    pub(crate) syncer: Syncer,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(hub: Hub, jobs: Sender<Box<Transfer>>, syncer: Syncer) -> Self {
        let state = State { hub, timer_at: None, jobs: Some(jobs) };
        Self { state: Mutex::new(state), timer: Condvar::new(), returned: Condvar::new(), syncer }
    }

    /// Feed the hub with `f`, then act on what it decided: transfers go to
    /// the workers (the first one back to the caller when `keep`, a worker
    /// taking its own next job), the timer is woken for an earlier deadline.
    pub(crate) fn call<R>(&self, keep: bool, f: impl FnOnce(&mut Hub, Instant) -> R) -> (R, Option<Box<Transfer>>) {
        let mut s = lock(&self.state);
        let r = f(&mut s.hub, Instant::now());
        let mut settle = Vec::new();
        let mine = self.dispatch(&mut s, keep, &mut settle);
        drop(s);
        self.settle(settle);
        (r, mine)
    }

    /// [`Shared::call`] for a handle: nothing kept.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Hub, Instant) -> R) -> R {
        self.call(false, f).0
    }

    /// Hand out what the hub decided; settlements go to `settle`, to run
    /// once the lock is released.
    fn dispatch(&self, s: &mut State, keep: bool, settle: &mut Vec<Settlement>) -> Option<Box<Transfer>> {
        let mut mine = None;
        while let Some(action) = s.hub.poll() {
            let t = match action {
                Action::Spawn(t) => t,
                Action::Settle(x) => {
                    settle.push(*x);
                    continue;
                }
            };
            match (&s.jobs, keep && mine.is_none()) {
                (_, true) => mine = Some(t),
                (Some(jobs), false) => {
                    let _ = jobs.send(t);
                }
                (None, false) => {}
            }
        }
        let deadline = s.hub.poll_timeout();
        if deadline.is_some_and(|at| s.timer_at.is_none_or(|w| at < w)) {
            self.timer.notify_one();
        }
        if s.hub.is_finished() {
            self.returned.notify_all();
        }
        mine
    }

    fn settle(&self, settle: Vec<Settlement>) {
        settle.into_iter().for_each(|s| self.syncer.settle(s));
    }

    /// The timer thread: fire deadlines as they come, until the downloader stops.
    pub(crate) fn run_timer(&self) {
        let mut s = lock(&self.state);
        while s.jobs.is_some() {
            let now = Instant::now();
            s.hub.handle_timeout(now);
            let mut settle = Vec::new();
            self.dispatch(&mut s, false, &mut settle);
            if !settle.is_empty() {
                drop(s);
                self.settle(settle);
                s = lock(&self.state);
                continue;
            }
            let at = s.hub.poll_timeout();
            s.timer_at = at;
            s = match at {
                None => self.timer.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.timer.wait_timeout(s, wait).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// Shut the hub down, wait for every transfer to hand its sink back,
    /// then close the job queue (the workers end), stop the timer and let
    /// the sync thread end once it has settled what it holds.
    pub(crate) fn stop(&self) {
        let mut s = lock(&self.state);
        if s.jobs.is_none() {
            return;
        }
        s.hub.command(weir_http::Command::Shutdown, Instant::now());
        let mut settle = Vec::new();
        self.dispatch(&mut s, false, &mut settle);
        drop(s);
        self.settle(settle);
        let mut s = lock(&self.state);
        while !s.hub.is_finished() {
            s = self.returned.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.jobs = None;
        self.timer.notify_one();
        drop(s);
        self.syncer.close();
    }
}
