//! RPC authentication: the `.cookie` file (created when the server starts,
//! removed when it stops), HTTP Basic credential checking in constant time,
//! and the `--rpcallowip` subnets. The cookie is written by the thread that
//! calls [`super::RpcServer::start`]; checks run on the worker threads.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bitcoin::hex::DisplayHex;

pub use crate::netaddr::{SubNet as AllowIp, SubNetError as AllowIpError};

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

/// Writes a fresh cookie to `path` (mode 0600, via a temporary file and a
/// rename, as Core does) and returns the `user:password` line.
pub fn write_cookie(path: &Path) -> io::Result<String> {
    let secret = format!("{COOKIE_USER}:{}", random_bytes(32)?.to_lower_hex_string());
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
