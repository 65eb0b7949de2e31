//! Fee estimation from how long mempool transactions take to confirm
//! (Bitcoin Core's `CBlockPolicyEstimator`, one horizon).
//!
//! Owns [`FeeEstimator`]: every transaction entering the mempool is tracked
//! with the tip height it entered at and its fee-rate bucket (Core's
//! buckets: 100 sat/kvB to 10^7 sat/kvB, spaced by 5 %); when a block
//! connects, the tracked transactions it confirms are counted as
//! "confirmed within N blocks" for every N from the blocks they waited up
//! to [`MAX_TRACKED_TARGET`], after every count decayed by
//! [`MED_DECAY`]. An estimate for a target walks the buckets from the
//! highest rate down, grouping buckets until a group holds enough data,
//! and answers the median rate of the lowest group in which at least the
//! threshold share of transactions (still-unconfirmed ones that already
//! waited the target count against it) confirmed in time — Core's
//! `EstimateMedianVal`.
//!
//! Simplifications against Core, documented here: one horizon (Core's
//! "medium": decay 0.9952, 48 blocks) instead of three, so targets above
//! 48 are answered with the 48-block estimate; transactions leaving the
//! mempool unconfirmed (evicted, replaced) are forgotten rather than
//! counted as failures. Pure logic like the rest of the mempool: the
//! estimator lives inside [`super::Mempool`] (fed by its accept and
//! block-removal paths, under the mempool lock); [`super::persist`] writes
//! it to `fee_estimates.dat`.

use std::collections::HashMap;

use bitcoin::Txid;

use super::FeeRate;

/// Lowest bucket boundary, sat/kvB (Core `MIN_BUCKET_FEERATE`).
pub const MIN_BUCKET_FEERATE: f64 = 100.0;
/// Highest bucket boundary, sat/kvB (Core `MAX_BUCKET_FEERATE`).
pub const MAX_BUCKET_FEERATE: f64 = 1e7;
/// Ratio between bucket boundaries (Core `FEE_SPACING`).
pub const FEE_SPACING: f64 = 1.05;
/// Per-block decay of every count (Core `MED_DECAY`).
pub const MED_DECAY: f64 = 0.9952;
/// Longest confirmation target tracked: Core's medium horizon,
/// `MED_BLOCK_PERIODS` 24 × `MED_SCALE` 2.
pub const MAX_TRACKED_TARGET: u32 = 48;
/// Longest target `estimatesmartfee` accepts (Core's long horizon,
/// `LONG_BLOCK_PERIODS` 42 × `LONG_SCALE` 24).
pub const MAX_CONF_TARGET: u32 = 1008;
/// Share confirmed within half the target (Core `HALF_SUCCESS_PCT`).
pub const HALF_SUCCESS_PCT: f64 = 0.6;
/// Share confirmed within the target (Core `SUCCESS_PCT`).
pub const SUCCESS_PCT: f64 = 0.85;
/// Share confirmed within twice the target (Core `DOUBLE_SUCCESS_PCT`).
pub const DOUBLE_SUCCESS_PCT: f64 = 0.95;
/// Decayed transactions per block a bucket group needs (Core
/// `SUFFICIENT_FEETXS`); divided by `1 - decay` as Core does.
pub const SUFFICIENT_FEETXS: f64 = 0.1;

/// One bucket group's counts, as `estimaterawfee` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BucketRange {
    /// Lower bound, sat/kvB.
    pub start: f64,
    /// Upper bound, sat/kvB.
    pub end: f64,
    /// Confirmed within the target (decayed).
    pub within_target: f64,
    /// Confirmed at all (decayed).
    pub total_confirmed: f64,
    /// Still in the mempool, waiting at least the target.
    pub in_mempool: f64,
    /// Left the mempool unconfirmed (always 0: not tracked, see module docs).
    pub left_mempool: f64,
}

/// The result of one raw estimate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RawEstimate {
    /// The fee rate, sat/kvB, if one passed.
    pub feerate: Option<FeeRate>,
    /// The lowest passing bucket group.
    pub pass: Option<BucketRange>,
    /// The highest failing bucket group.
    pub fail: Option<BucketRange>,
}

/// Why a `fee_estimates.dat` could not be used.
#[derive(Debug)]
pub enum FeeFileError {
    /// Reading failed.
    Io(std::io::Error),
    /// Not a strand fee-estimates file, a different version or layout, or
    /// truncated.
    Format(&'static str),
    /// Older than [`super::persist::MAX_FILE_AGE`].
    TooOld(u64),
}

impl std::fmt::Display for FeeFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeeFileError::Io(e) => write!(f, "{e}"),
            FeeFileError::Format(w) => write!(f, "bad fee estimates file: {w}"),
            FeeFileError::TooOld(s) => write!(f, "fee estimates file is {s} s old, ignored"),
        }
    }
}

