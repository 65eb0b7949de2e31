//! Inbound eviction (Bitcoin Core's `node/eviction.cpp` and
//! `CConnman::AttemptToEvictConnection`): which inbound peer makes room
//! when a new inbound connection arrives and every inbound slot is taken.
//!
//! [`select_node_to_evict`] is pure: it works over [`EvictionCandidate`]
//! snapshots and follows Core's `SelectNodeToEvict` step by step. Outbound
//! (manual, automatic, feeler) and `noban` peers are never candidates. Then
//! 4 peers are protected by keyed network group, 8 by lowest minimum ping,
//! 4 by most recent novel transaction, up to 8 block-relay-only peers by
//! most recent novel block, 4 by most recent novel block, and half of the
//! rest by uptime, a quarter of all being reserved for onion, localhost,
//! I2P and CJDNS peers (Core's `ProtectEvictionCandidatesByRatio`). Among
//! what is left, discouraged peers (`prefer_evict`) are considered alone if
//! there are any, and the youngest peer of the network group with the most
//! members (ties: the group with the youngest member) is chosen.
//!
//! Determinism: Core sorts with `std::sort`, so ties fall anywhere. Here
//! every sort is stable and every comparison ends with uptime (the longer
//! connected is protected, as Core's transaction and block comparators
//! already do) and then the peer id, so a given set of candidates always
//! gives the same answer (the ping and network-group comparators gain that
//! tie-break). The network group is keyed with a per-listener secret
//! (SipHash, Core's `RANDOMIZER_ID_NETGROUP`), so a remote cannot predict
//! which groups are protected.
//!
//! Loopback: as Core's `CNetAddr::IsLocal`, 127.0.0.0/8 and ::1 peers are
//! *local* and share the ratio rule's localhost reservation. Their network
//! group follows the address manager's regtest rule: on regtest loopback is
//! routable and each 127.N.x.x /16 is its own group; elsewhere every
//! loopback peer is in the one unroutable group, as in Core.
//!
//! The glue at the bottom ([`Connections::attempt_to_evict_connection`])
//! reads the live peer table; it runs on the listener thread.

use std::cmp::Ordering as CmpOrdering;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bitcoin::hashes::siphash24;
use bitcoin::p2p::ServiceFlags;

use super::{ConnectionType, Connections, DisconnectReason, Peer, PeerId};
use crate::netaddr::{addr_v2, net_class, net_group, NetClass};

/// Peers protected by keyed network group (Core's `SelectNodeToEvict`).
pub const PROTECT_BY_NETGROUP: usize = 4;
/// Peers protected by lowest minimum ping time.
pub const PROTECT_BY_PING: usize = 8;
/// Peers protected by most recent novel transaction.
pub const PROTECT_BY_TX: usize = 4;
/// Block-relay-only peers protected by most recent novel block.
pub const PROTECT_BLOCK_RELAY_ONLY: usize = 8;
/// Peers protected by most recent novel block.
pub const PROTECT_BY_BLOCK: usize = 4;

/// What eviction knows about one connection (Core's
/// `NodeEvictionCandidate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvictionCandidate {
    /// The peer.
    pub id: PeerId,
    /// When it connected (`m_connected`).
    pub connected: SystemTime,
    /// Lowest ping round trip seen, microseconds; `i64::MAX` before the
    /// first pong (`m_min_ping_time` starts at its maximum).
    pub min_ping_us: i64,
    /// Unix time of the last novel block it gave us, 0 if none.
    pub last_block_time: u64,
    /// Unix time of the last novel mempool transaction it gave us, 0 if none.
    pub last_tx_time: u64,
    /// It offers the services we want from a peer (`fRelevantServices`:
    /// `NODE_NETWORK` or `NODE_NETWORK_LIMITED`, with `NODE_WITNESS`).
    pub relevant_services: bool,
    /// It asked for transactions (`m_relay_txs`: the version relay flag).
    pub relay_txs: bool,
    /// It loaded a BIP37 filter (`fBloomFilter`; strand serves none).
    pub bloom_filter: bool,
    /// Its network group, hashed with the node's secret.
    pub keyed_net_group: u64,
    /// Its address was discouraged when it connected (`prefer_evict`).
    pub prefer_evict: bool,
    /// Loopback or 0.0.0.0/8 (Core's `IsLocal`).
    pub is_local: bool,
    /// The network it connected through.
    pub network: NetClass,
    /// Never evicted (Core's `noban` permission; strand has no
    /// whitelisting yet, so always false for real peers).
    pub noban: bool,
    /// What the connection is for; only inbound ones are candidates.
    pub conn_type: ConnectionType,
}

