//! Where plugin calls run: on the caller's thread, as futures, under a wall-clock deadline.
//!
//! Every guest call is asynchronous inside (`call_async`, async WASI), so a guest parked in a
//! WASI sleep, a poll on a clock or a read that waits is a future that is simply not ready; at
//! the deadline the future is dropped, which unwinds the guest. A computing guest yields at every
//! epoch tick, so the same check cuts it off. Callers stay synchronous: [`Executor::run_until`]
//! polls the future on the calling thread and parks in between.
//!
//! Async WASI needs a Tokio runtime for its timers and for the blocking file operations it hands
//! off; the executor owns a small one (one worker thread, which drives the timers while idle, and
//! at most [`MAX_BLOCKING_THREADS`] threads for file operations).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::error::PluginError;

/// Threads the runtime may start for blocking file operations. A guest whose read never ends
/// (a FIFO in a granted directory) is cut off at its deadline, but the thread doing the read
/// stays until the read returns; this caps how many such threads can pile up. Further file
/// operations wait for a free thread, within their own call's deadline.
const MAX_BLOCKING_THREADS: usize = 16;

/// The runtime plugin calls run in. One per plugin host; shared by its plugins.
pub(crate) struct Executor {
    /// Taken on drop to shut down without waiting for a blocked file operation.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Executor {
    pub(crate) fn new() -> Result<Arc<Executor>, PluginError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name("potter-plugin-io")
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| PluginError::Host(format!("cannot start the plugin runtime: {e}")))?;
        Ok(Arc::new(Executor { runtime: Some(runtime) }))
    }

    /// Polls `future` on this thread until it completes (`Some`) or `deadline` passes (`None`:
    /// the future is dropped, which cancels whatever it was waiting for). Runtime resources
    /// (timers) must be created when the future is first polled, not before.
    pub(crate) fn run_until<F: Future>(&self, deadline: Instant, future: F) -> Option<F::Output> {
        let runtime = self.runtime.as_ref().expect("present until drop");
        // Timers and file operations the future creates belong to this runtime; the future is
        // dropped before the guard, so cancelling them happens inside it too.
        let _context = runtime.enter();
        let waker = THREAD_WAKER.with(Waker::clone);
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return Some(output);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            // A wake unparks the thread; a spurious return just polls once more.
            std::thread::park_timeout(deadline - now);
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Never wait for a file operation a cut-off guest left blocked (and never panic when the
        // last plugin goes away inside another runtime's task).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Wakes the thread that polls a plugin call.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ready_future_completes_and_a_pending_one_is_dropped_at_the_deadline() {
        let executor = Executor::new().unwrap();
        assert_eq!(executor.run_until(Instant::now() + Duration::from_secs(1), async { 7 }), Some(7));
        let started = Instant::now();
        let slept = executor.run_until(started + Duration::from_millis(50), async { tokio::time::sleep(Duration::from_secs(3600)).await });
        assert_eq!(slept, None);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn a_tokio_timer_wakes_the_calling_thread() {
        let executor = Executor::new().unwrap();
        let started = Instant::now();
        let slept = executor.run_until(started + Duration::from_secs(5), async { tokio::time::sleep(Duration::from_millis(30)).await });
        assert_eq!(slept, Some(()));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
