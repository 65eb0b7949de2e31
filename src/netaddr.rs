//! IP subnets ([`SubNet`], Core's `CSubNet`): parsing, display and
//! membership. An address filter, not an RPC or peer concept: the RPC
//! server's `--rpcallowip` list and the peer table's bans both use it. Pure
//! data, used from any thread.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
