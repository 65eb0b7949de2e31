//! DNS seeds (Core's `ThreadDNSAddressSeed`), run by the `dnsseed` thread
//! the connection manager starts when `--dnsseed` is on and the network
//! has seeds (regtest has none).
//!
//! Core's order, with its numbers: with `--seednode` given, the seed nodes
//! get 30 s first (`SEEDNODE_TIMEOUT`); then, if the address manager is
//! empty, every seed is asked at once; otherwise nothing is asked while
//! [`SEED_OUTBOUND_CONNECTION_THRESHOLD`] full-relay peers are connected,
//! and seeds are asked three at a time (`DNSSEEDS_TO_QUERY_AT_ONCE`) after
//! waiting 11 s (`DNSSEEDS_DELAY_FEW_PEERS`), or 5 min
//! (`DNSSEEDS_DELAY_MANY_PEERS`) when the address manager already knows
//! 1,000 addresses (`DNSSEEDS_DELAY_PEER_THRESHOLD`). Names are resolved
//! with the system resolver (`std::net::ToSocketAddrs`), asking for
//! service bits 9 (`x9.<seed>`, NODE_NETWORK | NODE_WITNESS, Core's
//! `SeedsServiceFlags`); at most 32 addresses per seed are added, aged 3
//! to 7 days as Core does so they do not outrank gossiped ones.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::ServiceFlags;
use crossbeam_channel::Receiver;

use super::policy::SEED_OUTBOUND_CONNECTION_THRESHOLD;
use crate::netaddr::addr_v2;
use crate::peer::addrman::AddrMan;
use crate::util::SplitMix64;

/// Time the seed nodes get before DNS seeds (Core's `SEEDNODE_TIMEOUT`).
pub const SEEDNODE_TIMEOUT: Duration = Duration::from_secs(30);
/// Seeds asked at once (Core's `DNSSEEDS_TO_QUERY_AT_ONCE`).
pub const DNSSEEDS_TO_QUERY_AT_ONCE: usize = 3;
/// Wait before asking when few addresses are known (Core's
/// `DNSSEEDS_DELAY_FEW_PEERS`).
pub const DNSSEEDS_DELAY_FEW_PEERS: Duration = Duration::from_secs(11);
/// Wait before asking when many are (Core's `DNSSEEDS_DELAY_MANY_PEERS`).
pub const DNSSEEDS_DELAY_MANY_PEERS: Duration = Duration::from_secs(5 * 60);
/// What "many" is (Core's `DNSSEEDS_DELAY_PEER_THRESHOLD`).
pub const DNSSEEDS_DELAY_PEER_THRESHOLD: usize = 1_000;
/// Addresses taken from one seed (Core's `nMaxIPs`).
pub const MAX_IPS_PER_SEED: usize = 32;

/// The name asked for: Core's `x<service bits in hex>.<seed>`.
pub fn seed_query_name(seed: &str) -> String {
    let bits = (ServiceFlags::NETWORK | ServiceFlags::WITNESS).to_u64();
    format!("x{bits:x}.{seed}")
}

/// What the thread needs from the node.
pub(crate) struct DnsSeeder {
    pub seeds: Vec<&'static str>,
    pub default_port: u16,
    pub addrman: Arc<AddrMan>,
    pub have_seednodes: bool,
    /// Open full-relay outbound connections with a completed handshake.
    pub full_outbound: Box<dyn Fn() -> usize + Send>,
    pub stop: Receiver<()>,
}

impl DnsSeeder {
    /// Sleeps `d`; false when the node is stopping.
    fn sleep(&self, d: Duration) -> bool {
        matches!(
            self.stop.recv_timeout(d),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        )
    }

