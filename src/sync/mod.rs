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
//! Every block request has a deadline (Core's block-download timeout: see
//! [`SyncConfig::block_download_timeout`]). A peer that misses it is
//! disconnected ([`DisconnectReason::BlockDownloadTimeout`]) and the block is
//! asked again from the sync peer or from another peer whose announced
//! headers include it, so a peer that announces a header and withholds the
//! block cannot hold the tip still.
//!
//! Serving follows Core: `getdata` gets a block only if it passed full
//! validation (`ChainState::block_request_allowed`, Core's
//! `BlockRequestAllowed`; otherwise `notfound`), without witnesses for
//! `MSG_BLOCK` and with them for `MSG_WITNESS_BLOCK`; `mempool` disconnects
//! the peer, as Core does when it offers no bloom filters.
//!
//! Pause-send (Core's `fPauseSend`): `getdata` items are served one by one
//! while the peer's send queue is within its byte budget; the rest wait in
//! a per-peer deferred list (Core's `vRecvGetData`), behind which later
//! `getdata` of that peer queue up, until the peer's writer reports the
//! queue drained ([`SyncMsg::SendDrained`]; the thread's timer retries too).
//! Deferred items stay counted against the peer's receive budget, so its
//! reader stops reading (pause-recv) and the list stays bounded by that
//! budget plus one `getdata` (50,000 items at most).
//!
//! A fatal chain error (a failed store write, a corrupt entry) is Core's
//! `AbortNode`: it is logged, published as [`crate::events::NodeEvent::Fatal`],
//! and the node's abort hook stops it taking peers; block processing stops.
//!
//! Anomaly counters record what the design makes impossible; they exist so
//! tests (and `getsyncstate`) can prove it stays so.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::ServiceFlags;
use bitcoin::{Block, BlockHash};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::chain::state::{ChainError, ChainEvent, ChainState, RejectError};
use crate::mempool::{AcceptContext, FeeRate, MempoolReject, SharedMempool};
use crate::mining::GenerateError;
use crate::peer::conn::PROTOCOL_VERSION;
use crate::peer::{local_services, Direction, DisconnectReason, MessageSink, Peer, PeerId};

fn serves_blocks(peer: &Peer) -> bool {
    let services = peer.services();
    services.has(ServiceFlags::NETWORK) || services.has(ServiceFlags::NETWORK_LIMITED)
}

/// Headers per `headers` message (Core's MAX_HEADERS_RESULTS).
pub const MAX_HEADERS: usize = 2_000;
/// Block hashes per `inv` answering `getblocks` (Core's limit).
pub const MAX_GETBLOCKS: usize = 500;

/// A chain-changing operation run by [`SyncMsg::ChainOp`].
pub type ChainOpFn =
    Box<dyn FnOnce(&mut ChainState) -> Result<Vec<ChainEvent>, RejectError> + Send>;

/// Messages to the sync-manager thread.
pub enum SyncMsg {
    /// From the peer handler: a peer completed its handshake.
    NewPeer(Arc<Peer>),
    /// From the peer handler: a peer announced with `NewPeer` is gone.
    DonePeer(PeerId),
    /// From a peer's reader thread (after its handshake): a message for the
    /// sync manager. Requests for data (`getheaders`, `getdata`) are served
    /// whether or not the peer is known yet; everything else from an unknown
    /// peer is dropped.
    Message(Arc<Peer>, NetworkMessage),
    /// Reply with a snapshot of the sync state.
    Snapshot(Sender<SyncSnapshot>),
    /// A block from this process (mining, `submitblock`): validate and
    /// connect it, announce it if it becomes the tip.
    SubmitBlock(Box<Block>, Sender<Result<Vec<ChainEvent>, RejectError>>),
    /// A transaction from this process (`sendrawtransaction`): accept it to
    /// the mempool and relay it.
    SubmitTx(
        Box<bitcoin::Transaction>,
        Sender<Result<bitcoin::Txid, MempoolReject>>,
    ),
    /// Reply with the chain's tip, height and UTXO-set digest (flushes first).
    UtxoDigest(Sender<Result<ChainInfo, ChainError>>),
    /// Run a chain-changing operation (invalidateblock, reconsiderblock);
    /// its events update the mempool, announcements and subscribers.
    ChainOp(ChainOpFn, Sender<Result<(), RejectError>>),
    /// Run a closure on the chain state (queries from RPC and the embedding
    /// API; it runs on the sync-manager thread between messages).
    WithChain(Box<dyn FnOnce(&mut ChainState) + Send>),
    /// Mine `count` regtest blocks paying to `script`, the first one with
    /// `txs`; reply with their hashes.
    Generate {
        /// Blocks to mine.
        count: u32,
        /// Coinbase output script.
        script: bitcoin::ScriptBuf,
        /// Transactions for the first block.
        txs: Vec<bitcoin::Transaction>,
        /// Where the hashes (or the error) go.
        reply: Sender<Result<Vec<BlockHash>, GenerateError>>,
    },
    /// From a peer's writer: its send queue is back within its budget
    /// (pause-send is over); serve the `getdata` deferred for it.
    SendDrained(PeerId),
    /// Stop the thread.
    Shutdown,
}

/// Peers' reader threads deliver into the sync manager's inbox, behind the
/// peer handler's `NewPeer` on the same FIFO channel.
impl MessageSink for Sender<SyncMsg> {
    fn deliver(&self, peer: Arc<Peer>, msg: NetworkMessage) -> bool {
        self.send(SyncMsg::Message(peer, msg)).is_ok()
    }

    fn send_drained(&self, peer: PeerId) {
        let _ = self.try_send(SyncMsg::SendDrained(peer));
    }
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
    /// Peers disconnected because a requested block missed its deadline.
    pub block_timeouts: u64,
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
    /// Height of the best header it announced that we accepted, -1 if none
    /// (Core's `synced_headers`).
    pub synced_headers: i32,
    /// Height of the best block we know it has, -1 if none (Core's
    /// `synced_blocks`: the last common block with our active chain).
    pub synced_blocks: i32,
    /// Heights of the blocks requested from it and not yet received
    /// (Core's `inflight`).
    pub inflight: Vec<u32>,
}

