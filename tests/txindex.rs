//! `-txindex` against the real binary: built in the background for an
//! existing chain, kept in step across a reorganisation, resumed after
//! `kill -9` during its build; `getrawtransaction` of a confirmed
//! transaction without it gives Core's error; `getindexinfo`'s shape.

mod common;

use std::time::Duration;

use bitcoin::consensus::encode::{serialize, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::hex::DisplayHex;
use bitcoin::{Block, Txid};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::ClientAuth;

struct Rpc {
    addr: std::net::SocketAddr,
    auth: ClientAuth,
}

impl Rpc {
    /// The RPC of a node started with `NodeProcess::start_in(datadir, ..)`.
    fn of(node: &NodeProcess, datadir: &std::path::Path) -> Rpc {
        Rpc {
            addr: node.rpc_addr(),
            auth: ClientAuth::Cookie(datadir.join("regtest").join(".cookie")),
        }
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        rpc_ok(self.addr, &self.auth, method, params)
    }

    fn err(&self, method: &str, params: Value) -> (i32, String) {
        rpc_err(self.addr, &self.auth, method, params)
    }

    fn submit(&self, blocks: &[Block]) {
        for b in blocks {
            let r = self.ok("submitblock", json!([serialize_hex(b)]));
            assert!(
                r.is_null() || r == json!("inconclusive"),
                "submitblock {}: {r}",
                b.block_hash()
            );
        }
    }

    /// Waits (30 s at most) until `getindexinfo` says synced at `height`.
    fn wait_indexed(&self, height: u64) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(Duration::from_secs(30), || {
            last = self.ok("getindexinfo", json!([]));
            last["txindex"]["synced"] == json!(true)
                && last["txindex"]["best_block_height"] == json!(height)
        });
        assert!(ok, "txindex not synced at {height}: {last}");
        last
    }
}

fn datadir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn start(dir: &tempfile::TempDir, args: &[&str]) -> (NodeProcess, Rpc) {
    let node = NodeProcess::start_in(dir.path().to_str().unwrap(), args);
    let rpc = Rpc::of(&node, dir.path());
    (node, rpc)
}

fn stop(mut node: NodeProcess) {
    let status = node.terminate(Duration::from_secs(30)).expect("node exits");
    assert!(status.success(), "exit {status:?}: {:?}", node.log_lines());
}

/// The second transaction (first non-coinbase) of `block`.
fn spend_in(block: &Block) -> Txid {
    block.txdata[1].compute_txid()
}

const NOT_INDEXED: &str = "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions.";
const NOT_FOUND: &str =
    "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.";

#[test]
fn built_in_the_background_for_an_existing_chain() {
    let chain = test_chain(21, 130, 2);
    let dir = datadir();
    let (node, rpc) = start(&dir, &[]);
    rpc.submit(&chain.blocks()[1..]);
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(130));
    let old = chain.block(105).unwrap();
    let txid = spend_in(old);
    // Without -txindex: Core's error, and no index reported.
    assert_eq!(
        rpc.err("getrawtransaction", json!([txid.to_string()])),
        (-5, NOT_INDEXED.to_string())
    );
    assert_eq!(rpc.ok("getindexinfo", json!([])), json!({}));
    stop(node);

    let (node, rpc) = start(&dir, &["-txindex"]);
    let info = rpc.wait_indexed(130);
    assert_eq!(
        info,
        json!({"txindex": {"synced": true, "best_block_height": 130}})
    );
    let hex = rpc.ok("getrawtransaction", json!([txid.to_string()]));
    assert_eq!(
        hex.as_str().unwrap(),
        serialize(&old.txdata[1]).to_lower_hex_string()
    );
    let verbose = rpc.ok("getrawtransaction", json!([txid.to_string(), 1]));
    assert_eq!(verbose["txid"], json!(txid.to_string()));
    assert_eq!(verbose["blockhash"], json!(old.block_hash().to_string()));
    assert_eq!(verbose["confirmations"], json!(26));
    // A coinbase is indexed too.
    let coinbase = chain.block(7).unwrap().txdata[0].compute_txid();
    let v = rpc.ok("getrawtransaction", json!([coinbase.to_string(), true]));
    assert_eq!(
        v["blockhash"],
        json!(chain.block(7).unwrap().block_hash().to_string())
    );
    // Unknown: Core's error with the index.
    let unknown = Txid::from_byte_array([0x42; 32]);
    assert_eq!(
        rpc.err("getrawtransaction", json!([unknown.to_string()])),
        (-5, NOT_FOUND.to_string())
    );
    // getindexinfo's filter.
    assert_eq!(
        rpc.ok("getindexinfo", json!(["txindex"]))["txindex"]["best_block_height"],
        json!(130)
    );
    assert_eq!(rpc.ok("getindexinfo", json!(["coinstatsindex"])), json!({}));
    // New blocks are followed.
    let mut longer = chain.fork_at(130).unwrap();
    longer.next_block(2);
    rpc.submit(&longer.blocks()[131..]);
    rpc.wait_indexed(131);
    let fresh = spend_in(longer.block(131).unwrap());
    let v = rpc.ok("getrawtransaction", json!([fresh.to_string(), 1]));
    assert_eq!(v["confirmations"], json!(1));
    stop(node);
}

