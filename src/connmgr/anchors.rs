//! Anchors (Core's `anchors.dat`, `DumpAnchors`/`ReadAnchors`): the
//! block-relay-only peers open at shutdown, dialled first at the next
//! start, so an attacker who fills the address manager while the node is
//! down cannot also take its block-relay-only slots. Written by the
//! `connmgr` thread as it stops, read and deleted by it as it starts (a
//! file left from a crash is never used twice).
//!
//! Format (strand's own, plain text): one anchor per line,
//! `<ip>:<port> <services as 16 hex digits>` (IPv6 in brackets). At most
//! [`MAX_BLOCK_RELAY_ONLY_ANCHORS`] lines are read; a line that does not
//! parse is skipped and logged, a file that cannot be read gives no
//! anchors. Never fatal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use bitcoin::p2p::ServiceFlags;

/// The file name, in the network's data directory (Core's
/// `ANCHORS_DATABASE_FILENAME`).
pub const ANCHORS_FILE: &str = "anchors.dat";
/// Most anchors kept (Core's `MAX_BLOCK_RELAY_ONLY_ANCHORS`).
pub const MAX_BLOCK_RELAY_ONLY_ANCHORS: usize = 2;

/// One anchor: where it listens and what it offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Its address.
    pub addr: SocketAddr,
    /// Its services when we were connected.
    pub services: ServiceFlags,
}

/// Writes `anchors` (at most [`MAX_BLOCK_RELAY_ONLY_ANCHORS`]) to `path`
/// atomically: a temporary file, synced, then renamed over `path`.
pub fn write(path: &Path, anchors: &[Anchor]) -> std::io::Result<()> {
    let mut text = String::new();
    for a in anchors.iter().take(MAX_BLOCK_RELAY_ONLY_ANCHORS) {
        text.push_str(&format!("{} {:016x}\n", a.addr, a.services.to_u64()));
    }
    let tmp = path.with_extension("dat.new");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Parses the file's text; bad lines are skipped.
pub fn parse(text: &str) -> Vec<Anchor> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let addr = words.next()?.parse::<SocketAddr>().ok();
            let services = words.next().and_then(|s| u64::from_str_radix(s, 16).ok());
            match (addr, services, words.next()) {
                (Some(addr), Some(s), None) => Some(Anchor {
                    addr,
                    services: ServiceFlags::from(s),
                }),
                _ => {
                    log::warn!("{ANCHORS_FILE}: skipping bad line '{line}'");
                    None
                }
            }
        })
        .take(MAX_BLOCK_RELAY_ONLY_ANCHORS)
        .collect()
}

/// Reads the anchors at `path` and deletes the file (Core's `ReadAnchors`
/// then `fs::remove`). A missing file gives none; an unreadable one is
/// logged and removed.
pub fn read_and_remove(path: &Path) -> Vec<Anchor> {
    let anchors = match std::fs::read(path) {
        Ok(bytes) => parse(&String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            log::warn!("cannot read {}: {e}", path.display());
            Vec::new()
        }
    };
    if let Err(e) = std::fs::remove_file(path) {
        log::warn!("cannot remove {}: {e}", path.display());
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(s: &str) -> Anchor {
        Anchor {
            addr: s.parse().unwrap(),
            services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        }
    }

    #[test]
    fn round_trip_keeps_two_and_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ANCHORS_FILE);
        let all = [
            anchor("1.2.3.4:8333"),
            anchor("[2001:db8::1]:18444"),
            anchor("5.6.7.8:8333"),
        ];
        write(&path, &all).unwrap();
        assert_eq!(read_and_remove(&path), all[..2].to_vec());
        assert!(!path.exists(), "read once, then gone");
        assert!(read_and_remove(&path).is_empty());
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let text = "garbage\n1.2.3.4:8333 0000000000000009\n1.2.3.4 09\n\n9.9.9.9:1 zz\n\
                    5.6.7.8:8333 0000000000000001 extra\n[::1]:1 0000000000000409\n";
        let got = parse(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].addr, "1.2.3.4:8333".parse().unwrap());
        assert_eq!(got[0].services, ServiceFlags::from(9));
        assert_eq!(got[1].addr, "[::1]:1".parse().unwrap());
    }
}
