//! The chain state's progress logging: Core's `UpdateTip` line
//! (validation.cpp `UpdateTipLog`) for each new tip, and during initial
//! block download one line every [`PROGRESS_INTERVAL`] with blocks/s and
//! an estimated time left. Pure formatting; the sync-manager thread calls
//! it from [`super::state::ChainState`] as blocks connect.

use std::time::Duration;

use bitcoin::pow::Work;
use bitcoin::BlockHash;

/// How often the initial-download progress line is logged.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// What one `UpdateTip` line reports.
#[derive(Debug, Clone, Copy)]
pub struct TipInfo {
    /// The new tip.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// Its header's version.
    pub version: i32,
    /// Its chain work.
    pub chain_work: Work,
    /// Core's `nChainTx` of the tip.
    pub chain_tx: u64,
    /// Its header's time.
    pub time: u32,
    /// Core's `GuessVerificationProgress`.
    pub progress: f64,
    /// UTXO cache usage, bytes.
    pub cache_bytes: usize,
    /// UTXO cache entries.
    pub cache_coins: usize,
}

/// `log2` of an amount of work (Core's `log(nChainWork.getdouble()) /
/// log(2.0)`).
pub fn log2_work(work: Work) -> f64 {
    let v = work
        .to_be_bytes()
        .iter()
        .fold(0.0f64, |acc, b| acc * 256.0 + f64::from(*b));
    v.log2()
}

/// Core's line: `UpdateTip: new best=HASH height=N version=0x%08x
/// log2_work=%f tx=N date='...' progress=%f cache=%.1fMiB(Ntxo)`.
pub fn update_tip_line(t: &TipInfo) -> String {
    format!(
        "UpdateTip: new best={} height={} version=0x{:08x} log2_work={:.6} tx={} date='{}' progress={:.6} cache={:.1}MiB({}txo)",
        t.hash,
        t.height,
        t.version as u32,
        log2_work(t.chain_work),
        t.chain_tx,
        crate::util::format_iso8601(i64::from(t.time)),
        t.progress,
        t.cache_bytes as f64 / f64::from(1u32 << 20),
        t.cache_coins
    )
}

/// The initial-download progress line: height of the best header, rate
/// over the last interval and the time left at that rate.
pub fn progress_line(
    height: u32,
    best: u32,
    blocks: u32,
    elapsed: Duration,
    progress: f64,
) -> String {
    let rate = f64::from(blocks) / elapsed.as_secs_f64().max(1e-3);
    let left = best.saturating_sub(height);
    let eta = if rate > 0.0 {
        let s = (f64::from(left) / rate).round() as u64;
        format!("{}h{:02}m{:02}s", s / 3_600, s % 3_600 / 60, s % 60)
    } else {
        "unknown".into()
    };
    format!(
        "Synchronizing blocks: height {height}/{best} ({:.2}%), {rate:.1} blocks/s, {left} left, ETA {eta}",
        progress * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn update_tip_line_has_core_s_fields() {
        let mut work = [0u8; 32];
        work[31] = 2; // log2 = 1
        work[30] = 0;
        let hash = BlockHash::from_byte_array([0x11; 32]);
        let line = update_tip_line(&TipInfo {
            hash,
            height: 1_234,
            version: 0x2000_0000,
            chain_work: Work::from_be_bytes(work),
            chain_tx: 5_678,
            time: 1_231_006_505,
            progress: 0.5,
            cache_bytes: 3 << 20,
            cache_coins: 42,
        });
        assert_eq!(
            line,
            format!(
                "UpdateTip: new best={hash} height=1234 version=0x20000000 log2_work=1.000000 tx=5678 date='2009-01-03T18:15:05Z' progress=0.500000 cache=3.0MiB(42txo)"
            )
        );
        // Mainnet's work at ~2^95.
        let mut big = [0u8; 32];
        big[20] = 0x80;
        assert!((log2_work(Work::from_be_bytes(big)) - 95.0).abs() < 1e-9);
    }

    #[test]
    fn dates_are_utc_iso8601() {
        assert_eq!(crate::util::format_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            crate::util::format_iso8601(951_782_400),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            crate::util::format_iso8601(1_772_055_173),
            "2026-02-25T21:32:53Z"
        );
        assert_eq!(crate::util::format_iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn progress_line_has_rate_and_eta() {
        let line = progress_line(1_000, 4_600, 500, Duration::from_secs(10), 0.25);
        assert_eq!(
            line,
            "Synchronizing blocks: height 1000/4600 (25.00%), 50.0 blocks/s, 3600 left, ETA 0h01m12s"
        );
    }
}
