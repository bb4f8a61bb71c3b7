//! The adapters' `tracing` feature, one test body on both: every download
//! gets a `weir_download` span carrying its request id; its start, retry,
//! redirect and end are events inside that span, and so is what its
//! transfers log (they run inside it, on a worker thread or a task).
#![cfg(feature = "adapters")]

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use weir::{Config, Request, RetryPolicy, Url};
use weir_faultserver::FaultServer;
use weir_tests::both::{run, Into, ADAPTERS};

/// One logged event: its message and the request of the download span it
/// is in (explicit parent or the span entered where it was logged).
#[derive(Debug, Clone, PartialEq)]
struct Logged {
    message: String,
    request: Option<String>,
    /// Who logged it (`weir_http::..`, or the transport's crate).
    target: String,
}

/// A download span's request id, kept in the span's extensions.
struct Request_(String);

/// Grabs one field's value as text.
struct Grab(&'static str, Option<String>);

impl Visit for Grab {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == self.0 {
            self.1 = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.0 {
            self.1 = Some(value.to_owned());
        }
    }
}

struct Collect(Arc<Mutex<Vec<Logged>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "weir_download" {
            return;
        }
        let mut grab = Grab("request", None);
        attrs.record(&mut grab);
        if let (Some(span), Some(request)) = (ctx.span(id), grab.1) {
            span.extensions_mut().insert(Request_(request));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut grab = Grab("message", None);
        event.record(&mut grab);
        let request = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().find_map(|s| s.extensions().get::<Request_>().map(|r| r.0.clone())));
        let target = event.metadata().target().to_owned();
        let logged = Logged { message: grab.1.unwrap_or_default(), request, target };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(logged);
    }
}

/// What every thread logs, from here on (one global subscriber per test binary).
fn logged() -> &'static Arc<Mutex<Vec<Logged>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<Logged>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Collect(Arc::clone(&log)));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        log
    })
}

#[test]
fn each_download_is_a_span_holding_its_start_retry_redirect_end_and_transfers() {
    let log = logged();
    let config = Config {
        retry: RetryPolicy { base: Duration::from_millis(1), jitter: false, ..RetryPolicy::default() },
        ..Config::default()
    };
    for adapter in ADAPTERS {
        // A fresh server: its 503 answers only the first hit.
        let server = FaultServer::start();
        log.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let url = |p: &str| Url::parse(&server.url(p)).expect("url");
        // A 503 (Retry-After: 0) once, then 1000 bytes; two redirects, then 100 bytes.
        let got = run(
            adapter,
            config.clone(),
            vec![
                (Request::get(url("/status/503/1/0")), Into::Memory),
                (Request::get(url("/redirect/1/file/100")), Into::Memory),
            ],
        );
        assert_eq!(got[0].body().len(), 1000, "{adapter:?}");
        assert_eq!(got[1].body().len(), 100, "{adapter:?}");
        let id = |g: &weir_tests::both::Got| g.events[0].request_id().to_string();
        let (retried, redirected) = (id(&got[0]), id(&got[1]));
        let all = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let of = |r: &str| -> Vec<String> {
            let weir = |l: &&Logged| l.target.starts_with("weir");
            all.iter().filter(|l| l.request.as_deref() == Some(r)).filter(weir).map(|l| l.message.clone()).collect()
        };
        if adapter == weir_tests::both::Adapter::Async {
            // hyper-util logs at debug level; its lines nest in the download's span.
            let nested =
                all.iter().any(|l| l.request.as_deref() == Some(&retried) && l.target.starts_with("hyper_util"));
            assert!(nested, "Async: the transport's own logs are in the download's span");
        }
        assert_eq!(
            of(&retried),
            ["started", "response", "retrying", "started", "response", "completed"],
            "{adapter:?}: the retried download, in its span"
        );
        assert_eq!(
            of(&redirected),
            [
                "started",
                "response",
                "redirected",
                "started",
                "response",
                "redirected",
                "started",
                "response",
                "completed"
            ],
            "{adapter:?}: the redirected download (/redirect/1 -> /redirect/0 -> /file), in its span"
        );
    }
}