#[test]
fn kept_in_step_across_a_reorganisation() {
    let prefix = test_chain(22, 110, 3);
    let mut branch_a = prefix.fork_at(110).unwrap();
    for _ in 0..5 {
        branch_a.next_block(3);
    }
    let mut branch_c = prefix.fork_at(110).unwrap();
    for _ in 0..8 {
        branch_c.next_block(3);
    }
    let dir = datadir();
    let (node, rpc) = start(&dir, &["-txindex"]);
    rpc.submit(&branch_a.blocks()[1..]);
    rpc.wait_indexed(115);
    let a_block = branch_a.block(113).unwrap();
    let c_txids: Vec<Txid> = branch_c.blocks()[111..]
        .iter()
        .flat_map(|b| b.txdata.iter().map(|t| t.compute_txid()))
        .collect();
    let a_only: Vec<Txid> = a_block
        .txdata
        .iter()
        .map(|t| t.compute_txid())
        .filter(|t| !c_txids.contains(t))
        .collect();
    assert!(!a_only.is_empty(), "branch A's block 113 shares every tx");
    let a_tx = a_only[0];
    let v = rpc.ok("getrawtransaction", json!([a_tx.to_string(), 1]));
    assert_eq!(v["blockhash"], json!(a_block.block_hash().to_string()));

    // C's longer branch: the node reorganises, the index follows.
    rpc.submit(&branch_c.blocks()[111..]);
    assert_eq!(
        rpc.ok("getbestblockhash", json!([])),
        json!(branch_c.tip().block_hash().to_string())
    );
    rpc.wait_indexed(118);
    // Only in the disconnected branch (and not in the mempool, which may
    // have taken it back): not found in the chain any more.
    let in_mempool = rpc
        .ok("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .contains(&json!(a_tx.to_string()));
    if in_mempool {
        let v = rpc.ok("getrawtransaction", json!([a_tx.to_string(), 1]));
        assert!(v.get("blockhash").is_none(), "{v}");
    } else {
        assert_eq!(
            rpc.err("getrawtransaction", json!([a_tx.to_string()])),
            (-5, NOT_FOUND.to_string())
        );
    }
    // C's transactions are found in C's blocks.
    let c_block = branch_c.block(113).unwrap();
    let c_tx = spend_in(c_block);
    let v = rpc.ok("getrawtransaction", json!([c_tx.to_string(), 1]));
    assert_eq!(v["blockhash"], json!(c_block.block_hash().to_string()));
    assert_eq!(v["confirmations"], json!(6));
    // Transactions of the shared prefix stay where they were.
    let p_tx = spend_in(prefix.block(110).unwrap());
    let v = rpc.ok("getrawtransaction", json!([p_tx.to_string(), 1]));
    assert_eq!(
        v["blockhash"],
        json!(prefix.block(110).unwrap().block_hash().to_string())
    );
    stop(node);
}

#[test]
fn resumes_after_kill_during_its_build() {
    let chain = test_chain(23, 150, 2);
    let dir = datadir();
    let (node, rpc) = start(&dir, &[]);
    rpc.submit(&chain.blocks()[1..]);
    stop(node);

    // A slowed build (30 ms a block), killed part way.
    let (mut node, rpc) = start(&dir, &["-txindex", "--testtxindexdelay", "30"]);
    let mut reached = 0;
    let ok = wait_until(Duration::from_secs(30), || {
        let info = rpc.ok("getindexinfo", json!([]));
        reached = info["txindex"]["best_block_height"].as_u64().unwrap_or(0);
        reached >= 20
    });
    assert!(ok, "txindex build did not progress");
    node.child.kill().expect("kill -9");
    node.child.wait().expect("reap");
    assert!(reached < 150, "build finished before the kill: {reached}");

    let (node, rpc) = start(&dir, &["-txindex"]);
    rpc.wait_indexed(150);
    let resumed_from = node
        .log_lines()
        .iter()
        .find_map(|l| {
            l.split("Syncing txindex with block chain from height ")
                .nth(1)
                .and_then(|h| h.trim().parse::<u64>().ok())
        })
        .expect("resume line in the log");
    assert!(
        resumed_from >= reached,
        "resumed from {resumed_from}, had reached {reached}"
    );
    let block = chain.block(140).unwrap();
    let v = rpc.ok("getrawtransaction", json!([spend_in(block).to_string(), 1]));
    assert_eq!(v["blockhash"], json!(block.block_hash().to_string()));
    stop(node);
}
