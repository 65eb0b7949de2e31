//! Tests of the RPC server over real HTTP on 127.0.0.1 with OS-chosen
//! ports, against a mock backend (a regtest chain of just the genesis
//! block), and of the client and `strand cli`'s argument and output rules.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::blockdata::constants::genesis_block;
use bitcoin::{Amount, Block, BlockHash, Network, ScriptBuf, Txid, Work};
use serde_json::{json, Value};

use super::auth::base64_encode;
use super::client::{self, ClientAuth, ClientError};
use super::*;

struct Mock {
    genesis: Block,
    stopped: AtomicBool,
    warmup: Mutex<Option<String>>,
    generated: Mutex<Vec<(u32, ScriptBuf, u64)>>,
    calls: AtomicUsize,
}

impl Mock {
    fn new() -> Arc<Mock> {
        Arc::new(Mock {
            genesis: genesis_block(Network::Regtest),
            stopped: AtomicBool::new(false),
            warmup: Mutex::new(None),
            generated: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        })
    }

    fn info(&self) -> HeaderInfo {
        HeaderInfo {
            header: self.genesis.header,
            height: 0,
            confirmations: 1,
            chainwork: Work::from_be_bytes({
                let mut w = [0u8; 32];
                w[31] = 2;
                w
            }),
            n_tx: 1,
            mediantime: self.genesis.header.time,
            next_block_hash: None,
        }
    }
}

impl RpcBackend for Mock {
    fn network(&self) -> Network {
        Network::Regtest
    }
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
    fn warmup_status(&self) -> Option<String> {
        self.warmup.lock().ok().and_then(|w| w.clone())
    }
    fn block_count(&self) -> RpcResult<u32> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }
    fn best_block_hash(&self) -> RpcResult<BlockHash> {
        Ok(self.genesis.block_hash())
    }
    fn block_hash(&self, height: u32) -> RpcResult<Option<BlockHash>> {
        Ok((height == 0).then(|| self.genesis.block_hash()))
    }
    fn block_header(&self, hash: BlockHash) -> RpcResult<Option<HeaderInfo>> {
        Ok((hash == self.genesis.block_hash()).then(|| self.info()))
    }
    fn block(&self, hash: BlockHash) -> RpcResult<Option<BlockData>> {
        Ok((hash == self.genesis.block_hash()).then(|| BlockData {
            info: self.info(),
            block: self.genesis.clone(),
            spent_outputs: None,
            spent_origins: None,
        }))
    }
    fn blockchain_info(&self) -> RpcResult<BlockchainInfo> {
        Ok(BlockchainInfo {
            chain: "regtest".into(),
            blocks: 0,
            headers: 0,
            bestblockhash: self.genesis.block_hash(),
            difficulty: self.genesis.header.difficulty_float(),
            time: self.genesis.header.time,
            mediantime: self.genesis.header.time,
            verificationprogress: 1.0,
            initialblockdownload: true,
            chainwork: self.info().chainwork,
            size_on_disk: 293,
            pruned: false,
            warnings: vec![],
            prune_info: None,
        })
    }
    fn raw_mempool(&self) -> RpcResult<Vec<Txid>> {
        Ok(vec![])
    }
    fn mempool_info(&self) -> RpcResult<MempoolInfo> {
        Ok(MempoolInfo {
            loaded: true,
            size: 0,
            bytes: 0,
            usage: 0,
            total_fee: Amount::ZERO,
            maxmempool: 300_000_000,
            mempoolminfee: Amount::from_sat(1000),
            minrelaytxfee: Amount::from_sat(1000),
            incrementalrelayfee: Amount::from_sat(1000),
            unbroadcastcount: 0,
            fullrbf: true,
        })
    }
    fn submit_block(&self, block: Block) -> RpcResult<Option<String>> {
        Ok((block.block_hash() == self.genesis.block_hash()).then(|| "duplicate".into()))
    }
    fn generate_to_script(
        &self,
        n: u32,
        script: ScriptBuf,
        tries: u64,
    ) -> RpcResult<Vec<BlockHash>> {
        if let Ok(mut g) = self.generated.lock() {
            g.push((n, script, tries));
        }
        Ok(vec![self.genesis.block_hash(); n as usize])
    }
    fn uptime(&self) -> RpcResult<u64> {
        Ok(42)
    }
    fn sync_state(&self) -> RpcResult<Value> {
        Ok(json!({"sync_peer": null, "anomalies": {"done_peer_unknown": 0}}))
    }
}

const USER: &str = "alice";
const PASS: &str = "s3cret";

fn config() -> RpcConfig {
    let mut c = RpcConfig::new(0, PathBuf::new());
    c.auth = Auth::UserPass(USER.into(), PASS.into());
    c.auth_fail_delay = Duration::from_millis(20);
    c
}

fn start_with(c: RpcConfig) -> (RpcServer, Arc<Mock>, SocketAddr) {
    let mock = Mock::new();
    let server = RpcServer::start(c, mock.clone()).expect("server starts");
    let addr = server.local_addrs()[0];
    (server, mock, addr)
}

fn start() -> (RpcServer, Arc<Mock>, SocketAddr) {
    start_with(config())
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{pass}").as_bytes())
    )
}

