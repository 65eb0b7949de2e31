//! The peer-handler thread and the listener thread.
//!
//! **Peer handler** (thread `peer-handler`, btcd's `peerHandler`). It is the
//! only consumer of the lifecycle channel and the only thread that tells the
//! sync manager about peers. Its contract:
//!
//! * It receives every peer's `Add` (handshake done) and `Done` (connection
//!   ended) on one FIFO channel, so for a given peer it sees `Add` before
//!   `Done`, or `Done` alone.
//! * On `Add` it either accepts the peer into its table and sends
//!   `NewPeer` to the sync manager, marking the peer *known to sync*, or
//!   rejects it (table full) and disconnects it, sending nothing.
//! * On `Done` it removes the peer, sends `DonePeer` only if it sent
//!   `NewPeer` for that peer, and evicts the peer's orphan transactions.
//! * It forwards events to the sync manager in the order it consumed them,
//!   with blocking sends (downstream), and never blocks on anything upstream.
//!
//! **Listener** (thread `listener`, Core's `AcceptConnection`): accepts
//! inbound connections and hands them to `peer::start_peer`. When every
//! inbound slot is taken it first makes room as Core's
//! `AttemptToEvictConnection` does (`peer::eviction`: an unprotected
//! inbound peer, preferably discouraged, from the largest network group),
//! waits for the evicted peer's slot, then starts the new one. If every
//! inbound peer is protected, the registry's own rule still evicts a
//! discouraged inbound peer; otherwise the new connection is closed at
//! accept, before any thread is started for it. A banned address evicts
//! nobody, nor does a discouraged one (it only gets in while more than one
//! slot is free).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};

use crate::peer::eviction::NetGroupKey;
use crate::peer::{
    start_peer, ConnectionType, DisconnectReason, LifecycleEvent, NetContext, Peer, PeerId,
    StartPeerError,
};
use crate::sync::SyncMsg;

/// Capacity of the lifecycle channel: two events per possible connection,
/// plus slack for connections that closed and were replaced before the
/// handler caught up, so a lifecycle thread never waits long.
pub(crate) fn lifecycle_capacity(max_peers: usize) -> usize {
    2 * max_peers + 64
}

/// The hook the peer handler calls for every finished peer; the mempool
/// defines it (its orphans are tagged by peer). Re-exported here, where it
/// is called.
pub use crate::mempool::{NoOrphans, OrphanEvictor};

/// Requests to the peer-handler thread.
pub(crate) enum HandlerMsg {
    /// Reply with the peer table and counters.
    Peers(Sender<(Vec<Arc<Peer>>, HandlerStats)>),
    /// Drain the lifecycle channel and stop.
    Shutdown,
}

/// Counters kept by the peer handler (part of [`crate::Snapshot`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandlerStats {
    /// `NewPeer` notices sent to the sync manager.
    pub new_peer_sent: u64,
    /// `DonePeer` notices sent to the sync manager.
    pub done_peer_sent: u64,
    /// Peers rejected at `Add` (table full).
    pub rejected: u64,
    /// `Done` events for peers that never reached the table.
    pub done_without_add: u64,
}

/// The peer handler's state; owned by its thread.
pub(crate) struct PeerHandler {
    peers: HashMap<PeerId, Arc<Peer>>,
    max_peers: usize,
    sync_tx: Sender<SyncMsg>,
    orphans: Box<dyn OrphanEvictor>,
    stats: HandlerStats,
    events: crate::events::EventBus,
}

impl PeerHandler {
    pub(crate) fn new(
        max_peers: usize,
        sync_tx: Sender<SyncMsg>,
        orphans: Box<dyn OrphanEvictor>,
        events: crate::events::EventBus,
    ) -> PeerHandler {
        PeerHandler {
            peers: HashMap::new(),
            max_peers,
            sync_tx,
            orphans,
            stats: HandlerStats::default(),
            events,
        }
    }

