//! Mining RPCs, mempool limits and mempool persistence against the real
//! binary (issue 13 "Mining", `savemempool`; issue 12 `--maxmempool`):
//! a block built from `getblocktemplate` is accepted by `submitblock`;
//! Core's errors of `getblocktemplate` and `submitheader`;
//! `prioritisetransaction` reorders the template; `--maxmempool` evicts the
//! lowest fee rates and raises `mempoolminfee`; the mempool survives a
//! restart (and not with `--persistmempool=0`).

mod common;

use std::str::FromStr;
use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{
    absolute, transaction, Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Witness,
};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::ClientAuth;

const ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

struct Rpc {
    node: NodeProcess,
    addr: std::net::SocketAddr,
    auth: ClientAuth,
}

impl Rpc {
    fn start_in(datadir: &str, args: &[&str]) -> Rpc {
        let node = NodeProcess::start_in(datadir, args);
        let addr = node.rpc_addr();
        let auth = ClientAuth::Cookie(
            std::path::Path::new(datadir)
                .join("regtest")
                .join(".cookie"),
        );
        Rpc { node, addr, auth }
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        rpc_ok(self.addr, &self.auth, method, params)
    }

    fn err(&self, method: &str, params: Value) -> (i32, String) {
        rpc_err(self.addr, &self.auth, method, params)
    }

    fn stop(mut self) {
        assert!(
            self.node.terminate(Duration::from_secs(30)).is_some(),
            "node did not stop"
        );
    }
}

/// A node in `dir` holding the 110-block test chain (seed `seed`).
fn node_with_chain(
    dir: &tempfile::TempDir,
    seed: u64,
    args: &[&str],
) -> (Rpc, strand::testdata::ChainBuilder) {
    let rpc = Rpc::start_in(dir.path().to_str().unwrap(), args);
    let chain = test_chain(seed, 110, 2);
    let server = ChainServer::start(rpc.node.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(wait_until(Duration::from_secs(60), || rpc
        .ok("getblockcount", json!([]))
        == json!(110)));
    server.finish().unwrap();
    (rpc, chain)
}

fn hex(tx: &Transaction) -> String {
    serialize(tx).to_lower_hex_string()
}

/// A spend of builder output `i` paying `fee`.
fn pay(chain: &strand::testdata::ChainBuilder, i: usize, fee: u64) -> Transaction {
    let (op, value) = chain.spendable_outputs()[i];
    chain
        .sign_spend(
            &[op],
            vec![TxOut {
                value: value - Amount::from_sat(fee),
                script_pubkey: payout(chain),
            }],
        )
        .unwrap()
}

/// The block `template` describes, paying to `script`, mined.
fn block_from_template(t: &Value, script: ScriptBuf) -> Block {
    let height = t["height"].as_u64().unwrap() as u32;
    let value = Amount::from_sat(t["coinbasevalue"].as_u64().unwrap());
    let mut coinbase = strand::mining::coinbase_tx(height, script, value, None, 0).unwrap();
    let commitment =
        Vec::<u8>::from_hex(t["default_witness_commitment"].as_str().unwrap()).unwrap();
    coinbase.output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(commitment),
    });
    coinbase.input[0].witness = Witness::from_slice(&[[0u8; 32]]);
    let mut txdata = vec![coinbase];
    for tx in t["transactions"].as_array().unwrap() {
        let raw = Vec::<u8>::from_hex(tx["data"].as_str().unwrap()).unwrap();
        txdata.push(deserialize(&raw).unwrap());
    }
    let bits = u32::from_str_radix(t["bits"].as_str().unwrap(), 16).unwrap();
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(t["version"].as_i64().unwrap() as i32),
            prev_blockhash: BlockHash::from_str(t["previousblockhash"].as_str().unwrap()).unwrap(),
            merkle_root: strand::mining::merkle_root(&txdata),
            time: t["curtime"].as_u64().unwrap() as u32,
            bits: CompactTarget::from_consensus(bits),
            nonce: 0,
        },
        txdata,
    };
    assert!(block.check_witness_commitment());
    assert!(strand::mining::mine(&mut block, 1_000_000));
    block
}

