//! Bitcoin Core's outbound connection policy as pure functions: which kind
//! of connection to open next (`ThreadOpenConnections`), whether an
//! address the address manager offered may be dialled, when the tip may be
//! stale (`TipMayBeStale`) and which extra outbound peer to evict
//! (`EvictExtraOutboundPeers`). No I/O and no clock: the `connmgr` thread
//! (see `mod.rs`) feeds them its counts and times, and the unit tests below
//! feed them theirs.

use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;

use crate::peer::ConnectionType;
use crate::util::SplitMix64;

/// Only consider addresses tried in the last 10 minutes after this many
/// selections in one round (Core: `nTries < 30` in `ThreadOpenConnections`).
pub const RECENT_TRY_OVERRIDE: u32 = 30;
/// How long a try keeps an address from being selected again (Core: 10 min).
pub const RECENT_TRY_WINDOW: u32 = 10 * 60;
/// Addresses looked at per round before giving up until the next round
/// (Core: 100).
pub const MAX_SELECT_TRIES: u32 = 100;
/// Full-relay peers that make seed nodes and DNS seeds unnecessary (Core's
/// `SEED_OUTBOUND_CONNECTION_THRESHOLD`).
pub const SEED_OUTBOUND_CONNECTION_THRESHOLD: usize = 2;

/// What the connection manager counts before choosing (Core counts the
/// same in `ThreadOpenConnections`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundCounts {
    /// Open `OUTBOUND_FULL_RELAY` connections.
    pub full_relay: usize,
    /// Open `BLOCK_RELAY` connections.
    pub block_relay: usize,
    /// Open `FEELER` connections.
    pub feeler: usize,
}

/// The connection kind to open this round, in Core's priority order:
/// anchors (block-relay-only) first, then full-relay up to its target, then
/// block-relay-only up to its target, then one extra full-relay peer when
/// the tip may be stale, then a feeler when its timer has passed. `None`:
/// nothing to open this round. All of them share Core's outbound semaphore
/// of `max_full_relay + max_block_relay + 1` slots (the one is the
/// feeler's, which an extra full-relay peer borrows), so there is never
/// more than one extra peer or feeler open.
pub fn next_conn_type(
    counts: OutboundCounts,
    max_full_relay: usize,
    max_block_relay: usize,
    have_anchors: bool,
    try_new_outbound: bool,
    feeler_due: bool,
) -> Option<(ConnectionType, bool)> {
    let open = counts.full_relay + counts.block_relay + counts.feeler;
    if open > max_full_relay + max_block_relay {
        None
    } else if have_anchors && counts.block_relay < max_block_relay {
        Some((ConnectionType::BlockRelayOnly, true))
    } else if counts.full_relay < max_full_relay {
        Some((ConnectionType::OutboundFullRelay, false))
    } else if counts.block_relay < max_block_relay {
        Some((ConnectionType::BlockRelayOnly, false))
    } else if try_new_outbound {
        Some((ConnectionType::OutboundFullRelay, false))
    } else if feeler_due {
        Some((ConnectionType::Feeler, false))
    } else {
        None
    }
}

/// Core's `HasAllDesirableServiceFlags` for automatic peers: a full node
/// (`NODE_NETWORK`, or `NODE_NETWORK_LIMITED` — Core accepts it once out of
/// initial download; strand accepts it always, blocks are fetched along the
/// best header chain from whoever has them) that serves witnesses.
pub fn has_desirable_services(services: ServiceFlags) -> bool {
    services.has(ServiceFlags::WITNESS)
        && (services.has(ServiceFlags::NETWORK) || services.has(ServiceFlags::NETWORK_LIMITED))
}

/// Core's `MayHaveUsefulAddressDB`: what a feeler needs (a full node of
/// either kind, witness or not).
pub fn may_have_useful_address_db(services: ServiceFlags) -> bool {
    services.has(ServiceFlags::NETWORK) || services.has(ServiceFlags::NETWORK_LIMITED)
}

/// Whether an address tried at `last_try` may be dialled now, on the
/// `tries`-th selection of this round (Core: skip addresses tried in the
/// last 10 minutes unless 30 selections failed already).
pub fn recently_tried(last_try: u32, now: u32, tries: u32) -> bool {
    now.saturating_sub(last_try) < RECENT_TRY_WINDOW && tries < RECENT_TRY_OVERRIDE
}

/// Core's `count_failures`: a failed dial counts against the address only
/// when we are evidently online, i.e. connected to at least
/// `min(max_automatic - 1, 2)` distinct network groups.
pub fn count_failures(outbound_groups: usize, max_automatic: usize) -> bool {
    outbound_groups >= max_automatic.saturating_sub(1).min(2)
}

/// An exponentially distributed delay with mean `mean` (Core's
/// `rand_exp_duration`, used for the feeler and extra-peer timers so they
/// form a Poisson process).
pub fn exp_delay(rng: &mut SplitMix64, mean: Duration) -> Duration {
    // Uniform in (0, 1]: never ln(0).
    let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    mean.mul_f64(-u.ln()).min(mean * 20)
}

/// Core's `TipMayBeStale`: the tip has not moved for `stale_age` (three
/// block spacings, 30 min on every network but regtest, where strand uses
/// the same).
pub fn tip_may_be_stale(last_tip_update: Instant, now: Instant, stale_age: Duration) -> bool {
    now.saturating_duration_since(last_tip_update) > stale_age
}