    /// The thread body.
    pub(crate) fn run(
        mut self,
        lifecycle: Receiver<LifecycleEvent>,
        control: Receiver<HandlerMsg>,
    ) {
        loop {
            select! {
                recv(lifecycle) -> ev => match ev {
                    Ok(ev) => self.handle_event(ev),
                    Err(_) => break,
                },
                recv(control) -> msg => match msg {
                    Ok(HandlerMsg::Peers(reply)) => {
                        let _ = reply.send((self.peers.values().cloned().collect(), self.stats));
                    }
                    Ok(HandlerMsg::Shutdown) | Err(_) => {
                        while let Ok(ev) = lifecycle.try_recv() {
                            self.handle_event(ev);
                        }
                        break;
                    }
                },
            }
        }
        log::debug!("peer handler stopped ({:?})", self.stats);
    }

    pub(crate) fn handle_event(&mut self, ev: LifecycleEvent) {
        match ev {
            LifecycleEvent::Add(peer) => self.handle_add_peer(peer),
            LifecycleEvent::Done(peer) => self.handle_done_peer(peer),
        }
    }

    fn handle_add_peer(&mut self, peer: Arc<Peer>) {
        if self.peers.len() >= self.max_peers {
            self.stats.rejected += 1;
            log::info!("rejecting {peer}: {}", DisconnectReason::TooManyPeers);
            peer.disconnect(DisconnectReason::TooManyPeers);
            peer.announced.set_quiet();
            return;
        }
        log::debug!("new {peer}");
        self.peers.insert(peer.id, Arc::clone(&peer));
        peer.known_to_sync.store(true, Ordering::SeqCst);
        self.stats.new_peer_sent += 1;
        // Blocking send downstream; fails only when the sync manager is gone.
        let _ = self.sync_tx.send(SyncMsg::NewPeer(Arc::clone(&peer)));
        peer.announced.set_quiet();
        self.events.publish(crate::events::NodeEvent::PeerAdded {
            id: peer.id,
            addr: peer.addr,
            direction: peer.direction,
        });
    }

