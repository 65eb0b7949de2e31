//! Disconnections counted by reason, for the metrics endpoint
//! (`crate::metrics`). The registry (`Connections`) records one count when
//! it forgets a peer, on whichever thread finishes the peer last (its
//! lifecycle thread); a metrics scrape reads the counters. Atomics only:
//! recording never waits. `DisconnectReason::kind_index` (beside the enum)
//! maps a reason to its label here.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every reason label, indexed by `DisconnectReason::kind_index`; `none` is
/// a peer forgotten without a recorded reason.
pub const DISCONNECT_KINDS: [&str; 20] = [
    "peer_closed",
    "wire",
    "handshake_timeout",
    "idle_timeout",
    "ping_timeout",
    "protocol_violation",
    "self_connection",
    "obsolete_version",
    "send_queue_full",
    "write_failed",
    "too_many_peers",
    "stalled",
    "block_download_timeout",
    "misbehaving",
    "requested",
    "banned",
    "shutdown",
    "resource_exhausted",
    "service_not_offered",
    "none",
];

/// Closed connections by reason since start.
#[derive(Debug, Default)]
pub struct DisconnectCounts {
    counts: [AtomicU64; DISCONNECT_KINDS.len()],
}

impl DisconnectCounts {
    /// Counts one closed connection; `kind` is its reason's
    /// `DisconnectReason::kind_index`, `None` without a reason.
    pub fn record(&self, kind: Option<usize>) {
        let i = kind.unwrap_or(DISCONNECT_KINDS.len() - 1);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Each label with its count.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        DISCONNECT_KINDS
            .iter()
            .zip(&self.counts)
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::DisconnectReason;

    #[test]
    fn counts_by_kind() {
        let c = DisconnectCounts::default();
        let misbehaving = DisconnectReason::Misbehaving("bad block".into());
        c.record(Some(misbehaving.kind_index()));
        c.record(Some(misbehaving.kind_index()));
        c.record(Some(DisconnectReason::PeerClosed.kind_index()));
        c.record(None);
        let s = c.snapshot();
        let get = |k: &str| s.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("misbehaving"), Some(2));
        assert_eq!(get("peer_closed"), Some(1));
        assert_eq!(get("none"), Some(1));
        assert_eq!(get("banned"), Some(0));
        assert_eq!(
            DisconnectReason::ServiceNotOffered("x".into()).kind(),
            "service_not_offered"
        );
    }
}
