//! Looking at something over and over while a test acts (the bed's containers, a service's
//! running tasks): a step run on a thread of its own against a state that the test takes back
//! when it is done.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A step running in the background every so often until [`Poller::finish`]; dropping the
/// poller stops it too.
pub struct Poller<S> {
    stop: Sender<()>,
    thread: Option<JoinHandle<S>>,
}

impl<S: Send + 'static> Poller<S> {
    /// Runs `step` on `state` at once, then again `every` after each run.
    pub fn start(
        every: Duration,
        mut state: S,
        mut step: impl FnMut(&mut S) + Send + 'static,
    ) -> Poller<S> {
        let (stop, stopped) = mpsc::channel();
        let thread = thread::spawn(move || {
            // Waiting on the channel rather than sleeping: a stop ends the wait at once.
            loop {
                step(&mut state);
                if !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout)) {
                    return state;
                }
            }
        });
        Poller {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the step and returns the state it left; a panic in the step goes on here.
    pub fn finish(mut self) -> S {
        match self.stop_and_join() {
            Some(Ok(state)) => state,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("only finish and drop take the thread, and both end the poller"),
        }
    }
}

impl<S> Poller<S> {
    fn stop_and_join(&mut self) -> Option<thread::Result<S>> {
        // A send fails only when the step has panicked and the thread is gone: join says so.
        let _ = self.stop.send(());
        self.thread.take().map(JoinHandle::join)
    }
}

impl<S> Drop for Poller<S> {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
