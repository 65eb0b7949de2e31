//! Rebuilding the chain state from stored blocks: Core's
//! `-reindex-chainstate` (wipe the UTXO set and the active chain, then
//! reconnect the best chain from the stored bodies) and `-reindex` (also
//! wipe the block index and rebuild it from the stored bodies, then
//! reconnect). [`ChainState::open_reindexing`] is the entry point.
//!
//! Runs on the thread starting the node, before the sync manager exists:
//! `Node::start` returns (and the RPC server starts) only once the rebuild
//! is done. Progress is logged every [`PROGRESS_INTERVAL`] (and as
//! `UpdateTip` lines by the connecting code).
//!
//! The stored blocks are read through [`Store::stored_block_headers`] (the
//! "all stored blocks" iterator) and [`Store::get_block`]; the store's
//! wipes are [`Store::wipe_chain_state`] and [`Store::wipe_block_index`].
//!
//! An interrupted rebuild resumes at the next start: a marker file
//! ([`REINDEX_MARKER`]) in the chain-state directory names the rebuild in
//! progress until it finished (Core keeps its `fReindex` flag in the block
//! tree database for the same reason).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::BlockHash;

use super::network::Network;
use super::state::{ChainError, ChainOptions, ChainState, RejectError};
use super::ChainParams;
use crate::store::Store;

/// How often a rebuild logs its progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// The marker file naming an unfinished rebuild (`chainstate` or `full`).
pub const REINDEX_MARKER: &str = "reindexing";

/// Which rebuild to run at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reindex {
    /// Core's `-reindex-chainstate`: UTXO set and active chain.
    ChainState,
    /// Core's `-reindex`: the block index too.
    Full,
}

impl Reindex {
    fn marker_text(self) -> &'static str {
        match self {
            Reindex::ChainState => "chainstate",
            Reindex::Full => "full",
        }
    }

    /// Core's option name, for logs.
    pub fn option_name(self) -> &'static str {
        match self {
            Reindex::ChainState => "-reindex-chainstate",
            Reindex::Full => "-reindex",
        }
    }
}

/// The rebuild an earlier start left unfinished, if any.
pub fn unfinished_reindex(dir: &Path) -> Option<Reindex> {
    match fs::read_to_string(dir.join(REINDEX_MARKER)).ok()?.trim() {
        "chainstate" => Some(Reindex::ChainState),
        // Anything unreadable is treated as the bigger rebuild.
        _ => Some(Reindex::Full),
    }
}

fn io_error(what: &str, e: std::io::Error) -> ChainError {
    ChainError::Inconsistent(format!("{what}: {e}"))
}

/// The network magic the store of `network` is written with (a custom
/// signet's differs), as [`ChainState::open`] derives it.
fn store_magic(network: Network, opts: &ChainOptions) -> Result<[u8; 4], ChainError> {
    let params = match (&opts.signet_challenge, network) {
        (Some(c), Network::Signet) => ChainParams::custom_signet(c.clone()),
        _ => ChainParams::for_network(network.to_bitcoin())
            .ok_or(ChainError::UnsupportedNetwork(network))?,
    };
    Ok(params.magic().to_bytes())
}

impl ChainState {
    /// Opens the chain state in `dir`, first running the rebuild
    /// `requested` or the one an interrupted earlier start left (the
    /// bigger of the two). Without either it is [`ChainState::open`].
    pub fn open_reindexing(
        dir: &Path,
        network: Network,
        opts: ChainOptions,
        requested: Option<Reindex>,
    ) -> Result<ChainState, ChainError> {
        let unfinished = unfinished_reindex(dir);
        if let Some(r) = unfinished {
            log::warn!(
                "an earlier {} did not finish; running it again",
                r.option_name()
            );
        }
        let Some(mode) = requested.max(unfinished) else {
            return ChainState::open(dir, network, opts);
        };
        let started = Instant::now();
        let genesis = bitcoin::constants::genesis_block(network.to_bitcoin()).block_hash();
        let headers = {
            let store = Store::open(dir, store_magic(network, &opts)?)?;
            fs::write(dir.join(REINDEX_MARKER), mode.marker_text())
                .map_err(|e| io_error("cannot write the reindex marker", e))?;
            match mode {
                Reindex::ChainState => {
                    log::info!(
                        "{}: wiping the UTXO set and the active chain",
                        mode.option_name()
                    );
                    store.wipe_chain_state(&genesis)?;
                    Vec::new()
                }
                Reindex::Full => {
                    let headers = store.stored_block_headers()?;
                    log::info!(
                        "{}: wiping the block index and chain state; {} stored blocks to re-index",
                        mode.option_name(),
                        headers.len()
                    );
                    store.wipe_block_index()?;
                    headers
                }
            }
        };
        let mut chain = ChainState::open(dir, network, opts)?;
        if mode == Reindex::Full {
            chain.reindex_stored_blocks(genesis, headers)?;
        }
        let mut events = Vec::new();
        for (hash, e) in chain.activate_best_chain(&mut events)? {
            log::warn!("block {hash} failed while reconnecting: {e}");
        }
        chain.flush()?;
        fs::remove_file(dir.join(REINDEX_MARKER))
            .map_err(|e| io_error("cannot remove the reindex marker", e))?;
        log::info!(
            "{} done: height {} tip {} in {:.1} s",
            mode.option_name(),
            chain.height(),
            chain.tip(),
            started.elapsed().as_secs_f64()
        );
        Ok(chain)
    }

    /// Feeds every stored block to [`ChainState::accept_block`], parents
    /// before children (Core's `LoadExternalBlockFile`): headers are
    /// re-validated and indexed, bodies re-checked and connected along the
    /// best chain. Blocks not descending from `genesis` are skipped.
    fn reindex_stored_blocks(
        &mut self,
        genesis: BlockHash,
        headers: Vec<(BlockHash, Header)>,
    ) -> Result<(), ChainError> {
        let total = headers.len();
        let mut children: HashMap<BlockHash, Vec<BlockHash>> = HashMap::new();
        for (hash, header) in &headers {
            if *hash != genesis {
                children
                    .entry(header.prev_blockhash)
                    .or_default()
                    .push(*hash);
            }
        }
        drop(headers);
        let mut queue = std::collections::VecDeque::from([genesis]);
        let (mut read, mut invalid) = (0usize, 0usize);
        let mut last_log = Instant::now();
        while let Some(parent) = queue.pop_front() {
            let Some(kids) = children.remove(&parent) else {
                continue;
            };
            for hash in kids {
                let Some(block) = self.store().get_block(&hash)? else {
                    continue;
                };
                read += 1;
                match self.accept_block(block) {
                    Ok(_) => queue.push_back(hash),
                    Err(RejectError::Chain(e)) => return Err(e),
                    Err(e) => {
                        invalid += 1;
                        log::warn!("stored block {hash} not re-indexed: {e}");
                    }
                }
                if last_log.elapsed() >= PROGRESS_INTERVAL {
                    log::info!(
                        "-reindex: {read} of {total} stored blocks read, height {}",
                        self.height()
                    );
                    last_log = Instant::now();
                }
            }
        }
        let orphans: usize = children.values().map(Vec::len).sum();
        log::info!(
            "-reindex: {read} stored blocks re-indexed ({invalid} rejected, {orphans} not connected to genesis), height {}",
            self.height()
        );
        Ok(())
    }
}
