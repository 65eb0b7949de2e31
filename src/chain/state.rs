//! Chain state: block index, best header chain, active chain, UTXO cache,
//! connecting and disconnecting blocks, reorganisation (Core's
//! `Chainstate`, btcd's `blockchain.BlockChain`).
//!
//! Owned by the sync-manager thread, the store's only writer. Headers are
//! validated and indexed as they arrive ([`ChainState::process_headers`]);
//! blocks are checked on arrival and kept until they can be connected in
//! order along the most-work header chain ([`ChainState::accept_block`],
//! which then activates the best chain): in memory up to
//! [`MAX_PENDING_BYTES`], in the store beyond. Blocks nobody asked for are
//! kept only as Core's `AcceptBlock` allows
//! ([`ChainState::accept_block_requested`]).
//!
//! Crash safety: the store's tip and UTXO set change together in one LMDB
//! transaction (a *flush*). Flushes happen every [`ChainOptions::flush_blocks`]
//! blocks, when the UTXO cache is over its limit, when the node catches up
//! with its best header, before a reorganisation and at shutdown. Block
//! bodies and undo data are written in their own, earlier commits; a crash
//! loses at most the blocks connected since the last flush, which are
//! downloaded and connected again.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::{Amount, Block, BlockHash, OutPoint, TxOut};

use super::check::{self, Coin as CheckCoin};
use super::coins::{BlockCoins, CoinsCache, ENTRY_COST};
use super::hasher::BlockMap;
use super::network::Network;
use super::pow::{self, HeaderAncestry};
use super::script::{self, ScriptCheckPool};
use super::{ChainParams, RejectKind, ValidationError};
use crate::store::{BlockStatus, BlockUndo, Coin, IndexEntry, Store, StoreError, WriteBatch};

/// Tuning of the chain state.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Script-check worker threads (0 = verify on the sync-manager thread).
    pub script_threads: usize,
    /// UTXO cache limit in bytes (approximate).
    pub coins_cache_bytes: usize,
    /// Flush at least every this many connected blocks.
    pub flush_blocks: usize,
    /// Commit buffered block bodies and undo data beyond this many bytes.
    pub block_write_bytes: usize,
    /// Accepted, not yet connectable block bodies held in memory up to this
    /// many bytes; the rest are written to the store
    /// ([`MAX_PENDING_BYTES`] by default).
    pub pending_bytes: usize,
    /// Signet only: a custom challenge instead of the default signet's
    /// (Core's `-signetchallenge`; changes the network magic).
    pub signet_challenge: Option<Vec<u8>>,
    /// Replaces the network's minimum chain work (Core's
    /// `-minimumchainwork`; see `chain::headers_sync`).
    pub minimum_chain_work: Option<Work>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            script_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            coins_cache_bytes: 48 << 20,
            flush_blocks: 2_000,
            block_write_bytes: 8 << 20,
            pending_bytes: MAX_PENDING_BYTES,
            signet_challenge: None,
            minimum_chain_work: None,
        }
    }
}

/// Why the chain state failed (as opposed to a block being invalid).
#[derive(Debug)]
pub enum ChainError {
    /// The store failed.
    Store(StoreError),
    /// The store's contents contradict themselves.
    Inconsistent(String),
    /// Script-check threads could not start.
    Threads(std::io::Error),
    /// The network has no consensus parameters here.
    UnsupportedNetwork(Network),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Store(e) => write!(f, "chain store: {e}"),
            ChainError::Inconsistent(s) => write!(f, "chain store is inconsistent: {s}"),
            ChainError::Threads(e) => write!(f, "cannot start script-check threads: {e}"),
            ChainError::UnsupportedNetwork(n) => write!(f, "network {n} is not supported"),
        }
    }
}

impl std::error::Error for ChainError {}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        ChainError::Store(e)
    }
}

/// Why a header or block was not accepted.
#[derive(Debug)]
pub enum RejectError {
    /// It breaks a consensus rule.
    Invalid(ValidationError),
    /// Its parent is unknown (headers that do not connect).
    UnknownParent(BlockHash),
    /// The chain state itself failed.
    Chain(ChainError),
}

impl fmt::Display for RejectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectError::Invalid(e) => write!(f, "{e}"),
            RejectError::UnknownParent(h) => write!(f, "unknown parent block {h}"),
            RejectError::Chain(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RejectError {}

impl From<ChainError> for RejectError {
    fn from(e: ChainError) -> Self {
        RejectError::Chain(e)
    }
}

impl From<StoreError> for RejectError {
    fn from(e: StoreError) -> Self {
        RejectError::Chain(ChainError::Store(e))
    }
}

/// Something that changed the active chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// A block was connected at the tip.
    Connected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The tip block was disconnected (reorganisation).
    Disconnected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A block failed validation and was marked invalid.
    Invalid {
        /// Its hash.
        hash: BlockHash,
        /// Core's reject reason and detail.
        reason: String,
    },
}

/// Result of [`ChainState::process_headers`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadersOutcome {
    /// Headers not seen before.
    pub new: usize,
    /// Whether the best header changed.
    pub new_best: bool,
}

/// The chain state; see the module docs.
pub struct ChainState {
    params: ChainParams,
    store: Arc<Store>,
    opts: ChainOptions,
    pub(super) index: BlockMap<BlockHash, IndexEntry>,
    /// Active chain by height; `active[0]` is genesis.
    active: Vec<BlockHash>,
    /// Most-work valid header chain by height.
    header_chain: Vec<BlockHash>,
    coins: CoinsCache,
    pool: ScriptCheckPool,
    /// Blocks received and checked, waiting to be connected, held in
    /// memory up to [`MAX_PENDING_BYTES`]; beyond it they go to the store.
    pending: HashMap<BlockHash, Block>,
    /// Serialized size of the blocks in `pending`.
    pending_bytes: usize,
    /// Unrequested blocks not processed (Core's `AcceptBlock` with
    /// `fRequested` false: less work than the tip, too far ahead, or below
    /// the minimum chain work).
    unrequested_dropped: u64,
    /// Block bodies and undo data not yet committed.
    block_writes: WriteBatch,
    dirty_index: std::collections::HashSet<BlockHash, super::hasher::KeyedState>,
    /// Height of the tip recorded in the store.
    flushed_height: u32,
    blocks_since_flush: usize,
    last_log: Instant,
    logged_height: u32,
    txs_connected: u64,
    /// Per header, the answer of the min-difficulty walk (testnet and
    /// regtest only); bounded, rebuilt on demand.
    min_diff_bits: BlockMap<BlockHash, CompactTarget>,
    /// Height of the highest checkpoint whose header we hold.
    last_checkpoint: Option<u32>,
    /// Pruning mode and stored block sizes (`chain/prune.rs`).
    pub(super) prune: super::prune_state::PruneState,
}