fn template(rpc: &Rpc) -> Value {
    rpc.ok("getblocktemplate", json!([{"rules": ["segwit"]}]))
}

fn template_txids(rpc: &Rpc) -> Vec<String> {
    template(rpc)["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["txid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn getblocktemplate_block_is_accepted_and_prioritisation_reorders() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, chain) = node_with_chain(&dir, 61, &[]);
    let tip = rpc.ok("getbestblockhash", json!([]));

    // Core's -8 without the segwit rule; -8 for an unknown mode.
    let (code, msg) = rpc.err("getblocktemplate", json!([]));
    assert_eq!(code, -8, "{msg}");
    assert!(msg.contains("segwit rule set"), "{msg}");
    let (code, _) = rpc.err("getblocktemplate", json!([{"rules": ["csv"]}]));
    assert_eq!(code, -8);
    let (code, msg) = rpc.err(
        "getblocktemplate",
        json!([{"mode": "bogus", "rules": ["segwit"]}]),
    );
    assert_eq!((code, msg.as_str()), (-8, "Invalid mode"));

    let a = pay(&chain, 0, 10_000);
    let b = pay(&chain, 1, 30_000);
    for t in [&a, &b] {
        rpc.ok("sendrawtransaction", json!([hex(t)]));
    }
    let t = template(&rpc);
    assert_eq!(t["height"], json!(111));
    assert_eq!(t["previousblockhash"], tip);
    assert_eq!(t["bits"], json!("207fffff"));
    assert_eq!(t["version"], json!(0x2000_0000));
    assert_eq!(t["rules"], json!(["csv", "!segwit", "taproot"]));
    assert_eq!(t["vbavailable"], json!({}));
    assert_eq!(t["weightlimit"], json!(4_000_000));
    assert_eq!(t["sigoplimit"], json!(80_000));
    assert_eq!(t["sizelimit"], json!(4_000_000));
    assert_eq!(t["noncerange"], json!("00000000ffffffff"));
    assert_eq!(t["mutable"], json!(["time", "transactions", "prevblock"]));
    assert_eq!(t["target"].as_str().unwrap().len(), 64);
    assert!(t["mintime"].as_u64().unwrap() <= t["curtime"].as_u64().unwrap());
    assert!(t["longpollid"]
        .as_str()
        .unwrap()
        .starts_with(tip.as_str().unwrap()));
    assert!(t["default_witness_commitment"]
        .as_str()
        .unwrap()
        .starts_with("6a24aa21a9ed"));
    // Subsidy (50 BTC below the regtest halving at 150) plus both fees.
    assert_eq!(
        t["coinbasevalue"],
        json!(50 * 100_000_000u64 + 10_000 + 30_000)
    );
    // Highest fee rate first; each entry in Core's shape.
    let txs = t["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0]["txid"], json!(b.compute_txid().to_string()));
    assert_eq!(txs[0]["hash"], json!(b.compute_wtxid().to_string()));
    assert_eq!(txs[0]["fee"], json!(30_000));
    assert_eq!(txs[0]["depends"], json!([]));
    assert_eq!(txs[0]["data"], json!(hex(&b)));
    assert_eq!(txs[0]["weight"], json!(b.weight().to_wu()));
    assert!(txs[0]["sigops"].as_u64().is_some());

    // prioritisetransaction: Core's -8 for a non-zero dummy; a delta on
    // the cheaper one moves it first.
    let (code, _) = rpc.err(
        "prioritisetransaction",
        json!([a.compute_txid().to_string(), 1, 5]),
    );
    assert_eq!(code, -8);
    assert_eq!(
        rpc.ok(
            "prioritisetransaction",
            json!([a.compute_txid().to_string(), 0, 1_000_000])
        ),
        json!(true)
    );
    assert_eq!(
        template_txids(&rpc),
        vec![a.compute_txid().to_string(), b.compute_txid().to_string()]
    );
    let p = rpc.ok("getprioritisedtransactions", json!([]));
    assert_eq!(
        p[a.compute_txid().to_string()],
        json!({"fee_delta": 1_000_000, "in_mempool": true, "modified_fee": 1_010_000})
    );
    let entry = rpc.ok("getmempoolentry", json!([a.compute_txid().to_string()]));
    assert_eq!(entry["fees"]["modified"].to_string(), "0.01010000");
    // The coinbase collects base fees only.
    let t = template(&rpc);
    assert_eq!(
        t["coinbasevalue"],
        json!(50 * 100_000_000u64 + 10_000 + 30_000)
    );

    // getmininginfo before the block.
    let info = rpc.ok("getmininginfo", json!([]));
    assert_eq!(info["blocks"], json!(110));
    assert_eq!(info["pooledtx"], json!(2));
    assert_eq!(info["chain"], json!("regtest"));
    assert_eq!(info["next"]["height"], json!(111));
    assert_eq!(info["next"]["bits"], json!("207fffff"));
    assert_eq!(info["blockmintxfee"].to_string(), "0.00000001");
    assert!(info["networkhashps"].as_f64().unwrap() > 0.0);

    // The block built from the template is accepted.
    let block = block_from_template(&t, payout(&chain));
    assert_eq!(
        rpc.ok(
            "submitblock",
            json!([serialize(&block).to_lower_hex_string()])
        ),
        Value::Null
    );
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(111));
    assert_eq!(
        rpc.ok("getbestblockhash", json!([])),
        json!(block.block_hash().to_string())
    );
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
    // Mined: its delta is cleared, as Core does.
    assert_eq!(rpc.ok("getprioritisedtransactions", json!([])), json!({}));
    rpc.stop();
}

