#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bandwidth;
mod class;
mod config;
mod error;
mod events;
mod hosts;
mod ids;
mod keys;
mod live;
mod policy;
mod registry;
mod request;
mod retry;
mod running;
mod scheduler;
#[cfg(feature = "serde")]
mod serde_support;
mod timers;
mod waiting;

pub use config::{Config, RetryPolicy};
pub use error::{ConfigError, EnqueueError, NetError};
pub use events::{CancelReason, DownloaderEvent, Output};
pub use ids::{GroupId, PeerId, RequestId};
pub use policy::Timeouts;
pub use request::{FetchCmd, Request, RequestMethod, RequestPriority};
pub use scheduler::{Footprint, QueueFootprint, Scheduler};
pub use url::Url;
