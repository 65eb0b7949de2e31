//! The mempool and fee estimates on disk across restarts (Bitcoin Core's
//! `mempool.dat`, `fee_estimates.dat`).
//!
//! Owns the two file formats and the start/shutdown steps:
//!
//! * `mempool.dat` (strand's own versioned format, not Core's): the magic
//!   `STRNDMEM`, a little-endian `u32` version (1), a `u64` count, then per
//!   transaction its entry time (`u64`), its `prioritisetransaction` delta
//!   (`i64`), its length (`u32`) and its consensus serialization with
//!   witness; parents come before children. Then a `u64` count of deltas of
//!   transactions not in the pool, each a txid and an `i64`. On load every
//!   transaction is validated again against the chain exactly as if
//!   received (fee floors, limits, scripts), keeping its entry time; those
//!   past `-mempoolexpiry` or no longer valid are dropped (Core
//!   `LoadMempool`).
//! * `fee_estimates.dat`: [`FeeEstimator::to_bytes`]; a file written more
//!   than [`MAX_FILE_AGE`] ago is ignored, as in Core.
//!
//! Files are written to a `.new` sibling, synced and renamed, so a crash
//! leaves the old or the new file. Runs on the thread that starts the node
//! (load, before the sync manager owns the chain), the thread shutting it
//! down (save, after the sync manager stopped) and RPC workers
//! (`savemempool`, under the mempool lock).

use std::fs;
use std::io::Write;
use std::path::Path;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Transaction, Txid};

use super::fees::{FeeEstimator, FeeFileError};
use super::{AcceptContext, Mempool, SharedMempool};
use crate::chain::state::ChainState;

/// File name of the saved mempool (Core's).
pub const MEMPOOL_FILE: &str = "mempool.dat";
/// File name of the saved fee estimates (Core's).
pub const FEE_ESTIMATES_FILE: &str = "fee_estimates.dat";
/// Fee estimates older than this (seconds) are not loaded (Core
/// `MAX_FILE_AGE`, 60 hours).
pub const MAX_FILE_AGE: u64 = 60 * 60 * 60;

const MEMPOOL_MAGIC: &[u8; 8] = b"STRNDMEM";
const MEMPOOL_VERSION: u32 = 1;
/// Largest transaction record accepted from the file (a block's weight).
const MAX_TX_BYTES: u32 = 4_000_000;

/// Why `mempool.dat` could not be read.
#[derive(Debug)]
pub enum MempoolFileError {
    /// Reading failed.
    Io(std::io::Error),
    /// Not a strand mempool file, another version, or truncated.
    Format(&'static str),
}

impl std::fmt::Display for MempoolFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MempoolFileError::Io(e) => write!(f, "{e}"),
            MempoolFileError::Format(w) => write!(f, "bad mempool file: {w}"),
        }
    }
}

impl std::error::Error for MempoolFileError {}

/// What loading `mempool.dat` did (Core logs the same counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadStats {
    /// Transactions accepted.
    pub accepted: usize,
    /// Transactions refused (invalid now, fee floors, ...).
    pub failed: usize,
    /// Transactions past the expiry.
    pub expired: usize,
    /// Already in the pool.
    pub already_there: usize,
}

/// Writes `bytes` to `path` through a synced `.new` file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