#[test]
fn submitheader_accepts_valid_and_refuses_orphan_and_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, chain) = node_with_chain(&dir, 62, &[]);
    let t = template(&rpc);
    let block = block_from_template(&t, payout(&chain));
    let header_hex = serialize(&block.header).to_lower_hex_string();

    assert_eq!(rpc.ok("submitheader", json!([header_hex])), Value::Null);
    let h = rpc.ok("getblockheader", json!([block.block_hash().to_string()]));
    assert_eq!(h["height"], json!(111));
    // Known but without data: the active tip does not move.
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(110));

    // An orphan header: Core's -25 naming the missing parent.
    let mut orphan = block.header;
    orphan.prev_blockhash = BlockHash::from_byte_array_for_test();
    let (code, msg) = rpc.err(
        "submitheader",
        json!([serialize(&orphan).to_lower_hex_string()]),
    );
    assert_eq!(code, -25);
    assert_eq!(
        msg,
        format!(
            "Must submit previous header ({}) first",
            orphan.prev_blockhash
        )
    );
    // An invalid one (wrong difficulty bits for regtest): -25.
    let mut bad = block.header;
    bad.bits = CompactTarget::from_consensus(0x1d00_ffff);
    let (code, msg) = rpc.err(
        "submitheader",
        json!([serialize(&bad).to_lower_hex_string()]),
    );
    assert_eq!(code, -25, "{msg}");
    assert!(!msg.is_empty());
    // Undecodable: -22.
    let (code, msg) = rpc.err("submitheader", json!(["00ff"]));
    assert_eq!((code, msg.as_str()), (-22, "Block header decode failed"));
    rpc.stop();
}

trait TestHash {
    fn from_byte_array_for_test() -> Self;
}

impl TestHash for BlockHash {
    fn from_byte_array_for_test() -> BlockHash {
        use bitcoin::hashes::Hash;
        BlockHash::from_byte_array([0x42; 32])
    }
}

/// P2WSH of `OP_TRUE`: spendable by anyone with the script as witness.
fn op_true() -> ScriptBuf {
    ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash())
}

/// A spend of the `OP_TRUE` output `prev` (worth `value`) into `n` outputs
/// of 1,000 sat plus change, paying `rate` sat/vB.
fn fan_out(prev: OutPoint, value: Amount, n: usize, rate: u64) -> Transaction {
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x51]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: op_true(),
            };
            n + 1
        ],
    };
    let vsize = tx.weight().to_vbytes_ceil();
    let change = value.to_sat() - 1_000 * n as u64 - rate * vsize;
    tx.output[n].value = Amount::from_sat(change);
    tx
}

