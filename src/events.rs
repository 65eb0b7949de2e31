//! Node events for embedders (block connected/disconnected, peer
//! added/removed, transaction accepted, fatal error), and [`Abort`], the
//! node's fatal-error latch (Core's `AbortNode`).
//!
//! Publishers are the peer-handler thread (peers) and the sync-manager
//! thread (blocks, transactions). Each subscriber has its own bounded
//! channel; publishing uses `try_send`, so a slow subscriber never blocks
//! the node: events that do not fit are dropped and counted, per
//! subscriber and in total. A subscriber that drops its receiver is
//! forgotten at the next publish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bitcoin::{BlockHash, Txid, Wtxid};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::peer::{Direction, PeerId};

/// Something that happened in the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A block became the new tip.
    BlockConnected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The tip block was disconnected (reorganisation).
    BlockDisconnected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A peer completed its handshake and was announced to the sync manager.
    PeerAdded {
        /// Its id.
        id: PeerId,
        /// Its address.
        addr: SocketAddr,
        /// Who connected.
        direction: Direction,
    },
    /// A peer announced with `PeerAdded` is gone.
    PeerRemoved {
        /// Its id.
        id: PeerId,
    },
    /// A transaction entered the mempool.
    TransactionAccepted {
        /// Its txid.
        txid: Txid,
        /// Its wtxid.
        wtxid: Wtxid,
    },
    /// A fatal error stopped the node (Core's `AbortNode`: a failed store
    /// write, a corrupt entry). The last event: the node no longer accepts
    /// peers or processes blocks; [`crate::NodeHandle::fatal_error`] has the
    /// same reason.
    Fatal {
        /// What failed.
        reason: String,
    },
}

/// The node's fatal-error latch (Core's `AbortNode`/`FatalError`): set once
/// by the sync-manager thread when the chain state fails, with the reason;
/// the node handle and the binary wait on it to shut down. Later triggers
/// keep the first reason.
pub struct Abort {
    reason: Mutex<Option<String>>,
    signal: crate::peer::Signal,
}

impl Default for Abort {
    fn default() -> Abort {
        Abort {
            reason: Mutex::new(None),
            signal: crate::peer::Signal::new("abort"),
        }
    }
}

impl Abort {
    /// Records `reason` (unless one is recorded) and wakes every waiter.
    /// Returns whether this call set it.
    pub fn trigger(&self, reason: &str) -> bool {
        let mut r = self.reason.lock();
        if r.is_some() {
            return false;
        }
        *r = Some(reason.to_string());
        self.signal.set_quiet();
        true
    }

    /// The reason, once triggered.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// A receiver that becomes ready (disconnected) once triggered.
    pub fn receiver(&self) -> Receiver<()> {
        self.signal.receiver().clone()
    }
}

struct Subscriber {
    tx: Sender<NodeEvent>,
    dropped: Arc<AtomicU64>,
}

/// The publishing side, shared by the node's threads.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    dropped: Arc<AtomicU64>,
}

/// One subscriber's end: the events, and how many did not fit.
pub struct Subscription {
    /// Events in the order they happened (with gaps where some were dropped).
    pub events: Receiver<NodeEvent>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Events dropped because this subscriber's channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EventBus {
    /// A new subscription holding at most `capacity` undelivered events.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let (tx, rx) = bounded(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.subscribers.lock().push(Subscriber {
            tx,
            dropped: Arc::clone(&dropped),
        });
        Subscription {
            events: rx,
            dropped,
        }
    }

    /// Delivers `event` to every subscriber without blocking.
    pub fn publish(&self, event: NodeEvent) {
        let mut subs = self.subscribers.lock();
        if subs.is_empty() {
            return;
        }
        subs.retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Events dropped across all subscribers since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_subscriber_drops_and_counts_without_blocking() {
        let bus = EventBus::default();
        let sub = bus.subscribe(2);
        for i in 0..5 {
            bus.publish(NodeEvent::PeerRemoved { id: i });
        }
        assert_eq!(sub.dropped(), 3);
        assert_eq!(bus.dropped(), 3);
        assert_eq!(
            sub.events.try_recv().unwrap(),
            NodeEvent::PeerRemoved { id: 0 }
        );
        assert_eq!(
            sub.events.try_recv().unwrap(),
            NodeEvent::PeerRemoved { id: 1 }
        );
        drop(sub);
        bus.publish(NodeEvent::PeerRemoved { id: 9 });
        assert!(
            bus.subscribers.lock().is_empty(),
            "gone subscriber forgotten"
        );
    }
}
