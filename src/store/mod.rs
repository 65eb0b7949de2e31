//! The LMDB storage layer: [`Store`] owns the LMDB environment of one node's
//! chain-state directory and its six named tables (`meta`, `block_index`,
//! `active_chain`, `blocks`, `undo`, `utxo`; layouts and encodings in
//! [`codec`]). The chain layer builds on this small typed interface; nothing
//! above this module sees LMDB.
//!
//! # Threads
//!
//! The **sync-manager thread is the only writer**: it builds a
//! [`WriteBatch`] and calls [`Store::commit`], which applies the batch in
//! one LMDB write transaction. Any other thread (RPC) may read concurrently
//! through a shared `&Store` (`Store` is `Send + Sync`; put it in an `Arc`):
//! each read method runs in its own LMDB read transaction, and
//! [`Store::read`] gives a [`ReadView`], one read transaction (a consistent
//! snapshot) for several reads. Readers never block the writer and see
//! either all or none of a commit. Two rules, both reported as
//! [`StoreError::ReadInProgress`] rather than deadlocking: a thread holds at
//! most one `ReadView` of a store at a time (and calls no other read method
//! of that store while holding it), and a thread holding a `ReadView` does
//! not commit. Keep views short-lived: growing the map waits until no read
//! transaction is open.
//!
//! # Durability
//!
//! With the default [`SyncMode::Full`], a commit returns only after LMDB
//! has flushed the data and then the meta page, so after `kill -9` or a
//! power loss the store holds exactly the last committed batch: the
//! recorded tip ([`Store::tip`]) always matches the UTXO set. LMDB is
//! copy-on-write; it never overwrites live pages, so there is no recovery
//! step at open. The map starts at [`StoreOptions::initial_map_size`] and
//! doubles whenever a commit finds it full (the batch is retried in full,
//! nothing is lost). LMDB does not checksum pages: a file damaged inside
//! its B-trees (disk corruption) may be reported as an engine error.

mod batch;
mod blockdata;
pub mod codec;
mod error;
mod reindex;
mod residency;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bitcoin::consensus::encode;
use bitcoin::hashes::{sha256d, Hash, HashEngine};
use bitcoin::hex::DisplayHex;
use bitcoin::{Block, BlockHash, OutPoint};
use lmdb::{
    Cursor, Database, DatabaseFlags, Environment, EnvironmentFlags, RoTransaction, Transaction,
    WriteFlags,
};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

pub use batch::{WriteBatch, DIRTY_PAGE_BYTES};
pub use blockdata::StoredBlock;
pub use codec::{BlockStatus, BlockUndo, Coin, IndexEntry, IndexRecord};

/// The block index as stored: records and invalid reasons, by position.
#[derive(Debug, Default)]
pub struct IndexRecords {
    /// `(position, record)` in position order.
    pub records: Vec<(u32, IndexRecord)>,
    /// `(position, reason)` for the invalid blocks that have one.
    pub reasons: Vec<(u32, String)>,
}
pub use error::{EngineError, StoreError, Table};

/// The schema version this build reads and writes (`meta/version`).
///
/// 2: compact block index (records keyed by position, no `active_chain`
/// rows; see [`codec`]). A store of version 1 is refused: delete the data
/// directory (or start with `--reindex`) to rebuild it.
pub const SCHEMA_VERSION: u32 = 2;

/// Default initial map size: 64 MiB.
pub const DEFAULT_INITIAL_MAP_SIZE: usize = 64 << 20;

/// Smallest accepted initial map size (smaller requests are raised to it).
pub const MIN_MAP_SIZE: usize = 256 << 10;

/// Default limit of map growth: 16 TiB on 64-bit targets (address space,
/// not disk: the file only grows as data is written), 1 GiB otherwise.
pub const DEFAULT_MAX_MAP_SIZE: usize = if usize::BITS >= 64 { 1 << 44 } else { 1 << 30 };

/// How hard a commit pushes data to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Flush data and meta page on every commit (LMDB's default). Survives
    /// process kill and power loss with the last committed batch.
    #[default]
    Full,
    /// `MDB_NOMETASYNC`: flush data but not the meta page. Still atomic and
    /// consistent after any crash, but a power loss or OS crash may undo
    /// the last commit (the tip goes back one batch, with its coins).
    /// Process kills lose nothing.
    NoMetaSync,
    /// `MDB_NOSYNC`: never flush (call [`Store::sync`] to flush). Process
    /// kills lose nothing; after a power loss or OS crash, recent commits
    /// may be undone and, unless the filesystem preserves write order, the
    /// file may be corrupt. For tests and throw-away nodes only.
    NoSync,
}

