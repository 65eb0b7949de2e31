//! Connecting a block in three steps, Core's `ConnectBlock` split so that
//! one block's scripts run on the script workers while the chain thread
//! prepares the next block (issue 12).
//!
//! 1. [`ChainState::prepare_block`]: the contextual input checks (BIP30,
//!    missing or spent inputs, amounts and fees, BIP68 sequence locks,
//!    sigops, the coinbase amount), the block's coin changes staged in a
//!    [`BlockCoins`] view, its undo data, and the scripts handed to the
//!    pool transaction by transaction as the walk goes
//!    ([`ScriptCheckPool::begin_block`](super::script::ScriptCheckPool::begin_block)),
//!    without waiting. The block may sit on top of another prepared
//!    block not yet finished: its view is then stacked on that block's
//!    view, and heights and median times come from the block index, never
//!    from the active chain, which that block has not extended yet.
//! 2. The scripts run.
//! 3. [`ChainState::finish_block`]: waits for the scripts; only then is the
//!    view applied to the cache, the body and undo data queued for the
//!    store, and the index and active chain updated.
//!
//! `activate_best_chain` (`chain/state.rs`) keeps at most one block of
//! lookahead: after preparing block N it prepares N+1 on N's view when N+1's
//! body is at hand, then finishes N. If N fails, N+1's preparation (and its
//! queued scripts) is discarded and N is rejected exactly as it would have
//! been alone; N+1 is prepared again, if at all, on whatever becomes the
//! tip. All of it runs on the sync-manager thread, the chain state's owner.

use std::sync::Arc;

use bitcoin::{Amount, Block, BlockHash, OutPoint, TxOut, Txid};

use super::check::{self, Coin as CheckCoin};
use super::coins::BlockCoins;
use super::index::BlockPos;
use super::script::{self, BlockScripts};
use super::state::{is_unspendable, ChainError, ChainState};
use super::{RejectKind, ValidationError};
use crate::store::{BlockStatus, BlockUndo, Coin, StoreError};

/// A block whose contextual checks passed, with its coin changes staged and
/// its scripts submitted (see the module docs).
pub(super) struct PreparedBlock {
    pub(super) hash: BlockHash,
    pub(super) height: u32,
    pub(super) block: Arc<Block>,
    pos: BlockPos,
    view: BlockCoins,
    undo: BlockUndo,
    /// `None` when assumevalid skips the scripts.
    scripts: Option<BlockScripts>,
}

impl PreparedBlock {
    /// Gives the body back, cancelling the scripts not yet run (for a
    /// preparation that is discarded).
    pub(super) fn into_block(self) -> Block {
        drop(self.scripts);
        Arc::try_unwrap(self.block).unwrap_or_else(|shared| (*shared).clone())
    }
}

/// A lookahead preparation and whether its body came from `pending` (to
/// put it back there if the preparation is discarded).
pub(super) type Ahead = (PreparedBlock, bool);

fn internal(e: StoreError) -> ValidationError {
    ValidationError::internal("store-error").with_detail(e.to_string())
}

