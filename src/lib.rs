//! strand: a synchronous, thread-based Bitcoin full node.
//!
//! This crate is both the `strand` binary's engine and an embedding API:
//! build a [`Config`], call [`Node::start`], and drive the node through the
//! returned [`NodeHandle`]. The node runs on plain OS threads connected by
//! crossbeam channels (see `docs/DESIGN.md` for the picture and the layers):
//!
//! * `listener` and `connmgr` open connections; each connection gets a
//!   reader, a writer and a lifecycle thread (`peer`);
//! * `peer-handler` ([`server`]) consumes every peer's `Add`/`Done` from one
//!   FIFO channel and is the only thread telling the sync manager about peers;
//! * `sync-manager` ([`sync`]) picks the sync peer and drives the download.
//!
//! [`NodeHandle::snapshot`] reports what those threads believe, for tests
//! and RPC; [`NodeHandle::shutdown`] (also run on drop) stops and joins
//! every thread.
//!
//! # Embedding
//!
//! A regtest node in a temporary directory: start it, read its height on
//! the chain's own thread, shut it down. [`bitcoin`] is re-exported, so the
//! types an embedder builds are the node's. The node logs through the `log`
//! facade: install a logger (`env_logger::init()` or any `log`
//! implementation) to see it; without one the library is silent.
//!
//! ```
//! use strand::bitcoin::BlockHash;
//! use strand::{Config, Network, Node};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut config = Config::new(Network::Regtest);
//! config.datadir = dir.path().to_path_buf();
//! config.listen = Some("127.0.0.1:0".parse()?);
//! let node = Node::start(config)?;
//! let (height, tip): (u32, BlockHash) = node.with_chain(|c| (c.height(), c.tip()))?;
//! assert_eq!(height, 0);
//! let genesis = strand::bitcoin::constants::genesis_block(strand::bitcoin::Network::Regtest);
//! assert_eq!(tip, genesis.block_hash());
//! node.shutdown();
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod addrtext;
pub mod chain;
pub mod config;
pub mod connmgr;
pub mod events;
pub mod index;
pub mod logging;
pub mod memory;
pub mod mempool;
pub mod metrics;
pub mod mining;
pub mod netaddr;
pub mod notify;
pub mod peer;
pub mod proxy;
pub mod rpc;
pub mod server;
pub mod store;
pub mod sync;
#[cfg(any(test, feature = "test-util"))]
pub mod testdata;
pub mod util;
pub mod wire;

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use crossbeam_channel::{bounded, Sender};

/// The `bitcoin` crate this node is built on, so embedders use the same
/// version of its types (`Block`, `Transaction`, `BlockHash`, ...).
pub use bitcoin;
pub use config::{Config, ConfigError, Network};
pub use mining::GenerateError;
pub use peer::{Direction, DisconnectReason, PeerId};
pub use server::{HandlerStats, NoOrphans, OrphanEvictor};
pub use sync::{Anomalies, SyncCounters};
pub use util::unix_time;

use chain::state::{ChainOptions, ChainState};
use peer::{Connections, NetContext, Peer};
use server::{HandlerMsg, PeerHandler};
use sync::{SyncConfig, SyncManager, SyncMsg};

/// Capacity of the sync manager's inbox. Readers block when it is full
/// (back-pressure towards the sockets), which is a downstream send.
const SYNC_INBOX: usize = 256;
/// Capacity of the peer handler's control channel.
const HANDLER_INBOX: usize = 64;

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The data directory could not be created or written.
    DataDir(std::path::PathBuf, std::io::Error),
    /// Another process holds the data directory's lock.
    DataDirLocked(std::path::PathBuf),
    /// The P2P listen address could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// A node thread could not be started.
    Spawn(std::io::Error),
    /// The chain state could not be opened.
    Chain(chain::state::ChainError),
    /// The transaction index could not be opened or removed.
    Index(index::IndexError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::DataDir(p, e) => {
                write!(f, "cannot use data directory {}: {e}", p.display())
            }
            StartError::DataDirLocked(p) => write!(
                f,
                "cannot lock data directory {}: another strand process is using it",
                p.display()
            ),
            StartError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            StartError::Spawn(e) => write!(f, "cannot start thread: {e}"),
            StartError::Chain(e) => write!(f, "{e}"),
            StartError::Index(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why a request to a running node failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// The node is shutting down or has stopped.
    Stopped,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Stopped => write!(f, "node is not running"),
        }
    }
}

impl std::error::Error for NodeError {}

/// Why [`NodeHandle::send_transaction`] failed.
#[derive(Debug)]
pub enum SendTxError {
    /// The node is not running.
    Stopped,
    /// The mempool refused it (Core's reason and RPC code inside).
    Rejected(mempool::MempoolReject),
}

impl fmt::Display for SendTxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTxError::Stopped => write!(f, "node is not running"),
            SendTxError::Rejected(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendTxError {}

/// Why [`NodeHandle::submit_block`] failed.
#[derive(Debug)]
pub enum SubmitBlockError {
    /// The chain did not accept the block: a consensus rule (Core's reject
    /// reason inside), an unknown parent, or a failing chain state.
    Rejected(chain::state::RejectError),
    /// The node is shutting down or has stopped.
    NodeStopped,
}

impl fmt::Display for SubmitBlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitBlockError::Rejected(e) => write!(f, "{e}"),
            SubmitBlockError::NodeStopped => write!(f, "node is not running"),
        }
    }
}

