//! Core's REST interface (`--rest`) against the JSON-RPC answers of the
//! same node: every endpoint's JSON equals its RPC's, `.hex` and `.bin`
//! carry the same bytes, errors are Core's statuses and texts, requests
//! need no credentials, and without `--rest` every `/rest/` path is 404.
//! The node runs in this process (a chain with a spendable output and one
//! mempool transaction); the RPC server is the real one, over real HTTP.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::deserialize;
use bitcoin::hex::{DisplayHex, FromHex};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::{call, ClientAuth};
use strand::rpc::node::NodeBackend;
use strand::rpc::{Auth, RpcConfig, RpcServer};
use strand::{Config, Network, Node, NodeHandle};

struct RestNode {
    _node: Arc<NodeHandle>,
    server: Option<RpcServer>,
    addr: SocketAddr,
    _stop: crossbeam_channel::Receiver<()>,
    _dir: tempfile::TempDir,
    tx: bitcoin::Transaction,
}

fn auth() -> ClientAuth {
    ClientAuth::UserPass("u".into(), "p".into())
}

impl RestNode {
    /// A node with 105 blocks (the last ones carrying a transaction each),
    /// one transaction in its mempool, and an RPC server with `rest`.
    fn start(rest: bool) -> RestNode {
        let chain = test_chain(0x7e57, 105, 1);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new(Network::Regtest);
        config.datadir = dir.path().to_path_buf();
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        let node = Arc::new(Node::start(config).expect("node starts"));
        for b in &chain.blocks()[1..] {
            node.submit_block(b.clone()).expect("submit block");
        }
        let tx = spend(&chain, 0);
        node.send_transaction(tx.clone()).expect("mempool accepts");
        let mut cfg = RpcConfig::new(0, dir.path().join(".cookie"));
        cfg.auth = Auth::UserPass("u".into(), "p".into());
        cfg.rest = rest;
        let (stop_tx, stop) = crossbeam_channel::bounded(1);
        let backend = NodeBackend::new(Arc::clone(&node), Network::Regtest, stop_tx);
        let server = RpcServer::start(cfg, Arc::new(backend)).expect("rpc starts");
        let addr = server.local_addrs()[0];
        RestNode {
            _node: node,
            server: Some(server),
            addr,
            _stop: stop,
            _dir: dir,
            tx,
        }
    }

    fn rpc(&self, method: &str, params: Value) -> Value {
        let params = params.as_array().cloned().unwrap_or_default();
        call(self.addr, &auth(), method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn get(&self, path: &str) -> Reply {
        get(self.addr, path)
    }

    /// A REST JSON answer, which must be 200 with `application/json`.
    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.content_type, "application/json", "{path}");
        assert!(
            r.body.ends_with(b"\n"),
            "{path}: Core ends bodies with a newline"
        );
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A REST `.hex` answer without its newline.
    fn hex(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.content_type, "text/plain", "{path}");
        let t = r.text();
        assert!(t.ends_with('\n'), "{path}");
        t.trim_end().to_string()
    }

    /// A REST `.bin` answer.
    fn bin(&self, path: &str) -> Vec<u8> {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.content_type, "application/octet-stream", "{path}");
        r.body
    }
}

impl Drop for RestNode {
    fn drop(&mut self) {
        // Stop the server before the node, as the binary does.
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One `GET` without credentials over a fresh connection.
fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, b"")
}

/// One request without credentials over a fresh connection.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("reply head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut content_type = String::new();
    let mut length = None;
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_string();
            }
            if n.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    assert_eq!(length, Some(body.len()), "{path}: Content-Length");
    Reply {
        status,
        content_type,
        body,
    }
}