    fn handle_done_peer(&mut self, peer: Arc<Peer>) {
        match self.peers.remove(&peer.id) {
            Some(p) if p.known_to_sync.load(Ordering::SeqCst) => {
                log::debug!("done {peer}");
                self.stats.done_peer_sent += 1;
                let _ = self.sync_tx.send(SyncMsg::DonePeer(peer.id));
                self.events
                    .publish(crate::events::NodeEvent::PeerRemoved { id: peer.id });
            }
            _ => self.stats.done_without_add += 1,
        }
        let evicted = self.orphans.evict_orphans_from(peer.id);
        if evicted > 0 {
            log::debug!("evicted {evicted} orphans from {peer}");
        }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> HandlerStats {
        self.stats
    }
}

/// Body of the listener thread. Stops when `stop` is set and the accept
/// call returns (the node wakes it with a connection to itself).
pub(crate) fn run_listener(ctx: Arc<NetContext>, listener: TcpListener, stop: Arc<AtomicBool>) {
    // Core's RANDOMIZER_ID_NETGROUP secret: which groups eviction protects
    // cannot be predicted from outside.
    let key = NetGroupKey::random();
    // The address manager's regtest rule: loopback peers are routable
    // there, one network group per 127.N /16.
    let loopback_routable = ctx.config.network == crate::Network::Regtest;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                make_room(&ctx, &stream, &key, loopback_routable);
                match start_peer(&ctx, stream, ConnectionType::Inbound) {
                    Ok(peer) => log::trace!("accepted {peer}"),
                    Err(StartPeerError::Register(e)) => {
                        log::debug!("closing inbound connection at accept: {e:?}")
                    }
                    Err(e) => log::warn!("cannot start inbound peer: {e}"),
                }
            }
            Err(e) => {
                // EMFILE and the like: back off briefly instead of spinning.
                log::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    log::debug!("listener stopped");
}

/// How long the listener waits for an evicted peer's slot before it lets
/// the registry decide (the slot is given back when the evicted peer's
/// reader stops, normally within milliseconds).
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Core's `AcceptConnection` before the peer is created: when the inbound
/// slots are full, evicts one inbound peer and waits for its slot. When
/// nobody can be evicted the registry decides (it may still evict a
/// discouraged peer, strand's rule from before Core's eviction, kept;
/// else the connection is closed as full).
fn make_room(
    ctx: &NetContext,
    stream: &std::net::TcpStream,
    key: &NetGroupKey,
    loopback_routable: bool,
) {
    let conns = &ctx.connections;
    if !conns.inbound_full() {
        return;
    }
    // A banned or discouraged address evicts nobody: the registry refuses
    // it (Core checks both before `AttemptToEvictConnection`).
    if let Ok(remote) = stream.peer_addr() {
        if conns.is_banned(remote.ip()) || conns.is_discouraged(remote.ip()) {
            return;
        }
    }
    match conns.attempt_to_evict_connection(key, loopback_routable) {
        Some(victim) => {
            if !conns.wait_slot_released(&victim, EVICTION_WAIT) {
                log::debug!("evicted {victim} still holds its slot");
            }
        }
        None => log::debug!("failed to find an eviction candidate (inbound slots full)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::lifecycle::run_lifecycle;
    use crate::peer::Direction;
    use crossbeam_channel::unbounded;

    fn handler(max: usize) -> (PeerHandler, Receiver<SyncMsg>) {
        let (tx, rx) = unbounded();
        (
            PeerHandler::new(max, tx, Box::new(NoOrphans), Default::default()),
            rx,
        )
    }

    #[test]
    fn quit_before_verack_sends_nothing_to_sync() {
        let (mut h, sync_rx) = handler(8);
        let peer = Arc::new(Peer::detached(1, Direction::Inbound));
        peer.quit.set(&*peer);
        let (tx, rx) = unbounded();
        assert!(!run_lifecycle(Arc::clone(&peer), &tx));
        drop(tx);
        for ev in rx.iter() {
            h.handle_event(ev);
        }
        assert!(
            sync_rx.try_recv().is_err(),
            "nothing for a peer never added"
        );
        assert!(!peer.known_to_sync.load(Ordering::SeqCst));
        assert_eq!(h.stats().done_without_add, 1);
        assert!(h.peers.is_empty());
    }

    #[test]
    fn add_then_done_gives_new_peer_then_done_peer() {
        let (mut h, sync_rx) = handler(8);
        let peer = Arc::new(Peer::detached(5, Direction::Outbound));
        peer.verack.set(&*peer);
        peer.quit.set(&*peer);
        let (tx, rx) = unbounded();
        run_lifecycle(Arc::clone(&peer), &tx);
        drop(tx);
        for ev in rx.iter() {
            h.handle_event(ev);
        }
        let msgs: Vec<_> = sync_rx.try_iter().collect();
        assert_eq!(msgs.len(), 2);
        assert!(matches!(&msgs[0], SyncMsg::NewPeer(p) if p.id == 5));
        assert!(matches!(&msgs[1], SyncMsg::DonePeer(5)));
        assert!(h.peers.is_empty());
    }

    #[test]
    fn rejected_peer_gets_neither_notice() {
        let (mut h, sync_rx) = handler(1);
        let a = Arc::new(Peer::detached(1, Direction::Inbound));
        let b = Arc::new(Peer::detached(2, Direction::Inbound));
        h.handle_event(LifecycleEvent::Add(Arc::clone(&a)));
        h.handle_event(LifecycleEvent::Add(Arc::clone(&b)));
        h.handle_event(LifecycleEvent::Done(Arc::clone(&b)));
        let msgs: Vec<_> = sync_rx.try_iter().collect();
        assert_eq!(msgs.len(), 1);
        assert!(matches!(&msgs[0], SyncMsg::NewPeer(p) if p.id == 1));
        assert!(matches!(
            b.disconnect_reason(),
            Some(DisconnectReason::TooManyPeers)
        ));
        assert_eq!(h.stats().rejected, 1);
    }

    struct CountingEvictor(Arc<parking_lot::Mutex<Vec<PeerId>>>);
    impl OrphanEvictor for CountingEvictor {
        fn evict_orphans_from(&mut self, peer: PeerId) -> usize {
            self.0.lock().push(peer);
            1
        }
    }

    #[test]
    fn done_calls_the_orphan_hook() {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (tx, _rx) = unbounded();
        let mut h = PeerHandler::new(
            8,
            tx,
            Box::new(CountingEvictor(Arc::clone(&seen))),
            Default::default(),
        );
        let p = Arc::new(Peer::detached(9, Direction::Inbound));
        h.handle_event(LifecycleEvent::Add(Arc::clone(&p)));
        h.handle_event(LifecycleEvent::Done(p));
        assert_eq!(*seen.lock(), vec![9]);
    }
}
