//! Releasing the LMDB map's resident pages (issue 12, "Bounded memory").
//! Run by the thread that commits ([`Store::commit`](super::Store::commit),
//! the sync-manager thread), right after each successful write
//! transaction, unless [`StoreOptions::release_map_pages`] is off.
//!
//! LMDB reads through one shared, read-only file mapping of `data.mdb`
//! (`mmap(PROT_READ, MAP_SHARED)`; strand never opens it with
//! `MDB_WRITEMAP`). Every page a read or a write transaction touches, and
//! the neighbours the kernel maps with it (fault-around, 64 KiB), stays
//! in this process's page tables and counts in its RSS, although it is
//! clean page cache: after a 2,000-block sync 44 of the 109 MB file were
//! resident in the node's RSS. [`release`] calls
//! `madvise(MADV_DONTNEED)` over the used part of the map (pages
//! `0..=last_pgno` from `mdb_env_info`; the map's address, which LMDB
//! reports only for `MDB_FIXEDMAP`, comes from `/proc/self/maps`, found
//! by the data file's inode and the map size, once per map size).
//!
//! Why this is safe while other threads read: for a `MAP_SHARED` file
//! mapping `MADV_DONTNEED` only removes the page-table entries. The pages
//! stay in the page cache (and on disk), the mapping and its addresses
//! stay valid, and the next access to an address faults the same
//! page-cache page back in (a minor fault, no I/O unless the kernel has
//! evicted the page meanwhile, when it is read from the file as for any
//! first access). A reader on another thread holding a `&[u8]` into the
//! map therefore reads the same bytes before and after. LMDB never
//! rewrites a page that a live read transaction can reach (copy-on-write),
//! so the bytes a reader sees cannot change either way. The one thing
//! that must not run concurrently is a resize of the map (LMDB unmaps and
//! maps it again, possibly elsewhere, and another mapping could then sit
//! at the old address): the caller holds the store's writer lock (only
//! the writer grows the map) and the shared `resize` lock, so address and
//! size read here stay valid for the call.
//!
//! The cost is the `madvise` call (it walks the page tables of the used
//! range) and the minor faults that bring back the pages the next
//! transactions touch (the B-tree's upper levels at once); see README
//! "Memory budget" for the measured figures. Pages are dropped from our
//! page tables only: the kernel keeps them as page cache, reclaimable
//! under memory pressure, as Bitcoin Core's LevelDB and block files are.

use std::io;

/// Where LMDB mapped `data.mdb`: found once in `/proc/self/maps` and
/// kept until the map is resized (LMDB's `mdb_env_info` reports the map's
/// address only for `MDB_FIXEDMAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MapRange {
    /// First byte of the mapping.
    pub(super) addr: usize,
    /// Its length in bytes (the map size when it was found).
    pub(super) len: usize,
}

impl MapRange {
    /// The mapping of the file with inode `ino` named `…/data.mdb` whose
    /// length is `map_size`, from `/proc/self/maps`.
    ///
    /// # Errors
    /// Reading `/proc/self/maps` failed, or no such mapping exists.
    pub(super) fn find(ino: u64, map_size: usize) -> io::Result<MapRange> {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        maps.lines()
            .filter_map(parse_maps_line)
            .find(|(r, i, name)| *i == ino && r.len == map_size && name.ends_with("data.mdb"))
            .map(|(r, _, _)| r)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "LMDB map not in /proc/self/maps")
            })
    }
}

/// `start-end perms offset dev inode path` → (range, inode, path; the
/// path may hold spaces).
fn parse_maps_line(line: &str) -> Option<(MapRange, u64, &str)> {
    fn field(rest: &str) -> Option<(&str, &str)> {
        let rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        Some((rest.get(..end)?, rest.get(end..)?))
    }
    let (range, rest) = field(line)?;
    let (start, end) = range.split_once('-')?;
    let addr = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let (_perms, rest) = field(rest)?;
    let (_offset, rest) = field(rest)?;
    let (_dev, rest) = field(rest)?;
    let (ino, rest) = field(rest)?;
    let name = rest.trim();
    if name.is_empty() {
        return None;
    }
    Some((
        MapRange {
            addr,
            len: end.checked_sub(addr)?,
        },
        ino.parse().ok()?,
        name,
    ))
}

