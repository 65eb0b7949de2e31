//! Where outbound connections go and how they get there: [`ConnectTarget`]
//! (an IP address, a host name or a Tor onion service, with its port) and
//! [`dial`], which opens a TCP connection to one, directly or through a
//! SOCKS5 proxy ([`Proxy`], Core's `-proxy`/`-onion`).
//!
//! * **Host names** are resolved when they are dialled, never at start:
//!   directly with the system resolver (every address it gives is tried in
//!   order), or through the proxy, which resolves them (SOCKS5 `ATYP` 3,
//!   domain name), so no DNS query leaves this machine.
//! * **Onion services** are only ever dialled through a proxy.
//! * **SOCKS5** is RFC 1928 with RFC 1929 username/password authentication.
//!   With [`Proxy::randomize_credentials`] (Core's `-proxyrandomize`, on by
//!   default) every connection offers fresh credentials — a random
//!   per-process prefix and a counter, as Core's
//!   `TorStreamIsolationCredentialsGenerator` — so Tor puts each on its own
//!   circuit (stream isolation). Unlike Core, which always sends a domain
//!   name, an IP target is sent as an IPv4/IPv6 address (`ATYP` 1/4).
//! * Errors are typed ([`ProxyError`], inside the returned
//!   `std::io::Error`), and proxy replies carry Core's messages
//!   (`Socks5ErrorString`), Tor's onion-service codes included.
//!
//! Pure networking, no node state: it runs on whatever thread dials (the
//! `connmgr` thread), blocking for at most the connect timeout plus the
//! SOCKS5 reply timeout.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use bitcoin::p2p::address::AddrV2;

use crate::addrtext;
use crate::netaddr::{addr_v2, net_class, NetClass};

/// Core's `DEFAULT_TOR_SOCKS_PORT`: the port of `--proxy`/`--onion` when
/// none is given.
pub const DEFAULT_TOR_SOCKS_PORT: u16 = 9050;

/// How long each read of the proxy's answers may take (Core's
/// `g_socks5_recv_timeout`, 20 s): a Tor circuit to an onion service is
/// slow to build.
pub const SOCKS5_RECV_TIMEOUT: Duration = Duration::from_secs(20);

/// Where an outbound connection goes. Parsed from `--connect`,
/// `--addnode`, the `addnode` RPC, or made from an address-manager entry
/// ([`ConnectTarget::from_addr_v2`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectTarget {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A DNS name and port, resolved when dialled.
    Host(String, u16),
    /// A Tor v3 onion service (`<56 base32 chars>.onion`, lower case) and
    /// port; reachable only through a proxy.
    Onion(String, u16),
}

impl From<SocketAddr> for ConnectTarget {
    fn from(a: SocketAddr) -> ConnectTarget {
        ConnectTarget::Addr(a)
    }
}

impl fmt::Display for ConnectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectTarget::Addr(a) => write!(f, "{a}"),
            ConnectTarget::Host(h, p) | ConnectTarget::Onion(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A `HOST[:PORT]` value that names nothing dialable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot parse address '{}' (expected IP[:PORT], HOST[:PORT] or [IPv6][:PORT])",
            self.0
        )
    }
}

impl std::error::Error for TargetError {}

