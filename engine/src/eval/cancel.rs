//! Cooperative cancellation of a running evaluation.
//!
//! An [`super::Evaluator`] may carry a flag (see [`super::Evaluator::with_cancel`]); the long
//! loops of lookups (fixpoint rounds, member computations, unions over reverse bitmaps,
//! breadth-first closures, rule calls over candidates) and of checks poll it and stop with
//! [`super::EvalError::Cancelled`] once it is set. The caller sets it when nobody waits for the
//! answer any more (a client that disconnected, a deadline that passed).
//!
//! A server that runs evaluations on a thread pool can also open a [`scope`] around the work:
//! every evaluator built inside it, on that thread, picks up the scope's flag, so the code that
//! builds evaluators needs no change.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::EvalError;

thread_local! {
    static SCOPE: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `work` with `flag` as the cancellation flag of every evaluator built inside it on this
/// thread; the previous scope (if any) is restored afterwards, also when `work` panics.
pub fn scope<R>(flag: &Arc<AtomicBool>, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = previous);
        }
    }
    let previous = SCOPE.with(|s| s.replace(Some(flag.clone())));
    let _restore = Restore(previous);
    work()
}

/// The flag of the innermost [`scope`] on this thread.
pub(super) fn current() -> Option<Arc<AtomicBool>> {
    SCOPE.with(|s| s.borrow().clone())
}

/// Errs with [`EvalError::Cancelled`] if `flag` is set.
#[inline]
pub(super) fn check(flag: Option<&Arc<AtomicBool>>) -> Result<(), EvalError> {
    match flag {
        Some(f) if f.load(Ordering::Relaxed) => Err(EvalError::Cancelled),
        _ => Ok(()),
    }
}

/// How many iterations of a tight loop run between two polls of the flag.
pub(super) const POLL_EVERY: usize = 1024;
