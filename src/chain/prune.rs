//! Block pruning (Core's `-prune`): deleting the bodies and undo data of
//! old blocks so that the stored block data stays under a target, as Core's
//! `BlockManager::FindFilesToPrune` (automatic) and
//! `PruneBlockFilesManual` (`pruneblockchain`) do. Runs on the
//! sync-manager thread as part of [`ChainState`].
//!
//! What is kept: genesis, and every block within [`MIN_BLOCKS_TO_KEEP`]
//! (288) of the active tip, whatever the target; nothing is pruned before
//! the tip passes [`prune_after_height`]. Core prunes whole 128 MiB block
//! files; strand keeps bodies as LMDB values (see `store::blockdata`) and
//! prunes per block, lowest height first (side branches at a height go
//! with it). One LMDB transaction deletes the bodies and undo data, clears
//! the index entries' `HAVE_DATA`/`HAVE_UNDO` and sets `meta/pruned`, so a
//! `kill -9` leaves either all or none of a prune, and the cleared bits
//! survive restarts. Pruning runs only right after a flush wrote the tip,
//! so a pruned block is always at least 288 blocks below the stored tip.
//! LMDB reuses the freed pages: the data file stops growing once the kept
//! data is reached.
//!
//! Cadence: Core looks for files to prune when it opens a new block file
//! and then prunes until usage + 17 MiB (`BLOCKFILE_CHUNK_SIZE` +
//! `UNDOFILE_CHUNK_SIZE`) is below the target; during initial block
//! download the margin grows by 1 MB per block still to download. With
//! per-block granularity strand needs its own trigger: it flushes and
//! prunes when the stored data reaches the target and at least the margin
//! (or the excess over the target, if smaller) can be freed, then prunes
//! with Core's margins. The margin is capped at a quarter of the target so
//! that regtest's tiny targets keep some slack.

use std::fmt;

use bitcoin::BlockHash;

use super::prune_state::PruneState;
pub use super::prune_state::{prune_after_height, PruneMode, MIN_DISK_SPACE_FOR_BLOCK_FILES};
use super::state::{ChainError, ChainState, MIN_BLOCKS_TO_KEEP};
use crate::store::{BlockStatus, WriteBatch};

/// Core's pruning margin: `BLOCKFILE_CHUNK_SIZE` (16 MiB) +
/// `UNDOFILE_CHUNK_SIZE` (1 MiB).
pub const PRUNE_BUFFER: u64 = (16 << 20) + (1 << 20);

/// Extra margin per block still to download during initial block download
/// (Core's `average_block_size` in `FindFilesToPrune`, 1 MB).
const IBD_BYTES_PER_BLOCK: u64 = 1_000_000;

/// Block height timestamps are assumed to be off by at most this much
/// (Core's `TIMESTAMP_WINDOW`, 2 h, used by `pruneblockchain`).
const TIMESTAMP_WINDOW: i64 = 2 * 60 * 60;

/// Why `pruneblockchain` failed: Core's messages; [`PruneError::code`] is
/// the JSON-RPC error code.
#[derive(Debug)]
pub enum PruneError {
    /// `--prune` is off.
    NotPruneMode,
    /// A negative height.
    NegativeHeight,
    /// A timestamp no block of the active chain reaches.
    NoBlockAtTime,
    /// The tip is not above [`prune_after_height`].
    TooShort,
    /// The height is above the tip.
    ShorterThanHeight,
    /// The store failed.
    Chain(ChainError),
}

impl PruneError {
    /// Core's error code: `RPC_MISC_ERROR` (-1) or `RPC_INVALID_PARAMETER`
    /// (-8).
    pub fn code(&self) -> i32 {
        match self {
            PruneError::NotPruneMode | PruneError::TooShort | PruneError::Chain(_) => -1,
            PruneError::NegativeHeight
            | PruneError::NoBlockAtTime
            | PruneError::ShorterThanHeight => -8,
        }
    }
}

impl fmt::Display for PruneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PruneError::NotPruneMode => "Cannot prune blocks because node is not in prune mode.",
            PruneError::NegativeHeight => "Negative block height.",
            PruneError::NoBlockAtTime => {
                "Could not find block with at least the specified timestamp."
            }
            PruneError::TooShort => "Blockchain is too short for pruning.",
            PruneError::ShorterThanHeight => {
                "Blockchain is shorter than the attempted prune height."
            }
            PruneError::Chain(e) => return write!(f, "{e}"),
        })
    }
}