impl Mempool {
    /// Serializes the pool in the `mempool.dat` format (see the module
    /// documentation).
    pub fn to_dat_bytes(&self) -> Vec<u8> {
        let mut order: Vec<(usize, Txid)> = self
            .entries
            .iter()
            .map(|(t, e)| (self.ancestors_from(&e.parents).len(), *t))
            .collect();
        order.sort();
        let mut out = Vec::new();
        out.extend_from_slice(MEMPOOL_MAGIC);
        out.extend_from_slice(&MEMPOOL_VERSION.to_le_bytes());
        out.extend_from_slice(&(order.len() as u64).to_le_bytes());
        for (_, txid) in &order {
            let Some(e) = self.entries.get(txid) else {
                continue;
            };
            let raw = serialize(&e.tx);
            out.extend_from_slice(&e.time.to_le_bytes());
            out.extend_from_slice(&self.deltas.get(txid).copied().unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            out.extend_from_slice(&raw);
        }
        let outside: Vec<(&Txid, &i64)> = self
            .deltas
            .iter()
            .filter(|(t, _)| !self.entries.contains_key(*t))
            .collect();
        out.extend_from_slice(&(outside.len() as u64).to_le_bytes());
        for (t, d) in outside {
            out.extend_from_slice(t.as_byte_array());
            out.extend_from_slice(&d.to_le_bytes());
        }
        out
    }

    /// Reads a `mempool.dat` image and accepts its transactions against
    /// `view` at the tip `ctx` describes (its `time` is now; each keeps
    /// its saved entry time).
    pub fn load_dat_bytes(
        &mut self,
        bytes: &[u8],
        view: &mut dyn super::UtxoView,
        ctx: &AcceptContext<'_>,
    ) -> Result<LoadStats, MempoolFileError> {
        let mut r = Reader(bytes);
        if r.take(8)? != MEMPOOL_MAGIC {
            return Err(MempoolFileError::Format("magic"));
        }
        if r.u32()? != MEMPOOL_VERSION {
            return Err(MempoolFileError::Format("version"));
        }
        let count = r.u64()?;
        let mut stats = LoadStats::default();
        let cutoff = ctx.time.saturating_sub(self.config.expiry_secs);
        for _ in 0..count {
            let time = r.u64()?;
            let delta = r.i64()?;
            let len = r.u32()?;
            if len > MAX_TX_BYTES {
                return Err(MempoolFileError::Format("transaction too large"));
            }
            let tx: Transaction = deserialize(r.take(len as usize)?)
                .map_err(|_| MempoolFileError::Format("transaction encoding"))?;
            let txid = tx.compute_txid();
            if delta != 0 {
                self.prioritise_transaction(txid, delta);
            }
            if time < cutoff {
                stats.expired += 1;
                continue;
            }
            if self.entries.contains_key(&txid) {
                stats.already_there += 1;
                continue;
            }
            let at = AcceptContext { time, ..*ctx };
            match self.accept_inner(tx, view, &at, false) {
                Ok(_) => stats.accepted += 1,
                Err(_) => stats.failed += 1,
            }
        }
        let n_deltas = r.u64()?;
        for _ in 0..n_deltas {
            let mut b = [0u8; 32];
            b.copy_from_slice(r.take(32)?);
            let d = r.i64()?;
            self.prioritise_transaction(Txid::from_byte_array(b), d);
        }
        if !r.0.is_empty() {
            return Err(MempoolFileError::Format("trailing data"));
        }
        Ok(stats)
    }
}

/// The acceptance context at `chain`'s tip, now.
pub fn tip_context(chain: &ChainState) -> (crate::chain::ChainParams, u32, i64) {
    let params = chain.params().clone();
    let height = chain.height() + 1;
    let mtp = i64::from(chain.median_time_past(chain.height()).unwrap_or(0));
    (params, height, mtp)
}

/// At start: loads `fee_estimates.dat` (always, as Core) and, when
/// `persist`, `mempool.dat` from the network directory `dir` into `pool`,
/// validating against `chain`. Problems are logged, never fatal.
pub fn load_at_start(pool: &SharedMempool, dir: &Path, chain: &mut ChainState, persist: bool) {
    let now = crate::util::unix_time();
    match fs::read(dir.join(FEE_ESTIMATES_FILE)) {
        Ok(bytes) => match FeeEstimator::from_bytes(&bytes, now, MAX_FILE_AGE) {
            Ok(f) => {
                log::info!("fee estimates loaded (best height {})", f.best_height());
                pool.lock().set_fees(f);
            }
            Err(e) => log::warn!("{FEE_ESTIMATES_FILE}: {e}"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("{FEE_ESTIMATES_FILE}: {}", FeeFileError::Io(e)),
    }
    if !persist {
        return;
    }
    let bytes = match fs::read(dir.join(MEMPOOL_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            log::warn!("{MEMPOOL_FILE}: {}", MempoolFileError::Io(e));
            return;
        }
    };
    let (params, height, mtp) = tip_context(chain);
    let ctx = AcceptContext {
        height,
        median_time_past: mtp,
        script_flags: crate::chain::script::script_flags_for_height(height, &params),
        params: &params,
        time: now,
    };
    let result = pool.lock().load_dat_bytes(&bytes, chain, &ctx);
    match result {
        Ok(s) => log::info!(
            "imported mempool transactions from disk: {} succeeded, {} failed, {} expired, {} already there",
            s.accepted,
            s.failed,
            s.expired,
            s.already_there
        ),
        Err(e) => log::warn!("{MEMPOOL_FILE}: {e}"),
    }
}

/// Writes `mempool.dat` into `dir` (`savemempool`); returns its path.
pub fn save_mempool(pool: &SharedMempool, dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let bytes = pool.lock().to_dat_bytes();
    let path = dir.join(MEMPOOL_FILE);
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// At shutdown: writes `fee_estimates.dat` and, when `persist`,
/// `mempool.dat` into `dir`. Failures are logged.
pub fn save_at_shutdown(pool: &SharedMempool, dir: &Path, persist: bool) {
    let fees = pool.lock().fees().to_bytes(crate::util::unix_time());
    if let Err(e) = write_atomic(&dir.join(FEE_ESTIMATES_FILE), &fees) {
        log::warn!("cannot write {FEE_ESTIMATES_FILE}: {e}");
    }
    if persist {
        match save_mempool(pool, dir) {
            Ok(_) => log::info!("dumped mempool to {MEMPOOL_FILE}"),
            Err(e) => log::warn!("cannot write {MEMPOOL_FILE}: {e}"),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MempoolFileError> {
        if self.0.len() < n {
            return Err(MempoolFileError::Format("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, MempoolFileError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, MempoolFileError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, MempoolFileError> {
        Ok(self.u64()? as i64)
    }
}
