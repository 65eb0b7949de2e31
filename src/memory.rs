//! Process-wide allocator settings (issue 12, "Bounded memory"): the
//! number of glibc malloc arenas, and giving freed heap memory back to the
//! kernel after the store's big write batches. Nothing here runs unless
//! asked: the `strand` binary calls [`configure_process`] first thing in
//! `main`; an embedder may call it too, but the library never changes the
//! allocator behind an embedder's back. [`release_free_memory`] is called
//! by the thread that commits to the store (the sync-manager thread) and
//! does nothing until [`configure_process`] enabled it.
//!
//! Decisions (glibc only; other C libraries get no-ops):
//!
//! - `M_ARENA_MAX = 2`. glibc gives each thread that allocates under
//!   contention its own arena, up to 8 per core, and an arena keeps the
//!   memory freed into it for its own later use. strand moves big buffers
//!   between threads (a block is read on a peer thread, validated and
//!   stored on the sync-manager thread, freed there), so with many arenas
//!   the freed bytes sit in arenas whose threads rarely allocate again.
//!   Bitcoin Core sets `M_ARENA_MAX` only on 32-bit systems (to 1, in
//!   `SetupEnvironment`, `common/system.cpp`); thread-per-connection
//!   daemons commonly cap it at 2 to 4. strand's hot allocations are on
//!   one thread (the sync manager) plus the script checkers, so 2 costs
//!   little lock contention (see README "Memory budget" for the CPU
//!   time measured with and without).
//! - `malloc_trim(0)` after a store commit: the commit frees LMDB's dirty
//!   pages (a copy of every value written, 8 MiB and more for a block
//!   batch) and the chain layer then frees the batch itself; glibc returns
//!   only the top of a heap on its own, and `malloc_trim` also gives back
//!   the free pages inside the heaps (`MADV_DONTNEED`).

use std::sync::atomic::{AtomicBool, Ordering};

/// Most malloc arenas the process uses (`M_ARENA_MAX`; see the module
/// docs for why 2).
pub const ARENA_MAX: i32 = 2;

/// Whether [`release_free_memory`] trims (set by [`configure_process`]).
static TRIM_AFTER_COMMIT: AtomicBool = AtomicBool::new(false);

/// Applies strand's allocator settings to the whole process: at most
/// [`ARENA_MAX`] malloc arenas, and [`release_free_memory`] enabled.
/// Call it once, before starting threads (the binary does so first thing
/// in `main`). Returns whether the allocator accepted the settings
/// (always `false` off glibc, where this changes nothing).
pub fn configure_process() -> bool {
    TRIM_AFTER_COMMIT.store(true, Ordering::Relaxed);
    set_arena_max(ARENA_MAX)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: i32) -> bool {
    // SAFETY: mallopt only changes glibc's tuning parameters; M_ARENA_MAX
    // takes effect for arenas created afterwards.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_n: i32) -> bool {
    false
}

/// Gives the free pages inside the malloc heaps back to the kernel
/// (glibc's `malloc_trim(0)`), if [`configure_process`] was called;
/// otherwise does nothing. Called after store commits and after the chain
/// state drops a block batch.
pub fn release_free_memory() {
    if TRIM_AFTER_COMMIT.load(Ordering::Relaxed) {
        trim();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes glibc's arena locks itself; it only
    // releases memory that no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    #[test]
    fn release_without_configure_is_a_no_op_and_configure_enables_it() {
        // Not configured: no trim (the flag stays off).
        super::release_free_memory();
        assert!(!super::TRIM_AFTER_COMMIT.load(std::sync::atomic::Ordering::Relaxed));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(super::configure_process(), "glibc accepts M_ARENA_MAX");
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        assert!(!super::configure_process());
        assert!(super::TRIM_AFTER_COMMIT.load(std::sync::atomic::Ordering::Relaxed));
        super::release_free_memory();
    }
}
