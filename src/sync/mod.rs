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
//! oldest connection. Headers come from the sync peer alone while it syncs
//! us (Core's single initial headers-sync peer); once the best header is
//! within 24 h of now every block-serving peer is asked for headers too
//! (Core's `fSyncStarted` rule), so that we learn what each one has. When
//! the sync peer is done (or stalls) the next candidate takes over; when
//! none is left, announcements from every remaining peer are followed
//! (btcd once stalled near the tip for want of that).
//!
//! Blocks are downloaded in parallel from every peer whose announced best
//! header includes them (see [`download`]: at most 16 in flight per peer,
//! within a 1,024-block window, a peer holding up the window disconnected
//! after the stalling timeout, every request under Core's block-download
//! timeout), and disconnected peers' blocks are asked from others at once.
//! A block nobody asked for is processed only as Core's `AcceptBlock`
//! allows (`ChainState::accept_block_requested`).
//!
//! Initial block download is Core's latch (`UpdateIBDStatus`): it ends the
//! first time the tip is within [`SyncConfig::max_tip_age`] (Core's
//! `DEFAULT_MAX_TIP_AGE`, 24 h) of now and has the network's minimum chain
//! work, checked at start (a restarted synced node is not in IBD), after
//! each connected block and on the tick, and it never resumes: a peer
//! announcing a higher start height makes it the sync peer, not the node
//! IBD again. While in IBD transactions are neither accepted from peers
//! nor requested, and new tips are not announced (Core). btcd's "no
//! candidate left" rule ends only the single-sync-peer mode, not IBD, since
//! Core would stay in IBD with an old tip.
//!
//! `headers` messages are handled in [`headers`] (Core's
//! `ProcessHeadersMessage`): low-work chains are pre-synced, not stored
//! (`chain::headers_sync`), unconnecting headers cost at most one
//! `getheaders` per two minutes, invalid headers discourage their sender.
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

pub mod download;
mod headers;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::ServiceFlags;
use bitcoin::{Block, BlockHash};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::chain::headers_sync::{HeadersSyncState, Phase};
use crate::chain::state::{ChainError, ChainEvent, ChainState, RejectError};
use crate::mempool::{AcceptContext, FeeRate, MempoolReject, SharedMempool};
use crate::mining::GenerateError;
use crate::peer::conn::PROTOCOL_VERSION;
use crate::peer::{local_services, Direction, DisconnectReason, MessageSink, Peer, PeerId};
use download::{BlocksInFlight, MAX_BLOCKS_IN_TRANSIT_PER_PEER};

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
    /// Headers checked in pre-sync (low-work chains) and not stored.
    pub presync_headers: u64,
    /// Peers whose header chain ended below the anti-DoS work threshold
    /// (ignored, or pre-synced to its end): nothing of it was stored.
    pub low_work_chains: u64,
    /// Pre-syncs aborted on what the peer sent (invalid header, redownload
    /// differing from pre-sync, chain longer than time allows).
    pub presync_aborted: u64,
    /// `headers` messages whose first header's parent was unknown.
    pub unconnecting_headers: u64,
    /// Peers disconnected for holding up the download window past the
    /// stalling timeout.
    pub download_stalls: u64,
    /// Block requests freed by the asked peer's `notfound`.
    pub notfound_blocks: u64,
    /// Unrequested blocks whose bodies were dropped (Core's `AcceptBlock`).
    pub unrequested_dropped: u64,
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
    /// Height its headers pre-sync reached, -1 if none is in its first
    /// phase (Core's `presynced_headers`).
    pub presynced_headers: i64,
    /// Bytes its headers pre-sync holds (0 if none): bounded by Core's
    /// commitment and redownload-buffer numbers.
    pub headers_sync_bytes: usize,
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
    /// Accepted blocks held in memory until they connect.
    pub pending_blocks: usize,
    /// Their serialized bytes (at most `chain::state::MAX_PENDING_BYTES`).
    pub pending_bytes: usize,
    /// The current stalling timeout (2 s to 64 s).
    pub stalling_timeout: Duration,
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
    /// Its low-work headers pre-sync, if one is running (Core's
    /// `Peer::m_headers_sync`; see `chain::headers_sync`).
    headers_sync: Option<Box<HeadersSyncState>>,
    /// When we last sent it a `getheaders` that is not answered yet (Core's
    /// `m_last_getheaders_timestamp`; see `headers.rs`).
    last_getheaders: Option<Instant>,
}

