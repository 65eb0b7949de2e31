//! Proof of work: compact-target arithmetic, the difficulty retarget, the
//! median time past and chain work.
//!
//! Owns the pure functions behind Bitcoin Core's `pow.cpp`
//! (`CheckProofOfWork`, `GetNextWorkRequired`, `CalculateNextWorkRequired`,
//! `GetBlockProof`) and `CBlockIndex::GetMedianTimePast`, plus the
//! [`HeaderAncestry`] trait through which the chain layer shows the ancestors
//! of a header being validated. Called from the chain / sync-manager thread;
//! no state, no locks.

use std::cmp::Ordering;

use bitcoin::block::Header;
use bitcoin::pow::{CompactTarget, Target, Work};

use super::error::ValidationError;
use super::params::{ChainParams, MEDIAN_TIME_SPAN};

/// The chain a new header extends, as seen by the consensus checks: the
/// block at [`height`](HeaderAncestry::height) is the new header's parent,
/// and every ancestor down to genesis can be looked up by height.
///
/// The chain layer implements this over its block index (walking `prev`
/// pointers or using its active-chain vector when the parent is on it).
pub trait HeaderAncestry {
    /// Height of the parent of the header being validated (the tip of this
    /// view).
    fn height(&self) -> u32;
    /// Header at `height` on this chain (`height <= self.height()`), or
    /// `None` if unknown.
    fn header_at(&self, height: u32) -> Option<Header>;

    /// The testnet/regtest minimum-difficulty walk (Core: "return the last
    /// non-special-min-difficulty-rules-block"): the bits of the nearest
    /// block at or below `height` (whose header is `header`) that is on a
    /// retarget boundary or not at `limit_bits`. The default walks back
    /// header by header; an index that remembers the answer per block
    /// overrides it to avoid quadratic work on long min-difficulty chains.
    fn last_non_min_difficulty_bits(
        &self,
        height: u32,
        header: Header,
        limit_bits: CompactTarget,
        interval: u32,
    ) -> Result<CompactTarget, ValidationError> {
        walk_min_difficulty(self, height, header, limit_bits, interval)
    }
}

/// The header-by-header min-difficulty walk behind
/// [`HeaderAncestry::last_non_min_difficulty_bits`].
pub fn walk_min_difficulty<A: HeaderAncestry + ?Sized>(
    chain: &A,
    mut height: u32,
    mut header: Header,
    limit_bits: CompactTarget,
    interval: u32,
) -> Result<CompactTarget, ValidationError> {
    while height > 0 && !height.is_multiple_of(interval) && header.bits == limit_bits {
        height -= 1;
        header = chain
            .header_at(height)
            .ok_or_else(|| missing_ancestor(height))?;
    }
    Ok(header.bits)
}

/// A plain list of headers indexed by height (`[genesis, 1, 2, ...]`) is an
/// ancestry whose tip is its last element. Handy for tests and for short
/// in-memory chains.
impl HeaderAncestry for [Header] {
    fn height(&self) -> u32 {
        u32::try_from(self.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        self.get(usize::try_from(height).ok()?).copied()
    }
}

impl HeaderAncestry for Vec<Header> {
    fn height(&self) -> u32 {
        self.as_slice().height()
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        self.as_slice().header_at(height)
    }
}

fn missing_ancestor(height: u32) -> ValidationError {
    ValidationError::internal("missing-ancestor")
        .with_detail(format!("no header at height {height} in the ancestry"))
}

/// 256-bit unsigned integer with exactly the semantics of Core's
/// `arith_uint256` where consensus depends on them (compact encoding,
/// wrapping multiplication, truncating division).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct U256([u64; 4]); // little-endian limbs

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl U256 {
    pub(crate) const ZERO: U256 = U256([0; 4]);

    pub(crate) fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    pub(crate) fn from_le_bytes(b: [u8; 32]) -> U256 {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(w);
        }
        U256(limbs)
    }