/// Drops the page-table entries of the first `used` bytes of `map` (see
/// the module docs). Returns the number of bytes advised.
///
/// # Errors
/// The `errno` of a failing `madvise` (nothing is changed then; the store
/// works as before, only with more RSS).
pub(super) fn release(map: MapRange, used: usize) -> io::Result<usize> {
    // The map starts page-aligned (mmap); round the length up to the
    // system page so the last partly used page goes too.
    let sys_page = system_page_size();
    let len = used
        .div_ceil(sys_page)
        .saturating_mul(sys_page)
        .min(map.len);
    if len == 0 || map.addr == 0 {
        return Ok(0);
    }
    // SAFETY: `map.addr..map.addr + len` lies inside LMDB's live
    // `MAP_SHARED` read-only file mapping (`len <= map.len`), which the
    // caller keeps from being remapped for the duration of the call
    // (module docs). `MADV_DONTNEED` on a shared file mapping discards no
    // data: later accesses fault the page-cache pages back in.
    let rc = unsafe { libc::madvise(map.addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len)
}

/// Asks the kernel to read `bytes`, a value inside the map, ahead
/// (`madvise(MADV_WILLNEED)` over the pages it spans): with
/// `MDB_NORDAHEAD` a block read would otherwise fault its pages in one
/// 4 KiB read at a time. Advice only: failure changes nothing.
pub(super) fn will_need(bytes: &[u8]) {
    let sys_page = system_page_size();
    if bytes.len() < 2 * sys_page {
        return; // one or two faults; not worth a system call
    }
    let start = bytes.as_ptr() as usize;
    let aligned = start - start % sys_page;
    let len = (start + bytes.len()) - aligned;
    // SAFETY: `aligned..start + bytes.len()` covers the pages of a live
    // slice into LMDB's file mapping (mappings are page-aligned, so the
    // page holding `start` is mapped); `MADV_WILLNEED` only starts reads
    // into the page cache and changes no contents.
    let _ = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_WILLNEED) };
}

