//! Readable serde forms (feature `serde`): a `Duration` is a number of
//! seconds (`1.5`), exact to the nanosecond below 2^52 ns (52 days); a
//! `RequestId` is its number. Used through `#[serde(with = ..)]` by the
//! public types; the derives live beside the types.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::RequestId;

/// `Duration` as seconds.
pub(crate) mod secs {
    use super::{Deserialize, Deserializer, Duration, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|e| serde::de::Error::custom(format!("{secs} is not a duration in seconds: {e}")))
    }
}

/// `Option<Duration>` as seconds or `null`.
pub(crate) mod opt_secs {
    use super::{Deserialize, Deserializer, Duration, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` hands us `&Option<T>`
    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| {
                Duration::try_from_secs_f64(secs)
                    .map_err(|e| serde::de::Error::custom(format!("{secs} is not a duration in seconds: {e}")))
            })
            .transpose()
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = u64::deserialize(d)?;
        NonZeroU64::new(raw).map(RequestId::new).ok_or_else(|| D::Error::custom("a request id is never 0"))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;
    use std::time::Duration;

    use url::Url;

    use crate::{
        CancelReason, Config, DownloaderEvent, EnqueueError, NetError, RequestId, RequestMethod, RequestPriority,
        RetryPolicy,
    };

    fn id(n: u64) -> RequestId {
        RequestId::new(NonZeroU64::new(n).expect("non-zero"))
    }

    /// One of each variant. The match below has no wildcard: a new variant
    /// does not compile until it is added here.
    fn every_event() -> Vec<DownloaderEvent> {
        let url = Url::parse("https://cdn.example/seg%201.ts?q=1").expect("url");
        let all = vec![
            DownloaderEvent::RequestEnqueued {
                request_id: id(1),
                url,
                method: RequestMethod::Head,
                priority: RequestPriority::High,
            },
            DownloaderEvent::RequestStarted { request_id: id(2), wait_in_queue: Duration::from_nanos(1), attempt: 3 },
            DownloaderEvent::FirstByte { request_id: id(3), latency: Duration::from_micros(1500) },
            DownloaderEvent::LoadSlow { request_id: id(4), elapsed: Duration::from_secs(2) },
            DownloaderEvent::RequestRetrying {
                request_id: id(5),
                attempt: 2,
                delay: Duration::from_millis(100),
                error: NetError::Status { status: 503, retry_after: Some(Duration::from_secs(7)) },
            },
            DownloaderEvent::RequestPreempted { request_id: id(6), bytes_transferred: u64::MAX },
            DownloaderEvent::PriorityChanged {
                request_id: id(7),
                from: RequestPriority::Low,
                to: RequestPriority::High,
            },
            DownloaderEvent::RequestRedirected {
                request_id: id(11),
                url: Url::parse("http://mirror.example/seg.ts").expect("url"),
            },
            DownloaderEvent::RequestCompleted {
                request_id: id(8),
                bytes_transferred: 10,
                duration: Duration::new(86_400, 123_456_789),
                bandwidth_bps: 80,
            },
            DownloaderEvent::RequestFailed { request_id: id(9), error: NetError::Timeout, retryable: true },
            DownloaderEvent::RequestCancelled {
                request_id: id(10),
                reason: CancelReason::BeforeStart,
                bytes_transferred: 0,
            },
            DownloaderEvent::ResponseReceived { request_id: id(12), status: 206, content_length: Some(u64::MAX) },
        ];
        for e in &all {
            match e {
                DownloaderEvent::RequestEnqueued { .. }
                | DownloaderEvent::RequestStarted { .. }
                | DownloaderEvent::FirstByte { .. }
                | DownloaderEvent::LoadSlow { .. }
                | DownloaderEvent::ResponseReceived { .. }
                | DownloaderEvent::RequestRetrying { .. }
                | DownloaderEvent::RequestPreempted { .. }
                | DownloaderEvent::PriorityChanged { .. }
                | DownloaderEvent::RequestRedirected { .. }
                | DownloaderEvent::RequestCompleted { .. }
                | DownloaderEvent::RequestFailed { .. }
                | DownloaderEvent::RequestCancelled { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_event_round_trips_through_json() {
        for e in every_event() {
            let json = serde_json::to_string(&e).expect("serialize");
            let back: DownloaderEvent = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, e, "{json}");
        }
    }

    #[test]
    fn the_json_schema_is_readable_and_stable() {
        let [enq, started, _, _, retrying, ..] = &every_event()[..] else { panic!("twelve events") };
        assert_eq!(
            serde_json::to_string(enq).expect("json"),
            r#"{"event":"request_enqueued","request_id":1,"url":"https://cdn.example/seg%201.ts?q=1","method":"Head","priority":"High"}"#
        );
        assert_eq!(
            serde_json::to_string(started).expect("json"),
            r#"{"event":"request_started","request_id":2,"wait_in_queue":1e-9,"attempt":3}"#
        );
        assert_eq!(
            serde_json::to_string(retrying).expect("json"),
            r#"{"event":"request_retrying","request_id":5,"attempt":2,"delay":0.1,"error":{"kind":"status","detail":{"status":503,"retry_after":7.0}}}"#
        );
    }

    #[test]
    fn every_error_round_trips() {
        let errors = [
            NetError::InvalidUrl("ftp".into()),
            NetError::Dns("x".into()),
            NetError::Connect("refused".into()),
            NetError::Tls("bad cert".into()),
            NetError::Timeout,
            NetError::Reset("rst".into()),
            NetError::Status { status: 404, retry_after: None },
            NetError::TooLarge,
            NetError::Sink("disk full".into()),
            NetError::Protocol("bad 206".into()),
            NetError::Integrity("sha256".into()),
        ];
        for e in errors {
            let json = serde_json::to_string(&e).expect("serialize");
            assert_eq!(serde_json::from_str::<NetError>(&json).expect("deserialize"), e, "{json}");
        }
        let json = serde_json::to_string(&EnqueueError::InvalidRequest("no host".into())).expect("json");
        assert_eq!(json, r#"{"kind":"invalid_request","detail":"no host"}"#);
    }

    #[test]
    fn configs_round_trip_and_partial_configs_take_defaults() {
        let c = Config {
            max_per_host: Some(2),
            hard_timeout: Some(Duration::from_millis(1500)),
            retry: RetryPolicy { jitter: false, ..RetryPolicy::default() },
            ..Config::default()
        };
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(serde_json::from_str::<Config>(&json).expect("back"), c);
        let partial: Config = serde_json::from_str(r#"{"max_concurrent":8,"idle_timeout":null}"#).expect("partial");
        assert_eq!(partial, Config { max_concurrent: 8, idle_timeout: None, ..Config::default() });
        for bad in [r#"{"max_concurent":8}"#, r#"{"soft_timeout":-1}"#, r#"{"soft_timeout":"2s"}"#] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad} is refused");
        }
        assert!(serde_json::from_str::<RequestId>("0").is_err(), "no request id is 0");
    }
}
