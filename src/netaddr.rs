//! IP subnets ([`SubNet`], Core's `CSubNet`): parsing, display and
//! membership. An address filter, not an RPC or peer concept: the RPC
//! server's `--rpcallowip` list and the peer table's bans both use it.
//! Also the address classification Core's `CNetAddr` and `NetGroupManager`
//! do: [`net_class`], [`is_routable`] and [`net_group`], used by the
//! address manager (bucket positions), the connection manager (one
//! outbound peer per group) and inbound eviction (protect and evict by
//! group). Pure data, used from any thread.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use bitcoin::p2p::address::AddrV2;

/// Core's `Network` enum, the first byte of a [`net_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum NetClass {
    /// Not reachable on any network (`NET_UNROUTABLE`): private, local,
    /// documentation ranges and unknown BIP155 networks.
    Unroutable = 0,
    /// IPv4, and IPv6 forms that embed an IPv4 address (`NET_IPV4`).
    Ipv4 = 1,
    /// IPv6 (`NET_IPV6`).
    Ipv6 = 2,
    /// Tor onion services (`NET_ONION`).
    Onion = 3,
    /// I2P (`NET_I2P`).
    I2p = 4,
    /// CJDNS (`NET_CJDNS`).
    Cjdns = 5,
}

/// The IPv4 address an IPv6 address embeds, for the forms Core's
/// `HasLinkedIPv4` knows: IPv4-mapped (`::ffff:0:0/96`), 6to4
/// (`2002::/16`) and Teredo (`2001::/32`, address inverted).
fn linked_ipv4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    if o[..10] == [0; 10] && o[10] == 0xff && o[11] == 0xff {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if o[0] == 0x20 && o[1] == 0x02 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    if o[..4] == [0x20, 0x01, 0, 0] {
        return Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    None
}

/// Whether an IPv4 address is publicly routable (Core's `IsRoutable`
/// minus the IPv6 rules): not RFC1918, RFC2544, RFC3927, RFC6598, RFC5737,
/// 0/8, 127/8, multicast or reserved. `loopback_routable` makes 127/8
/// routable, which strand does on regtest so nodes on one machine find
/// each other through gossip.
fn ipv4_routable(ip: Ipv4Addr, loopback_routable: bool) -> bool {
    let o = ip.octets();
    if o[0] == 127 {
        return loopback_routable;
    }
    !(o[0] == 0
        || o[0] == 10
        || (o[0] == 172 && (16..32).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || (o[0] == 169 && o[1] == 254)
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || o[0] >= 224)
}

/// Whether an IPv6 address (with no embedded IPv4) is routable: not
/// unspecified, loopback (unless `loopback_routable`), RFC4193 unique
/// local, RFC4843/RFC7343 ORCHID, RFC4862 link local, RFC3849
/// documentation or multicast.
fn ipv6_routable(ip: &Ipv6Addr, loopback_routable: bool) -> bool {
    if ip.is_loopback() {
        return loopback_routable;
    }
    let o = ip.octets();
    !(ip.is_unspecified()
        || (o[0] & 0xfe) == 0xfc
        || (o[0] == 0x20 && o[1] == 0x01 && o[2] == 0x00 && (o[3] & 0xf0) == 0x10)
        || (o[0] == 0x20 && o[1] == 0x01 && o[2] == 0x00 && (o[3] & 0xf0) == 0x20)
        || (o[0] == 0xfe && (o[1] & 0xc0) == 0x80)
        || (o[0] == 0x20 && o[1] == 0x01 && o[2] == 0x0d && o[3] == 0xb8)
        || o[0] == 0xff)
}

/// Whether `addr` can be reached and is worth gossiping (Core's
/// `CNetAddr::IsRoutable`). See [`ipv4_routable`] for `loopback_routable`.
pub fn is_routable(addr: &AddrV2, loopback_routable: bool) -> bool {
    match addr {
        AddrV2::Ipv4(ip) => ipv4_routable(*ip, loopback_routable),
        AddrV2::Ipv6(ip) => match linked_ipv4(ip) {
            Some(v4) => ipv4_routable(v4, loopback_routable),
            None => ipv6_routable(ip, loopback_routable),
        },
        AddrV2::TorV3(_) | AddrV2::I2p(_) | AddrV2::Cjdns(_) => true,
        _ => false,
    }
}

/// The network an address belongs to (Core's `GetNetClass`).
pub fn net_class(addr: &AddrV2, loopback_routable: bool) -> NetClass {
    if !is_routable(addr, loopback_routable) {
        return NetClass::Unroutable;
    }
    match addr {
        AddrV2::Ipv4(_) => NetClass::Ipv4,
        AddrV2::Ipv6(ip) if linked_ipv4(ip).is_some() => NetClass::Ipv4,
        AddrV2::Ipv6(_) => NetClass::Ipv6,
        AddrV2::TorV3(_) => NetClass::Onion,
        AddrV2::I2p(_) => NetClass::I2p,
        AddrV2::Cjdns(_) => NetClass::Cjdns,
        _ => NetClass::Unroutable,
    }
}

/// The network group of an address (Core's `NetGroupManager::GetGroup`
/// without an ASMap): the network class followed by the IPv4 /16, the IPv6
/// /32 (/36 for Hurricane Electric's 2001:470::/32), or the first 4 bits of
/// an onion or I2P address (12 for CJDNS). All unroutable addresses share
/// one group. Peers in one group are treated as one operator: at most one
/// outbound connection per group, bucket positions by group.
pub fn net_group(addr: &AddrV2, loopback_routable: bool) -> Vec<u8> {
    let class = net_class(addr, loopback_routable);
    if class == NetClass::Unroutable {
        return vec![NetClass::Unroutable as u8];
    }
    let (bytes, bits): (Vec<u8>, usize) = match addr {
        AddrV2::Ipv4(ip) => (ip.octets()[..2].to_vec(), 16),
        AddrV2::Ipv6(ip) => match linked_ipv4(ip) {
            Some(v4) => (v4.octets()[..2].to_vec(), 16),
            None => {
                let o = ip.octets();
                let he_net = o[..4] == [0x20, 0x01, 0x04, 0x70];
                (o.to_vec(), if he_net { 36 } else { 32 })
            }
        },
        AddrV2::TorV3(k) => (k.to_vec(), 4),
        AddrV2::I2p(k) => (k.to_vec(), 4),
        AddrV2::Cjdns(ip) => (ip.octets().to_vec(), 12),
        _ => (Vec::new(), 0),
    };
    let mut group = vec![class as u8];
    let whole = bits / 8;
    group.extend_from_slice(&bytes[..whole.min(bytes.len())]);
    let rest = bits % 8;
    if rest > 0 {
        if let Some(b) = bytes.get(whole) {
            group.push(b | ((1u8 << (8 - rest)) - 1));
        }
    }
    group
}

/// The [`AddrV2`] form of an IP address (IPv4-mapped IPv6 becomes IPv4).
pub fn addr_v2(ip: IpAddr) -> AddrV2 {
    match ip {
        IpAddr::V4(v4) => AddrV2::Ipv4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => AddrV2::Ipv4(v4),
            None => AddrV2::Ipv6(v6),
        },
    }
}

/// An IP subnet (Core's `CSubNet`): `1.2.3.4`, `1.2.3.0/24`,
/// `1.2.3.0/255.255.255.0`, `::1`, `fd00::/8`. Used by `--rpcallowip` and
/// by bans (`setban`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubNet {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

/// A value that is not an IP or subnet (Core's message names `-rpcallowip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubNetError(pub String);

impl fmt::Display for SubNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid -rpcallowip subnet specification: {}", self.0)
    }
}