/// Options of [`Store::open_with`].
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Map size to start with, in bytes (at least [`MIN_MAP_SIZE`]). An
    /// existing store bigger than this is mapped with room to grow.
    pub initial_map_size: usize,
    /// Growth limit, in bytes; a commit needing more fails with
    /// [`StoreError::MapFull`].
    pub max_map_size: usize,
    /// Flushing policy.
    pub sync_mode: SyncMode,
    /// Maximum number of concurrent read transactions (one per reading
    /// thread at a time).
    pub max_readers: u32,
    /// After each commit, drop the map's pages from this process's page
    /// tables (`madvise(MADV_DONTNEED)`; they stay in the page cache), so
    /// the pages LMDB touched do not stay in the node's RSS. On by
    /// default; see `residency.rs` for why readers stay correct.
    pub release_map_pages: bool,
    /// Open the environment with `MDB_NORDAHEAD` (`madvise(MADV_RANDOM)`
    /// over the map): a page fault reads and maps only its own page, not
    /// the kernel's read-around window, so random coin lookups do not pull
    /// neighbouring pages into the node's RSS. Block reads ask for their
    /// own range ahead instead ([`ReadView::get_block_raw`]). On by default.
    pub no_readahead: bool,
    /// With `release_map_pages`, also release them every this many reads
    /// or writes inside long transactions (a block's coin lookups, a coins
    /// flush), not only after commits; 0 = after commits only (default).
    /// The kernel maps a whole page-cache folio per fault (up to 256 KiB
    /// for pages LMDB wrote in one `pwritev`, 64 KiB of fault-around
    /// otherwise), so a few hundred random lookups map tens of MB of the
    /// store into the node's RSS. Those pages are clean page cache the
    /// kernel can reclaim; releasing them often costs re-faults (README
    /// "Memory budget": [`LOW_MEMORY_RELEASE_EVERY_OPS`] took the UTXO
    /// benchmark from 207 to 148–150 MB peak RSS and from 32–35 s to
    /// 41–47 s).
    pub release_every_ops: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            initial_map_size: DEFAULT_INITIAL_MAP_SIZE,
            max_map_size: DEFAULT_MAX_MAP_SIZE,
            sync_mode: SyncMode::Full,
            max_readers: 126,
            release_map_pages: true,
            no_readahead: true,
            release_every_ops: 0,
        }
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Ids of the stores this thread holds a [`ReadView`] of.
    static VIEWS_HELD: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn holds_view(id: u64) -> bool {
    VIEWS_HELD.with(|v| v.borrow().contains(&id))
}

/// The chain-state store of one data directory. See the module docs for
/// the thread model.
pub struct Store {
    env: Environment,
    dbs: [Database; 6],
    path: PathBuf,
    magic: [u8; 4],
    max_map_size: usize,
    /// The current map size; changed only by `grow` (under `resize`).
    map_size: AtomicUsize,
    id: u64,
    /// Held shared by every open transaction, exclusively to resize the map
    /// (LMDB requires that no transaction is open in the process then).
    resize: RwLock<()>,
    /// Serialises commits.
    writer: Mutex<()>,
    /// LMDB's page size, for [`residency::release`].
    page_size: usize,
    /// [`StoreOptions::release_map_pages`].
    release_map_pages: bool,
    /// Inode of `data.mdb` and where it is mapped (found again after the
    /// map is resized); only used under the writer lock.
    data_ino: u64,
    map_range: Mutex<Option<residency::MapRange>>,
    /// Reads and writes since the map's pages were last released
    /// ([`StoreOptions::release_every_ops`]).
    release_every_ops: usize,
    ops_since_release: AtomicUsize,
    /// Released after `env` is closed (fields drop in order).
    _claim: PathClaim,
}

/// The value of [`StoreOptions::release_every_ops`] that kept the UTXO
/// benchmark's peak RSS lowest for its cost (README "Memory budget").
pub const LOW_MEMORY_RELEASE_EVERY_OPS: usize = 256;

/// Directories with an open [`Store`] in this process.
static OPEN_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Marks a directory as open by a [`Store`] until dropped.
struct PathClaim(PathBuf);

