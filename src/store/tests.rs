//! Unit tests of the storage layer: open/reopen, foreign and corrupt files,
//! commit atomicity and isolation, map growth under concurrent readers, the
//! UTXO digest, and the encodings. Run on the test harness's threads.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::pow::Work;
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, Txid};

use super::codec::{self, Reader};
use super::*;

const REGTEST: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
const MAINNET: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];

fn small() -> StoreOptions {
    StoreOptions {
        initial_map_size: MIN_MAP_SIZE,
        ..StoreOptions::default()
    }
}

fn txid(i: u64) -> Txid {
    Txid::from_byte_array(sha256d::Hash::hash(&i.to_le_bytes()).to_byte_array())
}

fn outpoint(i: u64) -> OutPoint {
    OutPoint {
        txid: txid(i / 3),
        vout: (i % 3) as u32,
    }
}

fn hash(i: u64) -> BlockHash {
    BlockHash::from_byte_array(sha256d::Hash::hash(&(i + 1_000_000).to_le_bytes()).to_byte_array())
}

/// Coins with every script shape the encoding special-cases, and others.
fn coin(i: u64) -> Coin {
    let b = (i % 251) as u8;
    let script = match i % 6 {
        0 => [&[0x76, 0xa9, 0x14][..], &[b; 20], &[0x88, 0xac]].concat(),
        1 => [&[0xa9, 0x14][..], &[b; 20], &[0x87]].concat(),
        2 => [&[0x21, 0x02 + (i % 2) as u8][..], &[b; 32], &[0xac]].concat(),
        3 => [&[0x00, 0x14][..], &[b; 20]].concat(),
        4 => Vec::new(),
        _ => vec![b; 300 + (i % 50) as usize],
    };
    Coin {
        amount: Amount::from_sat(i * 12_345),
        height: (i * 7) as u32,
        is_coinbase: i.is_multiple_of(5),
        script_pubkey: ScriptBuf::from_bytes(script),
    }
}

fn genesis() -> bitcoin::Block {
    bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest)
}

fn entry(height: u32, reason: Option<&str>) -> IndexEntry {
    IndexEntry {
        header: genesis().header,
        height,
        chain_work: Work::from_be_bytes([height as u8; 32]),
        status: BlockStatus::VALID_HEADER | BlockStatus::HAVE_DATA,
        invalid_reason: reason.map(str::to_string),
    }
}

fn undo(n: u64) -> BlockUndo {
    BlockUndo {
        spent: (0..n).map(coin).collect(),
    }
}

/// A batch connecting "block" `h`: index entry, active chain, body, undo,
/// coins `10h..10h+10`, tip.
fn block_batch(h: u32) -> WriteBatch {
    let mut b = WriteBatch::new();
    let bh = hash(u64::from(h));
    b.put_block_index(&bh, &entry(h, None));
    b.set_active(h, &bh);
    b.put_block(&bh, &genesis());
    b.put_undo(&bh, &undo(u64::from(h)));
    for i in 0..10 {
        let i = u64::from(h) * 10 + i;
        b.add_coin(&outpoint(i), &coin(i));
    }
    b.set_tip(&bh);
    b
}

fn assert_block_present(s: &Store, h: u32) {
    let bh = hash(u64::from(h));
    assert_eq!(s.get_block_index(&bh).unwrap(), Some(entry(h, None)));
    assert_eq!(s.get_active(h).unwrap(), Some(bh));
    assert_eq!(s.get_block(&bh).unwrap(), Some(genesis()));
    assert_eq!(s.get_undo(&bh).unwrap(), Some(undo(u64::from(h))));
    for i in 0..10 {
        let i = u64::from(h) * 10 + i;
        assert_eq!(s.get_coin(&outpoint(i)).unwrap(), Some(coin(i)));
    }
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<StoreError>();
    check::<WriteBatch>();
}