impl std::error::Error for FeeFileError {}

/// The estimator; see the module documentation.
#[derive(Debug, Clone)]
pub struct FeeEstimator {
    /// Upper bound of each bucket, sat/kvB.
    buckets: Vec<f64>,
    /// Confirmed transactions per bucket (decayed).
    tx_ct: Vec<f64>,
    /// Sum of their fee rates per bucket (decayed), for the median.
    fee_sum: Vec<f64>,
    /// `conf[t - 1][b]`: confirmed within `t` blocks, per bucket.
    conf: Vec<Vec<f64>>,
    /// Unconfirmed tracked transactions: (tip height at entry, bucket,
    /// fee rate in sat/kvB).
    tracked: HashMap<Txid, (u32, usize, f64)>,
    /// Highest block processed.
    best_height: u32,
    /// First block processed (0: none yet).
    first_height: u32,
}

impl Default for FeeEstimator {
    fn default() -> FeeEstimator {
        FeeEstimator::new()
    }
}

impl FeeEstimator {
    /// An estimator with no data.
    pub fn new() -> FeeEstimator {
        let mut buckets = Vec::new();
        let mut b = MIN_BUCKET_FEERATE;
        while b <= MAX_BUCKET_FEERATE {
            buckets.push(b);
            b *= FEE_SPACING;
        }
        // Core's last bucket catches everything above.
        buckets.push(f64::INFINITY);
        let n = buckets.len();
        FeeEstimator {
            buckets,
            tx_ct: vec![0.0; n],
            fee_sum: vec![0.0; n],
            conf: vec![vec![0.0; n]; MAX_TRACKED_TARGET as usize],
            tracked: HashMap::new(),
            best_height: 0,
            first_height: 0,
        }
    }

    fn bucket_of(&self, rate: f64) -> usize {
        self.buckets
            .partition_point(|&b| b < rate)
            .min(self.buckets.len() - 1)
    }

    /// Starts tracking `txid`, which entered the mempool with the tip at
    /// `tip_height` paying `rate` (sat/kvB).
    pub fn process_tx(&mut self, txid: Txid, tip_height: u32, rate: FeeRate) {
        let b = self.bucket_of(rate.0 as f64);
        self.tracked.insert(txid, (tip_height, b, rate.0 as f64));
    }

    /// Stops tracking `txid` (it left the mempool unconfirmed).
    pub fn remove_tx(&mut self, txid: &Txid) {
        self.tracked.remove(txid);
    }

    /// Number of transactions being tracked.
    pub fn tracked_len(&self) -> usize {
        self.tracked.len()
    }

    /// Highest block processed.
    pub fn best_height(&self) -> u32 {
        self.best_height
    }

    /// A block at `height` confirmed `txids`: decays every count, then
    /// records the tracked ones. Blocks not above the best one processed
    /// (reorganisations, duplicates) are ignored, as in Core.
    pub fn process_block(&mut self, height: u32, txids: &[Txid]) {
        if height <= self.best_height {
            for t in txids {
                self.tracked.remove(t);
            }
            return;
        }
        self.best_height = height;
        if self.first_height == 0 {
            self.first_height = height;
        }
        for v in self.tx_ct.iter_mut().chain(self.fee_sum.iter_mut()) {
            *v *= MED_DECAY;
        }
        for row in &mut self.conf {
            for v in row.iter_mut() {
                *v *= MED_DECAY;
            }
        }
        for t in txids {
            let Some((entered, b, rate)) = self.tracked.remove(t) else {
                continue;
            };
            let blocks = height.saturating_sub(entered).max(1);
            if let (Some(c), Some(s)) = (self.tx_ct.get_mut(b), self.fee_sum.get_mut(b)) {
                *c += 1.0;
                *s += rate;
            }
            for t in blocks..=MAX_TRACKED_TARGET {
                if let Some(v) = self
                    .conf
                    .get_mut(t as usize - 1)
                    .and_then(|row| row.get_mut(b))
                {
                    *v += 1.0;
                }
            }
        }
    }

    /// Longest target the data can answer (Core `MaxUsableEstimate`: half
    /// the blocks seen, at most the horizon).
    pub fn max_usable_target(&self) -> u32 {
        if self.first_height == 0 {
            return 0;
        }
        let span = self.best_height.saturating_sub(self.first_height) + 1;
        (span / 2).min(MAX_TRACKED_TARGET)
    }

