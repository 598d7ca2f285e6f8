//! A session's tract threads: the executor tract's kernels split their
//! work over, and the rule that one whole model run at a time may use the
//! pool's own threads ([`super::Session::run_on_pool`]).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tract_linalg::multithread::{multithread_tract_scope, Executor};

use super::SessionError;

pub(super) struct TractPool {
    threads: usize,
    /// `SingleThread` for one thread, else `MultiThread` over this
    /// session's own rayon pool.
    executor: Executor,
    /// Whether a whole run is on the pool's threads now.
    busy: AtomicBool,
}

impl TractPool {
    pub(super) fn new(threads: usize) -> Result<TractPool, SessionError> {
        let pool = match threads {
            0 => return Err(SessionError::ZeroThreads),
            1 => return Ok(TractPool::single_threaded()),
            n => rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("tract-{i}"))
                .build()
                .map_err(|e| SessionError::Pool {
                    threads: n,
                    message: e.to_string(),
                })?,
        };
        Ok(TractPool {
            threads,
            executor: Executor::MultiThread(Arc::new(pool)),
            busy: AtomicBool::new(false),
        })
    }

    pub(super) fn single_threaded() -> TractPool {
        TractPool {
            threads: 1,
            executor: Executor::SingleThread,
            busy: AtomicBool::new(false),
        }
    }

    pub(super) fn threads(&self) -> usize {
        self.threads
    }

    /// `f` with this pool's executor as tract's thread-local one.
    /// tract's scope restores the previous executor only when `f` returns:
    /// a panic is caught inside and resumed outside, so that it cannot
    /// leave this pool installed on the thread (a pool thread would then
    /// also hold its own pool alive).
    pub(super) fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        multithread_tract_scope(self.executor.clone(), || catch_unwind(AssertUnwindSafe(f)))
            .unwrap_or_else(|payload| resume_unwind(payload))
    }

    /// `f` on one of the pool's threads when no other whole run is there
    /// (see [`super::Session::run_on_pool`]), else on this thread; within
    /// [`TractPool::scope`] either way.
    pub(super) fn run_whole<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let Executor::MultiThread(pool) = &self.executor else {
            return self.scope(f);
        };
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return self.scope(f);
        }
        /// Frees the pool for the next run, also when the run panics.
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        pool.install(|| self.scope(f))
    }
}