impl std::error::Error for SubmitBlockError {}

/// Why [`NodeHandle::invalidate_block`] or [`NodeHandle::reconsider_block`]
/// failed.
#[derive(Debug)]
pub enum ChainOpError {
    /// The chain refused: an unknown block (reason `Block not found`, as
    /// Core's RPC says), the genesis block, or a failing chain state.
    Rejected(chain::state::RejectError),
    /// The node is shutting down or has stopped.
    NodeStopped,
}

impl fmt::Display for ChainOpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainOpError::Rejected(e) => write!(f, "{e}"),
            ChainOpError::NodeStopped => write!(f, "node is not running"),
        }
    }
}

impl std::error::Error for ChainOpError {}

/// Why [`NodeHandle::chain_info`] failed.
#[derive(Debug)]
pub enum ChainInfoError {
    /// The chain state could not flush or read the UTXO set.
    Chain(chain::state::ChainError),
    /// The node is shutting down or has stopped.
    NodeStopped,
}

impl fmt::Display for ChainInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainInfoError::Chain(e) => write!(f, "{e}"),
            ChainInfoError::NodeStopped => write!(f, "node is not running"),
        }
    }
}

impl std::error::Error for ChainInfoError {}

/// Where a peer stands, combining the peer handler's and sync manager's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Handshake done; known to the sync manager; not a sync candidate.
    Active,
    /// A sync candidate (serves blocks and is ahead of us).
    Candidate,
    /// The current sync peer.
    SyncPeer,
    /// Its connection has closed; its `Done` is on the way.
    Closing,
}

/// One peer in the peer handler's table.
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// The peer's id.
    pub id: PeerId,
    /// Remote address.
    pub addr: SocketAddr,
    /// Who connected.
    pub direction: Direction,
    /// What the connection is for (Core's `connection_type`).
    pub conn_type: peer::ConnectionType,
    /// Where it stands.
    pub state: PeerState,
    /// Remote protocol version.
    pub version: u32,
    /// Remote services.
    pub services: ServiceFlags,
    /// Height it claimed at connection.
    pub start_height: i32,
    /// Its user agent.
    pub user_agent: String,
    /// Bytes sent to it.
    pub bytes_sent: u64,
    /// Bytes received from it.
    pub bytes_recv: u64,
    /// Last ping round trip.
    pub ping: Option<Duration>,
    /// Lowest ping round trip seen (Core's `minping`).
    pub min_ping: Option<Duration>,
    /// When it connected (Unix seconds; Core's `conntime`).
    pub conn_time: u64,
    /// Last message written to it / read from it (Unix seconds, 0 for
    /// never; Core's `lastsend`, `lastrecv`).
    pub last_send: u64,
    /// See [`PeerSnapshot::last_send`].
    pub last_recv: u64,
    /// Bytes queued for it and not yet written (Core's `nSendSize`;
    /// pause-send above `Config::max_send_buffer`).
    pub send_queued_bytes: u64,
    /// Bytes received from it and not yet processed (pause-recv above
    /// `Config::max_receive_buffer`).
    pub recv_queued_bytes: u64,
    /// Addresses from it processed / dropped by the rate limit.
    pub addr_processed: u64,
    /// See [`PeerSnapshot::addr_processed`].
    pub addr_rate_limited: u64,
    /// Height of its best header we accepted, -1 if none (Core's
    /// `synced_headers`).
    pub synced_headers: i32,
    /// Height of its best block in common with us, -1 if none (Core's
    /// `synced_blocks`).
    pub synced_blocks: i32,
    /// Heights of the blocks in flight from it (Core's `inflight`).
    pub inflight: Vec<u32>,
    /// Headers of its low-work chain checked in pre-sync, -1 if none
    /// (Core's `presynced_headers`).
    pub presynced_headers: i64,
    /// Unix time of the last new block it gave us first, 0 if none.
    pub last_block: u64,
    /// Unix time of the last new mempool transaction from it, 0 if none.
    pub last_transaction: u64,
}

/// Bytes sent and received since start (Core's `getnettotals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetTotals {
    /// Bytes received from all peers, closed ones included.
    pub bytes_recv: u64,
    /// Bytes sent to all peers, closed ones included.
    pub bytes_sent: u64,
}

/// What the node's threads believe at one moment (not atomic across
/// threads: take it when the node is quiet to check invariants).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The peer handler's table: peers whose handshake completed and whose
    /// `Done` has not been handled.
    pub peers: Vec<PeerSnapshot>,
    /// Open connections, including those still handshaking.
    pub connections: usize,
    /// The peer handler's counters.
    pub handler: HandlerStats,
    /// Peers the sync manager knows, by id.
    pub sync_known: Vec<PeerId>,
    /// The sync peer.
    pub sync_peer: Option<PeerId>,
    /// Sync candidates.
    pub candidates: Vec<PeerId>,
    /// Must-never-happen counters.
    pub anomalies: Anomalies,
    /// Informational sync counters.
    pub counters: SyncCounters,
    /// Whether the node is in initial block download.
    pub initial_block_download: bool,
    /// Best block height.
    pub best_height: i32,
    /// Active tip.
    pub tip: bitcoin::BlockHash,
    /// Height of the best known header.
    pub best_header_height: u32,
    /// The last rejected headers/blocks with Core's reason, newest last.
    pub recent_rejects: Vec<(bitcoin::BlockHash, String)>,
}