impl ConnectTarget {
    /// Parses `IP`, `IP:PORT`, `[IPv6]:PORT`, `HOST` or `HOST:PORT`
    /// (`default_port` when none is given). A name ending in `.onion` must
    /// be a valid v3 onion address; other names must be valid DNS names
    /// (letters, digits, hyphens; labels of 1 to 63; a top-level label that
    /// is not all digits, so `300.1.1.1` is no name).
    pub fn parse(s: &str, default_port: u16) -> Result<ConnectTarget, TargetError> {
        let err = || TargetError(s.to_string());
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(ConnectTarget::Addr(a));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ConnectTarget::Addr(SocketAddr::new(ip, default_port)));
        }
        if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let ip = v6.parse::<std::net::Ipv6Addr>().map_err(|_| err())?;
            return Ok(ConnectTarget::Addr(SocketAddr::new(
                ip.into(),
                default_port,
            )));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| err())?),
            None => (s, default_port),
        };
        let host = host.to_ascii_lowercase();
        if host.ends_with(".onion") {
            if onion_pubkey(&host).is_none() {
                return Err(err());
            }
            return Ok(ConnectTarget::Onion(host, port));
        }
        if !is_dns_name(&host) {
            return Err(err());
        }
        Ok(ConnectTarget::Host(host, port))
    }

    /// The target for an address-manager entry: IPv4/IPv6 as addresses,
    /// Tor v3 as its onion name. `None` for I2P, CJDNS and unknown
    /// networks, which strand cannot reach.
    pub fn from_addr_v2(addr: &AddrV2, port: u16) -> Option<ConnectTarget> {
        match addr {
            AddrV2::Ipv4(ip) => Some(ConnectTarget::Addr(SocketAddr::new((*ip).into(), port))),
            AddrV2::Ipv6(ip) => Some(ConnectTarget::Addr(SocketAddr::new((*ip).into(), port))),
            AddrV2::TorV3(key) => Some(ConnectTarget::Onion(onion_name(key), port)),
            _ => None,
        }
    }

    /// The port dialled.
    pub fn port(&self) -> u16 {
        match self {
            ConnectTarget::Addr(a) => a.port(),
            ConnectTarget::Host(_, p) | ConnectTarget::Onion(_, p) => *p,
        }
    }

    /// The IP address and port, for an [`ConnectTarget::Addr`].
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            ConnectTarget::Addr(a) => Some(*a),
            _ => None,
        }
    }

    /// The network the target is on, as far as it is known before
    /// resolution: an address's class (loopback unroutable), onion for
    /// onion services, `None` for host names.
    pub fn net_class(&self) -> Option<NetClass> {
        match self {
            ConnectTarget::Addr(a) => Some(net_class(&addr_v2(a.ip()), false)),
            ConnectTarget::Host(..) => None,
            ConnectTarget::Onion(..) => Some(NetClass::Onion),
        }
    }
}

/// Whether `host` is a DNS name strand will try to resolve.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// `<base32(key | checksum | version)>.onion` (Core's `OnionToString`).
pub fn onion_name(key: &[u8; 32]) -> String {
    addrtext::addr_to_string(&AddrV2::TorV3(*key))
}

/// The public key of a valid v3 onion name (56 base32 characters,
/// version 3, matching checksum), lower case.
pub fn onion_pubkey(name: &str) -> Option<[u8; 32]> {
    match addrtext::parse_addr(name, false)? {
        AddrV2::TorV3(key) => Some(key),
        _ => None,
    }
}

/// A SOCKS5 proxy (Core's `Proxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Where the proxy listens.
    pub addr: SocketAddr,
    /// Fresh credentials for every connection (Tor stream isolation,
    /// Core's `-proxyrandomize`, default on).
    pub randomize_credentials: bool,
}

impl Proxy {
    /// A proxy at `addr` with stream isolation on (Core's default).
    pub fn new(addr: SocketAddr) -> Proxy {
        Proxy {
            addr,
            randomize_credentials: true,
        }
    }
}

/// Why a dial failed for a reason other than plain socket I/O. Carried
/// inside the `std::io::Error` [`dial`] returns (`get_ref` +
/// `downcast_ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// An onion service, and no proxy to reach it.
    NoProxyForOnion,
    /// A host name resolved to no address.
    NoAddress(String),
    /// The proxy answered with another protocol version than SOCKS5.
    BadVersion(u8),
    /// The proxy wants an authentication method we did not offer.
    BadAuthMethod(u8),
    /// The proxy refused our username/password.
    AuthFailed,
    /// The proxy could not connect to the target (the reply code, with
    /// Core's message for it).
    Reply(u8),
    /// The proxy's answer is not valid SOCKS5.
    Malformed(&'static str),
    /// The host name is longer than SOCKS5's 255 bytes.
    NameTooLong,
}

