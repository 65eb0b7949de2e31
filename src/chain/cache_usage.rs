//! How big the UTXO cache is, for the metrics endpoint (`crate::metrics`)
//! and embedders. Read on the sync-manager thread, which owns the
//! [`ChainState`], through `NodeHandle::with_chain` or a timed request.

use super::state::ChainState;

/// The UTXO cache's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoinsCacheUsage {
    /// Entries held (clean and dirty).
    pub entries: usize,
    /// Entries to write at the next flush.
    pub dirty: usize,
    /// Estimated heap bytes (`CoinsCache::memory_usage`: table and
    /// scripts), the figure the `--dbcache` limit is checked against.
    pub bytes: usize,
}

impl ChainState {
    /// The UTXO cache's size now.
    pub fn coins_cache_usage(&self) -> CoinsCacheUsage {
        CoinsCacheUsage {
            entries: self.coins.len(),
            dirty: self.coins.dirty(),
            bytes: self.coins.memory_usage(),
        }
    }
}
