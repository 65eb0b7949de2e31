//! Small helpers with no dependency on the rest of the crate: the clock in
//! Unix seconds and its ISO 8601 form, random nonces, a small deterministic generator and the peer identifier type shared by the
//! mempool (orphan tags) and the networking layer. The bottom layer: any
//! module and any thread may use them.

use std::time::{SystemTime, UNIX_EPOCH};

/// A peer's identifier, unique for the life of the node process, assigned
/// in connection order.
pub type PeerId = u64;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random 64-bit nonce (version and ping nonces, mining extra nonces).
pub fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per thread and advanced per
    // instance: enough for nonces, which need uniqueness, not secrecy.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ_and_time_is_after_2020() {
        assert_ne!(random_nonce(), random_nonce());
        assert!(unix_time() > 1_577_836_800);
    }
}

/// SplitMix64: a small, fast, deterministic generator for choices that need
/// spread but no secrecy (random orphan eviction, test data, differential
/// tests). Same seed, same sequence, on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Core's `FormatISO8601DateTime`: `YYYY-MM-DDTHH:MM:SSZ` in UTC, for
/// Unix seconds (the log lines' timestamps and `UpdateTip`'s `date`).
pub fn format_iso8601(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}
