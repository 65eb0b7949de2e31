//! assumevalid (Core's `-assumevalid`, the `fScriptChecks` decision of
//! `Chainstate::ConnectBlock` in validation.cpp): whether the scripts of a
//! block being connected may be skipped because it is buried under a block
//! the software (or the user) vouches for.
//!
//! Pure; `ChainState::script_check_reason` gathers the facts and
//! `prepare_block` (`chain/connect.rs`) asks it, on the sync-manager thread.
//! Scripts are skipped only when all of Core's conditions hold: an
//! assumed-valid hash is set (`--assumevalid=0` turns it off), it is in the
//! block index, the block is its ancestor, the block is an ancestor of the
//! best header, the best header has at least the minimum chain work, and the
//! block is more than two weeks of equivalent work below the best header
//! (`GetBlockProofEquivalentTime`; on regtest that is more than 2,016 blocks).
//! As in Core the assumed-valid block itself need not be on the best header
//! chain: the block being connected must be on both. Everything else of
//! `ConnectBlock` (inputs, amounts, BIP30/34/68, sigop cost, coinbase
//! amount) and of `CheckBlock` (proof of work, merkle root, witness
//! commitment) is still checked; the skip only saves the script
//! interpreter.

use bitcoin::pow::Work;
use bitcoin::BlockHash;

/// The `--assumevalid` setting (Core's `-assumevalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssumeValid {
    /// The network's default (`ChainParams::default_assume_valid`, Core
    /// v31's `defaultAssumeValid`; none on regtest).
    #[default]
    Default,
    /// `--assumevalid=0`: verify every script.
    Off,
    /// `--assumevalid=HASH`.
    Block(BlockHash),
}

impl AssumeValid {
    /// The hash in effect given the network's default.
    pub fn resolve(self, network_default: Option<BlockHash>) -> Option<BlockHash> {
        match self {
            AssumeValid::Default => network_default,
            AssumeValid::Off => None,
            AssumeValid::Block(h) => Some(h),
        }
    }
}

/// Core's `TWO_WEEKS_IN_SECONDS` in `ConnectBlock`: a block must be more
/// than this much equivalent time of work below the best header.
pub const TWO_WEEKS_IN_SECONDS: i64 = 60 * 60 * 24 * 7 * 2;

/// Why a block's scripts are verified (Core's `script_check_reason`
/// strings); `None` from [`script_check_reason`] means they are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCheckReason {
    /// No assumed-valid block is set.
    AlwaysVerify,
    /// The assumed-valid hash is not in the block index.
    NotInHeaders,
    /// The block is higher than the assumed-valid block.
    AboveAssumeValidHeight,
    /// The block is not an ancestor of the assumed-valid block.
    NotInAssumeValidChain,
    /// The block is not an ancestor of the best header.
    NotInBestHeaderChain,
    /// The best header has less than the minimum chain work.
    BelowMinimumChainWork,
    /// The block is within two weeks of work of the best header.
    TooRecent,
}

impl ScriptCheckReason {
    /// Core's wording, as in its "Enabling script verification" log line.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptCheckReason::AlwaysVerify => "assumevalid=0 (always verify)",
            ScriptCheckReason::NotInHeaders => "assumevalid hash not in headers",
            ScriptCheckReason::AboveAssumeValidHeight => "block height above assumevalid height",
            ScriptCheckReason::NotInAssumeValidChain => "block not in assumevalid chain",
            ScriptCheckReason::NotInBestHeaderChain => "block not in best header chain",
            ScriptCheckReason::BelowMinimumChainWork => {
                "best header chainwork below minimumchainwork"
            }
            ScriptCheckReason::TooRecent => "block too recent relative to best header",
        }
    }
}

