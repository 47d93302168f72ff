//! Taking a standard `Mutex` or `RwLock` whatever a panicking holder left behind.
//!
//! A lock is poisoned when a thread panicked while holding it. The data the server keeps behind
//! its locks (schema versions, retained snapshots, change logs, feeds, held stream permits) is
//! only replaced whole or appended to, never left half changed across a panic point, so the
//! server goes on with it instead of turning one panic into a panic on every later access.
//! These three functions are the one place that decision is written down.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, ignoring poisoning.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes `lock` for reading, ignoring poisoning.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Takes `lock` for writing, ignoring poisoning.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
