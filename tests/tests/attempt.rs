//! `weir_http::Attempt` alone, no sockets: each class of server behaviour
//! as a response head, body chunks and an ending, with the verdict and the
//! sink's final bytes. One version, every byte once.

use weir::{NetError, RequestMethod, Url};
use weir_http::attempt::{Attempt, End, Held, Verdict, Version};
use weir_tests::exchange::{play, ModelSink, Played};

const GET: RequestMethod = RequestMethod::Get;
const V1: &str = "\"v1\"";

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A sink holding the first `n` bytes of `full` under `etag` with `total`.
fn holding(full: &[u8], n: usize, etag: Option<&str>, total: Option<u64>, rewindable: bool) -> ModelSink {
    ModelSink {
        bytes: full[..n].to_vec(),
        version: Version { validator: etag.map(str::to_owned), total },
        rewindable,
        status: Some(200),
    }
}

fn reset(e: &Played) -> bool {
    matches!(e, Played::Failed(NetError::Reset(_)))
}

fn protocol(e: &Played) -> bool {
    matches!(e, Played::Failed(NetError::Protocol(_)))
}

#[test]
fn a_plain_answer_is_written_whole_and_a_short_one_is_truncated() {
    let full = body(10, 1);
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, None);
    assert_eq!(a.ask().unwrap().headers, vec![], "a first attempt sends no Range");
    let p =
        play(&mut a, &mut sink, 200, &[("Content-Length", "10"), ("ETag", V1)], &[&full[..3], &full[3..]], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &full[..]));
    assert_eq!(sink.version, Version { validator: Some(V1.into()), total: Some(10) });
    assert_eq!(sink.status, Some(200));

    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, None);
    let p = play(&mut a, &mut sink, 200, &[("Content-Length", "10")], &[&full[..6]], End::Clean);
    assert!(reset(&p), "{p:?}");
    assert_eq!(sink.bytes, full[..6], "what arrived stays, a retry resumes from it");
}

#[test]
fn a_resume_asks_with_if_range_and_appends_a_matching_206() {
    let full = body(10, 2);
    let mut sink = holding(&full, 4, Some(V1), Some(10), true);
    let mut a = sink.attempt(GET, None);
    let ask = a.ask().unwrap();
    assert_eq!(ask.headers, vec![("Range", "bytes=4-".to_owned()), ("If-Range", V1.to_owned())]);
    let head = [("Content-Range", "bytes 4-9/10"), ("Content-Length", "6"), ("ETag", V1)];
    let p = play(&mut a, &mut sink, 206, &head, &[&full[4..]], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &full[..]));
    assert_eq!(sink.status, Some(200), "the first answer stays the download's response");
}

#[test]
fn a_206_of_another_version_is_never_spliced() {
    let full = body(10, 3);
    // The server ignores If-Range and answers 206 with ETag v2.
    for (head, what) in [
        (vec![("Content-Range", "bytes 4-9/10"), ("ETag", "\"v2\"")], "another ETag"),
        (vec![("Content-Range", "bytes 4-11/12"), ("ETag", V1)], "another total"),
        (vec![("Content-Range", "bytes 4-9/10")], "no ETag where v1 had one"),
    ] {
        let mut sink = holding(&full, 4, Some(V1), Some(10), true);
        let p = play(&mut sink.attempt(GET, None), &mut sink, 206, &head, &[&body(10, 9)[4..]], End::Clean);
        assert!(reset(&p), "{what}: a retryable failure, {p:?}");
        assert!(sink.bytes.is_empty(), "{what}: the old version's bytes are dropped, the retry starts over");

        let mut writer = holding(&full, 4, Some(V1), Some(10), false);
        let p = play(&mut writer.attempt(GET, None), &mut writer, 206, &head, &[&body(10, 9)[4..]], End::Clean);
        assert!(protocol(&p), "{what}: a writer cannot start over: {p:?}");
        assert_eq!(writer.bytes, full[..4], "{what}: nothing appended");
    }
}