/// Starts nodes.
pub struct Node;

impl Node {
    /// Starts a node: locks the data directory, binds the listener, starts
    /// the threads. Returns once the node is accepting connections.
    pub fn start(config: Config) -> Result<NodeHandle, StartError> {
        let mempool_config = mempool::MempoolConfig {
            max_size_bytes: config.max_mempool_mb.saturating_mul(1_000_000),
            expiry_secs: config.mempool_expiry_hours.saturating_mul(3600),
            ..mempool::MempoolConfig::default()
        };
        let mempool = mempool::SharedMempool::new(mempool::Mempool::new(mempool_config));
        Node::start_with(config, mempool)
    }

    /// Like [`Node::start`] with a given mempool (its orphans are evicted by
    /// the peer handler for every finished peer).
    pub fn start_with(
        config: Config,
        mempool: mempool::SharedMempool,
    ) -> Result<NodeHandle, StartError> {
        let orphans: Box<dyn OrphanEvictor> = Box::new(mempool.clone());
        let events = events::EventBus::default();
        let dir = config.net_dir();
        let lock = lock_datadir(&dir)?;

        let listener = match config.listen {
            Some(addr) => Some(TcpListener::bind(addr).map_err(|e| StartError::Bind(addr, e))?),
            None => None,
        };
        let listen_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(StartError::Spawn)?),
            None => None,
        };

        let mut chain_opts = ChainOptions::default();
        if let Some(n) = config.script_threads {
            chain_opts.script_threads = n;
        }
        chain_opts.flush_blocks = config.flush_blocks;
        chain_opts.coins_cache_bytes = config.dbcache_mib << 20;
        chain_opts.map_release_ops = config.map_release_ops;
        chain_opts.db_batch_bytes = config.db_batch_bytes;
        #[cfg(feature = "test-util")]
        {
            chain_opts.crash_after_flush_batches = config.test_crash_flush_batch;
        }
        // A block batch costs about 2.5 times its size at commit (the
        // batch, and LMDB's copy in dirty pages): 1/16 of -dbcache, 1 to
        // 8 MiB (README "Memory budget").
        chain_opts.block_write_bytes = ((config.dbcache_mib << 20) / 16).clamp(1 << 20, 8 << 20);
        chain_opts.signet_challenge = config.signet_challenge.clone();
        chain_opts.minimum_chain_work = config.minimum_chain_work;
        let reindex = if config.reindex {
            // Core's -reindex also rebuilds the optional indexes.
            index::TxIndex::destroy(&index::TxIndex::dir_in(&dir)).map_err(StartError::Index)?;
            Some(chain::reindex::Reindex::Full)
        } else {
            config
                .reindex_chainstate
                .then_some(chain::reindex::Reindex::ChainState)
        };
        chain_opts.assume_valid = config.assume_valid;
        let mut chain = ChainState::open_reindexing(
            &dir.join("chainstate"),
            config.network,
            chain_opts,
            reindex,
        )
        .map_err(StartError::Chain)?;
        mempool::persist::load_at_start(&mempool, &dir, &mut chain, config.persist_mempool);
        chain
            .set_prune_mode(config.prune)
            .map_err(StartError::Chain)?;
        let best_height = Arc::new(AtomicI32::new(chain.height() as i32));
        let max_connections = peer::max_connections(config.max_peers);
        let (lifecycle_tx, lifecycle_rx) = bounded(server::lifecycle_capacity(max_connections));
        let (sync_tx, sync_rx) = bounded(SYNC_INBOX);
        let txindex = match config.txindex {
            true => Some(start_txindex(
                &config,
                &dir,
                chain.store(),
                sync_tx.clone(),
                &events,
            )?),
            false => None,
        };
        let (handler_tx, handler_rx) = bounded(HANDLER_INBOX);
        let abort = Arc::new(events::Abort::default());
        let addrman = Arc::new(peer::addrman::AddrMan::open(
            &dir.join(peer::addrman::PEERS_FILE),
            config.network == config::Network::Regtest,
        ));
        // The bound address (OS-chosen port) is the one advertised.
        let bound_config = Config {
            listen: listen_addr,
            ..config.clone()
        };
        let ctx = Arc::new(NetContext {
            magic: config.magic(),
            services: peer::local_services_for(config.prune.is_prune_mode()),
            best_height: Arc::clone(&best_height),
            lifecycle_tx,
            messages: Box::new(sync_tx.clone()),
            connections: Connections::new(config.max_peers),
            addrman: Arc::clone(&addrman),
            pool: peer::pool::ThreadPool::new(config.peer_stack_size, peer::pool::DEFAULT_MAX_IDLE),
            addr_relay: peer::addr_relay::AddrRelay::with_interval(config.addr_broadcast_interval)
                .announcing(
                    peer::addr_relay::advertised_addr(&bound_config),
                    peer::local_services_for(config.prune.is_prune_mode()),
                    config.local_addr_broadcast_interval,
                ),
            config: bound_config,
        });

        ctx.connections
            .load_bans(dir.join(peer::banlist::BANLIST_FILE));

        let stop = Arc::new(AtomicBool::new(false));
        // AbortNode: latch the reason, then stop taking peers (the listener
        // and connection manager find the registry closed) and drop the
        // connected ones. The embedder (or the binary) then shuts down.
        let on_fatal = {
            let (abort, ctx, stop) = (Arc::clone(&abort), Arc::clone(&ctx), Arc::clone(&stop));
            Box::new(move |reason: &str| {
                if abort.trigger(reason) {
                    stop.store(true, Ordering::SeqCst);
                    ctx.connections.close_all();
                }
            })
        };
        let sync = SyncManager::new(
            SyncConfig {
                stall_timeout: config.stall_timeout,
                block_download_timeout: config.block_download_timeout,
                best_height,
                download_window: config.download_window,
                max_tip_age: config.max_tip_age,
                mempool: mempool.clone(),
                events: events.clone(),
                on_fatal,
                #[cfg(feature = "test-util")]
                fault_height: config.test_fault_height,
            },
            chain,
        );
        let sync_thread = spawn("sync-manager", move || sync.run(sync_rx))?;
        // The registry enforces the inbound/outbound split; the handler's
        // table only needs room for every connection it may hold.
        let handler = PeerHandler::new(max_connections, sync_tx.clone(), orphans, events.clone());
        let handler_thread = spawn("peer-handler", move || {
            handler.run(lifecycle_rx, handler_rx)
        })?;

        let mut listener_thread = None;
        if let Some(listener) = listener {
            let (ctx, stop) = (Arc::clone(&ctx), Arc::clone(&stop));
            listener_thread = Some(spawn("listener", move || {
                server::run_listener(ctx, listener, stop)
            })?);
            if let Some(a) = listen_addr {
                log::info!("listening for peers on {a}");
            }
        }
        let addrman_dump =
            peer::addrman::Dumper::start(addrman, dir.join(peer::addrman::PEERS_FILE))
                .map_err(StartError::Spawn)?;
        let (connmgr_stop_tx, connmgr_stop_rx) = bounded::<()>(0);
        let (connmgr_tx, connmgr_rx) = bounded(64);
        let connmgr_state = Arc::new(connmgr::ConnMgrState::default());
        let connmgr_thread = {
            let (ctx, state) = (Arc::clone(&ctx), Arc::clone(&connmgr_state));
            Some(spawn("connmgr", move || {
                connmgr::run_connmgr(ctx, state, connmgr_stop_rx, connmgr_rx)
            })?)
        };
        log::info!(
            "strand {} started on {} (data directory {})",
            env!("CARGO_PKG_VERSION"),
            config.network,
            dir.display()
        );
        Ok(NodeHandle {
            inner: Some(Inner {
                txindex,
                connmgr_tx,
                connmgr_state,
                events,
                mempool,
                ctx,
                listen_addr,
                stop,
                listener_thread,
                connmgr_thread,
                connmgr_stop: Some(connmgr_stop_tx),
                addrman_dump,
                handler_tx,
                sync_tx,
                handler_thread,
                sync_thread,
                abort,
                _lock: lock,
            }),
        })
    }
}