#[test]
fn fresh_store_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), REGTEST).unwrap();
    assert_eq!(s.tip().unwrap(), None);
    assert_eq!(s.utxo_count().unwrap(), 0);
    assert!(s.load_block_index().unwrap().is_empty());
    assert!(s.load_active_chain().unwrap().is_empty());
    assert_eq!(s.read().unwrap().active_height().unwrap(), None);
    assert_eq!(s.utxo_digest().unwrap(), sha256d::Hash::hash(b""));
    assert_eq!(s.magic(), REGTEST);
    assert_eq!(s.map_size(), DEFAULT_INITIAL_MAP_SIZE);
}

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), REGTEST).unwrap();
        for h in 0..3 {
            s.commit(&block_batch(h)).unwrap();
        }
    }
    let s = Store::open(dir.path(), REGTEST).unwrap();
    for h in 0..3 {
        assert_block_present(&s, h);
    }
    assert_eq!(s.tip().unwrap(), Some(hash(2)));
    assert_eq!(s.utxo_count().unwrap(), 30);
    assert_eq!(
        s.load_active_chain().unwrap(),
        vec![hash(0), hash(1), hash(2)]
    );
    assert_eq!(s.read().unwrap().active_height().unwrap(), Some(2));
    let mut index = s.load_block_index().unwrap();
    index.sort_by_key(|(_, e)| e.height);
    let expected: Vec<_> = (0..3).map(|h| (hash(h), entry(h as u32, None))).collect();
    assert_eq!(index, expected);
    assert_eq!(
        s.get_block_raw(&hash(0)).unwrap(),
        Some(bitcoin::consensus::encode::serialize(&genesis()))
    );
    assert_eq!(s.get_block(&hash(99)).unwrap(), None);
    assert_eq!(s.get_coin(&outpoint(999)).unwrap(), None);
}

#[test]
fn disconnect_removes_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), REGTEST).unwrap();
    s.commit(&block_batch(0)).unwrap();
    s.commit(&block_batch(1)).unwrap();
    let digest0 = {
        let other = tempfile::tempdir().unwrap();
        let t = Store::open(other.path(), REGTEST).unwrap();
        t.commit(&block_batch(0)).unwrap();
        t.utxo_digest().unwrap()
    };
    // Disconnect block 1: remove its coins, unset height 1, tip back.
    let mut b = WriteBatch::new();
    for i in 10..20 {
        b.spend_coin(&outpoint(i));
    }
    b.unset_active(1);
    b.delete_undo(&hash(1));
    b.set_tip(&hash(0));
    s.commit(&b).unwrap();
    assert_eq!(s.tip().unwrap(), Some(hash(0)));
    assert_eq!(s.utxo_count().unwrap(), 10);
    assert_eq!(s.load_active_chain().unwrap(), vec![hash(0)]);
    assert_eq!(s.get_undo(&hash(1)).unwrap(), None);
    assert_eq!(s.utxo_digest().unwrap(), digest0);
}

#[test]
fn wrong_network_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), REGTEST).unwrap());
    match Store::open(dir.path(), MAINNET) {
        Err(StoreError::WrongNetwork { expected, found }) => {
            assert_eq!(expected, MAINNET);
            assert_eq!(found, REGTEST);
        }
        other => panic!("expected WrongNetwork, got {:?}", other.map(|_| ())),
    }
    let msg = Store::open(dir.path(), MAINNET).err().unwrap().to_string();
    assert_eq!(
        msg,
        "store belongs to another network: expected magic f9beb4d9, found fabfb5da"
    );
    // The right network still opens.
    Store::open(dir.path(), REGTEST).unwrap();
}

fn expect_not_a_store(dir: &Path) -> String {
    match Store::open(dir, REGTEST) {
        Err(e @ StoreError::NotAStore { .. }) => e.to_string(),
        other => panic!("expected NotAStore, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn garbage_data_file_is_an_error() {
    for len in [100usize, 3 * 4096, 64 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 253) as u8).collect();
        std::fs::write(dir.path().join("data.mdb"), &garbage).unwrap();
        let msg = expect_not_a_store(dir.path());
        assert!(msg.contains("is not a strand store"), "{msg}");
        // Nothing was overwritten.
        assert_eq!(std::fs::read(dir.path().join("data.mdb")).unwrap(), garbage);
    }
}

