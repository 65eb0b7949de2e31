//! The sync-manager thread (btcd's `netsync.SyncManager`).
//!
//! Owns the set of peers it has been told about, the choice of sync peer and
//! (from the chain issue on) the download of headers and blocks. It learns
//! of peers only from the peer-handler thread (`NewPeer`/`DonePeer`, in the
//! order the handler consumed lifecycle events) and of their messages from
//! their reader threads. A message from a peer it does not know — not yet
//! announced, or already done — is dropped with a debug log; it never
//! re-creates a peer.
//!
//! A *candidate* is a known peer that advertises `NODE_NETWORK` or
//! `NODE_NETWORK_LIMITED` and whose start height is above ours. The sync peer
//! is the best candidate: outbound first, then highest start height, then
//! oldest connection. When the sync peer is done (or stalls) the next
//! candidate takes over; when none is left the node leaves initial block
//! download at once, so announcements from the remaining peers are followed.
//!
//! Anomaly counters record what the design makes impossible; they exist so
//! tests (and `getsyncstate`) can prove it stays so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use bitcoin::p2p::ServiceFlags;
use bitcoin::BlockHash;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::peer::conn::PROTOCOL_VERSION;
use crate::peer::{Direction, DisconnectReason, Peer, PeerId};

/// Messages to the sync-manager thread.
pub enum SyncMsg {
    /// From the peer handler: a peer completed its handshake.
    NewPeer(Arc<Peer>),
    /// From the peer handler: a peer announced with `NewPeer` is gone.
    DonePeer(PeerId),
    /// From a peer's reader thread: a message for the sync manager.
    Message(PeerId, NetworkMessage),
    /// Reply with a snapshot of the sync state.
    Snapshot(Sender<SyncSnapshot>),
    /// Stop the thread.
    Shutdown,
}

/// Things that must never happen, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Anomalies {
    /// `DonePeer` for a peer the sync manager did not know: the "done before
    /// new" half of btcd's bug.
    pub done_peer_unknown: u64,
    /// `NewPeer` for a peer whose `DonePeer` was already handled: the other
    /// half, which left btcd with a dead sync peer. Such a peer is not
    /// registered.
    pub new_peer_after_done: u64,
}

/// Informational counters: expected under churn, harmless by design.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounters {
    /// `NewPeer` for a peer whose connection had already closed; its
    /// `DonePeer` is guaranteed to follow, and it is never chosen as sync peer.
    pub new_peer_closed: u64,
    /// Messages dropped because their peer was not (yet, or any more) known.
    pub message_unknown_peer: u64,
    /// Sync peers replaced because they stalled.
    pub stalls: u64,
}

/// A known peer, as the snapshot reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPeerInfo {
    /// The peer's id.
    pub id: PeerId,
    /// Whether it is a sync candidate.
    pub candidate: bool,
    /// Whether its connection had closed when the snapshot was taken.
    pub closed: bool,
}

/// The sync manager's state at one moment.
#[derive(Debug, Clone)]
pub struct SyncSnapshot {
    /// Every peer the sync manager knows.
    pub peers: Vec<SyncPeerInfo>,
    /// The current sync peer.
    pub sync_peer: Option<PeerId>,
    /// Candidate peers (the sync peer included), by id.
    pub candidates: Vec<PeerId>,
    /// Must-never-happen counters.
    pub anomalies: Anomalies,
    /// Informational counters.
    pub counters: SyncCounters,
    /// Whether the node is in initial block download.
    pub initial_block_download: bool,
    /// Our best height.
    pub best_height: i32,
}

struct KnownPeer {
    peer: Arc<Peer>,
    candidate: bool,
}

/// Configuration of the sync manager.
pub(crate) struct SyncConfig {
    pub genesis: BlockHash,
    pub stall_timeout: Duration,
    pub best_height: Arc<AtomicI32>,
}