impl ChainState {
    /// Step 1: checks `block` (whose index entry exists and whose parent is
    /// the tip, or the block of `base` when given) against the UTXO set as
    /// the tip plus `base` leaves it, stages its coin changes and submits
    /// its scripts. On error nothing has changed but cached reads.
    pub(super) fn prepare_block(
        &mut self,
        block: Arc<Block>,
        hash: BlockHash,
        base: Option<&BlockCoins>,
    ) -> Result<PreparedBlock, ValidationError> {
        let missing = || ValidationError::internal("missing-ancestor");
        let pos = self
            .index
            .find(&hash)
            .ok_or_else(|| ValidationError::internal("missing-index-entry"))?;
        let height = self.index.height(pos).ok_or_else(missing)?;
        let prev = self.index.parent(pos).ok_or_else(missing)?;
        let prev_mtp = self
            .mtp_of(prev, height.saturating_sub(1))
            .map_err(|_| missing())?;
        // Core's ConnectBlock: CheckBlock and ContextualCheckBlock already
        // passed in accept_block, the only way into `pending` and the store.
        let store = Arc::clone(&self.store);

        // Core: `pindex->pprev->GetAncestor(BIP34Height)`.
        let bip34_ancestor = self
            .ancestor_pos(prev, self.params.bip34_height)
            .map(|p| self.index.hash(p));
        // Every txid once (BIP30 and the new outputs both need them).
        let txids: Vec<Txid> = block.txdata.iter().map(|tx| tx.compute_txid()).collect();
        if check::bip30_enforced(height, hash, bip34_ancestor, &self.params) {
            // `check::check_bip30` with the txids at hand: no output of
            // this block may already exist unspent.
            for (i, (tx, txid)) in block.txdata.iter().zip(&txids).enumerate() {
                for vout in 0..tx.output.len() {
                    let op = OutPoint::new(*txid, vout as u32);
                    let have = match base.and_then(|b| b.staged(&op)) {
                        Some(staged) => staged.is_some(),
                        None => self.coins.get(&op, &store).map_err(internal)?.is_some(),
                    };
                    if have {
                        return Err(ValidationError::consensus("bad-txns-BIP30")
                            .with_detail("tried to overwrite transaction")
                            .with_tx(i));
                    }
                }
            }
        }

        let flags = script::block_script_flags(height, &hash, &self.params);
        let script_check = self.script_check_reason(hash, height);
        if self.script_check_logged != Some(script_check) {
            match script_check {
                Some(reason) => log::info!(
                    "Enabling script verification at block #{height} ({hash}): {}",
                    reason.as_str()
                ),
                None => log::info!(
                    "Disabling script verification at block #{height} ({hash}): assumevalid"
                ),
            }
            self.script_check_logged = Some(script_check);
        }
        // Core's `fScriptChecks`: assumevalid skips only the interpreter.
        // Each transaction's scripts are queued as soon as its inputs are
        // found, so the workers start while the rest is checked; an error
        // below drops the submission, which cancels them.
        let mut scripts = script_check
            .is_some()
            .then(|| self.pool.begin_block(Arc::clone(&block), flags));
        let enforce_bip68 = height >= self.params.csv_height;
        let mut view = BlockCoins::default();
        let mut undo = BlockUndo::default();
        let mut fees = Amount::ZERO;
        let mut sigops: u64 = 0;
        for (i, (tx, &txid)) in block.txdata.iter().zip(&txids).enumerate() {
            if i == 0 {
                sigops += check::get_transaction_sigop_cost(tx, &[], flags)?;
            } else {
                let mut coins = Vec::with_capacity(tx.input.len());
                for (n, input) in tx.input.iter().enumerate() {
                    match view.get_stacked(&input.previous_output, base, &mut self.coins, &store) {
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
                        // Ancestors of this block, which may lie above the
                        // active tip (see the module docs).
                        |h| {
                            let p = self.ancestor_pos(prev, h)?;
                            self.mtp_of(p, h).ok().map(i64::from)
                        },
                    )
                    .map_err(|e| e.with_tx(i))?;
                }
                let outs: Vec<TxOut> = check_coins.into_iter().map(|c| c.output).collect();
                sigops += check::get_transaction_sigop_cost(tx, &outs, flags)?;
                if let Some(submission) = scripts.as_mut() {
                    submission.push(i, outs);
                }
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
        check::check_coinbase_amount(&block, height, fees, &self.params)?;
        let scripts = scripts.map(|s| s.finish());
        Ok(PreparedBlock {
            hash,
            height,
            block,
            pos,
            view,
            undo,
            scripts,
        })
    }

    /// The body of `hash`, taken from `pending` (`true`) or read from the
    /// store (`false`), or `None` when it is not at hand.
    pub(super) fn take_block_data(
        &mut self,
        hash: &BlockHash,
    ) -> Result<Option<(Block, bool)>, ChainError> {
        if let Some(b) = self.take_pending(hash) {
            return Ok(Some((b, true)));
        }
        if self.index.find(hash).is_some_and(|p| self.have_data(p)) {
            self.commit_block_writes()?;
            return Ok(self.store.get_block(hash)?.map(|b| (b, false)));
        }
        Ok(None)
    }

    /// Puts a body taken with [`ChainState::take_block_data`] back: into
    /// `pending` if it came from there (the store still holds the others).
    fn restore_block(&mut self, hash: BlockHash, block: Block, from_pending: bool) {
        if from_pending {
            self.pending_bytes = self.pending_bytes.saturating_add(block.total_size());
            self.pending.insert(hash, block);
        }
    }

    /// Discards a lookahead preparation: its scripts are cancelled, its
    /// view forgotten and its body put back.
    pub(super) fn discard_ahead(&mut self, ahead: Option<Ahead>) {
        if let Some((prepared, from_pending)) = ahead {
            let hash = prepared.hash;
            let block = prepared.into_block();
            self.restore_block(hash, block, from_pending);
        }
    }

    /// The one block of lookahead: the block at `height` on the best
    /// header chain, prepared on `parent`'s staged view while `parent`'s
    /// scripts run, if its body is at hand and `parent` is its parent. A
    /// preparation that fails is dropped (its body put back): the block is
    /// prepared again once `parent` is the tip, and fails there the same
    /// way, reported in order.
    pub(super) fn prepare_ahead(
        &mut self,
        parent: &PreparedBlock,
        height: usize,
    ) -> Result<Option<Ahead>, ChainError> {
        let Some(&pos) = self.header_chain.get(height) else {
            return Ok(None);
        };
        if self.index.parent(pos) != Some(parent.pos) {
            return Ok(None);
        }
        let hash = self.index.hash(pos);
        let Some((block, from_pending)) = self.take_block_data(&hash)? else {
            return Ok(None);
        };
        let block = Arc::new(block);
        match self.prepare_block(Arc::clone(&block), hash, Some(&parent.view)) {
            Ok(prepared) => Ok(Some((prepared, from_pending))),
            Err(_) => {
                let block = Arc::try_unwrap(block).unwrap_or_else(|shared| (*shared).clone());
                self.restore_block(hash, block, from_pending);
                Ok(None)
            }
        }
    }

    /// Step 3: waits for `prepared`'s scripts and, if they pass, makes the
    /// block the new tip in memory: its view applied to the UTXO cache, body
    /// and undo data queued for the store, index and active chain updated.
    /// Its parent must be the tip. On a script failure nothing changes and
    /// the error is Core's `mandatory-script-verify-flag-failed (...)`.
    pub(super) fn finish_block(&mut self, prepared: PreparedBlock) -> Result<(), ValidationError> {
        let PreparedBlock {
            hash,
            height,
            block,
            pos,
            view,
            undo,
            scripts,
        } = prepared;
        if let Some(scripts) = scripts {
            scripts.wait().map_err(|f| f.to_validation_error())?;
        }
        if height as usize != self.active.len()
            || self.index.parent(pos) != self.active.last().copied()
        {
            return Err(ValidationError::internal("not-on-tip"));
        }

        // Valid: make it so.
        view.apply(&mut self.coins);
        let before = self.block_writes.size_bytes();
        self.block_writes.put_block(&hash, &block);
        self.block_writes.put_undo(&hash, &undo);
        // Body and undo bytes, without the two 32-byte keys.
        let stored = self.block_writes.size_bytes().saturating_sub(before + 64);
        self.note_block_stored(hash, stored as u64);
        self.add_status(
            pos,
            BlockStatus::HAVE_DATA
                | BlockStatus::HAVE_UNDO
                | BlockStatus::VALID_TRANSACTIONS
                | BlockStatus::VALID_SCRIPTS,
        );
        self.index
            .set_tx_count(pos, u32::try_from(block.txdata.len()).unwrap_or(u32::MAX));
        self.dirty_index.insert(pos);
        self.active.push(pos);
        self.blocks_since_flush += 1;
        self.txs_connected += block.txdata.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
