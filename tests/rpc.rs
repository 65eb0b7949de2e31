//! The JSON-RPC server of the real binary, through real HTTP: result shapes
//! of the wired methods, errors, authentication, the cookie's life, and
//! `strand cli`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use strand::rpc::client::{call, ClientAuth, ClientError};

struct Rpc {
    node: NodeProcess,
    addr: std::net::SocketAddr,
    auth: ClientAuth,
}

impl Rpc {
    fn start() -> Rpc {
        let node = NodeProcess::start(&[]);
        let addr = node.rpc_addr();
        let auth = ClientAuth::Cookie(node.cookie());
        Rpc { node, addr, auth }
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        rpc_ok(self.addr, &self.auth, method, params)
    }

    fn err(&self, method: &str, params: Value) -> (i32, String) {
        rpc_err(self.addr, &self.auth, method, params)
    }
}

const ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

#[test]
fn chain_methods_shapes_and_errors() {
    let rpc = Rpc::start();
    let hashes = rpc.ok("generatetoaddress", json!([3, ADDR]));
    assert_eq!(hashes.as_array().unwrap().len(), 3);
    let best = rpc.ok("getbestblockhash", json!([]));
    assert_eq!(best, hashes[2]);
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(3));
    assert_eq!(rpc.ok("getblockhash", json!([3])), best);

    let info = rpc.ok("getblockchaininfo", json!([]));
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 3);
    assert_eq!(info["bestblockhash"], best);
    assert!(info["chainwork"].as_str().unwrap().len() == 64);

    let header = rpc.ok("getblockheader", json!([best]));
    assert_eq!(header["height"], 3);
    assert_eq!(header["confirmations"], 1);
    assert_eq!(header["previousblockhash"], hashes[1]);
    let raw_header = rpc.ok("getblockheader", json!([best, false]));
    assert_eq!(raw_header.as_str().unwrap().len(), 160);

    let block = rpc.ok("getblock", json!([best]));
    assert_eq!(block["height"], 3);
    assert_eq!(block["tx"].as_array().unwrap().len(), 1);
    let block2 = rpc.ok("getblock", json!([best, 2]));
    assert!(block2["tx"][0]["vin"][0]["coinbase"].is_string());
    let raw = rpc.ok("getblock", json!([best, 0]));
    assert!(raw.as_str().unwrap().len() > 160);

    let tips = rpc.ok("getchaintips", json!([]));
    assert_eq!(tips[0]["status"], "active");
    assert_eq!(tips[0]["height"], 3);
    assert!(rpc.ok("getdifficulty", json!([])).as_f64().unwrap() > 0.0);

    // The coinbase of block 1 is an unspent output paying ADDR.
    let coinbase_txid = rpc.ok("getblock", json!([hashes[0]]))["tx"][0].clone();
    let out = rpc.ok("gettxout", json!([coinbase_txid, 0]));
    assert_eq!(out["confirmations"], 3);
    assert_eq!(out["coinbase"], true);
    assert_eq!(out["scriptPubKey"]["address"], ADDR);
    let tx = rpc.ok("getrawtransaction", json!([coinbase_txid, true, hashes[0]]));
    assert_eq!(tx["txid"], coinbase_txid);
    assert_eq!(tx["blockhash"], hashes[0]);

    // submitblock of a known block: "duplicate".
    assert_eq!(rpc.ok("submitblock", json!([raw])), json!("duplicate"));

    // Errors: unknown method, wrong types, missing arguments, unknown hashes.
    assert_eq!(rpc.err("nosuchmethod", json!([])).0, -32601);
    assert_eq!(rpc.err("getblockhash", json!(["one"])).0, -3);
    assert_eq!(rpc.err("getblockhash", json!([])).0, -1);
    assert_eq!(
        rpc.err("getblockhash", json!([99])),
        (-8, "Block height out of range".into())
    );
    let zeros = "00".repeat(32);
    assert_eq!(
        rpc.err("getblock", json!([zeros])),
        (-5, "Block not found".into())
    );
    assert_eq!(rpc.err("getblockheader", json!(["abc"])).0, -8);
    assert_eq!(rpc.err("sendrawtransaction", json!(["zz"])).0, -22);
    assert!(rpc.ok("gettxout", json!([zeros, 0])).is_null());
}