impl PathClaim {
    fn new(dir: &Path) -> Result<PathClaim, StoreError> {
        let path = fs::canonicalize(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut open = OPEN_DIRS.lock();
        if open.contains(&path) {
            return Err(StoreError::AlreadyOpen { path });
        }
        open.push(path.clone());
        Ok(PathClaim(path))
    }
}

impl Drop for PathClaim {
    fn drop(&mut self) {
        OPEN_DIRS.lock().retain(|p| p != &self.0);
    }
}

/// Why one attempt at a write transaction failed.
enum Attempt {
    MapFull,
    Fail(StoreError),
}

impl Store {
    /// Opens (creating if needed) the store in `dir` for the network with
    /// magic `network_magic`, with default options.
    pub fn open(dir: &Path, network_magic: [u8; 4]) -> Result<Store, StoreError> {
        Store::open_with(dir, network_magic, StoreOptions::default())
    }

    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Errors: [`StoreError::WrongNetwork`] if the store was written for
    /// another magic; [`StoreError::NotAStore`] if `dir` holds a file that
    /// is not LMDB or an LMDB environment that is not a strand store;
    /// [`StoreError::UnsupportedVersion`] for another schema version.
    pub fn open_with(
        dir: &Path,
        network_magic: [u8; 4],
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        // LMDB must not open one environment twice in a process (closing
        // either breaks the other's locks).
        let claim = PathClaim::new(dir)?;
        let not_a_store = |reason: String| StoreError::NotAStore {
            path: dir.to_path_buf(),
            reason,
        };
        let max_map_size = options.max_map_size.max(MIN_MAP_SIZE);
        let initial = options.initial_map_size.clamp(MIN_MAP_SIZE, max_map_size);
        let flags = match options.sync_mode {
            SyncMode::Full => EnvironmentFlags::empty(),
            SyncMode::NoMetaSync => EnvironmentFlags::NO_META_SYNC,
            SyncMode::NoSync => EnvironmentFlags::NO_SYNC,
        };
        let flags = if options.no_readahead {
            flags | EnvironmentFlags::NO_READAHEAD
        } else {
            flags
        };
        let env = Environment::new()
            .set_flags(flags)
            .set_max_dbs(Table::ALL.len() as u32)
            .set_max_readers(options.max_readers.max(1))
            .set_map_size(initial)
            .open(dir)
            .map_err(|e| match e {
                lmdb::Error::Invalid
                | lmdb::Error::VersionMismatch
                | lmdb::Error::Corrupted
                | lmdb::Error::PageNotFound => not_a_store(format!(
                    "data file is not a usable LMDB file: {}",
                    EngineError(e)
                )),
                e => StoreError::engine("open environment", e),
            })?;

        // An existing store may be bigger than `initial`: LMDB then maps
        // exactly the used size; leave room so the first commit need not
        // grow.
        let info = env
            .info()
            .map_err(|e| StoreError::engine("read environment info", e))?;
        let page = env
            .stat()
            .map_err(|e| StoreError::engine("read environment stat", e))?
            .page_size() as usize;
        let used = info.last_pgno().saturating_add(1).saturating_mul(page);
        if info.map_size() < used.saturating_mul(2) && info.map_size() < max_map_size {
            let want = used.saturating_mul(2).min(max_map_size);
            env.set_map_size(want.div_ceil(page).saturating_mul(page))
                .map_err(|e| StoreError::engine("set map size", e))?;
        }

        let map_size = env
            .info()
            .map_err(|e| StoreError::engine("read environment info", e))?
            .map_size();

        // Named databases: all present, or a fresh environment.
        let mut found: [Option<Database>; 6] = [None; 6];
        for t in Table::ALL {
            match env.open_db(Some(t.name())) {
                Ok(db) => found[t.index()] = Some(db),
                Err(lmdb::Error::NotFound) => {}
                Err(lmdb::Error::Incompatible) => {
                    return Err(not_a_store(format!(
                        "`{}` in the LMDB environment is not a named database",
                        t.name()
                    )))
                }
                Err(e) => return Err(StoreError::engine("open table", e)),
            }
        }
        if found.iter().any(Option::is_none) {
            check_fresh(&env, &found).map_err(|r| match r {
                Fresh::Not(reason) => not_a_store(reason),
                Fresh::Err(e) => e,
            })?;
        }
        let mut dbs = Vec::with_capacity(Table::ALL.len());
        for t in Table::ALL {
            dbs.push(match found[t.index()] {
                Some(db) => db,
                None => env
                    .create_db(Some(t.name()), DatabaseFlags::empty())
                    .map_err(|e| StoreError::engine("create table", e))?,
            });
        }
        let dbs: [Database; 6] = dbs
            .try_into()
            .map_err(|_| not_a_store("wrong number of tables".into()))?;

        let store = Store {
            env,
            dbs,
            path: dir.to_path_buf(),
            magic: network_magic,
            max_map_size,
            map_size: AtomicUsize::new(map_size),
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            resize: RwLock::new(()),
            writer: Mutex::new(()),
            page_size: page,
            release_map_pages: options.release_map_pages,
            data_ino: fs::metadata(dir.join("data.mdb")).map_or(0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.ino()
            }),
            map_range: Mutex::new(None),
            ops_since_release: AtomicUsize::new(0),
            release_every_ops: options.release_every_ops,
            _claim: claim,
        };
        store.check_meta(network_magic)?;
        log::debug!(
            "opened store {} ({} coins, map {} MiB)",
            dir.display(),
            store.utxo_count()?,
            store.map_size() >> 20
        );
        Ok(store)
    }

