//! # weir: a sans-IO download scheduler
//!
//! weir decides which HTTP fetch runs next, when to give up, retry, slow
//! down or cancel, and reports everything that happened as typed
//! [`DownloaderEvent`]s. This crate is the pure core: a synchronous
//! [`Scheduler`] that takes inputs and emits [`Output`]s. It never touches a
//! socket, a thread or a clock; adapters (`weir-ureq`, `weir-async`) bind it
//! to real I/O, and tests drive it with explicit [`Instant`](std::time::Instant)s.
//!
//! ## The run loop
//!
//! Every driver has this shape:
//!
//! 1. feed inputs: [`Scheduler::enqueue`], [`Scheduler::cancel`],
//!    [`Scheduler::set_priority`], … from your users; [`Scheduler::on_bytes`],
//!    [`Scheduler::on_complete`], [`Scheduler::on_failed`] from transfers;
//! 2. drain [`Scheduler::poll_output`] until `None`, acting on each output:
//!    [`Output::Start`] begins a transfer, [`Output::Abort`] stops one,
//!    [`Output::Event`] is published on the peer's scope;
//! 3. sleep until [`Scheduler::poll_timeout`] or the next input, then call
//!    [`Scheduler::handle_timeout`] with the current time.
//!
//! Starts are decided lazily in `poll_output`, so inputs fed together before
//! polling are scheduled together: enqueue a Low and a High request with one
//! free slot, then poll, and the High one starts.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use weir::{Config, DownloaderEvent, Output, Request, RequestPriority, Scheduler};
//!
//! let mut sched = Scheduler::new(Config { max_concurrent: 1, ..Config::default() });
//! let player = sched.add_peer(RequestPriority::High);
//! let t0 = Instant::now();
//! let url = |p: &str| url::Url::parse(&format!("http://cdn.example/{p}")).unwrap();
//! let prefetch = sched.enqueue(player, Request::get(url("seg/2.ts")), t0).unwrap();
//! let demand = sched
//!     .enqueue(player, Request::get(url("seg/1.ts")).priority(RequestPriority::High), t0)
//!     .unwrap();
//!
//! // A fake network: every started transfer delivers 1000 bytes 10 ms later.
//! let mut now = t0;
//! let mut running = Vec::new();
//! let mut done = Vec::new();
//! for _ in 0..100 {
//!     while let Some(out) = sched.poll_output() {
//!         match out {
//!             Output::Start(cmd) => running.push(cmd.id),
//!             Output::Abort(id) => running.retain(|r| *r != id),
//!             Output::Event(_peer, DownloaderEvent::RequestCompleted { request_id, .. }) => {
//!                 done.push(request_id)
//!             }
//!             Output::Event(..) => {}
//!         }
//!     }
//!     if running.is_empty() && sched.queued() == 0 {
//!         break;
//!     }
//!     now += Duration::from_millis(10);
//!     sched.handle_timeout(now); // nothing is due here, but this is where timers fire
//!     for id in running.drain(..) {
//!         sched.on_bytes(id, 1000, now);
//!         sched.on_complete(id, now);
//!     }
//! }
//! assert_eq!(done, vec![demand, prefetch], "the demand segment ran first");
//! ```
//!
//! ## Scheduling rules
//!
//! * **Slots.** Waiting requests sit in four slots by (peer priority ×
//!   request priority), served HighHigh, HighLow, LowHigh, LowLow: peer
//!   priority dominates.
//! * **Fairness.** Inside a slot, peers are served round-robin and each
//!   peer's requests FIFO. A request re-queued after a retry backoff or a
//!   preemption goes to the front of its peer's queue, and that peer is
//!   served next.
//! * **Limits.** `max_concurrent`; `max_per_host` (a request whose host is
//!   full is skipped, never blocking the requests behind it);
//!   `max_low_in_flight` (a reserve for High requests); `max_queued`
//!   ([`EnqueueError::QueueFull`], nothing dropped silently).
//! * **Priority changes** keep the original enqueue order in the new slot.
//! * **Preemption** (`preempt_low`): when every slot is busy and a High
//!   request waits (its host not full), the most recently started running
//!   Low request of the worst slot strictly worse than the waiter's is
//!   aborted, queued again at the front, and later resumes from the bytes it
//!   delivered. Preemption does not use up retries.
//! * **Ageing** (`promote_after`): a Low request waiting that long becomes High.
//! * **Timeouts** run from the attempt's start, never from enqueue:
//!   `soft_timeout` emits one `LoadSlow` per attempt, `idle_timeout` and
//!   `hard_timeout` abort the attempt and retry it or fail with
//!   [`NetError::Timeout`].
//! * **Retries** of retryable errors back off `min(cap, base · 2^(n−1))`,
//!   jittered to `[d/2, d]` by a PRNG seeded from [`Config::seed`]; a
//!   `Retry-After` is used as given, and one longer than `max_retry_after`
//!   fails the request at once. A retry resumes from the delivered bytes: its
//!   [`FetchCmd::range`] says where.
//!
//! ## Decisions where the design leaves room
//!
//! * `set_priority` on a *running* request that makes it Low while the Low
//!   reserve is full is recorded but does not abort anything: the reserve
//!   limits the *starts* of Low requests, so Low in flight can exceed
//!   `max_low_in_flight` until such a request ends.
//! * A retry delay too large for the clock (`now + delay` overflows `Instant`)
//!   fails the request with [`NetError::Timeout`], `retryable: true`.
//! * `LoadSlow.elapsed` is the time from the attempt's start to the
//!   `handle_timeout` call that noticed it (equal to `soft_timeout` when the
//!   driver wakes on time).
//! * Zero timeouts and zero limits are refused by [`Scheduler::try_new`]
//!   ([`ConfigError`]); `None` disables a timeout or limit.
//! * A scheduler holds at most 2²⁴ live requests and accepts at most 2⁴⁰
//!   over its lifetime; beyond either, `enqueue` returns
//!   [`EnqueueError::QueueFull`].
//!
//! ## Cost
//!
//! Request state lives in a slab; queues hold keys. Enqueue, cancel,
//! `set_priority`, `on_bytes`, `on_complete` and each start are O(log n);
//! `poll_timeout` is O(log n) (deadlines in one ordered set) and
//! `handle_timeout` O(k log n) for k expired deadlines. Finding the next
//! request to start skips only full hosts, and, under `max_per_host`, peers
//! whose every waiting host is full. Memory tracks live requests: ended
//! requests free their slot for reuse.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod events;
mod hosts;
mod ids;
mod list;
mod queue;
mod request;
mod retry;
mod scheduler;
mod timers;

pub use config::{Config, RetryPolicy};
pub use error::{ConfigError, EnqueueError, NetError};
pub use events::{CancelReason, DownloaderEvent, Output};
pub use ids::{GroupId, PeerId, RequestId};
pub use request::{FetchCmd, Request, RequestMethod, RequestPriority};
pub use scheduler::{Footprint, Scheduler};
pub use url::Url;
