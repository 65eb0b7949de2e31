//! The RPC calls running right now, for `getrpcinfo`'s `active_commands`
//! (Core's `RPCCommandExecution` list in `rpc/server.cpp`). The RPC worker
//! threads register a call for as long as its handler runs; the lock is
//! held only to push, remove or copy an entry.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One running call: its id, method and start.
type Entry = (u64, &'static str, Instant);

/// The running calls.
#[derive(Debug, Default)]
pub(super) struct ActiveCommands {
    /// The next id, and the running calls.
    next: Mutex<(u64, Vec<Entry>)>,
}

/// Removes its call from the list when dropped.
pub(super) struct Running<'a> {
    list: &'a ActiveCommands,
    id: u64,
}

impl ActiveCommands {
    /// Registers a call of `method` until the guard is dropped.
    pub(super) fn enter(&self, method: &'static str) -> Running<'_> {
        let mut g = self.next.lock();
        let id = g.0;
        g.0 = g.0.wrapping_add(1);
        g.1.push((id, method, Instant::now()));
        Running { list: self, id }
    }

    /// Each running call's method and how long it has run, oldest first.
    pub(super) fn snapshot(&self) -> Vec<(&'static str, Duration)> {
        self.next
            .lock()
            .1
            .iter()
            .map(|(_, m, t)| (*m, t.elapsed()))
            .collect()
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.list.next.lock().1.retain(|(id, _, _)| *id != self.id);
    }
}