#[test]
fn maxmempool_evicts_lowest_feerates_and_raises_mempoolminfee() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, chain) = node_with_chain(&dir, 63, &["--maxmempool", "5"]);
    // 31 anyone-can-spend outputs of 0.1 BTC, confirmed.
    let (op, value) = chain
        .spendable_outputs()
        .into_iter()
        .max_by_key(|(_, v)| *v)
        .unwrap();
    assert!(value > Amount::from_sat(311_000_000));
    let mut outputs = vec![
        TxOut {
            value: Amount::from_sat(10_000_000),
            script_pubkey: op_true(),
        };
        31
    ];
    outputs.push(TxOut {
        value: value - Amount::from_sat(310_000_000 + 20_000),
        script_pubkey: payout(&chain),
    });
    let funding = chain.sign_spend(&[op], outputs).unwrap();
    rpc.ok("sendrawtransaction", json!([hex(&funding)]));
    rpc.ok("generatetoaddress", json!([1, ADDR]));
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
    let fid = funding.compute_txid();

    // 30 transactions of ~95 kvB (~236 kB of usage each) at 2..=31 sat/vB:
    // about 21 fit in 5 MB.
    let mut sent = Vec::new();
    for i in 0..30u32 {
        let tx = fan_out(
            OutPoint::new(fid, i),
            Amount::from_sat(10_000_000),
            2_200,
            2 + u64::from(i),
        );
        rpc.ok("sendrawtransaction", json!([hex(&tx)]));
        sent.push(tx.compute_txid().to_string());
    }
    let info = rpc.ok("getmempoolinfo", json!([]));
    eprintln!("mempool after 30 large transactions: {info}");
    assert_eq!(info["maxmempool"], json!(5_000_000));
    let usage = info["usage"].as_u64().unwrap();
    assert!(usage <= 5_000_000, "{info}");
    let size = info["size"].as_u64().unwrap();
    assert!(size > 10 && size < 30, "{info}");
    let pool = rpc.ok("getrawmempool", json!([]));
    let pool: Vec<&str> = pool
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The cheapest went, the richest stayed.
    let evicted = 30 - size as usize;
    for (i, txid) in sent.iter().enumerate() {
        assert_eq!(pool.contains(&txid.as_str()), i >= evicted, "tx {i}");
    }
    // The rolling minimum: the last evicted rate plus the incremental fee.
    let minfee = info["mempoolminfee"].as_f64().unwrap();
    let expected = (2 + evicted as u64 - 1 + 1) as f64 * 1e-5;
    assert!((minfee - expected).abs() < 1e-9, "{info}");
    assert!(minfee > info["minrelaytxfee"].as_f64().unwrap());

    // A newcomer below it is refused.
    let cheap = fan_out(OutPoint::new(fid, 30), Amount::from_sat(10_000_000), 10, 2);
    let (code, msg) = rpc.err("sendrawtransaction", json!([hex(&cheap)]));
    assert_eq!(code, -26);
    assert!(msg.contains("mempool min fee not met"), "{msg}");
    rpc.stop();
}

#[test]
fn mempool_is_saved_and_reloaded_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, chain) = node_with_chain(&dir, 64, &[]);
    let a = pay(&chain, 0, 10_000);
    let b = pay(&chain, 1, 20_000);
    for t in [&a, &b] {
        rpc.ok("sendrawtransaction", json!([hex(t)]));
    }
    rpc.ok(
        "prioritisetransaction",
        json!([a.compute_txid().to_string(), 0, 4_000]),
    );
    let file = dir.path().join("regtest").join("mempool.dat");
    let saved = rpc.ok("savemempool", json!([]));
    assert_eq!(saved["filename"], json!(file.display().to_string()));
    assert!(file.metadata().unwrap().len() > 0);
    let before = rpc.ok("getrawmempool", json!([]));
    assert_eq!(before.as_array().unwrap().len(), 2);
    let time_a = rpc.ok("getmempoolentry", json!([a.compute_txid().to_string()]))["time"].clone();
    rpc.stop();

    // Reloaded (validated again) with entry times and deltas.
    let rpc = Rpc::start_in(dir.path().to_str().unwrap(), &[]);
    assert_eq!(rpc.ok("getrawmempool", json!([])), before);
    let entry = rpc.ok("getmempoolentry", json!([a.compute_txid().to_string()]));
    assert_eq!(entry["time"], time_a);
    assert_eq!(entry["fees"]["modified"].to_string(), "0.00014000");
    assert_eq!(rpc.ok("getmempoolinfo", json!([]))["loaded"], json!(true));
    rpc.stop();

    // --persistmempool=0: neither loaded nor saved.
    let rpc = Rpc::start_in(dir.path().to_str().unwrap(), &["--persistmempool=0"]);
    assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
    rpc.stop();
}