#[test]
fn foreign_lmdb_environment_is_an_error() {
    // Plain data in the main database.
    let dir = tempfile::tempdir().unwrap();
    {
        let env = lmdb::Environment::new().open(dir.path()).unwrap();
        let db = env.open_db(None).unwrap();
        let mut txn = env.begin_rw_txn().unwrap();
        txn.put(db, b"hello", b"world", lmdb::WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    let msg = expect_not_a_store(dir.path());
    assert!(msg.contains("foreign data"), "{msg}");

    // A plain value named like one of our tables.
    let dir = tempfile::tempdir().unwrap();
    {
        let env = lmdb::Environment::new().open(dir.path()).unwrap();
        let db = env.open_db(None).unwrap();
        let mut txn = env.begin_rw_txn().unwrap();
        txn.put(db, b"meta", b"x", lmdb::WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    expect_not_a_store(dir.path());

    // Our table names, with data, but no magic.
    let dir = tempfile::tempdir().unwrap();
    {
        let env = lmdb::Environment::new()
            .set_max_dbs(8)
            .open(dir.path())
            .unwrap();
        for t in Table::ALL {
            let db = env
                .create_db(Some(t.name()), lmdb::DatabaseFlags::empty())
                .unwrap();
            if t == Table::Utxo {
                let mut txn = env.begin_rw_txn().unwrap();
                txn.put(db, &[0u8; 36], b"x", lmdb::WriteFlags::empty())
                    .unwrap();
                txn.commit().unwrap();
            }
        }
    }
    let msg = expect_not_a_store(dir.path());
    assert!(msg.contains("no network magic"), "{msg}");
}

#[test]
fn interrupted_creation_is_completed() {
    // A crash during the first open can leave some empty tables and no
    // meta: the next open finishes the job.
    let dir = tempfile::tempdir().unwrap();
    {
        let env = lmdb::Environment::new()
            .set_max_dbs(8)
            .open(dir.path())
            .unwrap();
        env.create_db(Some("meta"), lmdb::DatabaseFlags::empty())
            .unwrap();
        env.create_db(Some("block_index"), lmdb::DatabaseFlags::empty())
            .unwrap();
    }
    let s = Store::open(dir.path(), REGTEST).unwrap();
    s.commit(&block_batch(0)).unwrap();
    drop(s);
    assert_block_present(&Store::open(dir.path(), REGTEST).unwrap(), 0);
}

#[test]
fn corrupt_values_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), REGTEST).unwrap();
    let mut b = WriteBatch::new();
    b.push_raw(Table::Utxo, &codec::outpoint_key(&outpoint(1)), vec![0xff]);
    b.push_raw(Table::BlockIndex, hash(1).as_byte_array(), vec![1, 2, 3]);
    b.push_raw(Table::Blocks, hash(1).as_byte_array(), vec![1, 2, 3]);
    b.push_raw(Table::Undo, hash(1).as_byte_array(), vec![200]);
    b.push_raw(Table::ActiveChain, &codec::height_key(0), vec![1; 31]);
    b.push_raw(Table::Meta, codec::META_TIP, vec![1; 33]);
    s.commit(&b).unwrap();

    let table_of = |r: Result<_, StoreError>| match r {
        Err(StoreError::Corrupt { table, .. }) => table,
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, got a value"),
    };
    assert_eq!(table_of(s.get_coin(&outpoint(1)).map(|_| ())), Table::Utxo);
    assert_eq!(table_of(s.utxo_digest().map(|_| ())), Table::Utxo);
    assert_eq!(
        table_of(s.get_block_index(&hash(1)).map(|_| ())),
        Table::BlockIndex
    );
    assert_eq!(
        table_of(s.load_block_index().map(|_| ())),
        Table::BlockIndex
    );
    assert_eq!(table_of(s.get_block(&hash(1)).map(|_| ())), Table::Blocks);
    assert_eq!(table_of(s.get_undo(&hash(1)).map(|_| ())), Table::Undo);
    assert_eq!(table_of(s.get_active(0).map(|_| ())), Table::ActiveChain);
    assert_eq!(table_of(s.tip().map(|_| ())), Table::Meta);
    let msg = s.get_coin(&outpoint(1)).err().unwrap().to_string();
    assert!(
        msg.starts_with("corrupt entry in table utxo, key "),
        "{msg}"
    );

    // A gap in the active chain.
    let mut b = WriteBatch::new();
    b.set_active(0, &hash(0));
    b.set_active(2, &hash(2));
    s.commit(&b).unwrap();
    assert_eq!(
        table_of(s.load_active_chain().map(|_| ())),
        Table::ActiveChain
    );
}

#[test]
fn bad_meta_is_reported_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), REGTEST).unwrap();
        let mut b = WriteBatch::new();
        b.push_raw(
            Table::Meta,
            codec::META_VERSION,
            99u32.to_le_bytes().to_vec(),
        );
        s.commit(&b).unwrap();
    }
    match Store::open(dir.path(), REGTEST) {
        Err(StoreError::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
        }
        other => panic!("expected UnsupportedVersion, got {:?}", other.map(|_| ())),
    }
    {
        let env = lmdb::Environment::new()
            .set_max_dbs(8)
            .open(dir.path())
            .unwrap();
        let db = env.open_db(Some("meta")).unwrap();
        let mut txn = env.begin_rw_txn().unwrap();
        txn.put(db, b"magic", b"abc", lmdb::WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    match Store::open(dir.path(), REGTEST) {
        Err(StoreError::Corrupt { table, .. }) => assert_eq!(table, Table::Meta),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn commit_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), REGTEST).unwrap();
    s.commit(&block_batch(0)).unwrap();
    let before = s.utxo_digest().unwrap();

    // Connects block 1 but spends a coin that does not exist, last.
    let mut b = block_batch(1);
    b.spend_coin(&outpoint(3));
    b.spend_coin(&outpoint(12_345));
    match s.commit(&b) {
        Err(StoreError::MissingKey { table, key }) => {
            assert_eq!(table, Table::Utxo);
            assert_eq!(
                key,
                codec::outpoint_key(&outpoint(12_345)).to_lower_hex_string()
            );
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    // Nothing of the batch is visible, now or after reopening.
    let check = |s: &Store| {
        assert_eq!(s.tip().unwrap(), Some(hash(0)));
        assert_eq!(s.utxo_count().unwrap(), 10);
        assert_eq!(s.utxo_digest().unwrap(), before);
        assert_eq!(s.get_coin(&outpoint(3)).unwrap(), Some(coin(3)));
        assert_eq!(s.get_block_index(&hash(1)).unwrap(), None);
        assert_eq!(s.get_active(1).unwrap(), None);
        assert_eq!(s.get_block_raw(&hash(1)).unwrap(), None);
        assert_eq!(s.get_undo(&hash(1)).unwrap(), None);
    };
    check(&s);
    drop(s);
    check(&Store::open(dir.path(), REGTEST).unwrap());
}

#[test]
fn a_directory_opens_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), REGTEST).unwrap();
    // Also through another spelling of the same path.
    let other = dir.path().join(".");
    match Store::open(&other, REGTEST) {
        Err(StoreError::AlreadyOpen { path }) => {
            assert_eq!(path, std::fs::canonicalize(dir.path()).unwrap())
        }
        r => panic!("expected AlreadyOpen, got {:?}", r.map(|_| ())),
    }
    drop(s);
    Store::open(&other, REGTEST).unwrap();
}