fn system_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::super::{Store, StoreOptions, SyncMode, WriteBatch};
    use bitcoin::hashes::Hash;
    use bitcoin::BlockHash;
    use std::path::Path;

    const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

    /// Resident kB of this process's mapping of `file`, from
    /// `/proc/self/smaps` (the map's own page-table entries, which
    /// `mincore` cannot show: it reports the page cache).
    fn mapped_rss_kb(file: &Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read smaps");
        let want = file.to_string_lossy().into_owned();
        let mut inside = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if first.contains('-') && !first.ends_with(':') {
                inside = line.trim_end().ends_with(want.as_str());
            } else if inside {
                if let Some(v) = line.strip_prefix("Rss:") {
                    kb += v
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
            }
        }
        kb
    }

    fn hash(n: u32) -> BlockHash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        b[4] = 0x5e;
        BlockHash::from_byte_array(b)
    }

    fn body(n: u32) -> Vec<u8> {
        (0..50_000u32)
            .map(|i| (i.wrapping_mul(31) ^ n) as u8)
            .collect()
    }

    /// A store (`opts`, without syncs) holding bodies 0..200 of 50 kB
    /// (10 MB) in four commits, and the path of its data file.
    fn store_with_bodies(opts: StoreOptions) -> (tempfile::TempDir, Store, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = StoreOptions {
            sync_mode: SyncMode::NoSync,
            ..opts
        };
        let store = Store::open_with(dir.path(), MAGIC, opts).expect("open");
        let data = std::fs::canonicalize(dir.path())
            .expect("canonical dir")
            .join("data.mdb");
        for chunk in 0..4u32 {
            let mut batch = WriteBatch::new();
            for n in chunk * 50..(chunk + 1) * 50 {
                batch.put_block_raw(&hash(n), body(n));
            }
            store.commit(&batch).expect("commit");
        }
        (dir, store, data)
    }

    /// Writes 200 bodies of 50 kB (10 MB), reads them all (the map's
    /// pages become resident), then commits one small batch: with the
    /// release on, the map's resident size falls below 1 MB and every
    /// body reads back equal; with it off, it stays above 8 MB.
    fn resident_after_commit(release: bool) -> (u64, u64) {
        let (_dir, store, data) = store_with_bodies(StoreOptions {
            release_map_pages: release,
            ..StoreOptions::default()
        });
        // Hold a reference into the map across the release: the bytes
        // must not change under it.
        let before = {
            let view = store.read().expect("read view");
            let held = view
                .get_raw(super::super::Table::Blocks, hash(7).as_byte_array())
                .expect("get")
                .expect("present");
            let copy = held.to_vec();
            for n in 0..200 {
                assert_eq!(
                    view.get_block_raw(&hash(n)).expect("get").as_deref(),
                    Some(body(n).as_slice())
                );
            }
            let resident = mapped_rss_kb(&data);
            if release {
                store.release_map_pages_now().expect("release");
            }
            assert_eq!(held, copy.as_slice(), "bytes under a live reader");
            assert_eq!(held, body(7).as_slice());
            resident
        };
        let mut batch = WriteBatch::new();
        batch.put_block_raw(&hash(1_000), vec![1; 100]);
        store.commit(&batch).expect("small commit");
        let after = mapped_rss_kb(&data);
        for n in 0..200 {
            assert_eq!(
                store.get_block_raw(&hash(n)).expect("get"),
                Some(body(n)),
                "body {n} after the release"
            );
        }
        (before, after)
    }

    /// Two commits of 10,000 changes, the map released after each:
    /// every coin reads back as committed.
    #[test]
    fn releases_inside_a_big_commit_keep_every_value() {
        use bitcoin::{Amount, OutPoint, ScriptBuf, Txid};
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = StoreOptions {
            sync_mode: SyncMode::NoSync,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), MAGIC, opts).expect("open");
        let op = |n: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&n.to_le_bytes());
            OutPoint::new(Txid::from_byte_array(b), n % 3)
        };
        let coin = |n: u32| super::super::Coin {
            amount: Amount::from_sat(u64::from(n) + 1),
            height: n,
            is_coinbase: n.is_multiple_of(2),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51; (n % 40) as usize + 1]),
        };
        let mut batch = WriteBatch::new();
        for n in 0..10_000 {
            batch.add_coin(&op(n), &coin(n));
        }
        store.commit(&batch).expect("first commit");
        let mut batch = WriteBatch::new();
        for n in 0..5_000 {
            batch.spend_coin(&op(n * 2));
        }
        for n in 10_000..15_000 {
            batch.add_coin(&op(n), &coin(n));
        }
        store.commit(&batch).expect("second commit");
        assert_eq!(store.utxo_count().expect("count"), 10_000);
        for n in 0..15_000 {
            let want = (n >= 10_000 || n % 2 == 1).then(|| coin(n));
            assert_eq!(store.get_coin(&op(n)).expect("get"), want, "coin {n}");
        }
    }

    /// 200 bodies of 50 kB read in one view: with `release_every_ops`
    /// at 8 the map's resident size stays under 4 MB at the end of the
    /// view (without it, above 8 MB: see the tests below), and every body
    /// still reads back equal, including one held across the releases.
    #[test]
    fn releases_every_few_reads_inside_one_view() {
        let (_dir, store, data) = store_with_bodies(StoreOptions {
            release_every_ops: 8,
            ..StoreOptions::default()
        });
        let view = store.read().expect("read view");
        let held = view
            .get_raw(super::super::Table::Blocks, hash(7).as_byte_array())
            .expect("get")
            .expect("present");
        for n in 0..200 {
            assert_eq!(
                view.get_block_raw(&hash(n)).expect("get").as_deref(),
                Some(body(n).as_slice())
            );
        }
        let resident = mapped_rss_kb(&data);
        assert_eq!(held, body(7).as_slice(), "bytes under a live reader");
        assert!(
            resident < 4 * 1024,
            "{resident} kB resident inside the view"
        );
    }

    #[test]
    fn maps_lines_parse() {
        let line = "7f12a000-7f12e000 r--s 00000000 fd:01 123456    /tmp/x y/data.mdb";
        let (r, ino, name) = super::parse_maps_line(line).expect("parses");
        assert_eq!(r.addr, 0x7f12_a000);
        assert_eq!(r.len, 0x4000);
        assert_eq!(ino, 123_456);
        assert_eq!(name, "/tmp/x y/data.mdb");
        assert!(super::parse_maps_line("7f12a000-7f12e000 rw-p 00000000 00:00 0").is_none());
        assert!(super::parse_maps_line("zz-7f12e000 r--s 0 fd:01 1 /a/data.mdb").is_none());
    }

    #[test]
    fn commit_releases_the_maps_resident_pages() {
        let (before, after) = resident_after_commit(true);
        assert!(before > 8 * 1024, "reads made {before} kB resident");
        assert!(after < 1024, "{after} kB still resident after commit");
    }

    #[test]
    fn without_the_option_the_pages_stay() {
        let (before, after) = resident_after_commit(false);
        assert!(before > 8 * 1024, "reads made {before} kB resident");
        assert!(after > 8 * 1024, "only {after} kB resident without release");
    }
}