#[test]
fn a_206_must_be_exactly_the_span_it_announces_from_where_the_sink_ends() {
    let full = body(10, 4);
    let mut sink = holding(&full, 4, Some(V1), Some(10), true);
    let head = [("Content-Range", "bytes 0-9/10"), ("ETag", V1)];
    assert!(protocol(&play(&mut sink.attempt(GET, None), &mut sink, 206, &head, &[&full], End::Clean)), "wrong start");

    let mut sink = holding(&full, 4, Some(V1), Some(10), true);
    let head = [("Content-Range", "bytes 4-9/10"), ("Content-Length", "15"), ("ETag", V1)];
    assert!(protocol(&play(&mut sink.attempt(GET, None), &mut sink, 206, &head, &[], End::Clean)), "length != span");

    // No Content-Length (chunked): 15 bytes for a 6-byte span.
    let mut sink = holding(&full, 4, Some(V1), Some(10), true);
    let head = [("Content-Range", "bytes 4-9/10"), ("ETag", V1)];
    let long = [&full[4..], &b"XXXXXXXXX"[..]].concat();
    let p = play(&mut sink.attempt(GET, None), &mut sink, 206, &head, &[&long[..]], End::Clean);
    assert!(protocol(&p), "{p:?}");
    assert_eq!(sink.bytes, full[..4], "nothing of an over-long body is written");

    let mut sink = holding(&full, 4, Some(V1), Some(10), true);
    let p = play(&mut sink.attempt(GET, None), &mut sink, 206, &[("ETag", V1)], &[], End::Clean);
    assert!(protocol(&p), "no Content-Range: {p:?}");
}

#[test]
fn a_200_to_a_resume_skips_the_same_version_and_restarts_on_another() {
    let full = body(10, 5);
    let sink = holding(&full, 4, Some(V1), Some(10), true);
    let mut a = sink.attempt(GET, None);
    a.ask().unwrap();
    assert!(matches!(
        a.on_head(200, &[("Content-Length", "10"), ("ETag", V1)], std::time::SystemTime::UNIX_EPOCH),
        Verdict::Accept { restart: false, record: false }
    ));
    // The resent prefix is skipped: empty parts, yet it arrived (progress).
    assert_eq!(a.on_body(&full[..3]).unwrap(), b"");
    assert_eq!(a.on_body(&full[3..6]).unwrap(), &full[4..6]);
    assert_eq!(a.on_body(&full[6..]).unwrap(), &full[6..]);
    assert_eq!(a.on_end(End::Clean), Ok(()));

    let v2 = body(10, 6);
    let mut sink = holding(&full, 4, Some(V1), Some(10), true);
    let head = [("Content-Length", "10"), ("ETag", "\"v2\"")];
    let p = play(&mut sink.attempt(GET, None), &mut sink, 200, &head, &[&v2], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &v2[..]), "restarted: exactly v2");
    assert_eq!(sink.version.validator.as_deref(), Some("\"v2\""));

    let mut writer = holding(&full, 4, Some(V1), Some(10), false);
    let p = play(&mut writer.attempt(GET, None), &mut writer, 200, &head, &[&v2], End::Clean);
    assert!(protocol(&p), "{p:?}");
    assert_eq!(writer.bytes, full[..4]);
}