#[test]
fn mempool_network_and_control_methods() {
    let rpc = Rpc::start();
    let mempool = rpc.ok("getmempoolinfo", json!([]));
    assert_eq!(mempool["size"], 0);
    assert_eq!(mempool["fullrbf"], true);
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
    let zeros = "00".repeat(32);
    assert_eq!(rpc.err("getmempoolentry", json!([zeros])).0, -5);

    let mut peer = FakePeer::connect(rpc.node.addr()).unwrap();
    peer.handshake(0, SERVES).unwrap();
    assert!(wait_until(Duration::from_secs(5), || rpc
        .ok("getconnectioncount", json!([]))
        == json!(1)));
    let peers = rpc.ok("getpeerinfo", json!([]));
    assert_eq!(peers[0]["subver"], "/fakepeer:0.1/");
    assert_eq!(peers[0]["inbound"], true);
    let net = rpc.ok("getnetworkinfo", json!([]));
    assert_eq!(net["protocolversion"], 70016);
    assert_eq!(net["connections"], 1);
    let sync = rpc.ok("getsyncstate", json!([]));
    assert_eq!(sync["anomalies"]["done_peer_unknown"], 0);
    assert_eq!(sync["anomalies"]["new_peer_after_done"], 0);
    let id = peers[0]["id"].clone();
    assert_eq!(rpc.ok("disconnectnode", json!(["", id])), Value::Null);
    assert!(peer.closed_within(Duration::from_secs(5)));
    assert_eq!(rpc.err("disconnectnode", json!(["", 999])).0, -29);

    assert!(rpc.ok("uptime", json!([])).as_u64().is_some());
    assert!(rpc
        .ok("help", json!([]))
        .as_str()
        .unwrap()
        .contains("getblockchaininfo"));
}

#[test]
fn authentication_cookie_lifecycle_and_stop() {
    let mut rpc = Rpc::start();
    let cookie = rpc.node.cookie();
    let text = std::fs::read_to_string(&cookie).expect("cookie exists while running");
    assert!(text.starts_with("__cookie__:"));

    let wrong = ClientAuth::UserPass("__cookie__".into(), "wrong".into());
    assert!(matches!(
        call(rpc.addr, &wrong, "getblockcount", vec![]),
        Err(ClientError::Unauthorized)
    ));
    // No credentials at all: a raw request.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(rpc.addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");

    // strand cli against this node: plain output, then an RPC error.
    let d = rpc.node.dir.path().to_str().unwrap().to_string();
    let port = rpc.addr.port().to_string();
    let out = Command::new(strand_bin())
        .args([
            "cli",
            "--regtest",
            "--datadir",
            &d,
            "--rpcport",
            &port,
            "getblockcount",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    let out = Command::new(strand_bin())
        .args([
            "cli",
            "--regtest",
            "--datadir",
            &d,
            "--rpcport",
            &port,
            "getblockhash",
            "7",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Block height out of range"));

    assert_eq!(rpc.ok("stop", json!([])), json!("strand stopping"));
    let status = wait_exit(&mut rpc.node, Duration::from_secs(20)).expect("node exits after stop");
    assert!(status.success());
    assert!(!cookie.exists(), "cookie left behind after stop");
}

fn wait_exit(node: &mut NodeProcess, t: Duration) -> Option<std::process::ExitStatus> {
    let mut st = None;
    wait_until(t, || {
        st = node.child.try_wait().ok().flatten();
        st.is_some()
    });
    st
}

#[test]
fn invalidateblock_and_reconsiderblock() {
    let rpc = Rpc::start();
    let hashes = rpc.ok("generatetoaddress", json!([5, ADDR]));
    assert_eq!(rpc.ok("invalidateblock", json!([hashes[2]])), Value::Null);
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(2));
    assert_eq!(rpc.ok("getbestblockhash", json!([])), hashes[1]);
    let tips = rpc.ok("getchaintips", json!([]));
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == hashes[4] && t["status"] == "invalid"),
        "{tips}"
    );
    assert_eq!(rpc.ok("reconsiderblock", json!([hashes[2]])), Value::Null);
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(5));
    assert_eq!(rpc.ok("getbestblockhash", json!([])), hashes[4]);
    let zeros = "00".repeat(32);
    assert_eq!(rpc.err("invalidateblock", json!([zeros])).0, -5);
}

