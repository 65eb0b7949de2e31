//! Text forms of BIP155 addresses as Bitcoin Core writes and reads them
//! (`CNetAddr::ToStringAddr`, `LookupHost` for literal addresses):
//! `1.2.3.4`, `2001:db8::1`, `<56 base32 chars>.onion` (Tor v3, with its
//! SHA3-256 checksum and version byte), `<52 base32 chars>.b32.i2p`, and
//! CJDNS as an `fc00::/8` IPv6 literal. Also Core's network names
//! (`GetNetworkName`). Pure functions, used by the fixed-seed parser, the
//! connection targets (`proxy.rs`: onion names) and the
//! address RPCs, any thread.

use std::net::IpAddr;

use bitcoin::p2p::address::AddrV2;

use crate::netaddr::{self, NetClass};

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = BASE32.iter().position(|&x| x == c.to_ascii_lowercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding.
    (buf & ((1 << bits) - 1) == 0).then_some(out)
}

/// Keccak-f[1600] round constants.
const RC: [u64; 24] = [
    0x0000000000000001,
    0x0000000000008082,
    0x800000000000808a,
    0x8000000080008000,
    0x000000000000808b,
    0x0000000080000001,
    0x8000000080008081,
    0x8000000000008009,
    0x000000000000008a,
    0x0000000000000088,
    0x0000000080008009,
    0x000000008000000a,
    0x000000008000808b,
    0x800000000000008b,
    0x8000000000008089,
    0x8000000000008003,
    0x8000000000008002,
    0x8000000000000080,
    0x000000000000800a,
    0x800000008000000a,
    0x8000000080008081,
    0x8000000000008080,
    0x0000000080000001,
    0x8000000080008008,
];
const ROT: [u32; 25] = [
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
];

fn keccak_f(a: &mut [u64; 25]) {
    for rc in RC {
        let mut c = [0u64; 5];
        for x in 0..5 {
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        }
        for x in 0..5 {
            let d = c[(x + 4) % 5] ^ c[(x + 1) % 5].rotate_left(1);
            for y in 0..5 {
                a[x + 5 * y] ^= d;
            }
        }
        let mut b = [0u64; 25];
        for x in 0..5 {
            for y in 0..5 {
                b[y + 5 * ((2 * x + 3 * y) % 5)] = a[x + 5 * y].rotate_left(ROT[x + 5 * y]);
            }
        }
        for x in 0..5 {
            for y in 0..5 {
                a[x + 5 * y] = b[x + 5 * y] ^ (!b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
            }
        }
        a[0] ^= rc;
    }
}

/// SHA3-256 (FIPS 202), for Tor v3 address checksums only.
pub fn sha3_256(data: &[u8]) -> [u8; 32] {
    const RATE: usize = 136;
    let mut st = [0u64; 25];
    let mut msg = data.to_vec();
    msg.push(0x06);
    while !msg.len().is_multiple_of(RATE) {
        msg.push(0);
    }
    if let Some(last) = msg.last_mut() {
        *last |= 0x80;
    }
    for block in msg.chunks(RATE) {
        for (i, lane) in block.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(lane);
            st[i] ^= u64::from_le_bytes(w);
        }
        keccak_f(&mut st);
    }
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&st[i].to_le_bytes());
    }
    out
}

fn onion_checksum(pubkey: &[u8; 32]) -> [u8; 2] {
    let mut data = b".onion checksum".to_vec();
    data.extend_from_slice(pubkey);
    data.push(3);
    let h = sha3_256(&data);
    [h[0], h[1]]
}

/// Core's `ToStringAddr`: the host part of an address.
pub fn addr_to_string(addr: &AddrV2) -> String {
    match addr {
        AddrV2::Ipv4(ip) => ip.to_string(),
        AddrV2::Ipv6(ip) | AddrV2::Cjdns(ip) => ip.to_string(),
        AddrV2::TorV3(pk) => {
            let mut data = pk.to_vec();
            data.extend_from_slice(&onion_checksum(pk));
            data.push(3);
            format!("{}.onion", base32_encode(&data))
        }
        AddrV2::I2p(h) => format!("{}.b32.i2p", base32_encode(h)),
        AddrV2::TorV2(k) => format!("{}.onion", base32_encode(k)),
        AddrV2::Unknown(net, bytes) => format!("unknown-{net}-{}", bytes.len()),
    }
}

/// `host:port`, IPv6 and CJDNS in brackets (Core's `ToStringAddrPort`).
pub fn service_to_string(addr: &AddrV2, port: u16) -> String {
    match addr {
        AddrV2::Ipv6(_) | AddrV2::Cjdns(_) => format!("[{}]:{port}", addr_to_string(addr)),
        _ => format!("{}:{port}", addr_to_string(addr)),
    }
}