    pub(crate) fn to_le_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        b
    }

    pub(crate) fn from_target(t: Target) -> U256 {
        U256::from_le_bytes(t.to_le_bytes())
    }

    pub(crate) fn to_target(self) -> Target {
        Target::from_le_bytes(self.to_le_bytes())
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Number of significant bits.
    pub(crate) fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + 64 - self.0[i].leading_zeros();
            }
        }
        0
    }

    pub(crate) fn shl(self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let limbs = (n / 64) as usize;
        let bits = n % 64;
        let mut out = [0u64; 4];
        for i in (limbs..4).rev() {
            let src = i - limbs;
            let mut v = self.0[src] << bits;
            if bits > 0 && src > 0 {
                v |= self.0[src - 1] >> (64 - bits);
            }
            out[i] = v;
        }
        U256(out)
    }

    pub(crate) fn shr(self, n: u32) -> U256 {
        if n >= 256 {
            return U256::ZERO;
        }
        let limbs = (n / 64) as usize;
        let bits = n % 64;
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate().take(4 - limbs) {
            let src = i + limbs;
            let mut v = self.0[src] >> bits;
            if bits > 0 && src + 1 < 4 {
                v |= self.0[src + 1] << (64 - bits);
            }
            *slot = v;
        }
        U256(out)
    }

    /// Wrapping multiplication by a 64-bit number (as `arith_uint256 *=`).
    pub(crate) fn mul_u64(self, m: u64) -> U256 {
        let mut out = [0u64; 4];
        let mut carry: u128 = 0;
        for (i, slot) in out.iter_mut().enumerate() {
            let v = self.0[i] as u128 * m as u128 + carry;
            *slot = v as u64;
            carry = v >> 64;
        }
        U256(out)
    }

    /// Truncating division by a 64-bit number; division by zero yields zero
    /// (never reached with consensus parameters).
    pub(crate) fn div_u64(self, d: u64) -> U256 {
        if d == 0 {
            return U256::ZERO;
        }
        let mut out = [0u64; 4];
        let mut rem: u128 = 0;
        for i in (0..4).rev() {
            let cur = (rem << 64) | self.0[i] as u128;
            out[i] = (cur / d as u128) as u64;
            rem = cur % d as u128;
        }
        U256(out)
    }

    /// Core's `arith_uint256::SetCompact`: `(value, negative, overflow)`.
    pub(crate) fn from_compact(bits: u32) -> (U256, bool, bool) {
        let size = bits >> 24;
        let mut word = bits & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(word as u64)
        } else {
            U256::from_u64(word as u64).shl(8 * (size - 3))
        };
        let negative = word != 0 && (bits & 0x0080_0000) != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        (value, negative, overflow)
    }

    /// Core's `arith_uint256::GetCompact` (non-negative).
    pub(crate) fn to_compact(self) -> CompactTarget {
        let mut size = self.bits().div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            (self.0[0] << (8 * (3 - size))) as u32
        } else {
            self.shr(8 * (size - 3)).0[0] as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget::from_consensus(compact | (size << 24))
    }
}

/// Decodes `bits` into a target the way Core's `DeriveTarget` does: `None`
/// when the compact value is negative, zero, overflows, or is easier than
/// the network's `pow_limit`.
pub fn derive_target(bits: CompactTarget, params: &ChainParams) -> Option<Target> {
    let (target, negative, overflow) = U256::from_compact(bits.to_consensus());
    if negative || overflow || target.is_zero() || target > U256::from_target(params.pow_limit) {
        return None;
    }
    Some(target.to_target())
}

/// Context-free proof-of-work check of a header (Core `CheckProofOfWork`):
/// the target from `nBits` must be valid and within `pow_limit`, and the
/// header hash must not exceed it. Fails with `"high-hash"`.
pub fn check_proof_of_work(header: &Header, params: &ChainParams) -> Result<(), ValidationError> {
    use bitcoin::hashes::Hash;
    let target = derive_target(header.bits, params).ok_or_else(|| {
        ValidationError::header("high-hash").with_detail(format!(
            "invalid or too easy nbits 0x{:08x}",
            header.bits.to_consensus()
        ))
    })?;
    let hash = U256::from_le_bytes(header.block_hash().to_byte_array());
    if hash > U256::from_target(target) {
        return Err(ValidationError::header("high-hash").with_detail("proof of work failed"));
    }
    Ok(())
}

/// Work represented by a block with `bits` (Core `GetBlockProof`):
/// `2^256 / (target + 1)`, zero for an invalid compact target.
pub fn block_proof(bits: CompactTarget) -> Work {
    let (target, negative, overflow) = U256::from_compact(bits.to_consensus());
    if negative || overflow || target.is_zero() {
        return Work::from_le_bytes([0; 32]);
    }
    target.to_target().to_work()
}