/// The common tie-break: the younger connection first (the longer one is
/// protected), then the higher id first.
fn by_uptime(a: &EvictionCandidate, b: &EvictionCandidate) -> CmpOrdering {
    b.connected.cmp(&a.connected).then(b.id.cmp(&a.id))
}

/// Sorts by one of Core's comparators ("a before b": candidates near the
/// front are evicted first, those at the end protected).
fn sort_by_less(
    v: &mut [EvictionCandidate],
    less: impl Fn(&EvictionCandidate, &EvictionCandidate) -> bool,
) {
    v.sort_by(|a, b| {
        if less(a, b) {
            CmpOrdering::Less
        } else if less(b, a) {
            CmpOrdering::Greater
        } else {
            by_uptime(a, b)
        }
    });
}

/// Sorts by `less`, then removes the last `k` candidates for which
/// `protect` holds (Core's `EraseLastKElements`: only the last `k` are
/// looked at).
fn erase_last_k(
    v: &mut Vec<EvictionCandidate>,
    less: impl Fn(&EvictionCandidate, &EvictionCandidate) -> bool,
    k: usize,
    protect: impl Fn(&EvictionCandidate) -> bool,
) {
    sort_by_less(v, less);
    let start = v.len() - k.min(v.len());
    let tail: Vec<_> = v.drain(start..).filter(|c| !protect(c)).collect();
    v.extend(tail);
}

fn reverse_min_ping(a: &EvictionCandidate, b: &EvictionCandidate) -> bool {
    a.min_ping_us > b.min_ping_us
}

fn reverse_time_connected(a: &EvictionCandidate, b: &EvictionCandidate) -> bool {
    a.connected > b.connected
}

fn net_group_keyed(a: &EvictionCandidate, b: &EvictionCandidate) -> bool {
    a.keyed_net_group < b.keyed_net_group
}

fn block_time(a: &EvictionCandidate, b: &EvictionCandidate) -> bool {
    if a.last_block_time != b.last_block_time {
        return a.last_block_time < b.last_block_time;
    }
    if a.relevant_services != b.relevant_services {
        return b.relevant_services;
    }
    a.connected > b.connected
}

fn tx_time(a: &EvictionCandidate, b: &EvictionCandidate) -> bool {
    if a.last_tx_time != b.last_tx_time {
        return a.last_tx_time < b.last_tx_time;
    }
    if a.relay_txs != b.relay_txs {
        return b.relay_txs;
    }
    if a.bloom_filter != b.bloom_filter {
        return a.bloom_filter;
    }
    a.connected > b.connected
}

fn block_relay_only_time(a: &EvictionCandidate, b: &EvictionCandidate) -> bool {
    if a.relay_txs != b.relay_txs {
        return a.relay_txs;
    }
    if a.last_block_time != b.last_block_time {
        return a.last_block_time < b.last_block_time;
    }
    if a.relevant_services != b.relevant_services {
        return b.relevant_services;
    }
    a.connected > b.connected
}

/// Core's `CompareNodeNetworkTime`: peers outside the given network (or not
/// local, for the localhost entry) first, each part youngest first.
fn network_time(
    is_local: bool,
    network: Option<NetClass>,
) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> bool {
    move |a, b| {
        if is_local && a.is_local != b.is_local {
            return b.is_local;
        }
        let (an, bn) = (Some(a.network) == network, Some(b.network) == network);
        if an != bn {
            return bn;
        }
        a.connected > b.connected
    }
}