    /// Core's `EstimateMedianVal` for `target` (1..=48) and success
    /// `threshold`.
    pub fn estimate_raw(&self, target: u32, threshold: f64) -> RawEstimate {
        let mut out = RawEstimate::default();
        if target == 0 || target > MAX_TRACKED_TARGET {
            return out;
        }
        let Some(conf) = self.conf.get(target as usize - 1) else {
            return out;
        };
        let mut waiting = vec![0.0; self.buckets.len()];
        for (entered, b, _) in self.tracked.values() {
            if self.best_height.saturating_sub(*entered) >= target {
                if let Some(w) = waiting.get_mut(*b) {
                    *w += 1.0;
                }
            }
        }
        let sufficient = SUFFICIENT_FEETXS / (1.0 - MED_DECAY);
        let (mut n_conf, mut total, mut extra) = (0.0, 0.0, 0.0);
        let mut far = self.buckets.len() - 1;
        let mut best: Option<(usize, usize)> = None;
        for b in (0..self.buckets.len()).rev() {
            n_conf += conf.get(b).copied().unwrap_or(0.0);
            total += self.tx_ct.get(b).copied().unwrap_or(0.0);
            extra += waiting.get(b).copied().unwrap_or(0.0);
            if total + extra < sufficient {
                continue;
            }
            let range = self.range(b, far, n_conf, total, extra);
            if n_conf / (total + extra) < threshold {
                out.fail = Some(range);
                break;
            }
            out.pass = Some(range);
            best = Some((b, far));
            n_conf = 0.0;
            total = 0.0;
            extra = 0.0;
            far = b.saturating_sub(1);
        }
        if let Some((near, far)) = best {
            // The median transaction's bucket average.
            let count: f64 = (near..=far).filter_map(|b| self.tx_ct.get(b)).sum();
            let mut seen = 0.0;
            for b in near..=far {
                let c = self.tx_ct.get(b).copied().unwrap_or(0.0);
                seen += c;
                if seen >= count / 2.0 && c > 0.0 {
                    let avg = self.fee_sum.get(b).copied().unwrap_or(0.0) / c;
                    out.feerate = Some(FeeRate(avg.round() as u64));
                    break;
                }
            }
        }
        out
    }

    fn range(&self, near: usize, far: usize, n_conf: f64, total: f64, extra: f64) -> BucketRange {
        let start = if near == 0 {
            0.0
        } else {
            self.buckets.get(near - 1).copied().unwrap_or(0.0)
        };
        let end = self.buckets.get(far).copied().unwrap_or(MAX_BUCKET_FEERATE);
        BucketRange {
            start,
            end: if end.is_finite() { end } else { 1e99 },
            within_target: n_conf,
            total_confirmed: total,
            in_mempool: extra,
            left_mempool: 0.0,
        }
    }

    /// Core's `estimateSmartFee`: the target is raised to 2 and lowered to
    /// what the data can answer; the answer is the highest of the
    /// half-target (60 %), target (85 %) and double-target (95 %)
    /// estimates. Returns the rate (if any) and the target used.
    pub fn estimate_smart(&self, target: u32) -> (Option<FeeRate>, u32) {
        let mut t = target.max(2);
        t = t.min(self.max_usable_target());
        if t <= 1 {
            return (None, t.max(1));
        }
        let half = self.estimate_raw((t / 2).max(1), HALF_SUCCESS_PCT).feerate;
        let actual = self.estimate_raw(t, SUCCESS_PCT).feerate;
        let double = self
            .estimate_raw((2 * t).min(MAX_TRACKED_TARGET), DOUBLE_SUCCESS_PCT)
            .feerate;
        let best = [half, actual, double].into_iter().flatten().max();
        // Core only answers when the target's own estimate exists.
        (actual.and(best), t)
    }

