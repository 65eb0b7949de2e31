//! The persistent ban list (Core's `banlist.json` in the network's data
//! directory, written by its `CBanDB`): encoding, atomic writing and
//! loading of manual bans (`setban`). Discouragement is not persisted, as
//! in Core. Called by [`super::Connections`] from whichever thread changed
//! the bans (an RPC thread) and by the node at start and at shutdown.
//!
//! The file has Core's shape, `{"banned_nets": [{"version": 1,
//! "ban_created": T, "banned_until": T, "address": "1.2.3.0/24"}]}`. It is
//! written to a temporary file that is synced and then renamed over the
//! old one, so a crash leaves either the old or the new list. A file that
//! cannot be read as a ban list is renamed to `banlist.json.bad` with a
//! warning and the node starts with no bans: a damaged ban list is never
//! fatal.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::netaddr::SubNet;

/// The file name, as Core's (`banlist.json`).
pub const BANLIST_FILE: &str = "banlist.json";
/// Version of one entry (Core's `CBanEntry::CURRENT_VERSION`).
const BAN_ENTRY_VERSION: u64 = 1;

/// One ban: the subnet, when it was created and when it ends (Unix seconds).
pub(crate) type BanEntry = (SubNet, u64, u64);

/// Why a ban list could not be read or written.
#[derive(Debug)]
pub enum BanListError {
    /// Reading, writing or renaming the file failed.
    Io(PathBuf, std::io::Error),
    /// The file is not a ban list.
    Malformed(String),
}

impl fmt::Display for BanListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanListError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            BanListError::Malformed(s) => write!(f, "malformed ban list: {s}"),
        }
    }
}

impl std::error::Error for BanListError {}

/// The JSON text of `bans`.
pub(crate) fn encode(bans: &[BanEntry]) -> String {
    let nets: Vec<Value> = bans
        .iter()
        .map(|(net, created, until)| {
            json!({
                "version": BAN_ENTRY_VERSION,
                "ban_created": created,
                "banned_until": until,
                "address": net.to_string(),
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&json!({ "banned_nets": nets }))
        .unwrap_or_else(|_| "{\"banned_nets\": []}".to_string());
    text.push('\n');
    text
}

/// Parses a ban list; any entry that does not parse makes the whole file
/// malformed (it is set aside rather than half-trusted).
pub(crate) fn decode(text: &str) -> Result<Vec<BanEntry>, BanListError> {
    let bad = |s: &str| BanListError::Malformed(s.to_string());
    let v: Value =
        serde_json::from_str(text).map_err(|e| BanListError::Malformed(e.to_string()))?;
    let nets = v
        .get("banned_nets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no \"banned_nets\" array"))?;
    nets.iter()
        .map(|e| {
            let address = e
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("entry without \"address\""))?;
            let net: SubNet = address
                .parse()
                .map_err(|_| bad(&format!("bad address {address:?}")))?;
            let created = e
                .get("ban_created")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("entry without \"ban_created\""))?;
            let until = e
                .get("banned_until")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("entry without \"banned_until\""))?;
            Ok((net, created, until))
        })
        .collect()
}

/// Writes `bans` to `path` atomically: a temporary file next to it, synced,
/// then renamed over it.
pub(crate) fn write(path: &Path, bans: &[BanEntry]) -> Result<(), BanListError> {
    let tmp = path.with_extension("json.new");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| BanListError::Io(p, e)
    };
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(encode(bans).as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Loads the bans in `path` that have not ended by `now`. A missing file
/// is an empty list; an unreadable or malformed one is renamed to
/// `banlist.json.bad` with a warning and treated as empty.
pub(crate) fn load(path: &Path, now: u64) -> Vec<BanEntry> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            set_aside(path, &BanListError::Io(path.to_path_buf(), e));
            return Vec::new();
        }
    };
    match decode(&text) {
        Ok(mut bans) => {
            bans.retain(|(_, _, until)| *until > now);
            bans
        }
        Err(e) => {
            set_aside(path, &e);
            Vec::new()
        }
    }
}

fn set_aside(path: &Path, why: &BanListError) {
    let bad = path.with_extension("json.bad");
    match std::fs::rename(path, &bad) {
        Ok(()) => log::warn!(
            "ignoring ban list {}: {why}; moved to {}",
            path.display(),
            bad.display()
        ),
        Err(e) => log::warn!(
            "ignoring ban list {}: {why} (cannot move it aside: {e})",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> SubNet {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips_and_drops_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        let bans = vec![
            (net("127.0.0.9"), 100, 5_000),
            (net("10.0.0.0/8"), 100, 1_000),
            (net("fd00::/8"), 200, 9_000),
        ];
        write(&path, &bans).unwrap();
        assert_eq!(load(&path, 0), bans);
        assert_eq!(
            load(&path, 2_000),
            vec![bans[0], bans[2]],
            "expired ban kept"
        );
        assert!(!path.with_extension("json.new").exists());
    }

    #[test]
    fn missing_file_is_empty_and_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BANLIST_FILE);
        assert!(load(&path, 0).is_empty());
        for text in [
            "not json",
            "{}",
            r#"{"banned_nets":[{"address":"1.2.3.400","ban_created":1,"banned_until":2}]}"#,
            r#"{"banned_nets":[{"address":"1.2.3.4","ban_created":-1,"banned_until":2}]}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(load(&path, 0).is_empty(), "{text}");
            assert!(!path.exists());
            assert_eq!(
                std::fs::read_to_string(path.with_extension("json.bad")).unwrap(),
                text
            );
        }
    }
}
