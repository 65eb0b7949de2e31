//! The transaction index (Core's `-txindex`, `TxIndex` over `BaseIndex`):
//! txid → (block hash, position of the transaction in the block), so
//! `getrawtransaction` finds confirmed transactions.
//!
//! # Storage
//!
//! Its own LMDB environment in `<network datadir>/indexes/txindex/`
//! (Core's path), apart from the chain store: two tables, `tx` (txid, 32
//! bytes internal order → block hash 32 bytes ‖ position `u32` LE) and
//! `meta` (`best` → the block the index is in step with: hash ‖ height
//! `u32` LE). Entries and the best block change together in one write
//! transaction, so after a crash or `kill -9` the index is consistent
//! with its best block and resumes from there. The environment uses
//! `MDB_NOMETASYNC`: a power loss may undo the last batch, which is then
//! indexed again. The map is reserved once at [`MAP_SIZE`] (address space,
//! not disk). The genesis block's coinbase is not indexed (Core: it is not
//! an ordinary transaction).
//!
//! # Thread
//!
//! [`TxIndexThread`] (thread `txindex`) is the only writer. It learns
//! where the active chain is from an [`ActiveChain`] (the node answers it
//! on the sync-manager thread: the block index is in memory, not in the
//! store) and reads block bodies with `Store::get_block`. When its best
//! block is no longer on the active chain it rewinds, block by block,
//! deleting the entries of each disconnected block (Core's
//! `BaseIndex::Rewind`; Core's own txindex leaves them, strand removes them
//! so a transaction of a dead branch is not reported); then it indexes
//! forward to the tip in batches, stopping at a body not yet flushed to
//! the store. It is woken by the node's block
//! events (any message on its wake channel) and polls every
//! [`POLL_INTERVAL`] besides; the sync manager never waits for it (its
//! questions are short closures in the sync manager's inbox, and events
//! to it are dropped when its wake channel is full): a lagging index just
//! catches up.
//! RPC threads read concurrently ([`TxIndex::find_tx`], [`TxIndex::info`]).
//! The wake channel is drained between batches; events that do not fit in
//! it are dropped by the publisher (the thread is awake anyway).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use crossbeam_channel::{bounded, never, select, Receiver, Sender, TryRecvError};
use lmdb::{Database, DatabaseFlags, Environment, EnvironmentFlags, Transaction, WriteFlags};
use parking_lot::Mutex;

use crate::store::{Store, StoreError};

/// The index's directory name under `indexes/` (Core's).
pub const TXINDEX_DIR: &str = "txindex";

/// Address space reserved for the index: 1 TiB on 64-bit targets (the
/// file grows only as entries are written), 1 GiB otherwise.
pub const MAP_SIZE: usize = if usize::BITS >= 64 { 1 << 40 } else { 1 << 30 };

/// How often the index thread looks at the store without being woken
/// (strand's own; Core's index is driven by validation notifications only).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often catching up logs its progress (Core's `SYNC_LOG_INTERVAL`,
/// 30 s).
pub const SYNC_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Blocks indexed per write transaction while catching up.
const BATCH_BLOCKS: u32 = 100;

/// Entries per write transaction while catching up (bounds its size).
const BATCH_TXS: usize = 50_000;

/// Longest a batch is gathered before it is committed (bounds how stale
/// `getindexinfo` and a resumed build can be).
const BATCH_TIME: Duration = Duration::from_secs(1);

const META_BEST: &[u8] = b"best";

/// Where a transaction is: its block and its position in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPos {
    /// The block holding it.
    pub block: BlockHash,
    /// Its position in the block's transactions (0 = coinbase).
    pub index: u32,
}

impl TxPos {
    fn encode(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..32].copy_from_slice(self.block.as_byte_array());
        out[32..].copy_from_slice(&self.index.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<TxPos> {
        let hash: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let index: [u8; 4] = bytes.get(32..36)?.try_into().ok()?;
        if bytes.len() != 36 {
            return None;
        }
        Some(TxPos {
            block: BlockHash::from_byte_array(hash),
            index: u32::from_le_bytes(index),
        })
    }
}

/// What `getindexinfo` reports for the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexInfo {
    /// Whether the index caught up with the chain once since the node
    /// started (Core's `m_synced`; it stays set while following).
    pub synced: bool,
    /// Height of the block the index is in step with.
    pub best_block_height: u32,
}

