//! Address relay as Bitcoin Core does it (`RelayAddress`, `PushAddress`,
//! `MaybeSendAddr` in net_processing.cpp, and the `getaddr` answer cache
//! `m_addr_response_caches` in net.cpp).
//!
//! A fresh address (from a message of at most [`MAX_ADDR_TO_RELAY`]
//! entries, time within the last 10 minutes, routable) is queued for 2
//! peers (1 or 2 for addresses on networks we cannot reach), chosen
//! deterministically per address and 24-hour window from a per-node secret
//! SipHash key, so repeating an address does not buy it more propagation.
//! Only peers with address relay enabled take part: outbound full-relay and
//! manual peers from the handshake on, inbound peers from their first
//! `addr`, `addrv2` or `getaddr` (Core's `SetupAddressRelay`);
//! block-relay-only and feeler connections never. A peer that did not send
//! `sendaddrv2` only gets IPv4/IPv6 entries.
//!
//! Each peer has a queue of at most [`MAX_ADDR_TO_SEND`] entries (a full
//! queue replaces a random entry) and a set of the addresses it already
//! knows (sent to it or received from it; Core's `m_addr_known`, bounded
//! here as a FIFO of [`ADDR_KNOWN_SIZE`]). The peer's writer thread calls
//! [`AddrRelay::take_due`]: the queue is flushed at Poisson intervals of
//! mean [`AVG_ADDRESS_BROADCAST_INTERVAL`], never as an empty message.
//!
//! `getaddr` answers come from a per-network cache refreshed every 21 h
//! plus up to 6 h (Core's `m_addr_response_caches`), so repeated asking
//! cannot scrape the whole address manager; at most [`MAX_ADDR_TO_SEND`]
//! entries and [`MAX_PCT_ADDR_TO_SEND`] % of the table.
//!
//! **Our own address** ([`advertised_addr`]: the specific, routable
//! address we listen on; no `-externalip` or discovery yet) goes to an
//! outbound peer right after the handshake and to an inbound peer with
//! its `getaddr` answer (peer::conn), then again to every relay peer at
//! Poisson intervals of mean [`AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`],
//! clearing what the peer is known to know first so the announcement
//! goes out (Core's `MaybeSendAddr`). Without the repeat a node whose
//! first announcements reached no one with a free outbound slot stays
//! unknown (tests/gossip.rs once saw exactly that). Core waits for the
//! end of initial block download before announcing; strand does not.
//!
//! Threads: peer readers (relay, enable, getaddr), peer writers (flush).
//! Two internal leaf mutexes, never held together nor across a send.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bitcoin::hashes::siphash24;
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::ServiceFlags;
use parking_lot::Mutex;

use super::addrbook::addr_v2_to_v1;
use super::addrman::AddrMan;
use super::{ConnectionType, Peer};
use crate::netaddr::{self, NetClass};
use crate::util::{random_nonce, PeerId};