    /// Validates `meta`, initialising it in a fresh store.
    fn check_meta(&self, expected: [u8; 4]) -> Result<(), StoreError> {
        let (magic, version, empty) = {
            let view = self.read()?;
            let magic = view
                .get_raw(Table::Meta, codec::META_MAGIC)?
                .map(<[u8]>::to_vec);
            let version = view
                .get_raw(Table::Meta, codec::META_VERSION)?
                .map(<[u8]>::to_vec);
            let mut empty = true;
            for t in Table::ALL {
                empty &= view.entries(t)? == 0;
            }
            (magic, version, empty)
        };
        let Some(magic) = magic else {
            if !empty {
                return Err(StoreError::NotAStore {
                    path: self.path.clone(),
                    reason: "tables exist but no network magic is recorded".into(),
                });
            }
            let mut batch = WriteBatch::new();
            batch.push_raw(Table::Meta, codec::META_MAGIC, expected.to_vec());
            batch.push_raw(
                Table::Meta,
                codec::META_VERSION,
                SCHEMA_VERSION.to_le_bytes().to_vec(),
            );
            return self.commit(&batch);
        };
        let found: [u8; 4] = magic.as_slice().try_into().map_err(|_| {
            StoreError::corrupt(
                Table::Meta,
                codec::META_MAGIC,
                format!("magic is {} bytes, expected 4", magic.len()),
            )
        })?;
        if found != expected {
            return Err(StoreError::WrongNetwork { expected, found });
        }
        let version = version.ok_or_else(|| {
            StoreError::corrupt(Table::Meta, codec::META_VERSION, "schema version missing")
        })?;
        let version: [u8; 4] = version.as_slice().try_into().map_err(|_| {
            StoreError::corrupt(
                Table::Meta,
                codec::META_VERSION,
                format!("version is {} bytes, expected 4", version.len()),
            )
        })?;
        let version = u32::from_le_bytes(version);
        if version != SCHEMA_VERSION {
            return Err(StoreError::UnsupportedVersion {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    fn db(&self, table: Table) -> Database {
        self.dbs[table.index()]
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network magic the store belongs to.
    pub fn magic(&self) -> [u8; 4] {
        self.magic
    }

    /// The current map size, in bytes.
    pub fn map_size(&self) -> usize {
        self.map_size.load(Ordering::Relaxed)
    }

    /// Flushes committed data to disk (only needed with
    /// [`SyncMode::NoSync`] or [`SyncMode::NoMetaSync`], e.g. at shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.env
            .sync(true)
            .map_err(|e| StoreError::engine("sync", e))
    }

    /// Applies `batch` in one write transaction: after a crash, either all
    /// of it or none of it is in the store. If the map is full it is grown
    /// and the whole batch retried. On error nothing was written.
    ///
    /// Called by the sync-manager thread (the only writer); fails with
    /// [`StoreError::ReadInProgress`] if this thread holds a [`ReadView`].
    pub fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.write_retrying(|| self.try_commit(batch))
    }

    /// Runs one write transaction (`attempt`) as the only writer, growing
    /// the map and running it again while it finds the map full. Fails with
    /// [`StoreError::ReadInProgress`] if this thread holds a [`ReadView`].
    fn write_retrying(
        &self,
        mut attempt: impl FnMut() -> Result<(), Attempt>,
    ) -> Result<(), StoreError> {
        if holds_view(self.id) {
            return Err(StoreError::ReadInProgress);
        }
        let _writer = self.writer.lock();
        loop {
            let result = {
                let _shared = self.resize.read();
                attempt()
            };
            match result {
                Ok(()) => {
                    self.release_map_pages();
                    crate::memory::release_free_memory();
                    return Ok(());
                }
                Err(Attempt::MapFull) => self.grow()?,
                Err(Attempt::Fail(e)) => return Err(e),
            }
        }
    }

    fn try_commit(&self, batch: &WriteBatch) -> Result<(), Attempt> {
        let lmdb_err = |op: &'static str, e: lmdb::Error| match e {
            lmdb::Error::MapFull => Attempt::MapFull,
            lmdb::Error::TxnFull => Attempt::Fail(StoreError::BatchTooLarge { ops: batch.len() }),
            e => Attempt::Fail(StoreError::engine(op, e)),
        };
        let mut txn = self
            .env
            .begin_rw_txn()
            .map_err(|e| lmdb_err("begin write", e))?;
        for op in &batch.ops {
            // The write lock's shared resize guard is held: no resize.
            self.note_op_held();
            let db = self.db(op.table);
            match &op.value {
                Some(v) => txn
                    .put(db, &op.key, v, WriteFlags::empty())
                    .map_err(|e| lmdb_err("put", e))?,
                None => match txn.del(db, &op.key, None) {
                    Ok(()) => {}
                    Err(lmdb::Error::NotFound) if !op.must_exist => {}
                    Err(lmdb::Error::NotFound) => {
                        return Err(Attempt::Fail(StoreError::MissingKey {
                            table: op.table,
                            key: op.key.to_lower_hex_string(),
                        }))
                    }
                    Err(e) => return Err(lmdb_err("delete", e)),
                },
            }
        }
        txn.commit().map_err(|e| lmdb_err("commit", e))
    }

    /// Drops the map's resident pages after a commit (see `residency.rs`).
    /// Called with the writer lock held, so the map cannot be resized
    /// meanwhile; a failure only leaves the pages resident.
    fn release_map_pages(&self) {
        if !self.release_map_pages {
            return;
        }
        self.ops_since_release.store(0, Ordering::Relaxed);
        if let Err(e) = self.release_map_pages_now() {
            log::debug!("could not release the store map's pages: {e}");
        }
    }

    /// Counts one read or write; every `release_every_ops` releases the
    /// map's pages. The caller holds a shared `resize` guard (an open
    /// [`ReadView`] or write transaction), so the map cannot move.
    fn note_op_held(&self) {
        if !self.release_map_pages || self.release_every_ops == 0 {
            return;
        }
        let n = self.ops_since_release.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.release_every_ops {
            return;
        }
        self.ops_since_release.store(0, Ordering::Relaxed);
        if let Err(e) = self.release_map_pages_held() {
            log::debug!("could not release the store map's pages: {e}");
        }
    }

    /// [`Store::release_map_pages`] whatever the option says. The caller
    /// keeps the map from being resized (holds the writer lock, or, in
    /// tests, is the only thread using the store).
    fn release_map_pages_now(&self) -> std::io::Result<usize> {
        let _shared = self.resize.read();
        self.release_map_pages_held()
    }

    /// [`Store::release_map_pages_now`] for a caller that already holds a
    /// shared `resize` guard (taking it again could deadlock behind a
    /// waiting resize).
    fn release_map_pages_held(&self) -> std::io::Result<usize> {
        let info = self
            .env
            .info()
            .map_err(|e| std::io::Error::other(EngineError(e).to_string()))?;
        let map_size = info.map_size();
        let mut cached = self.map_range.lock();
        let range = match *cached {
            Some(r) if r.len == map_size => r,
            _ => {
                let r = residency::MapRange::find(self.data_ino, map_size)?;
                *cached = Some(r);
                r
            }
        };
        let used = info
            .last_pgno()
            .saturating_add(1)
            .saturating_mul(self.page_size);
        residency::release(range, used)
    }

    /// Doubles the map (up to the limit). Called with no transaction open
    /// by this thread; waits for other threads' transactions to end.
    fn grow(&self) -> Result<(), StoreError> {
        let _exclusive = self.resize.write();
        let current = self.map_size();
        if current >= self.max_map_size {
            return Err(StoreError::MapFull {
                map_size: current,
                max_map_size: self.max_map_size,
            });
        }
        let new = current.saturating_mul(2).min(self.max_map_size);
        self.env
            .set_map_size(new)
            .map_err(|e| StoreError::engine("grow map", e))?;
        let info = self
            .env
            .info()
            .map_err(|e| StoreError::engine("read environment info", e))?;
        if info.map_size() <= current {
            // LMDB did not grow the map: retrying would loop forever.
            return Err(StoreError::MapFull {
                map_size: current,
                max_map_size: self.max_map_size,
            });
        }
        self.map_size.store(info.map_size(), Ordering::Relaxed);
        log::info!(
            "store map grown from {} MiB to {} MiB",
            current >> 20,
            self.map_size() >> 20
        );
        Ok(())
    }

    /// Starts a read transaction: a consistent snapshot for several reads.
    /// See the module docs for the rules (one per thread, short-lived).
    pub fn read(&self) -> Result<ReadView<'_>, StoreError> {
        if holds_view(self.id) {
            return Err(StoreError::ReadInProgress);
        }
        let shared = self.resize.read();
        let txn = self
            .env
            .begin_ro_txn()
            .map_err(|e| StoreError::engine("begin read", e))?;
        VIEWS_HELD.with(|v| v.borrow_mut().push(self.id));
        Ok(ReadView {
            txn,
            store: self,
            _shared: shared,
        })
    }

    #[cfg(test)]
    /// The block index entry of `hash`.
    pub fn get_block_index(&self, hash: &BlockHash) -> Result<Option<IndexEntry>, StoreError> {
        self.read()?.get_block_index(hash)
    }

    #[cfg(test)]
    /// Every block index entry, in key (hash byte) order, for startup.
    pub fn load_block_index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        self.read()?.load_block_index()
    }