/// Creates the network's data directory and takes its lock (a `.lock`
/// file held with an advisory lock for the life of the returned handle), so
/// two processes never share one data directory.
pub fn lock_datadir(dir: &std::path::Path) -> Result<File, StartError> {
    std::fs::create_dir_all(dir).map_err(|e| StartError::DataDir(dir.to_path_buf(), e))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(|e| StartError::DataDir(dir.to_path_buf(), e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::DataDirLocked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::DataDir(dir.to_path_buf(), e)),
    }
}

/// Why [`generate_offline`] failed.
#[derive(Debug)]
pub enum GenerateOfflineError {
    /// The address does not parse.
    InvalidAddress(String, bitcoin::address::ParseError),
    /// The address is for another network.
    WrongNetwork(String, Network),
    /// The data directory could not be locked (a node is running on it).
    DataDir(StartError),
    /// The chain state could not be opened or flushed.
    Chain(chain::state::ChainError),
    /// A block could not be generated.
    Generate(GenerateError),
}

impl fmt::Display for GenerateOfflineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateOfflineError::InvalidAddress(a, e) => write!(f, "invalid address '{a}': {e}"),
            GenerateOfflineError::WrongNetwork(a, n) => write!(f, "address '{a}' is not for {n}"),
            GenerateOfflineError::DataDir(e) => write!(f, "{e}"),
            GenerateOfflineError::Chain(e) => write!(f, "{e}"),
            GenerateOfflineError::Generate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GenerateOfflineError {}