/// Parses a literal address (no DNS): IPv4, IPv6 (an IPv4-mapped one
/// becomes IPv4), `.onion` v3 (checksum and version checked), `.b32.i2p`.
/// `fc00::/8` stays IPv6 unless `cjdns` is set (Core treats it as CJDNS only
/// with `-cjdnsreachable`; the fixed-seed files list CJDNS seeds so).
pub fn parse_addr(host: &str, cjdns: bool) -> Option<AddrV2> {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Some(b32) = host.strip_suffix(".onion") {
        let data = base32_decode(b32)?;
        if data.len() != 35 || data.get(34) != Some(&3) {
            return None;
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(data.get(..32)?);
        if data.get(32..34)? != onion_checksum(&pk) {
            return None;
        }
        return Some(AddrV2::TorV3(pk));
    }
    if let Some(b32) = host.strip_suffix(".b32.i2p") {
        if b32.len() != 52 {
            return None;
        }
        let data = base32_decode(b32)?;
        let h: [u8; 32] = data.try_into().ok()?;
        return Some(AddrV2::I2p(h));
    }
    let ip: IpAddr = host.parse().ok()?;
    match netaddr::addr_v2(ip) {
        AddrV2::Ipv6(v6) if cjdns && v6.octets()[0] == 0xfc => Some(AddrV2::Cjdns(v6)),
        a => Some(a),
    }
}

/// Parses `host:port` (`[v6]:port`); a missing port is `default_port`.
pub fn parse_service(s: &str, default_port: u16, cjdns: bool) -> Option<(AddrV2, u16)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((parse_addr(host, cjdns)?, port));
    }
    match s.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((parse_addr(s, cjdns)?, default_port)),
        Some((host, port)) => Some((parse_addr(host, cjdns)?, port.parse().ok()?)),
        None => Some((parse_addr(s, cjdns)?, default_port)),
    }
}

/// Core's `GetNetworkName` for a network class.
pub fn network_name(class: NetClass) -> &'static str {
    match class {
        NetClass::Unroutable => "not_publicly_routable",
        NetClass::Ipv4 => "ipv4",
        NetClass::Ipv6 => "ipv6",
        NetClass::Onion => "onion",
        NetClass::I2p => "i2p",
        NetClass::Cjdns => "cjdns",
    }
}

/// Core's `ParseNetwork` for the names RPCs accept (`ipv4`, `ipv6`,
/// `onion`, `i2p`, `cjdns`; case-insensitive).
pub fn parse_network(name: &str) -> Option<NetClass> {
    match name.to_ascii_lowercase().as_str() {
        "ipv4" => Some(NetClass::Ipv4),
        "ipv6" => Some(NetClass::Ipv6),
        "onion" => Some(NetClass::Onion),
        "i2p" => Some(NetClass::I2p),
        "cjdns" => Some(NetClass::Cjdns),
        _ => None,
    }
}

/// The network an address is on, ignoring routability (what
/// `getnodeaddresses` reports for an entry).
pub fn addr_network(addr: &AddrV2) -> NetClass {
    match addr {
        AddrV2::Ipv4(_) => NetClass::Ipv4,
        AddrV2::Ipv6(ip) if ip.to_ipv4_mapped().is_some() => NetClass::Ipv4,
        AddrV2::Ipv6(_) => NetClass::Ipv6,
        AddrV2::TorV3(_) => NetClass::Onion,
        AddrV2::I2p(_) => NetClass::I2p,
        AddrV2::Cjdns(_) => NetClass::Cjdns,
        _ => NetClass::Unroutable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha3_matches_fips_vectors() {
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(sha3_256(b"")),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
        assert_eq!(
            hex(sha3_256(b"abc")),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        // More than one block (136-byte rate).
        assert_eq!(
            hex(sha3_256(&[0xa3; 200])),
            "79f38adec5c20307a98ef76e8324afbfd46cfd81b22e3973c65fa1bd9de31787"
        );
    }

    #[test]
    fn onion_and_i2p_round_trip_and_checksums_are_checked() {
        // Core's netbase tests: a known v3 address.
        let s = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
        let a = parse_addr(s, false).expect("valid v3 onion");
        assert!(matches!(a, AddrV2::TorV3(_)));
        assert_eq!(addr_to_string(&a), s);
        // One character changed: checksum fails.
        let bad = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscrya.onion";
        assert_eq!(parse_addr(bad, false), None);
        let i2p = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p";
        let a = parse_addr(i2p, false).expect("valid i2p");
        assert_eq!(addr_to_string(&a), i2p);
        assert_eq!(parse_addr("abc.b32.i2p", false), None);
    }

    #[test]
    fn services_parse_with_and_without_ports() {
        assert_eq!(
            parse_service("1.2.3.4:8333", 1, false),
            Some((AddrV2::Ipv4([1, 2, 3, 4].into()), 8333))
        );
        assert_eq!(
            parse_service("1.2.3.4", 18444, false),
            Some((AddrV2::Ipv4([1, 2, 3, 4].into()), 18444))
        );
        let (a, p) = parse_service("[2001:db8::1]:9", 1, false).unwrap();
        assert_eq!((service_to_string(&a, p)), "[2001:db8::1]:9");
        let (a, _) = parse_service("[fc00::1]:9", 1, true).unwrap();
        assert!(matches!(a, AddrV2::Cjdns(_)));
        assert_eq!(parse_service("2001:db8::1", 7, false).unwrap().1, 7);
        assert_eq!(parse_service("1.2.3.4:x", 1, false), None);
        assert_eq!(parse_service("host.example:1", 1, false), None);
        assert_eq!(parse_network("IPv4"), Some(NetClass::Ipv4));
        assert_eq!(parse_network("ipv5"), None);
    }
}