    /// Serializes the counts (not the tracked unconfirmed set) for
    /// `fee_estimates.dat`: magic, version, write time, heights, layout,
    /// then the f64 tables, little-endian.
    pub fn to_bytes(&self, now: u64) -> Vec<u8> {
        let n = self.buckets.len();
        let mut out = Vec::with_capacity(40 + 8 * n * (2 + self.conf.len()));
        out.extend_from_slice(FEE_FILE_MAGIC);
        out.extend_from_slice(&FEE_FILE_VERSION.to_le_bytes());
        out.extend_from_slice(&now.to_le_bytes());
        out.extend_from_slice(&self.best_height.to_le_bytes());
        out.extend_from_slice(&self.first_height.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&(self.conf.len() as u32).to_le_bytes());
        for v in self
            .tx_ct
            .iter()
            .chain(self.fee_sum.iter())
            .chain(self.conf.iter().flatten())
        {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads [`FeeEstimator::to_bytes`]'s output; a file written more than
    /// `max_age` seconds before `now` is refused (Core `MAX_FILE_AGE`).
    pub fn from_bytes(bytes: &[u8], now: u64, max_age: u64) -> Result<FeeEstimator, FeeFileError> {
        let mut r = Reader(bytes);
        if r.take(8)? != FEE_FILE_MAGIC {
            return Err(FeeFileError::Format("magic"));
        }
        if r.u32()? != FEE_FILE_VERSION {
            return Err(FeeFileError::Format("version"));
        }
        let written = r.u64()?;
        let age = now.saturating_sub(written);
        if age > max_age {
            return Err(FeeFileError::TooOld(age));
        }
        let mut e = FeeEstimator::new();
        e.best_height = r.u32()?;
        e.first_height = r.u32()?;
        if r.u32()? as usize != e.buckets.len() || r.u32()? as usize != e.conf.len() {
            return Err(FeeFileError::Format("bucket layout"));
        }
        for v in e.tx_ct.iter_mut().chain(e.fee_sum.iter_mut()) {
            *v = r.f64()?;
        }
        for row in &mut e.conf {
            for v in row.iter_mut() {
                *v = r.f64()?;
            }
        }
        if !r.0.is_empty() {
            return Err(FeeFileError::Format("trailing data"));
        }
        Ok(e)
    }
}

const FEE_FILE_MAGIC: &[u8; 8] = b"STRNDFEE";
const FEE_FILE_VERSION: u32 = 1;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FeeFileError> {
        if self.0.len() < n {
            return Err(FeeFileError::Format("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, FeeFileError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, FeeFileError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn f64(&mut self) -> Result<f64, FeeFileError> {
        let v = f64::from_bits(self.u64()?);
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(FeeFileError::Format("bad count"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn txid(i: u32) -> Txid {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        Txid::from_byte_array(b)
    }

    /// 30 transactions per block at 5 sat/vB confirmed next block, and 30
    /// at 1 sat/vB that wait 6 blocks: a 2-block target gets ~5 sat/vB,
    /// a 10-block one the cheaper rate.
    #[test]
    fn estimates_follow_confirmation_times() {
        let mut e = FeeEstimator::new();
        assert_eq!(e.estimate_smart(2), (None, 1));
        let mut n = 0;
        let mut slow: Vec<(u32, Vec<Txid>)> = Vec::new();
        for h in 100..140u32 {
            let mut confirmed = Vec::new();
            for _ in 0..30 {
                n += 1;
                e.process_tx(txid(n), h - 1, FeeRate(5000));
                confirmed.push(txid(n));
            }
            let mut waiting = Vec::new();
            for _ in 0..30 {
                n += 1;
                e.process_tx(txid(n), h - 1, FeeRate(1000));
                waiting.push(txid(n));
            }
            slow.push((h + 5, waiting));
            if let Some(pos) = slow.iter().position(|(at, _)| *at == h) {
                confirmed.extend(slow.remove(pos).1);
            }
            e.process_block(h, &confirmed);
        }
        let (fast, t) = e.estimate_smart(2);
        assert_eq!(t, 2);
        let fast = fast.unwrap();
        assert!(fast.0 > 4000 && fast.0 <= 5300, "{fast:?}");
        let (cheap, t) = e.estimate_smart(12);
        assert_eq!(t, 12);
        assert!(cheap.unwrap().0 < 1100, "{cheap:?}");
        // Persistence round trip gives the same answers.
        let bytes = e.to_bytes(1000);
        let back = FeeEstimator::from_bytes(&bytes, 1000 + 3600, 60 * 3600).unwrap();
        assert_eq!(back.estimate_smart(2).0, Some(fast));
        assert!(matches!(
            FeeEstimator::from_bytes(&bytes, 1000 + 61 * 3600, 60 * 3600),
            Err(FeeFileError::TooOld(_))
        ));
        assert!(FeeEstimator::from_bytes(&bytes[..bytes.len() - 1], 1000, 60 * 3600).is_err());
        // Blocks at or below the best are ignored.
        let before = e.estimate_raw(2, SUCCESS_PCT);
        e.process_block(120, &[]);
        assert_eq!(e.estimate_raw(2, SUCCESS_PCT), before);
    }
}