impl ProxyError {
    /// Core's `Socks5ErrorString` for a reply code.
    pub fn reply_message(code: u8) -> String {
        match code {
            0x01 => "general failure".into(),
            0x02 => "connection not allowed".into(),
            0x03 => "network unreachable".into(),
            0x04 => "host unreachable".into(),
            0x05 => "connection refused".into(),
            0x06 => "TTL expired".into(),
            0x07 => "protocol error".into(),
            0x08 => "address type not supported".into(),
            0xf0 => "onion service descriptor can not be found".into(),
            0xf1 => "onion service descriptor is invalid".into(),
            0xf2 => "onion service introduction failed".into(),
            0xf3 => "onion service rendezvous failed".into(),
            0xf4 => "onion service missing client authorization".into(),
            0xf5 => "onion service wrong client authorization".into(),
            0xf6 => "onion service invalid address".into(),
            0xf7 => "onion service introduction timed out".into(),
            other => format!("unknown (0x{other:02x})"),
        }
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            ProxyError::Reply(0x05) => io::ErrorKind::ConnectionRefused,
            ProxyError::Reply(_) => io::ErrorKind::Other,
            ProxyError::NoProxyForOnion => io::ErrorKind::Unsupported,
            ProxyError::NoAddress(_) => io::ErrorKind::NotFound,
            ProxyError::NameTooLong => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NoProxyForOnion => {
                write!(f, "onion services need a proxy (--proxy or --onion)")
            }
            ProxyError::NoAddress(h) => write!(f, "{h} resolves to no address"),
            ProxyError::BadVersion(v) => write!(f, "proxy speaks SOCKS version {v}, not 5"),
            ProxyError::BadAuthMethod(m) => {
                write!(f, "proxy requested wrong authentication method {m:02x}")
            }
            ProxyError::AuthFailed => write!(f, "proxy authentication unsuccessful"),
            ProxyError::Reply(c) => write!(f, "proxy: {}", ProxyError::reply_message(*c)),
            ProxyError::Malformed(what) => write!(f, "malformed proxy response ({what})"),
            ProxyError::NameTooLong => write!(f, "host name too long for SOCKS5"),
        }
    }
}

impl std::error::Error for ProxyError {}

impl From<ProxyError> for io::Error {
    fn from(e: ProxyError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// The typed cause of a [`dial`] error, if it has one.
pub fn proxy_error(e: &io::Error) -> Option<&ProxyError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ProxyError>())
}

/// Credentials for Tor stream isolation: `<16 hex digits>-<counter>`,
/// user and password alike (Core's generator).
fn isolation_credentials() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| format!("{:016x}-", crate::util::random_nonce()));
    format!("{prefix}{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Opens a TCP connection to `target`: through `proxy` if given (the
/// proxy resolves host names), else directly (host names through the
/// system resolver, each address tried in turn; onion services fail with
/// [`ProxyError::NoProxyForOnion`]). `timeout` bounds each TCP connect;
/// the proxy's answers get [`SOCKS5_RECV_TIMEOUT`] each.
pub fn dial(
    target: &ConnectTarget,
    proxy: Option<&Proxy>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    if let Some(proxy) = proxy {
        let mut stream = TcpStream::connect_timeout(&proxy.addr, timeout)?;
        let creds = proxy.randomize_credentials.then(isolation_credentials);
        let auth = creds.as_deref().map(|c| (c, c));
        stream.set_read_timeout(Some(SOCKS5_RECV_TIMEOUT))?;
        stream.set_write_timeout(Some(SOCKS5_RECV_TIMEOUT))?;
        socks5_connect(&mut stream, target, auth)?;
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        log::debug!("SOCKS5 connected {target} through {}", proxy.addr);
        return Ok(stream);
    }
    match target {
        ConnectTarget::Addr(a) => TcpStream::connect_timeout(a, timeout),
        ConnectTarget::Onion(..) => Err(ProxyError::NoProxyForOnion.into()),
        ConnectTarget::Host(host, port) => {
            let mut last = None;
            for a in (host.as_str(), *port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&a, timeout) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| ProxyError::NoAddress(host.clone()).into()))
        }
    }
}