#[test]
fn estimatesmartfee_from_confirmations_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, chain) = node_with_chain(&dir, 65, &[]);
    // No data yet: Core's error list, and the target it would use.
    let e = rpc.ok("estimatesmartfee", json!([2]));
    assert_eq!(
        e["errors"],
        json!(["Insufficient data or no feerate found"])
    );
    assert!(e.get("feerate").is_none());
    for bad in [json!([0]), json!([1009])] {
        let (code, msg) = rpc.err("estimatesmartfee", bad);
        assert_eq!(code, -8);
        assert_eq!(msg, "Invalid conf_target, must be between 1 and 1008");
    }
    let (code, _) = rpc.err("estimatesmartfee", json!([2, "bogus"]));
    assert_eq!(code, -8);
    let (code, _) = rpc.err("estimaterawfee", json!([2, 1.5]));
    assert_eq!(code, -8);

    // 40 anyone-can-spend outputs, confirmed.
    let (op, value) = chain
        .spendable_outputs()
        .into_iter()
        .max_by_key(|(_, v)| *v)
        .unwrap();
    let mut outputs = vec![
        TxOut {
            value: Amount::from_sat(1_000_000),
            script_pubkey: op_true(),
        };
        40
    ];
    outputs.push(TxOut {
        value: value - Amount::from_sat(40_000_000 + 50_000),
        script_pubkey: payout(&chain),
    });
    let funding = chain.sign_spend(&[op], outputs).unwrap();
    rpc.ok("sendrawtransaction", json!([hex(&funding)]));
    rpc.ok("generatetoaddress", json!([1, ADDR]));
    let fid = funding.compute_txid();

    // Four blocks, each confirming ten transactions at exactly 10 sat/vB
    // sent just before it.
    for blk in 0..4u32 {
        for j in 0..10u32 {
            let tx = fan_out(
                OutPoint::new(fid, blk * 10 + j),
                Amount::from_sat(1_000_000),
                1,
                10,
            );
            rpc.ok("sendrawtransaction", json!([hex(&tx)]));
        }
        rpc.ok("generatetoaddress", json!([1, ADDR]));
        assert_eq!(rpc.ok("getrawmempool", json!([])), json!([]));
    }
    let e = rpc.ok("estimatesmartfee", json!([2]));
    assert_eq!(e["feerate"].to_string(), "0.00010000", "{e}");
    assert_eq!(e["blocks"], json!(2));
    // Target 1 is answered for 2, as Core; long targets are capped by the
    // blocks seen (5 blocks: at most 2).
    assert_eq!(rpc.ok("estimatesmartfee", json!([1])), e);
    assert_eq!(
        rpc.ok("estimatesmartfee", json!([6, "conservative"]))["blocks"],
        json!(2)
    );
    let raw = rpc.ok("estimaterawfee", json!([1]));
    assert_eq!(raw["medium"]["feerate"].to_string(), "0.00010000", "{raw}");
    assert_eq!(raw["medium"]["decay"], json!(0.9952));
    assert!(raw["medium"]["pass"]["totalconfirmed"].as_f64().unwrap() > 30.0);
    assert_eq!(rpc.ok("estimaterawfee", json!([100])), json!({}));
    rpc.stop();
    assert!(dir
        .path()
        .join("regtest")
        .join("fee_estimates.dat")
        .exists());

    // The same answer after a restart (fee_estimates.dat).
    let rpc = Rpc::start_in(dir.path().to_str().unwrap(), &[]);
    assert_eq!(rpc.ok("estimatesmartfee", json!([2])), e);
    rpc.stop();
}
