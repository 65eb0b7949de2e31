//! Small helpers with no dependency on the rest of the crate: the clock in
//! Unix seconds, random nonces and the peer identifier type shared by the
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
