//! Fixed seeds: per network, a few hundred addresses from Bitcoin Core's
//! `chainparamsseeds.h` (IPv4, IPv6, Tor v3, I2P and CJDNS), committed as
//! text under `data/seeds/` (`main.txt`, `test.txt`, `signet.txt`, `testnet4.txt`) by
//! `contrib/gen-seeds.py` and compiled into the binary. The connection
//! manager adds them to the address manager when it has no working
//! connection after a while (Core: 60 s); regtest has none. DNS seed
//! names are [`ChainParams::dns_seeds`]. Pure data, any thread.
//!
//! File format: one `host:port` per line (`1.2.3.4:8333`,
//! `[2001:db8::1]:8333`, `<v3>.onion:8333`, `<hash>.b32.i2p:0`,
//! `[fc..]:8333` = CJDNS); `#` starts a comment line.

use bitcoin::p2p::address::AddrV2Message;
use bitcoin::p2p::ServiceFlags;

use crate::addrtext::parse_service;
use crate::chain::params::ChainParams;

const MAIN: &str = include_str!("../../data/seeds/main.txt");
const TEST: &str = include_str!("../../data/seeds/test.txt");
const SIGNET: &str = include_str!("../../data/seeds/signet.txt");
const TESTNET4: &str = include_str!("../../data/seeds/testnet4.txt");

/// A seed line that does not parse (a defect in the committed data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedLineError {
    /// 1-based line number.
    pub line: usize,
    /// The line.
    pub text: String,
}

/// Parses a seed file; every non-comment line must be a `host:port`.
pub fn parse_seed_file(text: &str, default_port: u16) -> Result<Vec<AddrV2Message>, SeedLineError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (addr, port) =
            parse_service(line, default_port, true).ok_or_else(|| SeedLineError {
                line: i + 1,
                text: line.to_string(),
            })?;
        out.push(AddrV2Message {
            // Core gives fixed seeds a time one to two weeks in the past
            // (ConvertSeeds) so they are tried after better addresses.
            time: 0,
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            addr,
            port,
        });
    }
    Ok(out)
}

/// The seed file text for `params`: none for regtest and custom
/// signets (Core: a custom `-signetchallenge` has no seeds).
pub fn seed_text(params: &ChainParams) -> &'static str {
    match params.network {
        bitcoin::Network::Bitcoin => MAIN,
        bitcoin::Network::Testnet => TEST,
        bitcoin::Network::Testnet4 => TESTNET4,
        bitcoin::Network::Signet
            if params.signet_challenge == ChainParams::signet().signet_challenge =>
        {
            SIGNET
        }
        _ => "",
    }
}

/// Core's `ConvertSeeds`: the fixed seeds of `params`' network, with a
/// time between one and two weeks ago (Core's "random time between one
/// and two weeks", so they are not preferred over gossiped addresses).
/// A line that does not parse is skipped (the unit tests check none does).
pub fn fixed_seeds(params: &ChainParams) -> Vec<AddrV2Message> {
    const ONE_WEEK: u64 = 7 * 24 * 60 * 60;
    let text = seed_text(params);
    let now = crate::util::unix_time();
    let mut rng = crate::util::SplitMix64::new(crate::util::random_nonce());
    text.lines()
        .filter_map(|l| parse_seed_file(l, params.default_port).ok())
        .flatten()
        .map(|mut m| {
            let age = ONE_WEEK + rng.next_u64() % ONE_WEEK;
            m.time = u32::try_from(now.saturating_sub(age)).unwrap_or(0);
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netaddr::is_routable;
    use bitcoin::p2p::address::AddrV2;

    #[test]
    fn every_committed_seed_parses_and_is_routable() {
        for (params, port, min) in [
            (ChainParams::mainnet(), 8333, 300),
            (ChainParams::testnet(), 18333, 100),
            (ChainParams::signet(), 38333, 100),
            (ChainParams::testnet4(), 48333, 100),
        ] {
            let net = params.network;
            let list = parse_seed_file(seed_text(&params), port).expect("every line parses");
            assert!(list.len() >= min, "{net:?}: {} seeds", list.len());
            for m in &list {
                assert!(is_routable(&m.addr, false), "{m:?}");
            }
            // Every BIP155 network is represented.
            for want in [
                |a: &AddrV2| matches!(a, AddrV2::Ipv4(_)),
                |a: &AddrV2| matches!(a, AddrV2::Ipv6(_)),
                |a: &AddrV2| matches!(a, AddrV2::TorV3(_)),
                |a: &AddrV2| matches!(a, AddrV2::I2p(_)),
                |a: &AddrV2| matches!(a, AddrV2::Cjdns(_)),
            ] {
                assert!(list.iter().any(|m| want(&m.addr)), "{net:?}");
            }
        }
        assert!(seed_text(&ChainParams::regtest()).is_empty());
        assert!(seed_text(&ChainParams::custom_signet(vec![0x51])).is_empty());
    }

    #[test]
    fn fixed_seeds_per_chain_params() {
        let main = ChainParams::mainnet();
        let seeds = fixed_seeds(&main);
        assert!(seeds.len() >= 300, "{}", seeds.len());
        let now = crate::util::unix_time() as u32;
        for s in &seeds {
            assert!(s.time <= now - 7 * 86_400 && s.time >= now - 14 * 86_400 - 1);
        }
        assert!(seeds.iter().any(|m| m.port == 8333));
        let regtest = ChainParams::regtest();
        assert!(fixed_seeds(&regtest).is_empty());
    }

    #[test]
    fn bad_lines_are_reported() {
        let err = parse_seed_file("# c\n1.2.3.4:1\nnot-an-address:1\n", 1).unwrap_err();
        assert_eq!(err.line, 3);
    }
}
