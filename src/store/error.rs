//! Errors of the storage layer: [`StoreError`], the [`Table`] names used in
//! its messages, and [`EngineError`], an opaque wrapper around the storage
//! engine's own error so that callers do not depend on LMDB types.
//!
//! Used by every thread that touches the store (the sync manager writing,
//! RPC threads reading); the types are plain values, `Send + Sync`.

use std::fmt;
use std::path::PathBuf;

use bitcoin::hex::DisplayHex;

/// The named tables (LMDB named databases) of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Network magic, schema version, best tip.
    Meta,
    /// Block hash → [`IndexEntry`](super::IndexEntry).
    BlockIndex,
    /// Height (big-endian) → block hash of the active chain.
    ActiveChain,
    /// Block hash → consensus-serialized block.
    Blocks,
    /// Block hash → [`BlockUndo`](super::BlockUndo).
    Undo,
    /// Outpoint → [`Coin`](super::Coin).
    Utxo,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 6] = [
        Table::Meta,
        Table::BlockIndex,
        Table::ActiveChain,
        Table::Blocks,
        Table::Undo,
        Table::Utxo,
    ];

    /// The name of the LMDB named database holding this table.
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::BlockIndex => "block_index",
            Table::ActiveChain => "active_chain",
            Table::Blocks => "blocks",
            Table::Undo => "undo",
            Table::Utxo => "utxo",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Table::Meta => 0,
            Table::BlockIndex => 1,
            Table::ActiveChain => 2,
            Table::Blocks => 3,
            Table::Undo => 4,
            Table::Utxo => 5,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error reported by the storage engine (LMDB), kept opaque so the
/// engine can change without changing [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineError(pub(crate) lmdb::Error);

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // LMDB's messages start with a capital letter; keep ours lower-case.
        let msg = self.0.to_string();
        let mut chars = msg.chars();
        match chars.next() {
            Some(c) => write!(f, "{}{}", c.to_lowercase(), chars.as_str()),
            None => Ok(()),
        }
    }
}

impl std::error::Error for EngineError {}

/// Why a storage operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// The data directory could not be created or read.
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory holds something that is not a strand store: a file
    /// that is not an LMDB environment, or an LMDB environment without
    /// strand's tables and metadata.
    NotAStore {
        /// The data directory.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The directory is already open by another [`Store`](super::Store) in
    /// this process (LMDB forbids opening an environment twice).
    AlreadyOpen {
        /// The directory.
        path: PathBuf,
    },
    /// The store was written for another network.
    WrongNetwork {
        /// The magic of the network we were asked to open.
        expected: [u8; 4],
        /// The magic recorded in the store.
        found: [u8; 4],
    },
    /// The store was written with a schema version this build cannot read.
    UnsupportedVersion {
        /// The version recorded in the store.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A stored value (or key) could not be decoded.
    Corrupt {
        /// The table holding it.
        table: Table,
        /// The key, in hex.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A [`WriteBatch`](super::WriteBatch) deleted a key that must exist
    /// (spending a coin that is not in the UTXO set). The whole batch was
    /// discarded.
    MissingKey {
        /// The table.
        table: Table,
        /// The key, in hex.
        key: String,
    },
    /// The memory map cannot grow enough to hold the data.
    MapFull {
        /// The map size reached, in bytes.
        map_size: usize,
        /// The configured limit, in bytes.
        max_map_size: usize,
    },
    /// One write batch dirtied more pages than one LMDB transaction can
    /// hold; the batch was discarded. Commit smaller batches.
    BatchTooLarge {
        /// Number of operations in the batch.
        ops: usize,
    },
    /// This thread holds a [`ReadView`](super::ReadView) of the store and
    /// tried to open another read transaction or to commit (which could
    /// deadlock when the map grows). Drop the view first.
    ReadInProgress,
    /// Any other storage-engine error.
    Engine {
        /// What the store was doing.
        op: &'static str,
        /// The engine's error.
        source: EngineError,
    },
}

impl StoreError {
    pub(crate) fn engine(op: &'static str, e: lmdb::Error) -> StoreError {
        StoreError::Engine {
            op,
            source: EngineError(e),
        }
    }

    pub(crate) fn corrupt(table: Table, key: &[u8], reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            table,
            key: key.to_lower_hex_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => {
                write!(f, "cannot use store directory {}: {source}", path.display())
            }
            StoreError::NotAStore { path, reason } => {
                write!(f, "{} is not a strand store: {reason}", path.display())
            }
            StoreError::AlreadyOpen { path } => {
                write!(
                    f,
                    "store {} is already open in this process",
                    path.display()
                )
            }
            StoreError::WrongNetwork { expected, found } => write!(
                f,
                "store belongs to another network: expected magic {}, found {}",
                expected.as_hex(),
                found.as_hex()
            ),
            StoreError::UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported store schema version {found} (this build supports {supported}); delete the chain data directory or start with --reindex to rebuild it"
            ),
            StoreError::Corrupt { table, key, reason } => {
                write!(f, "corrupt entry in table {table}, key {key}: {reason}")
            }
            StoreError::MissingKey { table, key } => {
                write!(f, "key {key} missing from table {table}; batch discarded")
            }
            StoreError::MapFull {
                map_size,
                max_map_size,
            } => write!(
                f,
                "store map full at {map_size} bytes (limit {max_map_size} bytes)"
            ),
            StoreError::BatchTooLarge { ops } => write!(
                f,
                "write batch of {ops} operations is too large for one transaction"
            ),
            StoreError::ReadInProgress => {
                write!(f, "this thread already holds a read view of the store")
            }
            StoreError::Engine { op, source } => write!(f, "storage engine error ({op}): {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Engine { source, .. } => Some(source),
            _ => None,
        }
    }
}
