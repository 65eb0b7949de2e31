//! A small address book: addresses learnt from `addr`/`addrv2` messages
//! and from our peers, used to answer `getaddr`, and the per-peer token
//! bucket that limits how fast one peer can fill it.
//!
//! Shared by the peer reader threads behind one leaf lock (nothing else is
//! locked or sent while holding it); each reader owns its peer's
//! [`AddrTokenBucket`]. Bounded: at most [`MAX_ADDRS`] entries; when full, a
//! random entry makes room (O(1), and a peer cannot choose the victim
//! through the times it advertises). Answers are a random sample, not the
//! "newest" entries, for the same reason. strand does not dial these
//! addresses yet (no automatic outbound connections); it keeps and shares
//! them as Bitcoin Core does, so peers that ask get an answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use bitcoin::p2p::ServiceFlags;
use parking_lot::Mutex;

use crate::util::random_nonce;

/// Most addresses kept.
pub const MAX_ADDRS: usize = 10_000;
/// Most addresses accepted from one message and sent in one answer (Core's
/// `MAX_ADDR_TO_SEND`).
pub const MAX_ADDR_PER_MESSAGE: usize = 1_000;
/// Addresses a peer earns per second (Core's `MAX_ADDR_RATE_PER_SECOND`).
pub const MAX_ADDR_RATE_PER_SECOND: f64 = 0.1;
/// Most tokens the time-based refill can accumulate (Core's
/// `MAX_ADDR_PROCESSING_TOKEN_BUCKET`, equal to `MAX_ADDR_TO_SEND`). Core
/// also grants a peer `MAX_ADDR_TO_SEND` extra tokens when it sends that
/// peer `getaddr`; strand never sends `getaddr`, so its peers only ever
/// have the starting token plus the refill.
pub const MAX_ADDR_PROCESSING_TOKEN_BUCKET: f64 = MAX_ADDR_PER_MESSAGE as f64;
/// Advertised times at or below this are nonsense (Core: `100000000`, 1973).
const MIN_SANE_ADDR_TIME: u32 = 100_000_000;
/// How far in the future an advertised time may be (Core: 10 minutes).
const MAX_ADDR_TIME_AHEAD: u32 = 10 * 60;
/// What a nonsense time becomes: now minus this (Core: 5 days).
const NONSENSE_ADDR_TIME_AGE: u32 = 5 * 24 * 60 * 60;

/// Core's per-peer address rate limit (`Peer::m_addr_token_bucket`): one
/// token per address processed, refilled at [`MAX_ADDR_RATE_PER_SECOND`]
/// up to [`MAX_ADDR_PROCESSING_TOKEN_BUCKET`], starting with one token.
#[derive(Debug, Clone)]
pub struct AddrTokenBucket {
    tokens: f64,
    updated: Instant,
}

impl AddrTokenBucket {
    /// A new peer's bucket: one token (Core's initial `1.0`).
    pub fn new(now: Instant) -> AddrTokenBucket {
        AddrTokenBucket {
            tokens: 1.0,
            updated: now,
        }
    }

    /// Adds the tokens earned since the last refill (Core refills once per
    /// `addr` message, before processing it; a full bucket earns nothing).
    pub fn refill(&mut self, now: Instant) {
        if self.tokens < MAX_ADDR_PROCESSING_TOKEN_BUCKET {
            let earned = now.saturating_duration_since(self.updated).as_secs_f64()
                * MAX_ADDR_RATE_PER_SECOND;
            self.tokens = (self.tokens + earned).min(MAX_ADDR_PROCESSING_TOKEN_BUCKET);
        }
        self.updated = now;
    }