/// The sync manager's state; owned by its thread.
pub(crate) struct SyncManager {
    cfg: SyncConfig,
    peers: HashMap<PeerId, KnownPeer>,
    sync_peer: Option<PeerId>,
    sync_peer_since: Instant,
    last_progress: Instant,
    ibd: bool,
    anomalies: Anomalies,
    counters: SyncCounters,
}

impl SyncManager {
    pub(crate) fn new(cfg: SyncConfig) -> SyncManager {
        SyncManager {
            cfg,
            peers: HashMap::new(),
            sync_peer: None,
            sync_peer_since: Instant::now(),
            last_progress: Instant::now(),
            ibd: true,
            anomalies: Anomalies::default(),
            counters: SyncCounters::default(),
        }
    }

    /// The thread body.
    pub(crate) fn run(mut self, inbox: Receiver<SyncMsg>) {
        let tick = Duration::from_millis(500).min(self.cfg.stall_timeout);
        loop {
            match inbox.recv_timeout(tick) {
                Ok(SyncMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.check_stall();
        }
        log::debug!("sync manager stopped");
    }

    pub(crate) fn handle(&mut self, msg: SyncMsg) {
        match msg {
            SyncMsg::NewPeer(peer) => self.handle_new_peer(peer),
            SyncMsg::DonePeer(id) => self.handle_done_peer(id),
            SyncMsg::Message(id, msg) => self.handle_message(id, msg),
            SyncMsg::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            SyncMsg::Shutdown => {}
        }
    }

    fn best_height(&self) -> i32 {
        self.cfg.best_height.load(Ordering::Relaxed)
    }

    fn is_candidate(&self, peer: &Peer) -> bool {
        let Some(v) = peer.remote_version() else {
            return false;
        };
        let serves =
            v.services.has(ServiceFlags::NETWORK) || v.services.has(ServiceFlags::NETWORK_LIMITED);
        serves && v.start_height > self.best_height()
    }

    fn handle_new_peer(&mut self, peer: Arc<Peer>) {
        if peer.sync_done.load(Ordering::SeqCst) {
            self.anomalies.new_peer_after_done += 1;
            log::error!("NewPeer after DonePeer for {peer}; ignoring it");
            return;
        }
        if peer.is_closed() {
            self.counters.new_peer_closed += 1;
        }
        let candidate = self.is_candidate(&peer);
        log::debug!("sync: new {peer} candidate={candidate}");
        self.peers.insert(peer.id, KnownPeer { peer, candidate });
        if candidate && self.sync_peer.is_none() {
            self.start_sync();
        }
    }

    fn handle_done_peer(&mut self, id: PeerId) {
        let Some(known) = self.peers.remove(&id) else {
            self.anomalies.done_peer_unknown += 1;
            log::error!("DonePeer for unknown peer={id}");
            return;
        };
        known.peer.sync_done.store(true, Ordering::SeqCst);
        log::debug!("sync: done {}", known.peer);
        if self.sync_peer == Some(id) {
            self.sync_peer = None;
            self.start_sync();
            if self.sync_peer.is_none() && self.ibd {
                // Nobody left who is ahead of us: follow announcements from
                // whoever remains (btcd once stalled near the tip here).
                log::info!("sync peer peer={id} gone and no other peer is ahead; leaving initial block download");
                self.ibd = false;
            }
        }
    }

    fn handle_message(&mut self, id: PeerId, msg: NetworkMessage) {
        let Some(known) = self.peers.get(&id) else {
            self.counters.message_unknown_peer += 1;
            log::debug!("sync: dropping '{}' from unknown peer={id}", msg.command());
            return;
        };
        match msg {
            NetworkMessage::Headers(headers) if self.sync_peer == Some(id) => {
                self.last_progress = Instant::now();
                log::debug!("sync: {} headers from {}", headers.len(), known.peer);
            }
            other => log::trace!("sync: ignoring '{}' from {}", other.command(), known.peer),
        }
    }

    /// The current block locator: only genesis until a chain exists.
    pub(crate) fn block_locator(&self) -> Vec<BlockHash> {
        vec![self.cfg.genesis]
    }

    /// Picks the best open candidate as sync peer and asks it for headers.
    fn start_sync(&mut self) {
        if self.sync_peer.is_some() {
            return;
        }
        let best = self
            .peers
            .values()
            .filter(|k| k.candidate && !k.peer.is_closed())
            .max_by_key(|k| {
                let height = k.peer.remote_version().map_or(0, |v| v.start_height);
                (
                    k.peer.direction == Direction::Outbound,
                    height,
                    std::cmp::Reverse(k.peer.id),
                )
            })
            .map(|k| Arc::clone(&k.peer));
        let Some(peer) = best else {
            return;
        };
        log::info!(
            "syncing from {} (height {})",
            peer,
            peer.remote_version().map_or(0, |v| v.start_height)
        );
        self.sync_peer = Some(peer.id);
        self.ibd = true;
        self.sync_peer_since = Instant::now();
        self.last_progress = Instant::now();
        let msg = GetHeadersMessage {
            version: PROTOCOL_VERSION,
            locator_hashes: self.block_locator(),
            stop_hash: BlockHash::all_zeros(),
        };
        peer.send(NetworkMessage::GetHeaders(msg));
    }

    fn check_stall(&mut self) {
        let Some(id) = self.sync_peer else {
            return;
        };
        if self.last_progress.elapsed() < self.cfg.stall_timeout {
            return;
        }
        self.counters.stalls += 1;
        if let Some(k) = self.peers.get(&id) {
            log::info!(
                "sync peer {} made no progress for {:?}; disconnecting",
                k.peer,
                self.cfg.stall_timeout
            );
            k.peer.disconnect(DisconnectReason::Stalled);
        }
        // Its DonePeer will pick the next sync peer; do not pick it again.
        if let Some(k) = self.peers.get_mut(&id) {
            k.candidate = false;
        }
        self.last_progress = Instant::now();
    }

    fn snapshot(&self) -> SyncSnapshot {
        let mut peers: Vec<_> = self
            .peers
            .values()
            .map(|k| SyncPeerInfo {
                id: k.peer.id,
                candidate: k.candidate,
                closed: k.peer.is_closed(),
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        let candidates = peers.iter().filter(|p| p.candidate).map(|p| p.id).collect();
        SyncSnapshot {
            peers,
            sync_peer: self.sync_peer,
            candidates,
            anomalies: self.anomalies,
            counters: self.counters,
            initial_block_download: self.ibd,
            best_height: self.best_height(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> SyncManager {
        SyncManager::new(SyncConfig {
            genesis: crate::config::Network::Regtest.genesis_hash(),
            stall_timeout: Duration::from_secs(60),
            best_height: Arc::new(AtomicI32::new(0)),
        })
    }

    #[test]
    fn done_for_unknown_peer_is_counted() {
        let mut m = manager();
        m.handle(SyncMsg::DonePeer(42));
        assert_eq!(m.snapshot().anomalies.done_peer_unknown, 1);
    }

    #[test]
    fn new_peer_after_done_is_counted_and_not_registered() {
        let mut m = manager();
        let p = Arc::new(Peer::detached(1, Direction::Inbound));
        m.handle(SyncMsg::NewPeer(Arc::clone(&p)));
        m.handle(SyncMsg::DonePeer(1));
        m.handle(SyncMsg::NewPeer(Arc::clone(&p)));
        let s = m.snapshot();
        assert_eq!(s.anomalies.new_peer_after_done, 1);
        assert!(s.peers.is_empty());
    }

    #[test]
    fn messages_from_unknown_peers_are_dropped() {
        let mut m = manager();
        m.handle(SyncMsg::Message(3, NetworkMessage::Headers(vec![])));
        let s = m.snapshot();
        assert_eq!(s.counters.message_unknown_peer, 1);
        assert!(s.peers.is_empty());
    }
}