#[test]
fn readers_see_a_commit_entirely_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Store::open(dir.path(), REGTEST).unwrap());
    s.commit(&block_batch(0)).unwrap();
    let view = s.read().unwrap();
    // This thread holds a view: another read or a commit would be refused.
    assert!(matches!(s.tip(), Err(StoreError::ReadInProgress)));
    assert!(matches!(
        s.commit(&block_batch(1)),
        Err(StoreError::ReadInProgress)
    ));
    // Another thread (the writer) commits while the view is open.
    let writer = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || s.commit(&block_batch(1)))
    };
    writer.join().unwrap().unwrap();
    // The old view still sees the old state, consistently.
    assert_eq!(view.tip().unwrap(), Some(hash(0)));
    assert_eq!(view.utxo_count().unwrap(), 10);
    assert_eq!(view.get_coin(&outpoint(15)).unwrap(), None);
    assert_eq!(view.get_active(1).unwrap(), None);
    drop(view);
    // A new read sees all of it.
    assert_eq!(s.tip().unwrap(), Some(hash(1)));
    assert_eq!(s.utxo_count().unwrap(), 20);
    assert_block_present(&s, 1);
}

#[test]
fn map_grows_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Store::open_with(dir.path(), REGTEST, small()).unwrap());
    let start = s.map_size();
    assert_eq!(start, MIN_MAP_SIZE);

    // A reader thread keeps reading while the writer forces growth: every
    // snapshot must be consistent (tip h ⇔ exactly 10(h+1) + big coins).
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = s.read().unwrap();
                if let Some(tip) = v.tip().unwrap() {
                    let h = v.get_block_index(&tip).unwrap().unwrap().height;
                    assert_eq!(v.active_height().unwrap(), Some(h));
                    let n = v.utxo_count().unwrap();
                    assert!(n >= 10 * (u64::from(h) + 1), "tip {h} with {n} coins");
                }
                reads += 1;
            }
            reads
        })
    };

    // One batch larger than the whole initial map (2 MiB of blocks plus
    // coins with big scripts), then many small ones.
    let mut big = block_batch(0);
    for i in 0..32u64 {
        big.put_block_raw(&hash(10_000 + i), vec![i as u8; 64 * 1024]);
    }
    for i in 0..2_000u64 {
        let i = 100_000 + i;
        big.add_coin(&outpoint(i), &coin(i));
    }
    assert!(big.size_bytes() > 4 * MIN_MAP_SIZE);
    s.commit(&big).unwrap();
    for h in 1..40 {
        let mut b = block_batch(h);
        b.put_block_raw(&hash(20_000 + u64::from(h)), vec![h as u8; 100 * 1024]);
        s.commit(&b).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);

    assert!(s.map_size() >= 8 * start, "map size {}", s.map_size());
    let check = |s: &Store| {
        for h in 0..40 {
            assert_block_present(s, h);
        }
        for i in 0..32u64 {
            assert_eq!(
                s.get_block_raw(&hash(10_000 + i)).unwrap(),
                Some(vec![i as u8; 64 * 1024])
            );
        }
        for i in 100_000..102_000 {
            assert_eq!(s.get_coin(&outpoint(i)).unwrap(), Some(coin(i)));
        }
        assert_eq!(s.utxo_count().unwrap(), 400 + 2_000);
        assert_eq!(s.tip().unwrap(), Some(hash(39)));
    };
    check(&s);
    drop(s);
    // Reopening with the small initial size maps the bigger file.
    let s = Store::open_with(dir.path(), REGTEST, small()).unwrap();
    check(&s);
    s.commit(&block_batch(40)).unwrap();
    assert_block_present(&s, 40);
}

