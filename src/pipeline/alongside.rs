//! Two pieces of a stage side by side: the check and the accuracy gate run
//! the reference model on a second thread while this one serializes, loads
//! and runs the candidate.

use crate::runtime::{panic_message, RuntimeError};

/// Runs `a` on a scoped thread while `b` runs on this one; both results.
/// A panic on the other thread (tract's are caught inside the session, so
/// this is a bug) becomes an error rather than tearing down the process.
pub fn alongside<A: Send, B, E: From<RuntimeError> + Send>(
    a: impl FnOnce() -> Result<A, E> + Send,
    b: impl FnOnce() -> B,
) -> (Result<A, E>, B) {
    std::thread::scope(|s| {
        let handle = s.spawn(a);
        let b = b();
        let a = handle.join().unwrap_or_else(|payload| {
            Err(RuntimeError::Panic {
                stage: "check",
                message: panic_message(payload.as_ref()),
            }
            .into())
        });
        (a, b)
    })
}