    /// Every compact index record in position order, and the invalid
    /// reasons by position (schema 2), for startup.
    pub fn load_index_records(&self) -> Result<IndexRecords, StoreError> {
        self.read()?.load_index_records()
    }

    #[cfg(test)]
    /// The active chain's block at `height`.
    pub fn get_active(&self, height: u32) -> Result<Option<BlockHash>, StoreError> {
        self.read()?.get_active(height)
    }

    #[cfg(test)]
    /// The active chain, indexed by height (checked contiguous from 0).
    pub fn load_active_chain(&self) -> Result<Vec<BlockHash>, StoreError> {
        self.read()?.load_active_chain()
    }

    /// The block body of `hash`, decoded.
    pub fn get_block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.read()?.get_block(hash)
    }

    /// The block body of `hash`, in consensus serialization.
    pub fn get_block_raw(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        self.read()?.get_block_raw(hash)
    }

    /// The undo data of `hash`.
    pub fn get_undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        self.read()?.get_undo(hash)
    }

    /// The unspent output at `outpoint`.
    pub fn get_coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.read()?.get_coin(outpoint)
    }

    /// The tip the UTXO set corresponds to (`None` before the first
    /// [`WriteBatch::set_tip`]).
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        self.read()?.tip()
    }

    /// Number of unspent outputs.
    pub fn utxo_count(&self) -> Result<u64, StoreError> {
        self.read()?.utxo_count()
    }

    /// The UTXO-set digest; see [`ReadView::utxo_digest`].
    pub fn utxo_digest(&self) -> Result<sha256d::Hash, StoreError> {
        self.read()?.utxo_digest()
    }

    /// The head-blocks marker (Core's `CCoinsViewDB::GetHeadBlocks`):
    /// `Some((new_tip, old_tip))` while a flush split over several
    /// transactions has not finished (see `chain/replay.rs`).
    pub fn head_blocks(&self) -> Result<Option<(BlockHash, BlockHash)>, StoreError> {
        self.read()?
            .get_raw(Table::Meta, codec::META_HEAD_BLOCKS)?
            .map(codec::decode_head_blocks)
            .transpose()
    }
}