#[test]
fn map_limit_is_an_error_and_keeps_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        initial_map_size: MIN_MAP_SIZE,
        max_map_size: 2 * MIN_MAP_SIZE,
        ..StoreOptions::default()
    };
    let s = Store::open_with(dir.path(), REGTEST, opts).unwrap();
    s.commit(&block_batch(0)).unwrap();
    let mut b = block_batch(1);
    b.put_block_raw(&hash(5), vec![0; 4 * MIN_MAP_SIZE]);
    match s.commit(&b) {
        Err(StoreError::MapFull {
            map_size,
            max_map_size,
        }) => {
            assert_eq!(max_map_size, 2 * MIN_MAP_SIZE);
            assert_eq!(map_size, 2 * MIN_MAP_SIZE);
        }
        other => panic!("expected MapFull, got {other:?}"),
    }
    assert_block_present(&s, 0);
    assert_eq!(s.tip().unwrap(), Some(hash(0)));
    s.commit(&block_batch(1)).unwrap();
    assert_block_present(&s, 1);
}

#[test]
fn utxo_digest_ignores_insertion_order_and_sees_every_field() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<_> = dirs
        .iter()
        .map(|d| Store::open(d.path(), REGTEST).unwrap())
        .collect();
    let ids: Vec<u64> = (0..200).collect();

    let mut forward = WriteBatch::new();
    for &i in &ids {
        forward.add_coin(&outpoint(i), &coin(i));
    }
    stores[0].commit(&forward).unwrap();

    // Reverse order, over several commits, with an add-then-spend.
    for chunk in ids.iter().rev().collect::<Vec<_>>().chunks(30) {
        let mut b = WriteBatch::new();
        for &&i in chunk {
            b.add_coin(&outpoint(i), &coin(i));
        }
        stores[1].commit(&b).unwrap();
    }
    let mut b = WriteBatch::new();
    b.add_coin(&outpoint(5_000), &coin(1));
    b.spend_coin(&outpoint(5_000));
    stores[1].commit(&b).unwrap();
    assert_eq!(
        stores[0].utxo_digest().unwrap(),
        stores[1].utxo_digest().unwrap()
    );

    // One field of one coin differs each time.
    let base = stores[0].utxo_digest().unwrap();
    let mut seen = vec![base];
    let variants: [fn(&mut Coin); 4] = [
        |c| c.amount += Amount::from_sat(1),
        |c| c.height += 1,
        |c| c.is_coinbase = !c.is_coinbase,
        |c| c.script_pubkey = ScriptBuf::from_bytes(vec![0x51]),
    ];
    for change in variants {
        let s = &stores[2];
        let mut b = WriteBatch::new();
        for &i in &ids {
            let mut c = coin(i);
            if i == 77 {
                change(&mut c);
            }
            b.add_coin(&outpoint(i), &c);
        }
        s.commit(&b).unwrap();
        let d = s.utxo_digest().unwrap();
        assert!(!seen.contains(&d));
        seen.push(d);
    }
    // Same coin under another outpoint.
    let mut b = WriteBatch::new();
    b.add_coin(&outpoint(77), &coin(77));
    b.spend_coin(&outpoint(77));
    b.add_coin(&outpoint(10_077), &coin(77));
    stores[2].commit(&b).unwrap();
    assert!(!seen.contains(&stores[2].utxo_digest().unwrap()));
}

#[test]
fn utxo_digest_serialization() {
    // One coin, hashed by hand as documented.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), REGTEST).unwrap();
    let c = coin(7);
    let op = outpoint(7);
    let mut b = WriteBatch::new();
    b.add_coin(&op, &c);
    s.commit(&b).unwrap();
    let mut ser = op.txid.as_byte_array().to_vec();
    ser.extend_from_slice(&op.vout.to_le_bytes());
    ser.extend_from_slice(&(c.height * 2 + u32::from(c.is_coinbase)).to_le_bytes());
    ser.extend_from_slice(&c.amount.to_sat().to_le_bytes());
    ser.push(c.script_pubkey.len() as u8);
    ser.extend_from_slice(c.script_pubkey.as_bytes());
    assert_eq!(s.utxo_digest().unwrap(), sha256d::Hash::hash(&ser));
}

