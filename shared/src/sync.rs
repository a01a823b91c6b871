//! One mutex policy for the workspace: a poisoned `std::sync::Mutex` is recovered, not turned
//! into a second panic.
//!
//! Why: a panic while a lock is held poisons it, and `lock().expect(..)` then panics in every
//! later caller, so one bug in one request takes the whole node or center down with it. We
//! recover instead ([`std::sync::PoisonError::into_inner`]). That is only sound because of a
//! rule every user of [`LockExt::locked`] keeps: **the guarded state is consistent at every
//! point where a panic could happen** — no multi-step update that leaves it half-done across a
//! call that may panic. Keep critical sections short (no `.await`, no callbacks into other
//! owners) and make each change to the guarded value a single assignment or collection
//! operation.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locking that recovers a poisoned mutex (see the module documentation for the rule).
pub trait LockExt<T: ?Sized> {
    /// Locks the mutex; if a panic poisoned it, takes the guard anyway. The guarded value must
    /// be consistent at every point a panic could happen while it is locked.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_value() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let poisoner = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.locked();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        m.locked().push(2);
        assert_eq!(*m.locked(), vec![1, 2]);
    }
}