/// What [`script_check_reason`] decides from, gathered by the chain state.
#[derive(Debug, Clone, Copy)]
pub struct AssumeValidFacts {
    /// The assumed-valid hash in effect, if any.
    pub assumed: Option<BlockHash>,
    /// Height of the assumed-valid block when it is in the index, with
    /// its ancestor at the block's height (`None` when higher).
    pub assumed_entry: Option<(u32, Option<BlockHash>)>,
    /// The block being connected.
    pub block: BlockHash,
    /// Its height.
    pub height: u32,
    /// Its chain work.
    pub block_work: Work,
    /// The best header's ancestor at the block's height.
    pub best_header_ancestor: Option<BlockHash>,
    /// The best header's chain work.
    pub best_header_work: Work,
    /// The work of the best header alone (`GetBlockProof`).
    pub best_header_proof: Work,
    /// The network's minimum chain work (or `--minimumchainwork`).
    pub minimum_chain_work: Work,
    /// The network's target block spacing in seconds.
    pub spacing: u32,
}

/// Core's decision: `Some(reason)` when the block's scripts must be
/// verified, `None` when they may be skipped.
pub fn script_check_reason(f: &AssumeValidFacts) -> Option<ScriptCheckReason> {
    if f.assumed.is_none() {
        return Some(ScriptCheckReason::AlwaysVerify);
    }
    let Some((assumed_height, ancestor)) = f.assumed_entry else {
        return Some(ScriptCheckReason::NotInHeaders);
    };
    if ancestor != Some(f.block) {
        return Some(if f.height > assumed_height {
            ScriptCheckReason::AboveAssumeValidHeight
        } else {
            ScriptCheckReason::NotInAssumeValidChain
        });
    }
    if f.best_header_ancestor != Some(f.block) {
        return Some(ScriptCheckReason::NotInBestHeaderChain);
    }
    if f.best_header_work < f.minimum_chain_work {
        return Some(ScriptCheckReason::BelowMinimumChainWork);
    }
    let time = block_proof_equivalent_time(
        f.best_header_work,
        f.block_work,
        f.best_header_proof,
        f.spacing,
    );
    if time <= TWO_WEEKS_IN_SECONDS {
        return Some(ScriptCheckReason::TooRecent);
    }
    None
}

/// Core's `GetBlockProofEquivalentTime(to, from, tip)`: how many seconds
/// the work between `from` and `to` would take at the tip's difficulty,
/// saturating at `i64::MAX` (and `-i64::MAX` when `from` has more work),
/// as Core does when the quotient needs more than 63 bits.
pub fn block_proof_equivalent_time(to: Work, from: Work, tip_proof: Work, spacing: u32) -> i64 {
    let (diff, sign) = if to >= from {
        (to - from, 1)
    } else {
        (from - to, -1)
    };
    let (Some(diff), Some(proof)) = (low_u128(diff), low_u128(tip_proof)) else {
        // More than 2^128 work between them: Core's `r.bits() > 63` case.
        if low_u128(diff).is_none() {
            return sign * i64::MAX;
        }
        return 0; // a tip proof beyond 2^128 makes any u128 difference 0
    };
    if proof == 0 {
        return sign * i64::MAX;
    }
    let r = match diff.checked_mul(u128::from(spacing)) {
        Some(product) => product / proof,
        None => u128::MAX,
    };
    match i64::try_from(r) {
        Ok(r) => sign * r,
        Err(_) => sign * i64::MAX,
    }
}