#[test]
fn index_entry_round_trips() {
    let key = [0u8; 32];
    for reason in [None, Some(""), Some("bad-txns-inputs-missingorspent")] {
        let mut e = entry(123_456, reason);
        e.status = BlockStatus::VALID_HEADER | BlockStatus::FAILED;
        let bytes = e.encode();
        assert_eq!(bytes.len(), 120 + reason.map_or(0, |r| 2 + r.len()));
        assert_eq!(IndexEntry::decode(&key, &bytes).unwrap(), e);
    }
    // A reason longer than u16::MAX is truncated at a char boundary.
    let long = "é".repeat(40_000);
    let mut e = entry(1, Some(&long));
    let decoded = IndexEntry::decode(&key, &e.encode()).unwrap();
    let r = decoded.invalid_reason.unwrap();
    assert!(r.len() <= u16::MAX as usize && long.starts_with(&r) && r.len() > 65_000);
    // Corruptions.
    e.invalid_reason = Some("x".into());
    let good = e.encode();
    for bad in [
        &good[..119],
        &good[..121],
        &[good.as_slice(), &[0]].concat()[..],
    ] {
        assert!(matches!(
            IndexEntry::decode(&key, bad),
            Err(StoreError::Corrupt {
                table: Table::BlockIndex,
                ..
            })
        ));
    }
    let mut bad_status = entry(1, None).encode();
    bad_status[119] = 0x80;
    assert!(IndexEntry::decode(&key, &bad_status).is_err());
}

#[test]
fn block_status_flags() {
    let mut s = BlockStatus::VALID_HEADER | BlockStatus::HAVE_DATA;
    assert!(s.contains(BlockStatus::HAVE_DATA) && !s.is_failed());
    s.insert(BlockStatus::FAILED_CHILD);
    assert!(s.is_failed());
    s.remove(BlockStatus::HAVE_DATA);
    assert!(!s.contains(BlockStatus::HAVE_DATA));
    assert_eq!(BlockStatus::from_bits(s.bits()), Some(s));
    assert_eq!(BlockStatus::from_bits(1 << 7), None);
}

#[test]
fn coin_round_trips_and_compresses() {
    let key = [0u8; 36];
    for i in 0..60 {
        let c = coin(i);
        assert_eq!(Coin::decode(&key, &c.encode()).unwrap(), c);
    }
    // Special scripts take 21 (P2PKH, P2SH) or 33 (P2PK) bytes.
    let len = |i| coin(i).encode().len() - coin(4).encode().len() + 1;
    assert_eq!((len(6), len(7), len(8)), (21, 21, 33));
    for sat in [
        0,
        1,
        9,
        10,
        50 * 100_000_000,
        21_000_000 * 100_000_000,
        u64::MAX,
    ] {
        let c = Coin {
            amount: Amount::from_sat(sat),
            height: u32::MAX,
            is_coinbase: true,
            script_pubkey: ScriptBuf::new(),
        };
        assert_eq!(Coin::decode(&key, &c.encode()).unwrap(), c);
        assert_eq!(
            codec::decompress_amount(codec::compress_amount(sat)),
            Ok(sat)
        );
    }
    // 50 BTC is one byte.
    assert_eq!(codec::compress_amount(50 * 100_000_000), 50);
    // Corruptions: truncated, trailing, reserved tag, huge script length.
    let good = coin(6).encode();
    for bad in [
        &good[..good.len() - 1],
        &[good.as_slice(), &[0]].concat()[..],
        &[0, 0, 4][..],
        &[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f][..],
        &[][..],
    ] {
        assert!(matches!(
            Coin::decode(&key, bad),
            Err(StoreError::Corrupt {
                table: Table::Utxo,
                ..
            })
        ));
    }
    // Amount or height out of range.
    let mut over = Vec::new();
    codec::write_varint(&mut over, 0);
    codec::write_varint(&mut over, u128::MAX);
    over.push(6);
    assert!(Coin::decode(&key, &over).is_err());
    let mut high = Vec::new();
    codec::write_varint(&mut high, 1u128 << 40);
    high.extend_from_slice(&[0, 6]);
    assert!(Coin::decode(&key, &high).is_err());
}