/// How old the tip may be for the node to leave initial block download
/// (Core's `DEFAULT_MAX_TIP_AGE`, 24 h); also how recent the best header
/// must be before every peer is asked for headers (Core's 24 h in
/// `SendMessages`).
pub const DEFAULT_MAX_TIP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How often every peer is offered more blocks and the download deadlines
/// are checked (Core's message handler loop runs every 100 ms).
const DOWNLOAD_TICK: Duration = Duration::from_millis(100);

/// Items of a `notfound` message looked at: Core's
/// `MAX_PEER_TX_ANNOUNCEMENTS` (5,000) + `MAX_BLOCKS_IN_TRANSIT_PER_PEER`;
/// a longer one is ignored whole, as Core does.
const MAX_NOTFOUND_ITEMS: usize = 5_000 + MAX_BLOCKS_IN_TRANSIT_PER_PEER;

/// The most `block` messages taken from the inbox and accepted before the
/// chain is activated once (`SyncManager::handle_block_batch`): a peer's
/// whole download window, Core's `MAX_BLOCKS_IN_TRANSIT_PER_PEER` (16).
const MAX_BLOCK_BATCH: usize = MAX_BLOCKS_IN_TRANSIT_PER_PEER;

/// What one deferred `getdata` item counts against its peer's receive
/// budget: its size on the wire (4-byte type, 32-byte hash).
const DEFERRED_ITEM_BYTES: u64 = 36;

/// Configuration of the sync manager.
pub(crate) struct SyncConfig {
    pub stall_timeout: Duration,
    /// Base deadline of a peer's oldest block request (Core: target spacing
    /// × `BLOCK_DOWNLOAD_TIMEOUT_BASE` = 10 min), plus half of it
    /// (`BLOCK_DOWNLOAD_TIMEOUT_PER_PEER` 0.5) per other peer with blocks in
    /// flight. The stalling timeout (2 s to 64 s) is separate: see
    /// [`download`].
    pub block_download_timeout: Duration,
    pub best_height: Arc<AtomicI32>,
    /// Blocks ahead of the last one held that may be requested (Core's
    /// `BLOCK_DOWNLOAD_WINDOW`, 1,024).
    pub download_window: usize,
    /// Tip age under which initial block download ends (Core's
    /// `-maxtipage`, [`DEFAULT_MAX_TIP_AGE`]).
    pub max_tip_age: Duration,
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
    /// Blocks asked for, per block and per peer, and the stalling state.
    flight: BlocksInFlight,
    /// When every peer was last offered blocks and deadlines checked.
    last_download_tick: Instant,
    /// Peers sent a `getheaders` to learn their best block (Core's
    /// `fSyncStarted`).
    headers_asked: HashSet<PeerId>,
    /// Initial block download, Core's latch: true until the tip is recent
    /// and has the minimum chain work, then false for good.
    ibd: bool,
    /// Headers are being synced from the sync peer alone: announcements
    /// from other peers are not followed meanwhile (btcd's sync mode).
    syncing: bool,
    anomalies: Anomalies,
    counters: SyncCounters,
    failed: bool,
    rejects: std::collections::VecDeque<(BlockHash, String)>,
    /// `getdata` items left for later while their peer was paused for
    /// sending (Core's `vRecvGetData`), oldest first.
    deferred_getdata: HashMap<PeerId, (Arc<Peer>, VecDeque<Inventory>)>,
    /// Receive-budget bytes the message being handled leaves behind
    /// (its deferred `getdata` items); `handle` swaps them for the
    /// message's own bytes in one step.
    received_kept: u64,
}

