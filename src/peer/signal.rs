//! [`Signal`], a one-shot, close-once flag in the manner of closing a Go
//! channel: it can be waited on in a `select!` and checked without
//! blocking. The peer's verack, quit and announced flags; set and waited on
//! by the peer's reader, writer and lifecycle threads and by the peer
//! handler.

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use parking_lot::Mutex;

/// A one-shot signal. Setting it closes an internal channel, so any number
/// of threads can wait on [`Signal::receiver`] in a `select!`.
///
/// Setting it a second time is a caller bug that is logged at error level
/// and otherwise ignored: the signal stays set and nothing panics.
#[derive(Debug)]
pub struct Signal {
    name: &'static str,
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl Signal {
    /// A new, unset signal; `name` appears in the double-set error log.
    pub fn new(name: &'static str) -> Signal {
        let (tx, rx) = bounded(0);
        Signal {
            name,
            tx: Mutex::new(Some(tx)),
            rx,
        }
    }

    /// Sets the signal. Returns false (and logs an error) if it was already
    /// set.
    pub fn set(&self, context: &dyn std::fmt::Display) -> bool {
        if self.tx.lock().take().is_some() {
            true
        } else {
            log::error!("{} signalled twice for {}", self.name, context);
            false
        }
    }

    /// Sets the signal unless it is already set, without logging.
    pub fn set_quiet(&self) {
        self.tx.lock().take();
    }

    /// True once the signal has been set.
    pub fn is_set(&self) -> bool {
        matches!(self.rx.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// A receiver that becomes ready (disconnected) when the signal is set.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    /// Blocks until the signal is set.
    pub fn wait(&self) {
        // No value is ever sent, so recv only returns when the sender is dropped.
        let _ = self.rx.recv();
    }
}