#[test]
fn undo_round_trips() {
    let key = [0u8; 32];
    for n in [0, 1, 17] {
        let u = undo(n);
        assert_eq!(BlockUndo::decode(&key, &u.encode()).unwrap(), u);
    }
    let good = undo(3).encode();
    let mut huge_count = Vec::new();
    codec::write_varint(&mut huge_count, 1 << 60);
    huge_count.extend_from_slice(&good[1..]);
    for bad in [
        &good[..good.len() - 1],
        &[good.as_slice(), &[0]].concat()[..],
        &huge_count[..],
        &[][..],
    ] {
        assert!(matches!(
            BlockUndo::decode(&key, bad),
            Err(StoreError::Corrupt {
                table: Table::Undo,
                ..
            })
        ));
    }
}

#[test]
fn varint_round_trips_and_rejects_overflow() {
    for v in [0u128, 1, 127, 128, 300, u64::MAX as u128, u128::MAX] {
        let mut buf = Vec::new();
        codec::write_varint(&mut buf, v);
        let mut r = Reader::new(&buf);
        assert_eq!(r.varint(), Ok(v));
        assert!(r.finish().is_ok());
    }
    let mut too_big = vec![0xff; 18];
    too_big.push(0x04);
    assert!(Reader::new(&too_big).varint().is_err());
    assert!(Reader::new(&[0x80; 19]).varint().is_err());
    assert!(Reader::new(&[0x80]).varint().is_err());
}

#[test]
fn keys_sort_as_documented() {
    assert!(codec::height_key(255) < codec::height_key(256));
    let a = OutPoint {
        txid: txid(1),
        vout: 255,
    };
    let b = OutPoint {
        txid: txid(1),
        vout: 256,
    };
    assert!(codec::outpoint_key(&a) < codec::outpoint_key(&b));
    assert_eq!(
        codec::decode_outpoint_key(&codec::outpoint_key(&b)).unwrap(),
        b
    );
    assert!(codec::decode_outpoint_key(&[0; 35]).is_err());
}

#[test]
fn no_sync_modes_open_and_commit() {
    for mode in [SyncMode::NoMetaSync, SyncMode::NoSync] {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            sync_mode: mode,
            ..small()
        };
        {
            let s = Store::open_with(dir.path(), REGTEST, opts).unwrap();
            s.commit(&block_batch(0)).unwrap();
            s.sync().unwrap();
        }
        assert_block_present(&Store::open(dir.path(), REGTEST).unwrap(), 0);
    }
}

/// Environment variable telling [`crash_writer_child`] where to write.
const CRASH_DIR_VAR: &str = "STRAND_STORE_CRASH_DIR";

/// The writer of [`kill_9_leaves_a_consistent_store`], run in a child
/// process; returns at once in a normal test run.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
        return;
    };
    let s = Store::open_with(Path::new(&dir), REGTEST, small()).unwrap();
    let start = s
        .read()
        .unwrap()
        .active_height()
        .unwrap()
        .map_or(0, |h| h + 1);
    for h in start.. {
        let mut b = block_batch(h);
        // Big bodies make the map grow while we may be killed.
        b.put_block_raw(&hash(50_000 + u64::from(h)), vec![h as u8; 50 * 1024]);
        if h > 0 {
            // Spend the previous block's first coin, as a block would.
            b.spend_coin(&outpoint(u64::from(h - 1) * 10));
        }
        s.commit(&b).unwrap();
        println!("committed {h}");
    }
}

/// Checks what a crashed writer left: every block up to the tip, nothing
/// after it, and a UTXO set matching the tip exactly. Returns the tip height.
fn check_crashed_store(dir: &Path) -> Option<u32> {
    let s = Store::open(dir, REGTEST).unwrap();
    let tip = s.tip().unwrap()?;
    let h = s.get_block_index(&tip).unwrap().unwrap().height;
    assert_eq!(tip, hash(u64::from(h)));
    let chain = s.load_active_chain().unwrap();
    assert_eq!(chain, (0..=u64::from(h)).map(hash).collect::<Vec<_>>());
    for b in 0..=h {
        let bh = hash(u64::from(b));
        assert_eq!(s.get_undo(&bh).unwrap(), Some(undo(u64::from(b))));
        assert!(s
            .get_block_raw(&hash(50_000 + u64::from(b)))
            .unwrap()
            .is_some());
        for i in 0..10 {
            let i = u64::from(b) * 10 + i;
            let spent = b < h && i % 10 == 0;
            assert_eq!(
                s.get_coin(&outpoint(i)).unwrap().is_none(),
                spent,
                "coin {i}"
            );
        }
    }
    assert_eq!(
        s.utxo_count().unwrap(),
        10 * u64::from(h) + 10 - u64::from(h)
    );
    assert_eq!(s.get_block_index(&hash(u64::from(h) + 1)).unwrap(), None);
    assert_eq!(
        s.get_coin(&outpoint(u64::from(h + 1) * 10 + 1)).unwrap(),
        None
    );
    Some(h)
}