/// The chain's position, as reported by [`SyncMsg::UtxoDigest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// Active tip.
    pub tip: BlockHash,
    /// Active height.
    pub height: u32,
    /// Digest of the UTXO set at the tip (see `store::Store::utxo_digest`).
    pub utxo_digest: bitcoin::hashes::sha256d::Hash,
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
    /// Our best (active) height.
    pub best_height: i32,
    /// Active tip.
    pub tip: BlockHash,
    /// Height of the best known header.
    pub best_header_height: u32,
    /// Blocks requested and not yet received.
    pub blocks_in_flight: usize,
    /// The last rejected headers/blocks, newest last: hash and Core's reason.
    pub recent_rejects: Vec<(BlockHash, String)>,
}

/// How many rejections [`SyncSnapshot::recent_rejects`] keeps.
pub const RECENT_REJECTS: usize = 32;

struct KnownPeer {
    peer: Arc<Peer>,
    candidate: bool,
    /// The last header this peer announced that we accepted (Core's
    /// `pindexBestKnownBlock`, without the work comparison): it has that
    /// block and its ancestors.
    best_known: Option<BlockHash>,
}

/// What one deferred `getdata` item counts against its peer's receive
/// budget: its size on the wire (4-byte type, 32-byte hash).
const DEFERRED_ITEM_BYTES: u64 = 36;

/// Most steps [`SyncManager::peer_has_block`] walks back from a peer's best
/// known header (one `headers` message).
const MAX_ANCESTOR_WALK: u32 = MAX_HEADERS as u32;

/// Configuration of the sync manager.
pub(crate) struct SyncConfig {
    pub stall_timeout: Duration,
    /// Base deadline of a block request (Core: target spacing ×
    /// `BLOCK_DOWNLOAD_TIMEOUT_BASE` = 10 min), plus half of it
    /// (`BLOCK_DOWNLOAD_TIMEOUT_PER_PEER` 0.5) per other peer with blocks in
    /// flight. Core also has a 2 s (doubling to 64 s) *stalling* window for
    /// the peer that blocks its 1,024-block download window; strand's
    /// window is small and served in order, so one deadline per request
    /// covers both cases.
    pub block_download_timeout: Duration,
    pub best_height: Arc<AtomicI32>,
    /// Most blocks in flight at once.
    pub download_window: usize,
    /// The mempool (shared with the peer handler for orphan eviction and
    /// with RPC readers; see `mempool::SharedMempool` for the lock rule).
    pub mempool: SharedMempool,
    /// Where block and transaction events are published.
    pub events: crate::events::EventBus,
    /// Called once on a fatal chain error with the reason (the node's
    /// AbortNode: latch the reason, stop taking peers).
    pub on_fatal: Box<dyn Fn(&str) + Send>,
    /// Test builds only: report a fatal store error once the active chain
    /// reaches this height (`Config::test_fault_height`).
    #[cfg(feature = "test-util")]
    pub fault_height: Option<u32>,
}

/// The sync manager's state; owned by its thread.
pub(crate) struct SyncManager {
    cfg: SyncConfig,
    chain: ChainState,
    peers: HashMap<PeerId, KnownPeer>,
    sync_peer: Option<PeerId>,
    /// When the sync peer last delivered something we asked for.
    last_progress: Instant,
    /// Whether a `getheaders` to the sync peer is unanswered.
    headers_requested: bool,
    /// Blocks asked for: from whom, and by when they must arrive.
    in_flight: HashMap<BlockHash, (PeerId, Instant)>,
    ibd: bool,
    anomalies: Anomalies,
    counters: SyncCounters,
    failed: bool,
    rejects: std::collections::VecDeque<(BlockHash, String)>,
    /// `getdata` items left for later while their peer was paused for
    /// sending (Core's `vRecvGetData`), oldest first.
    deferred_getdata: HashMap<PeerId, (Arc<Peer>, VecDeque<Inventory>)>,
}

impl SyncManager {
    pub(crate) fn new(cfg: SyncConfig, chain: ChainState) -> SyncManager {
        cfg.best_height
            .store(chain.height() as i32, Ordering::Relaxed);
        SyncManager {
            cfg,
            chain,
            peers: HashMap::new(),
            sync_peer: None,
            last_progress: Instant::now(),
            headers_requested: false,
            in_flight: HashMap::new(),
            ibd: true,
            anomalies: Anomalies::default(),
            counters: SyncCounters::default(),
            failed: false,
            rejects: std::collections::VecDeque::new(),
            deferred_getdata: HashMap::new(),
        }
    }