/// The SOCKS5 exchange on a connected `stream`: greeting (no
/// authentication, or username/password when `auth` is given), then
/// `CONNECT` to `target`. On success the stream carries the target's bytes.
pub fn socks5_connect(
    stream: &mut (impl Read + Write),
    target: &ConnectTarget,
    auth: Option<(&str, &str)>,
) -> io::Result<()> {
    const VERSION: u8 = 0x05;
    const NO_AUTH: u8 = 0x00;
    const USER_PASS: u8 = 0x02;
    const CONNECT: u8 = 0x01;
    // VER CMD RSV ATYP DST.ADDR DST.PORT
    let mut request = vec![VERSION, CONNECT, 0x00];
    match target {
        ConnectTarget::Addr(SocketAddr::V4(a)) => {
            request.push(0x01);
            request.extend_from_slice(&a.ip().octets());
        }
        ConnectTarget::Addr(SocketAddr::V6(a)) => {
            request.push(0x04);
            request.extend_from_slice(&a.ip().octets());
        }
        ConnectTarget::Host(name, _) | ConnectTarget::Onion(name, _) => {
            let len = u8::try_from(name.len()).map_err(|_| ProxyError::NameTooLong)?;
            request.push(0x03);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&target.port().to_be_bytes());
    let greeting: &[u8] = match auth {
        Some(_) => &[VERSION, 0x02, NO_AUTH, USER_PASS],
        None => &[VERSION, 0x01, NO_AUTH],
    };
    stream.write_all(greeting)?;
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply)?;
    if reply[0] != VERSION {
        return Err(ProxyError::BadVersion(reply[0]).into());
    }
    match (reply[1], auth) {
        (USER_PASS, Some((user, pass))) => {
            let (Ok(ul), Ok(pl)) = (u8::try_from(user.len()), u8::try_from(pass.len())) else {
                return Err(ProxyError::NameTooLong.into());
            };
            let mut msg = vec![0x01, ul];
            msg.extend_from_slice(user.as_bytes());
            msg.push(pl);
            msg.extend_from_slice(pass.as_bytes());
            stream.write_all(&msg)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status)?;
            if status != [0x01, 0x00] {
                return Err(ProxyError::AuthFailed.into());
            }
        }
        (NO_AUTH, _) => {}
        (other, _) => return Err(ProxyError::BadAuthMethod(other).into()),
    }
    stream.write_all(&request)?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head)?;
    if head[0] != VERSION {
        return Err(ProxyError::BadVersion(head[0]).into());
    }
    if head[1] != 0x00 {
        return Err(ProxyError::Reply(head[1]).into());
    }
    if head[2] != 0x00 {
        return Err(ProxyError::Malformed("reserved byte not zero").into());
    }
    let addr_len = match head[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => {
            let mut n = [0u8; 1];
            stream.read_exact(&mut n)?;
            usize::from(n[0])
        }
        _ => return Err(ProxyError::Malformed("unknown address type").into()),
    };
    // The bound address and port: read and ignored, as Core does.
    let mut bound = vec![0u8; addr_len + 2];
    stream.read_exact(&mut bound)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn onion_names_round_trip_with_checksum() {
        // The Tor Project's own onion service.
        let name = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
        let key = onion_pubkey(name).expect("valid v3 address");
        assert_eq!(onion_name(&key), name);
        assert_eq!(
            ConnectTarget::from_addr_v2(&AddrV2::TorV3(key), 8333),
            Some(ConnectTarget::Onion(name.into(), 8333))
        );
        // One character changed: the checksum no longer matches.
        let bad = name.replacen('2', "3", 1);
        assert_eq!(onion_pubkey(&bad), None);
        assert_eq!(onion_pubkey("abc.onion"), None);
    }

    #[test]
    fn targets_parse_with_default_ports() {
        let p = |s| ConnectTarget::parse(s, 18444);
        assert_eq!(
            p("1.2.3.4"),
            Ok(ConnectTarget::Addr("1.2.3.4:18444".parse().unwrap()))
        );
        assert_eq!(
            p("1.2.3.4:5"),
            Ok(ConnectTarget::Addr("1.2.3.4:5".parse().unwrap()))
        );
        assert_eq!(
            p("[::1]:7"),
            Ok(ConnectTarget::Addr("[::1]:7".parse().unwrap()))
        );
        assert_eq!(
            p("[::1]"),
            Ok(ConnectTarget::Addr("[::1]:18444".parse().unwrap()))
        );
        assert_eq!(
            p("::1"),
            Ok(ConnectTarget::Addr("[::1]:18444".parse().unwrap()))
        );
        assert_eq!(
            p("localhost"),
            Ok(ConnectTarget::Host("localhost".into(), 18444))
        );
        assert_eq!(
            p("Seed.Example.org:8333"),
            Ok(ConnectTarget::Host("seed.example.org".into(), 8333))
        );
        for bad in [
            "",
            "300.1.1.1:5",
            "1.2.3.4:99999",
            "host:",
            "bad host",
            "-x.example",
            "a..b",
            "x.onion",
            "[nope]:1",
            "example.com:port",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(p("localhost:1").unwrap().to_string(), "localhost:1");
        assert_eq!(p("localhost").unwrap().net_class(), None);
    }

    /// A one-shot SOCKS5 server answering with `script`'s bytes after
    /// reading `expect_read` bytes; returns what it read.
    fn scripted_proxy(
        replies: Vec<(usize, Vec<u8>)>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut seen = Vec::new();
            for (n, reply) in replies {
                let mut buf = vec![0u8; n];
                if s.read_exact(&mut buf).is_err() {
                    break;
                }
                seen.extend_from_slice(&buf);
                s.write_all(&reply).unwrap();
            }
            seen
        });
        (addr, h)
    }

    #[test]
    fn socks5_exchange_with_credentials_and_domain_name() {
        let target = ConnectTarget::Host("somehost.example".into(), 18444);
        // greeting (4) → choose user/pass; auth (1+1+3+1+3) → ok;
        // connect (4+1+16+2) → success, bound IPv4.
        let (addr, h) = scripted_proxy(vec![
            (4, vec![5, 2]),
            (9, vec![1, 0]),
            (23, vec![5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]),
        ]);
        let proxy = Proxy {
            addr,
            randomize_credentials: false,
        };
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        socks5_connect(&mut s, &target, Some(("abc", "def"))).unwrap();
        let seen = h.join().unwrap();
        assert_eq!(&seen[..4], &[5, 2, 0, 2]);
        assert_eq!(&seen[4..13], b"\x01\x03abc\x03def");
        assert_eq!(&seen[13..18], &[5, 1, 0, 3, 16]);
        assert_eq!(&seen[18..34], b"somehost.example");
        assert_eq!(&seen[34..36], &18444u16.to_be_bytes());
    }

    #[test]
    fn proxy_errors_are_typed() {
        let target = ConnectTarget::Addr("10.1.2.3:8333".parse().unwrap());
        let run = |replies: Vec<(usize, Vec<u8>)>| {
            let (addr, h) = scripted_proxy(replies);
            let proxy = Proxy {
                addr,
                randomize_credentials: false,
            };
            let e = dial(&target, Some(&proxy), Duration::from_secs(5)).unwrap_err();
            h.join().unwrap();
            proxy_error(&e).cloned()
        };
        // Connection refused by the proxy (reply 5), IPv4 request.
        assert_eq!(
            run(vec![
                (3, vec![5, 0]),
                (10, vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            ]),
            Some(ProxyError::Reply(5))
        );
        // A SOCKS4 server.
        assert_eq!(run(vec![(3, vec![4, 0])]), Some(ProxyError::BadVersion(4)));
        // A method we did not offer.
        assert_eq!(
            run(vec![(3, vec![5, 0xff])]),
            Some(ProxyError::BadAuthMethod(0xff))
        );
        // Garbage address type in the reply.
        assert_eq!(
            run(vec![(3, vec![5, 0]), (10, vec![5, 0, 0, 9])]),
            Some(ProxyError::Malformed("unknown address type"))
        );
        assert_eq!(
            ProxyError::Reply(0xf0).to_string(),
            "proxy: onion service descriptor can not be found"
        );
        // No proxy, onion target.
        let onion = ConnectTarget::Onion(
            "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion".into(),
            8333,
        );
        let e = dial(&onion, None, Duration::from_secs(1)).unwrap_err();
        assert_eq!(proxy_error(&e), Some(&ProxyError::NoProxyForOnion));
    }

    #[test]
    fn isolation_credentials_differ_per_connection() {
        let (a, b) = (isolation_credentials(), isolation_credentials());
        assert_ne!(a, b);
        assert_eq!(
            a.split_once('-').map(|x| x.0),
            b.split_once('-').map(|x| x.0)
        );
        assert_eq!(a.split_once('-').map(|x| x.0.len()), Some(16));
    }
}