impl SyncManager {
    pub(crate) fn new(cfg: SyncConfig, chain: ChainState) -> SyncManager {
        cfg.best_height
            .store(chain.height() as i32, Ordering::Relaxed);
        let mut m = SyncManager {
            cfg,
            chain,
            peers: HashMap::new(),
            sync_peer: None,
            last_progress: Instant::now(),
            headers_requested: false,
            flight: BlocksInFlight::default(),
            last_download_tick: Instant::now(),
            headers_asked: HashSet::new(),
            ibd: true,
            syncing: true,
            anomalies: Anomalies::default(),
            counters: SyncCounters::default(),
            failed: false,
            rejects: std::collections::VecDeque::new(),
            deferred_getdata: HashMap::new(),
            received_kept: 0,
        };
        m.update_ibd();
        m
    }

    /// Core's `UpdateIBDStatus`: leaves initial block download, for good,
    /// once the tip has the minimum chain work and is at most
    /// `max_tip_age` old.
    fn update_ibd(&mut self) {
        if !self.ibd {
            return;
        }
        let Some(tip) = self.chain.entry(&self.chain.tip()) else {
            return;
        };
        if tip.chain_work < self.chain.params().minimum_chain_work {
            return;
        }
        let age = crate::util::unix_time().saturating_sub(u64::from(tip.header.time));
        if age >= self.cfg.max_tip_age.as_secs() {
            return;
        }
        log::info!(
            "leaving initial block download (latching to false) at height {}",
            self.chain.height()
        );
        self.ibd = false;
    }