impl std::error::Error for PruneError {}

impl From<ChainError> for PruneError {
    fn from(e: ChainError) -> Self {
        PruneError::Chain(e)
    }
}

impl ChainState {
    /// Sets the pruning mode (at startup, after [`ChainState::open`]).
    /// Loads the sizes of the stored blocks when pruning is on. Fails, as
    /// Core does, when pruning is turned off on a store that was pruned:
    /// the missing blocks would never be downloaded again.
    pub fn set_prune_mode(&mut self, mode: PruneMode) -> Result<(), ChainError> {
        let have_pruned = self.store().have_pruned()?;
        if !mode.is_prune_mode() && have_pruned {
            return Err(ChainError::Inconsistent(
                "block data was pruned: turn pruning back on (--prune) or start from an empty data directory".into(),
            ));
        }
        let mut state = PruneState {
            mode,
            have_pruned,
            ..PruneState::default()
        };
        if mode.is_prune_mode() {
            for s in self.store().stored_blocks()? {
                if let Some(height) = self.entry(&s.hash).map(|e| e.height) {
                    state.insert(height, s.hash, s.body_bytes.saturating_add(s.undo_bytes));
                }
            }
        }
        log::info!(
            "prune mode {mode:?}: {} MiB of block data stored",
            state.usage >> 20
        );
        self.prune = state;
        Ok(())
    }

    /// The pruning mode.
    pub fn prune_mode(&self) -> PruneMode {
        self.prune.mode
    }

    /// Bytes of block bodies and undo data stored (counted only while
    /// pruning is on; 0 otherwise).
    pub fn block_data_usage(&self) -> u64 {
        self.prune.usage
    }

    /// Records that `bytes` of body and undo data of `hash` are (being)
    /// stored. Called wherever a body or undo data is written.
    pub(super) fn note_block_stored(&mut self, hash: BlockHash, bytes: u64) {
        if !self.prune.mode.is_prune_mode() {
            return;
        }
        if let Some(height) = self.entry(&hash).map(|e| e.height) {
            self.prune.insert(height, hash, bytes);
        }
    }

    /// Highest height automatic or manual pruning may reach now (Core's
    /// `GetPruneRange`: the tip minus [`MIN_BLOCKS_TO_KEEP`]).
    fn last_block_can_prune(&self) -> Option<u32> {
        self.height().checked_sub(MIN_BLOCKS_TO_KEEP)
    }

    /// Core's margin below the target, capped at a quarter of the target.
    fn prune_buffer(&self, target: u64) -> u64 {
        PRUNE_BUFFER.min(target / 4)
    }

    /// Whether automatic pruning has work to do: the chain state should be
    /// flushed (which prunes). See the module docs for the trigger.
    pub(super) fn prune_wanted(&self) -> bool {
        let PruneMode::Automatic { target_bytes } = self.prune.mode else {
            return false;
        };
        if self.height() <= prune_after_height(self.params().network)
            || self.prune.usage < target_bytes
        {
            return false;
        }
        let Some(last) = self.last_block_can_prune() else {
            return false;
        };
        let want = self
            .prune_buffer(target_bytes)
            .min(self.prune.usage - target_bytes)
            .max(1);
        self.prune.bytes_up_to(last, want) >= want
    }

    /// Automatic pruning (Core's `FindFilesToPrune`), called by
    /// [`ChainState::flush`] after it wrote the tip.
    pub(super) fn prune_after_flush(&mut self) -> Result<(), ChainError> {
        if !self.prune_wanted() {
            return Ok(());
        }
        let PruneMode::Automatic { target_bytes } = self.prune.mode else {
            return Ok(());
        };
        let Some(last) = self.last_block_can_prune() else {
            return Ok(());
        };
        let mut buffer = self.prune_buffer(target_bytes);
        let best = self.best_header_height();
        if best > self.height() {
            // Core: in initial block download, prune more at once.
            buffer = buffer.saturating_add(
                IBD_BYTES_PER_BLOCK.saturating_mul(u64::from(best - self.height())),
            );
        }
        let goal = target_bytes.saturating_sub(buffer);
        let before = self.prune.usage;
        let pruned = self.prune_blocks(last, goal)?;
        log::info!(
            "Prune: target={}MiB actual={}MiB diff={}MiB min_height={} max_prune_height={last} removed {pruned} blocks",
            target_bytes >> 20,
            self.prune.usage >> 20,
            (before.saturating_sub(self.prune.usage)) >> 20,
            self.prune.stored.keys().next().copied().unwrap_or(0),
        );
        Ok(())
    }