/// One automatic full-relay peer as `EvictExtraOutboundPeers` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundCandidate {
    /// Peer id (higher = younger connection).
    pub id: u64,
    /// Unix time of the last new block it gave us, 0 if none.
    pub last_block_time: u64,
    /// How long it has been connected.
    pub connected_for: Duration,
}

/// Core's `EvictExtraOutboundPeers` for full-relay peers: with more than
/// the target number open, the one that least recently gave us a new
/// block (ties: the youngest) is disconnected — unless it has been
/// connected less than `minimum_connect_time`, in which case nobody is
/// this round.
pub fn select_extra_outbound_to_evict(
    peers: &[OutboundCandidate],
    max_full_relay: usize,
    minimum_connect_time: Duration,
) -> Option<u64> {
    if peers.len() <= max_full_relay {
        return None;
    }
    let worst = peers.iter().min_by(|a, b| {
        a.last_block_time
            .cmp(&b.last_block_time)
            .then(b.id.cmp(&a.id))
    })?;
    (worst.connected_for > minimum_connect_time).then_some(worst.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(full_relay: usize, block_relay: usize) -> OutboundCounts {
        OutboundCounts {
            full_relay,
            block_relay,
            feeler: 0,
        }
    }

    #[test]
    fn connection_types_follow_cores_priority() {
        use ConnectionType::*;
        // Anchors first, even before any full-relay peer.
        assert_eq!(
            next_conn_type(counts(0, 0), 8, 2, true, false, false),
            Some((BlockRelayOnly, true))
        );
        assert_eq!(
            next_conn_type(counts(0, 0), 8, 2, false, false, true),
            Some((OutboundFullRelay, false))
        );
        assert_eq!(
            next_conn_type(counts(8, 1), 8, 2, false, false, true),
            Some((BlockRelayOnly, false))
        );
        // Anchors left over once block-relay slots are full are not used.
        assert_eq!(next_conn_type(counts(8, 2), 8, 2, true, false, false), None);
        assert_eq!(
            next_conn_type(counts(8, 2), 8, 2, false, true, true),
            Some((OutboundFullRelay, false)),
            "a stale tip asks for a ninth full-relay peer before a feeler"
        );
        assert_eq!(
            next_conn_type(counts(8, 2), 8, 2, false, false, true),
            Some((Feeler, false))
        );
        // The semaphore: one extra peer at most, and no feeler while an
        // extra peer holds its slot (nor a second feeler).
        assert_eq!(next_conn_type(counts(9, 2), 8, 2, false, true, true), None);
        let feeling = OutboundCounts {
            feeler: 1,
            ..counts(8, 2)
        };
        assert_eq!(next_conn_type(feeling, 8, 2, false, true, true), None);
        assert_eq!(
            next_conn_type(counts(8, 2), 8, 2, false, false, false),
            None
        );
    }

    #[test]
    fn address_filters_follow_core() {
        let now = 1_700_000_000;
        assert!(recently_tried(now - 60, now, 0));
        assert!(
            !recently_tried(now - 60, now, 30),
            "after 30 tries anything goes"
        );
        assert!(!recently_tried(now - 601, now, 0));
        assert!(!recently_tried(0, now, 0), "never tried");
        let full = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
        assert!(has_desirable_services(full));
        assert!(has_desirable_services(
            ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS
        ));
        assert!(!has_desirable_services(ServiceFlags::NETWORK));
        assert!(!has_desirable_services(ServiceFlags::WITNESS));
        assert!(may_have_useful_address_db(ServiceFlags::NETWORK));
        assert!(!may_have_useful_address_db(ServiceFlags::WITNESS));
        // 11 automatic connections: failures count from 2 groups on.
        assert!(!count_failures(1, 11));
        assert!(count_failures(2, 11));
        assert!(count_failures(0, 1));
    }

    #[test]
    fn exponential_delays_average_their_mean() {
        let mut rng = SplitMix64::new(7);
        let mean = Duration::from_secs(120);
        let n = 20_000;
        let total: Duration = (0..n).map(|_| exp_delay(&mut rng, mean)).sum();
        let avg = total.as_secs_f64() / n as f64;
        assert!((110.0..130.0).contains(&avg), "average {avg}");
    }

    #[test]
    fn stale_tip_after_thirty_minutes() {
        let t0 = Instant::now();
        let age = Duration::from_secs(30 * 60);
        assert!(!tip_may_be_stale(
            t0,
            t0 + Duration::from_secs(29 * 60),
            age
        ));
        assert!(tip_may_be_stale(t0, t0 + Duration::from_secs(31 * 60), age));
    }

    #[test]
    fn extra_outbound_eviction_picks_the_least_useful() {
        let long = Duration::from_secs(60);
        let min = Duration::from_secs(30);
        let c = |id, last_block_time, connected_for| OutboundCandidate {
            id,
            last_block_time,
            connected_for,
        };
        let peers = [c(1, 100, long), c(2, 50, long), c(3, 200, long)];
        assert_eq!(select_extra_outbound_to_evict(&peers, 3, min), None);
        assert_eq!(select_extra_outbound_to_evict(&peers, 2, min), Some(2));
        // Ties: the youngest goes.
        let peers = [c(1, 0, long), c(4, 0, long), c(3, 10, long)];
        assert_eq!(select_extra_outbound_to_evict(&peers, 2, min), Some(4));
        // The chosen one is too young: nobody this round.
        let peers = [c(1, 10, long), c(5, 0, Duration::from_secs(5))];
        assert_eq!(select_extra_outbound_to_evict(&peers, 1, min), None);
    }
}
