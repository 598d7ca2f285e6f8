//! The caller's session: how many threads tract computes on, the pool
//! those threads form, and what happens to tract's panics.
//!
//! A value the caller creates and owns — the CLI makes one per process, a
//! library user or a server keeps theirs — and lends (`&Session`) to every
//! library call that runs tract. Nothing here is process-wide: tract's
//! global default executor is never set; every call into tract installs
//! this session's executor in tract's thread-local scope for its duration,
//! so two sessions with different thread counts can run models at once in
//! one process, each on its own threads. Cloning a session shares its
//! pool (and its one-run-at-a-time rule, see [`Session::run_on_pool`]).

mod panics;
mod pool;

use std::sync::Arc;

pub use panics::panic_message;
pub(crate) use panics::CaughtPanic;
use pool::TractPool;

/// A session that cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("a session needs at least 1 thread, got 0")]
    ZeroThreads,
    #[error("cannot start {threads} threads for tract: {message}")]
    Pool { threads: usize, message: String },
}

/// Threads, the tract pool and the panic policy of one caller (see the
/// module doc).
#[derive(Clone)]
pub struct Session {
    pool: Arc<TractPool>,
    quiet_tract_panics: bool,
}

impl Session {
    /// tract on `threads` threads: 1 runs everything on the calling
    /// thread; more start a private pool of that many (`tract-N`), used
    /// by this session alone. tract's panics are caught and turned into
    /// errors, with the default panic hook still printing them (see
    /// [`Session::with_quiet_tract_panics`]).
    pub fn new(threads: usize) -> Result<Session, SessionError> {
        Ok(Session {
            pool: Arc::new(TractPool::new(threads)?),
            quiet_tract_panics: false,
        })
    }

    /// One thread: tract runs on the caller's thread, no pool is started.
    pub fn single_threaded() -> Session {
        Session {
            pool: Arc::new(TractPool::single_threaded()),
            quiet_tract_panics: false,
        }
    }

    /// This session, with tract's panics kept off stderr: a panic inside
    /// a call into tract (foreign files can trigger them) is reported only
    /// as the error that call returns, with the panic's place appended,
    /// instead of tract's text and backtrace burying it. This installs a
    /// panic hook in the process (once; every other panic still goes to
    /// the hook that was there before), so it is the caller's choice: the
    /// CLI makes it, a library user who keeps their own hook does not.
    pub fn with_quiet_tract_panics(mut self) -> Session {
        panics::install_quiet_hook();
        self.quiet_tract_panics = true;
        self
    }

    /// How many threads tract computes on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Whether tract's panics are kept off stderr.
    pub fn quiet_tract_panics(&self) -> bool {
        self.quiet_tract_panics
    }

    /// Runs `f` with tract's parallel kernels on this session's threads:
    /// its executor is tract's thread-local one on this thread while `f`
    /// runs (and the previous one again after, also when `f` panics).
    pub fn with_tract<R>(&self, f: impl FnOnce() -> R) -> R {
        self.pool.scope(f)
    }

    /// Runs `f` — a whole model run — on one of this session's pool
    /// threads, within [`Session::with_tract`].
    ///
    /// Why: run from a thread outside the pool, every matrix product hands
    /// its work to the pool and puts the caller to sleep until it is done,
    /// and every element-wise op between two products runs while the
    /// pool's threads go back to sleep: one wake-up on each side per
    /// product. An int8 BERT-base has 72 short products, so those
    /// hand-offs were 10 % of its run. Inside the pool, the calling thread
    /// is a worker that takes part in each product and only the other
    /// workers are woken. Measured with `bertc bench f32.onnx --compare
    /// int8.onnx` (BERT-base, B=1, S=128, 2 threads, six alternated
    /// processes of 40 runs, AMD EPYC Zen 5): p50 fp32 168–173 → 162–169
    /// ms, int8 83.6–86.6 → 74.4–77.9 ms.
    ///
    /// One run at a time per pool: a worker waiting inside a product
    /// steals whatever job is queued, and a second whole run stolen that
    /// way would evaluate its products inside the first's — tract keeps
    /// each thread's product scratch borrowed across the product
    /// (`OptMatMul::eval`), so that nesting panics. A run that finds the
    /// pool taken runs on its own thread, as with no pool, and only its
    /// products' chunks reach the pool (they borrow nothing across a wait).
    /// A single-threaded session runs `f` here.
    pub fn run_on_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.run_whole(f)
    }

    /// Runs `f`, catching a panic as [`CaughtPanic`] — kept off stderr
    /// when this session asks for it ([`Session::with_quiet_tract_panics`]).
    pub(crate) fn catch_panic<R>(&self, f: impl FnOnce() -> R) -> Result<R, CaughtPanic> {
        panics::catch(self.quiet_tract_panics, f)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("threads", &self.threads())
            .field("quiet_tract_panics", &self.quiet_tract_panics)
            .finish()
    }
}

/// The number of cores, the default thread count.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tract_linalg::multithread::{current_tract_executor, Executor};

    fn pool_threads(e: &Executor) -> usize {
        match e {
            Executor::MultiThread(p) => p.current_num_threads(),
            _ => 1,
        }
    }

    #[test]
    fn zero_threads_is_refused() {
        assert_eq!(Session::new(0).unwrap_err(), SessionError::ZeroThreads);
    }

    #[test]
    fn the_executor_is_the_sessions_only_inside_its_scope() {
        let two = Session::new(2).unwrap();
        assert_eq!(two.threads(), 2);
        assert_eq!(two.with_tract(|| pool_threads(&current_tract_executor())), 2);
        assert!(matches!(current_tract_executor(), Executor::SingleThread));
        // A scope left by a panic is left all the same.
        let caught = catch_unwind(AssertUnwindSafe(|| two.with_tract(|| panic!("inside"))));
        assert!(caught.is_err());
        assert!(matches!(current_tract_executor(), Executor::SingleThread));
        let one = Session::single_threaded();
        assert_eq!(one.threads(), 1);
        assert!(
            two.with_tract(|| one.with_tract(|| matches!(current_tract_executor(), Executor::SingleThread)))
        );
    }

    #[test]
    fn a_whole_run_goes_on_a_pool_thread_one_at_a_time() {
        let two = Session::new(2).unwrap();
        let name = || std::thread::current().name().map(str::to_string);
        let (outer, inner) = two.run_on_pool(|| (name(), two.run_on_pool(name)));
        assert!(
            outer.as_deref().is_some_and(|n| n.starts_with("tract-")),
            "{outer:?}"
        );
        // The pool is taken: the second run stays on the thread it came from.
        assert_eq!(inner, outer);
        assert_eq!(Session::single_threaded().run_on_pool(name), name());
        // Released again, also after a panic.
        let caught = catch_unwind(AssertUnwindSafe(|| two.run_on_pool(|| panic!("inside"))));
        assert!(caught.is_err());
        assert!(two.run_on_pool(name).is_some_and(|n| n.starts_with("tract-")));
    }
}