    /// Deletes the data of blocks at heights 1..=`last`, lowest first,
    /// until at most `goal` bytes are stored; one commit. Returns how many
    /// blocks were pruned.
    fn prune_blocks(&mut self, last: u32, goal: u64) -> Result<usize, ChainError> {
        let mut batch = WriteBatch::new();
        let mut usage = self.prune.usage;
        let mut heights = Vec::new();
        let mut count = 0;
        // `range` panics on an empty range: genesis is never pruned.
        if last == 0 {
            return Ok(0);
        }
        for (&height, blocks) in self.prune.stored.range(1..=last) {
            if usage <= goal {
                break;
            }
            for (hash, bytes) in blocks {
                batch.delete_block(hash);
                batch.delete_undo(hash);
                if let Some(pos) = self.index.find(hash) {
                    if let Some(mut status) = self.index.status(pos) {
                        status.remove(BlockStatus::HAVE_DATA);
                        status.remove(BlockStatus::HAVE_UNDO);
                        self.index.set_status(pos, status);
                        self.write_index(&mut batch, pos);
                    }
                }
                usage = usage.saturating_sub(*bytes);
                count += 1;
            }
            heights.push(height);
        }
        if heights.is_empty() {
            return Ok(0);
        }
        batch.set_have_pruned();
        self.store().commit(&batch)?;
        for h in heights {
            self.prune.stored.remove(&h);
        }
        self.prune.usage = usage;
        self.prune.have_pruned = true;
        Ok(count)
    }

    /// `pruneblockchain HEIGHT` (Core's RPC and `PruneBlockFilesManual`):
    /// a height, or a Unix time above 1,000,000,000 meaning the first block
    /// at least that time minus two hours old. Heights within 288 blocks
    /// of the tip are lowered to tip − 288. Returns the height of the last
    /// block pruned (-1 if none), Core's `GetPruneHeight`.
    pub fn prune_blockchain(&mut self, height_param: i64) -> Result<i64, PruneError> {
        if !self.prune.mode.is_prune_mode() {
            return Err(PruneError::NotPruneMode);
        }
        if height_param < 0 {
            return Err(PruneError::NegativeHeight);
        }
        let mut height = height_param;
        if height > 1_000_000_000 {
            let time = height - TIMESTAMP_WINDOW;
            height = (0..=self.height())
                .find(|h| {
                    self.active_hash(*h)
                        .and_then(|hash| self.entry(&hash))
                        .is_some_and(|e| i64::from(e.header.time) >= time)
                })
                .map(i64::from)
                .ok_or(PruneError::NoBlockAtTime)?;
        }
        let chain_height = self.height();
        if chain_height < prune_after_height(self.params().network) {
            return Err(PruneError::TooShort);
        }
        if height > i64::from(chain_height) {
            return Err(PruneError::ShorterThanHeight);
        }
        let mut height = height as u32;
        if height > chain_height.saturating_sub(MIN_BLOCKS_TO_KEEP) {
            log::debug!("Attempt to prune blocks close to the tip.  Retaining the minimum number of blocks.");
            height = chain_height.saturating_sub(MIN_BLOCKS_TO_KEEP);
        }
        // The bodies of blocks connected since the last flush must be
        // written (and the tip stored) before anything below is pruned.
        self.flush()?;
        if height > 0 {
            let pruned = self.prune_blocks(height, 0)?;
            log::info!("Prune (Manual): prune_height={height} removed {pruned} blocks");
        }
        Ok(self.prune_height().map_or(-1, i64::from))
    }

    /// Height of the last pruned block of the active chain (Core's
    /// `GetPruneHeight`): `None` when every block after genesis has data
    /// and undo data.
    pub fn prune_height(&self) -> Option<u32> {
        let tip = self.height();
        if tip == 0 {
            return None;
        }
        let have = |h: u32| {
            self.active_hash(h)
                .and_then(|hash| self.entry(&hash))
                .is_some_and(|e| {
                    e.status
                        .contains(BlockStatus::HAVE_DATA | BlockStatus::HAVE_UNDO)
                })
        };
        if !have(tip) {
            return Some(tip);
        }
        let mut first_unpruned = tip;
        while first_unpruned > 1 && have(first_unpruned - 1) {
            first_unpruned -= 1;
        }
        (first_unpruned > 1).then(|| first_unpruned - 1)
    }
}