struct HttpReply {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response from `s` (by Content-Length; 204 has no body).
fn read_reply(s: &mut TcpStream) -> HttpReply {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => panic!(
                "connection ended inside head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    HttpReply {
        status,
        head,
        body: String::from_utf8(body).unwrap(),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn post_on(s: &mut TcpStream, body: &str, auth: Option<&str>) -> HttpReply {
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    read_reply(s)
}

fn post(addr: SocketAddr, body: &str) -> (u16, Value) {
    let r = post_on(&mut connect(addr), body, Some(&basic(USER, PASS)));
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap()
    };
    (r.status, v)
}

fn raw(addr: SocketAddr, bytes: &[u8]) -> HttpReply {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    read_reply(&mut s)
}

fn up() -> ClientAuth {
    ClientAuth::UserPass(USER.into(), PASS.into())
}

fn rpc_err(r: Result<Value, ClientError>) -> RpcFailure {
    match r {
        Err(ClientError::Rpc(e)) => e,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[test]
fn missing_and_wrong_credentials_get_401() {
    let (_s, mock, addr) = start();
    let body = r#"{"method":"getblockcount","id":1}"#;
    let r = post_on(&mut connect(addr), body, None);
    assert_eq!(r.status, 401);
    assert!(
        r.head.contains("WWW-Authenticate: Basic realm=\"jsonrpc\""),
        "{}",
        r.head
    );
    assert!(r.body.is_empty());
    for bad in [
        basic(USER, "wrong"),
        basic("bob", PASS),
        "Basic !!!".into(),
        "Bearer x".into(),
    ] {
        let t = Instant::now();
        let r = post_on(&mut connect(addr), body, Some(&bad));
        assert_eq!(r.status, 401, "{bad}");
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "failed attempts are delayed"
        );
    }
    assert_eq!(mock.calls.load(Ordering::SeqCst), 0, "nothing ran");
    assert!(matches!(
        client::call(
            addr,
            &ClientAuth::UserPass(USER.into(), "no".into()),
            "getblockcount",
            vec![]
        ),
        Err(ClientError::Unauthorized)
    ));
    assert_eq!(
        post(addr, body),
        (200, json!({"result":0,"error":null,"id":1}))
    );
}

#[test]
fn cookie_exists_while_running_and_is_removed_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".cookie");
    let mut c = config();
    c.auth = Auth::Cookie(path.clone());
    let (server, _mock, addr) = start_with(c);
    let text = std::fs::read_to_string(&path).unwrap();
    let (user, pass) = text.split_once(':').unwrap();
    assert_eq!(user, "__cookie__");
    assert_eq!(pass.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let auth = ClientAuth::Cookie(path.clone());
    assert_eq!(
        client::call(addr, &auth, "getblockcount", vec![]).unwrap(),
        json!(0)
    );
    assert!(matches!(
        client::call(addr, &up(), "getblockcount", vec![]),
        Err(ClientError::Unauthorized)
    ));
    server.stop();
    assert!(!path.exists(), "cookie removed at stop");
    assert!(matches!(
        client::call(addr, &auth, "getblockcount", vec![]),
        Err(ClientError::Cookie(..))
    ));
}

#[test]
fn addresses_outside_allowip_get_403() {
    let mut c = config();
    c.allow_ip = vec!["10.0.0.0/8".parse().unwrap()];
    let (_s, mock, addr) = start_with(c);
    let r = post_on(
        &mut connect(addr),
        r#"{"method":"getblockcount","id":1}"#,
        Some(&basic(USER, PASS)),
    );
    assert_eq!(r.status, 403);
    assert_eq!(mock.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn single_requests_in_both_versions() {
    let (_s, _m, addr) = start();
    assert_eq!(
        post(addr, r#"{"method":"getblockcount","params":[],"id":"x"}"#),
        (200, json!({"result":0,"error":null,"id":"x"}))
    );
    assert_eq!(
        post(addr, r#"{"jsonrpc":"1.0","method":"uptime","id":3}"#),
        (200, json!({"result":42,"error":null,"id":3}))
    );
    assert_eq!(
        post(addr, r#"{"jsonrpc":"2.0","method":"getblockcount","id":5}"#),
        (200, json!({"jsonrpc":"2.0","result":0,"id":5}))
    );
    // A 2.0 error stays HTTP 200; a legacy one is 500 (404 for no method).
    let (s, v) = post(
        addr,
        r#"{"jsonrpc":"2.0","method":"getblockhash","params":[7],"id":5}"#,
    );
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","error":{"code":-8,"message":"Block height out of range"},"id":5})
    );
    let (s, v) = post(addr, r#"{"method":"getblockhash","params":[7],"id":5}"#);
    assert_eq!(s, 500);
    assert_eq!(v["error"]["code"], -8);
    assert_eq!(v["result"], Value::Null);
}

#[test]
fn unknown_method() {
    let (_s, _m, addr) = start();
    let (s, v) = post(addr, r#"{"method":"nosuch","id":1}"#);
    assert_eq!(s, 404);
    assert_eq!(
        v,
        json!({"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1})
    );
    let (s, v) = post(addr, r#"{"jsonrpc":"2.0","method":"nosuch","id":1}"#);
    assert_eq!(s, 200);
    assert_eq!(v["error"]["code"], -32601);
}

#[test]
fn batches_and_notifications() {
    let (_s, mock, addr) = start();
    let (s, v) = post(
        addr,
        r#"[{"method":"getblockcount","id":1},
            {"jsonrpc":"2.0","method":"nosuch","id":2},
            {"jsonrpc":"2.0","method":"getblockcount"},
            {"jsonrpc":"2.0","method":"getblockhash","params":["x"],"id":4}]"#,
    );
    assert_eq!(s, 200);
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[0], json!({"result":0,"error":null,"id":1}));
    assert_eq!(a[1]["error"]["code"], -32601);
    assert_eq!(a[2]["error"]["code"], -3);
    assert_eq!(
        mock.calls.load(Ordering::SeqCst),
        2,
        "the notification ran too"
    );
    // A lone notification: executed, 204 with no body.
    let r = post_on(
        &mut connect(addr),
        r#"{"jsonrpc":"2.0","method":"getblockcount"}"#,
        Some(&basic(USER, PASS)),
    );
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_eq!(mock.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn parameter_errors_like_core() {
    let (_s, _m, addr) = start();
    let auth = up();
    let e = rpc_err(client::call(addr, &auth, "getblockhash", vec![json!("1")]));
    assert_eq!(e.code, -3);
    assert_eq!(
        e.message,
        "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON value of type string is not of expected type number\"\n}"
    );
    let e = rpc_err(client::call(addr, &auth, "getblockhash", vec![]));
    assert_eq!(e.code, -1);
    assert!(
        e.message
            .starts_with("getblockhash height\n\nReturns hash of block"),
        "{}",
        e.message
    );
    assert!(e.message.contains("1. height"));
    let e = rpc_err(client::call(addr, &auth, "getblockcount", vec![json!(1)]));
    assert_eq!(e.code, -1, "too many arguments: help");
    let e = rpc_err(client::call(addr, &auth, "getblock", vec![json!("abc")]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-8, "blockhash must be of length 64 (not 3, for 'abc')")
    );
    let zz = "z".repeat(64);
    let e = rpc_err(client::call(addr, &auth, "getblock", vec![json!(zz)]));
    assert_eq!(
        e.message,
        format!("blockhash must be hexadecimal string (not '{zz}')")
    );
    let e = rpc_err(client::call(
        addr,
        &auth,
        "getblock",
        vec![json!("00".repeat(32))],
    ));
    assert_eq!((e.code, e.message.as_str()), (-5, "Block not found"));
    let e = rpc_err(client::call(
        addr,
        &auth,
        "getblockheader",
        vec![json!("ab")],
    ));
    assert!(e.message.starts_with("hash must be of length 64"));
    let e = rpc_err(client::call(
        addr,
        &auth,
        "sendrawtransaction",
        vec![json!("zz")],
    ));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            -22,
            "TX decode failed. Make sure the tx has at least one input."
        )
    );
    let e = rpc_err(client::call(addr, &auth, "submitblock", vec![json!("00")]));
    assert_eq!((e.code, e.message.as_str()), (-22, "Block decode failed"));
    let e = rpc_err(client::call(
        addr,
        &auth,
        "generatetoaddress",
        vec![json!(1), json!("nope")],
    ));
    assert_eq!((e.code, e.message.as_str()), (-5, "Error: Invalid address"));
    let e = rpc_err(client::call(
        addr,
        &auth,
        "addnode",
        vec![json!("1.2.3.4"), json!("x")],
    ));
    assert!(e.message.starts_with("addnode \"node\" \"command\""));
    let e = rpc_err(client::call(
        addr,
        &auth,
        "setban",
        vec![json!("1.2.3"), json!("add")],
    ));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-30, "Error: Invalid IP/Subnet")
    );
    let e = rpc_err(client::call(
        addr,
        &auth,
        "testmempoolaccept",
        vec![json!([])],
    ));
    assert_eq!(
        e.message,
        "Array must contain between 1 and 25 transactions."
    );
    let e = rpc_err(client::call(
        addr,
        &auth,
        "sendrawtransaction",
        vec![json!("00"), json!(1)],
    ));
    assert_eq!(e.code, -22);
    let e = rpc_err(client::call(
        addr,
        &auth,
        "disconnectnode",
        vec![json!("a"), json!(3)],
    ));
    assert_eq!(e.code, -32602);
    // Not wired in the mock: the trait default says so clearly.
    let e = rpc_err(client::call(addr, &auth, "getpeerinfo", vec![]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-1, "getpeerinfo is not supported by this node yet")
    );
}

#[test]
fn named_parameters() {
    let (_s, _m, addr) = start();
    let auth = up();
    let genesis = genesis_block(Network::Regtest).block_hash().to_string();
    let h = client::call_named(
        addr,
        &auth,
        "getblockhash",
        [("height".to_string(), json!(0))].into_iter().collect(),
    );
    assert_eq!(h.unwrap(), json!(genesis));
    let v = client::call_named(
        addr,
        &auth,
        "getblock",
        [
            ("blockhash".to_string(), json!(genesis)),
            ("verbosity".to_string(), json!(0)),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    assert!(v.as_str().unwrap().starts_with("01000000"));
    let e = rpc_err(client::call_named(
        addr,
        &auth,
        "getblockhash",
        [("hieght".to_string(), json!(0))].into_iter().collect(),
    ));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-8, "Unknown named parameter hieght")
    );
}

#[test]
fn results_have_cores_shapes() {
    let (_s, _m, addr) = start();
    let auth = up();
    let g = genesis_block(Network::Regtest);
    let hash = g.block_hash().to_string();
    let h = client::call(addr, &auth, "getblockheader", vec![json!(hash)]).unwrap();
    let keys: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "hash",
            "confirmations",
            "height",
            "version",
            "versionHex",
            "merkleroot",
            "time",
            "mediantime",
            "nonce",
            "bits",
            "difficulty",
            "chainwork",
            "nTx"
        ]
    );
    assert_eq!(h["bits"], "207fffff");
    assert_eq!(h["versionHex"], "00000001");
    assert_eq!(h["chainwork"], format!("{}02", "0".repeat(62)));
    let hex = client::call(
        addr,
        &auth,
        "getblockheader",
        vec![json!(hash), json!(false)],
    )
    .unwrap();
    assert_eq!(hex.as_str().unwrap().len(), 160);
    let b = client::call(addr, &auth, "getblock", vec![json!(hash)]).unwrap();
    assert_eq!(b["tx"], json!([g.txdata[0].compute_txid().to_string()]));
    assert_eq!(b["size"], 285);
    assert_eq!(b["strippedsize"], 285);
    assert_eq!(b["weight"], 1140);
    let b2 = client::call(addr, &auth, "getblock", vec![json!(hash), json!(2)]).unwrap();
    let tx = &b2["tx"][0];
    assert_eq!(tx["vin"][0]["sequence"], 4294967295u64);
    assert!(tx["vin"][0]["coinbase"]
        .as_str()
        .unwrap()
        .starts_with("04ffff001d"));
    assert_eq!(tx["vout"][0]["value"].to_string(), "50.00000000");
    assert_eq!(tx["vout"][0]["scriptPubKey"]["type"], "pubkey");
    assert!(tx["vout"][0]["scriptPubKey"]["asm"]
        .as_str()
        .unwrap()
        .ends_with(" OP_CHECKSIG"));
    assert!(tx["vout"][0]["scriptPubKey"]["desc"]
        .as_str()
        .unwrap()
        .starts_with("pk(04678afdb0"));
    assert!(tx["hex"].is_string());
    // Verbosity as a bool, as Core accepts.
    let bt = client::call(addr, &auth, "getblock", vec![json!(hash), json!(true)]).unwrap();
    assert_eq!(bt, b);
    let info = client::call(addr, &auth, "getblockchaininfo", vec![]).unwrap();
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["bestblockhash"], json!(hash));
    assert_eq!(info["difficulty"].to_string(), "4.656542373906925e-10");
    let m = client::call(addr, &auth, "getmempoolinfo", vec![]).unwrap();
    assert_eq!(m["minrelaytxfee"].to_string(), "0.00001000");
    assert_eq!(
        client::call(addr, &auth, "getrawmempool", vec![]).unwrap(),
        json!([])
    );
    let raw = bitcoin::consensus::encode::serialize_hex(&g);
    assert_eq!(
        client::call(addr, &auth, "submitblock", vec![json!(raw)]).unwrap(),
        json!("duplicate")
    );
    assert_eq!(
        client::call(addr, &auth, "getsyncstate", vec![]).unwrap()["sync_peer"],
        Value::Null
    );
}

#[test]
fn generate_methods_decode_addresses_and_descriptors() {
    let (_s, mock, addr) = start();
    let auth = up();
    let a = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    let r = client::call(addr, &auth, "generatetoaddress", vec![json!(2), json!(a)]).unwrap();
    assert_eq!(r.as_array().unwrap().len(), 2);
    // BIP380's test vector.
    let r = client::call(
        addr,
        &auth,
        "generatetodescriptor",
        vec![json!(1), json!("raw(deadbeef)#89f8spxm"), json!(7)],
    );
    assert_eq!(r.unwrap().as_array().unwrap().len(), 1);
    let e = rpc_err(client::call(
        addr,
        &auth,
        "generatetodescriptor",
        vec![json!(1), json!("raw(51)#aaaaaaaa")],
    ));
    assert_eq!(e.code, -5);
    assert!(e
        .message
        .starts_with("Provided checksum 'aaaaaaaa' does not match"));
    let g = mock.generated.lock().unwrap().clone();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].0, 2);
    assert!(g[0].1.is_p2wpkh());
    assert_eq!(g[0].2, 1_000_000, "Core's default maxtries");
    assert_eq!(
        (g[1].0, g[1].1.as_bytes(), g[1].2),
        (1, &[0xde, 0xad, 0xbe, 0xef][..], 7)
    );
}

#[test]
fn invalid_json_and_malformed_http() {
    let (_s, _m, addr) = start();
    let (s, v) = post(addr, "{\"method\": ");
    assert_eq!(s, 500);
    // Core 28 omits "id" when the request had none (it could not be parsed).
    assert_eq!(
        v,
        json!({"result":null,"error":{"code":-32700,"message":"Parse error"}})
    );
    let (s, v) = post(addr, r#"{"method":"getblockcount","params":"x","id":1}"#);
    assert_eq!((s, v["error"]["code"].clone()), (400, json!(-32600)));
    assert_eq!(raw(addr, b"garbage\r\n\r\n").status, 400);
    assert_eq!(raw(addr, b"POST / HTTP/2.0\r\n\r\n").status, 400);
    assert_eq!(
        raw(addr, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").status,
        400
    );
    assert_eq!(
        raw(addr, b"POST / HTTP/1.1\r\nno colon\r\n\r\n").status,
        400
    );
    assert_eq!(
        raw(
            addr,
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"
        )
        .status,
        400
    );
    let r = raw(
        addr,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 411);
    assert!(r.body.contains("chunked"));
    assert_eq!(raw(addr, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").status, 411);
    let r = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.body, "JSONRPC server handles only POST requests");
    assert_eq!(
        raw(addr, b"POST /rest/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status,
        404
    );
    let mut big = b"POST / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10_000));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw(addr, &big).status, 431);
    // Still serving.
    assert_eq!(
        client::call(addr, &up(), "getblockcount", vec![]).unwrap(),
        json!(0)
    );
}

#[test]
fn oversized_body_gets_413_before_it_is_read() {
    let mut c = config();
    c.max_body = 1000;
    let (_s, _m, addr) = start_with(c);
    let mut s = connect(addr);
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut s);
    assert_eq!(r.status, 413);
    assert!(r.head.contains("Connection: close"));
    let body = format!(
        r#"{{"method":"help","params":["{}"],"id":1}}"#,
        "x".repeat(900)
    );
    assert_eq!(post(addr, &body).0, 200, "up to the limit is fine");
}

#[test]
fn expect_100_continue() {
    let (_s, _m, addr) = start();
    let mut s = connect(addr);
    let body = r#"{"method":"getblockcount","id":1}"#;
    let head = format!(
        "POST / HTTP/1.1\r\nAuthorization: {}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        basic(USER, PASS),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut cont = [0u8; 25];
    s.read_exact(&mut cont).unwrap();
    assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut s).status, 200);
}

#[test]
fn keep_alive_and_pipelining() {
    let (_s, _m, addr) = start();
    let mut s = connect(addr);
    let auth = basic(USER, PASS);
    for i in 0..5 {
        let r = post_on(
            &mut s,
            &format!(r#"{{"method":"uptime","id":{i}}}"#),
            Some(&auth),
        );
        assert_eq!(r.status, 200);
        assert!(r.head.contains("Connection: keep-alive"));
        assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["id"], i);
    }
    // Two requests in one write.
    let one = r#"{"method":"getblockcount","id":"a"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{one}",
        one.len()
    );
    s.write_all(format!("{req}{req}").as_bytes()).unwrap();
    assert_eq!(read_reply(&mut s).status, 200);
    assert_eq!(read_reply(&mut s).status, 200);
    // HTTP/1.0 closes unless asked to keep alive.
    let mut s = connect(addr);
    s.write_all(
        format!(
            "POST / HTTP/1.0\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{one}",
            one.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_reply(&mut s);
    assert!(r.head.contains("Connection: close"));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the reply"
    );
}

#[test]
fn concurrent_clients() {
    let (_s, mock, addr) = start();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert_eq!(
                        client::call(addr, &up(), "getblockcount", vec![]).unwrap(),
                        json!(0)
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(mock.calls.load(Ordering::SeqCst), 400);
}

#[test]
fn idle_and_slow_clients_do_not_block_others() {
    let mut c = config();
    c.threads = 1;
    c.request_timeout = Duration::from_millis(300);
    let (_s, _m, addr) = start_with(c);
    // An idle keep-alive connection holding the only worker...
    let mut idle = connect(addr);
    let r = post_on(
        &mut idle,
        r#"{"method":"uptime","id":1}"#,
        Some(&basic(USER, PASS)),
    );
    assert_eq!(r.status, 200);
    let t = Instant::now();
    assert_eq!(
        client::call(addr, &up(), "uptime", vec![]).unwrap(),
        json!(42)
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // ...is still usable afterwards.
    let r = post_on(
        &mut idle,
        r#"{"method":"uptime","id":2}"#,
        Some(&basic(USER, PASS)),
    );
    assert_eq!(r.status, 200);
    // A client stuck inside its request is cut off after request_timeout.
    let mut slow = connect(addr);
    slow.write_all(b"POST / HTTP/1.1\r\nContent-Le").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    assert_eq!(
        client::call(addr, &up(), "uptime", vec![]).unwrap(),
        json!(42)
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn too_many_connections_get_503() {
    let mut c = config();
    c.max_connections = 2;
    let (_s, _m, addr) = start_with(c);
    let _a = connect(addr);
    let _b = connect(addr);
    std::thread::sleep(Duration::from_millis(100));
    let r = raw(addr, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 503);
}

#[test]
fn warmup_refuses_calls_but_help() {
    let (_s, mock, addr) = start();
    *mock.warmup.lock().unwrap() = Some("Loading block index…".into());
    let e = rpc_err(client::call(addr, &up(), "getblockcount", vec![]));
    assert_eq!((e.code, e.message.as_str()), (-28, "Loading block index…"));
    assert!(client::call(addr, &up(), "help", vec![]).is_ok());
}

#[test]
fn help_lists_and_explains() {
    let (_s, _m, addr) = start();
    let all = client::call(addr, &up(), "help", vec![]).unwrap();
    let all = all.as_str().unwrap();
    assert!(all.starts_with("== Blockchain ==\n"));
    assert!(all.contains("\n== Network ==\n"));
    assert!(all.contains("getblock \"blockhash\" ( verbosity )\n"));
    let one = client::call(addr, &up(), "help", vec![json!("gettxout")]).unwrap();
    assert!(one
        .as_str()
        .unwrap()
        .starts_with("gettxout \"txid\" n ( include_mempool )\n"));
    let unknown = client::call(addr, &up(), "help", vec![json!("nosuch")]).unwrap();
    assert_eq!(unknown, json!("help: unknown command: nosuch\n"));
}

#[test]
fn stop_replies_then_stops_the_backend() {
    let (server, mock, addr) = start();
    assert_eq!(
        client::call(addr, &up(), "stop", vec![]).unwrap(),
        json!("strand stopping")
    );
    let t = Instant::now();
    while !mock.stopped.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(mock.stopped.load(Ordering::SeqCst));
    server.stop();
    assert!(TcpStream::connect(addr).is_err(), "listener closed");
}

#[test]
fn cli_argument_conversion() {
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // String-typed parameters stay strings even when they look like JSON.
    assert_eq!(
        client::convert_args("getblock", &args(&["0000", "2"])),
        vec![json!("0000"), json!(2)]
    );
    assert_eq!(
        client::convert_args("generatetoaddress", &args(&["3", "bcrt1qxyz", "10"])),
        vec![json!(3), json!("bcrt1qxyz"), json!(10)]
    );
    assert_eq!(
        client::convert_args("getrawmempool", &args(&["true"])),
        vec![json!(true)]
    );
    assert_eq!(
        client::convert_args("testmempoolaccept", &args(&["[\"00\"]", "0.1"])),
        vec![json!(["00"]), serde_json::from_str::<Value>("0.1").unwrap()]
    );
    // Unknown methods: JSON if it parses, else a string.
    assert_eq!(
        client::convert_args("whatever", &args(&["{\"a\":1}", "null", "word", "12"])),
        vec![json!({"a":1}), Value::Null, json!("word"), json!(12)]
    );
    let named =
        client::convert_named_args("getblock", &args(&["blockhash=00", "verbosity=0"])).unwrap();
    assert_eq!(
        Value::Object(named),
        json!({"blockhash":"00","verbosity":0})
    );
    assert!(client::convert_named_args("getblock", &args(&["x"])).is_err());
}

#[test]
fn cli_output_formatting() {
    assert_eq!(client::format_result(&Value::Null), "");
    assert_eq!(client::format_result(&json!("abc")), "abc");
    assert_eq!(client::format_result(&json!(5)), "5");
    assert_eq!(
        client::format_result(&json!({"a":[1]})),
        "{\n  \"a\": [\n    1\n  ]\n}"
    );
}

#[test]
fn cli_end_to_end() {
    let (_s, _m, addr) = start();
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--regtest".into(),
            format!("--rpcconnect={}", addr.ip()),
            "-rpcport".into(),
            addr.port().to_string(),
            "--rpcuser".into(),
            USER.into(),
            format!("--rpcpassword={PASS}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = client::run_cli(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let genesis = genesis_block(Network::Regtest).block_hash().to_string();
    assert_eq!(
        run(&["getbestblockhash"]),
        (0, format!("{genesis}\n"), String::new())
    );
    assert_eq!(run(&["getblockcount"]), (0, "0\n".into(), String::new()));
    let (code, out, _) = run(&["getblockheader", &genesis]);
    assert_eq!(code, 0);
    assert!(out.starts_with("{\n  \"hash\": \""), "{out}");
    assert_eq!(
        run(&["-named", "getblockhash", "height=0"]).1,
        format!("{genesis}\n")
    );
    assert_eq!(
        run(&["getblockhash", "9"]),
        (
            1,
            String::new(),
            "error code: -8\nerror message:\nBlock height out of range\n".into()
        )
    );
    let (code, _, err) = run(&["nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error code: -32601\nerror message:\nMethod not found\n"
    );
    let (code, _, err) = run(&["getblockhash"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error code: -1\nerror message:\ngetblockhash height\n"));
    // Wrong password and no server.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args: Vec<String> = [
        "--rpcport",
        &addr.port().to_string(),
        "--rpcuser",
        "x",
        "--rpcpassword",
        "y",
        "uptime",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(client::run_cli(&args, &mut out, &mut err), 1);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "error: Authorization failed: Incorrect rpcuser or rpcpassword\n"
    );
    // Cookie from the data directory's network subdirectory.
    let dir = tempfile::tempdir().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args: Vec<String> = vec![
        "--regtest".into(),
        "--datadir".into(),
        dir.path().display().to_string(),
        "--rpcport".into(),
        addr.port().to_string(),
        "uptime".into(),
    ];
    assert_eq!(client::run_cli(&args, &mut out, &mut err), 1);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("regtest/.cookie"), "{err}");
    // With a server writing its cookie there, the same command works.
    std::fs::create_dir_all(dir.path().join("regtest")).unwrap();
    let mut c = config();
    c.auth = Auth::Cookie(dir.path().join("regtest").join(".cookie"));
    let (_s2, _m2, addr2) = start_with(c);
    let mut args = args;
    args[4] = addr2.port().to_string();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(client::run_cli(&args, &mut out, &mut err), 0, "{err:?}");
    assert_eq!(String::from_utf8(out).unwrap(), "42\n");
}

// ---------------------------------------------------------------------------
// Transaction, chain-data and node methods (issue 13), through the
// dispatcher over the mock.

const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
const G2: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
const G_UNCOMPRESSED: &str = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
const HASH160_G: &str = "751e76e8199196d454941c45d1b3a323f1433bd6";
const ADDR_G: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

fn dispatcher() -> Dispatcher {
    let mock: Arc<dyn RpcBackend> = Mock::new();
    Dispatcher::new(mock)
}

fn exec(d: &Dispatcher, method: &str, params: Value) -> Result<Value, (i32, String)> {
    d.execute(method, &params).map_err(|e| (e.code, e.message))
}

#[test]
fn key_descriptors_give_cores_scripts() {
    let net = Network::Regtest;
    let s = |d: &str| methods::script_from_descriptor(d, net).map(|s| s.to_hex_string());
    assert_eq!(
        s(&format!("pkh({G})")).unwrap(),
        format!("76a914{HASH160_G}88ac")
    );
    assert_eq!(
        s(&format!("wpkh({G})")).unwrap(),
        format!("0014{HASH160_G}")
    );
    // BIP86's first test vector: internal key → tweaked output key.
    assert_eq!(
        s("tr(cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115)").unwrap(),
        "5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c"
    );
    // A 33-byte key in tr() uses its x coordinate.
    assert_eq!(
        s(&format!("tr({G})")).unwrap(),
        s(&format!("tr({})", &G[2..])).unwrap()
    );
    assert_eq!(
        s(&format!("wpkh({G_UNCOMPRESSED})")).unwrap_err(),
        "Uncompressed keys are not allowed"
    );
    assert!(s(&format!("pkh({G_UNCOMPRESSED})")).is_ok());
    assert_eq!(s("pkh(02zz)").unwrap_err(), "key '02zz' is not valid");
    assert!(s(&format!("tr({G},pk({G2}))"))
        .unwrap_err()
        .contains("not supported"));
}

#[test]
fn decodescript_wrappers_like_core() {
    let d = dispatcher();
    // Bare 1-of-2 multisig: no address, P2SH and P2WSH wrappers.
    let ms = format!("5121{G}21{G2}52ae");
    let r = exec(&d, "decodescript", json!([ms])).unwrap();
    assert_eq!(r["type"], "multisig");
    assert!(r.get("address").is_none());
    assert!(r["p2sh"].as_str().unwrap().starts_with('2'));
    assert_eq!(r["segwit"]["type"], "witness_v0_scripthash");
    assert!(r["segwit"]["desc"]
        .as_str()
        .unwrap()
        .starts_with(&format!("wsh(multi(1,{G},{G2}))#")));
    assert!(r["segwit"]["p2sh-segwit"]
        .as_str()
        .unwrap()
        .starts_with('2'));
    // P2PK: no address of its own; its segwit form is P2WPKH of the key.
    let r = exec(&d, "decodescript", json!([format!("21{G}ac")])).unwrap();
    assert_eq!(r["type"], "pubkey");
    assert!(r.get("address").is_none());
    assert!(r["desc"]
        .as_str()
        .unwrap()
        .starts_with(&format!("pk({G})#")));
    assert_eq!(r["segwit"]["address"], ADDR_G);
    // Uncompressed P2PK: P2SH only.
    let r = exec(&d, "decodescript", json!([format!("41{G_UNCOMPRESSED}ac")])).unwrap();
    assert!(r.get("p2sh").is_some());
    assert!(r.get("segwit").is_none());
    // OP_RETURN and P2SH are never wrapped.
    let r = exec(&d, "decodescript", json!(["6a0401020304"])).unwrap();
    assert_eq!(r["type"], "nulldata");
    assert!(r.get("p2sh").is_none());
    let r = exec(&d, "decodescript", json!([format!("a914{HASH160_G}87")])).unwrap();
    assert_eq!(r["type"], "scripthash");
    assert!(r.get("p2sh").is_none());
    // Empty script: nonstandard, wrappable; bad hex: -8.
    let r = exec(&d, "decodescript", json!([""])).unwrap();
    assert_eq!(r["type"], "nonstandard");
    assert_eq!(r["asm"], "");
    assert!(r["segwit"]["desc"]
        .as_str()
        .unwrap()
        .starts_with("wsh(raw())#"));
    assert_eq!(
        exec(&d, "decodescript", json!(["0g"])).unwrap_err(),
        (
            -8,
            "argument must be hexadecimal string (not '0g')".to_string()
        )
    );
}

#[test]
fn createrawtransaction_arguments_and_errors() {
    let d = dispatcher();
    let txid = "aa".repeat(32);
    let input = json!([{"txid": txid, "vout": 1}]);
    // Outputs as an array of one-key objects; named arguments.
    let hex = exec(
        &d,
        "createrawtransaction",
        json!({"inputs": input, "outputs": [{ADDR_G: "0.1"}, {"data": "ff"}], "replaceable": false, "locktime": 5, "version": 3}),
    )
    .unwrap();
    let tx = exec(&d, "decoderawtransaction", json!([hex])).unwrap();
    assert_eq!(tx["version"], 3);
    assert_eq!(tx["locktime"], 5);
    // Not replaceable with a locktime: MAX_SEQUENCE_NONFINAL.
    assert_eq!(tx["vin"][0]["sequence"], 0xffff_fffeu32);
    assert_eq!(tx["vin"][0]["vout"], 1);
    assert_eq!(tx["vout"][0]["value"].to_string(), "0.10000000");
    assert_eq!(tx["vout"][1]["scriptPubKey"]["hex"], "6a01ff");
    // Without inputs the legacy serialization decodes (the heuristic).
    let hex = exec(&d, "createrawtransaction", json!([[], {ADDR_G: 1}])).unwrap();
    let tx = exec(&d, "decoderawtransaction", json!([hex])).unwrap();
    assert_eq!(tx["vin"], json!([]));
    assert_eq!(tx["vout"][0]["n"], 0);
    let err = |params: Value| exec(&d, "createrawtransaction", params).unwrap_err();
    assert_eq!(
        err(json!([[], [{ADDR_G: 1}, {ADDR_G: 2}]])),
        (
            -8,
            format!("Invalid parameter, duplicated address: {ADDR_G}")
        )
    );
    assert_eq!(
        err(json!([[], [{"data": "00"}, {"data": "01"}]])),
        (-8, "Invalid parameter, duplicate key: data".to_string())
    );
    assert_eq!(
        err(json!([[], [{ADDR_G: 1, "data": "00"}]])),
        (
            -8,
            "Invalid parameter, key-value pair must contain exactly one key".to_string()
        )
    );
    assert_eq!(
        err(json!([[{"txid": txid}], {}])),
        (-8, "Invalid parameter, missing vout key".to_string())
    );
    assert_eq!(
        err(json!([[{"txid": txid, "vout": -1}], {}])),
        (-8, "Invalid parameter, vout cannot be negative".to_string())
    );
    assert_eq!(
        err(json!([[], {}, -1])),
        (-8, "Invalid parameter, locktime out of range".to_string())
    );
    assert_eq!(
        err(json!([[], {}, 0, true, 4])),
        (
            -8,
            "Invalid parameter, version out of range(1~3)".to_string()
        )
    );
    assert_eq!(err(json!([[], {"data": "zz"}])).0, -8);
    assert_eq!(
        err(json!([[], {"1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH": 1}])),
        (
            -5,
            "Invalid Bitcoin address: 1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH".to_string()
        )
    );
    assert_eq!(err(json!([[], "x"])).0, -3);
    assert_eq!(err(json!([[1], {}])).0, -3);
}

#[test]
fn decoderawtransaction_honours_iswitness() {
    let d = dispatcher();
    let genesis = genesis_block(Network::Regtest);
    let hex = bitcoin::consensus::encode::serialize_hex(&genesis.txdata[0]);
    let r = exec(&d, "decoderawtransaction", json!([hex, false])).unwrap();
    assert_eq!(r["txid"], genesis.txdata[0].compute_txid().to_string());
    assert_eq!(r["vin"][0]["sequence"], 0xffff_ffffu32);
    assert!(r["vin"][0]["coinbase"].is_string());
    // A legacy transaction decodes as witness too (no marker: same bytes).
    assert!(exec(&d, "decoderawtransaction", json!([hex, true])).is_ok());
    assert_eq!(
        exec(&d, "decoderawtransaction", json!([format!("{hex}00")])).unwrap_err(),
        (-22, "TX decode failed".to_string())
    );
}

#[test]
fn chain_data_methods_report_cores_errors() {
    let d = dispatcher();
    let genesis = genesis_block(Network::Regtest).block_hash().to_string();
    // The mock has no undo data, but genesis needs none.
    let s = exec(&d, "getblockstats", json!([0])).unwrap();
    assert_eq!(s["txs"], 1);
    assert_eq!(s["subsidy"], 5_000_000_000i64);
    assert_eq!(s["utxo_increase_actual"], 0);
    assert_eq!(s["feerate_percentiles"], json!([0, 0, 0, 0, 0]));
    assert_eq!(
        exec(&d, "getblockstats", json!([1])).unwrap_err(),
        (-8, "Target block height 1 after current tip 0".to_string())
    );
    assert_eq!(
        exec(&d, "getblockstats", json!(["00".repeat(32)])).unwrap_err(),
        (-5, "Block not found".to_string())
    );
    assert_eq!(exec(&d, "getblockstats", json!([true])).unwrap_err().0, -3);
    // getchaintxstats at genesis: an empty window, no count (unknown).
    let s = exec(&d, "getchaintxstats", json!([])).unwrap();
    assert_eq!(s["window_block_count"], 0);
    assert_eq!(s["window_final_block_hash"], genesis);
    assert!(s.get("txcount").is_none());
    assert!(s.get("window_interval").is_none());
    assert_eq!(exec(&d, "getchaintxstats", json!([1])).unwrap_err().0, -8);
    // UTXO-set methods check their arguments before the backend.
    assert_eq!(
        exec(&d, "gettxoutsetinfo", json!(["sha256"])).unwrap_err(),
        (-8, "'sha256' is not a valid hash_type".to_string())
    );
    assert_eq!(
        exec(&d, "gettxoutsetinfo", json!(["none", 5])).unwrap_err(),
        (
            -8,
            "Querying specific block heights requires coinstatsindex".to_string()
        )
    );
    assert_eq!(
        exec(&d, "scantxoutset", json!(["begin"])).unwrap_err(),
        (-8, "Invalid action 'begin'".to_string())
    );
    assert_eq!(
        exec(&d, "scantxoutset", json!(["start"])).unwrap_err(),
        (
            -1,
            "scanobjects argument is required for the start action".to_string()
        )
    );
    assert_eq!(
        exec(&d, "scantxoutset", json!(["start", [{"range": 1}]])).unwrap_err(),
        (
            -8,
            "Descriptor needs to be provided in scan object".to_string()
        )
    );
    let txid = "11".repeat(32);
    assert_eq!(
        exec(&d, "gettxoutproof", json!([[txid, txid]])).unwrap_err(),
        (-8, format!("Invalid parameter, duplicated txid: {txid}"))
    );
    // verifytxoutproof: a proof for the genesis block, which the mock has.
    let block = genesis_block(Network::Regtest);
    let coinbase = block.txdata[0].compute_txid();
    let mb = bitcoin::MerkleBlock::from_block_with_predicate(&block, |t| *t == coinbase);
    let proof = bitcoin::consensus::encode::serialize_hex(&mb);
    assert_eq!(
        exec(&d, "verifytxoutproof", json!([proof])).unwrap(),
        json!([coinbase.to_string()])
    );
    assert_eq!(
        exec(&d, "verifytxoutproof", json!(["00"])).unwrap_err().0,
        -22
    );
}

#[test]
fn node_methods_shapes() {
    let d = dispatcher();
    assert_eq!(
        exec(&d, "logging", json!([["net", "nosuch"]])).unwrap_err(),
        (-8, "unknown logging category nosuch".to_string())
    );
    let info = exec(&d, "getrpcinfo", json!([])).unwrap();
    assert_eq!(
        info["active_commands"],
        json!([{"method": "getrpcinfo", "duration": info["active_commands"][0]["duration"]}])
    );
    assert!(info["logpath"].is_string());
    let mem = exec(&d, "getmemoryinfo", json!([])).unwrap();
    let locked = mem["locked"].as_object().unwrap();
    let keys: Vec<&str> = locked.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "used",
            "free",
            "total",
            "locked",
            "chunks_used",
            "chunks_free"
        ]
    );
    assert_eq!(
        exec(&d, "getmemoryinfo", json!(["mallocinfo"])).unwrap_err(),
        (-8, "mallocinfo mode not available".to_string())
    );
    assert_eq!(exec(&d, "getmemoryinfo", json!(["x"])).unwrap_err().0, -8);
    assert_eq!(exec(&d, "getindexinfo", json!([])).unwrap(), json!({}));
    assert_eq!(
        exec(&d, "getindexinfo", json!(["txindex"])).unwrap(),
        json!({})
    );
}