/// Core's `ProtectEvictionCandidatesByRatio`: protects half of the
/// candidates by uptime, up to half of those slots going first to onion,
/// localhost, I2P and CJDNS peers (fewest candidates first), even if they
/// are not the longest connected overall.
pub fn protect_eviction_candidates_by_ratio(candidates: &mut Vec<EvictionCandidate>) {
    let initial_size = candidates.len();
    let total_protect_size = initial_size / 2;
    struct Net {
        is_local: bool,
        id: Option<NetClass>,
        count: usize,
    }
    let mut networks = [
        Net {
            is_local: false,
            id: Some(NetClass::Cjdns),
            count: 0,
        },
        Net {
            is_local: false,
            id: Some(NetClass::I2p),
            count: 0,
        },
        Net {
            is_local: true,
            id: None,
            count: 0,
        },
        Net {
            is_local: false,
            id: Some(NetClass::Onion),
            count: 0,
        },
    ];
    let member = |n: &Net, c: &EvictionCandidate| {
        if n.is_local {
            c.is_local
        } else {
            Some(c.network) == n.id
        }
    };
    for n in networks.iter_mut() {
        n.count = candidates.iter().filter(|c| member(n, c)).count();
    }
    // Stable: on equal counts the earlier entry goes first, as Core.
    networks.sort_by_key(|n| n.count);
    let max_protect_by_network = total_protect_size / 2;
    let mut num_protected = 0;
    while num_protected < max_protect_by_network {
        let num_networks = networks.iter().filter(|n| n.count > 0).count();
        if num_networks == 0 {
            break;
        }
        let disadvantaged_to_protect = max_protect_by_network - num_protected;
        let protect_per_network = (disadvantaged_to_protect / num_networks).max(1);
        let mut protected_at_least_one = false;
        for n in networks.iter_mut() {
            if n.count == 0 {
                continue;
            }
            let before = candidates.len();
            let (is_local, id) = (n.is_local, n.id);
            erase_last_k(
                candidates,
                network_time(is_local, id),
                protect_per_network,
                |c| {
                    if is_local {
                        c.is_local
                    } else {
                        Some(c.network) == id
                    }
                },
            );
            let after = candidates.len();
            if before > after {
                protected_at_least_one = true;
                let delta = before - after;
                num_protected += delta;
                if num_protected >= max_protect_by_network {
                    break;
                }
                n.count -= delta;
            }
        }
        if !protected_at_least_one {
            break;
        }
    }
    let remaining_to_protect = total_protect_size.saturating_sub(num_protected);
    erase_last_k(
        candidates,
        reverse_time_connected,
        remaining_to_protect,
        |_| true,
    );
}

/// Core's `SelectNodeToEvict`: the inbound peer to disconnect so a new one
/// fits, or `None` when every candidate is protected.
pub fn select_node_to_evict(mut candidates: Vec<EvictionCandidate>) -> Option<PeerId> {
    // ProtectNoBanConnections, ProtectOutboundConnections.
    candidates.retain(|c| !c.noban && c.conn_type == ConnectionType::Inbound);
    let all = |_: &EvictionCandidate| true;
    // An attacker cannot predict which network groups are protected.
    erase_last_k(&mut candidates, net_group_keyed, PROTECT_BY_NETGROUP, all);
    // Cannot be faked without moving closer.
    erase_last_k(&mut candidates, reverse_min_ping, PROTECT_BY_PING, all);
    // Cannot be faked without useful work.
    erase_last_k(&mut candidates, tx_time, PROTECT_BY_TX, all);
    erase_last_k(
        &mut candidates,
        block_relay_only_time,
        PROTECT_BLOCK_RELAY_ONLY,
        |c| !c.relay_txs && c.relevant_services,
    );
    erase_last_k(&mut candidates, block_time, PROTECT_BY_BLOCK, all);
    protect_eviction_candidates_by_ratio(&mut candidates);
    if candidates.is_empty() {
        return None;
    }
    // A peer that is really the best by the criteria above stays even if
    // discouraged; among the rest, discouraged ones go first.
    if candidates.iter().any(|c| c.prefer_evict) {
        candidates.retain(|c| c.prefer_evict);
    }
    // The network group with the most connections and the youngest member
    // (candidates are sorted youngest first by the uptime step).
    let mut groups: HashMap<u64, Vec<&EvictionCandidate>> = HashMap::new();
    let mut most: Option<(usize, SystemTime, u64)> = None;
    for c in &candidates {
        let group = groups.entry(c.keyed_net_group).or_default();
        group.push(c);
        let (size, group_time) = (group.len(), group[0].connected);
        let better = match most {
            None => true,
            Some((n, t, _)) => size > n || (size == n && group_time > t),
        };
        if better {
            most = Some((size, group_time, c.keyed_net_group));
        }
    }
    let (_, _, key) = most?;
    groups.get(&key)?.first().map(|c| c.id)
}