    /// The thread body.
    pub(crate) fn run(mut self, inbox: Receiver<SyncMsg>) {
        let tick = Duration::from_millis(250).min(self.cfg.stall_timeout);
        loop {
            match inbox.recv_timeout(tick) {
                Ok(SyncMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(SyncMsg::Message(peer, NetworkMessage::Block(block))) => {
                    // Every block already waiting behind this one is
                    // accepted before any is connected (see
                    // `handle_block_batch`); the first other message ends
                    // the batch and is handled right after it, in order.
                    let mut batch = vec![(peer, block)];
                    let mut after = None;
                    while batch.len() < MAX_BLOCK_BATCH {
                        match inbox.try_recv() {
                            Ok(SyncMsg::Message(peer, NetworkMessage::Block(block))) => {
                                batch.push((peer, block))
                            }
                            Ok(other) => {
                                after = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.handle_block_batch(batch);
                    match after {
                        Some(SyncMsg::Shutdown) => break,
                        Some(msg) => self.handle(msg),
                        None => {}
                    }
                }
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.check_stall();
            if self.last_download_tick.elapsed() >= DOWNLOAD_TICK {
                self.last_download_tick = Instant::now();
                self.check_block_timeouts();
                self.update_ibd();
                self.ask_headers();
                self.request_blocks_all();
            }
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
                // Its bytes leave the peer's receive budget (pause-recv),
                // swapped in one step for the work deferred from it.
                from.received_processed(std::mem::take(&mut self.received_kept));
            }
            // The loop serves deferred getdata after every message.
            SyncMsg::SendDrained(_) => {}
            SyncMsg::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            SyncMsg::SubmitBlock(block, reply) => {
                let result = self.process_block(None, *block, true);
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
                headers_sync: None,
                last_getheaders: None,
            },
        );
        if candidate && self.sync_peer.is_none() {
            self.start_sync();
        } else if (candidate && !self.syncing) || (self.sync_peer.is_none() && serves_blocks(&peer))
        {
            // Near the tip every peer ahead of us is worth asking: its
            // headers may start a reorganisation or extend our chain. With
            // no sync peer at all, ask anyone who serves blocks: its start
            // height may be stale (it mined since the handshake).
            self.ask_peer_headers(&peer);
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
        self.flight.remove_peer(id);
        self.headers_asked.remove(&id);
        if self.sync_peer == Some(id) {
            self.sync_peer = None;
            self.headers_requested = false;
            self.start_sync();
            if self.sync_peer.is_none() && self.syncing {
                // Nobody left who is ahead of us: follow announcements from
                // whoever remains (btcd once stalled near the tip here).
                log::info!(
                    "sync peer peer={id} gone and no other peer is ahead; following every peer"
                );
                self.syncing = false;
            }
        }
        // Its blocks go to the others at once.
        self.request_blocks_all();
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
        if !self.known_sender(peer.id, msg.command().as_ref()) {
            return;
        }
        match msg {
            NetworkMessage::Headers(headers) => self.handle_headers(&peer, headers),
            NetworkMessage::Block(block) => self.handle_block_batch_of(vec![(peer, block)]),
            NetworkMessage::NotFound(items) => self.handle_notfound(&peer, &items),
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
        for item in &items {
            if let Inventory::Block(h) | Inventory::WitnessBlock(h) = item {
                self.update_block_availability(peer.id, h);
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
            self.received_kept += DEFERRED_ITEM_BYTES * items.len() as u64;
            queue.extend(items);
            return;
        }
        let mut queue: VecDeque<Inventory> = items.into();
        self.serve_getdata(peer, &mut queue);
        if !queue.is_empty() {
            self.received_kept += DEFERRED_ITEM_BYTES * queue.len() as u64;
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

    /// Whether a message (`command`) comes from a peer announced with
    /// `NewPeer`; one from an unknown peer is counted and dropped.
    fn known_sender(&mut self, id: PeerId, command: &str) -> bool {
        let known = self.peers.contains_key(&id);
        if !known {
            self.counters.message_unknown_peer += 1;
            log::debug!("sync: dropping '{command}' from unknown peer={id}");
        }
        known
    }

    /// `block` messages taken from the inbox together: each is handled as
    /// a message (its bytes leave its peer's receive budget afterwards).
    fn handle_block_batch(&mut self, batch: Vec<(Arc<Peer>, Block)>) {
        let peers: Vec<Arc<Peer>> = batch.iter().map(|(p, _)| Arc::clone(p)).collect();
        if !self.failed {
            let known: Vec<(Arc<Peer>, Block)> = batch
                .into_iter()
                .filter(|(peer, _)| self.known_sender(peer.id, "block"))
                .collect();
            self.handle_block_batch_of(known);
        }
        for peer in peers {
            peer.received_processed(0);
        }
    }

    /// Core's `ProcessBlock` for several bodies at once: every block is
    /// checked and kept first (`accept_block_body`), then the best chain
    /// is activated once, so that while block N's scripts run the chain
    /// thread already prepares N+1 (`chain/connect.rs`'s lookahead). A block
    /// that fails at either step is charged to the peer that sent it, as
    /// Core's `mapBlockSource`; a failure of a block from an earlier batch
    /// (kept while its parent was missing) has no sender left to charge.
    fn handle_block_batch_of(&mut self, batch: Vec<(Arc<Peer>, Block)>) {
        let mut sources: HashMap<BlockHash, Arc<Peer>> = HashMap::new();
        let mut senders: Vec<Arc<Peer>> = Vec::new();
        for (peer, block) in batch {
            if !senders.iter().any(|p| p.id == peer.id) {
                senders.push(Arc::clone(&peer));
            }
            let hash = block.block_hash();
            let requester = self.flight.received(&hash, Instant::now());
            if self.sync_peer == Some(peer.id) && requester == Some(peer.id) {
                self.last_progress = Instant::now();
            }
            // Core's ProcessBlock: a block requested from anyone is
            // force-processed; one nobody asked for is subject to
            // AcceptBlock's unrequested-block rules.
            let accepted = self.chain.accept_block_body(block, requester.is_some());
            self.counters.unrequested_dropped = self.chain.unrequested_dropped();
            match accepted {
                Ok(true) => {
                    sources.insert(hash, peer);
                }
                Ok(false) => {}
                Err(e) => {
                    self.block_rejected(Some(&peer), hash, e);
                    if self.failed {
                        return;
                    }
                }
            }
        }
        if !sources.is_empty() {
            let mut events = Vec::new();
            match self.chain.activate_best_chain(&mut events) {
                Ok(failures) => {
                    // Core's `nLastBlockTime` for every sender whose block
                    // was connected; the tip's sender is not told of it.
                    let now = crate::util::unix_time();
                    for ev in &events {
                        if let ChainEvent::Connected { hash, .. } = ev {
                            if let Some(p) = sources.get(hash) {
                                p.last_block_time.store(now, Ordering::Relaxed);
                            }
                        }
                    }
                    let source = sources.get(&self.chain.tip()).map(|p| p.id);
                    self.on_chain_events(&events, source);
                    for (hash, e) in failures {
                        let peer = sources.get(&hash).cloned();
                        self.block_rejected(peer.as_ref(), hash, RejectError::Invalid(e));
                    }
                }
                Err(e) => {
                    self.fatal(&e.to_string());
                    return;
                }
            }
        }
        for peer in &senders {
            self.request_blocks(peer);
        }
    }

    /// Validates a block (from `peer`, or local when `None`), handles the
    /// resulting chain events.
    fn process_block(
        &mut self,
        peer: Option<&Arc<Peer>>,
        block: Block,
        requested: bool,
    ) -> Result<Vec<ChainEvent>, RejectError> {
        let hash = block.block_hash();
        let result = self.chain.accept_block_requested(block, requested);
        self.counters.unrequested_dropped = self.chain.unrequested_dropped();
        match result {
            Ok(events) => {
                self.on_chain_events(&events, peer.map(|p| p.id));
                Ok(events)
            }
            Err(e) => Err(self.block_rejected(peer, hash, e)),
        }
    }

    /// What follows a rejected block: recorded among the recent rejects,
    /// its sender (if any) disconnected when the failure is its fault,
    /// headers asked for an unknown parent, a chain-state error made fatal.
    /// Returns the error.
    fn block_rejected(
        &mut self,
        peer: Option<&Arc<Peer>>,
        hash: BlockHash,
        error: RejectError,
    ) -> RejectError {
        match error {
            RejectError::Invalid(e) => {
                self.record_reject(hash, &e.to_string());
                if let Some(p) = peer {
                    log::info!("invalid block {hash} from {p}: {e}");
                    if e.punish_peer() {
                        p.disconnect(DisconnectReason::Misbehaving(format!("invalid block: {e}")));
                    }
                }
                RejectError::Invalid(e)
            }
            RejectError::UnknownParent(prev) => {
                if let Some(p) = peer {
                    self.send_getheaders(p, self.chain.block_locator(), BlockHash::all_zeros());
                }
                RejectError::UnknownParent(prev)
            }
            RejectError::Chain(e) => {
                self.fatal(&e.to_string());
                RejectError::Chain(e)
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
        for _ in events
            .iter()
            .filter(|e| matches!(e, ChainEvent::Connected { .. }))
        {
            self.flight.block_connected();
        }
        self.update_ibd();
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

    /// Asks `peer` for the next blocks of the best header chain it has
    /// (Core's `FindNextBlocksToDownload` in `SendMessages`), up to 16 in
    /// flight, within the download window. When it gets nothing only
    /// because the window is exhausted, the peer holding the window's first
    /// block starts stalling.
    fn request_blocks(&mut self, peer: &Arc<Peer>) {
        if peer.is_closed() || peer.disconnect_reason().is_some() || !serves_blocks(peer) {
            return;
        }
        let Some(best) = self.peers.get(&peer.id).and_then(|k| k.best_known) else {
            return;
        };
        let in_flight = self.flight.count(peer.id);
        let room = MAX_BLOCKS_IN_TRANSIT_PER_PEER.saturating_sub(in_flight);
        if room == 0 {
            return;
        }
        let next = download::next_blocks(
            &self.chain,
            &self.flight,
            peer.id,
            &best,
            room,
            self.cfg.download_window,
        );
        let now = Instant::now();
        if next.blocks.is_empty() {
            if let (0, Some(staller)) = (in_flight, next.staller) {
                self.flight.mark_stalling(staller, now);
            }
            return;
        }
        let mut items = Vec::with_capacity(next.blocks.len());
        for (hash, height) in next.blocks {
            log::trace!("requesting block {hash} ({height}) from {peer}");
            self.flight.requested(peer.id, hash, height, now);
            items.push(Inventory::WitnessBlock(hash));
        }
        peer.send(NetworkMessage::GetData(items));
    }

    /// [`SyncManager::request_blocks`] for every known peer.
    fn request_blocks_all(&mut self) {
        let mut peers: Vec<Arc<Peer>> = self.peers.values().map(|k| Arc::clone(&k.peer)).collect();
        peers.sort_by_key(|p| p.id);
        for p in &peers {
            self.request_blocks(p);
        }
    }

    /// Core's `UpdateBlockAvailability`: `peer` announced `hash`, which we
    /// know; if it has more work than the peer's best known header, it
    /// becomes that.
    fn update_block_availability(&mut self, peer: PeerId, hash: &BlockHash) {
        let Some(work) = self.chain.entry(hash).map(|e| e.chain_work) else {
            return;
        };
        let Some(k) = self.peers.get(&peer) else {
            return;
        };
        let current = k
            .best_known
            .and_then(|b| self.chain.entry(&b))
            .map(|e| e.chain_work);
        if current.is_none_or(|c| work > c) {
            if let Some(k) = self.peers.get_mut(&peer) {
                k.best_known = Some(*hash);
            }
        }
    }

    /// `notfound`: block requests the peer cannot serve are freed and
    /// asked from others at once; anything else is ignored (see
    /// [`download`] for the decision).
    fn handle_notfound(&mut self, peer: &Arc<Peer>, items: &[Inventory]) {
        if items.len() > MAX_NOTFOUND_ITEMS {
            log::debug!("{peer}: ignoring notfound of {} items", items.len());
            return;
        }
        let blocks: Vec<BlockHash> = items
            .iter()
            .filter_map(|i| match i {
                Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(*h),
                _ => None,
            })
            .collect();
        let freed = self.flight.not_found(peer.id, &blocks);
        if freed > 0 {
            log::debug!("{peer} does not have {freed} requested blocks; asking others");
            self.counters.notfound_blocks += freed as u64;
            self.request_blocks_all();
        }
    }

    /// Sends `getheaders` from the best header's parent, so that the answer
    /// tells us the peer's best block even when it has no more headers.
    fn ask_peer_headers(&mut self, peer: &Peer) {
        self.headers_asked.insert(peer.id);
        self.send_getheaders(
            peer,
            self.chain.locator_before_best(),
            BlockHash::all_zeros(),
        );
    }

    /// Core's rule for starting headers sync with more peers: once the best
    /// header is within 24 h of now, every block-serving peer not asked yet
    /// is asked for headers (and so tells us what blocks it can serve).
    fn ask_headers(&mut self) {
        if !self.best_header_recent() {
            return;
        }
        let ask: Vec<Arc<Peer>> = self
            .peers
            .values()
            .filter(|k| {
                !self.headers_asked.contains(&k.peer.id)
                    && !k.peer.is_closed()
                    && k.peer.disconnect_reason().is_none()
                    && serves_blocks(&k.peer)
            })
            .map(|k| Arc::clone(&k.peer))
            .collect();
        for p in ask {
            self.ask_peer_headers(&p);
        }
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
        if self.syncing {
            log::info!(
                "caught up with the best header at height {}; following every peer",
                self.chain.height()
            );
            self.syncing = false;
        }
    }

    /// Whether announcements from `peer` are followed: while headers are
    /// synced from the sync peer and the best header is old, only its;
    /// otherwise (or with no sync peer at all) everyone's. With a recent
    /// best header Core syncs headers from every peer, so a sync peer that
    /// claims a high start height and stays silent cannot make a synced
    /// node deaf to the others.
    fn follows(&self, peer: PeerId) -> bool {
        !self.syncing || self.best_header_recent() || self.sync_peer.is_none_or(|s| s == peer)
    }

    /// Whether the best header is within 24 h of now (Core's condition for
    /// syncing headers from every peer).
    fn best_header_recent(&self) -> bool {
        self.chain
            .entry(&self.chain.best_header())
            .is_some_and(|best| {
                let age = crate::util::unix_time().saturating_sub(u64::from(best.header.time));
                age < DEFAULT_MAX_TIP_AGE.as_secs()
            })
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
        self.syncing = true;
        self.headers_requested = true;
        self.last_progress = Instant::now();
        self.ask_peer_headers(&peer);
        self.request_blocks(&peer);
    }

    fn check_stall(&mut self) {
        let Some(id) = self.sync_peer else {
            return;
        };
        let waiting = self.headers_requested || self.flight.count(id) > 0;
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

    /// Disconnects every peer past a download deadline (holding up the
    /// window past the stalling timeout, or its oldest request past the
    /// block-download timeout) and gives its blocks to the others at once,
    /// so one withholding peer cannot stop the chain.
    fn check_block_timeouts(&mut self) {
        let now = Instant::now();
        let stallers = self.flight.stallers(now);
        let late = self.flight.timed_out(self.cfg.block_download_timeout, now);
        if stallers.is_empty() && late.is_empty() {
            return;
        }
        for (id, stalled) in stallers
            .iter()
            .map(|id| (*id, true))
            .chain(late.iter().map(|id| (*id, false)))
        {
            if self.flight.count(id) == 0 && !stalled {
                continue;
            }
            self.flight.remove_peer(id);
            if stalled {
                self.counters.download_stalls += 1;
            } else {
                self.counters.block_timeouts += 1;
            }
            if let Some(k) = self.peers.get_mut(&id) {
                if stalled {
                    log::info!("{} is stalling block download; disconnecting", k.peer);
                } else {
                    log::info!(
                        "{} did not deliver a requested block in time; disconnecting",
                        k.peer
                    );
                }
                k.peer.disconnect(DisconnectReason::BlockDownloadTimeout);
                k.candidate = false;
            }
        }
        self.request_blocks_all();
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
                let inflight = self.flight.heights(k.peer.id);
                SyncPeerInfo {
                    id: k.peer.id,
                    candidate: k.candidate,
                    closed: k.peer.is_closed(),
                    synced_headers,
                    synced_blocks,
                    inflight,
                    presynced_headers: k
                        .headers_sync
                        .as_ref()
                        .filter(|h| h.phase() == Phase::Presync)
                        .map_or(-1, |h| h.presync_height() as i64),
                    headers_sync_bytes: k.headers_sync.as_ref().map_or(0, |h| h.memory_usage()),
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
            blocks_in_flight: self.flight.len(),
            pending_blocks: self.chain.pending_usage().0,
            pending_bytes: self.chain.pending_usage().1,
            stalling_timeout: self.flight.stalling_timeout(),
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
                download_window: download::BLOCK_DOWNLOAD_WINDOW,
                max_tip_age: DEFAULT_MAX_TIP_AGE,
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

    /// A chain of 102 blocks, then N spending a mature output and N+1
    /// spending N's output with a corrupted signature (valid until its
    /// scripts run).
    fn chain_with_bad_child() -> Vec<Block> {
        use crate::testdata::{corrupt_signature, ChainBuilder};
        let mut b = ChainBuilder::new(41);
        for _ in 0..102 {
            b.next_block(2);
        }
        let (op, value) = b.spendable_outputs()[0];
        let mut prev = (op, value);
        for corrupt in [false, true] {
            let script = b
                .blocks()
                .iter()
                .flat_map(|blk| &blk.txdata)
                .find(|tx| tx.compute_txid() == prev.0.txid)
                .map(|tx| tx.output[prev.0.vout as usize].script_pubkey.clone())
                .expect("output of the chain");
            let out = prev.1 - bitcoin::Amount::from_sat(1_000);
            let mut tx = b
                .sign_spend(
                    &[prev.0],
                    vec![bitcoin::TxOut {
                        value: out,
                        script_pubkey: script,
                    }],
                )
                .expect("sign");
            if corrupt {
                corrupt_signature(&mut tx, 0).expect("corrupt");
            }
            prev = (bitcoin::OutPoint::new(tx.compute_txid(), 0), out);
            let block = b.block_with_txs(vec![tx]).expect("block");
            b.push_block(block).expect("push");
        }
        b.blocks().to_vec()
    }

    #[test]
    fn block_batch_charges_a_failure_found_at_connect_to_its_sender() {
        let blocks = chain_with_bad_child();
        let n = blocks.len() - 2;
        let (mut m, _dir) = manager();
        let headers: Vec<_> = blocks.iter().skip(1).map(|b| b.header).collect();
        m.chain.process_headers(&headers).expect("headers");
        for b in &blocks[1..n] {
            m.chain.accept_block(b.clone()).expect("base block");
        }
        let honest = Arc::new(Peer::detached(1, Direction::Outbound));
        let liar = Arc::new(Peer::detached(2, Direction::Outbound));
        m.handle(SyncMsg::NewPeer(Arc::clone(&honest)));
        m.handle(SyncMsg::NewPeer(Arc::clone(&liar)));
        // The bad child arrives first (its parent's body is missing, so it
        // is only kept), then its parent: both accepted, then connected in
        // one activation, where the child's scripts fail.
        m.handle_block_batch(vec![
            (Arc::clone(&liar), blocks[n + 1].clone()),
            (Arc::clone(&honest), blocks[n].clone()),
        ]);
        assert_eq!(m.chain.tip(), blocks[n].block_hash());
        let bad = m.chain.entry(&blocks[n + 1].block_hash()).expect("indexed");
        assert!(bad.status.is_failed());
        assert!(
            matches!(
                liar.disconnect_reason(),
                Some(DisconnectReason::Misbehaving(ref r)) if r.contains("mandatory-script-verify-flag-failed")
            ),
            "the child's sender is charged: {:?}",
            liar.disconnect_reason()
        );
        assert!(
            honest.disconnect_reason().is_none(),
            "the parent's sender is not"
        );
        assert_eq!(m.snapshot().counters.message_unknown_peer, 0);
    }

    /// The thread body drains consecutive `block` messages into one batch,
    /// then handles the message that ended it (a snapshot, which sees every
    /// block connected) and stops at a `Shutdown` queued behind it.
    #[test]
    fn run_loop_batches_waiting_blocks_then_handles_the_next_message() {
        let blocks = chain_with_bad_child();
        let good = blocks.len() - 2;
        let (m, _dir) = manager();
        let (tx, rx) = crossbeam_channel::unbounded();
        let peer = Arc::new(Peer::detached(1, Direction::Outbound));
        tx.send(SyncMsg::NewPeer(Arc::clone(&peer))).unwrap();
        // Headers first, as a syncing node has them; then the bodies
        // newest first, so nothing connects until the oldest is accepted.
        let headers: Vec<_> = blocks[1..=good].iter().map(|b| b.header).collect();
        tx.send(SyncMsg::Message(
            Arc::clone(&peer),
            NetworkMessage::Headers(headers),
        ))
        .unwrap();
        for b in blocks[1..=good].iter().rev() {
            tx.send(SyncMsg::Message(
                Arc::clone(&peer),
                NetworkMessage::Block(b.clone()),
            ))
            .unwrap();
        }
        let (snap_tx, snap_rx) = crossbeam_channel::bounded(1);
        tx.send(SyncMsg::Snapshot(snap_tx)).unwrap();
        tx.send(SyncMsg::Shutdown).unwrap();
        let runner = std::thread::spawn(move || m.run(rx));
        let snap = snap_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("snapshot answered after the batch");
        runner.join().expect("the loop stops at Shutdown");
        assert_eq!(snap.tip, blocks[good].block_hash());
        assert_eq!(snap.best_height, good as i32);
        assert!(peer.disconnect_reason().is_none());

        // A `Shutdown` that ends a batch stops the loop too.
        let (m, _dir) = manager();
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(SyncMsg::NewPeer(Arc::clone(&peer))).unwrap();
        for b in &blocks[1..4] {
            tx.send(SyncMsg::Message(
                Arc::clone(&peer),
                NetworkMessage::Block(b.clone()),
            ))
            .unwrap();
        }
        tx.send(SyncMsg::Shutdown).unwrap();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            m.run(rx);
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the loop stops at a Shutdown right after blocks");
        drop(tx);
    }

    #[test]
    fn block_batch_drops_blocks_of_unknown_peers() {
        let blocks = chain_with_bad_child();
        let (mut m, _dir) = manager();
        let stranger = Arc::new(Peer::detached(7, Direction::Inbound));
        m.handle_block_batch(vec![(stranger, blocks[1].clone())]);
        assert_eq!(m.snapshot().counters.message_unknown_peer, 1);
        assert_eq!(m.chain.height(), 0);
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