    /// Spends a token; `false` (address dropped) when less than one is left.
    pub fn take(&mut self) -> bool {
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Tokens left.
    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

/// Core's timestamp sanitising in `ProcessAddrs`: a time at or before
/// 1973 or more than 10 minutes ahead of `now` becomes `now` − 5 days.
pub fn clamp_addr_time(time: u32, now: u32) -> u32 {
    if time <= MIN_SANE_ADDR_TIME || time > now.saturating_add(MAX_ADDR_TIME_AHEAD) {
        now.saturating_sub(NONSENSE_ADDR_TIME_AGE)
    } else {
        time
    }
}

/// What one `addr`/`addrv2` message did to the book.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOutcome {
    /// Entries that got a token (stored unless unusable: other networks,
    /// port 0, unspecified address).
    pub processed: usize,
    /// Entries dropped for lack of tokens.
    pub rate_limited: usize,
}

#[derive(Default)]
struct Entries {
    /// Address → (advertised time, services, index in `order`).
    map: HashMap<SocketAddr, (u32, ServiceFlags, usize)>,
    /// Every key of `map` once, for O(1) random eviction and sampling.
    order: Vec<SocketAddr>,
}

impl Entries {
    fn remove_at(&mut self, i: usize) {
        let gone = self.order.swap_remove(i);
        self.map.remove(&gone);
        if let Some(moved) = self.order.get(i) {
            if let Some(e) = self.map.get_mut(moved) {
                e.2 = i;
            }
        }
    }
}

/// The book; see the module docs.
#[derive(Default)]
pub struct AddrBook {
    entries: Mutex<Entries>,
    rate_limited: AtomicU64,
}

fn random_below(n: usize) -> usize {
    (random_nonce() % n as u64) as usize
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl AddrBook {
    /// Remembers `addr` as seen at `time` with `services`. `time` is taken
    /// as given: peer input goes through [`AddrBook::add_v1`] or
    /// [`AddrBook::add_v2`], which clamp it.
    pub fn add(&self, addr: SocketAddr, time: u32, services: ServiceFlags) {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        let mut e = self.entries.lock();
        if let Some(entry) = e.map.get_mut(&addr) {
            if time >= entry.0 {
                entry.0 = time;
                entry.1 = services;
            }
            return;
        }
        if e.order.len() >= MAX_ADDRS {
            let victim = random_below(e.order.len());
            e.remove_at(victim);
        }
        let i = e.order.len();
        e.order.push(addr);
        e.map.insert(addr, (time, services, i));
    }

    /// Number of addresses known.
    pub fn len(&self) -> usize {
        self.entries.lock().order.len()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Addresses dropped by the rate limit since start, all peers together.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Up to [`MAX_ADDR_PER_MESSAGE`] addresses chosen at random.
    pub fn sample(&self) -> Vec<(SocketAddr, u32, ServiceFlags)> {
        let e = self.entries.lock();
        let mut keys = e.order.clone();
        let n = keys.len().min(MAX_ADDR_PER_MESSAGE);
        // Partial Fisher-Yates: the first `n` keys become a uniform sample.
        for i in 0..n {
            let j = i + random_below(keys.len() - i);
            keys.swap(i, j);
        }
        keys.truncate(n);
        keys.into_iter()
            .filter_map(|a| e.map.get(&a).map(|(t, s, _)| (a, *t, *s)))
            .collect()
    }

    /// Core's `ProcessAddrs` for already-parsed entries: refill `bucket`,
    /// spend a token per entry (entries without one are dropped and
    /// counted), clamp times against `now` (Unix seconds), store.
    fn process(
        &self,
        entries: impl Iterator<Item = (Option<SocketAddr>, u32, ServiceFlags)>,
        bucket: &mut AddrTokenBucket,
        at: Instant,
        now: u32,
    ) -> AddrOutcome {
        bucket.refill(at);
        let mut out = AddrOutcome::default();
        for (addr, time, services) in entries.take(MAX_ADDR_PER_MESSAGE) {
            if !bucket.take() {
                out.rate_limited += 1;
                continue;
            }
            out.processed += 1;
            if let Some(sa) = addr {
                self.add(sa, clamp_addr_time(time, now), services);
            }
        }
        self.rate_limited
            .fetch_add(out.rate_limited as u64, Ordering::Relaxed);
        out
    }

    /// Entries of an `addr` message (only the first [`MAX_ADDR_PER_MESSAGE`]),
    /// within `bucket`'s budget.
    pub fn add_v1(&self, list: &[(u32, Address)], bucket: &mut AddrTokenBucket) -> AddrOutcome {
        self.add_v1_at(list, bucket, Instant::now(), unix_now())
    }

    /// [`AddrBook::add_v1`] at a given clock (tests).
    pub fn add_v1_at(
        &self,
        list: &[(u32, Address)],
        bucket: &mut AddrTokenBucket,
        at: Instant,
        now: u32,
    ) -> AddrOutcome {
        let entries = list
            .iter()
            .map(|(t, a)| (a.socket_addr().ok(), *t, a.services));
        self.process(entries, bucket, at, now)
    }

    /// Entries of an `addrv2` message, within `bucket`'s budget; networks
    /// other than IPv4/IPv6 use a token but are not stored.
    pub fn add_v2(&self, list: &[AddrV2Message], bucket: &mut AddrTokenBucket) -> AddrOutcome {
        let entries = list
            .iter()
            .map(|m| (m.socket_addr().ok(), m.time, m.services));
        self.process(entries, bucket, Instant::now(), unix_now())
    }

    /// The sample as `addrv2` entries.
    pub fn sample_v2(&self) -> Vec<AddrV2Message> {
        self.sample()
            .into_iter()
            .map(|(a, time, services)| AddrV2Message {
                time,
                services,
                addr: match a.ip() {
                    std::net::IpAddr::V4(ip) => AddrV2::Ipv4(ip),
                    std::net::IpAddr::V6(ip) => AddrV2::Ipv6(ip),
                },
                port: a.port(),
            })
            .collect()
    }

    /// The sample as `addr` entries.
    pub fn sample_v1(&self) -> Vec<(u32, Address)> {
        self.sample()
            .into_iter()
            .map(|(a, time, services)| (time, Address::new(&a, services)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8333))
    }

    #[test]
    fn bounded_random_eviction_and_skips_unroutable() {
        let book = AddrBook::default();
        book.add("0.0.0.0:8333".parse().unwrap(), 5, ServiceFlags::NETWORK);
        book.add("1.2.3.4:0".parse().unwrap(), 5, ServiceFlags::NETWORK);
        assert!(book.is_empty());
        // The first entries carry the newest times: with eviction by oldest
        // time they would all survive; random eviction keeps only some.
        let total = MAX_ADDRS as u32 * 2;
        for i in 0..total {
            book.add(addr(i), u32::MAX - i, ServiceFlags::NETWORK);
        }
        assert_eq!(book.len(), MAX_ADDRS);
        let e = book.entries.lock();
        let newest_kept = (0..MAX_ADDRS as u32)
            .filter(|i| e.map.contains_key(&addr(*i)))
            .count();
        assert!(newest_kept < MAX_ADDRS * 3 / 4, "kept {newest_kept}");
        // The index stays consistent through the swap-removes.
        for (i, a) in e.order.iter().enumerate() {
            assert_eq!(e.map[a].2, i);
        }
        drop(e);
        let s = book.sample();
        assert_eq!(s.len(), MAX_ADDR_PER_MESSAGE);
        let distinct: HashSet<_> = s.iter().map(|(a, _, _)| *a).collect();
        assert_eq!(distinct.len(), MAX_ADDR_PER_MESSAGE);
        assert_eq!(book.sample_v2().len(), MAX_ADDR_PER_MESSAGE);
    }

    #[test]
    fn token_bucket_starts_at_one_refills_slowly_and_caps() {
        let t0 = Instant::now();
        let mut b = AddrTokenBucket::new(t0);
        assert!(b.take());
        assert!(!b.take());
        // 0.1 per second: 25 s earn 2.5 tokens.
        b.refill(t0 + Duration::from_secs(25));
        assert!(b.take() && b.take());
        assert!(!b.take());
        assert!((b.tokens() - 0.5).abs() < 1e-9);
        // A day earns far more than the cap: capped at 1,000.
        b.refill(t0 + Duration::from_secs(25 + 86_400));
        assert_eq!(b.tokens(), MAX_ADDR_PROCESSING_TOKEN_BUCKET);
        // A clock going backwards earns nothing.
        let mut c = AddrTokenBucket::new(t0 + Duration::from_secs(10));
        c.refill(t0);
        assert_eq!(c.tokens(), 1.0);
    }

    #[test]
    fn messages_beyond_the_budget_are_dropped_and_counted() {
        let book = AddrBook::default();
        let t0 = Instant::now();
        let now = 1_700_000_000;
        let mut bucket = AddrTokenBucket::new(t0);
        let list: Vec<(u32, Address)> = (0..1_000)
            .map(|i| (now, Address::new(&addr(i), ServiceFlags::NETWORK)))
            .collect();
        let first = book.add_v1_at(&list, &mut bucket, t0, now);
        assert_eq!(
            first,
            AddrOutcome {
                processed: 1,
                rate_limited: 999
            }
        );
        // 100 s later: 10 more tokens.
        let list: Vec<(u32, Address)> = (1_000..2_000)
            .map(|i| (now, Address::new(&addr(i), ServiceFlags::NETWORK)))
            .collect();
        let later = book.add_v1_at(&list, &mut bucket, t0 + Duration::from_secs(100), now);
        assert_eq!(later.processed, 10);
        assert_eq!(book.len(), 11);
        assert_eq!(book.rate_limited_total(), 999 + 990);
    }

    #[test]
    fn nonsense_times_are_clamped_like_core() {
        let now = 1_700_000_000;
        let five_days_ago = now - 5 * 24 * 3600;
        assert_eq!(clamp_addr_time(0, now), five_days_ago);
        assert_eq!(clamp_addr_time(100_000_000, now), five_days_ago);
        assert_eq!(clamp_addr_time(100_000_001, now), 100_000_001);
        assert_eq!(clamp_addr_time(now + 600, now), now + 600);
        assert_eq!(clamp_addr_time(now + 601, now), five_days_ago);
        assert_eq!(clamp_addr_time(u32::MAX, now), five_days_ago);
        assert_eq!(clamp_addr_time(now - 3600, now), now - 3600);
        // Through the book.
        let book = AddrBook::default();
        let mut bucket = AddrTokenBucket::new(Instant::now());
        let list = [(u32::MAX, Address::new(&addr(1), ServiceFlags::NETWORK))];
        book.add_v1_at(&list, &mut bucket, Instant::now(), now);
        assert_eq!(book.sample()[0].1, five_days_ago);
    }
}