#[test]
fn ranges_are_clamped_to_the_resource_and_never_overflow() {
    let full = body(10, 7);
    // range(0, u64::MAX): the whole resource, not an empty range.
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, Some((0, Some(u64::MAX))));
    assert_eq!(a.ask().unwrap().headers, vec![("Range", format!("bytes=0-{}", u64::MAX))]);
    let p = play(&mut a, &mut sink, 200, &[("Content-Length", "10")], &[&full], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &full[..]));
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, Some((0, Some(u64::MAX))));
    let p = play(&mut a, &mut sink, 206, &[("Content-Range", "bytes 0-9/10")], &[&full], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &full[..]));

    // A bounded range past the resource's end: the server answers what exists.
    let big = body(100_000, 8);
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, Some((99_990, Some(199_999))));
    let head = [("Content-Range", "bytes 99990-99999/100000"), ("Content-Length", "10")];
    let p = play(&mut a, &mut sink, 206, &head, &[&big[99_990..]], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &big[99_990..]));

    // A start at u64::MAX with bytes held does not wrap.
    let held = Held { bytes: 5, version: Version { validator: Some(V1.into()), total: None } };
    let a = Attempt::new(Url::parse("http://h/x").unwrap(), GET, Some((u64::MAX - 1, None)), held, true);
    assert!(a.ask().is_none() && a.is_complete(), "nothing can be missing past the last offset");
}

#[test]
fn a_partial_file_that_is_already_whole_completes_on_416() {
    let full = body(10, 9);
    let mut sink = holding(&full, 10, Some(V1), Some(10), true);
    let p = play(&mut sink.attempt(GET, None), &mut sink, 416, &[("Content-Range", "bytes */10")], &[], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &full[..]));
    // Held more than the resource has now: it changed; start over.
    let mut sink = holding(&body(12, 9), 12, Some(V1), None, true);
    let p = play(&mut sink.attempt(GET, None), &mut sink, 416, &[("Content-Range", "bytes */10")], &[], End::Clean);
    assert!(reset(&p) && sink.bytes.is_empty(), "{p:?}");
    // A range past the end of the resource with nothing held: the status.
    let mut sink = ModelSink::new(true);
    let p = play(
        &mut sink.attempt(GET, Some((50, None))),
        &mut sink,
        416,
        &[("Content-Range", "bytes */10")],
        &[],
        End::Clean,
    );
    assert_eq!(p, Played::Failed(NetError::Status { status: 416, retry_after: None }));
}

#[test]
fn a_body_without_a_length_is_complete_only_on_a_clean_end() {
    let full = body(10, 10);
    let mut sink = ModelSink::new(true);
    let p = play(&mut sink.attempt(GET, None), &mut sink, 200, &[], &[&full], End::Clean);
    assert_eq!(p, Played::Complete);
    let mut sink = ModelSink::new(true);
    let rst = NetError::Reset("connection reset".into());
    let p = play(&mut sink.attempt(GET, None), &mut sink, 200, &[], &[&full], End::Broken(rst.clone()));
    assert_eq!(p, Played::Failed(rst), "a reset is not an end");
}

#[test]
fn statuses_are_classified_one_way() {
    let mut sink = ModelSink::new(true);
    assert!(protocol(&play(&mut sink.attempt(GET, None), &mut sink, 101, &[], &[], End::Clean)), "101 is no success");
    let mut sink = ModelSink::new(true);
    let p = play(&mut sink.attempt(GET, None), &mut sink, 204, &[("Content-Length", "5")], &[], End::Clean);
    assert_eq!((p, sink.bytes.len()), (Played::Complete, 0), "204 is an empty body whatever its Content-Length");
    let mut sink = ModelSink::new(true);
    let p = play(&mut sink.attempt(GET, None), &mut sink, 503, &[("Retry-After", "7")], &[], End::Clean);
    assert_eq!(
        p,
        Played::Failed(NetError::Status { status: 503, retry_after: Some(std::time::Duration::from_secs(7)) })
    );
    let mut sink = ModelSink::new(true);
    assert!(protocol(&play(&mut sink.attempt(GET, None), &mut sink, 304, &[], &[], End::Clean)));
    // HEAD: accepted at once, no body, the length known.
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(RequestMethod::Head, None);
    assert_eq!(play(&mut a, &mut sink, 200, &[("Content-Length", "1000")], &[], End::Clean), Played::Complete);
    assert_eq!(a.version().total, Some(1000));
}