/// New index entries held before a flush writes them.
const DIRTY_INDEX_LIMIT: usize = 20_000;

/// Most bytes of accepted, not yet connected block bodies held in memory:
/// one peer's full quota of blocks in flight (Core's
/// `MAX_BLOCKS_IN_TRANSIT_PER_PEER`, 16) at the largest message Core
/// accepts (`MAX_PROTOCOL_MESSAGE_LENGTH`, 4,000,000 bytes). Core keeps no
/// bodies in memory at all (`AcceptBlock` writes every one to disk); strand
/// keeps this much so that blocks arriving a little out of order connect
/// without a store round trip, and writes the rest to the store.
pub const MAX_PENDING_BYTES: usize = 16 * 4_000_000;

/// How far ahead of the active tip an unrequested block may be and still be
/// processed (Core's `MIN_BLOCKS_TO_KEEP`, used by `AcceptBlock`'s
/// `fTooFarAhead`).
pub const MIN_BLOCKS_TO_KEEP: u32 = 288;

/// How old (against the best header's time) a fully validated block off
/// the active chain may be and still be served: Core's
/// `STALE_RELAY_AGE_LIMIT`, 30 days.
pub const STALE_RELAY_AGE_LIMIT: u32 = 30 * 24 * 60 * 60;

/// Entries kept in [`ChainState::min_diff_bits`] before it is cleared.
const MIN_DIFF_MEMO: usize = 50_000;

struct Ancestry<'a> {
    chain: &'a ChainState,
    tip: BlockHash,
    height: u32,
}

impl HeaderAncestry for Ancestry<'_> {
    fn height(&self) -> u32 {
        self.height
    }

    fn header_at(&self, height: u32) -> Option<Header> {
        self.chain
            .ancestor(&self.tip, height)
            .map(|(_, e)| e.header)
    }

    fn last_non_min_difficulty_bits(
        &self,
        height: u32,
        header: Header,
        limit_bits: CompactTarget,
        interval: u32,
    ) -> Result<CompactTarget, ValidationError> {
        if height == self.height {
            if let Some(bits) = self.chain.min_diff_bits.get(&self.tip) {
                return Ok(*bits);
            }
        }
        pow::walk_min_difficulty(self, height, header, limit_bits, interval)
    }
}

fn is_unspendable(out: &TxOut) -> bool {
    out.script_pubkey.is_op_return() || out.script_pubkey.len() > 10_000
}

impl ChainState {
    /// Opens (or creates) the chain state in `dir` for `network`.
    pub fn open(
        dir: &Path,
        network: Network,
        opts: ChainOptions,
    ) -> Result<ChainState, ChainError> {
        let mut params = match (&opts.signet_challenge, network) {
            (Some(c), Network::Signet) => ChainParams::custom_signet(c.clone()),
            _ => ChainParams::for_network(network.to_bitcoin())
                .ok_or(ChainError::UnsupportedNetwork(network))?,
        };
        if let Some(work) = opts.minimum_chain_work {
            params.minimum_chain_work = work;
        }
        // A custom signet's magic differs: its store refuses another's.
        let store = Arc::new(Store::open(dir, params.magic().to_bytes())?);
        let pool = ScriptCheckPool::new(opts.script_threads).map_err(ChainError::Threads)?;
        let mut chain = ChainState {
            params,
            store,
            opts,
            index: BlockMap::default(),
            active: Vec::new(),
            header_chain: Vec::new(),
            coins: CoinsCache::new(),
            pool,
            pending: HashMap::new(),
            pending_bytes: 0,
            unrequested_dropped: 0,
            block_writes: WriteBatch::new(),
            dirty_index: Default::default(),
            flushed_height: 0,
            blocks_since_flush: 0,
            last_log: Instant::now(),
            logged_height: 0,
            txs_connected: 0,
            min_diff_bits: BlockMap::default(),
            last_checkpoint: None,
            prune: Default::default(),
        };
        chain.load(network)?;
        Ok(chain)
    }

    fn load(&mut self, network: Network) -> Result<(), ChainError> {
        let genesis = bitcoin::constants::genesis_block(network.to_bitcoin());
        let genesis_hash = genesis.block_hash();
        match self.store.tip()? {
            None => {
                let entry = IndexEntry {
                    header: genesis.header,
                    height: 0,
                    chain_work: pow::block_proof(genesis.header.bits),
                    status: BlockStatus::VALID_HEADER
                        | BlockStatus::HAVE_DATA
                        | BlockStatus::VALID_TRANSACTIONS
                        | BlockStatus::VALID_SCRIPTS,
                    invalid_reason: None,
                };
                let mut batch = WriteBatch::new();
                batch.put_block_index(&genesis_hash, &entry);
                batch.put_block(&genesis_hash, &genesis);
                batch.set_active(0, &genesis_hash);
                batch.set_tip(&genesis_hash);
                self.store.commit(&batch)?;
                self.index.insert(genesis_hash, entry);
                self.active = vec![genesis_hash];
            }
            Some(tip) => {
                self.index = self.store.load_block_index()?.into_iter().collect();
                self.active = self.store.load_active_chain()?;
                if self.active.first() != Some(&genesis_hash) {
                    return Err(ChainError::Inconsistent(
                        "active chain does not start at this network's genesis".into(),
                    ));
                }
                if self.active.last() != Some(&tip) {
                    return Err(ChainError::Inconsistent(format!(
                        "tip {tip} is not the end of the active chain"
                    )));
                }
                for h in &self.active {
                    if !self.index.contains_key(h) {
                        return Err(ChainError::Inconsistent(format!(
                            "active block {h} missing from the index"
                        )));
                    }
                }
            }
        }
        self.last_checkpoint = self
            .params
            .checkpoints
            .iter()
            .filter(|(_, h)| self.index.contains_key(h))
            .map(|(height, _)| *height)
            .max();
        self.flushed_height = self.height();
        self.logged_height = self.height();
        self.recompute_best_header();
        log::info!(
            "chain state loaded: height {} tip {} ({} headers, best header height {})",
            self.height(),
            self.tip(),
            self.index.len(),
            self.best_header_height()
        );
        Ok(())
    }

