//! RPC authentication: the `.cookie` file (created when the server starts,
//! removed when it stops), HTTP Basic credential checking in constant time,
//! and the `--rpcallowip` subnets. The cookie is written by the thread that
//! calls [`super::RpcServer::start`]; checks run on the worker threads.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The user name of cookie authentication (Bitcoin Core's).
pub const COOKIE_USER: &str = "__cookie__";

/// How clients authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Cookie authentication: the server writes `__cookie__:<64 hex>` to
    /// this file (mode 0600) at start and removes it at stop.
    Cookie(PathBuf),
    /// A fixed user name and password (`--rpcuser`/`--rpcpassword`).
    UserPass(String, String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Cookie(p) => f.debug_tuple("Cookie").field(p).finish(),
            Auth::UserPass(u, _) => f.debug_tuple("UserPass").field(u).field(&"***").finish(),
        }
    }
}

/// `count` random bytes from the OS.
pub fn random_bytes(count: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; count];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a fresh cookie to `path` (mode 0600, via a temporary file and a
/// rename, as Core does) and returns the `user:password` line.
pub fn write_cookie(path: &Path) -> io::Result<String> {
    let secret = format!("{COOKIE_USER}:{}", to_hex(&random_bytes(32)?));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    Ok(secret)
}

/// Reads a cookie file: its single `user:password` line.
pub fn read_cookie(path: &Path) -> io::Result<(String, String)> {
    let text = fs::read_to_string(path)?;
    let line = text.lines().next().unwrap_or_default();
    match line.split_once(':') {
        Some((u, p)) => Ok((u.to_string(), p.to_string())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed cookie file {}", path.display()),
        )),
    }
}

/// Compares two byte strings in time independent of where they differ
/// (lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Checks an `Authorization` header value against `expected`
/// (`user:password`).
pub fn check_basic(header: &str, expected: &str) -> bool {
    let Some(encoded) = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
    else {
        return false;
    };
    match base64_decode(encoded.trim()) {
        Some(decoded) => constant_time_eq(&decoded, expected.as_bytes()),
        None => false,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional); `None` if malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

/// A subnet for `--rpcallowip`: `1.2.3.4`, `1.2.3.0/24`,
/// `1.2.3.0/255.255.255.0`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowIp {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

/// An `--rpcallowip` value that is not an IP or subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowIpError(pub String);

impl fmt::Display for AllowIpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid -rpcallowip subnet specification: {}", self.0)
    }
}

impl std::error::Error for AllowIpError {}

impl AllowIp {
    /// 127.0.0.0/8 and ::1, which Core always allows.
    pub fn loopback() -> Vec<AllowIp> {
        vec![
            AllowIp {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            AllowIp {
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

impl FromStr for AllowIp {
    type Err = AllowIpError;

    fn from_str(s: &str) -> Result<AllowIp, AllowIpError> {
        let err = || AllowIpError(s.to_string());
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
        Ok(AllowIp { addr, prefix })
    }
}

impl fmt::Display for AllowIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "__cookie__:00ff",
            "user:pässword",
        ] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).as_deref(), Some(s.as_bytes()), "{s}");
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_decode("!!!"), None);
    }

    #[test]
    fn basic_auth_check() {
        assert!(check_basic("Basic dXNlcjpwYXNz", "user:pass"));
        assert!(!check_basic("Basic dXNlcjpwYXNz", "user:pasS"));
        assert!(!check_basic("Bearer dXNlcjpwYXNz", "user:pass"));
        assert!(!check_basic("Basic ???", "user:pass"));
    }

    #[test]
    fn allow_ip_parsing_and_matching() {
        let a: AllowIp = "10.1.0.0/16".parse().unwrap();
        assert!(a.contains("10.1.200.3".parse().unwrap()));
        assert!(!a.contains("10.2.0.1".parse().unwrap()));
        assert!(a.contains("::ffff:10.1.0.9".parse().unwrap()));
        let b: AllowIp = "192.168.1.0/255.255.255.0".parse().unwrap();
        assert_eq!(b.prefix, 24);
        let c: AllowIp = "1.2.3.4".parse().unwrap();
        assert_eq!(c.prefix, 32);
        assert!(c.contains("1.2.3.4".parse().unwrap()));
        let d: AllowIp = "fd00::/8".parse().unwrap();
        assert!(d.contains("fd12::1".parse().unwrap()));
        assert!(!d.contains("10.0.0.1".parse().unwrap()));
        let all: AllowIp = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/255.0.255.0",
            "x/8",
            "::1/129",
        ] {
            assert!(bad.parse::<AllowIp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cookie_file_mode_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".cookie");
        let line = write_cookie(&p).unwrap();
        let (u, pw) = read_cookie(&p).unwrap();
        assert_eq!(u, COOKIE_USER);
        assert_eq!(pw.len(), 64);
        assert!(pw.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(line, format!("{u}:{pw}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_ne!(write_cookie(&p).unwrap(), line, "a fresh secret each time");
    }
}