/// Mines `count` regtest blocks paying to `address` directly into the data
/// directory of a node that is not running (`strand generate`). Returns
/// the block hashes.
pub fn generate_offline(
    config: &Config,
    count: u32,
    address: &str,
) -> Result<Vec<bitcoin::BlockHash>, GenerateOfflineError> {
    use std::str::FromStr;
    let script = bitcoin::Address::from_str(address)
        .map_err(|e| GenerateOfflineError::InvalidAddress(address.to_string(), e))?
        .require_network(config.network.to_bitcoin())
        .map_err(|_| GenerateOfflineError::WrongNetwork(address.to_string(), config.network))?
        .script_pubkey();
    let dir = config.net_dir();
    let _lock = lock_datadir(&dir).map_err(GenerateOfflineError::DataDir)?;
    let mut opts = ChainOptions::default();
    if let Some(n) = config.script_threads {
        opts.script_threads = n;
    }
    opts.signet_challenge = config.signet_challenge.clone();
    let mut chain = ChainState::open(&dir.join("chainstate"), config.network, opts)
        .map_err(GenerateOfflineError::Chain)?;
    let mut hashes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (block, _) = mining::generate_block(&mut chain, &script, Vec::new())
            .map_err(GenerateOfflineError::Generate)?;
        hashes.push(block.block_hash());
    }
    chain.flush().map_err(GenerateOfflineError::Chain)?;
    Ok(hashes)
}

/// Opens the transaction index and starts its thread, woken by the node's
/// events (see `index::txindex`).
fn start_txindex(
    config: &Config,
    dir: &std::path::Path,
    store: &Arc<store::Store>,
    sync_tx: Sender<SyncMsg>,
    events: &events::EventBus,
) -> Result<(Arc<index::TxIndex>, index::TxIndexThread), StartError> {
    let txindex =
        Arc::new(index::TxIndex::open(&index::TxIndex::dir_in(dir)).map_err(StartError::Index)?);
    #[allow(unused_mut)]
    let mut opts = index::TxIndexOptions::default();
    #[cfg(feature = "test-util")]
    {
        opts.block_delay = config.test_txindex_delay;
    }
    let _ = config;
    let thread = index::TxIndexThread::start(
        Arc::clone(&txindex),
        Box::new(SyncChainView { sync_tx }),
        Arc::clone(store),
        events.subscribe(TXINDEX_WAKE_CAPACITY).events,
        opts,
    )
    .map_err(StartError::Spawn)?;
    Ok((txindex, thread))
}

/// The txindex's view of the active chain: short questions queued to the
/// sync-manager thread (its block index is in memory only).
struct SyncChainView {
    sync_tx: Sender<SyncMsg>,
}

impl SyncChainView {
    fn ask<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut chain::state::ChainState) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = bounded(1);
        self.sync_tx
            .send(SyncMsg::WithChain(Box::new(move |c| {
                let _ = tx.send(f(c));
            })))
            .ok()?;
        rx.recv().ok()
    }
}

impl index::ActiveChain for SyncChainView {
    fn tip(&self) -> Option<(bitcoin::BlockHash, u32)> {
        self.ask(|c| (c.tip(), c.height()))
    }

    fn hashes(&self, from: u32, count: u32) -> Option<Vec<bitcoin::BlockHash>> {
        self.ask(move |c| {
            (from..from.saturating_add(count))
                .map_while(|h| c.active_hash(h))
                .collect()
        })
    }
}

/// Node events queued for the txindex thread (only a wake-up: when full,
/// it is awake anyway).
const TXINDEX_WAKE_CAPACITY: usize = 16;

fn spawn<F: FnOnce() + Send + 'static>(name: &str, f: F) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(StartError::Spawn)
}

struct Inner {
    /// The transaction index and its thread, with `-txindex`.
    txindex: Option<(Arc<index::TxIndex>, index::TxIndexThread)>,
    connmgr_tx: Sender<connmgr::ConnCmd>,
    connmgr_state: Arc<connmgr::ConnMgrState>,
    events: events::EventBus,
    mempool: mempool::SharedMempool,
    ctx: Arc<NetContext>,
    listen_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    listener_thread: Option<JoinHandle<()>>,
    connmgr_thread: Option<JoinHandle<()>>,
    connmgr_stop: Option<Sender<()>>,
    /// Writes `peers.dat` every 15 minutes and at shutdown.
    addrman_dump: peer::addrman::Dumper,
    handler_tx: Sender<HandlerMsg>,
    sync_tx: Sender<SyncMsg>,
    handler_thread: JoinHandle<()>,
    sync_thread: JoinHandle<()>,
    abort: Arc<events::Abort>,
    _lock: File,
}

/// A running node. Dropping it shuts the node down.
pub struct NodeHandle {
    inner: Option<Inner>,
}