#[test]
fn addnode_setban_listbanned() {
    let a = Rpc::start();
    let b = Rpc::start();
    let b_p2p = b.node.addr().to_string();
    assert_eq!(a.ok("addnode", json!([b_p2p, "add"])), Value::Null);
    assert!(wait_until(Duration::from_secs(10), || b
        .ok("getconnectioncount", json!([]))
        == json!(1)));
    assert_eq!(
        a.ok("getpeerinfo", json!([]))[0]["connection_type"],
        "manual"
    );

    // B bans loopback: A's connection is dropped and refused from then on.
    assert_eq!(
        b.ok("setban", json!(["127.0.0.1", "add", 3600])),
        Value::Null
    );
    assert!(wait_until(Duration::from_secs(10), || b
        .ok("getconnectioncount", json!([]))
        == json!(0)));
    let banned = b.ok("listbanned", json!([]));
    assert_eq!(banned[0]["address"], "127.0.0.1/32");
    assert_eq!(b.err("setban", json!(["127.0.0.1", "add"])).0, -23);
    let mut p = FakePeer::connect(b.node.addr()).unwrap();
    assert!(
        p.closed_within(Duration::from_secs(5)),
        "banned address accepted"
    );

    assert_eq!(b.ok("setban", json!(["127.0.0.1", "remove"])), Value::Null);
    assert_eq!(b.ok("listbanned", json!([])), json!([]));
    assert_eq!(b.err("setban", json!(["127.0.0.1", "remove"])).0, -30);
    assert_eq!(a.ok("addnode", json!([b_p2p, "remove"])), Value::Null);
    assert_eq!(a.err("addnode", json!(["not an address", "add"])).0, -8);
}

fn hex(tx: &bitcoin::Transaction) -> String {
    bitcoin::consensus::encode::serialize_hex(tx)
}

#[test]
fn mempool_through_rpc_double_spend_rbf_mining_and_reorg() {
    let rpc = Rpc::start();
    let chain = test_chain(44, 110, 2);
    let server = ChainServer::start(rpc.node.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(wait_until(Duration::from_secs(60), || rpc
        .ok("getblockcount", json!([]))
        == json!(110)));
    server.finish().unwrap();

    let (op, value) = chain.spendable_outputs()[0];
    let pay = |fee: u64| {
        chain
            .sign_spend(
                &[op],
                vec![bitcoin::TxOut {
                    value: value - bitcoin::Amount::from_sat(fee),
                    script_pubkey: chain.tip().txdata[0].output[0].script_pubkey.clone(),
                }],
            )
            .unwrap()
    };
    let original = pay(2_000);
    let same_fee = {
        let mut t = pay(2_000);
        t.output[0].script_pubkey = chain.blocks()[3].txdata[0].output[0].script_pubkey.clone();
        t
    };
    let bigger_fee = pay(20_000);

    // testmempoolaccept does not add anything.
    let test = rpc.ok("testmempoolaccept", json!([[hex(&original)]]));
    assert_eq!(test[0]["allowed"], true, "{test}");
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));

    let txid = rpc.ok("sendrawtransaction", json!([hex(&original)]));
    assert_eq!(txid, json!(original.compute_txid().to_string()));
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([txid]));
    let entry = rpc.ok("getmempoolentry", json!([txid]));
    assert!(entry["vsize"].as_u64().unwrap() > 0);
    assert_eq!(entry["fees"]["base"].to_string(), "0.00002000");
    assert_eq!(
        rpc.ok("getrawtransaction", json!([txid])),
        json!(hex(&original))
    );
    let again = rpc.ok("testmempoolaccept", json!([[hex(&original)]]));
    assert_eq!(again[0]["allowed"], false);

    // A double spend paying the same fee is refused (-26); a replacement
    // paying more is accepted and evicts the original (full RBF).
    let (code, msg) = rpc.err("sendrawtransaction", json!([hex(&same_fee)]));
    assert_eq!(code, -26, "{msg}");
    // maxfeerate (BTC/kvB) is enforced: 20,000 sat on ~110 vB is far above 0.00001.
    let (code, msg) = rpc.err("sendrawtransaction", json!([hex(&bigger_fee), 0.00001]));
    assert_eq!(code, -25, "{msg}");
    let replacement = rpc.ok("sendrawtransaction", json!([hex(&bigger_fee)]));
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([replacement]));

    // Mining it empties the mempool; invalidating the block returns it.
    let block = rpc.ok("generateblock", json!([ADDR, [replacement]]));
    let hash = block["hash"].clone();
    assert_eq!(rpc.ok("getbestblockhash", json!([])), hash);
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
    assert_eq!(rpc.ok("invalidateblock", json!([hash])), Value::Null);
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([replacement]));
    let mined = rpc.ok("generatetodescriptor", json!([1, format!("addr({ADDR})")]));
    assert_eq!(mined.as_array().unwrap().len(), 1);
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
}