#[test]
fn rest_answers_equal_the_rpc_answers() {
    let n = RestNode::start(true);

    // chaininfo = getblockchaininfo (size_on_disk is the store file's size,
    // which a background flush may change between the two calls).
    let mut rest = n.json("/rest/chaininfo.json");
    let mut rpc = n.rpc("getblockchaininfo", json!([]));
    assert_eq!(rest["blocks"], 105);
    rest.as_object_mut().unwrap().remove("size_on_disk");
    rpc.as_object_mut().unwrap().remove("size_on_disk");
    assert_eq!(rest, rpc);

    // blockhashbyheight = getblockhash.
    let hash = n.rpc("getblockhash", json!([105]));
    let hash_s = hash.as_str().unwrap().to_string();
    assert_eq!(
        n.json("/rest/blockhashbyheight/105.json"),
        json!({ "blockhash": hash })
    );
    assert_eq!(n.hex("/rest/blockhashbyheight/105.hex"), hash_s);
    let bin = n.bin("/rest/blockhashbyheight/105.bin");
    let from_bin: bitcoin::BlockHash = deserialize(&bin).unwrap();
    assert_eq!(from_bin.to_string(), hash_s);

    // block = getblock 3, notxdetails = getblock 1, hex/bin = getblock 0.
    let block = n.json(&format!("/rest/block/{hash_s}.json"));
    assert_eq!(block, n.rpc("getblock", json!([hash_s, 3])));
    assert_eq!(block["tx"].as_array().unwrap().len(), 2);
    assert!(block["tx"][1]["vin"][0]["txid"].is_string());
    assert_eq!(
        n.json(&format!("/rest/block/notxdetails/{hash_s}.json")),
        n.rpc("getblock", json!([hash_s, 1]))
    );
    let raw = n.rpc("getblock", json!([hash_s, 0]));
    assert_eq!(n.hex(&format!("/rest/block/{hash_s}.hex")), raw);
    let bin = n.bin(&format!("/rest/block/{hash_s}.bin"));
    assert_eq!(bin.to_lower_hex_string(), raw.as_str().unwrap());
    let parsed: bitcoin::Block = deserialize(&bin).unwrap();
    assert_eq!(parsed.block_hash().to_string(), hash_s);

    // headers = getblockheader, walking the active chain from the start.
    let start = n.rpc("getblockhash", json!([100]));
    let start_s = start.as_str().unwrap();
    let want: Vec<Value> = (100..=104)
        .map(|h| {
            let b = n.rpc("getblockhash", json!([h]));
            n.rpc("getblockheader", json!([b]))
        })
        .collect();
    assert_eq!(
        n.json(&format!("/rest/headers/5/{start_s}.json")),
        Value::Array(want.clone())
    );
    assert_eq!(
        n.json(&format!("/rest/headers/{start_s}.json?count=5")),
        Value::Array(want.clone())
    );
    // The default count is 5; the walk stops at the tip.
    assert_eq!(
        n.json(&format!("/rest/headers/{start_s}.json")),
        Value::Array(want.clone())
    );
    assert_eq!(
        n.json(&format!("/rest/headers/{start_s}.json?count=2000"))
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let raw_headers: String = (100..=102)
        .map(|h| {
            let b = n.rpc("getblockhash", json!([h]));
            n.rpc("getblockheader", json!([b, false]))
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        n.hex(&format!("/rest/headers/3/{start_s}.hex")),
        raw_headers
    );
    assert_eq!(
        n.bin(&format!("/rest/headers/{start_s}.bin?count=3")),
        Vec::<u8>::from_hex(&raw_headers).unwrap()
    );
    // An unknown block gives an empty list, as in Core.
    assert_eq!(
        n.json(&format!("/rest/headers/1/{}.json", "11".repeat(32))),
        json!([])
    );

    // tx = getrawtransaction (a mempool transaction: no block fields).
    let txid = n.tx.compute_txid().to_string();
    assert_eq!(
        n.json(&format!("/rest/tx/{txid}.json")),
        n.rpc("getrawtransaction", json!([txid, true]))
    );
    assert_eq!(
        n.hex(&format!("/rest/tx/{txid}.hex")),
        n.rpc("getrawtransaction", json!([txid, false]))
    );
    let bin = n.bin(&format!("/rest/tx/{txid}.bin"));
    assert_eq!(deserialize::<bitcoin::Transaction>(&bin).unwrap(), n.tx);

    // mempool = getmempoolinfo / getrawmempool.
    let info = n.json("/rest/mempool/info.json");
    assert_eq!(info["size"], 1);
    assert_eq!(info, n.rpc("getmempoolinfo", json!([])));
    let contents = n.json("/rest/mempool/contents.json");
    assert!(contents.get(&txid).is_some());
    assert_eq!(contents, n.rpc("getrawmempool", json!([true])));
    assert_eq!(
        n.json("/rest/mempool/contents.json?verbose=false"),
        n.rpc("getrawmempool", json!([false]))
    );
}

#[test]
fn rest_errors_are_cores() {
    let n = RestNode::start(true);
    let tip = n.rpc("getbestblockhash", json!([]));
    let tip = tip.as_str().unwrap();
    let zeros = "0".repeat(64);
    let cases: Vec<(String, u16, String)> = vec![
        (
            format!("/rest/block/{zeros}.json"),
            404,
            format!("{zeros} not found"),
        ),
        (
            "/rest/block/xyz.json".into(),
            400,
            "Invalid hash: xyz".into(),
        ),
        (
            format!("/rest/block/{tip}"),
            404,
            "output format not found (available: .bin, .hex, .json)".into(),
        ),
        // An unknown suffix stays part of the hash, as in Core.
        (
            format!("/rest/block/{tip}.xml"),
            400,
            format!("Invalid hash: {tip}.xml"),
        ),
        (
            format!("/rest/tx/{zeros}.hex"),
            404,
            format!("{zeros} not found"),
        ),
        (
            "/rest/blockhashbyheight/106.json".into(),
            404,
            "Block height out of range".into(),
        ),
        (
            "/rest/blockhashbyheight/-1.json".into(),
            400,
            "Invalid height: -1".into(),
        ),
        (
            format!("/rest/headers/0/{tip}.json"),
            400,
            "Header count is invalid or out of acceptable range (1-2000): 0".into(),
        ),
        (
            format!("/rest/headers/{tip}.json?count=2001"),
            400,
            "Header count is invalid or out of acceptable range (1-2000): 2001".into(),
        ),
        (
            "/rest/chaininfo.bin".into(),
            404,
            "output format not found (available: json)".into(),
        ),
        (
            "/rest/mempool/everything.json".into(),
            400,
            "Invalid URI format. Expected /rest/mempool/<info|contents>.json".into(),
        ),
        (
            "/rest/mempool/contents.json?verbose=maybe".into(),
            400,
            "The \"verbose\" query parameter must be either \"true\" or \"false\".".into(),
        ),
    ];
    for (path, status, text) in cases {
        let r = n.get(&path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.content_type, "text/plain", "{path}");
        assert_eq!(r.text(), format!("{text}\r\n"), "{path}");
    }
    // No handler under /rest/ for other names.
    assert_eq!(n.get("/rest/nothing").status, 404);
    // The JSON-RPC path is unchanged: POST only.
    assert_eq!(get(n.addr, "/").status, 405);
}

#[test]
fn without_rest_every_rest_path_is_not_found() {
    let n = RestNode::start(false);
    for path in [
        "/rest/chaininfo.json",
        "/rest/mempool/info.json",
        "/rest/blockhashbyheight/0.hex",
    ] {
        let r = n.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body.is_empty(), "{path}: {}", r.text());
    }
    // The RPC itself still answers.
    assert_eq!(n.rpc("getblockcount", json!([])), json!(105));
}

#[test]
fn getutxos_answers_like_gettxout() {
    let n = RestNode::start(true);
    let prev = n.tx.input[0].previous_output;
    let txid = n.tx.compute_txid();
    let tip = n.rpc("getbestblockhash", json!([]));
    let out = n.rpc("gettxout", json!([prev.txid.to_string(), prev.vout, false]));
    let confirmations = out["confirmations"].as_u64().unwrap();

    // Confirmed and unspent in the chain: a hit with gettxout's output.
    let r = n.json(&format!("/rest/getutxos/{}-{}.json", prev.txid, prev.vout));
    assert_eq!(r["chainHeight"], 105);
    assert_eq!(r["chaintipHash"], tip);
    assert_eq!(r["bitmap"], "1");
    assert_eq!(r["utxos"][0]["value"], out["value"]);
    assert_eq!(r["utxos"][0]["scriptPubKey"], out["scriptPubKey"]);
    assert_eq!(r["utxos"][0]["height"], json!(105 + 1 - confirmations));

    // With the mempool: that output is spent, the new one exists at
    // Core's MEMPOOL_HEIGHT.
    let r = n.json(&format!(
        "/rest/getutxos/checkmempool/{}-{}/{txid}-0.json",
        prev.txid, prev.vout
    ));
    assert_eq!(r["bitmap"], "01");
    assert_eq!(r["utxos"].as_array().unwrap().len(), 1);
    assert_eq!(r["utxos"][0]["height"], 0x7FFF_FFFF);
    let mem_out = n.rpc("gettxout", json!([txid.to_string(), 0, true]));
    assert_eq!(r["utxos"][0]["value"], mem_out["value"]);

    // Binary: height, tip, bitmap, coins as Core serializes them; the same
    // bytes for the URI form and the posted form.
    let bin = n.bin(&format!("/rest/getutxos/{}-{}.bin", prev.txid, prev.vout));
    assert_eq!(bin[..4], 105i32.to_le_bytes());
    let tip_hash: bitcoin::BlockHash = deserialize(&bin[4..36]).unwrap();
    assert_eq!(json!(tip_hash.to_string()), tip);
    assert_eq!(bin[36..38], [1, 1], "bitmap: one byte, first bit set");
    assert_eq!(bin[38], 1, "one coin");
    // No mempool check, one outpoint.
    let mut body = vec![0u8, 1];
    body.extend(bitcoin::consensus::serialize(&prev));
    let posted = request(n.addr, "POST", "/rest/getutxos.bin", &body);
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert_eq!(posted.body, bin);
    let hex_body = body.to_lower_hex_string();
    let posted = request(n.addr, "POST", "/rest/getutxos.hex", hex_body.as_bytes());
    assert_eq!(posted.text().trim_end(), bin.to_lower_hex_string());

    // Errors.
    let many: Vec<String> = (0..16).map(|i| format!("{txid}-{i}")).collect();
    for (path, text) in [
        (
            format!("/rest/getutxos/{}.json", many.join("/")),
            "Error: max outpoints exceeded (max: 15, tried: 16)",
        ),
        ("/rest/getutxos/abc-1.json".to_string(), "Parse error"),
        (format!("/rest/getutxos/{txid}-x.json"), "Parse error"),
        ("/rest/getutxos.json".to_string(), "Error: empty request"),
    ] {
        let r = n.get(&path);
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.text(), format!("{text}\r\n"), "{path}");
    }
}