impl NodeHandle {
    /// The address the P2P listener is bound to (with the OS-chosen port
    /// when the configured port was 0).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner.as_ref().and_then(|i| i.listen_addr)
    }

    /// The running node; after a fatal error it counts as stopped.
    fn inner(&self) -> Result<&Inner, NodeError> {
        match &self.inner {
            Some(i) if i.abort.reason().is_none() => Ok(i),
            _ => Err(NodeError::Stopped),
        }
    }

    /// True until [`NodeHandle::shutdown`] or a fatal error.
    pub fn is_running(&self) -> bool {
        self.inner().is_ok()
    }

    /// The fatal error that stopped the node (Core's `AbortNode`), if one
    /// did. The node then takes no peers and processes no blocks; call
    /// [`NodeHandle::shutdown`] to join its threads and flush.
    pub fn fatal_error(&self) -> Option<String> {
        self.inner.as_ref().and_then(|i| i.abort.reason())
    }

    /// A receiver that becomes ready (disconnected) when a fatal error
    /// stops the node; `None` once shut down.
    pub fn fatal_signal(&self) -> Option<crossbeam_channel::Receiver<()>> {
        self.inner.as_ref().map(|i| i.abort.receiver())
    }

    /// The transaction index, when the node runs with `-txindex`.
    pub fn txindex(&self) -> Option<Arc<index::TxIndex>> {
        let inner = self.inner().ok()?;
        inner.txindex.as_ref().map(|(i, _)| Arc::clone(i))
    }

    /// Peers in the peer handler's table, and its counters.
    fn handler_peers(&self) -> Result<(Vec<Arc<Peer>>, HandlerStats), NodeError> {
        let (tx, rx) = bounded(1);
        self.inner()?
            .handler_tx
            .send(HandlerMsg::Peers(tx))
            .map_err(|_| NodeError::Stopped)?;
        rx.recv().map_err(|_| NodeError::Stopped)
    }

    /// The sync manager's state.
    pub fn sync_snapshot(&self) -> Result<sync::SyncSnapshot, NodeError> {
        let (tx, rx) = bounded(1);
        self.inner()?
            .sync_tx
            .send(SyncMsg::Snapshot(tx))
            .map_err(|_| NodeError::Stopped)?;
        rx.recv().map_err(|_| NodeError::Stopped)
    }

    /// What the peer handler and sync manager believe now.
    pub fn snapshot(&self) -> Result<Snapshot, NodeError> {
        let connections = self.inner()?.ctx.connections.len();
        let (table, handler) = self.handler_peers()?;
        let s = self.sync_snapshot()?;
        let mut peers: Vec<PeerSnapshot> = table
            .iter()
            .map(|p| {
                let v = p.remote_version();
                let sync_info = s.peers.iter().find(|k| k.id == p.id);
                let state = if p.is_closed() {
                    PeerState::Closing
                } else if s.sync_peer == Some(p.id) {
                    PeerState::SyncPeer
                } else if s.candidates.contains(&p.id) {
                    PeerState::Candidate
                } else {
                    PeerState::Active
                };
                PeerSnapshot {
                    id: p.id,
                    addr: p.addr,
                    direction: p.direction,
                    conn_type: p.conn_type,
                    state,
                    version: v.map_or(0, |v| v.version),
                    services: p.services(),
                    start_height: v.map_or(0, |v| v.start_height),
                    user_agent: v.map_or_else(String::new, |v| v.user_agent.clone()),
                    bytes_sent: p.bytes_sent.load(Ordering::Relaxed),
                    bytes_recv: p.bytes_recv.load(Ordering::Relaxed),
                    ping: p.ping_rtt(),
                    min_ping: p.min_ping(),
                    conn_time: p
                        .connected_at
                        .duration_since(std::time::SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    last_send: p.last_send.load(Ordering::Relaxed),
                    last_recv: p.last_recv.load(Ordering::Relaxed),
                    send_queued_bytes: p.send_queued_bytes(),
                    recv_queued_bytes: p.recv_queued_bytes(),
                    addr_processed: p.addr_processed.load(Ordering::Relaxed),
                    addr_rate_limited: p.addr_rate_limited.load(Ordering::Relaxed),
                    synced_headers: sync_info.map_or(-1, |k| k.synced_headers),
                    synced_blocks: sync_info.map_or(-1, |k| k.synced_blocks),
                    inflight: sync_info.map_or_else(Vec::new, |k| k.inflight.clone()),
                    presynced_headers: sync_info.map_or(-1, |k| k.presynced_headers),
                    last_block: p.last_block_time.load(Ordering::Relaxed),
                    last_transaction: p.last_tx_time.load(Ordering::Relaxed),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        Ok(Snapshot {
            peers,
            connections,
            handler,
            sync_known: s.peers.iter().map(|p| p.id).collect(),
            sync_peer: s.sync_peer,
            candidates: s.candidates,
            anomalies: s.anomalies,
            counters: s.counters,
            initial_block_download: s.initial_block_download,
            best_height: s.best_height,
            tip: s.tip,
            best_header_height: s.best_header_height,
            recent_rejects: s.recent_rejects,
        })
    }

    /// Bytes sent and received since start (Core's `getnettotals`).
    pub fn net_totals(&self) -> Result<NetTotals, NodeError> {
        let c = &self.inner()?.ctx.connections;
        Ok(NetTotals {
            bytes_recv: c.total_bytes_recv.load(Ordering::Relaxed),
            bytes_sent: c.total_bytes_sent.load(Ordering::Relaxed),
        })
    }

    /// Core's `ping`: sends a ping to every peer whose handshake is done and
    /// that has none outstanding; the round trip shows in
    /// [`PeerSnapshot::ping`]. Returns how many were sent.
    pub fn ping_peers(&self) -> Result<usize, NodeError> {
        let peers = self.inner()?.ctx.connections.list();
        Ok(peers.iter().filter(|p| p.send_ping()).count())
    }

    /// Validates and connects a block made in this process (mining,
    /// `submitblock`); it is announced to peers if it becomes the tip.
    pub fn submit_block(
        &self,
        block: bitcoin::Block,
    ) -> Result<Vec<chain::state::ChainEvent>, SubmitBlockError> {
        let (tx, rx) = bounded(1);
        self.inner()
            .map_err(|_| SubmitBlockError::NodeStopped)?
            .sync_tx
            .send(SyncMsg::SubmitBlock(Box::new(block), tx))
            .map_err(|_| SubmitBlockError::NodeStopped)?;
        rx.recv()
            .map_err(|_| SubmitBlockError::NodeStopped)?
            .map_err(SubmitBlockError::Rejected)
    }

    /// Mines `count` regtest blocks on the tip paying to `script` (the first
    /// one including `txs`), connects and announces them. Returns their
    /// hashes.
    pub fn generate(
        &self,
        count: u32,
        script: bitcoin::ScriptBuf,
        txs: Vec<bitcoin::Transaction>,
    ) -> Result<Vec<bitcoin::BlockHash>, GenerateError> {
        let (tx, rx) = bounded(1);
        self.inner()
            .map_err(|_| GenerateError::NodeStopped)?
            .sync_tx
            .send(SyncMsg::Generate {
                count,
                script,
                txs,
                reply: tx,
            })
            .map_err(|_| GenerateError::NodeStopped)?;
        rx.recv().map_err(|_| GenerateError::NodeStopped)?
    }

    /// Runs `f` on the chain state, on the sync-manager thread, and returns
    /// its result: the general read (and, carefully, write) access for RPC
    /// and embedders. `f` should be quick; the node's sync waits for it.
    pub fn with_chain<R, F>(&self, f: F) -> Result<R, NodeError>
    where
        R: Send + 'static,
        F: FnOnce(&mut chain::state::ChainState) -> R + Send + 'static,
    {
        let (tx, rx) = bounded(1);
        self.inner()?
            .sync_tx
            .send(SyncMsg::WithChain(Box::new(move |c| {
                let _ = tx.send(f(c));
            })))
            .map_err(|_| NodeError::Stopped)?;
        rx.recv().map_err(|_| NodeError::Stopped)
    }

    /// Accepts a transaction to the mempool and relays it
    /// (`sendrawtransaction`).
    pub fn send_transaction(&self, tx: bitcoin::Transaction) -> Result<bitcoin::Txid, SendTxError> {
        let (reply, rx) = bounded(1);
        self.inner()
            .map_err(|_| SendTxError::Stopped)?
            .sync_tx
            .send(SyncMsg::SubmitTx(Box::new(tx), reply))
            .map_err(|_| SendTxError::Stopped)?;
        rx.recv()
            .map_err(|_| SendTxError::Stopped)?
            .map_err(SendTxError::Rejected)
    }

    /// Subscribes to node events (blocks, peers, transactions). At most
    /// `capacity` undelivered events are held; the node never waits for a
    /// slow subscriber, it drops and counts (see
    /// [`events::Subscription::dropped`]).
    pub fn subscribe(&self, capacity: usize) -> Result<events::Subscription, NodeError> {
        Ok(self.inner()?.events.subscribe(capacity))
    }

    /// The node's mempool, for queries (lock it briefly; see
    /// [`mempool::SharedMempool`]).
    pub fn mempool(&self) -> Result<mempool::SharedMempool, NodeError> {
        Ok(self.inner()?.mempool.clone())
    }

    /// The network's data directory (where `mempool.dat` is saved).
    pub fn net_dir(&self) -> Result<std::path::PathBuf, NodeError> {
        Ok(self.inner()?.ctx.config.net_dir())
    }

    /// Core's `invalidateblock`: marks `hash` and its descendants invalid
    /// and follows the best remaining chain.
    pub fn invalidate_block(&self, hash: bitcoin::BlockHash) -> Result<(), ChainOpError> {
        self.chain_op(move |c| c.invalidate_block(hash))
    }

    /// Core's `reconsiderblock`: undoes `invalidateblock` (and any invalid
    /// marks on that block's chain) and follows the best chain.
    pub fn reconsider_block(&self, hash: bitcoin::BlockHash) -> Result<(), ChainOpError> {
        self.chain_op(move |c| c.reconsider_block(hash))
    }

    fn chain_op<F>(&self, op: F) -> Result<(), ChainOpError>
    where
        F: FnOnce(
                &mut chain::state::ChainState,
            ) -> Result<Vec<chain::state::ChainEvent>, chain::state::RejectError>
            + Send
            + 'static,
    {
        let (tx, rx) = bounded(1);
        self.inner()
            .map_err(|_| ChainOpError::NodeStopped)?
            .sync_tx
            .send(SyncMsg::ChainOp(Box::new(op), tx))
            .map_err(|_| ChainOpError::NodeStopped)?;
        rx.recv()
            .map_err(|_| ChainOpError::NodeStopped)?
            .map_err(ChainOpError::Rejected)
    }

    /// The active tip, its height and the UTXO-set digest (flushes first).
    pub fn chain_info(&self) -> Result<sync::ChainInfo, ChainInfoError> {
        let (tx, rx) = bounded(1);
        self.inner()
            .map_err(|_| ChainInfoError::NodeStopped)?
            .sync_tx
            .send(SyncMsg::UtxoDigest(tx))
            .map_err(|_| ChainInfoError::NodeStopped)?;
        rx.recv()
            .map_err(|_| ChainInfoError::NodeStopped)?
            .map_err(ChainInfoError::Chain)
    }

    /// Core's `addnode`: keep, stop keeping, or try once a connection.
    pub fn add_node(&self, cmd: connmgr::ConnCmd) -> Result<(), NodeError> {
        self.inner()?
            .connmgr_tx
            .send(cmd)
            .map_err(|_| NodeError::Stopped)
    }

    /// Core's `getaddednodeinfo`: the added nodes and their connections.
    pub fn added_node_info(&self) -> Result<Vec<connmgr::AddedNodeInfo>, NodeError> {
        Ok(self.inner()?.connmgr_state.added_nodes())
    }

    /// Core's `setban add`: refuses and disconnects `net` until `until`
    /// (Unix seconds). False if it was already banned.
    pub fn ban(&self, net: netaddr::SubNet, until: u64) -> Result<bool, NodeError> {
        Ok(self.inner()?.ctx.connections.ban(net, until))
    }

    /// Core's `setban remove`. False if `net` was not banned.
    pub fn unban(&self, net: &netaddr::SubNet) -> Result<bool, NodeError> {
        Ok(self.inner()?.ctx.connections.unban(net))
    }

    /// The address manager (shared; `getnodeaddresses`, `addpeeraddress`).
    pub fn addrman(&self) -> Result<Arc<peer::addrman::AddrMan>, NodeError> {
        Ok(Arc::clone(&self.inner()?.ctx.addrman))
    }

    /// Current bans: subnet, start and end (Unix seconds).
    pub fn banned(&self) -> Result<Vec<(netaddr::SubNet, u64, u64)>, NodeError> {
        Ok(self.inner()?.ctx.connections.bans())
    }

    /// Disconnects peer `id` (any connection, handshaking or not). Returns
    /// false if no such connection is open.
    pub fn disconnect_peer(&self, id: PeerId) -> bool {
        let Ok(inner) = self.inner() else {
            return false;
        };
        match inner
            .ctx
            .connections
            .list()
            .into_iter()
            .find(|p| p.id == id)
        {
            Some(p) => {
                p.disconnect(DisconnectReason::Requested);
                true
            }
            None => false,
        }
    }

    /// Stops the node: no new connections, every peer disconnected, every
    /// thread joined. Also run when the handle is dropped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        log::info!("shutting down");
        inner.stop.store(true, Ordering::SeqCst);
        if let Some((_, thread)) = inner.txindex.take() {
            thread.stop();
        }
        if let (Some(t), Some(addr)) = (inner.listener_thread.take(), inner.listen_addr) {
            // Wake the blocking accept with a connection to ourselves.
            let ip = match addr.ip() {
                std::net::IpAddr::V4(ip) if ip.is_unspecified() => [127, 0, 0, 1].into(),
                std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                    std::net::Ipv6Addr::LOCALHOST.into()
                }
                ip => ip,
            };
            let _ = TcpStream::connect_timeout(
                &SocketAddr::new(ip, addr.port()),
                Duration::from_secs(1),
            );
            join_bounded("listener", t, Duration::from_secs(5));
        }
        drop(inner.connmgr_stop.take());
        if let Some(t) = inner.connmgr_thread.take() {
            join_bounded("connmgr", t, Duration::from_secs(10));
        }
        inner.ctx.connections.close_all();
        inner.ctx.connections.save_bans();
        inner.addrman_dump.stop();
        if !inner
            .ctx
            .connections
            .wait_empty(peer::conn::PEER_JOIN_TIMEOUT)
        {
            log::warn!(
                "{} peer connections still open at shutdown",
                inner.ctx.connections.len()
            );
        }
        // The peers' threads: parked ones exit, all are joined.
        if !inner.ctx.pool.shutdown(Duration::from_secs(5)) {
            log::warn!("some peer threads did not stop within 5 s; leaving them");
        }
        // Downstream order: the handler drains every Done, then stops; only
        // then is the sync manager told to stop, so it sees every DonePeer.
        let _ = inner.handler_tx.send(HandlerMsg::Shutdown);
        let _ = inner.handler_thread.join();
        let _ = inner.sync_tx.send(SyncMsg::Shutdown);
        let _ = inner.sync_thread.join();
        let config = &inner.ctx.config;
        mempool::persist::save_at_shutdown(
            &inner.mempool,
            &config.net_dir(),
            config.persist_mempool,
        );
        log::info!("shutdown complete");
    }
}

fn join_bounded(name: &str, t: JoinHandle<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if t.is_finished() {
        let _ = t.join();
    } else {
        log::warn!("{name} thread did not stop within {limit:?}; leaving it");
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