/// The services that make a peer relevant (Core's
/// `HasAllDesirableServiceFlags`: full or limited node, with witness).
fn has_relevant_services(s: ServiceFlags) -> bool {
    (s.has(ServiceFlags::NETWORK) || s.has(ServiceFlags::NETWORK_LIMITED))
        && s.has(ServiceFlags::WITNESS)
}

/// Core's `CNetAddr::IsLocal`: 0.0.0.0/8, 127.0.0.0/8 and ::1.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 0 || v4.is_loopback(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets()[0] == 0 || v4.is_loopback(),
            None => v6.is_loopback(),
        },
    }
}

/// The per-listener secret the network groups are hashed with.
#[derive(Clone, Copy, Debug)]
pub struct NetGroupKey(pub u64, pub u64);

impl NetGroupKey {
    /// A fresh random key.
    pub fn random() -> NetGroupKey {
        NetGroupKey(crate::util::random_nonce(), crate::util::random_nonce())
    }

    /// The keyed hash of `ip`'s network group (Core's `nKeyedNetGroup`).
    pub fn keyed_net_group(&self, ip: IpAddr, loopback_routable: bool) -> u64 {
        let group = net_group(&addr_v2(ip), loopback_routable);
        siphash24::Hash::hash_to_u64_with_keys(self.0, self.1, &group)
    }
}

/// The eviction view of a live peer.
pub(crate) fn candidate(
    peer: &Peer,
    key: &NetGroupKey,
    loopback_routable: bool,
) -> EvictionCandidate {
    let ip = peer.addr.ip();
    let version = peer.remote_version();
    let min_ping = peer.min_ping_us.load(Ordering::Relaxed);
    EvictionCandidate {
        id: peer.id,
        connected: peer.connected_at,
        min_ping_us: if min_ping < 0 { i64::MAX } else { min_ping },
        last_block_time: peer.last_block_time.load(Ordering::Relaxed),
        last_tx_time: peer.last_tx_time.load(Ordering::Relaxed),
        relevant_services: has_relevant_services(peer.services()),
        relay_txs: version.is_some_and(|v| v.relay),
        bloom_filter: false,
        keyed_net_group: key.keyed_net_group(ip, loopback_routable),
        prefer_evict: peer.prefer_evict.load(Ordering::Relaxed),
        is_local: is_local(ip),
        network: net_class(&addr_v2(ip), loopback_routable),
        noban: false,
        conn_type: peer.conn_type,
    }
}

impl Connections {
    /// True when a new inbound connection finds no inbound slot (Core's
    /// `nInbound >= m_max_inbound`), or no slot at all.
    pub(crate) fn inbound_full(&self) -> bool {
        let t = self.table.lock();
        t.inbound_slots >= super::max_inbound(self.max) || t.slots >= self.max
    }

