//! The driver thread: the run loop of [`weir_http::Hub`] on a channel.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use weir_http::{Command, Hub, Input, Transfer};

/// Run the hub until it is shut down and every transfer has handed its
/// sink back; then dropping `jobs` ends the workers.
pub(crate) fn run(mut hub: Hub, rx: &Receiver<Input>, jobs: Sender<Transfer>) {
    loop {
        let input = match hub.poll_timeout() {
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => rx.recv_timeout(wait),
                _ => Err(RecvTimeoutError::Timeout),
            },
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match input {
            Ok(input) => hub.input(input, Instant::now()),
            // Every handle and worker is gone: nothing can report any more.
            Err(RecvTimeoutError::Disconnected) => {
                hub.command(Command::Shutdown, Instant::now());
                while hub.poll().is_some() {}
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        // Take whatever else is waiting, so inputs that arrived together are scheduled together.
        while let Ok(input) = rx.try_recv() {
            hub.input(input, Instant::now());
        }
        hub.handle_timeout(Instant::now());
        while let Some(t) = hub.poll() {
            let _ = jobs.send(t);
        }
        if hub.is_finished() {
            return;
        }
    }
}
