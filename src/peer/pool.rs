//! [`ThreadPool`]: parked threads reused for the per-connection roles
//! (reader, writer, lifecycle), so a connection does not pay for creating
//! and joining three OS threads (issue 11: handshake throughput).
//!
//! Every live peer still has one OS thread per role: a role's job runs on a
//! thread of its own until it returns, it is never multiplexed. When a job
//! returns, its thread parks and waits for the next job; a thread that waits
//! longer than [`IDLE_TIMEOUT`], or would make more than `max_idle` threads
//! parked, exits. The listener, the connection manager and the reader
//! threads start jobs; a job is handed to a parked thread through a
//! zero-capacity channel (the hand-over succeeds only if a thread is
//! waiting), otherwise a new thread is spawned with the pool's stack size.
//! [`Task::join`] waits for the job, not the thread. At node shutdown
//! [`ThreadPool::shutdown`] wakes the parked threads and joins every
//! thread of the pool (bounded); a dropped pool also wakes its parked
//! threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a parked thread waits for a job before it exits. No Core
/// counterpart (Core runs all peers on two threads); long enough to carry a
/// churn of short connections, short enough not to keep a burst's threads.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Threads parked at most by default: enough for the three roles of a few
/// dozen connections in flight at once.
pub const DEFAULT_MAX_IDLE: usize = 96;

/// A parked thread's mailbox: `None` tells it to exit.
type Mailbox = Sender<Option<Job>>;

struct Shared {
    /// Parked threads, most recently parked last.
    parked: Mutex<Vec<(u64, Mailbox)>>,
    max_idle: usize,
    next_id: AtomicU64,
    /// Set by `shutdown`: a thread whose job ends exits instead of parking.
    closed: AtomicBool,
}

/// Parked threads for the per-connection roles; see the module docs.
pub(crate) struct ThreadPool {
    shared: Arc<Shared>,
    stack_size: usize,
    /// Every thread started and maybe still running (finished ones are
    /// pruned when a new one starts), for `shutdown` to join.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A job started on the pool; [`Task::join`] waits until it returned (or
/// panicked).
pub(crate) struct Task {
    done: Receiver<()>,
}

impl Task {
    /// Waits until the job has finished.
    pub(crate) fn join(self) {
        // Nothing is ever sent: recv returns when the job's end drops the
        // sender (normally or while unwinding).
        let _ = self.done.recv();
    }
}

impl ThreadPool {
    /// A pool whose threads have `stack_size` bytes of stack and of which
    /// at most `max_idle` stay parked.
    pub(crate) fn new(stack_size: usize, max_idle: usize) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(Shared {
                parked: Mutex::new(Vec::new()),
                max_idle,
                next_id: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
            stack_size,
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a parked thread, or on a new one if none is parked.
    pub(crate) fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> std::io::Result<Task> {
        let (done_tx, done) = bounded::<()>(0);
        let mut job: Job = Box::new(move || {
            let _done = done_tx;
            f();
        });
        // A parked thread's mailbox is empty (it takes one job per
        // parking), so this send never blocks; it fails only if that
        // thread is gone, and then the job comes back.
        while let Some((_, mailbox)) = self.shared.parked.lock().pop() {
            match mailbox.send(Some(job)) {
                Ok(()) => return Ok(Task { done }),
                Err(back) => match back.0 {
                    Some(j) => job = j,
                    // Only `Some` is ever sent by spawn.
                    None => return Err(std::io::Error::other("thread pool lost a job")),
                },
            }
        }
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name("peer".into())
            .stack_size(self.stack_size)
            .spawn(move || worker(&shared, job))?;
        let mut threads = self.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(Task { done })
    }

    /// Stops the pool: parked threads exit, threads still running a job
    /// exit when it ends. Joins them all, waiting at most `limit` (a thread
    /// still busy then is left running). Returns whether all were joined.
    pub(crate) fn shutdown(&self, limit: Duration) -> bool {
        self.shared.closed.store(true, Ordering::SeqCst);
        for (_, mailbox) in self.shared.parked.lock().drain(..) {
            let _ = mailbox.send(None);
        }
        let deadline = std::time::Instant::now() + limit;
        let threads = std::mem::take(&mut *self.threads.lock());
        let mut all = true;
        for t in threads {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                all = false;
            }
        }
        all
    }

    /// Threads parked now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.shared.parked.lock().len()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        for (_, mailbox) in self.shared.parked.lock().drain(..) {
            let _ = mailbox.send(None);
        }
    }
}

fn worker(shared: &Shared, first: Job) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (mailbox, jobs) = bounded::<Option<Job>>(1);
    let mut job = first;
    loop {
        job();
        {
            let mut parked = shared.parked.lock();
            if parked.len() >= shared.max_idle || shared.closed.load(Ordering::SeqCst) {
                return;
            }
            parked.push((id, mailbox.clone()));
        }
        job = match jobs.recv_timeout(IDLE_TIMEOUT) {
            Ok(Some(next)) => next,
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let mut parked = shared.parked.lock();
                if let Some(pos) = parked.iter().position(|(i, _)| *i == id) {
                    parked.remove(pos);
                    return;
                }
                drop(parked);
                // A spawn took this thread off the list just now: its job
                // is in the mailbox or about to be.
                match jobs.recv() {
                    Ok(Some(next)) => next,
                    Ok(None) | Err(_) => return,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_idle(pool: &ThreadPool, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.idle() != n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn threads_are_reused_and_parked_ones_are_bounded() {
        let pool = ThreadPool::new(64 * 1024, 2);
        let ids = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let record = |ids: &Arc<parking_lot::Mutex<Vec<std::thread::ThreadId>>>| {
            let ids = Arc::clone(ids);
            move || ids.lock().push(std::thread::current().id())
        };
        pool.spawn(record(&ids)).unwrap().join();
        assert!(wait_idle(&pool, 1), "the thread parks after its job");
        pool.spawn(record(&ids)).unwrap().join();
        {
            let ids = ids.lock();
            assert_eq!(ids.len(), 2);
            assert_eq!(ids[0], ids[1], "the parked thread ran the second job");
        }
        // Four jobs at once need four threads; only two stay parked.
        let (go_tx, go_rx) = bounded::<()>(0);
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let go = go_rx.clone();
                pool.spawn(move || {
                    let _ = go.recv();
                })
                .unwrap()
            })
            .collect();
        drop(go_tx);
        for t in tasks {
            t.join();
        }
        assert!(wait_idle(&pool, 2));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.idle(), 2, "no more than max_idle parked");
    }

    #[test]
    fn shutdown_joins_parked_and_busy_threads() {
        let pool = ThreadPool::new(64 * 1024, 8);
        pool.spawn(|| {}).unwrap().join();
        assert!(wait_idle(&pool, 1));
        let busy = pool
            .spawn(|| std::thread::sleep(Duration::from_millis(50)))
            .unwrap();
        let fresh = pool
            .spawn(|| std::thread::sleep(Duration::from_millis(50)))
            .unwrap();
        assert!(pool.shutdown(Duration::from_secs(10)), "all joined");
        assert_eq!(pool.idle(), 0);
        busy.join();
        fresh.join();
        assert!(pool.threads.lock().is_empty());
    }

    #[test]
    fn join_returns_when_the_job_panics() {
        let pool = ThreadPool::new(64 * 1024, 1);
        let task = pool.spawn(|| panic!("job panics")).unwrap();
        task.join();
        // The pool still works.
        let (tx, rx) = bounded(1);
        pool.spawn(move || tx.send(7).unwrap()).unwrap().join();
        assert_eq!(rx.recv().unwrap(), 7);
    }
}
