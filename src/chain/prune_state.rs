//! The pruning mode (Core's `-prune` values) and the pruning bookkeeping a
//! `ChainState` carries (stored bytes per height). Plain data, used on the
//! sync-manager thread; the pruning itself is `chain/prune.rs`, which
//! re-exports the public items. Kept apart so that `chain/state.rs` can
//! hold the state without importing `chain/prune.rs` (which imports it).

use std::collections::BTreeMap;

use bitcoin::BlockHash;

/// Smallest automatic prune target outside regtest: 550 MiB (Core's
/// `MIN_DISK_SPACE_FOR_BLOCK_FILES`).
pub const MIN_DISK_SPACE_FOR_BLOCK_FILES: u64 = 550 << 20;

/// How block data is pruned (Core's `-prune`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PruneMode {
    /// Never (`--prune=0`, the default).
    #[default]
    Off,
    /// Only through `pruneblockchain` (`--prune=1`, Core's
    /// `PRUNE_TARGET_MANUAL`).
    Manual,
    /// Keep the stored block and undo data under this many bytes.
    Automatic {
        /// The target, in bytes.
        target_bytes: u64,
    },
}

impl PruneMode {
    /// The mode `--prune=MIB` asks for (Core's `ApplyArgsManOptions`):
    /// 0 off, 1 manual, otherwise an automatic target of at least 550 MiB
    /// ([`MIN_DISK_SPACE_FOR_BLOCK_FILES`]); on regtest any target of 2 MiB
    /// or more is accepted so tests stay small.
    pub fn from_mib(mib: u64, regtest: bool) -> Result<PruneMode, String> {
        let bytes = mib.saturating_mul(1 << 20);
        match mib {
            0 => Ok(PruneMode::Off),
            1 => Ok(PruneMode::Manual),
            _ if !regtest && bytes < MIN_DISK_SPACE_FOR_BLOCK_FILES => Err(format!(
                "Prune configured below the minimum of {} MiB.  Please use a higher number.",
                MIN_DISK_SPACE_FOR_BLOCK_FILES >> 20
            )),
            _ => Ok(PruneMode::Automatic {
                target_bytes: bytes,
            }),
        }
    }

    /// Whether block data may be pruned at all (Core's `IsPruneMode`).
    pub fn is_prune_mode(self) -> bool {
        self != PruneMode::Off
    }
}

/// The tip must be above this height before anything is pruned (Core's
/// `nPruneAfterHeight`: 100,000 on mainnet, 1,000 on test networks; on
/// regtest strand uses Core's `-fastprune` value, 100, so tests can show
/// the bound with small chains).
pub fn prune_after_height(network: bitcoin::Network) -> u32 {
    match network {
        bitcoin::Network::Bitcoin => 100_000,
        bitcoin::Network::Regtest => 100,
        _ => 1_000,
    }
}

/// Pruning bookkeeping of a `ChainState`: the mode, and while pruning is
/// on, the stored bytes (body + undo) of every block that has data, by
/// height. Empty when pruning is off.
#[derive(Debug, Default)]
pub(super) struct PruneState {
    pub(super) mode: PruneMode,
    /// Stored blocks by height (every branch), with their bytes.
    pub(super) stored: BTreeMap<u32, Vec<(BlockHash, u64)>>,
    /// Sum of the bytes in `stored` (Core's `CalculateCurrentUsage`).
    pub(super) usage: u64,
    /// Whether block data was ever pruned from the store.
    pub(super) have_pruned: bool,
}

impl PruneState {
    pub(super) fn insert(&mut self, height: u32, hash: BlockHash, bytes: u64) {
        let at = self.stored.entry(height).or_default();
        if let Some(slot) = at.iter_mut().find(|(h, _)| *h == hash) {
            self.usage = self.usage.saturating_sub(slot.1).saturating_add(bytes);
            slot.1 = bytes;
        } else {
            at.push((hash, bytes));
            self.usage = self.usage.saturating_add(bytes);
        }
    }

    /// Bytes stored at heights 1..=`last`, counting until `enough`.
    pub(super) fn bytes_up_to(&self, last: u32, enough: u64) -> u64 {
        let mut sum = 0u64;
        if last == 0 {
            return 0;
        }
        for blocks in self.stored.range(1..=last).map(|(_, b)| b) {
            sum = sum.saturating_add(blocks.iter().map(|(_, n)| n).sum::<u64>());
            if sum >= enough {
                break;
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn prune_values_follow_core() {
        assert_eq!(PruneMode::from_mib(0, false), Ok(PruneMode::Off));
        assert_eq!(PruneMode::from_mib(1, false), Ok(PruneMode::Manual));
        assert_eq!(
            PruneMode::from_mib(549, false),
            Err(
                "Prune configured below the minimum of 550 MiB.  Please use a higher number."
                    .into()
            )
        );
        assert_eq!(
            PruneMode::from_mib(550, false),
            Ok(PruneMode::Automatic {
                target_bytes: MIN_DISK_SPACE_FOR_BLOCK_FILES
            })
        );
        assert_eq!(PruneMode::from_mib(1, true), Ok(PruneMode::Manual));
        assert_eq!(
            PruneMode::from_mib(2, true),
            Ok(PruneMode::Automatic {
                target_bytes: 2 << 20
            })
        );
    }

    #[test]
    fn stored_bytes_are_replaced_not_added_for_the_same_block() {
        let mut s = PruneState::default();
        let (a, b) = (
            BlockHash::from_byte_array([1; 32]),
            BlockHash::from_byte_array([2; 32]),
        );
        s.insert(5, a, 100);
        s.insert(5, a, 300); // body stored while pending, then with undo
        s.insert(5, b, 50); // a side branch at the same height
        s.insert(7, BlockHash::from_byte_array([3; 32]), 1_000);
        assert_eq!(s.usage, 1_350);
        assert_eq!(s.bytes_up_to(6, u64::MAX), 350);
        assert_eq!(s.bytes_up_to(0, u64::MAX), 0);
        assert_eq!(
            s.bytes_up_to(7, 1),
            350,
            "stops at the first height reaching it"
        );
    }
}