/// Most entries in one address message and one relay queue (Core's
/// `MAX_ADDR_TO_SEND`).
pub const MAX_ADDR_TO_SEND: usize = 1_000;
/// Most percent of the address manager in one `getaddr` answer (Core's
/// `MAX_PCT_ADDR_TO_SEND`).
pub const MAX_PCT_ADDR_TO_SEND: usize = 23;
/// Addresses are relayed only from messages with at most this many entries
/// (Core: `vAddr.size() <= 10` in `ProcessAddrs`).
pub const MAX_ADDR_TO_RELAY: usize = 10;
/// Only addresses seen in the last 10 minutes are relayed (Core's
/// `addr.nTime > current_time - 10min`).
pub const RELAY_MAX_AGE: u32 = 10 * 60;
/// Mean interval between address flushes to one peer (Core's
/// `AVG_ADDRESS_BROADCAST_INTERVAL`).
pub const AVG_ADDRESS_BROADCAST_INTERVAL: Duration = Duration::from_secs(30);
/// The relay destinations of an address rotate every 24 hours (Core's
/// `ROTATE_ADDR_RELAY_DEST_INTERVAL`).
pub const ROTATE_ADDR_RELAY_DEST_INTERVAL: u64 = 24 * 60 * 60;
/// Mean interval between announcements of our own address to one peer
/// (Core's `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`).
pub const AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Addresses remembered as known per peer (Core's `m_addr_known` rolling
/// bloom filter of 5,000 entries).
pub const ADDR_KNOWN_SIZE: usize = 5_000;
/// Base lifetime of a cached `getaddr` answer (Core: 21 hours, plus a
/// random 0–6 hours, in `CConnman::GetAddresses`).
pub const ADDR_CACHE_LIFETIME: Duration = Duration::from_secs(21 * 60 * 60);
/// Most random extra lifetime of a cached answer (Core: 6 hours).
pub const ADDR_CACHE_JITTER_SECS: u64 = 6 * 60 * 60;

type AddrKey = (AddrV2, u16);

/// A bounded set: the oldest entry goes when full.
#[derive(Default)]
struct KnownSet {
    set: HashSet<AddrKey>,
    order: VecDeque<AddrKey>,
}

impl KnownSet {
    fn contains(&self, k: &AddrKey) -> bool {
        self.set.contains(k)
    }

    /// Inserts; `false` if it was known.
    fn insert(&mut self, k: AddrKey) -> bool {
        if !self.set.insert(k.clone()) {
            return false;
        }
        self.order.push_back(k);
        if self.order.len() > ADDR_KNOWN_SIZE {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

struct RelayPeer {
    peer: Weak<Peer>,
    wants_v2: bool,
    queue: Vec<AddrV2Message>,
    known: KnownSet,
    next_send: Instant,
    /// Core's `m_next_local_addr_send`.
    next_local_send: Instant,
}

/// Our own address as announced to peers.
#[derive(Debug, Clone)]
struct LocalAddr {
    addr: AddrV2,
    port: u16,
    services: ServiceFlags,
}

/// Per-peer address relay queues and the `getaddr` answer cache.
pub struct AddrRelay {
    k0: u64,
    k1: u64,
    /// Mean flush interval ([`AVG_ADDRESS_BROADCAST_INTERVAL`] unless a
    /// test shortens it).
    interval: Duration,
    /// Our own address, when we announce it ([`advertised_addr`]).
    local: Option<LocalAddr>,
    /// Mean re-announcement interval
    /// ([`AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`] unless a test shortens it).
    local_interval: Duration,
    peers: Mutex<HashMap<PeerId, RelayPeer>>,
    cache: Mutex<HashMap<NetClass, (Vec<AddrV2Message>, Instant)>>,
}

impl Default for AddrRelay {
    fn default() -> Self {
        AddrRelay::new()
    }
}

fn key_of(m: &AddrV2Message) -> AddrKey {
    (m.addr.clone(), m.port)
}

/// Whether an address can go in a pre-BIP155 `addr` message (Core's
/// `IsAddrV1Compatible`).
fn v1_compatible(addr: &AddrV2) -> bool {
    matches!(addr, AddrV2::Ipv4(_) | AddrV2::Ipv6(_))
}

/// The address we announce as our own (Core's `GetLocalAddrForPeer`
/// without address discovery): the address we listen on when it is
/// specific and routable (loopback counts on regtest, as in the address
/// manager). On regtest a node announces itself only when it makes
/// automatic connections too (`Config::automatic_outbound`): hand-wired
/// test networks stay as wired (see the README's decisions). `config`
/// carries the bound listening address (an OS-chosen port resolved).
pub fn advertised_addr(config: &crate::config::Config) -> Option<SocketAddr> {
    let regtest = config.network == crate::config::Network::Regtest;
    if regtest && !config.automatic_outbound() {
        return None;
    }
    let listen = config.listen?;
    if listen.ip().is_unspecified() || listen.port() == 0 {
        return None;
    }
    netaddr::is_routable(&netaddr::addr_v2(listen.ip()), regtest).then_some(listen)
}

/// A Poisson-process delay of mean `avg` (Core's `rand_exp_duration`).
fn exp_delay(avg: Duration) -> Duration {
    // Uniform in (0, 1]: never ln(0).
    let u = ((random_nonce() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    avg.mul_f64(-u.ln()).min(avg * 20)
}

impl AddrRelay {
    /// Empty, with a random relay key.
    pub fn new() -> AddrRelay {
        AddrRelay::with_key(random_nonce(), random_nonce())
    }

    /// Empty, with a random relay key and mean flush interval `interval`.
    pub fn with_interval(interval: Duration) -> AddrRelay {
        AddrRelay {
            interval,
            ..AddrRelay::new()
        }
    }

    /// The same, announcing `local` (see [`advertised_addr`]) with
    /// `services` to every relay peer at the start and then at Poisson
    /// intervals of mean `interval`.
    pub fn announcing(
        self,
        local: Option<SocketAddr>,
        services: ServiceFlags,
        interval: Duration,
    ) -> AddrRelay {
        AddrRelay {
            local: local.map(|a| LocalAddr {
                addr: netaddr::addr_v2(a.ip()),
                port: a.port(),
                services,
            }),
            local_interval: interval,
            ..self
        }
    }

    /// Our own address as one `addrv2` (or `addr`, when `peer` did not
    /// send `sendaddrv2`) message stamped now; `None` when we do not
    /// announce it. Sent right after the handshake to outbound peers and
    /// with the `getaddr` answer to inbound ones (Core's first
    /// `MaybeSendAddr` self-announcement, in a message of its own).
    pub fn announcement(&self, peer: &Peer) -> Option<NetworkMessage> {
        let m = self.local_message(u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX))?;
        build_message(
            peer.addr_v2.load(std::sync::atomic::Ordering::Relaxed),
            vec![m],
        )
    }

    fn local_message(&self, now: u32) -> Option<AddrV2Message> {
        self.local.as_ref().map(|l| AddrV2Message {
            time: now,
            services: l.services,
            addr: l.addr.clone(),
            port: l.port,
        })
    }

    /// Empty, with a fixed relay key (deterministic destinations; tests).
    pub fn with_key(k0: u64, k1: u64) -> AddrRelay {
        AddrRelay {
            k0,
            k1,
            interval: AVG_ADDRESS_BROADCAST_INTERVAL,
            local: None,
            local_interval: AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL,
            peers: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Core's `SetupAddressRelay`: enables address relay with `peer`
    /// unless it is block-relay-only or a feeler. Idempotent; returns
    /// whether relay is enabled.
    pub fn enable(&self, peer: &Arc<Peer>) -> bool {
        if matches!(
            peer.conn_type,
            ConnectionType::BlockRelayOnly | ConnectionType::Feeler
        ) {
            return false;
        }
        let wants_v2 = peer.addr_v2.load(std::sync::atomic::Ordering::Relaxed);
        let mut peers = self.peers.lock();
        peers.retain(|_, p| p.peer.upgrade().is_some_and(|p| !p.is_closed()));
        peers.entry(peer.id).or_insert_with(|| RelayPeer {
            peer: Arc::downgrade(peer),
            wants_v2,
            queue: Vec::new(),
            known: KnownSet::default(),
            // Core's m_next_addr_send starts at 0: the first flush is due at once.
            next_send: Instant::now(),
            // The first announcement goes out with the handshake or the
            // getaddr answer (peer::conn); this is the first repeat.
            next_local_send: Instant::now() + exp_delay(self.local_interval),
        });
        true
    }

    /// Whether relay with `id` is enabled.
    pub fn is_enabled(&self, id: PeerId) -> bool {
        self.peers.lock().contains_key(&id)
    }

    /// Forgets a peer (its connection ended).
    pub fn remove(&self, id: PeerId) {
        self.peers.lock().remove(&id);
    }

    /// Core's `AddAddressKnown`: `peer` told us these, do not send them back.
    pub fn add_known(&self, id: PeerId, addrs: &[AddrV2Message]) {
        if let Some(p) = self.peers.lock().get_mut(&id) {
            for m in addrs {
                p.known.insert(key_of(m));
            }
        }
    }

    /// Core's `ProcessAddrs` relay step for the entries of one message from
    /// `from` that passed the rate limit: if the message had at most
    /// [`MAX_ADDR_TO_RELAY`] entries, each fresh, routable entry is queued
    /// for its destinations. Returns how many (address, peer) pairs were
    /// queued.
    pub fn relay_fresh(
        &self,
        from: PeerId,
        msg_len: usize,
        entries: &[AddrV2Message],
        loopback_routable: bool,
        now: u32,
    ) -> usize {
        if msg_len > MAX_ADDR_TO_RELAY {
            return 0;
        }
        let mut queued = 0;
        for m in entries {
            if m.time > now.saturating_sub(RELAY_MAX_AGE)
                && netaddr::is_routable(&m.addr, loopback_routable)
            {
                let reachable = matches!(
                    netaddr::net_class(&m.addr, loopback_routable),
                    NetClass::Ipv4 | NetClass::Ipv6
                );
                queued += self.relay_address(from, m, reachable, u64::from(now));
            }
        }
        queued
    }

    /// The peers `addr` goes to (Core's `RelayAddress`): the 2 (reachable)
    /// or 1–2 (unreachable) relay-enabled peers other than `originator`
    /// with the highest keyed hash of (address, 24-hour window, peer id).
    pub fn destinations(
        &self,
        originator: PeerId,
        addr: &AddrV2Message,
        reachable: bool,
        now: u64,
    ) -> Vec<PeerId> {
        let addr_bytes = {
            let mut v = Vec::new();
            let _ = bitcoin::consensus::Encodable::consensus_encode(&addr.addr, &mut v);
            v.extend_from_slice(&addr.port.to_be_bytes());
            v
        };
        // Core's CServiceHash(0, 0): an unkeyed hash of the address.
        let hash_addr = siphash24::Hash::hash_with_keys(0, 0, &addr_bytes).as_u64();
        let time_addr = now.wrapping_add(hash_addr) / ROTATE_ADDR_RELAY_DEST_INTERVAL;
        let mut base = Vec::with_capacity(16);
        base.extend_from_slice(&hash_addr.to_le_bytes());
        base.extend_from_slice(&time_addr.to_le_bytes());
        let n = if reachable
            || siphash24::Hash::hash_with_keys(self.k0, self.k1, &base).as_u64() & 1 == 1
        {
            2
        } else {
            1
        };
        let peers = self.peers.lock();
        let mut scored: Vec<(u64, PeerId)> = peers
            .iter()
            .filter(|(id, p)| {
                **id != originator
                    && (p.wants_v2 || v1_compatible(&addr.addr))
                    && p.peer.upgrade().is_some_and(|p| !p.is_closed())
            })
            .map(|(id, _)| {
                let mut data = base.clone();
                data.extend_from_slice(&id.to_le_bytes());
                (
                    siphash24::Hash::hash_with_keys(self.k0, self.k1, &data).as_u64(),
                    *id,
                )
            })
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored.into_iter().take(n).map(|(_, id)| id).collect()
    }

    fn relay_address(
        &self,
        originator: PeerId,
        addr: &AddrV2Message,
        reachable: bool,
        now: u64,
    ) -> usize {
        let dest = self.destinations(originator, addr, reachable, now);
        let mut peers = self.peers.lock();
        let mut queued = 0;
        for id in dest {
            if let Some(p) = peers.get_mut(&id) {
                if push_address(p, addr) {
                    queued += 1;
                }
            }
        }
        queued
    }

    /// When the next flush or re-announcement to `id` is due (`None`:
    /// relay not enabled).
    pub fn next_due(&self, id: PeerId) -> Option<Instant> {
        let has_local = self.local.is_some();
        self.peers.lock().get(&id).map(|p| {
            if has_local {
                p.next_send.min(p.next_local_send)
            } else {
                p.next_send
            }
        })
    }

    /// Core's `MaybeSendAddr`, called by the peer's writer thread: when our
    /// own address is due, forgets what the peer knows and queues it;
    /// when the flush is due, schedules the next one and returns the
    /// queued addresses the peer does not know yet as one `addrv2` or
    /// `addr` message; `None` when not due or nothing to send.
    pub fn take_due(&self, id: PeerId, now: Instant) -> Option<NetworkMessage> {
        let mut peers = self.peers.lock();
        let p = peers.get_mut(&id)?;
        if now >= p.next_local_send {
            p.next_local_send = now + exp_delay(self.local_interval);
            let unix_now = u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX);
            if let Some(m) = self.local_message(unix_now) {
                // Core resets m_addr_known so the announcement goes out.
                p.known.clear();
                push_address(p, &m);
            }
        }
        if now < p.next_send {
            return None;
        }
        p.next_send = now + exp_delay(self.interval);
        let queue = std::mem::take(&mut p.queue);
        let fresh: Vec<AddrV2Message> = queue
            .into_iter()
            .filter(|m| p.known.insert(key_of(m)))
            .collect();
        build_message(p.wants_v2, fresh)
    }

    /// The answer to `peer`'s `getaddr` (once per connection, inbound only:
    /// the caller checks): the cached sample for the peer's network, less
    /// what the peer already knows, as one message; `None` rather than an
    /// empty message. Enables relay with the peer (Core does on getaddr).
    pub fn getaddr_answer(&self, peer: &Arc<Peer>, addrman: &AddrMan) -> Option<NetworkMessage> {
        self.getaddr_answer_filtered(peer, addrman, &|_| true)
    }

    /// [`AddrRelay::getaddr_answer`] without the addresses `keep` rejects
    /// (Core's `GetAddresses` leaves out banned and discouraged ones).
    pub fn getaddr_answer_filtered(
        &self,
        peer: &Arc<Peer>,
        addrman: &AddrMan,
        keep: &dyn Fn(&AddrV2Message) -> bool,
    ) -> Option<NetworkMessage> {
        self.enable(peer);
        let lb = addrman.loopback_routable();
        let net = netaddr::net_class(&netaddr::addr_v2(peer.addr.ip()), lb);
        let list = self.cached_addresses(net, addrman, Instant::now());
        let mut peers = self.peers.lock();
        let wants_v2 = peer.addr_v2.load(std::sync::atomic::Ordering::Relaxed);
        let list: Vec<AddrV2Message> = match peers.get_mut(&peer.id) {
            Some(p) => {
                p.queue.clear();
                list.into_iter()
                    .filter(|m| keep(m) && p.known.insert(key_of(m)))
                    .collect()
            }
            None => list.into_iter().filter(|m| keep(m)).collect(),
        };
        build_message(wants_v2, list)
    }

    /// Core's `CConnman::GetAddresses` with `m_addr_response_caches`: one
    /// cached sample per requesting network, refreshed after 21–27 hours.
    pub fn cached_addresses(
        &self,
        net: NetClass,
        addrman: &AddrMan,
        now: Instant,
    ) -> Vec<AddrV2Message> {
        let mut cache = self.cache.lock();
        if let Some((list, expires)) = cache.get(&net) {
            if now < *expires {
                return list.clone();
            }
        }
        let list = addrman.get_addr(MAX_ADDR_TO_SEND, MAX_PCT_ADDR_TO_SEND, None);
        if list.is_empty() {
            // Nothing is sent for an empty answer, so nothing to protect:
            // unlike Core, do not keep a young node silent for a day.
            return list;
        }
        let life = ADDR_CACHE_LIFETIME
            + Duration::from_secs(random_nonce() % (ADDR_CACHE_JITTER_SECS + 1));
        cache.insert(net, (list.clone(), now + life));
        list
    }

    /// Entries queued for `id` (tests and diagnostics).
    pub fn queued(&self, id: PeerId) -> Vec<AddrV2Message> {
        self.peers
            .lock()
            .get(&id)
            .map(|p| p.queue.clone())
            .unwrap_or_default()
    }
}

/// Core's `PushAddress`: queue unless known or incompatible; a full queue
/// replaces a random entry.
fn push_address(p: &mut RelayPeer, addr: &AddrV2Message) -> bool {
    if p.known.contains(&key_of(addr)) || !(p.wants_v2 || v1_compatible(&addr.addr)) {
        return false;
    }
    if p.queue.len() >= MAX_ADDR_TO_SEND {
        let i = (random_nonce() % p.queue.len() as u64) as usize;
        if let Some(slot) = p.queue.get_mut(i) {
            *slot = addr.clone();
        }
    } else {
        p.queue.push(addr.clone());
    }
    true
}

/// One address message, or `None` for an empty list (btcd disconnects a
/// peer that sends an empty one).
fn build_message(wants_v2: bool, list: Vec<AddrV2Message>) -> Option<NetworkMessage> {
    if wants_v2 {
        (!list.is_empty()).then_some(NetworkMessage::AddrV2(list))
    } else {
        let v1 = addr_v2_to_v1(&list);
        (!v1.is_empty()).then_some(NetworkMessage::Addr(v1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::p2p::ServiceFlags;
    use std::net::Ipv4Addr;
    use std::sync::atomic::Ordering;

    const NOW: u32 = 1_800_000_000;

    fn peer(id: PeerId, conn_type: ConnectionType, v2: bool) -> Arc<Peer> {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let p = Peer::new(
            id,
            std::net::SocketAddr::from(([127, 0, 0, 1], 1000 + id as u16)),
            conn_type,
            None,
            tx,
            bitcoin::p2p::Magic::REGTEST,
            (
                crate::peer::DEFAULT_MAX_SEND_BUFFER,
                crate::peer::DEFAULT_MAX_RECEIVE_BUFFER,
            ),
        );
        p.addr_v2.store(v2, Ordering::Relaxed);
        Arc::new(p)
    }

    fn fresh(i: u8) -> AddrV2Message {
        AddrV2Message {
            time: NOW - 60,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4(Ipv4Addr::new(11, i, 0, 1)),
            port: 8333,
        }
    }

    fn holders(r: &AddrRelay, peers: &[Arc<Peer>], m: &AddrV2Message) -> Vec<PeerId> {
        peers
            .iter()
            .filter(|p| r.queued(p.id).contains(m))
            .map(|p| p.id)
            .collect()
    }

    #[test]
    fn a_fresh_address_goes_to_two_peers_chosen_per_address_and_day() {
        let r = AddrRelay::with_key(1, 2);
        let peers: Vec<_> = (0..10)
            .map(|i| peer(i, ConnectionType::Inbound, true))
            .collect();
        for p in &peers {
            assert!(r.enable(p));
        }
        let m = fresh(1);
        assert_eq!(r.relay_fresh(0, 1, std::slice::from_ref(&m), false, NOW), 2);
        let got = holders(&r, &peers, &m);
        assert_eq!(got.len(), 2);
        assert!(!got.contains(&0), "never back to the originator");
        let mut want = r.destinations(0, &m, true, u64::from(NOW));
        want.sort_unstable();
        assert_eq!(got, want);
        // Same address, same day: same peers; the whole set of pairs over
        // many addresses is not one pair.
        assert_eq!(
            r.destinations(0, &m, true, u64::from(NOW) + 60),
            r.destinations(0, &m, true, u64::from(NOW))
        );
        let pairs: HashSet<Vec<PeerId>> = (0..30u8)
            .map(|i| r.destinations(0, &fresh(i), true, u64::from(NOW)))
            .collect();
        assert!(pairs.len() > 5, "{pairs:?}");
        // Another day: the address's destinations rotate (for most).
        let moved = (0..30u8)
            .filter(|i| {
                r.destinations(0, &fresh(*i), true, u64::from(NOW))
                    != r.destinations(0, &fresh(*i), true, u64::from(NOW) + 86_400)
            })
            .count();
        assert!(moved > 10, "{moved}");
    }

    #[test]
    fn stale_unroutable_or_bulk_addresses_are_not_relayed() {
        let r = AddrRelay::with_key(1, 2);
        let peers: Vec<_> = (0..4)
            .map(|i| peer(i, ConnectionType::Inbound, true))
            .collect();
        for p in &peers {
            r.enable(p);
        }
        let mut stale = fresh(1);
        stale.time = NOW - 11 * 60;
        assert_eq!(r.relay_fresh(0, 1, &[stale], false, NOW), 0);
        let mut private = fresh(2);
        private.addr = AddrV2::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.relay_fresh(0, 1, &[private], false, NOW), 0);
        // Loopback: only with the regtest rule.
        let mut lo = fresh(3);
        lo.addr = AddrV2::Ipv4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            r.relay_fresh(0, 1, std::slice::from_ref(&lo), false, NOW),
            0
        );
        assert_eq!(r.relay_fresh(0, 1, &[lo], true, NOW), 2);
        // From a message of 11 entries: none.
        let bulk: Vec<_> = (10..21).map(fresh).collect();
        assert_eq!(r.relay_fresh(0, bulk.len(), &bulk, false, NOW), 0);
    }

    #[test]
    fn block_relay_and_feeler_peers_get_no_addresses_and_v1_peers_only_ip() {
        let r = AddrRelay::with_key(3, 4);
        let block = peer(1, ConnectionType::BlockRelayOnly, true);
        let feeler = peer(2, ConnectionType::Feeler, true);
        let v1 = peer(3, ConnectionType::Inbound, false);
        let origin = peer(4, ConnectionType::Inbound, true);
        assert!(!r.enable(&block));
        assert!(!r.enable(&feeler));
        assert!(r.enable(&v1));
        assert!(r.enable(&origin));
        let tor = AddrV2Message {
            addr: AddrV2::TorV3([5; 32]),
            ..fresh(0)
        };
        // The only candidate for Tor is none (v1 cannot take it): nothing.
        assert_eq!(r.relay_fresh(4, 1, &[tor], false, NOW), 0);
        assert_eq!(r.relay_fresh(4, 1, &[fresh(1)], false, NOW), 1);
        assert_eq!(r.queued(3), vec![fresh(1)]);
        assert!(r.queued(1).is_empty() && r.queued(2).is_empty());
        // Flushed as addr (v1), then the peer knows it: not queued again.
        match r.take_due(3, Instant::now()) {
            Some(NetworkMessage::Addr(list)) => assert_eq!(list.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.relay_fresh(4, 1, &[fresh(1)], false, NOW), 0);
    }

    #[test]
    fn the_flush_waits_for_its_time_and_is_never_empty() {
        let r = AddrRelay::with_key(5, 6);
        let a = peer(1, ConnectionType::OutboundFullRelay, true);
        let b = peer(2, ConnectionType::Inbound, true);
        r.enable(&a);
        r.enable(&b);
        let t0 = Instant::now();
        // Due at once, but nothing queued: no message, next flush scheduled.
        assert_eq!(r.take_due(1, t0), None);
        let next = r.next_due(1).unwrap();
        assert!(next >= t0);
        r.relay_fresh(2, 1, &[fresh(1)], false, NOW);
        if next > t0 {
            assert_eq!(r.take_due(1, t0), None, "not due yet");
        }
        match r.take_due(1, next) {
            Some(NetworkMessage::AddrV2(list)) => assert_eq!(list, vec![fresh(1)]),
            other => panic!("{other:?}"),
        }
        assert!(r.queued(1).is_empty());
        // Addresses the peer told us are known: not relayed back to it.
        r.add_known(1, &[fresh(2)]);
        assert_eq!(r.relay_fresh(2, 1, &[fresh(2)], false, NOW), 0);
        // A peer that is gone is no destination.
        r.remove(1);
        assert_eq!(r.next_due(1), None);
        assert_eq!(r.relay_fresh(2, 1, &[fresh(3)], false, NOW), 0);
    }

    #[test]
    fn our_address_is_announced_again_even_to_a_peer_that_knows_it() {
        let local = std::net::SocketAddr::from(([127, 9, 0, 1], 18444));
        let interval = Duration::from_secs(60);
        let r = AddrRelay::with_key(5, 6).announcing(Some(local), ServiceFlags::NETWORK, interval);
        let a = peer(1, ConnectionType::Inbound, false);
        r.enable(&a);
        // The first announcement (sent with the handshake or getaddr answer).
        match r.announcement(&a) {
            Some(NetworkMessage::Addr(list)) => {
                assert_eq!(list.len(), 1);
                assert_eq!(list[0].1.socket_addr().unwrap(), local);
                assert_eq!(list[0].1.services, ServiceFlags::NETWORK);
            }
            other => panic!("{other:?}"),
        }
        let ours = AddrV2Message {
            time: NOW,
            services: ServiceFlags::NETWORK,
            addr: AddrV2::Ipv4(Ipv4Addr::new(127, 9, 0, 1)),
            port: 18444,
        };
        r.add_known(1, &[ours, fresh(1)]);
        let t0 = Instant::now();
        // The first flush is due at once and empty; the repeat is later.
        assert_eq!(r.take_due(1, t0), None);
        let due = r.next_due(1).unwrap();
        assert!(due > t0);
        // Far enough ahead that both the repeat and the flush are due.
        let later = t0 + interval * 25;
        match r.take_due(1, later) {
            Some(NetworkMessage::Addr(list)) => {
                assert_eq!(list.len(), 1, "{list:?}");
                assert_eq!(list[0].1.socket_addr().unwrap(), local);
            }
            other => panic!("{other:?}"),
        }
        // What the peer knew was forgotten with the announcement.
        assert_eq!(r.relay_fresh(2, 1, &[fresh(1)], false, NOW), 1);
        // The configuration's default is Core's interval.
        assert_eq!(
            crate::config::Config::new(crate::config::Network::Mainnet)
                .local_addr_broadcast_interval,
            AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL
        );
        // No local address: no announcement and no repeat.
        let quiet = AddrRelay::with_key(5, 6);
        quiet.enable(&a);
        assert_eq!(quiet.announcement(&a), None);
        assert_eq!(quiet.take_due(1, later), None);
    }

    #[test]
    fn a_full_queue_replaces_entries() {
        let r = AddrRelay::with_key(7, 8);
        let a = peer(1, ConnectionType::Inbound, true);
        let o = peer(2, ConnectionType::Inbound, true);
        r.enable(&a);
        r.enable(&o);
        for i in 0..(MAX_ADDR_TO_SEND as u32 + 50) {
            let m = AddrV2Message {
                addr: AddrV2::Ipv4(Ipv4Addr::from(0x0b00_0000 + i * 256 + 1)),
                ..fresh(0)
            };
            r.relay_fresh(2, 1, &[m], false, NOW);
        }
        assert_eq!(r.queued(1).len(), MAX_ADDR_TO_SEND);
    }

    #[test]
    fn getaddr_answers_come_from_a_cache_and_are_never_empty() {
        let r = AddrRelay::with_key(9, 10);
        let am = AddrMan::with_key([1; 32], false, 3);
        let asker = peer(1, ConnectionType::Inbound, true);
        assert_eq!(
            r.getaddr_answer(&asker, &am),
            None,
            "empty manager: no message"
        );
        let now = crate::util::unix_time() as u32;
        let list: Vec<_> = (0..100u8)
            .map(|i| AddrV2Message {
                time: now - 60,
                services: ServiceFlags::NETWORK,
                addr: AddrV2::Ipv4(Ipv4Addr::new(11, i, 1, 1)),
                port: 8333,
            })
            .collect();
        am.add(&list, &AddrV2::Ipv4(Ipv4Addr::new(5, 5, 5, 5)), 0);
        let first = match r.getaddr_answer(&asker, &am) {
            Some(NetworkMessage::AddrV2(l)) => l,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.len(), am.size() * MAX_PCT_ADDR_TO_SEND / 100);
        assert!(r.is_enabled(1), "getaddr enables relay");
        // More addresses arrive; a second asker gets the same cached answer.
        let more: Vec<_> = (0..100u8)
            .map(|i| AddrV2Message {
                addr: AddrV2::Ipv4(Ipv4Addr::new(12, i, 1, 1)),
                ..list[0].clone()
            })
            .collect();
        am.add(&more, &AddrV2::Ipv4(Ipv4Addr::new(6, 6, 6, 6)), 0);
        let v1 = peer(2, ConnectionType::Inbound, false);
        match r.getaddr_answer(&v1, &am) {
            Some(NetworkMessage::Addr(l)) => {
                let got: HashSet<_> = l.iter().map(|(_, a)| a.socket_addr().unwrap()).collect();
                let want: HashSet<_> = first.iter().map(|m| m.socket_addr().unwrap()).collect();
                assert_eq!(got, want);
            }
            other => panic!("{other:?}"),
        }
        // Banned and discouraged addresses are left out (Core's
        // GetAddresses); a filter leaving nothing sends nothing.
        let banned = first[0].addr.clone();
        let v2 = peer(3, ConnectionType::Inbound, true);
        match r.getaddr_answer_filtered(&v2, &am, &|m| m.addr != banned) {
            Some(NetworkMessage::AddrV2(l)) => {
                assert_eq!(l.len(), first.len() - 1);
                assert!(l.iter().all(|m| m.addr != banned));
            }
            other => panic!("{other:?}"),
        }
        let v2b = peer(4, ConnectionType::Inbound, true);
        assert_eq!(r.getaddr_answer_filtered(&v2b, &am, &|_| false), None);
        // The cache expires after 21–27 hours.
        let later =
            Instant::now() + ADDR_CACHE_LIFETIME + Duration::from_secs(ADDR_CACHE_JITTER_SECS + 1);
        let refreshed = r.cached_addresses(NetClass::Ipv4, &am, later);
        assert_eq!(refreshed.len(), am.size() * MAX_PCT_ADDR_TO_SEND / 100);
        assert_ne!(refreshed.len(), first.len());
    }
}
