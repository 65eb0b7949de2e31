//! The per-peer side of Core's `ProcessAddrs`: the token bucket that
//! limits how fast one peer can feed us addresses (Core's
//! `m_addr_token_bucket`), Core's timestamp clamp, and the conversions
//! between `addr` and `addrv2` entries. Each peer's reader thread owns its
//! peer's [`AddrTokenBucket`]; what passes goes to the address manager
//! ([`super::addrman`]) and the relay queues ([`super::addr_relay`]).

use std::time::Instant;

use bitcoin::p2p::address::{AddrV2Message, Address};
use bitcoin::p2p::ServiceFlags;

/// Most addresses accepted from one message and sent in one answer (Core's
/// `MAX_ADDR_TO_SEND`).
pub const MAX_ADDR_PER_MESSAGE: usize = 1_000;
/// Addresses a peer earns per second (Core's `MAX_ADDR_RATE_PER_SECOND`).
pub const MAX_ADDR_RATE_PER_SECOND: f64 = 0.1;
/// Most tokens the time-based refill can accumulate (Core's
/// `MAX_ADDR_PROCESSING_TOKEN_BUCKET`, equal to `MAX_ADDR_TO_SEND`). A
/// peer we send `getaddr` gets `MAX_ADDR_TO_SEND` extra tokens for the
/// answer ([`AddrTokenBucket::credit`]), as in Core.
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

    /// Grants `n` extra tokens beyond the cap (Core adds
    /// `MAX_ADDR_TO_SEND` when it sends the peer `getaddr`).
    pub fn credit(&mut self, n: f64) {
        self.tokens += n;
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

/// What one `addr`/`addrv2` message did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOutcome {
    /// Entries that got a token (Core's `m_addr_processed`).
    pub processed: usize,
    /// Entries dropped for lack of tokens (Core's `m_addr_rate_limited`).
    pub rate_limited: usize,
}

/// Core's `ProcessAddrs` for already-parsed entries: refill `bucket`,
/// spend a token per entry (entries without one are dropped and counted),
/// clamp times against `now` (Unix seconds). Returns the outcome and the
/// entries that got a token, to be added to the address manager and
/// considered for relay.
pub fn process_addrs(
    entries: &[AddrV2Message],
    bucket: &mut AddrTokenBucket,
    at: Instant,
    now: u32,
) -> (AddrOutcome, Vec<AddrV2Message>) {
    bucket.refill(at);
    let mut out = AddrOutcome::default();
    let mut ok = Vec::new();
    for m in entries.iter().take(MAX_ADDR_PER_MESSAGE) {
        if !bucket.take() {
            out.rate_limited += 1;
            continue;
        }
        // Core stores only nodes that may serve blocks (its
        // MayHaveUsefulAddressDB): NODE_NETWORK or NODE_NETWORK_LIMITED.
        // The token is spent all the same.
        if !(m.services.has(ServiceFlags::NETWORK) || m.services.has(ServiceFlags::NETWORK_LIMITED))
        {
            continue;
        }
        out.processed += 1;
        let mut m = m.clone();
        m.time = clamp_addr_time(m.time, now);
        ok.push(m);
    }
    (out, ok)
}

/// The entries of a (pre-BIP155) `addr` message in `addrv2` form; an
/// IPv4-mapped IPv6 address becomes IPv4, one that is not an IP (a Tor v2
/// OnionCat address) is left out.
pub fn addr_v1_to_v2(list: &[(u32, Address)]) -> Vec<AddrV2Message> {
    list.iter()
        .filter_map(|(time, a)| {
            let sa = a.socket_addr().ok()?;
            Some(AddrV2Message {
                time: *time,
                services: a.services,
                addr: crate::netaddr::addr_v2(sa.ip()),
                port: sa.port(),
            })
        })
        .collect()
}

/// The `addr` (pre-BIP155) form of `addrv2` entries: IP networks only.
pub fn addr_v2_to_v1(list: &[AddrV2Message]) -> Vec<(u32, Address)> {
    list.iter()
        .filter_map(|m| {
            let sa = m.socket_addr().ok()?;
            Some((m.time, Address::new(&sa, m.services)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::p2p::address::AddrV2;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([11, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8333))
    }

    fn v2(list: &[(u32, Address)]) -> Vec<AddrV2Message> {
        addr_v1_to_v2(list)
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
        let t0 = Instant::now();
        let now = 1_700_000_000;
        let mut bucket = AddrTokenBucket::new(t0);
        let list: Vec<(u32, Address)> = (0..1_000)
            .map(|i| (now, Address::new(&addr(i), ServiceFlags::NETWORK)))
            .collect();
        let (first, ok) = process_addrs(&v2(&list), &mut bucket, t0, now);
        assert_eq!(
            first,
            AddrOutcome {
                processed: 1,
                rate_limited: 999
            }
        );
        assert_eq!(ok.len(), 1);
        // 100 s later: 10 more tokens.
        let list: Vec<(u32, Address)> = (1_000..2_000)
            .map(|i| (now, Address::new(&addr(i), ServiceFlags::NETWORK)))
            .collect();
        let (later, ok) =
            process_addrs(&v2(&list), &mut bucket, t0 + Duration::from_secs(100), now);
        assert_eq!(later.processed, 10);
        assert_eq!(later.rate_limited, 990);
        assert_eq!(ok.len(), 10);
    }

    #[test]
    fn addresses_of_nodes_that_serve_no_blocks_are_not_kept() {
        let t0 = Instant::now();
        let mut bucket = AddrTokenBucket::new(t0);
        bucket.credit(10.0);
        let list = [
            (1, Address::new(&addr(1), ServiceFlags::NONE)),
            (1, Address::new(&addr(2), ServiceFlags::WITNESS)),
            (1, Address::new(&addr(3), ServiceFlags::NETWORK_LIMITED)),
            (1, Address::new(&addr(4), ServiceFlags::NETWORK)),
        ];
        let (out, ok) = process_addrs(&v2(&list), &mut bucket, t0, 1_700_000_000);
        assert_eq!(out.processed, 2);
        assert_eq!(ok.len(), 2);
        assert!(
            (bucket.tokens() - 7.0).abs() < 1e-9,
            "every entry spent a token"
        );
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
        // Through process_addrs.
        let mut bucket = AddrTokenBucket::new(Instant::now());
        let list = [(u32::MAX, Address::new(&addr(1), ServiceFlags::NETWORK))];
        let (_, ok) = process_addrs(&v2(&list), &mut bucket, Instant::now(), now);
        assert_eq!(ok[0].time, five_days_ago);
    }

    #[test]
    fn v1_entries_convert_to_v2_and_back() {
        let mapped: SocketAddr = "[::ffff:11.2.3.4]:8333".parse().unwrap();
        let list = [
            (5, Address::new(&addr(7), ServiceFlags::NETWORK)),
            (6, Address::new(&mapped, ServiceFlags::NONE)),
        ];
        let v2 = addr_v1_to_v2(&list);
        assert_eq!(v2.len(), 2);
        assert_eq!(v2[1].addr, AddrV2::Ipv4("11.2.3.4".parse().unwrap()));
        assert_eq!(v2[0].time, 5);
        let tor = AddrV2Message {
            time: 1,
            services: ServiceFlags::NONE,
            addr: AddrV2::TorV3([1; 32]),
            port: 8333,
        };
        let mut with_tor = v2.clone();
        with_tor.push(tor);
        let back = addr_v2_to_v1(&with_tor);
        assert_eq!(back.len(), 2, "Tor v3 has no addr (v1) form");
        assert_eq!(back[0].1.socket_addr().unwrap(), addr(7));
    }
}