#[test]
fn kill_9_leaves_a_consistent_store() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut last = None;
    for (round, wait_lines) in [5usize, 23, 11, 40].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "store::tests::crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it commit a few batches, then kill it mid-stream.
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let mut seen = 0;
        while seen < wait_lines {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("committed") => seen += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen, wait_lines, "round {round}: the writer stopped early");
        let h = check_crashed_store(dir.path()).expect("a tip after commits");
        // Every commit it reported survived the kill (and maybe more).
        let floor = last.map_or(0, |l| l + 1) + wait_lines as u32 - 1;
        assert!(h >= floor, "round {round}: tip {h}, reported up to {floor}");
        last = Some(h);
    }
}

fn record(i: u32) -> IndexRecord {
    let mut header = genesis().header;
    header.nonce = i;
    header.time = 1_000 + i;
    IndexRecord {
        header,
        status: BlockStatus::VALID_HEADER | BlockStatus::HAVE_DATA,
        tx_count: i * 3,
    }
}

#[test]
fn index_record_round_trips_and_rejects_corruption() {
    let key = codec::index_record_key(7);
    let r = record(7);
    let bytes = r.encode();
    assert_eq!(bytes.len(), codec::INDEX_RECORD_LEN);
    assert_eq!(IndexRecord::decode(&key, &bytes).unwrap(), r);
    for bad in [
        &bytes[..87],
        &[bytes.as_slice(), &[0]].concat()[..],
        &[][..],
    ] {
        assert!(matches!(
            IndexRecord::decode(&key, bad),
            Err(StoreError::Corrupt {
                table: Table::BlockIndex,
                ..
            })
        ));
    }
    let mut bad_status = bytes;
    bad_status[83] = 0x80;
    assert!(matches!(
        IndexRecord::decode(&key, &bad_status),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn index_records_load_in_position_order_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), REGTEST, small()).unwrap();
    let mut b = WriteBatch::new();
    // Written out of order: loaded by position (big-endian keys).
    for i in [3u32, 0, 2, 1, 300, 256] {
        b.put_index_record(i, &record(i));
    }
    b.put_index_reason(2, Some("bad-txns"));
    b.put_index_reason(300, Some("high-hash"));
    s.commit(&b).unwrap();
    let loaded = s.load_index_records().unwrap();
    let positions: Vec<u32> = loaded.records.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, vec![0, 1, 2, 3, 256, 300]);
    for (p, r) in &loaded.records {
        assert_eq!(*r, record(*p));
    }
    assert_eq!(
        loaded.reasons,
        vec![(2, "bad-txns".to_string()), (300, "high-hash".to_string())]
    );
    // A cleared reason and a deleted record are gone.
    let mut b = WriteBatch::new();
    b.put_index_reason(2, None);
    b.delete_index_record(256);
    s.commit(&b).unwrap();
    let loaded = s.load_index_records().unwrap();
    assert_eq!(loaded.records.len(), 5);
    assert_eq!(loaded.reasons, vec![(300, "high-hash".to_string())]);
}

#[test]
fn corrupt_index_keys_and_reasons_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), REGTEST, small()).unwrap();
    let mut b = WriteBatch::new();
    b.put_index_record(0, &record(0));
    b.push_raw(Table::BlockIndex, &[0, 0, 0, 1, b'r'], vec![0xff, 0xfe]);
    s.commit(&b).unwrap();
    assert!(matches!(
        s.load_index_records(),
        Err(StoreError::Corrupt {
            table: Table::BlockIndex,
            ..
        })
    ));
    // A schema-1 key (a 32-byte hash) is not a position.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), REGTEST, small()).unwrap();
    let mut b = WriteBatch::new();
    b.push_raw(Table::BlockIndex, &[7; 32], record(0).encode().to_vec());
    s.commit(&b).unwrap();
    assert!(matches!(
        s.load_index_records(),
        Err(StoreError::Corrupt { .. })
    ));
    // A short record.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), REGTEST, small()).unwrap();
    let mut b = WriteBatch::new();
    b.push_raw(Table::BlockIndex, &[0, 0, 0, 0], vec![0; 40]);
    s.commit(&b).unwrap();
    assert!(s.load_index_records().is_err());
}

#[test]
fn an_old_schema_is_refused_naming_the_fix() {
    let msg = StoreError::UnsupportedVersion {
        found: 1,
        supported: SCHEMA_VERSION,
    }
    .to_string();
    assert!(msg.contains("version 1") && msg.contains("--reindex") && msg.contains("delete"));
    assert_eq!(SCHEMA_VERSION, 2);
}
