//! `-reindex-chainstate` and `-reindex` against the real binary: a damaged
//! UTXO set or block index is rebuilt from the stored blocks to the same
//! tip and UTXO digest; an interrupted rebuild runs again at the next start.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::sha256d;
use bitcoin::{Block, BlockHash};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::{call, ClientAuth};
use strand::store::{Store, WriteBatch};

fn rpc(node: &NodeProcess, dir: &std::path::Path, method: &str, params: Value) -> Value {
    let auth = ClientAuth::Cookie(dir.join("regtest").join(".cookie"));
    let params = params.as_array().cloned().unwrap_or_default();
    call(node.rpc_addr(), &auth, method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn submit(node: &NodeProcess, dir: &std::path::Path, blocks: &[Block]) {
    for b in blocks {
        let r = rpc(node, dir, "submitblock", json!([serialize_hex(b)]));
        assert!(
            r.is_null() || r == json!("inconclusive"),
            "submitblock {}: {r}",
            b.block_hash()
        );
    }
}

fn start(dir: &std::path::Path, args: &[&str]) -> NodeProcess {
    NodeProcess::start_in(dir.to_str().unwrap(), args)
}

fn stop(mut node: NodeProcess) -> Vec<String> {
    let status = node.terminate(Duration::from_secs(60)).expect("node exits");
    assert!(status.success(), "exit {status:?}: {:?}", node.log_lines());
    node.log_lines()
}

fn chainstate(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("regtest").join("chainstate")
}

/// Tip and UTXO digest of a stopped node.
fn tip_and_digest(dir: &std::path::Path) -> (BlockHash, sha256d::Hash) {
    chain_of(dir).utxo_digest().expect("digest")
}

fn open_store(dir: &std::path::Path) -> Store {
    let magic = strand::chain::ChainParams::for_network(bitcoin::Network::Regtest)
        .unwrap()
        .magic()
        .to_bytes();
    Store::open(&chainstate(dir), magic).expect("open store")
}

/// Removes one unspent output of `chain` from the stopped node's UTXO set.
fn damage_utxo_set(dir: &std::path::Path, chain: &strand::testdata::ChainBuilder) {
    let store = open_store(dir);
    let (op, _) = chain.spendable_outputs()[0];
    assert!(store.get_coin(&op).unwrap().is_some(), "{op} not unspent");
    let mut batch = WriteBatch::new();
    batch.spend_coin(&op);
    store.commit(&batch).unwrap();
}

/// Runs the binary on `dir` and waits (60 s at most) for it to exit.
fn run_to_exit(dir: &std::path::Path, args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(strand_bin())
        .args(["--regtest", "--datadir", dir.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--rpcport", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strand");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("strand did not exit");
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

#[test]
fn reindex_chainstate_rebuilds_the_utxo_set() {
    let chain = test_chain(31, 120, 3);
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    submit(&node, dir.path(), &chain.blocks()[1..]);
    stop(node);
    let (tip, digest) = tip_and_digest(dir.path());
    assert_eq!(tip, chain.tip().block_hash());

    damage_utxo_set(dir.path(), &chain);
    assert_ne!(tip_and_digest(dir.path()).1, digest, "damage not seen");

    let node = start(dir.path(), &["-reindex-chainstate"]);
    assert_eq!(
        rpc(&node, dir.path(), "getblockcount", json!([])),
        json!(120)
    );
    let log = stop(node);
    assert!(has_line(&log, "wiping the UTXO set"), "{log:?}");
    assert!(
        has_line(&log, "-reindex-chainstate done: height 120"),
        "{log:?}"
    );
    assert_eq!(tip_and_digest(dir.path()), (tip, digest));
    assert!(!chainstate(dir.path()).join("reindexing").exists());

    // An interrupted rebuild (its marker left behind) runs again at the
    // next start, without the option.
    damage_utxo_set(dir.path(), &chain);
    std::fs::write(chainstate(dir.path()).join("reindexing"), "chainstate").unwrap();
    let node = start(dir.path(), &[]);
    let log = stop(node);
    assert!(
        has_line(&log, "an earlier -reindex-chainstate did not finish"),
        "{log:?}"
    );
    assert_eq!(tip_and_digest(dir.path()), (tip, digest));
    assert!(!chainstate(dir.path()).join("reindexing").exists());
}

#[test]
fn reindex_rebuilds_the_block_index_and_chain_state() {
    // A chain that reorganised: the stale branch's blocks are stored too.
    let prefix = test_chain(32, 110, 3);
    let mut branch_a = prefix.fork_at(110).unwrap();
    for _ in 0..3 {
        branch_a.next_block(3);
    }
    let mut branch_c = prefix.fork_at(110).unwrap();
    for _ in 0..5 {
        branch_c.next_block(3);
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    submit(&node, dir.path(), &branch_a.blocks()[1..]);
    submit(&node, dir.path(), &branch_c.blocks()[111..]);
    stop(node);
    let (tip, digest) = tip_and_digest(dir.path());
    assert_eq!(tip, branch_c.tip().block_hash());

    // Lose an active block's index entry: the node no longer starts.
    {
        let store = open_store(dir.path());
        let lost = prefix.block(50).unwrap().block_hash();
        let pos = store
            .load_index_records()
            .unwrap()
            .records
            .iter()
            .find(|(_, r)| r.header.block_hash() == lost)
            .map(|(p, _)| *p)
            .expect("record of block 50");
        let mut batch = WriteBatch::new();
        batch.delete_index_record(pos);
        store.commit(&batch).unwrap();
    }
    assert!(!run_to_exit(dir.path(), &[]).success());

    let node = start(dir.path(), &["-reindex", "-txindex"]);
    assert_eq!(
        rpc(&node, dir.path(), "getbestblockhash", json!([])),
        json!(tip.to_string())
    );
    // The stale branch was re-indexed as a fork.
    let tips = rpc(&node, dir.path(), "getchaintips", json!([]));
    let stale = branch_a.tip().block_hash().to_string();
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == json!(stale) && t["height"] == json!(113)),
        "{tips}"
    );
    // The txindex was rebuilt with it.
    let ok = wait_until(Duration::from_secs(30), || {
        rpc(&node, dir.path(), "getindexinfo", json!([]))["txindex"]["synced"] == json!(true)
    });
    assert!(ok, "txindex not synced");
    let block = branch_c.block(112).unwrap();
    let txid = block.txdata[1].compute_txid();
    let v = rpc(
        &node,
        dir.path(),
        "getrawtransaction",
        json!([txid.to_string(), 1]),
    );
    assert_eq!(v["blockhash"], json!(block.block_hash().to_string()));
    let log = stop(node);
    assert!(has_line(&log, "-reindex done: height 115"), "{log:?}");
    assert_eq!(tip_and_digest(dir.path()), (tip, digest));
    // And it starts normally again.
    let node = start(dir.path(), &[]);
    assert_eq!(
        rpc(&node, dir.path(), "getblockcount", json!([])),
        json!(115)
    );
    stop(node);
}