    /// The thread body.
    pub(crate) fn run(self) {
        let mut outbound = 0;
        if self.have_seednodes {
            let start = Instant::now();
            log::info!(
                "-seednode enabled: trying the seed nodes for {}s before the DNS seeds",
                SEEDNODE_TIMEOUT.as_secs()
            );
            loop {
                if !self.sleep(Duration::from_millis(500)) {
                    return;
                }
                outbound = (self.full_outbound)();
                if outbound >= SEED_OUTBOUND_CONNECTION_THRESHOLD {
                    log::info!("P2P peers available; finished fetching from seed nodes");
                    break;
                }
                if start.elapsed() > SEEDNODE_TIMEOUT {
                    log::info!("not enough peers from seed nodes; handing over to the DNS seeds");
                    break;
                }
            }
        }
        let mut rng = SplitMix64::new(crate::util::random_nonce());
        let mut seeds = self.seeds.clone();
        // Fisher-Yates with the node's random generator (Core shuffles).
        for i in (1..seeds.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            seeds.swap(i, j);
        }
        let mut right_now = if self.addrman.size() == 0 {
            seeds.len()
        } else {
            0
        };
        if outbound >= SEED_OUTBOUND_CONNECTION_THRESHOLD && right_now == 0 {
            return;
        }
        let wait = if self.addrman.size() >= DNSSEEDS_DELAY_PEER_THRESHOLD {
            DNSSEEDS_DELAY_MANY_PEERS
        } else {
            DNSSEEDS_DELAY_FEW_PEERS
        };
        let mut found = 0;
        for seed in seeds {
            if right_now == 0 {
                right_now += DNSSEEDS_TO_QUERY_AT_ONCE;
                if self.addrman.size() > 0 {
                    log::info!("waiting {}s before querying DNS seeds", wait.as_secs());
                    let mut left = wait;
                    while !left.is_zero() {
                        let step = left.min(DNSSEEDS_DELAY_FEW_PEERS);
                        if !self.sleep(step) {
                            return;
                        }
                        left -= step;
                        if (self.full_outbound)() >= SEED_OUTBOUND_CONNECTION_THRESHOLD {
                            log::info!(
                                "P2P peers available; {found} addresses from DNS seeds, done"
                            );
                            return;
                        }
                    }
                }
            }
            if !self.sleep(Duration::ZERO) {
                return;
            }
            found += self.query(seed, &mut rng);
            right_now -= 1;
        }
        log::info!("{found} addresses found from DNS seeds");
    }

    /// Resolves one seed and adds what it gave; returns how many were new.
    fn query(&self, seed: &str, rng: &mut SplitMix64) -> usize {
        let host = seed_query_name(seed);
        log::info!("loading addresses from DNS seed {seed}");
        let resolved: Vec<_> = match (host.as_str(), self.default_port).to_socket_addrs() {
            Ok(it) => it.take(MAX_IPS_PER_SEED).collect(),
            Err(e) => {
                log::info!("DNS seed {seed}: {e}");
                return 0;
            }
        };
        let Some(first) = resolved.first() else {
            return 0;
        };
        let now = crate::util::unix_time() as u32;
        let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
        let addrs: Vec<AddrV2Message> = resolved
            .iter()
            .map(|a| {
                // A random age between 3 and 7 days (Core).
                let age = 3 * 86_400 + (rng.next_u64() % (4 * 86_400)) as u32;
                AddrV2Message {
                    time: now.saturating_sub(age),
                    services,
                    addr: addr_v2(a.ip()),
                    port: self.default_port,
                }
            })
            .collect();
        // Core's source is the seed's name; strand's AddrMan takes an
        // address, so the first answer stands for the seed (one source
        // group per seed either way).
        let source: AddrV2 = addr_v2(first.ip());
        let added = self.addrman.add(&addrs, &source, 0);
        log::info!("DNS seed {seed}: {} addresses, {added} new", addrs.len());
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_ask_for_network_and_witness() {
        assert_eq!(
            seed_query_name("seed.bitcoin.sipa.be."),
            "x9.seed.bitcoin.sipa.be."
        );
    }
}