enum Fresh {
    Not(String),
    Err(StoreError),
}

/// Whether an environment missing some of our tables can be initialised:
/// its main database holds only names of our tables, all of them empty
/// (a crash during an earlier first open leaves exactly that).
fn check_fresh(env: &Environment, found: &[Option<Database>; 6]) -> Result<(), Fresh> {
    let engine = |op, e| Fresh::Err(StoreError::engine(op, e));
    let main = env
        .open_db(None)
        .map_err(|e| engine("open main table", e))?;
    let txn = env.begin_ro_txn().map_err(|e| engine("begin read", e))?;
    {
        let mut cursor = txn
            .open_ro_cursor(main)
            .map_err(|e| engine("open cursor", e))?;
        for item in cursor.iter_start() {
            let (k, _) = item.map_err(|e| engine("iterate", e))?;
            if !Table::ALL.iter().any(|t| t.name().as_bytes() == k) {
                return Err(Fresh::Not(format!(
                    "the LMDB environment holds foreign data (key {:?})",
                    String::from_utf8_lossy(k)
                )));
            }
        }
    }
    for t in Table::ALL {
        if let Some(db) = found[t.index()] {
            let n = txn.stat(db).map_err(|e| engine("stat", e))?.entries();
            if n != 0 {
                return Err(Fresh::Not(format!(
                    "table {t} has {n} entries but other tables are missing"
                )));
            }
        }
    }
    Ok(())
}