#[test]
fn a_redirect_is_resolved_and_ends_the_exchange() {
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, None);
    let p = play(&mut a, &mut sink, 302, &[("Location", "/next?x=1")], &[], End::Clean);
    assert_eq!(p, Played::Redirect(Url::parse("http://127.0.0.1/next?x=1").unwrap()));
    assert!(a.ask().is_none(), "over: the scheduler decides whether to follow it");
    let at = |u: &str| Attempt::new(Url::parse(u).unwrap(), GET, None, Held::default(), true);
    let now = std::time::SystemTime::UNIX_EPOCH;
    // Policy (scheme, downgrade, count) is the scheduler's: reported as is.
    let v = at("https://a.example/x").on_head(307, &[("Location", "http://b.example/y")], now);
    assert_eq!(v, Verdict::Redirect(Url::parse("http://b.example/y").unwrap()));
    let v = at("http://a.example/x").on_head(302, &[("X", "y")], now);
    assert!(matches!(v, Verdict::Fail { error: NetError::Protocol(_), .. }), "no Location: {v:?}");
    let v = at("http://a.example/x").on_head(301, &[("Location", "http://[::1")], now);
    assert!(matches!(v, Verdict::Fail { error: NetError::Protocol(_), .. }), "a bad Location: {v:?}");
}

#[test]
fn weak_etags_do_not_guard_a_resume_and_last_modified_does() {
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, None);
    let full = body(10, 11);
    play(&mut a, &mut sink, 200, &[("ETag", "W/\"weak\""), ("Last-Modified", lm)], &[&full[..4]], End::Clean);
    assert_eq!(sink.version.validator.as_deref(), Some(lm));
    let a = sink.attempt(GET, None);
    assert_eq!(a.ask().unwrap().headers[1], ("If-Range", lm.to_owned()));
}

#[test]
fn a_shorter_span_than_asked_resumes_where_it_stopped() {
    let full = body(10, 12);
    let mut sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, Some((0, Some(9))));
    let p = play(&mut a, &mut sink, 206, &[("Content-Range", "bytes 0-3/10"), ("ETag", V1)], &[&full[..4]], End::Clean);
    assert!(reset(&p), "{p:?}");
    let mut a = sink.attempt(GET, Some((0, Some(9))));
    assert_eq!(a.ask().unwrap().headers[0], ("Range", "bytes=4-9".to_owned()));
    let p = play(&mut a, &mut sink, 206, &[("Content-Range", "bytes 4-9/10"), ("ETag", V1)], &[&full[4..]], End::Clean);
    assert_eq!((p, &sink.bytes[..]), (Played::Complete, &full[..]));
}

#[test]
fn after_the_wanted_part_the_rest_is_drained_or_dropped() {
    let full = body(100, 13);
    let sink = ModelSink::new(true);
    let mut a = sink.attempt(GET, Some((10, Some(19))));
    a.ask().unwrap();
    // The server ignored Range: a full 200.
    assert!(matches!(
        a.on_head(200, &[("Content-Length", "100")], std::time::SystemTime::UNIX_EPOCH),
        Verdict::Accept { .. }
    ));
    assert_eq!(a.on_body(&full[..30]).unwrap(), &full[10..20]);
    assert!(!a.wants_more());
    assert_eq!(a.unread(), Some(70), "small enough to drain for the pool");
    assert_eq!(a.on_end(End::Broken(NetError::Reset("dropped".into()))), Ok(()), "every wanted byte arrived");
    // A 206 of exactly the span: zero left, one more read sees the end.
    let mut a = ModelSink::new(true).attempt(GET, Some((0, Some(9))));
    a.ask().unwrap();
    a.on_head(206, &[("Content-Range", "bytes 0-9/100")], std::time::SystemTime::UNIX_EPOCH);
    a.on_body(&full[..10]).unwrap();
    assert_eq!((a.wants_more(), a.unread(), a.is_complete()), (false, Some(0), true));
}