/// `work` as a `u128` when it fits.
fn low_u128(work: Work) -> Option<u128> {
    let bytes = work.to_be_bytes();
    let (high, low) = bytes.split_at(16);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    let mut buf = [0u8; 16];
    buf.copy_from_slice(low);
    Some(u128::from_be_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn hash(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    fn work(n: u128) -> Work {
        let mut bytes = [0u8; 32];
        bytes[16..].copy_from_slice(&n.to_be_bytes());
        Work::from_be_bytes(bytes)
    }

    /// A block at height 100 with work 2 per block (regtest), an
    /// assumed-valid block at 5,000 above it, the best header at 5,000, all
    /// on one chain: every condition holds.
    fn skippable() -> AssumeValidFacts {
        AssumeValidFacts {
            assumed: Some(hash(9)),
            assumed_entry: Some((5_000, Some(hash(1)))),
            block: hash(1),
            height: 100,
            block_work: work(202),
            best_header_ancestor: Some(hash(1)),
            best_header_work: work(10_002),
            best_header_proof: work(2),
            minimum_chain_work: work(0),
            spacing: 600,
        }
    }

    #[test]
    fn all_conditions_hold_skips() {
        assert_eq!(script_check_reason(&skippable()), None);
    }

    #[test]
    fn off_always_verifies() {
        let f = AssumeValidFacts {
            assumed: None,
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&f),
            Some(ScriptCheckReason::AlwaysVerify)
        );
    }

    #[test]
    fn unknown_hash_verifies() {
        let f = AssumeValidFacts {
            assumed_entry: None,
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&f),
            Some(ScriptCheckReason::NotInHeaders)
        );
    }

    #[test]
    fn block_not_below_assumed_verifies() {
        let above = AssumeValidFacts {
            assumed_entry: Some((50, None)),
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&above),
            Some(ScriptCheckReason::AboveAssumeValidHeight)
        );
        let side = AssumeValidFacts {
            assumed_entry: Some((5_000, Some(hash(2)))),
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&side),
            Some(ScriptCheckReason::NotInAssumeValidChain)
        );
    }

    #[test]
    fn block_off_best_header_chain_verifies() {
        let f = AssumeValidFacts {
            best_header_ancestor: Some(hash(3)),
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&f),
            Some(ScriptCheckReason::NotInBestHeaderChain)
        );
    }

    #[test]
    fn best_header_below_minimum_work_verifies() {
        let f = AssumeValidFacts {
            minimum_chain_work: work(10_003),
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&f),
            Some(ScriptCheckReason::BelowMinimumChainWork)
        );
        let equal = AssumeValidFacts {
            minimum_chain_work: work(10_002),
            ..skippable()
        };
        assert_eq!(script_check_reason(&equal), None);
    }

    #[test]
    fn two_weeks_of_work_is_the_boundary() {
        // 2,016 regtest blocks of 2 work at 600 s are exactly two weeks:
        // still verified; one more block and the scripts are skipped.
        let exactly = AssumeValidFacts {
            best_header_work: work(202 + 2 * 2_016),
            ..skippable()
        };
        assert_eq!(
            script_check_reason(&exactly),
            Some(ScriptCheckReason::TooRecent)
        );
        let beyond = AssumeValidFacts {
            best_header_work: work(202 + 2 * 2_017),
            ..skippable()
        };
        assert_eq!(script_check_reason(&beyond), None);
    }

    #[test]
    fn equivalent_time_matches_core() {
        assert_eq!(
            block_proof_equivalent_time(work(10), work(4), work(2), 600),
            1_800
        );
        assert_eq!(
            block_proof_equivalent_time(work(4), work(10), work(2), 600),
            -1_800
        );
        assert_eq!(
            block_proof_equivalent_time(work(4), work(4), work(2), 600),
            0
        );
        let huge = Work::from_be_bytes([0xff; 32]);
        assert_eq!(
            block_proof_equivalent_time(huge, work(0), work(2), 600),
            i64::MAX
        );
        assert_eq!(
            block_proof_equivalent_time(work(0), huge, work(2), 600),
            -i64::MAX
        );
        assert_eq!(
            block_proof_equivalent_time(work(10), work(4), work(0), 600),
            i64::MAX
        );
        assert_eq!(block_proof_equivalent_time(work(10), work(4), huge, 600), 0);
    }

    #[test]
    fn setting_resolves_against_the_network_default() {
        assert_eq!(AssumeValid::Default.resolve(Some(hash(4))), Some(hash(4)));
        assert_eq!(AssumeValid::Default.resolve(None), None);
        assert_eq!(AssumeValid::Off.resolve(Some(hash(4))), None);
        assert_eq!(
            AssumeValid::Block(hash(5)).resolve(Some(hash(4))),
            Some(hash(5))
        );
    }
}
