//! A small address book: addresses learnt from `addr`/`addrv2` messages
//! and from our peers, used to answer `getaddr`.
//!
//! Shared by the peer reader threads behind one leaf lock (nothing else is
//! locked or sent while holding it). Bounded: at most [`MAX_ADDRS`]
//! entries, the oldest (by advertised time) replaced first. strand does not
//! dial these addresses yet (no automatic outbound connections); it keeps
//! and shares them as Bitcoin Core does, so peers that ask get an answer.

use std::collections::HashMap;
use std::net::SocketAddr;

use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use bitcoin::p2p::ServiceFlags;
use parking_lot::Mutex;

/// Most addresses kept.
pub const MAX_ADDRS: usize = 10_000;
/// Most addresses accepted from one message and sent in one answer (Core).
pub const MAX_ADDR_PER_MESSAGE: usize = 1_000;

/// The book; see the module docs.
#[derive(Default)]
pub struct AddrBook {
    entries: Mutex<HashMap<SocketAddr, (u32, ServiceFlags)>>,
}

impl AddrBook {
    /// Remembers `addr` as seen at `time` with `services`.
    pub fn add(&self, addr: SocketAddr, time: u32, services: ServiceFlags) {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return;
        }
        let mut e = self.entries.lock();
        if e.len() >= MAX_ADDRS && !e.contains_key(&addr) {
            if let Some(oldest) = e.iter().min_by_key(|(_, (t, _))| *t).map(|(a, _)| *a) {
                e.remove(&oldest);
            }
        }
        let entry = e.entry(addr).or_insert((time, services));
        if time >= entry.0 {
            *entry = (time, services);
        }
    }

    /// Number of addresses known.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to [`MAX_ADDR_PER_MESSAGE`] addresses, newest first.
    pub fn sample(&self) -> Vec<(SocketAddr, u32, ServiceFlags)> {
        let e = self.entries.lock();
        let mut v: Vec<_> = e.iter().map(|(a, (t, s))| (*a, *t, *s)).collect();
        drop(e);
        v.sort_by_key(|(_, t, _)| std::cmp::Reverse(*t));
        v.truncate(MAX_ADDR_PER_MESSAGE);
        v
    }

    /// Entries of an `addr` message (only the first [`MAX_ADDR_PER_MESSAGE`]).
    pub fn add_v1(&self, list: &[(u32, Address)]) {
        for (time, a) in list.iter().take(MAX_ADDR_PER_MESSAGE) {
            if let Ok(sa) = a.socket_addr() {
                self.add(sa, *time, a.services);
            }
        }
    }

    /// Entries of an `addrv2` message; networks other than IPv4/IPv6 are
    /// skipped.
    pub fn add_v2(&self, list: &[AddrV2Message]) {
        for m in list.iter().take(MAX_ADDR_PER_MESSAGE) {
            if let Ok(sa) = m.socket_addr() {
                self.add(sa, m.time, m.services);
            }
        }
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

    #[test]
    fn bounded_newest_first_and_skips_unroutable() {
        let book = AddrBook::default();
        book.add("0.0.0.0:8333".parse().unwrap(), 5, ServiceFlags::NETWORK);
        book.add("1.2.3.4:0".parse().unwrap(), 5, ServiceFlags::NETWORK);
        assert!(book.is_empty());
        for i in 0..(MAX_ADDRS as u32 + 10) {
            let a = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8333));
            book.add(a, i, ServiceFlags::NETWORK);
        }
        assert_eq!(book.len(), MAX_ADDRS);
        let s = book.sample();
        assert_eq!(s.len(), MAX_ADDR_PER_MESSAGE);
        assert_eq!(s[0].1, MAX_ADDRS as u32 + 9);
        assert_eq!(book.sample_v2().len(), MAX_ADDR_PER_MESSAGE);
    }
}