impl std::error::Error for SubNetError {}

impl SubNet {
    /// 127.0.0.0/8 and ::1, which Core always allows.
    pub fn loopback() -> Vec<SubNet> {
        vec![
            SubNet {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            SubNet {
                addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    /// Whether `ip` is inside this subnet (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix.min(32)))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix.min(128)))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for SubNet {
    type Err = SubNetError;

    fn from_str(s: &str) -> Result<SubNet, SubNetError> {
        let err = || SubNetError(s.to_string());
        let (ip, mask) = match s.split_once('/') {
            Some((ip, mask)) => (ip, Some(mask)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match mask {
            None => max,
            Some(m) if m.bytes().all(|b| b.is_ascii_digit()) && !m.is_empty() => {
                let p: u8 = m.parse().map_err(|_| err())?;
                if p > max {
                    return Err(err());
                }
                p
            }
            Some(m) => {
                // A netmask such as 255.255.255.0: must be contiguous ones.
                let mask: IpAddr = m.parse().map_err(|_| err())?;
                let (bits, ones) = match mask {
                    IpAddr::V4(v) if addr.is_ipv4() => {
                        let n = u32::from(v);
                        (n.count_ones(), n.leading_ones())
                    }
                    IpAddr::V6(v) if addr.is_ipv6() => {
                        let n = u128::from(v);
                        (n.count_ones(), n.leading_ones())
                    }
                    _ => return Err(err()),
                };
                if bits != ones {
                    return Err(err());
                }
                bits as u8
            }
        };
        Ok(SubNet { addr, prefix })
    }
}

impl fmt::Display for SubNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> AddrV2 {
        addr_v2(s.parse().unwrap())
    }

    #[test]
    fn groups_follow_core() {
        assert_eq!(net_group(&v4("1.2.3.4"), false), vec![1, 1, 2]);
        assert_eq!(
            net_group(&v4("1.2.200.9"), false),
            net_group(&v4("1.2.3.4"), false)
        );
        assert_ne!(
            net_group(&v4("1.3.3.4"), false),
            net_group(&v4("1.2.3.4"), false)
        );
        // Mapped, 6to4 and Teredo share the IPv4 group (Core's netbase tests).
        assert_eq!(net_group(&v4("::ffff:1.2.3.4"), false), vec![1, 1, 2]);
        assert_eq!(net_group(&v4("2002:102:304:9999::"), false), vec![1, 1, 2]);
        assert_eq!(
            net_group(&v4("2001:0:9999:9999:9999:9999:fefd:fcfb"), false),
            vec![1, 1, 2]
        );
        assert_eq!(
            net_group(&v4("2001:2001:9999::"), false),
            vec![2, 0x20, 0x01, 0x20, 0x01]
        );
        // Hurricane Electric: /36.
        assert_eq!(
            net_group(&v4("2001:470:abcd:9999::"), false),
            vec![2, 0x20, 0x01, 0x04, 0x70, 0xaf]
        );
        // Unroutable ones share one group.
        assert_eq!(net_group(&v4("127.0.0.1"), false), vec![0]);
        assert_eq!(net_group(&v4("192.168.1.1"), false), vec![0]);
        assert_eq!(net_group(&v4("::1"), false), vec![0]);
        // Loopback made routable (regtest): /16 groups.
        assert_eq!(net_group(&v4("127.3.0.1"), true), vec![1, 127, 3]);
        assert_eq!(net_group(&AddrV2::TorV3([0x5a; 32]), false), vec![3, 0x5f]);
    }

    #[test]
    fn routability_follows_core() {
        for a in [
            "10.0.0.1",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "0.1.2.3",
            "224.0.0.1",
            "fc00::1",
            "fe80::1",
            "2001:db8::1",
            "::",
        ] {
            assert!(!is_routable(&v4(a), true), "{a}");
        }
        for a in ["1.2.3.4", "8.8.8.8", "2a01:4f8::1"] {
            assert!(is_routable(&v4(a), false), "{a}");
        }
        assert!(!is_routable(&v4("127.0.0.1"), false));
        assert!(is_routable(&v4("127.0.0.1"), true));
    }

    #[test]
    fn subnet_parsing_and_matching() {
        let a: SubNet = "10.1.0.0/16".parse().unwrap();
        assert!(a.contains("10.1.200.3".parse().unwrap()));
        assert!(!a.contains("10.2.0.1".parse().unwrap()));
        assert!(a.contains("::ffff:10.1.0.9".parse().unwrap()));
        let b: SubNet = "192.168.1.0/255.255.255.0".parse().unwrap();
        assert_eq!(b.prefix, 24);
        let c: SubNet = "1.2.3.4".parse().unwrap();
        assert_eq!(c.prefix, 32);
        assert!(c.contains("1.2.3.4".parse().unwrap()));
        let d: SubNet = "fd00::/8".parse().unwrap();
        assert!(d.contains("fd12::1".parse().unwrap()));
        assert!(!d.contains("10.0.0.1".parse().unwrap()));
        let all: SubNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/255.0.255.0",
            "x/8",
            "::1/129",
        ] {
            assert!(bad.parse::<SubNet>().is_err(), "{bad}");
        }
    }
}