/// The retarget formula (Core `CalculateNextWorkRequired`): scale the last
/// target (with BIP94 the period's first block's, chosen by
/// [`next_work_required`]) by the actual timespan of the period, clamped to a factor of four
/// either way, and cap at `pow_limit`. Regtest never retargets.
pub fn calculate_next_work_required(
    last_bits: CompactTarget,
    last_time: u32,
    first_time: u32,
    params: &ChainParams,
) -> CompactTarget {
    if params.no_retargeting {
        return last_bits;
    }
    let timespan = i64::from(params.pow_target_timespan);
    let actual = (i64::from(last_time) - i64::from(first_time)).clamp(timespan / 4, timespan * 4);
    let (target, _, _) = U256::from_compact(last_bits.to_consensus());
    let mut new = target
        .mul_u64(actual.unsigned_abs())
        .div_u64(timespan.unsigned_abs());
    let limit = U256::from_target(params.pow_limit);
    if new > limit {
        new = limit;
    }
    new.to_compact()
}

/// The `nBits` a block with timestamp `new_time` must carry on top of
/// `prev` (Core `GetNextWorkRequired`): unchanged inside a difficulty
/// period, retargeted at period boundaries, with testnet's 20-minute
/// minimum-difficulty rule (and its walk back to the last block that was
/// not mined under it).
pub fn next_work_required<A: HeaderAncestry + ?Sized>(
    prev: &A,
    new_time: u32,
    params: &ChainParams,
) -> Result<CompactTarget, ValidationError> {
    let last_height = prev.height();
    let last = prev
        .header_at(last_height)
        .ok_or_else(|| missing_ancestor(last_height))?;
    let limit_bits = params.pow_limit_bits();
    let interval = params.difficulty_adjustment_interval().max(1);

    if !(u64::from(last_height) + 1).is_multiple_of(u64::from(interval)) {
        if params.allow_min_difficulty_blocks {
            if i64::from(new_time) > i64::from(last.time) + 2 * i64::from(params.pow_target_spacing)
            {
                return Ok(limit_bits);
            }
            return prev.last_non_min_difficulty_bits(last_height, last, limit_bits, interval);
        }
        return Ok(last.bits);
    }

    // (last_height + 1) is a positive multiple of interval, so this cannot
    // underflow.
    let first_height = last_height + 1 - interval;
    let first = prev
        .header_at(first_height)
        .ok_or_else(|| missing_ancestor(first_height))?;
    // BIP94 (testnet4, Core `enforce_BIP94`): scale the period's first
    // block's target, which can never be a minimum-difficulty block.
    let base_bits = if params.enforce_bip94 {
        first.bits
    } else {
        last.bits
    };
    Ok(calculate_next_work_required(
        base_bits, last.time, first.time, params,
    ))
}

/// Median of up to the last 11 block timestamps (Core
/// `GetMedianTimePast`); 0 for an empty slice. Order of `times` is
/// irrelevant.
pub fn median_time_past(times: &[u32]) -> u32 {
    let start = times.len().saturating_sub(MEDIAN_TIME_SPAN as usize);
    let mut v: Vec<u32> = times.get(start..).unwrap_or(&[]).to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Median time past of the block at `height` in `chain`: the median of its
/// timestamp and those of up to 10 ancestors.
pub fn median_time_past_at<A: HeaderAncestry + ?Sized>(
    chain: &A,
    height: u32,
) -> Result<u32, ValidationError> {
    let low = height.saturating_sub(MEDIAN_TIME_SPAN - 1);
    let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN as usize);
    for h in low..=height {
        times.push(chain.header_at(h).ok_or_else(|| missing_ancestor(h))?.time);
    }
    Ok(median_time_past(&times))
}