/// Why the index failed.
#[derive(Debug)]
pub enum IndexError {
    /// Its directory could not be created or removed.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The index's LMDB environment failed.
    Engine {
        /// What was being done.
        op: &'static str,
        /// LMDB's message.
        message: String,
    },
    /// An entry of the index cannot be decoded.
    Corrupt(String),
    /// Reading the chain store failed.
    Store(StoreError),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Io { path, source } => write!(f, "txindex {}: {source}", path.display()),
            IndexError::Engine { op, message } => write!(f, "txindex: {op}: {message}"),
            IndexError::Corrupt(s) => write!(f, "txindex is corrupt: {s}"),
            IndexError::Store(e) => write!(f, "txindex: chain store: {e}"),
        }
    }
}

impl std::error::Error for IndexError {}

impl From<StoreError> for IndexError {
    fn from(e: StoreError) -> Self {
        IndexError::Store(e)
    }
}

fn engine(op: &'static str) -> impl Fn(lmdb::Error) -> IndexError {
    move |e| IndexError::Engine {
        op,
        message: e.to_string(),
    }
}

/// The transaction index; see the module docs.
pub struct TxIndex {
    env: Environment,
    meta: Database,
    txs: Database,
    path: PathBuf,
    /// The committed best block, mirrored for readers.
    best: Mutex<Option<(BlockHash, u32)>>,
    synced: AtomicBool,
}

impl TxIndex {
    /// The index directory of a network data directory.
    pub fn dir_in(net_dir: &Path) -> PathBuf {
        net_dir.join(super::INDEXES_DIR).join(TXINDEX_DIR)
    }

    /// Deletes the index in `dir` (for `-reindex`, which rebuilds
    /// optional indexes as Core does). A missing directory is fine.
    pub fn destroy(dir: &Path) -> Result<(), IndexError> {
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(IndexError::Io {
                path: dir.to_path_buf(),
                source,
            }),
        }
    }

    /// Opens (creating if needed) the index in `dir`.
    pub fn open(dir: &Path) -> Result<TxIndex, IndexError> {
        fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let env = Environment::new()
            .set_flags(EnvironmentFlags::NO_META_SYNC)
            .set_max_dbs(2)
            .set_map_size(MAP_SIZE)
            .open(dir)
            .map_err(engine("open environment"))?;
        let meta = env
            .create_db(Some("meta"), DatabaseFlags::empty())
            .map_err(engine("open table"))?;
        let txs = env
            .create_db(Some("tx"), DatabaseFlags::empty())
            .map_err(engine("open table"))?;
        let index = TxIndex {
            env,
            meta,
            txs,
            path: dir.to_path_buf(),
            best: Mutex::new(None),
            synced: AtomicBool::new(false),
        };
        let best = index.read_best()?;
        *index.best.lock() = best;
        Ok(index)
    }

    /// The index's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_best(&self) -> Result<Option<(BlockHash, u32)>, IndexError> {
        let txn = self.env.begin_ro_txn().map_err(engine("begin read"))?;
        let v = match txn.get(self.meta, &META_BEST) {
            Ok(v) => v,
            Err(lmdb::Error::NotFound) => return Ok(None),
            Err(e) => return Err(engine("get")(e)),
        };
        let pos = TxPos::decode(v).ok_or_else(|| {
            IndexError::Corrupt(format!("best block record of {} bytes", v.len()))
        })?;
        Ok(Some((pos.block, pos.index)))
    }

    /// Where `txid` is confirmed, if the index has it.
    pub fn find_tx(&self, txid: &Txid) -> Result<Option<TxPos>, IndexError> {
        let txn = self.env.begin_ro_txn().map_err(engine("begin read"))?;
        match txn.get(self.txs, txid.as_byte_array()) {
            Ok(v) => TxPos::decode(v)
                .map(Some)
                .ok_or_else(|| IndexError::Corrupt(format!("entry of {txid}"))),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(engine("get")(e)),
        }
    }

    /// The block the index is in step with (`None` before its first
    /// write).
    pub fn best_block(&self) -> Option<(BlockHash, u32)> {
        *self.best.lock()
    }

    /// `getindexinfo`'s view.
    pub fn info(&self) -> IndexInfo {
        IndexInfo {
            synced: self.synced.load(Ordering::Acquire),
            best_block_height: self.best_block().map_or(0, |(_, h)| h),
        }
    }

    /// Writes `puts`, deletes the entries of `removed` that point into
    /// `removed_from`, and records `best`, in one transaction.
    fn commit(
        &self,
        puts: &[(Txid, TxPos)],
        removed: &[Txid],
        removed_from: Option<BlockHash>,
        best: (BlockHash, u32),
    ) -> Result<(), IndexError> {
        let mut txn = self.env.begin_rw_txn().map_err(engine("begin write"))?;
        for (txid, pos) in puts {
            txn.put(
                self.txs,
                txid.as_byte_array(),
                &pos.encode(),
                WriteFlags::empty(),
            )
            .map_err(engine("put"))?;
        }
        if let Some(block) = removed_from {
            for txid in removed {
                let points_here = match txn.get(self.txs, txid.as_byte_array()) {
                    Ok(v) => TxPos::decode(v).is_some_and(|p| p.block == block),
                    Err(lmdb::Error::NotFound) => false,
                    Err(e) => return Err(engine("get")(e)),
                };
                if points_here {
                    txn.del(self.txs, txid.as_byte_array(), None)
                        .map_err(engine("delete"))?;
                }
            }
        }
        let record = TxPos {
            block: best.0,
            index: best.1,
        };
        txn.put(self.meta, &META_BEST, &record.encode(), WriteFlags::empty())
            .map_err(engine("put"))?;
        txn.commit().map_err(engine("commit"))?;
        *self.best.lock() = Some(best);
        Ok(())
    }

    /// Empties the index (it is then rebuilt from genesis).
    fn clear(&self) -> Result<(), IndexError> {
        let mut txn = self.env.begin_rw_txn().map_err(engine("begin write"))?;
        txn.clear_db(self.txs).map_err(engine("clear"))?;
        txn.clear_db(self.meta).map_err(engine("clear"))?;
        txn.commit().map_err(engine("commit"))?;
        *self.best.lock() = None;
        self.synced.store(false, Ordering::Release);
        Ok(())
    }
}

