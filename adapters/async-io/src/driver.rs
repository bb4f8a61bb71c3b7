//! The driver future: the run loop of [`weir_http::Hub`] on an
//! `async-channel`, an `async_io::Timer` and an executor of transfer tasks.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use async_channel::{Receiver, Sender, WeakSender};
use async_executor::Executor;
use futures_lite::{AsyncWriteExt, FutureExt, StreamExt};
use weir::{NetError, Url};
use weir_http::attempt::{End, DRAIN_LIMIT};
use weir_http::{Action, Command, Hub, Input, Report, Settlement, Transfer};

use crate::transport::{BodyStream, HttpRequest, Transport};

enum Wake {
    Input(Input),
    Timer,
    Closed,
}

/// Run the hub until it is shut down (or every handle is gone) and every
/// transfer has handed its sink back. `reports` is weak so that handles
/// alone keep the driver alive.
pub(crate) async fn run(mut hub: Hub, rx: Receiver<Input>, reports: WeakSender<Input>, transport: Arc<dyn Transport>) {
    let ex = Arc::new(Executor::new());
    let run = Arc::clone(&ex);
    // Bounded: each waiting settlement holds its file open; a full queue
    // holds the driver back until the sync task takes the next batch.
    let (syncs, waiting) = async_channel::bounded::<Settlement>(weir_http::MOST_FILES_WAITING);
    let syncer = ex.spawn(sync_files(waiting));
    let driver = run.run(async {
        loop {
            let wake = match hub.poll_timeout() {
                Some(at) if at <= Instant::now() => Wake::Timer,
                Some(at) => {
                    futures_lite::future::or(async { rx.recv().await.map_or(Wake::Closed, Wake::Input) }, async {
                        async_io::Timer::at(at).await;
                        Wake::Timer
                    })
                    .await
                }
                None => rx.recv().await.map_or(Wake::Closed, Wake::Input),
            };
            match wake {
                Wake::Input(input) => hub.input(input, Instant::now()),
                Wake::Closed => hub.command(Command::Shutdown, Instant::now()),
                Wake::Timer => {}
            }
            while let Ok(input) = rx.try_recv() {
                hub.input(input, Instant::now());
            }
            hub.handle_timeout(Instant::now());
            while let Some(action) = hub.poll() {
                let t = match action {
                    Action::Spawn(t) => t,
                    Action::Settle(x) if x.places_file() => {
                        let _ = syncs.send(*x).await;
                        continue;
                    }
                    Action::Settle(x) => {
                        x.run();
                        continue;
                    }
                };
                match reports.upgrade() {
                    Some(tx) => {
                        #[cfg(feature = "tracing")]
                        let span = t.span().clone();
                        let task = run_transfer(Arc::clone(&transport), *t, tx);
                        #[cfg(feature = "tracing")]
                        let task = tracing::Instrument::instrument(task, span);
                        ex.spawn(task).detach();
                    }
                    // Every handle is gone: the next wake shuts down.
                    None => hub.input(
                        Input::Report(t.done(Err(NetError::Reset("the downloader is gone".into())))),
                        Instant::now(),
                    ),
                }
            }
            if hub.is_finished() {
                syncs.close();
                syncer.await;
                return;
            }
        }
    });
    crate::transport::within(Arc::clone(&ex), driver).await;
}

/// The disk, off the executor: completed files reach it together
/// ([`weir_http::sync_together`]) on a blocking thread, batch after batch
/// (whatever completed while the last batch synced), then are renamed into
/// place (files not to be synced too) and their waiters woken. Ends once
/// the channel is closed and empty.
async fn sync_files(waiting: Receiver<Settlement>) {
    while let Ok(first) = waiting.recv().await {
        let mut batch = vec![first];
        while let Ok(s) = waiting.try_recv() {
            batch.push(s);
        }
        blocking::unblock(move || weir_http::place_files(batch)).await;
    }
}