    /// Core's `AttemptToEvictConnection`: picks an inbound peer by
    /// [`select_node_to_evict`] among the connections still holding a slot
    /// and not already being disconnected, disconnects it, and returns it.
    pub(crate) fn attempt_to_evict_connection(
        &self,
        key: &NetGroupKey,
        loopback_routable: bool,
    ) -> Option<Arc<Peer>> {
        let peers: Vec<Arc<Peer>> = {
            let t = self.table.lock();
            t.peers
                .values()
                .filter(|p| {
                    !p.slot_released.load(Ordering::SeqCst) && p.disconnect_reason().is_none()
                })
                .cloned()
                .collect()
        };
        let candidates = peers
            .iter()
            .map(|p| candidate(p, key, loopback_routable))
            .collect();
        let id = select_node_to_evict(candidates)?;
        let victim = peers.into_iter().find(|p| p.id == id)?;
        log::info!("selected {victim} for eviction (inbound slots full)");
        victim.disconnect(DisconnectReason::TooManyPeers);
        Some(victim)
    }

    /// Waits up to `timeout` for `peer`'s slot to be given back; true if it
    /// was.
    pub(crate) fn wait_slot_released(&self, peer: &Peer, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut t = self.table.lock();
        while !peer.slot_released.load(Ordering::SeqCst) {
            if self.slot_freed.wait_until(&mut t, deadline).timed_out() {
                return peer.slot_released.load(Ordering::SeqCst);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    //! Core's `eviction_tests.cpp` and `net_peer_eviction_tests.cpp`
    //! cases, with candidates built by hand.
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// `n` inbound candidates: id i connected at time i (higher id =
    /// younger), each in its own network group (older ones ranked higher
    /// by the keyed hash), relaying transactions, nothing measured. Every
    /// fixed protection then takes the oldest ones left.
    fn candidates(n: usize) -> Vec<EvictionCandidate> {
        (0..n as u64)
            .map(|i| EvictionCandidate {
                id: i,
                connected: at(1_000 + i),
                min_ping_us: i64::MAX,
                last_block_time: 0,
                last_tx_time: 0,
                relevant_services: true,
                relay_txs: true,
                bloom_filter: false,
                keyed_net_group: 1_000_000 - i,
                prefer_evict: false,
                is_local: false,
                network: NetClass::Ipv4,
                noban: false,
                conn_type: ConnectionType::Inbound,
            })
            .collect()
    }

    fn ids(v: &[EvictionCandidate]) -> Vec<PeerId> {
        let mut ids: Vec<_> = v.iter().map(|c| c.id).collect();
        ids.sort();
        ids
    }

    /// Runs the ratio protection and returns the (sorted) ids protected.
    fn protected_by_ratio(v: Vec<EvictionCandidate>) -> Vec<PeerId> {
        let all = ids(&v);
        let mut left = v;
        protect_eviction_candidates_by_ratio(&mut left);
        let left = ids(&left);
        all.into_iter().filter(|id| !left.contains(id)).collect()
    }

    #[test]
    fn too_few_candidates_are_all_protected() {
        for n in 0..=20 {
            assert_eq!(select_node_to_evict(candidates(n)), None, "{n}");
        }
        // 21: the fixed protections take 20, the ratio step half of one
        // (none): the youngest is evicted.
        assert_eq!(select_node_to_evict(candidates(21)), Some(20));
    }

    #[test]
    fn outbound_and_noban_are_never_evicted() {
        let mut v = candidates(40);
        for c in v.iter_mut() {
            c.conn_type = ConnectionType::Manual;
        }
        assert_eq!(select_node_to_evict(v.clone()), None);
        for (i, c) in v.iter_mut().enumerate() {
            c.conn_type = if i % 2 == 0 {
                ConnectionType::OutboundFullRelay
            } else {
                ConnectionType::BlockRelayOnly
            };
        }
        assert_eq!(select_node_to_evict(v.clone()), None);
        for c in v.iter_mut() {
            c.conn_type = ConnectionType::Inbound;
            c.noban = true;
        }
        assert_eq!(select_node_to_evict(v), None);
    }

    #[test]
    fn ratio_protects_half_by_uptime() {
        // No disadvantaged network: the older half is protected.
        assert_eq!(protected_by_ratio(candidates(8)), vec![0, 1, 2, 3]);
        assert_eq!(protected_by_ratio(candidates(9)), vec![0, 1, 2, 3]);
        assert_eq!(protected_by_ratio(candidates(1)), Vec::<PeerId>::new());
    }

    #[test]
    fn ratio_reserves_a_quarter_for_onion_and_localhost() {
        // Core: 12 peers, the 2 youngest are onion: they take 2 of the 3
        // reserved slots... all their reserved slots; the other 4 go by
        // uptime.
        let mut v = candidates(12);
        v[10].network = NetClass::Onion;
        v[11].network = NetClass::Onion;
        assert_eq!(protected_by_ratio(v), vec![0, 1, 2, 3, 10, 11]);
        // Localhost likewise (Core's `m_is_local`).
        let mut v = candidates(12);
        for c in v.iter_mut().skip(8) {
            c.is_local = true;
        }
        // 3 reserved (a quarter of 12): the three longest-connected local
        // ones (8, 9, 10), then 3 by uptime.
        assert_eq!(protected_by_ratio(v), vec![0, 1, 2, 8, 9, 10]);
    }

    #[test]
    fn ratio_shares_reserved_slots_between_networks() {
        // Core's case: 16 peers, onion 4, localhost 4, I2P 4: 4 reserved
        // slots split as evenly as possible, fewest-candidates first
        // (equal counts keep Core's order: I2P, localhost, onion), each
        // network's longest connected.
        let mut v = candidates(16);
        for c in v.iter_mut().take(4) {
            c.network = NetClass::Onion;
        }
        for c in v.iter_mut().skip(4).take(4) {
            c.is_local = true;
        }
        for c in v.iter_mut().skip(8).take(4) {
            c.network = NetClass::I2p;
        }
        // One from each network (their longest connected: 8, 4, 0), the
        // fourth reserved slot to I2P (first in order to recover unused
        // slots: 9), then 4 by uptime (1, 2, 3, 5).
        assert_eq!(protected_by_ratio(v), vec![0, 1, 2, 3, 4, 5, 8, 9]);
    }

    #[test]
    fn evicts_the_youngest_of_the_largest_group() {
        // 30 candidates: 0..24 in their own groups, 24..30 all in group 7.
        let mut v = candidates(30);
        for c in v.iter_mut().skip(24) {
            c.keyed_net_group = 7;
        }
        assert_eq!(select_node_to_evict(v.clone()), Some(29));
        // Whatever the netgroup key ranks highest, the answer stays.
        for c in v.iter_mut().skip(24) {
            c.keyed_net_group = u64::MAX;
        }
        assert_eq!(select_node_to_evict(v), Some(29));
    }

    #[test]
    fn equal_groups_lose_the_one_with_the_youngest_member() {
        // 28 candidates; after the 20 fixed protections, 8 remain and the
        // older 4 of them are protected by uptime: 24..28 are left. Two
        // groups of two: the one holding the youngest (27) loses it.
        let mut v = candidates(28);
        v[24].keyed_net_group = 1;
        v[26].keyed_net_group = 1;
        v[25].keyed_net_group = 2;
        v[27].keyed_net_group = 2;
        assert_eq!(select_node_to_evict(v.clone()), Some(27));
        // A bigger group wins over a younger one.
        v[27].keyed_net_group = 3;
        v[20].keyed_net_group = 1; // 20 is protected by uptime: no effect
        assert_eq!(select_node_to_evict(v), Some(26));
    }

    #[test]
    fn protected_by_each_criterion() {
        // Core's "protect peers with ... characteristic" cases: the
        // youngest is normally evicted; if it has the characteristic of
        // each fixed protection it is not.
        let base = candidates(24);
        assert_eq!(select_node_to_evict(base.clone()), Some(23));
        let mut v = base.clone();
        v[23].min_ping_us = 10;
        assert_ne!(select_node_to_evict(v), Some(23));
        let mut v = base.clone();
        v[23].last_tx_time = 5;
        assert_ne!(select_node_to_evict(v), Some(23));
        let mut v = base.clone();
        v[23].last_block_time = 5;
        assert_ne!(select_node_to_evict(v), Some(23));
        let mut v = base.clone();
        v[23].keyed_net_group = u64::MAX;
        assert_ne!(select_node_to_evict(v), Some(23));
        // Block-relay-only peers: up to 8 of them protected by recent block
        // even without one. 30 peers, the 8 youngest relay no
        // transactions: the fixed steps protect 0..15, then 22..29, then
        // 16..19 by block; of 20 and 21 the older is kept by uptime.
        let mut v = candidates(30);
        for c in v.iter_mut().skip(22) {
            c.relay_txs = false;
        }
        assert_eq!(select_node_to_evict(v), Some(21));
    }

    #[test]
    fn ping_protects_the_lowest_eight() {
        let mut v = candidates(40);
        for (i, c) in v.iter_mut().enumerate() {
            // The youngest have the best pings.
            c.min_ping_us = 1_000 - i as i64;
        }
        let mut left = v.clone();
        erase_last_k(&mut left, reverse_min_ping, PROTECT_BY_PING, |_| true);
        let protected: Vec<_> = ids(&v)
            .into_iter()
            .filter(|id| !ids(&left).contains(id))
            .collect();
        assert_eq!(protected, (32..40).collect::<Vec<_>>());
    }

    #[test]
    fn discouraged_go_first_unless_protected() {
        // 30 peers: 0..19 protected by the fixed steps, 20..24 by uptime.
        let mut v = candidates(30);
        assert_eq!(select_node_to_evict(v.clone()), Some(29));
        // A discouraged peer that is not otherwise protected goes first...
        v[27].prefer_evict = true;
        assert_eq!(select_node_to_evict(v.clone()), Some(27));
        // ... but one protected (best ping) is kept: the normal rule applies.
        v[27].min_ping_us = 1;
        assert_eq!(select_node_to_evict(v), Some(29));
        // Several discouraged: the largest group among them, its youngest.
        let mut v = candidates(30);
        for c in v.iter_mut().skip(25).take(3) {
            c.prefer_evict = true;
        }
        v[25].keyed_net_group = 5;
        v[26].keyed_net_group = 5;
        assert_eq!(select_node_to_evict(v), Some(26));
    }

    #[test]
    fn selection_is_deterministic_over_input_order() {
        let mut v = candidates(60);
        for (i, c) in v.iter_mut().enumerate() {
            c.keyed_net_group = (i % 7) as u64;
            c.min_ping_us = ((i * 37) % 11) as i64;
            c.last_tx_time = ((i * 13) % 5) as u64;
            c.last_block_time = ((i * 7) % 3) as u64;
            c.is_local = i % 5 == 0;
        }
        let first = select_node_to_evict(v.clone());
        assert!(first.is_some());
        v.reverse();
        assert_eq!(select_node_to_evict(v.clone()), first);
        v.rotate_left(17);
        assert_eq!(select_node_to_evict(v), first);
    }

    #[test]
    fn keyed_groups_follow_net_group() {
        let key = NetGroupKey(1, 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            key.keyed_net_group(ip("127.5.0.1"), true),
            key.keyed_net_group(ip("127.5.9.9"), true)
        );
        assert_ne!(
            key.keyed_net_group(ip("127.5.0.1"), true),
            key.keyed_net_group(ip("127.6.0.1"), true)
        );
        // Off regtest every loopback peer shares the unroutable group.
        assert_eq!(
            key.keyed_net_group(ip("127.5.0.1"), false),
            key.keyed_net_group(ip("127.6.0.1"), false)
        );
        assert_ne!(
            NetGroupKey(3, 4).keyed_net_group(ip("1.2.3.4"), false),
            key.keyed_net_group(ip("1.2.3.4"), false)
        );
        assert!(is_local(ip("127.0.0.1")) && is_local(ip("::1")) && is_local(ip("0.1.2.3")));
        assert!(!is_local(ip("10.0.0.1")) && !is_local(ip("8.8.8.8")));
    }
}