/// The index thread's view of the active chain. The node implements it
/// by asking the sync-manager thread; `None` means the chain cannot answer
/// (the node is stopping).
pub trait ActiveChain: Send + 'static {
    /// The active tip's hash and height.
    fn tip(&self) -> Option<(BlockHash, u32)>;
    /// The active chain's hashes from height `from`, at most `count` of
    /// them (fewer at the tip).
    fn hashes(&self, from: u32, count: u32) -> Option<Vec<BlockHash>>;
}

/// Tuning of the index thread.
#[derive(Debug, Clone, Default)]
pub struct TxIndexOptions {
    /// Test builds: a pause after each indexed block while catching up,
    /// so a test can interrupt the build.
    pub block_delay: Duration,
}

/// The running index thread. [`TxIndexThread::stop`] (or dropping it)
/// stops and joins it.
pub struct TxIndexThread {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TxIndexThread {
    /// Starts the `txindex` thread over `index`, the active `chain` and the
    /// chain `store` (block bodies); any message on `wake` (the node's
    /// events) makes it look at the chain at once.
    pub fn start<W: Send + 'static>(
        index: Arc<TxIndex>,
        chain: Box<dyn ActiveChain>,
        store: Arc<Store>,
        wake: Receiver<W>,
        opts: TxIndexOptions,
    ) -> std::io::Result<TxIndexThread> {
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("txindex".into())
            .spawn(move || {
                let mut sync = Syncer {
                    index,
                    chain,
                    store,
                    stop: stop_rx,
                    opts,
                    last_log: None,
                };
                sync.run(wake);
            })?;
        Ok(TxIndexThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops the thread (it finishes the batch it is writing) and joins it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TxIndexThread {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What one step of catching up did.
enum Step {
    /// The index is at the store's tip.
    AtTip,
    /// It moved (forward or back); look again.
    Moved,
    /// The store changed under it; wait for the next wake-up.
    Wait,
}

struct Syncer {
    index: Arc<TxIndex>,
    chain: Box<dyn ActiveChain>,
    store: Arc<Store>,
    stop: Receiver<()>,
    opts: TxIndexOptions,
    last_log: Option<Instant>,
}

impl Syncer {
    fn stopping(&self) -> bool {
        matches!(self.stop.try_recv(), Err(TryRecvError::Disconnected))
    }

    fn run<W>(&mut self, mut wake: Receiver<W>) {
        let start = self.index.best_block().map_or(0, |(_, h)| h);
        log::info!("Syncing txindex with block chain from height {start}");
        loop {
            if let Err(e) = self.catch_up(&wake) {
                log::error!("{e}; txindex stops following the chain until restart");
                let _ = self.stop.recv();
                return;
            }
            select! {
                recv(self.stop) -> _ => return,
                recv(wake) -> msg => {
                    if msg.is_err() {
                        wake = never();
                    }
                    while wake.try_recv().is_ok() {}
                }
                default(POLL_INTERVAL) => {}
            }
        }
    }

    /// Steps until the index is at the store's tip, the store moves under
    /// it, or the node stops.
    fn catch_up<W>(&mut self, wake: &Receiver<W>) -> Result<(), IndexError> {
        loop {
            if self.stopping() {
                return Ok(());
            }
            // Wake-ups that came while working are served by this pass.
            while wake.try_recv().is_ok() {}
            match self.step() {
                Ok(Step::Moved) => {}
                Ok(Step::Wait) => return Ok(()),
                Ok(Step::AtTip) => {
                    if !self.index.synced.swap(true, Ordering::AcqRel) {
                        let h = self.index.best_block().map_or(0, |(_, h)| h);
                        log::info!("txindex is enabled at height {h}");
                    }
                    return Ok(());
                }
                Err(IndexError::Corrupt(why)) => {
                    log::warn!("txindex is corrupt ({why}); rebuilding it");
                    self.index.clear()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn step(&mut self) -> Result<Step, IndexError> {
        let Some((tip, tip_height)) = self.chain.tip() else {
            return Ok(Step::Wait);
        };
        let Some((best, height)) = self.index.best_block() else {
            let Some(&genesis) = self.chain.hashes(0, 1).as_deref().and_then(<[_]>::first) else {
                return Ok(Step::Wait);
            };
            self.index.commit(&[], &[], None, (genesis, 0))?;
            return Ok(Step::Moved);
        };
        let Some(at_best) = self.chain.hashes(height, 1) else {
            return Ok(Step::Wait);
        };
        if at_best.first() != Some(&best) {
            return self.rewind(best, height);
        }
        if best == tip || height >= tip_height {
            return Ok(if best == tip { Step::AtTip } else { Step::Wait });
        }
        self.forward(best, height, tip_height)
    }

    /// Un-indexes `best`, no longer on the active chain.
    fn rewind(&mut self, best: BlockHash, height: u32) -> Result<Step, IndexError> {
        if height == 0 {
            // Another genesis: not this network's index.
            return Err(IndexError::Corrupt(
                "best block is a foreign genesis".into(),
            ));
        }
        let Some(block) = self.store.get_block(&best)? else {
            return Err(IndexError::Corrupt(format!(
                "best block {best} is not in the chain store"
            )));
        };
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        let prev = (block.header.prev_blockhash, height - 1);
        self.index.commit(&[], &txids, Some(best), prev)?;
        log::info!("txindex: rewound block {best} at height {height}");
        Ok(Step::Moved)
    }

    /// Indexes up to [`BATCH_BLOCKS`] blocks after `best` in one commit.
    fn forward(&mut self, best: BlockHash, height: u32, tip: u32) -> Result<Step, IndexError> {
        let mut puts = Vec::new();
        let mut cur = (best, height);
        let started = Instant::now();
        let ahead = self
            .chain
            .hashes(height + 1, BATCH_BLOCKS.min(tip - height))
            .unwrap_or_default();
        let mut ahead = ahead.into_iter();
        while cur.1 < tip
            && cur.1 - height < BATCH_BLOCKS
            && puts.len() < BATCH_TXS
            && started.elapsed() < BATCH_TIME
        {
            let next_height = cur.1 + 1;
            let Some(next) = ahead.next() else {
                break;
            };
            let Some(block) = self.store.get_block(&next)? else {
                break;
            };
            if block.header.prev_blockhash != cur.0 {
                break;
            }
            for (i, tx) in block.txdata.iter().enumerate() {
                puts.push((
                    tx.compute_txid(),
                    TxPos {
                        block: next,
                        index: i as u32,
                    },
                ));
            }
            cur = (next, next_height);
            if !self.opts.block_delay.is_zero() {
                std::thread::sleep(self.opts.block_delay);
                if self.stopping() {
                    break;
                }
            }
        }
        if cur.1 == height {
            return Ok(Step::Wait);
        }
        self.index.commit(&puts, &[], None, cur)?;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= SYNC_LOG_INTERVAL)
        {
            if self.last_log.is_some() && !self.index.synced.load(Ordering::Acquire) {
                log::info!("Syncing txindex with block chain from height {}", cur.1);
            }
            self.last_log = Some(Instant::now());
        }
        Ok(Step::Moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_reject_bad_lengths() {
        let pos = TxPos {
            block: BlockHash::from_byte_array([7; 32]),
            index: 513,
        };
        assert_eq!(TxPos::decode(&pos.encode()), Some(pos));
        assert_eq!(TxPos::decode(&pos.encode()[..35]), None);
        let mut long = pos.encode().to_vec();
        long.push(0);
        assert_eq!(TxPos::decode(&long), None);
    }
}