/// One transfer task: run the exchange until it ends or is stopped, then
/// hand the sink back.
async fn run_transfer(transport: Arc<dyn Transport>, mut t: Transfer, reports: Sender<Input>) {
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    t.stop().on_stop(move || {
        stop_tx.close();
    });
    let stopped = async {
        let _ = stop_rx.recv().await;
        Ok(None)
    };
    // A panic (in a caller's writer, say) fails this download; the sink
    // still goes back, so the hub never waits for it.
    let guarded = async {
        AssertUnwindSafe(exchange(&*transport, &mut t, &reports))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(NetError::Sink("the transfer panicked".into())))
    };
    // The stop is polled first: an abort wins over a ready chunk.
    let result = futures_lite::future::or(stopped, guarded).await;
    let _ = reports.try_send(Input::Report(t.done(result)));
}

fn send(reports: &Sender<Input>, report: Option<Report>) {
    if let Some(r) = report {
        let _ = reports.try_send(Input::Report(r));
    }
}

/// One attempt: bytes in and out of `t`, which makes every decision.
/// `Ok(None)`: complete; `Ok(Some(url))`: a redirect, for the scheduler.
async fn exchange(
    transport: &dyn Transport,
    t: &mut Transfer,
    reports: &Sender<Input>,
) -> Result<Option<Url>, NetError> {
    let Some(ask) = t.begin()? else { return Ok(None) };
    let headers =
        ask.caller.iter().cloned().chain(ask.headers.iter().map(|(k, v)| ((*k).to_owned(), v.clone()))).collect();
    let mut resp = transport.send(HttpRequest { method: ask.method, url: ask.url, headers }).await?;
    if let Some(url) = t.on_head(resp.status, std::mem::take(&mut resp.headers))? {
        drain(resp.body, DRAIN_LIMIT).await;
        return Ok(Some(url));
    }
    let end = loop {
        if !t.wants_more() {
            // Read a short rest so the connection goes back to the pool; the
            // transfer still checks it against the announced length.
            if let Some(rest) = t.unread().filter(|&n| n <= DRAIN_LIMIT) {
                let mut left = rest.saturating_add(1);
                while left > 0 {
                    match resp.body.next().await {
                        Some(Ok(c)) => {
                            t.body(&c)?;
                            left = left.saturating_sub(c.len() as u64);
                        }
                        Some(Err(_)) | None => break,
                    }
                }
            }
            break End::Clean;
        }
        let chunk = match resp.body.next().await {
            None => break End::Clean,
            Some(Err(e)) => break End::Broken(e),
            Some(Ok(chunk)) => chunk,
        };
        let (mut part, alive) = t.body(&chunk)?;
        send(reports, alive);
        if t.async_writer().is_none() {
            if !part.is_empty() {
                send(reports, t.write(part)?);
            }
            continue;
        }
        while !part.is_empty() {
            let w = t.async_writer().ok_or_else(|| NetError::Sink("the writer is gone".into()))?;
            let n = w.write(part).await.map_err(|e| NetError::Sink(e.to_string()))?;
            if n == 0 {
                return Err(NetError::Sink("the writer accepts no more bytes".into()));
            }
            // Counted at once: a stop after this keeps the count exact.
            send(reports, t.wrote(&part[..n]));
            part = &part[n..];
        }
    };
    t.end(end)?;
    if let Some(w) = t.async_writer() {
        w.flush().await.map_err(|e| NetError::Sink(e.to_string()))?;
    }
    Ok(None)
}

/// Read and drop up to `limit` more bytes of a redirect's body (plus the
/// end), so the connection returns to the pool.
async fn drain(mut body: BodyStream, limit: u64) {
    let mut left = limit.saturating_add(1);
    while left > 0 {
        match body.next().await {
            Some(Ok(c)) => left = left.saturating_sub(c.len() as u64),
            Some(Err(_)) | None => return,
        }
    }
}
