#![doc = include_str!("../README.md")]
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
#[cfg(feature = "serde")]
mod serde_support;
mod timers;

pub use config::{Config, RetryPolicy};
pub use error::{ConfigError, EnqueueError, NetError};
pub use events::{CancelReason, DownloaderEvent, Output};
pub use ids::{GroupId, PeerId, RequestId};
pub use request::{FetchCmd, Request, RequestMethod, RequestPriority};
pub use scheduler::{Footprint, Scheduler};
pub use url::Url;