/// One read transaction over the store: every read through it sees the
/// same committed state. Not `Send`; drop it soon (it delays map growth).
pub struct ReadView<'s> {
    // Field order matters: the transaction ends before the shared lock is
    // released.
    txn: RoTransaction<'s>,
    store: &'s Store,
    _shared: RwLockReadGuard<'s, ()>,
}

impl Drop for ReadView<'_> {
    fn drop(&mut self) {
        let id = self.store.id;
        VIEWS_HELD.with(|v| {
            let mut v = v.borrow_mut();
            if let Some(i) = v.iter().position(|&x| x == id) {
                v.swap_remove(i);
            }
        });
    }
}

impl ReadView<'_> {
    fn get_raw(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, StoreError> {
        // This view holds a shared resize guard: the map cannot move.
        self.store.note_op_held();
        match self.txn.get(self.store.db(table), &key) {
            Ok(v) => Ok(Some(v)),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(StoreError::engine("get", e)),
        }
    }

    fn entries(&self, table: Table) -> Result<usize, StoreError> {
        self.txn
            .stat(self.store.db(table))
            .map(|s| s.entries())
            .map_err(|e| StoreError::engine("stat", e))
    }

    /// Calls `f` with every key and value of `table`, in key order, until
    /// `f` returns `Ok(false)` or an error.
    fn scan(
        &self,
        table: Table,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut cursor = self
            .txn
            .open_ro_cursor(self.store.db(table))
            .map_err(|e| StoreError::engine("open cursor", e))?;
        for item in cursor.iter_start() {
            let (k, v) = item.map_err(|e| StoreError::engine("iterate", e))?;
            if !f(k, v)? {
                break;
            }
        }
        Ok(())
    }

    #[cfg(test)]
    /// The block index entry of `hash`.
    pub fn get_block_index(&self, hash: &BlockHash) -> Result<Option<IndexEntry>, StoreError> {
        let key = hash.as_byte_array();
        self.get_raw(Table::BlockIndex, key)?
            .map(|v| IndexEntry::decode(key, v))
            .transpose()
    }

    #[cfg(test)]
    /// Every block index entry, in key (hash byte) order.
    pub fn load_block_index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        let mut out = Vec::with_capacity(self.entries(Table::BlockIndex)?);
        self.scan(Table::BlockIndex, |k, v| {
            let hash = codec::decode_hash(Table::BlockIndex, k, k)?;
            out.push((hash, IndexEntry::decode(k, v)?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every compact index record in position order, and the invalid
    /// reasons by position (schema 2). A key of another length, a reason
    /// that is not UTF-8 or a record that does not decode is
    /// [`StoreError::Corrupt`].
    pub fn load_index_records(&self) -> Result<IndexRecords, StoreError> {
        let mut records = Vec::with_capacity(self.entries(Table::BlockIndex)?);
        let mut reasons = Vec::new();
        self.scan(Table::BlockIndex, |k, v| {
            let corrupt = |e: &str| StoreError::corrupt(Table::BlockIndex, k, e);
            let mut pos = [0u8; 4];
            match k.len() {
                4 => {
                    pos.copy_from_slice(k);
                    records.push((u32::from_be_bytes(pos), codec::IndexRecord::decode(k, v)?));
                }
                5 if k.get(4) == Some(&b'r') => {
                    pos.copy_from_slice(k.get(..4).unwrap_or(&[0; 4]));
                    let reason = std::str::from_utf8(v)
                        .map_err(|_| corrupt("invalid reason is not UTF-8"))?;
                    reasons.push((u32::from_be_bytes(pos), reason.to_owned()));
                }
                _ => {
                    return Err(corrupt(
                        "not a schema-2 index key (4-byte position or position and `r`)",
                    ))
                }
            }
            Ok(true)
        })?;
        Ok(IndexRecords { records, reasons })
    }

    #[cfg(test)]
    /// The active chain's block at `height`.
    pub fn get_active(&self, height: u32) -> Result<Option<BlockHash>, StoreError> {
        let key = codec::height_key(height);
        self.get_raw(Table::ActiveChain, &key)?
            .map(|v| codec::decode_hash(Table::ActiveChain, &key, v))
            .transpose()
    }

    #[cfg(test)]
    /// The height of the active chain's last block (`None` if empty),
    /// assuming it is contiguous from 0 as [`WriteBatch::unset_active`]
    /// requires.
    pub fn active_height(&self) -> Result<Option<u32>, StoreError> {
        let n = self.entries(Table::ActiveChain)?;
        Ok(n.checked_sub(1).and_then(|h| u32::try_from(h).ok()))
    }

    #[cfg(test)]
    /// The active chain, indexed by height. Fails with
    /// [`StoreError::Corrupt`] if heights are not contiguous from 0.
    pub fn load_active_chain(&self) -> Result<Vec<BlockHash>, StoreError> {
        let mut out = Vec::with_capacity(self.entries(Table::ActiveChain)?);
        self.scan(Table::ActiveChain, |k, v| {
            let height: [u8; 4] = k.try_into().map_err(|_| {
                StoreError::corrupt(Table::ActiveChain, k, "height key is not 4 bytes")
            })?;
            let height = u32::from_be_bytes(height);
            if height as usize != out.len() {
                return Err(StoreError::corrupt(
                    Table::ActiveChain,
                    k,
                    format!(
                        "active chain has a gap: height {height} follows {}",
                        out.len()
                    ),
                ));
            }
            out.push(codec::decode_hash(Table::ActiveChain, k, v)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The block body of `hash`, decoded.
    pub fn get_block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let key = hash.as_byte_array();
        self.get_raw(Table::Blocks, key)?
            .map(|v| {
                residency::will_need(v);
                encode::deserialize(v)
                    .map_err(|e| StoreError::corrupt(Table::Blocks, key, format!("bad block: {e}")))
            })
            .transpose()
    }

    /// The block body of `hash`, in consensus serialization.
    pub fn get_block_raw(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_raw(Table::Blocks, hash.as_byte_array())?.map(|v| {
            residency::will_need(v);
            v.to_vec()
        }))
    }

    /// The undo data of `hash`.
    pub fn get_undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        let key = hash.as_byte_array();
        self.get_raw(Table::Undo, key)?
            .map(|v| BlockUndo::decode(key, v))
            .transpose()
    }

    /// The unspent output at `outpoint`.
    pub fn get_coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        let key = codec::outpoint_key(outpoint);
        self.get_raw(Table::Utxo, &key)?
            .map(|v| Coin::decode(&key, v))
            .transpose()
    }

    /// The tip the UTXO set corresponds to.
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        self.get_raw(Table::Meta, codec::META_TIP)?
            .map(|v| codec::decode_hash(Table::Meta, codec::META_TIP, v))
            .transpose()
    }

    /// Number of unspent outputs (constant time).
    pub fn utxo_count(&self) -> Result<u64, StoreError> {
        Ok(self.entries(Table::Utxo)? as u64)
    }

    /// Calls `f` for every unspent output in key order (txid bytes, then
    /// vout) until it returns `false`.
    pub fn for_each_coin(
        &self,
        mut f: impl FnMut(OutPoint, Coin) -> bool,
    ) -> Result<(), StoreError> {
        self.scan(Table::Utxo, |k, v| {
            Ok(f(codec::decode_outpoint_key(k)?, Coin::decode(k, v)?))
        })
    }

    /// The UTXO-set digest: double SHA-256 over every coin in key order
    /// (txid in internal byte order, then vout ascending), each serialized
    /// as Bitcoin Core's `TxOutSer` (`kernel/coinstats.cpp`): txid (32
    /// bytes, internal order) ‖ vout `u32` LE ‖ `height * 2 + is_coinbase`
    /// `u32` LE ‖ amount `i64` LE ‖ script length (CompactSize) ‖ script.
    /// It does not depend on the storage encoding. The empty set hashes the
    /// empty string.
    ///
    /// This is Core's `gettxoutsetinfo hash_serialized_3` (displayed
    /// byte-reversed by RPC) for any set where no transaction has unspent
    /// outputs on both sides of vout 16,512: Core iterates its LevelDB keys,
    /// whose VARINT vout encoding does not sort numerically beyond that.
    /// Not yet cross-checked against a running Core.
    pub fn utxo_digest(&self) -> Result<sha256d::Hash, StoreError> {
        let mut engine = sha256d::Hash::engine();
        let mut buf = Vec::with_capacity(128);
        self.for_each_coin(|outpoint, coin| {
            buf.clear();
            buf.extend_from_slice(outpoint.txid.as_byte_array());
            buf.extend_from_slice(&outpoint.vout.to_le_bytes());
            let code = (coin.height << 1).wrapping_add(u32::from(coin.is_coinbase));
            buf.extend_from_slice(&code.to_le_bytes());
            buf.extend_from_slice(&coin.amount.to_sat().to_le_bytes());
            buf.extend_from_slice(&encode::serialize(&encode::VarInt(
                coin.script_pubkey.len() as u64,
            )));
            buf.extend_from_slice(coin.script_pubkey.as_bytes());
            engine.input(&buf);
            true
        })?;
        Ok(sha256d::Hash::from_engine(engine))
    }
}