/// Whether `new_bits` may follow `old_bits` at `height` on any valid chain
/// (Core `PermittedDifficultyTransition`, used by headers pre-sync, which
/// has no ancestors to compute the exact retarget from): anything goes
/// where minimum-difficulty blocks are allowed (testnet, regtest); at a
/// retarget boundary the target may move at most by the 4× clamp (after
/// the same compact rounding); elsewhere it must not change.
pub fn permitted_difficulty_transition(
    params: &ChainParams,
    height: u64,
    old_bits: CompactTarget,
    new_bits: CompactTarget,
) -> bool {
    if params.allow_min_difficulty_blocks {
        return true;
    }
    let interval = u64::from(params.difficulty_adjustment_interval().max(1));
    if !height.is_multiple_of(interval) {
        return old_bits == new_bits;
    }
    let timespan = u64::from(params.pow_target_timespan.max(1));
    let limit = U256::from_target(params.pow_limit);
    let (observed, _, _) = U256::from_compact(new_bits.to_consensus());
    let (old, _, _) = U256::from_compact(old_bits.to_consensus());
    let bound = |factor_num: u64, factor_den: u64| {
        let mut t = old
            .mul_u64(timespan * factor_num / factor_den)
            .div_u64(timespan);
        if t > limit {
            t = limit;
        }
        // Core rounds through the compact form before comparing.
        U256::from_compact(t.to_compact().to_consensus()).0
    };
    let largest = bound(4, 1);
    if observed > largest {
        return false;
    }
    let smallest = bound(1, 4);
    observed >= smallest
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::block::Version;
    use bitcoin::hashes::Hash;
    use bitcoin::{BlockHash, Network, TxMerkleNode};

    fn bits(v: u32) -> CompactTarget {
        CompactTarget::from_consensus(v)
    }

    #[test]
    fn permitted_difficulty_transitions_match_core() {
        let main = ChainParams::mainnet();
        let old = bits(0x1c0f_fff0);
        // Inside a period nothing may change.
        assert!(permitted_difficulty_transition(&main, 2017, old, old));
        assert!(!permitted_difficulty_transition(
            &main,
            2017,
            old,
            bits(0x1c0f_ffef)
        ));
        // At a boundary: up to 4x harder or easier, after compact rounding.
        assert!(permitted_difficulty_transition(
            &main,
            4032,
            old,
            bits(0x1c3f_ffc0)
        ));
        assert!(!permitted_difficulty_transition(
            &main,
            4032,
            old,
            bits(0x1c40_0000)
        ));
        assert!(permitted_difficulty_transition(
            &main,
            4032,
            old,
            bits(0x1c03_fffc)
        ));
        assert!(!permitted_difficulty_transition(
            &main,
            4032,
            old,
            bits(0x1c03_fffb)
        ));
        // Never easier than the proof-of-work limit.
        let limit = main.pow_limit_bits();
        assert!(permitted_difficulty_transition(&main, 2016, limit, limit));
        assert!(!permitted_difficulty_transition(
            &main,
            2016,
            limit,
            bits(0x1d01_0000)
        ));
        // Minimum-difficulty networks allow anything (Core).
        let reg = ChainParams::regtest();
        assert!(permitted_difficulty_transition(&reg, 5, old, limit));
    }

    #[test]
    fn compact_round_trip_matches_core() {
        // Cases from Core's arith_uint256_tests (SetCompact / GetCompact).
        let (v, n, o) = U256::from_compact(0x0112_3456);
        assert_eq!(v, U256::from_u64(0x12));
        assert!(!n && !o);
        assert_eq!(v.to_compact().to_consensus(), 0x0112_0000);
        let (v, n, _) = U256::from_compact(0x0492_3456);
        assert!(n, "sign bit with non-zero mantissa is negative");
        assert_eq!(v, U256::from_u64(0x1234_5600));
        let (v, _, _) = U256::from_compact(0x0500_9234);
        assert_eq!(v, U256::from_u64(0x9234_0000));
        assert_eq!(v.to_compact().to_consensus(), 0x0500_9234);
        let (v, _, _) = U256::from_compact(0x2012_3456);
        assert_eq!(v, U256::from_u64(0x12_3456).shl(8 * 0x1d));
        assert_eq!(v.to_compact().to_consensus(), 0x2012_3456);
        let (_, _, o) = U256::from_compact(0xff12_3456);
        assert!(o);
        let (v, n, o) = U256::from_compact(0x0080_0000);
        assert!(v.is_zero() && !n && !o);
    }

    #[test]
    fn u256_arith() {
        let a = U256::from_u64(u64::MAX).mul_u64(u64::MAX);
        assert_eq!(a.0[0], 1);
        assert_eq!(a.0[1], u64::MAX - 1);
        assert_eq!(a.div_u64(u64::MAX), U256::from_u64(u64::MAX));
        assert_eq!(U256::from_u64(1).shl(200).shr(200), U256::from_u64(1));
        assert_eq!(U256::from_u64(1).shl(255).bits(), 256);
        assert!(U256::from_u64(1).shl(70) > U256::from_u64(u64::MAX));
    }

    fn mainnet_period(
        last_height: u32,
        first_time: u32,
        last_time: u32,
        last_bits: u32,
    ) -> Vec<Header> {
        // A synthetic chain where only the period's first and last headers
        // matter; heights map to indices.
        let filler = Header {
            version: Version::ONE,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: first_time,
            bits: bits(last_bits),
            nonce: 0,
        };
        let mut v = vec![filler; last_height as usize + 1];
        v[last_height as usize].time = last_time;
        v
    }

    #[test]
    fn mainnet_retargets_match_core_pow_tests() {
        let p = ChainParams::mainnet();
        // Core pow_tests get_next_work: block #30240 .. #32255.
        assert_eq!(
            calculate_next_work_required(bits(0x1d00ffff), 1262152739, 1261130161, &p),
            bits(0x1d00d86a)
        );
        // Same through the ancestry walk (height 32255 is a period end).
        let chain = mainnet_period(32255, 1261130161, 1262152739, 0x1d00ffff);
        assert_eq!(
            next_work_required(&chain, 1262153000, &p).unwrap(),
            bits(0x1d00d86a)
        );
        // get_next_work_pow_limit: capped at pow_limit.
        assert_eq!(
            calculate_next_work_required(bits(0x1d00ffff), 1233061996, 1231006505, &p),
            bits(0x1d00ffff)
        );
        // get_next_work_lower_limit_actual: 4x faster clamp.
        assert_eq!(
            calculate_next_work_required(bits(0x1c05a3f4), 1279297671, 1279008237, &p),
            bits(0x1c0168fd)
        );
        // get_next_work_upper_limit_actual: 4x slower clamp.
        assert_eq!(
            calculate_next_work_required(bits(0x1c387f6f), 1269211443, 1263163443, &p),
            bits(0x1d00e1fd)
        );
        // Inside a period the bits are unchanged.
        let chain = mainnet_period(32254, 1261130161, 1262152739, 0x1c387f6f);
        assert_eq!(
            next_work_required(&chain, 1262153000, &p).unwrap(),
            bits(0x1c387f6f)
        );
    }

    #[test]
    fn missing_ancestor_is_internal_error() {
        let p = ChainParams::mainnet();
        let chain: Vec<Header> = Vec::new();
        let e = next_work_required(&chain, 0, &p).unwrap_err();
        assert_eq!(e.kind(), super::super::error::RejectKind::Internal);
    }

    #[test]
    fn testnet_min_difficulty_rule() {
        let p = ChainParams::testnet();
        let limit = 0x1d00ffff;
        let real = 0x1c00ffff;
        // heights 0..=2020: 2016 has real difficulty, 2017.. are min-difficulty.
        let mut chain = mainnet_period(2020, 1_300_000_000, 1_300_000_000, limit);
        for (i, h) in chain.iter_mut().enumerate() {
            h.time = 1_300_000_000 + 600 * i as u32;
            h.bits = if i >= 2017 { bits(limit) } else { bits(real) };
        }
        let last_time = chain[2020].time;
        // More than 20 minutes after the parent: min difficulty allowed.
        assert_eq!(
            next_work_required(&chain, last_time + 1201, &p).unwrap(),
            bits(limit)
        );
        // Within 20 minutes: walk back past min-difficulty blocks to 2016.
        assert_eq!(
            next_work_required(&chain, last_time + 1200, &p).unwrap(),
            bits(real)
        );
        // Mainnet ignores the rule.
        let m = ChainParams::mainnet();
        assert_eq!(
            next_work_required(&chain, last_time + 5000, &m).unwrap(),
            bits(limit)
        );
    }

    #[test]
    fn bip94_retarget_scales_the_first_block_of_the_period() {
        // Period 2016..=4031 took exactly two weeks; its first block has the
        // real difficulty, its last is a minimum-difficulty block.
        let real = 0x1c00_ffff;
        let limit = 0x1d00_ffff;
        let t0 = 1_714_777_860;
        let mut chain = mainnet_period(4031, t0, t0 + 14 * 24 * 60 * 60, limit);
        chain[2016].bits = bits(real);
        let t = chain[4031].time + 1;
        // testnet4 (BIP94): the retarget keeps the first block's target.
        let t4 = ChainParams::testnet4();
        assert_eq!(next_work_required(&chain, t, &t4).unwrap(), bits(real));
        // testnet3 scales the last block's (minimum-difficulty) target.
        let t3 = ChainParams::testnet();
        assert_eq!(next_work_required(&chain, t, &t3).unwrap(), bits(limit));
        // Half the timespan: BIP94 halves the first block's target.
        chain[4031].time = t0 + 7 * 24 * 60 * 60;
        assert_eq!(
            next_work_required(&chain, t, &t4).unwrap(),
            bits(0x1b7f_ff80)
        );
    }

    #[test]
    fn regtest_never_retargets() {
        let p = ChainParams::regtest();
        let mut chain = mainnet_period(2015, 1_296_688_602, 1_296_688_602, 0x207fffff);
        for (i, h) in chain.iter_mut().enumerate() {
            h.time = 1_296_688_602 + i as u32; // very fast blocks
        }
        let t = chain[2015].time + 1;
        assert_eq!(next_work_required(&chain, t, &p).unwrap(), bits(0x207fffff));
        assert_eq!(
            next_work_required(&chain[..100], t, &p).unwrap(),
            bits(0x207fffff)
        );
    }

    #[test]
    fn proof_of_work_of_genesis_blocks() {
        for net in [
            Network::Bitcoin,
            Network::Testnet,
            Network::Signet,
            Network::Testnet4,
            Network::Regtest,
        ] {
            let p = ChainParams::for_network(net).unwrap();
            let g = bitcoin::constants::genesis_block(net).header;
            assert!(check_proof_of_work(&g, &p).is_ok(), "{net:?}");
        }
        let p = ChainParams::mainnet();
        let mut g = bitcoin::constants::genesis_block(Network::Bitcoin).header;
        g.nonce ^= 1;
        assert_eq!(
            check_proof_of_work(&g, &p).unwrap_err().reason(),
            "high-hash"
        );
        // bits easier than pow_limit are rejected even if the hash meets them.
        let mut g = bitcoin::constants::genesis_block(Network::Bitcoin).header;
        g.bits = bits(0x1e00ffff);
        assert_eq!(
            check_proof_of_work(&g, &p).unwrap_err().reason(),
            "high-hash"
        );
        // Negative and overflowing compacts are rejected.
        assert!(derive_target(bits(0x1d80ffff), &p).is_none());
        assert!(derive_target(bits(0xff00ffff), &p).is_none());
        assert!(derive_target(bits(0), &p).is_none());
    }

    #[test]
    fn work_and_mtp() {
        // Difficulty-1 work is 0x100010001 (Core chain work of block 1).
        let w = block_proof(bits(0x1d00ffff));
        let mut expect = [0u8; 32];
        expect[..5].copy_from_slice(&[0x01, 0x00, 0x01, 0x00, 0x01]);
        assert_eq!(w.to_le_bytes(), expect);
        assert_eq!(block_proof(bits(0)).to_le_bytes(), [0; 32]);
        // Regtest: 2 per block.
        let mut two = [0u8; 32];
        two[0] = 2;
        assert_eq!(block_proof(bits(0x207fffff)).to_le_bytes(), two);

        assert_eq!(median_time_past(&[]), 0);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[3, 1, 2]), 2);
        assert_eq!(median_time_past(&[1, 2, 3, 4]), 3);
        // Only the last 11 count.
        let times: Vec<u32> = (0..20).collect();
        assert_eq!(median_time_past(&times), 14);
        let mut chain = mainnet_period(19, 0, 0, 0x207fffff);
        for (i, h) in chain.iter_mut().enumerate() {
            h.time = 1000 + i as u32;
        }
        assert_eq!(median_time_past_at(&chain, 19).unwrap(), 1014);
        assert_eq!(median_time_past_at(&chain, 2).unwrap(), 1001);
    }
}