    /// The thread body.
    pub(crate) fn run(mut self, inbox: Receiver<SyncMsg>) {
        let tick = Duration::from_millis(250).min(self.cfg.stall_timeout);
        loop {
            match inbox.recv_timeout(tick) {
                Ok(SyncMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.check_stall();
            self.check_block_timeouts();
            if !self.deferred_getdata.is_empty() {
                self.serve_deferred_getdata();
            }
            #[cfg(feature = "test-util")]
            self.check_injected_fault();
        }
        if let Err(e) = self.chain.flush() {
            log::error!("flushing the chain state at shutdown failed: {e}");
        }
        log::debug!("sync manager stopped");
    }

    pub(crate) fn handle(&mut self, msg: SyncMsg) {
        match msg {
            SyncMsg::NewPeer(peer) => self.handle_new_peer(peer),
            SyncMsg::DonePeer(id) => self.handle_done_peer(id),
            SyncMsg::Message(peer, msg) => {
                let from = Arc::clone(&peer);
                self.handle_message(peer, msg);
                // Its bytes leave the peer's receive budget (pause-recv).
                from.received_processed();
            }
            // The loop serves deferred getdata after every message.
            SyncMsg::SendDrained(_) => {}
            SyncMsg::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            SyncMsg::SubmitBlock(block, reply) => {
                let result = self.process_block(None, *block);
                let _ = reply.send(result);
            }
            SyncMsg::UtxoDigest(reply) => {
                let r = self
                    .chain
                    .utxo_digest()
                    .map(|(tip, utxo_digest)| ChainInfo {
                        tip,
                        height: self.chain.height(),
                        utxo_digest,
                    });
                let _ = reply.send(r);
            }
            SyncMsg::WithChain(f) => f(&mut self.chain),
            SyncMsg::ChainOp(op, reply) => {
                let r = op(&mut self.chain).map(|events| self.on_chain_events(&events, None));
                let _ = reply.send(r);
            }
            SyncMsg::SubmitTx(tx, reply) => {
                let r = self.accept_tx(None, *tx);
                let _ = reply.send(r);
            }
            SyncMsg::Generate {
                count,
                script,
                mut txs,
                reply,
            } => {
                let mut hashes = Vec::new();
                let mut result = Ok(());
                for i in 0..count {
                    let mut block_txs = std::mem::take(&mut txs);
                    if i == 0 && block_txs.is_empty() {
                        block_txs = self.block_template_txs();
                    }
                    match crate::mining::generate_block(&mut self.chain, &script, block_txs) {
                        Ok((block, events)) => {
                            hashes.push(block.block_hash());
                            self.on_chain_events(&events, None);
                        }
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                let _ = reply.send(result.map(|()| hashes));
            }
            SyncMsg::Shutdown => {}
        }
    }

    fn best_height(&self) -> i32 {
        self.chain.height() as i32
    }

    fn is_candidate(&self, peer: &Peer) -> bool {
        let Some(v) = peer.remote_version() else {
            return false;
        };
        let serves =
            v.services.has(ServiceFlags::NETWORK) || v.services.has(ServiceFlags::NETWORK_LIMITED);
        serves && i64::from(v.start_height) > i64::from(self.chain.height())
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
        self.peers.insert(
            peer.id,
            KnownPeer {
                peer: Arc::clone(&peer),
                candidate,
                best_known: None,
            },
        );
        if candidate && self.sync_peer.is_none() {
            self.start_sync();
        } else if (candidate && !self.ibd) || (self.sync_peer.is_none() && serves_blocks(&peer)) {
            // Near the tip every peer ahead of us is worth asking: its
            // headers may start a reorganisation or extend our chain. With
            // no sync peer at all, ask anyone who serves blocks: its start
            // height may be stale (it mined since the handshake).
            self.send_getheaders(&peer, self.chain.block_locator(), BlockHash::all_zeros());
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
        self.in_flight.retain(|_, (p, _)| *p != id);
        if self.sync_peer == Some(id) {
            self.sync_peer = None;
            self.headers_requested = false;
            self.start_sync();
            if self.sync_peer.is_none() && self.ibd {
                // Nobody left who is ahead of us: follow announcements from
                // whoever remains (btcd once stalled near the tip here).
                log::info!("sync peer peer={id} gone and no other peer is ahead; leaving initial block download");
                self.ibd = false;
            }
        }
    }

    fn handle_message(&mut self, peer: Arc<Peer>, msg: NetworkMessage) {
        if self.failed {
            return;
        }
        // Serving needs no registration: a request can overtake the
        // peer's NewPeer (it comes straight from the reader), and answering
        // it creates no state for the peer.
        match msg {
            NetworkMessage::GetHeaders(req) => {
                let fork = self.chain.find_fork(&req.locator_hashes);
                let headers = self.chain.active_headers(fork, MAX_HEADERS, &req.stop_hash);
                peer.send(NetworkMessage::Headers(headers));
                return;
            }
            NetworkMessage::GetData(items) => return self.handle_getdata(&peer, items),
            NetworkMessage::GetBlocks(req) => {
                // Core's ProcessGetBlocks: up to 500 hashes after the fork.
                let fork = self.chain.find_fork(&req.locator_hashes);
                let headers = self
                    .chain
                    .active_headers(fork, MAX_GETBLOCKS, &req.stop_hash);
                let hashes: Vec<BlockHash> = headers.iter().map(|h| h.block_hash()).collect();
                if hashes.len() == MAX_GETBLOCKS {
                    *peer.hash_continue.lock() = hashes.last().copied();
                }
                if !hashes.is_empty() {
                    peer.send(NetworkMessage::Inv(
                        hashes.into_iter().map(Inventory::Block).collect(),
                    ));
                }
                return;
            }
            NetworkMessage::MemPool => {
                // Core (net_processing.cpp, BIP35) answers `mempool` only
                // if it offers NODE_BLOOM or the peer has the `mempool`
                // permission; otherwise it disconnects the peer (unless
                // `noban`), without discouraging it. strand offers no bloom
                // filters and has no permissions: it always disconnects.
                if !local_services().has(ServiceFlags::BLOOM) {
                    log::debug!("{peer}: mempool request with bloom filters disabled");
                    peer.disconnect(DisconnectReason::ServiceNotOffered("mempool".into()));
                    return;
                }
                let filter = FeeRate(peer.fee_filter.load(Ordering::Relaxed).max(0) as u64);
                let wtxid = peer.wtxid_relay.load(Ordering::Relaxed);
                let inv = self.cfg.mempool.lock().inventory(wtxid, filter);
                for chunk in inv.chunks(50_000) {
                    peer.send(NetworkMessage::Inv(chunk.to_vec()));
                }
                return;
            }
            _ => {}
        }
        let id = peer.id;
        if !self.peers.contains_key(&id) {
            self.counters.message_unknown_peer += 1;
            log::debug!("sync: dropping '{}' from unknown peer={id}", msg.command());
            return;
        }
        match msg {
            NetworkMessage::Headers(headers) => self.handle_headers(&peer, headers),
            NetworkMessage::Block(block) => {
                let hash = block.block_hash();
                let requested = self.in_flight.remove(&hash).is_some();
                if self.sync_peer == Some(id) && requested {
                    self.last_progress = Instant::now();
                }
                if let Err(e) = self.process_block(Some(&peer), block) {
                    log::debug!("block {hash} from {peer}: {e}");
                }
                self.request_blocks(&peer);
            }
            NetworkMessage::Inv(items) => self.handle_inv(&peer, items),
            NetworkMessage::Tx(tx) => {
                if !self.ibd {
                    let _ = self.accept_tx(Some(&peer), tx);
                }
            }
            NetworkMessage::GetHeaders(req) => {
                let fork = self.chain.find_fork(&req.locator_hashes);
                let headers = self.chain.active_headers(fork, MAX_HEADERS, &req.stop_hash);
                peer.send(NetworkMessage::Headers(headers));
            }
            NetworkMessage::GetData(items) => self.handle_getdata(&peer, items),
            other => log::trace!("sync: ignoring '{}' from {}", other.command(), peer),
        }
    }

    fn send_getheaders(&self, peer: &Peer, locator: Vec<BlockHash>, stop: BlockHash) {
        peer.send(NetworkMessage::GetHeaders(GetHeadersMessage {
            version: PROTOCOL_VERSION,
            locator_hashes: locator,
            stop_hash: stop,
        }));
    }

    fn handle_headers(&mut self, peer: &Arc<Peer>, headers: Vec<Header>) {
        let from_sync_peer = self.sync_peer == Some(peer.id);
        if headers.len() > MAX_HEADERS {
            peer.disconnect(DisconnectReason::ProtocolViolation(format!(
                "{} headers in one message",
                headers.len()
            )));
            return;
        }
        let full = headers.len() == MAX_HEADERS;
        let last = headers.last().map(|h| h.block_hash());
        match self.chain.process_headers(&headers) {
            Ok(outcome) => {
                if from_sync_peer {
                    self.last_progress = Instant::now();
                }
                let _ = outcome;
                if let (Some(last), Some(k)) = (last, self.peers.get_mut(&peer.id)) {
                    k.best_known = Some(last);
                }
            }
            Err(RejectError::UnknownParent(_)) => {
                // Headers that do not connect: ask where they come from.
                self.send_getheaders(peer, self.chain.block_locator(), BlockHash::all_zeros());
                return;
            }
            Err(RejectError::Invalid(e)) => {
                log::info!("invalid header from {peer}: {e}");
                if let Some(h) = headers.first() {
                    self.record_reject(h.block_hash(), &e.to_string());
                }
                if e.punish_peer() {
                    peer.disconnect(DisconnectReason::Misbehaving(format!(
                        "invalid header: {e}"
                    )));
                }
                return;
            }
            Err(RejectError::Chain(e)) => return self.fatal(&e.to_string()),
        }
        if full {
            if let Some(last) = last {
                let mut locator = vec![last];
                locator.extend(self.chain.block_locator());
                self.send_getheaders(peer, locator, BlockHash::all_zeros());
                if from_sync_peer {
                    self.headers_requested = true;
                }
                return;
            }
        }
        if from_sync_peer {
            self.headers_requested = false;
            log::debug!(
                "headers synced with {peer} at height {}",
                self.chain.best_header_height()
            );
            if self.chain.tip() == self.chain.best_header() {
                self.refresh_candidates();
                self.on_caught_up();
                return;
            }
        }
        self.request_blocks(peer);
    }

    fn handle_inv(&mut self, peer: &Arc<Peer>, items: Vec<Inventory>) {
        // Oversized invs never get here: the reader drops their sender.
        let unknown = items.iter().rev().find_map(|i| match i {
            Inventory::Block(h) | Inventory::WitnessBlock(h) if self.chain.entry(h).is_none() => {
                Some(*h)
            }
            _ => None,
        });
        if !self.ibd {
            // Core: on a wtxid-relay connection only MSG_WTX announces a
            // transaction, on any other only MSG_TX; the wrong kind is ignored.
            let wtxid_relay = peer.wtxid_relay.load(Ordering::Relaxed);
            let mempool = self.cfg.mempool.lock();
            let wanted: Vec<Inventory> = items
                .iter()
                .filter(|i| match i {
                    Inventory::Transaction(t) | Inventory::WitnessTransaction(t)
                        if !wtxid_relay =>
                    {
                        !mempool.contains(t) && !mempool.orphans().contains(t)
                    }
                    Inventory::WTx(w) if wtxid_relay => !mempool.contains_wtxid(w),
                    _ => false,
                })
                .map(|i| match i {
                    Inventory::Transaction(t) => Inventory::WitnessTransaction(*t),
                    other => *other,
                })
                .collect();
            drop(mempool);
            if !wanted.is_empty() {
                peer.send(NetworkMessage::GetData(wanted));
            }
        }
        if let Some(hash) = unknown {
            if self.follows(peer.id) {
                self.send_getheaders(peer, self.chain.block_locator(), hash);
            }
        }
    }

    /// Core's `ProcessGetData`: items are served in order while the peer
    /// is not paused for sending; the rest are deferred (see the module
    /// docs). A `getdata` arriving while items are deferred queues behind
    /// them.
    fn handle_getdata(&mut self, peer: &Arc<Peer>, items: Vec<Inventory>) {
        if items.len() > crate::peer::conn::MAX_INV_SZ {
            peer.disconnect(DisconnectReason::ProtocolViolation(
                "getdata too large".into(),
            ));
            return;
        }
        if let Some((_, queue)) = self.deferred_getdata.get_mut(&peer.id) {
            peer.charge_received(DEFERRED_ITEM_BYTES * items.len() as u64);
            queue.extend(items);
            return;
        }
        let mut queue: VecDeque<Inventory> = items.into();
        self.serve_getdata(peer, &mut queue);
        if !queue.is_empty() {
            peer.charge_received(DEFERRED_ITEM_BYTES * queue.len() as u64);
            self.deferred_getdata
                .insert(peer.id, (Arc::clone(peer), queue));
        }
    }

    /// Serves the deferred `getdata` of every peer no longer paused for
    /// sending; forgets those of closed peers.
    fn serve_deferred_getdata(&mut self) {
        let ids: Vec<PeerId> = self.deferred_getdata.keys().copied().collect();
        for id in ids {
            let Some((peer, mut queue)) = self.deferred_getdata.remove(&id) else {
                continue;
            };
            if peer.is_closed() || self.failed {
                continue;
            }
            if !peer.pause_send() {
                let before = queue.len();
                self.serve_getdata(&peer, &mut queue);
                peer.uncharge_received(DEFERRED_ITEM_BYTES * (before - queue.len()) as u64);
            }
            if !queue.is_empty() {
                self.deferred_getdata.insert(id, (peer, queue));
            }
        }
    }

    /// Serves `items` from the front until done or the peer is paused for
    /// sending (then it is flagged so its writer reports the drain).
    fn serve_getdata(&mut self, peer: &Arc<Peer>, items: &mut VecDeque<Inventory>) {
        let mut not_found = Vec::new();
        while let Some(&item) = items.front() {
            if peer.pause_send() {
                // Core: `if (pfrom.fPauseSend) break;`. Flag first, then
                // look again, so a drain in between is not missed.
                peer.getdata_deferred.store(true, Ordering::SeqCst);
                if peer.pause_send() {
                    break;
                }
                peer.getdata_deferred.store(false, Ordering::SeqCst);
            }
            items.pop_front();
            match item {
                Inventory::Block(h) | Inventory::WitnessBlock(h) => {
                    // Core's BlockRequestAllowed: never a block whose
                    // scripts were not checked. (Core stays silent then;
                    // strand answers `notfound`, as btcd does, so the
                    // requester need not wait for a timeout.)
                    if !self.chain.block_request_allowed(&h) {
                        log::debug!("{peer}: not serving unvalidated block {h}");
                        not_found.push(item);
                        continue;
                    }
                    match self.chain.block_bytes(&h) {
                        Ok(Some(raw)) => match bitcoin::consensus::deserialize::<Block>(&raw) {
                            Ok(mut block) => {
                                if matches!(item, Inventory::Block(_)) {
                                    // Core: MSG_BLOCK gets TX_NO_WITNESS,
                                    // MSG_WITNESS_BLOCK TX_WITH_WITNESS.
                                    strip_witnesses(&mut block);
                                }
                                if !peer.send(NetworkMessage::Block(block)) {
                                    items.clear();
                                    return;
                                }
                                let mut cont = peer.hash_continue.lock();
                                if *cont == Some(h) {
                                    *cont = None;
                                    drop(cont);
                                    let tip = self.chain.tip();
                                    peer.send(NetworkMessage::Inv(vec![Inventory::Block(tip)]));
                                }
                            }
                            Err(e) => {
                                log::error!("stored block {h} does not decode: {e}");
                                not_found.push(item);
                            }
                        },
                        Ok(None) => not_found.push(item),
                        Err(e) => {
                            items.clear();
                            return self.fatal(&e.to_string());
                        }
                    }
                }
                Inventory::Transaction(t) | Inventory::WitnessTransaction(t) => {
                    let tx = self.cfg.mempool.lock().get(&t).cloned();
                    match tx {
                        Some(tx) => {
                            peer.send(NetworkMessage::Tx(tx));
                        }
                        None => not_found.push(item),
                    }
                }
                Inventory::WTx(w) => {
                    let tx = self.cfg.mempool.lock().get_by_wtxid(&w).cloned();
                    match tx {
                        Some(tx) => {
                            peer.send(NetworkMessage::Tx(tx));
                        }
                        None => not_found.push(item),
                    }
                }
                other => not_found.push(other),
            }
        }
        if !not_found.is_empty() {
            peer.send(NetworkMessage::NotFound(not_found));
        }
    }

    /// Validates a block (from `peer`, or local when `None`), handles the
    /// resulting chain events.
    fn process_block(
        &mut self,
        peer: Option<&Arc<Peer>>,
        block: Block,
    ) -> Result<Vec<ChainEvent>, RejectError> {
        let hash = block.block_hash();
        match self.chain.accept_block(block) {
            Ok(events) => {
                self.on_chain_events(&events, peer.map(|p| p.id));
                Ok(events)
            }
            Err(RejectError::Invalid(e)) => {
                self.record_reject(hash, &e.to_string());
                if let Some(p) = peer {
                    log::info!("invalid block {hash} from {p}: {e}");
                    if e.punish_peer() {
                        p.disconnect(DisconnectReason::Misbehaving(format!("invalid block: {e}")));
                    }
                }
                Err(RejectError::Invalid(e))
            }
            Err(RejectError::UnknownParent(prev)) => {
                if let Some(p) = peer {
                    self.send_getheaders(p, self.chain.block_locator(), BlockHash::all_zeros());
                }
                Err(RejectError::UnknownParent(prev))
            }
            Err(RejectError::Chain(e)) => {
                self.fatal(&e.to_string());
                Err(RejectError::Chain(e))
            }
        }
    }

    /// Keeps the mempool in step with the chain: mined and conflicting
    /// transactions leave, transactions of disconnected blocks come back.
    fn update_mempool(&mut self, events: &[ChainEvent]) {
        {
            // During initial download the pool is empty: do not read back
            // (and so commit) every connected block for nothing.
            let pool = self.cfg.mempool.lock();
            let disconnects = events
                .iter()
                .any(|e| matches!(e, ChainEvent::Disconnected { .. }));
            if pool.is_empty() && pool.orphans().is_empty() && !disconnects {
                return;
            }
        }
        let mut readd = Vec::new();
        for ev in events {
            match ev {
                ChainEvent::Connected { hash, .. } => {
                    if let Ok(Some(raw)) = self.chain.block_bytes(hash) {
                        if let Ok(block) = bitcoin::consensus::deserialize::<Block>(&raw) {
                            let mut pool = self.cfg.mempool.lock();
                            pool.remove_for_block(&block);
                            pool.orphans_mut().erase_for_block(&block);
                        }
                    }
                }
                ChainEvent::Disconnected { hash, .. } => {
                    if let Ok(Some(raw)) = self.chain.block_bytes(hash) {
                        if let Ok(block) = bitcoin::consensus::deserialize::<Block>(&raw) {
                            readd.extend(block.txdata.into_iter().skip(1));
                        }
                    }
                }
                ChainEvent::Invalid { .. } => {}
            }
        }
        if !readd.is_empty() {
            let params = self.chain.params().clone();
            let ctx = self.accept_context(&params);
            let mempool = self.cfg.mempool.clone();
            let mut pool = mempool.lock();
            pool.readd_for_reorg(readd, &mut self.chain, &ctx);
            pool.remove_invalid_at_tip(&mut self.chain, &ctx);
        }
    }

    fn accept_context<'p>(&self, params: &'p crate::chain::ChainParams) -> AcceptContext<'p> {
        let height = self.chain.height() + 1;
        AcceptContext {
            height,
            median_time_past: i64::from(
                self.chain
                    .median_time_past(self.chain.height())
                    .unwrap_or(0),
            ),
            script_flags: crate::chain::script::script_flags_for_height(height, params),
            params,
            time: crate::util::unix_time(),
        }
    }

    /// Accepts a transaction (from `peer`, or local) with its orphans, and
    /// relays what was accepted. Returns the outcome for `tx` itself.
    fn accept_tx(
        &mut self,
        peer: Option<&Arc<Peer>>,
        tx: bitcoin::Transaction,
    ) -> Result<bitcoin::Txid, MempoolReject> {
        let params = self.chain.params().clone();
        let ctx = self.accept_context(&params);
        let source = peer.map_or(0, |p| p.id);
        let mempool = self.cfg.mempool.clone();
        let results = mempool
            .lock()
            .accept_with_orphans(tx, source, &mut self.chain, &ctx);
        let mut first = None;
        for (txid, r) in results {
            match &r {
                Ok(a) => {
                    if let Some(p) = peer {
                        p.last_tx_time
                            .store(crate::util::unix_time(), Ordering::Relaxed);
                    }
                    self.cfg
                        .events
                        .publish(crate::events::NodeEvent::TransactionAccepted {
                            txid: a.txid,
                            wtxid: a.wtxid,
                        });
                    self.relay_tx(
                        a.txid,
                        a.wtxid,
                        FeeRate::from_fee(a.fee.to_sat(), a.vsize),
                        peer.map(|p| p.id),
                    );
                }
                Err(e) => {
                    if let (Some(p), true) = (peer, e.punish_peer()) {
                        log::info!("invalid transaction {txid} from {p}: {e}");
                        p.disconnect(DisconnectReason::Misbehaving(format!(
                            "invalid transaction: {e}"
                        )));
                    } else {
                        log::debug!("transaction {txid} not accepted: {e}");
                    }
                }
            }
            if first.is_none() {
                first = Some(r.map(|a| a.txid));
            }
        }
        first.unwrap_or(Err(MempoolReject::MissingInputs(Vec::new())))
    }

    /// Mempool transactions for a new block, parents first, within the
    /// block weight limit (Core's block assembly, without fee ordering).
    fn block_template_txs(&self) -> Vec<bitcoin::Transaction> {
        let pool = self.cfg.mempool.lock();
        let mut weight = 4_000u64; // header and coinbase allowance
        let mut out = Vec::new();
        for item in pool.inventory(false, FeeRate(0)) {
            let Inventory::Transaction(txid) = item else {
                continue;
            };
            let Some(tx) = pool.get(&txid) else {
                continue;
            };
            let w = tx.weight().to_wu();
            if weight + w > crate::chain::check::MAX_BLOCK_WEIGHT {
                break;
            }
            weight += w;
            out.push(tx.clone());
        }
        out
    }

    /// Announces an accepted transaction to every known peer but its source
    /// that wants transactions and whose fee filter it passes (BIP133,
    /// BIP339: wtxid to peers that negotiated `wtxidrelay`).
    fn relay_tx(
        &self,
        txid: bitcoin::Txid,
        wtxid: bitcoin::Wtxid,
        rate: FeeRate,
        source: Option<PeerId>,
    ) {
        for k in self.peers.values() {
            let p = &k.peer;
            if Some(p.id) == source || p.is_closed() {
                continue;
            }
            if !p.remote_version().is_some_and(|v| v.relay) {
                continue;
            }
            if rate < FeeRate(p.fee_filter.load(Ordering::Relaxed).max(0) as u64) {
                continue;
            }
            let item = if p.wtxid_relay.load(Ordering::Relaxed) {
                Inventory::WTx(wtxid)
            } else {
                Inventory::Transaction(txid)
            };
            p.send(NetworkMessage::Inv(vec![item]));
        }
    }

    fn on_chain_events(&mut self, events: &[ChainEvent], source: Option<PeerId>) {
        for ev in events {
            match ev {
                ChainEvent::Connected { hash, height } => {
                    self.cfg
                        .events
                        .publish(crate::events::NodeEvent::BlockConnected {
                            hash: *hash,
                            height: *height,
                        })
                }
                ChainEvent::Disconnected { hash, height } => {
                    self.cfg
                        .events
                        .publish(crate::events::NodeEvent::BlockDisconnected {
                            hash: *hash,
                            height: *height,
                        })
                }
                ChainEvent::Invalid { .. } => {}
            }
        }
        self.update_mempool(events);
        let connected = events
            .iter()
            .any(|e| matches!(e, ChainEvent::Connected { .. }));
        if !connected {
            return;
        }
        if let Some(p) = source.and_then(|id| self.peers.get(&id)) {
            p.peer
                .last_block_time
                .store(crate::util::unix_time(), Ordering::Relaxed);
        }
        self.cfg
            .best_height
            .store(self.chain.height() as i32, Ordering::Relaxed);
        self.refresh_candidates();
        if self.chain.tip() == self.chain.best_header() && !self.headers_requested {
            self.on_caught_up();
        }
        if !self.ibd {
            self.announce_tip(source);
        }
    }

    /// Tells every peer but `source` about our new tip: `headers` to those
    /// that asked for them (BIP130), `inv` to the others.
    fn announce_tip(&self, source: Option<PeerId>) {
        let tip = self.chain.tip();
        let Some(entry) = self.chain.entry(&tip) else {
            return;
        };
        let header = entry.header;
        for k in self.peers.values() {
            if Some(k.peer.id) == source || k.peer.is_closed() {
                continue;
            }
            if k.peer.send_headers.load(Ordering::Relaxed) {
                k.peer.send(NetworkMessage::Headers(vec![header]));
            } else {
                k.peer
                    .send(NetworkMessage::Inv(vec![Inventory::Block(tip)]));
            }
        }
    }

    /// Fills the download window with blocks of the best header chain,
    /// asked from `peer` (the sync peer during IBD, any announcer after).
    fn request_blocks(&mut self, peer: &Arc<Peer>) {
        if !self.follows(peer.id) || peer.is_closed() || peer.disconnect_reason().is_some() {
            return;
        }
        let room = self
            .cfg
            .download_window
            .saturating_sub(self.in_flight.len());
        if room == 0 {
            return;
        }
        let in_flight = &self.in_flight;
        let wanted = self
            .chain
            .blocks_to_download(room, &|h| in_flight.contains_key(h));
        if wanted.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.download_timeout(peer.id);
        for h in &wanted {
            self.in_flight.insert(*h, (peer.id, deadline));
        }
        let items = wanted.into_iter().map(Inventory::WitnessBlock).collect();
        peer.send(NetworkMessage::GetData(items));
    }

    /// We hold every block of the best header chain and the sync peer has
    /// no more headers: switch to a candidate that claims to be further
    /// ahead, or leave initial block download.
    fn on_caught_up(&mut self) {
        let ahead = self
            .peers
            .values()
            .any(|k| k.candidate && !k.peer.is_closed() && Some(k.peer.id) != self.sync_peer);
        if ahead {
            if let Some(old) = self.sync_peer.take() {
                log::info!("caught up with sync peer peer={old}; another peer is further ahead");
            }
            self.start_sync();
            if self.sync_peer.is_some() {
                return;
            }
        }
        if self.ibd {
            log::info!(
                "caught up with the best header at height {}; leaving initial block download",
                self.chain.height()
            );
            self.ibd = false;
        }
    }

    /// Whether announcements from `peer` are followed: during initial block
    /// download only the sync peer's; otherwise (or with no sync peer at
    /// all) everyone's.
    fn follows(&self, peer: PeerId) -> bool {
        !self.ibd || self.sync_peer.is_none_or(|s| s == peer)
    }

    /// Peers whose start height we have reached stop being candidates.
    fn refresh_candidates(&mut self) {
        let height = self.chain.height();
        for k in self.peers.values_mut() {
            let ahead = k
                .peer
                .remote_version()
                .is_some_and(|v| i64::from(v.start_height) > i64::from(height));
            if !ahead {
                k.candidate = false;
            }
        }
    }

    fn record_reject(&mut self, hash: BlockHash, reason: &str) {
        if self.rejects.len() == RECENT_REJECTS {
            self.rejects.pop_front();
        }
        self.rejects.push_back((hash, reason.to_string()));
    }

    /// Core's `AbortNode`: a fatal chain error (store write failed, corrupt
    /// entry). Logs the reason, stops block processing, publishes
    /// [`crate::events::NodeEvent::Fatal`] and runs the node's abort hook,
    /// which stops it taking peers; the node then shuts down (the binary
    /// exits non-zero) and the chain state is flushed as far as it can be
    /// at the end of [`SyncManager::run`]. Later failures are only logged.
    fn fatal(&mut self, what: &str) {
        if self.failed {
            log::error!("after the fatal error, also: {what}");
            return;
        }
        self.failed = true;
        self.deferred_getdata.clear();
        log::error!("fatal error, shutting down: {what}");
        self.cfg.events.publish(crate::events::NodeEvent::Fatal {
            reason: what.to_string(),
        });
        (self.cfg.on_fatal)(what);
    }

    /// Test builds: the injected store fault of `Config::test_fault_height`.
    #[cfg(feature = "test-util")]
    fn check_injected_fault(&mut self) {
        if let Some(h) = self.cfg.fault_height {
            if !self.failed && self.chain.height() >= h {
                self.fatal(&format!(
                    "injected fault: store write failed at height {} (--testfaultheight)",
                    self.chain.height()
                ));
            }
        }
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
        self.headers_requested = true;
        self.last_progress = Instant::now();
        self.send_getheaders(&peer, self.chain.block_locator(), BlockHash::all_zeros());
        self.request_blocks(&peer);
    }

    fn check_stall(&mut self) {
        let Some(id) = self.sync_peer else {
            return;
        };
        let waiting = self.headers_requested || self.in_flight.values().any(|(p, _)| *p == id);
        if !waiting {
            self.last_progress = Instant::now();
            return;
        }
        if self.last_progress.elapsed() < self.cfg.stall_timeout {
            return;
        }
        self.counters.stalls += 1;
        if let Some(k) = self.peers.get_mut(&id) {
            log::info!(
                "sync peer {} made no progress for {:?}; disconnecting",
                k.peer,
                self.cfg.stall_timeout
            );
            k.peer.disconnect(DisconnectReason::Stalled);
            // Its DonePeer will pick the next sync peer; never this one again.
            k.candidate = false;
        }
        self.last_progress = Instant::now();
    }

    /// The deadline of a block request to `peer`: Core's
    /// `BLOCK_DOWNLOAD_TIMEOUT_BASE` (1) plus `BLOCK_DOWNLOAD_TIMEOUT_PER_PEER`
    /// (0.5) per other peer with blocks in flight, in units of the
    /// configured base (Core: one target spacing).
    fn download_timeout(&self, peer: PeerId) -> Duration {
        let mut others: Vec<PeerId> = self
            .in_flight
            .values()
            .map(|(p, _)| *p)
            .filter(|p| *p != peer)
            .collect();
        others.sort_unstable();
        others.dedup();
        let base = self.cfg.block_download_timeout;
        base + base / 2 * others.len().min(125) as u32
    }

    /// Whether `peer` announced a header chain containing `hash`.
    fn peer_has_block(&self, peer: &KnownPeer, hash: &BlockHash) -> bool {
        let (Some(best), Some(target)) = (peer.best_known, self.chain.entry(hash)) else {
            return false;
        };
        let mut cur = best;
        for _ in 0..=MAX_ANCESTOR_WALK {
            if cur == *hash {
                return true;
            }
            match self.chain.entry(&cur) {
                Some(e) if e.height > target.height => cur = e.header.prev_blockhash,
                _ => return false,
            }
        }
        false
    }

    /// Disconnects every peer holding a block request past its deadline and
    /// asks for those blocks again from a peer that has them (the sync peer
    /// first), so one withholding peer cannot stop the chain.
    fn check_block_timeouts(&mut self) {
        let now = Instant::now();
        let late: Vec<(BlockHash, PeerId)> = self
            .in_flight
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(h, (p, _))| (*h, *p))
            .collect();
        if late.is_empty() {
            return;
        }
        let mut stallers: Vec<PeerId> = late.iter().map(|(_, p)| *p).collect();
        stallers.sort_unstable();
        stallers.dedup();
        for id in &stallers {
            self.in_flight.retain(|_, (p, _)| p != id);
            self.counters.block_timeouts += 1;
            if let Some(k) = self.peers.get_mut(id) {
                log::info!(
                    "{} did not deliver a requested block in time; disconnecting",
                    k.peer
                );
                k.peer.disconnect(DisconnectReason::BlockDownloadTimeout);
                k.candidate = false;
            }
        }
        for (hash, _) in late {
            if self.in_flight.contains_key(&hash) {
                continue;
            }
            let mut choices: Vec<&KnownPeer> = self
                .peers
                .values()
                .filter(|k| {
                    !stallers.contains(&k.peer.id)
                        && !k.peer.is_closed()
                        && k.peer.disconnect_reason().is_none()
                        && serves_blocks(&k.peer)
                        && (Some(k.peer.id) == self.sync_peer || self.peer_has_block(k, &hash))
                })
                .collect();
            choices.sort_by_key(|k| (Some(k.peer.id) != self.sync_peer, k.peer.id));
            let Some(next) = choices.first().map(|k| Arc::clone(&k.peer)) else {
                log::debug!("no other peer has block {hash}; waiting for an announcement");
                continue;
            };
            log::debug!("asking {next} for block {hash} after a timeout");
            self.request_blocks(&next);
        }
    }

    fn snapshot(&self) -> SyncSnapshot {
        let mut peers: Vec<_> = self
            .peers
            .values()
            .map(|k| {
                let best = k
                    .best_known
                    .and_then(|h| self.chain.entry(&h).map(|e| (h, e.height)));
                let synced_headers = best.map_or(-1, |(_, height)| height as i32);
                let synced_blocks = best
                    .and_then(|(hash, _)| self.chain.last_common_height(&hash))
                    .map_or(-1, |h| h as i32);
                let mut inflight: Vec<u32> = self
                    .in_flight
                    .iter()
                    .filter(|(_, (p, _))| *p == k.peer.id)
                    .filter_map(|(h, _)| self.chain.entry(h).map(|e| e.height))
                    .collect();
                inflight.sort_unstable();
                SyncPeerInfo {
                    id: k.peer.id,
                    candidate: k.candidate,
                    closed: k.peer.is_closed(),
                    synced_headers,
                    synced_blocks,
                    inflight,
                }
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
            tip: self.chain.tip(),
            best_header_height: self.chain.best_header_height(),
            blocks_in_flight: self.in_flight.len(),
            recent_rejects: self.rejects.iter().cloned().collect(),
        }
    }
}

/// Drops every input's witness: the block as a pre-segwit peer (one that
/// asked with `MSG_BLOCK`) sees it. Its hash (the header's) is unchanged;
/// its serialization is Core's `TX_NO_WITNESS`.
fn strip_witnesses(block: &mut Block) {
    for tx in &mut block.txdata {
        for input in &mut tx.input {
            input.witness.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> (SyncManager, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let chain = ChainState::open(
            dir.path(),
            crate::config::Network::Regtest,
            crate::chain::state::ChainOptions {
                script_threads: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let m = SyncManager::new(
            SyncConfig {
                stall_timeout: Duration::from_secs(60),
                block_download_timeout: Duration::from_secs(600),
                best_height: Arc::new(AtomicI32::new(0)),
                download_window: 16,
                mempool: SharedMempool::new(crate::mempool::Mempool::new(Default::default())),
                events: Default::default(),
                on_fatal: Box::new(|_| {}),
                #[cfg(feature = "test-util")]
                fault_height: None,
            },
            chain,
        );
        (m, dir)
    }

    #[test]
    fn done_for_unknown_peer_is_counted() {
        let (mut m, _dir) = manager();
        m.handle(SyncMsg::DonePeer(42));
        assert_eq!(m.snapshot().anomalies.done_peer_unknown, 1);
    }

    #[test]
    fn new_peer_after_done_is_counted_and_not_registered() {
        let (mut m, _dir) = manager();
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
        let (mut m, _dir) = manager();
        let p = Arc::new(Peer::detached(3, Direction::Inbound));
        m.handle(SyncMsg::Message(p, NetworkMessage::Headers(vec![])));
        let s = m.snapshot();
        assert_eq!(s.counters.message_unknown_peer, 1);
        assert!(s.peers.is_empty());
    }
}