    /// Consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The store (for read-only use by other threads).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        self.active.len().saturating_sub(1) as u32
    }

    /// Hash of the active tip.
    pub fn tip(&self) -> BlockHash {
        self.active
            .last()
            .copied()
            .unwrap_or_else(BlockHash::all_zeros)
    }

    /// Hash of the active block at `height`.
    pub fn active_hash(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// Tip of the most-work valid header chain.
    pub fn best_header(&self) -> BlockHash {
        self.header_chain
            .last()
            .copied()
            .unwrap_or_else(|| self.tip())
    }

    /// Height of the best header.
    pub fn best_header_height(&self) -> u32 {
        self.header_chain.len().saturating_sub(1) as u32
    }

    /// The index entry of `hash`.
    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .is_some_and(|e| self.active.get(e.height as usize) == Some(hash))
    }

    /// The unspent output `op` at the tip, if any.
    pub fn coin(&mut self, op: &OutPoint) -> Result<Option<Coin>, ChainError> {
        Ok(self.coins.get(op, &self.store)?)
    }

    /// Chain tips (Core's `getchaintips`): every indexed block no other
    /// indexed block builds on, with its height and the height at which its
    /// branch leaves the active chain.
    pub fn chain_tips(&self) -> Vec<(BlockHash, u32, u32, BlockStatus)> {
        let mut has_child: std::collections::HashSet<BlockHash, super::hasher::KeyedState> =
            Default::default();
        for e in self.index.values() {
            has_child.insert(e.header.prev_blockhash);
        }
        let mut tips = Vec::new();
        for (h, e) in &self.index {
            if has_child.contains(h) && *h != self.tip() {
                continue;
            }
            let mut fork = e.height;
            let mut cur = *h;
            while !self.is_active(&cur) {
                match self.index.get(&cur) {
                    Some(x) => {
                        cur = x.header.prev_blockhash;
                        fork = x.height.saturating_sub(1);
                    }
                    None => break,
                }
            }
            tips.push((*h, e.height, e.height - fork.min(e.height), e.status));
        }
        tips.sort_by_key(|t| std::cmp::Reverse(t.1));
        tips
    }

    /// Total transactions connected since start (for progress logs).
    pub fn txs_connected(&self) -> u64 {
        self.txs_connected
    }

    /// Ancestor of `hash` at `height`, walking back to the best header chain
    /// or the active chain and then indexing them.
    fn ancestor(&self, hash: &BlockHash, height: u32) -> Option<(BlockHash, &IndexEntry)> {
        let mut cur = *hash;
        let mut e = self.index.get(&cur)?;
        if height > e.height {
            return None;
        }
        loop {
            if e.height == height {
                return Some((cur, e));
            }
            let h = e.height as usize;
            for chain in [&self.header_chain, &self.active] {
                if chain.get(h) == Some(&cur) {
                    let a = *chain.get(height as usize)?;
                    return self.index.get(&a).map(|e| (a, e));
                }
            }
            cur = e.header.prev_blockhash;
            e = self.index.get(&cur)?;
        }
    }

    /// Height of the last block the chain ending at `hash` shares with the
    /// active chain (Core's `LastCommonAncestor` with the tip), `None` for
    /// an unknown hash.
    pub fn last_common_height(&self, hash: &BlockHash) -> Option<u32> {
        let entry = self.index.get(hash)?;
        let mut h = entry.height.min(self.height());
        loop {
            let (a, _) = self.ancestor(hash, h)?;
            if self.active.get(h as usize) == Some(&a) || h == 0 {
                return Some(h);
            }
            h -= 1;
        }
    }

    /// Block locator of the best header chain (Core's `GetLocator`): the
    /// last 10 hashes, then exponentially sparser, ending with genesis.
    pub fn block_locator(&self) -> Vec<BlockHash> {
        locator_of(&self.header_chain)
    }

    /// Block locator of the best header chain from the best header's
    /// parent (Core's `GetLocator(m_best_header->pprev)` for `getheaders`):
    /// a peer on our chain answers with at least our best header, so we
    /// learn what it has.
    pub fn locator_before_best(&self) -> Vec<BlockHash> {
        let end = self.header_chain.len().saturating_sub(1).max(1);
        locator_of(self.header_chain.get(..end).unwrap_or(&self.header_chain))
    }

    /// Block locator of the active chain.
    pub fn active_locator(&self) -> Vec<BlockHash> {
        locator_of(&self.active)
    }

    /// Block locator starting at any indexed block (Core's
    /// `LocatorEntries`): itself and its 9 parents, then exponentially
    /// sparser ancestors, ending with genesis. Empty for an unknown hash.
    pub fn locator_from(&self, hash: &BlockHash) -> Vec<BlockHash> {
        let Some(entry) = self.index.get(hash) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut height = i64::from(entry.height);
        let mut step = 1i64;
        while height > 0 {
            if let Some((a, _)) = self.ancestor(hash, height as u32) {
                out.push(a);
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.extend(self.active.first());
        out
    }

    /// Whether `hash` is on the best header chain or the active chain
    /// (Core's `IsAncestorOfBestHeaderOrTip`): headers ending there add
    /// nothing to memory, so they skip the anti-DoS work check.
    pub fn is_ancestor_of_best_header_or_tip(&self, hash: &BlockHash) -> bool {
        self.index.get(hash).is_some_and(|e| {
            let h = e.height as usize;
            self.header_chain.get(h) == Some(hash) || self.active.get(h) == Some(hash)
        })
    }

    /// The last common block of the active chain and `locator` (genesis if
    /// none is known): where to start answering `getheaders`/`getblocks`.
    pub fn find_fork(&self, locator: &[BlockHash]) -> u32 {
        locator
            .iter()
            .find(|h| self.is_active(h))
            .and_then(|h| self.index.get(h))
            .map_or(0, |e| e.height)
    }

    /// Median time past of the active block at `height`.
    pub fn median_time_past(&self, height: u32) -> Option<u32> {
        self.mtp_active(height)
    }

    /// Median time past of `hash` (at `height`), active or not (Core's
    /// `pindexPrev->GetMedianTimePast()`).
    fn mtp_of(&self, hash: &BlockHash, height: u32) -> Result<u32, RejectError> {
        let ancestry = Ancestry {
            chain: self,
            tip: *hash,
            height,
        };
        pow::median_time_past_at(&ancestry, height).map_err(RejectError::Invalid)
    }

    fn mtp_active(&self, height: u32) -> Option<u32> {
        let low = height.saturating_sub(10);
        let mut times = Vec::with_capacity(11);
        for h in low..=height {
            times.push(self.index.get(self.active.get(h as usize)?)?.header.time);
        }
        Some(pow::median_time_past(&times))
    }

    /// Validates and indexes `headers` (in order; each must connect to a
    /// known header). Stops at the first invalid one.
    pub fn process_headers(&mut self, headers: &[Header]) -> Result<HeadersOutcome, RejectError> {
        let mut outcome = HeadersOutcome::default();
        let best_work = self.best_work();
        let mut best: Option<(BlockHash, Work)> = None;
        let mut result = Ok(());
        for header in headers {
            match self.accept_header(header) {
                Ok(Some((hash, entry))) => {
                    // Written at the next flush: headers lost in a crash
                    // are simply downloaded again.
                    self.dirty_index.insert(hash);
                    let work = entry.chain_work;
                    let extends_best = entry.header.prev_blockhash == self.best_header();
                    self.remember_min_diff_bits(hash, &entry);
                    if self.params.checkpoint_at(entry.height) == Some(hash) {
                        self.last_checkpoint = self.last_checkpoint.max(Some(entry.height));
                    }
                    self.index.insert(hash, entry);
                    outcome.new += 1;
                    if work > best.map_or(best_work, |b| b.1) {
                        if extends_best {
                            // The common case, kept O(1): later headers of
                            // this message find their ancestors by height.
                            self.header_chain.push(hash);
                            outcome.new_best = true;
                        } else {
                            best = Some((hash, work));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if self.dirty_index.len() >= DIRTY_INDEX_LIMIT {
            self.flush()?;
        }
        if let Some((hash, work)) = best {
            if work > self.best_work() {
                self.set_best_header(hash);
                outcome.new_best = true;
            }
        }
        result.map(|()| outcome)
    }

    /// Records the min-difficulty walk's answer for a new header.
    fn remember_min_diff_bits(&mut self, hash: BlockHash, entry: &IndexEntry) {
        if !self.params.allow_min_difficulty_blocks {
            return;
        }
        let interval = self.params.difficulty_adjustment_interval().max(1);
        let limit = self.params.pow_limit_bits();
        let bits = if entry.height.is_multiple_of(interval) || entry.header.bits != limit {
            entry.header.bits
        } else {
            match self.min_diff_bits.get(&entry.header.prev_blockhash) {
                Some(b) => *b,
                None => {
                    let Some(prev) = self.index.get(&entry.header.prev_blockhash) else {
                        return;
                    };
                    let ancestry = Ancestry {
                        chain: self,
                        tip: entry.header.prev_blockhash,
                        height: prev.height,
                    };
                    match ancestry.last_non_min_difficulty_bits(
                        prev.height,
                        prev.header,
                        limit,
                        interval,
                    ) {
                        Ok(b) => b,
                        Err(_) => return,
                    }
                }
            }
        };
        if self.min_diff_bits.len() >= MIN_DIFF_MEMO {
            self.min_diff_bits.clear();
        }
        self.min_diff_bits.insert(hash, bits);
    }

    fn best_work(&self) -> Work {
        self.index
            .get(&self.best_header())
            .map_or(Work::from_be_bytes([0; 32]), |e| e.chain_work)
    }

    /// Checks one header; `Ok(None)` if already known.
    fn accept_header(
        &self,
        header: &Header,
    ) -> Result<Option<(BlockHash, IndexEntry)>, RejectError> {
        let hash = header.block_hash();
        if let Some(e) = self.index.get(&hash) {
            if e.status.is_failed() {
                return Err(RejectError::Invalid(
                    ValidationError::header("duplicate-invalid")
                        .with_detail(e.invalid_reason.clone().unwrap_or_default()),
                ));
            }
            return Ok(None);
        }
        let prev_hash = header.prev_blockhash;
        let Some(prev) = self.index.get(&prev_hash) else {
            return Err(RejectError::UnknownParent(prev_hash));
        };
        if prev.status.is_failed() {
            return Err(RejectError::Invalid(ValidationError::header("bad-prevblk")));
        }
        check::check_block_header(header, &self.params).map_err(RejectError::Invalid)?;
        check::check_fork_prior_to_checkpoint(prev.height + 1, self.last_checkpoint)
            .map_err(RejectError::Invalid)?;
        let ancestry = Ancestry {
            chain: self,
            tip: prev_hash,
            height: prev.height,
        };
        check::check_block_header_context(
            header,
            &ancestry,
            crate::util::unix_time(),
            &self.params,
        )
        .map_err(RejectError::Invalid)?;
        Ok(Some((
            hash,
            IndexEntry {
                header: *header,
                height: prev.height + 1,
                chain_work: prev.chain_work + pow::block_proof(header.bits),
                status: BlockStatus::VALID_HEADER,
                invalid_reason: None,
            },
        )))
    }

    fn set_best_header(&mut self, hash: BlockHash) {
        let Some(entry) = self.index.get(&hash) else {
            return;
        };
        let height = entry.height as usize;
        // Walk back until the old header chain (or genesis) is met.
        let mut branch = Vec::new();
        let mut cur = hash;
        while let Some(e) = self.index.get(&cur) {
            if self.header_chain.get(e.height as usize) == Some(&cur) {
                break;
            }
            branch.push(cur);
            if e.height == 0 {
                break;
            }
            cur = e.header.prev_blockhash;
        }
        let keep = height + 1 - branch.len();
        self.header_chain.truncate(keep);
        self.header_chain.extend(branch.into_iter().rev());
    }

    /// Picks the most-work header that is not invalid (first seen wins ties).
    fn recompute_best_header(&mut self) {
        let mut best: Option<(&BlockHash, &IndexEntry)> = None;
        for (h, e) in &self.index {
            if e.status.is_failed() {
                continue;
            }
            let better = match best {
                None => true,
                Some((bh, be)) => {
                    e.chain_work > be.chain_work
                        || (e.chain_work == be.chain_work
                            && self.active.get(e.height as usize) == Some(h)
                            && self.active.get(be.height as usize) != Some(bh))
                }
            };
            if better {
                best = Some((h, e));
            }
        }
        let best = best.map(|(h, _)| *h).unwrap_or_else(|| self.tip());
        self.header_chain.clear();
        self.set_best_header(best);
    }

    /// Takes a block we asked for (or made): see
    /// [`ChainState::accept_block_requested`].
    pub fn accept_block(&mut self, block: Block) -> Result<Vec<ChainEvent>, RejectError> {
        self.accept_block_requested(block, true)
    }

    /// Takes a block from a peer: indexes its header if new, checks it
    /// context-free, keeps it for connection, and connects whatever can be
    /// connected. Returns the chain events, or why the block was rejected.
    ///
    /// As Core's `AcceptBlock`, a block nobody asked for (`requested`
    /// false) is processed only if its chain has at least the tip's work
    /// and the minimum chain work and it is at most [`MIN_BLOCKS_TO_KEEP`]
    /// blocks ahead of the tip; otherwise its header is kept, its body
    /// dropped (counted in [`ChainState::unrequested_dropped`]) and no
    /// events are returned.
    pub fn accept_block_requested(
        &mut self,
        block: Block,
        requested: bool,
    ) -> Result<Vec<ChainEvent>, RejectError> {
        let hash = block.block_hash();
        if !self.index.contains_key(&hash) {
            self.process_headers(&[block.header])?;
        }
        let Some(entry) = self.index.get(&hash) else {
            return Err(RejectError::UnknownParent(block.header.prev_blockhash));
        };
        if entry.status.is_failed() {
            return Err(RejectError::Invalid(ValidationError::consensus(
                "duplicate-invalid",
            )));
        }
        if entry.status.contains(BlockStatus::HAVE_DATA) || self.pending.contains_key(&hash) {
            return Ok(Vec::new());
        }
        let (height, prev_hash) = (entry.height, entry.header.prev_blockhash);
        if !requested {
            let work = entry.chain_work;
            let tip_work = self.index.get(&self.tip()).map(|e| e.chain_work);
            let less_work = tip_work.is_some_and(|t| work < t);
            let too_far = height > self.height().saturating_add(MIN_BLOCKS_TO_KEEP);
            if less_work || too_far || work < self.params.minimum_chain_work {
                log::debug!(
                    "unrequested block {hash} at height {height} not processed (less work: {less_work}, too far ahead: {too_far})"
                );
                self.unrequested_dropped += 1;
                return Ok(Vec::new());
            }
        }
        // Core's ProcessNewBlock: a context-free failure never marks the
        // hash. Another serialization of the same header (merkle mutations,
        // 64-byte transactions posing as inner nodes, stripped witnesses)
        // may be valid, and CheckBlock is cheap enough not to cache.
        if let Err(e) = check::check_block(&block, &self.params) {
            log::info!("block {hash} rejected (not marked invalid): {e}");
            return Err(RejectError::Invalid(e));
        }
        // Core's AcceptBlock: the contextual checks, witness commitment
        // included, run before the block is kept, so only a body that
        // matches its header ever reaches `pending` or the store. Mutations
        // are not marked; other failures are permanent for this hash.
        let prev_mtp = self.mtp_of(&prev_hash, height.saturating_sub(1))?;
        if let Err(e) = check::contextual_check_block(&block, height, prev_mtp, &self.params) {
            if e.is_permanent() {
                self.mark_invalid(hash, &e)?;
                log::info!("block {hash} rejected: {e}");
            } else {
                log::info!("block {hash} rejected (not marked invalid): {e}");
            }
            return Err(RejectError::Invalid(e));
        }
        self.keep_block(hash, block);
        // Among headers of equal work prefer one whose block we hold (Core
        // activates only chains with data): a mutated copy of a block may
        // have put a data-less header in front.
        let work = self.index.get(&hash).map(|e| e.chain_work);
        let best = self.best_header();
        if work.is_some_and(|w| w >= self.best_work()) && best != hash && !self.have_block(&best) {
            self.set_best_header(hash);
        }
        let mut events = Vec::new();
        let failure = self.activate_best_chain(&mut events)?;
        match failure {
            Some((failed, e)) if failed == hash => Err(RejectError::Invalid(e)),
            _ => Ok(events),
        }
    }

    /// Keeps an accepted body until it is connected: in memory while
    /// `pending` is under [`MAX_PENDING_BYTES`], else in the store (marked
    /// `HAVE_DATA`, read back when its turn comes).
    fn keep_block(&mut self, hash: BlockHash, block: Block) {
        let size = block.total_size();
        if self.pending_bytes.saturating_add(size) <= self.opts.pending_bytes {
            self.pending_bytes += size;
            self.pending.insert(hash, block);
            return;
        }
        self.block_writes.put_block(&hash, &block);
        self.note_block_stored(hash, size as u64);
        if let Some(e) = self.index.get_mut(&hash) {
            e.status.insert(BlockStatus::HAVE_DATA);
            self.dirty_index.insert(hash);
        }
    }

    /// Removes `hash` from `pending`, keeping `pending_bytes` in step.
    fn take_pending(&mut self, hash: &BlockHash) -> Option<Block> {
        let block = self.pending.remove(hash)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(block.total_size());
        Some(block)
    }

    /// Accepted bodies held in memory waiting for connection: how many,
    /// and their serialized bytes (at most [`ChainOptions::pending_bytes`]).
    pub fn pending_usage(&self) -> (usize, usize) {
        (self.pending.len(), self.pending_bytes)
    }

    /// Unrequested blocks whose bodies were dropped (see
    /// [`ChainState::accept_block_requested`]).
    pub fn unrequested_dropped(&self) -> u64 {
        self.unrequested_dropped
    }

    /// Height of the last block of the best header chain on the active
    /// chain: blocks are downloaded after it.
    pub fn download_start(&self) -> u32 {
        self.fork_height()
    }

    /// The best header chain's block at `height`.
    pub fn header_chain_hash(&self, height: u32) -> Option<BlockHash> {
        self.header_chain.get(height as usize).copied()
    }

    /// Height of the last block the chain ending at `hash` shares with the
    /// best header chain; `None` for an unknown hash or one whose branch
    /// leaves the best header chain more than a download window
    /// (1,024 blocks) below it.
    pub fn header_chain_common_height(&self, hash: &BlockHash) -> Option<u32> {
        let mut cur = *hash;
        for _ in 0..=1024 {
            let e = self.index.get(&cur)?;
            if self.header_chain.get(e.height as usize) == Some(&cur) {
                return Some(e.height);
            }
            if e.height == 0 {
                return Some(0);
            }
            cur = e.header.prev_blockhash;
        }
        None
    }

    /// Whether the body of `hash` is held or stored.
    pub fn have_block(&self, hash: &BlockHash) -> bool {
        self.pending.contains_key(hash)
            || self
                .index
                .get(hash)
                .is_some_and(|e| e.status.contains(BlockStatus::HAVE_DATA))
    }

    /// Height of the last block shared by the active and best header chains.
    fn fork_height(&self) -> u32 {
        let mut h = self.active.len().min(self.header_chain.len());
        while h > 0 {
            if self.active[h - 1] == self.header_chain[h - 1] {
                return (h - 1) as u32;
            }
            h -= 1;
        }
        0
    }

    fn block_data(&mut self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        if let Some(b) = self.take_pending(hash) {
            return Ok(Some(b));
        }
        if self
            .index
            .get(hash)
            .is_some_and(|e| e.status.contains(BlockStatus::HAVE_DATA))
        {
            self.commit_block_writes()?;
            return Ok(self.store.get_block(hash)?);
        }
        Ok(None)
    }

    /// Connects blocks along the best header chain while their data is at
    /// hand, reorganising when that chain forks from the active one. A block
    /// that fails is marked invalid and the best valid chain is followed
    /// instead. Returns the first failure, if any.
    pub fn activate_best_chain(
        &mut self,
        events: &mut Vec<ChainEvent>,
    ) -> Result<Option<(BlockHash, ValidationError)>, ChainError> {
        let mut first_failure = None;
        loop {
            let fork = self.fork_height();
            let tip_work = self.index.get(&self.tip()).map(|e| e.chain_work);
            if self.header_chain.len() <= self.active.len() && fork == self.height() {
                break;
            }
            if fork < self.height() {
                // The best chain forks below our tip: switch only once we hold
                // the data for a branch with more work than our tip.
                let mut h = fork as usize + 1;
                let mut reach = None;
                while h < self.header_chain.len() && self.have_block(&self.header_chain[h]) {
                    reach = self.index.get(&self.header_chain[h]).map(|e| e.chain_work);
                    h += 1;
                }
                match (reach, tip_work) {
                    (Some(w), Some(t)) if w > t => {}
                    _ => break,
                }
                self.flush()?;
                self.coins.clear();
                while self.height() > fork {
                    let ev = self.disconnect_tip()?;
                    events.push(ev);
                }
            }
            let next_height = self.active.len();
            let Some(&next) = self.header_chain.get(next_height) else {
                break;
            };
            let Some(block) = self.block_data(&next)? else {
                break;
            };
            match self.connect_block(&block, next) {
                Ok(()) => {
                    events.push(ChainEvent::Connected {
                        hash: next,
                        height: next_height as u32,
                    });
                    self.log_update_tip(&block);
                    self.maybe_flush()?;
                }
                Err(e) if e.kind() == RejectKind::Internal => {
                    return Err(ChainError::Inconsistent(e.to_string()));
                }
                Err(e) if !e.is_permanent() => {
                    // A body that does not match its header (checked at
                    // accept, so only possible for data from an older
                    // version): drop it, keep the hash, download it again.
                    log::warn!("block {next} at height {next_height} not connected (not marked invalid): {e}");
                    if first_failure.is_none() {
                        first_failure = Some((next, e));
                    }
                    break;
                }
                Err(e) => {
                    log::warn!("block {next} at height {next_height} is invalid: {e}");
                    events.extend(self.mark_invalid(next, &e)?);
                    if first_failure.is_none() {
                        first_failure = Some((next, e));
                    }
                }
            }
        }
        if self.tip() == self.best_header() {
            self.flush()?;
        }
        Ok(first_failure)
    }

    /// Core's `invalidateblock`: treat `hash` (and its descendants) as
    /// invalid, disconnecting it if it is active, then follow the best
    /// remaining chain. Returns the chain events.
    pub fn invalidate_block(&mut self, hash: BlockHash) -> Result<Vec<ChainEvent>, RejectError> {
        let Some(entry) = self.index.get(&hash) else {
            return Err(RejectError::Invalid(ValidationError::new(
                RejectKind::Internal,
                "Block not found",
            )));
        };
        if entry.height == 0 {
            return Err(RejectError::Invalid(ValidationError::new(
                RejectKind::Internal,
                "cannot invalidate the genesis block",
            )));
        }
        let height = entry.height;
        let mut events = Vec::new();
        if self.is_active(&hash) {
            self.flush()?;
            self.coins.clear();
            while self.height() >= height {
                events.push(self.disconnect_tip()?);
            }
        }
        let reason = ValidationError::consensus("invalidated").with_detail("by invalidateblock");
        events.extend(self.mark_invalid(hash, &reason)?);
        self.activate_best_chain(&mut events)?;
        self.flush()?;
        Ok(events)
    }

    /// Core's `reconsiderblock`: forget that `hash`, its ancestors and its
    /// descendants were invalid, then follow the best chain again.
    pub fn reconsider_block(&mut self, hash: BlockHash) -> Result<Vec<ChainEvent>, RejectError> {
        let Some(entry) = self.index.get(&hash) else {
            return Err(RejectError::Invalid(ValidationError::new(
                RejectKind::Internal,
                "Block not found",
            )));
        };
        let height = entry.height;
        let mut cleared = Vec::new();
        for (h, e) in &self.index {
            let related = (e.height >= height
                && self.ancestor(h, height).is_some_and(|(a, _)| a == hash))
                || (e.height < height
                    && self.ancestor(&hash, e.height).is_some_and(|(a, _)| a == *h));
            if related && e.status.is_failed() {
                cleared.push(*h);
            }
        }
        let mut batch = WriteBatch::new();
        for h in cleared {
            if let Some(e) = self.index.get_mut(&h) {
                e.status.remove(BlockStatus::FAILED);
                e.status.remove(BlockStatus::FAILED_CHILD);
                e.invalid_reason = None;
                batch.put_block_index(&h, e);
            }
        }
        self.store.commit(&batch)?;
        self.recompute_best_header();
        let mut events = Vec::new();
        self.activate_best_chain(&mut events)?;
        Ok(events)
    }

    /// Marks `hash` invalid (and every known descendant), drops their
    /// pending bodies and picks the best remaining header chain.
    fn mark_invalid(
        &mut self,
        hash: BlockHash,
        e: &ValidationError,
    ) -> Result<Vec<ChainEvent>, ChainError> {
        let Some(entry) = self.index.get(&hash) else {
            return Ok(Vec::new());
        };
        let height = entry.height;
        let mut batch = WriteBatch::new();
        let mut failed = vec![(hash, BlockStatus::FAILED)];
        for (h, d) in &self.index {
            if d.height > height && self.ancestor(h, height).is_some_and(|(a, _)| a == hash) {
                failed.push((*h, BlockStatus::FAILED_CHILD));
            }
        }
        for (h, flag) in failed {
            if let Some(d) = self.index.get_mut(&h) {
                d.status.insert(flag);
                if flag == BlockStatus::FAILED {
                    d.invalid_reason = Some(e.to_string());
                }
                batch.put_block_index(&h, d);
            }
            self.take_pending(&h);
        }
        self.store.commit(&batch)?;
        self.recompute_best_header();
        Ok(vec![ChainEvent::Invalid {
            hash,
            reason: e.to_string(),
        }])
    }

    /// Full validation of `block` on top of the active tip (Core's
    /// `ConnectBlock`); on success the UTXO cache, index and active chain
    /// are updated in memory.
    fn connect_block(&mut self, block: &Block, hash: BlockHash) -> Result<(), ValidationError> {
        let height = self.active.len() as u32;
        let prev_mtp = self
            .mtp_active(height - 1)
            .ok_or_else(|| ValidationError::internal("missing-ancestor"))?;
        // Core's ConnectBlock: CheckBlock and ContextualCheckBlock already
        // passed in accept_block, the only way into `pending` and the store.
        let store = Arc::clone(&self.store);
        let internal =
            |e: StoreError| ValidationError::internal("store-error").with_detail(e.to_string());

        let bip34_ancestor = self.active.get(self.params.bip34_height as usize).copied();
        if check::bip30_enforced(height, hash, bip34_ancestor, &self.params) {
            let mut err = None;
            let coins = &mut self.coins;
            let res = check::check_bip30(block, |op| match coins.get(op, &store) {
                Ok(c) => c.is_some(),
                Err(e) => {
                    err = Some(e);
                    false
                }
            });
            if let Some(e) = err {
                return Err(internal(e));
            }
            res?;
        }

        let flags = script::block_script_flags(height, &hash, &self.params);
        let enforce_bip68 = height >= self.params.csv_height;
        let mut view = BlockCoins::default();
        let mut undo = BlockUndo::default();
        let mut spent_outputs: Vec<Vec<TxOut>> = Vec::with_capacity(block.txdata.len());
        let mut fees = Amount::ZERO;
        let mut sigops: u64 = 0;
        for (i, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            if i == 0 {
                sigops += check::get_transaction_sigop_cost(tx, &[], flags)?;
            } else {
                let mut coins = Vec::with_capacity(tx.input.len());
                for (n, input) in tx.input.iter().enumerate() {
                    match view.get(&input.previous_output, &mut self.coins, &store) {
                        Ok(Some(c)) => coins.push(c),
                        Ok(None) => {
                            return Err(ValidationError::new(
                                RejectKind::MissingInputs,
                                "bad-txns-inputs-missingorspent",
                            )
                            .with_tx(i)
                            .with_input(n))
                        }
                        Err(e) => return Err(internal(e)),
                    }
                    view.spend(&input.previous_output);
                }
                let check_coins: Vec<CheckCoin> =
                    coins.iter().cloned().map(CheckCoin::from).collect();
                let fee = check::check_tx_inputs(tx, &check_coins, height, &self.params)
                    .map_err(|e| e.with_tx(i))?;
                fees = check::accumulate_fee(fees, fee)?;
                // BIP68 reads the version as unsigned (Core:
                // `static_cast<uint32_t>(tx.version) >= 2`): version -1 is
                // 0xffffffff and is locked too.
                if enforce_bip68 && tx.version.0 as u32 >= 2 {
                    let heights: Vec<u32> = coins.iter().map(|c| c.height).collect();
                    check::check_sequence_locks(
                        tx,
                        height,
                        i64::from(prev_mtp),
                        &heights,
                        &self.params,
                        |h| self.mtp_active(h).map(i64::from),
                    )
                    .map_err(|e| e.with_tx(i))?;
                }
                let outs: Vec<TxOut> = check_coins.into_iter().map(|c| c.output).collect();
                sigops += check::get_transaction_sigop_cost(tx, &outs, flags)?;
                spent_outputs.push(outs);
                undo.spent.extend(coins);
            }
            if sigops > check::MAX_BLOCK_SIGOPS_COST {
                return Err(ValidationError::consensus("bad-blk-sigops").with_tx(i));
            }
            for (vout, out) in tx.output.iter().enumerate() {
                if is_unspendable(out) {
                    continue;
                }
                view.add(
                    OutPoint::new(txid, vout as u32),
                    Coin {
                        amount: out.value,
                        height,
                        is_coinbase: i == 0,
                        script_pubkey: out.script_pubkey.clone(),
                    },
                );
            }
        }
        check::check_coinbase_amount(block, height, fees, &self.params)?;
        self.pool
            .verify_block(block, &spent_outputs, flags)
            .map_err(|f| f.to_validation_error())?;

        // Valid: make it so.
        view.apply(&mut self.coins);
        let before = self.block_writes.size_bytes();
        self.block_writes.put_block(&hash, block);
        self.block_writes.put_undo(&hash, &undo);
        // Body and undo bytes, without the two 32-byte keys.
        let stored = self.block_writes.size_bytes().saturating_sub(before + 64);
        self.note_block_stored(hash, stored as u64);
        if let Some(e) = self.index.get_mut(&hash) {
            e.status.insert(
                BlockStatus::HAVE_DATA
                    | BlockStatus::HAVE_UNDO
                    | BlockStatus::VALID_TRANSACTIONS
                    | BlockStatus::VALID_SCRIPTS,
            );
        }
        self.dirty_index.insert(hash);
        self.active.push(hash);
        self.blocks_since_flush += 1;
        self.txs_connected += block.txdata.len() as u64;
        Ok(())
    }

    /// Disconnects the tip using its undo data (Core's `DisconnectBlock`),
    /// committing at once. Requires a flushed, empty cache.
    fn disconnect_tip(&mut self) -> Result<ChainEvent, ChainError> {
        let height = self.height();
        if height == 0 {
            return Err(ChainError::Inconsistent("cannot disconnect genesis".into()));
        }
        let hash = self.tip();
        let block = self
            .store
            .get_block(&hash)?
            .ok_or_else(|| ChainError::Inconsistent(format!("no data for active block {hash}")))?;
        let undo = self
            .store
            .get_undo(&hash)?
            .ok_or_else(|| ChainError::Inconsistent(format!("no undo data for block {hash}")))?;
        let mut batch = WriteBatch::new();
        let mut spent = undo.spent.iter().rev();
        for tx in block.txdata.iter().rev() {
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                if !is_unspendable(out) {
                    batch.spend_coin(&OutPoint::new(txid, vout as u32));
                }
            }
            if tx.is_coinbase() {
                continue;
            }
            for input in tx.input.iter().rev() {
                let coin = spent.next().ok_or_else(|| {
                    ChainError::Inconsistent(format!("undo data of {hash} is too short"))
                })?;
                batch.add_coin(&input.previous_output, coin);
            }
        }
        let prev = block.header.prev_blockhash;
        batch.unset_active(height);
        batch.set_tip(&prev);
        self.store.commit(&batch)?;
        self.active.pop();
        self.flushed_height = self.height();
        log::info!("disconnected block {hash} at height {height}");
        Ok(ChainEvent::Disconnected { hash, height })
    }

    fn maybe_flush(&mut self) -> Result<(), ChainError> {
        let cache_bytes = self.coins.len() * ENTRY_COST;
        if self.block_writes.size_bytes() > self.opts.block_write_bytes {
            self.commit_block_writes()?;
        }
        if self.blocks_since_flush >= self.opts.flush_blocks
            || cache_bytes > self.opts.coins_cache_bytes
            || self.prune_wanted()
        {
            self.flush()?;
        }
        Ok(())
    }

    fn commit_block_writes(&mut self) -> Result<(), ChainError> {
        if !self.block_writes.is_empty() {
            self.store.commit(&self.block_writes)?;
            self.block_writes = WriteBatch::new();
        }
        Ok(())
    }

    /// Writes everything connected since the last flush: block bodies and
    /// undo first, then one transaction with the UTXO changes, index
    /// updates, active-chain entries and the new tip.
    pub fn flush(&mut self) -> Result<(), ChainError> {
        let height = self.height();
        if self.blocks_since_flush == 0
            && self.dirty_index.is_empty()
            && height == self.flushed_height
        {
            return Ok(());
        }
        let started = Instant::now();
        self.commit_block_writes()?;
        let mut batch = WriteBatch::new();
        let coins = self.coins.dirty();
        let keep = self.opts.coins_cache_bytes / ENTRY_COST / 2;
        self.coins.flush_into(&mut batch, keep);
        for h in self.dirty_index.drain() {
            if let Some(e) = self.index.get(&h) {
                batch.put_block_index(&h, e);
            }
        }
        for h in self.flushed_height + 1..=height {
            if let Some(hash) = self.active.get(h as usize) {
                batch.set_active(h, hash);
            }
        }
        batch.set_tip(&self.tip());
        self.store.commit(&batch)?;
        log::debug!(
            "flushed chain state at height {height}: {} blocks, {coins} coin changes in {:?}",
            self.blocks_since_flush,
            started.elapsed()
        );
        self.flushed_height = height;
        self.blocks_since_flush = 0;
        self.prune_after_flush()
    }

    fn log_update_tip(&mut self, block: &Block) {
        let height = self.height();
        let near_tip = self.best_header_height().saturating_sub(height) < 10;
        let elapsed = self.last_log.elapsed();
        if !near_tip && elapsed < Duration::from_secs(1) {
            return;
        }
        let blocks = height.saturating_sub(self.logged_height);
        let rate = blocks as f64 / elapsed.as_secs_f64().max(1e-3);
        let best = self.best_header_height().max(height);
        log::info!(
            "UpdateTip: new best={} height={} version=0x{:08x} tx={} date={} progress={:.6} cache={:.1}MiB({}txo) blocks/s={:.1}",
            self.tip(),
            height,
            block.header.version.to_consensus() as u32,
            self.txs_connected,
            block.header.time,
            f64::from(height) / f64::from(best.max(1)),
            (self.coins.len() * ENTRY_COST) as f64 / (1 << 20) as f64,
            self.coins.len(),
            rate
        );
        self.last_log = Instant::now();
        self.logged_height = height;
    }

    /// Whether a peer may be sent block `hash` (Core's
    /// `BlockRequestAllowed`): a block of the active chain, or one that was
    /// fully validated (connected once, `VALID_SCRIPTS`, not failed since)
    /// and whose time is within [`STALE_RELAY_AGE_LIMIT`] of the best
    /// header's. A block merely stored or waiting in `pending` (a side
    /// branch never connected) is not served: its scripts were never
    /// checked. Core also bounds the stale block's proof-equivalent time;
    /// the time bound alone is kept here.
    pub fn block_request_allowed(&self, hash: &BlockHash) -> bool {
        if self.is_active(hash) {
            return true;
        }
        let Some(entry) = self.index.get(hash) else {
            return false;
        };
        if entry.status.is_failed() || !entry.status.contains(BlockStatus::VALID_SCRIPTS) {
            return false;
        }
        let best_time = self
            .index
            .get(&self.best_header())
            .map_or(0, |e| e.header.time);
        best_time.saturating_sub(entry.header.time) < STALE_RELAY_AGE_LIMIT
    }

    /// Raw serialized block `hash`, if stored (for serving peers; check
    /// [`ChainState::block_request_allowed`] first).
    pub fn block_bytes(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        if self.pending.contains_key(hash) {
            return Ok(self.pending.get(hash).map(encode::serialize));
        }
        self.commit_block_writes()?;
        Ok(self.store.get_block_raw(hash)?)
    }

    /// Headers of the active chain after `from_height`, at most `max`.
    pub fn active_headers(&self, from_height: u32, max: usize, stop: &BlockHash) -> Vec<Header> {
        let mut out = Vec::new();
        for h in (from_height as usize + 1)..self.active.len() {
            if out.len() >= max {
                break;
            }
            let hash = self.active[h];
            if let Some(e) = self.index.get(&hash) {
                out.push(e.header);
            }
            if hash == *stop {
                break;
            }
        }
        out
    }

    /// Digest of the UTXO set at the flushed tip (flushes first), and the tip.
    pub fn utxo_digest(
        &mut self,
    ) -> Result<(BlockHash, bitcoin::hashes::sha256d::Hash), ChainError> {
        self.flush()?;
        Ok((self.tip(), self.store.utxo_digest()?))
    }
}

impl Drop for ChainState {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::error!("could not flush the chain state: {e}");
        }
    }
}

fn locator_of(chain: &[BlockHash]) -> Vec<BlockHash> {
    let mut out = Vec::new();
    if chain.is_empty() {
        return out;
    }
    let mut h = chain.len() as i64 - 1;
    let mut step = 1i64;
    while h > 0 {
        out.push(chain[h as usize]);
        if out.len() >= 10 {
            step *= 2;
        }
        h -= step;
    }
    out.push(chain[0]);
    out
}
