//! The transaction, chain and node RPCs of issue 13 against the real
//! binary: decoding and creating transactions, scripts, fees and prevouts
//! from undo data (`getblock` 2/3, `getrawtransaction` 2, `getblockstats`),
//! `getchaintxstats`, the UTXO set (`gettxoutsetinfo`, `scantxoutset`),
//! merkle proofs, and the node methods (`logging`, `getrpcinfo`,
//! `getmemoryinfo`, `getindexinfo`, `addnode` errors).

mod common;

use std::collections::HashMap;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Transaction, Txid};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::ClientAuth;

struct Rpc {
    _node: NodeProcess,
    addr: std::net::SocketAddr,
    auth: ClientAuth,
}

impl Rpc {
    fn start() -> Rpc {
        let node = NodeProcess::start(&[]);
        let addr = node.rpc_addr();
        let auth = ClientAuth::Cookie(node.cookie());
        Rpc {
            _node: node,
            addr,
            auth,
        }
    }

    fn ok(&self, method: &str, params: Value) -> Value {
        rpc_ok(self.addr, &self.auth, method, params)
    }

    fn err(&self, method: &str, params: Value) -> (i32, String) {
        rpc_err(self.addr, &self.auth, method, params)
    }
}

/// BIP173's P2WPKH example: the hash of the generator point's compressed
/// key, [`G`].
const ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

fn sats(v: &Value) -> i64 {
    let s = v.to_string();
    let (whole, frac) = s.split_once('.').unwrap_or((&s, "0"));
    let frac = format!("{frac:0<8}");
    whole.parse::<i64>().unwrap() * 100_000_000 + frac[..8].parse::<i64>().unwrap()
}

/// Fee of `tx` from the builder's own transactions.
fn fee_of(tx: &Transaction, by_txid: &HashMap<Txid, Transaction>) -> i64 {
    let inputs: u64 = tx
        .input
        .iter()
        .map(|i| {
            by_txid[&i.previous_output.txid].output[i.previous_output.vout as usize]
                .value
                .to_sat()
        })
        .sum();
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    inputs as i64 - outputs as i64
}

#[test]
fn fees_prevouts_and_block_statistics_from_undo_data() {
    let rpc = Rpc::start();
    let chain = test_chain(41, 104, 3);
    for b in chain.blocks().iter().skip(1) {
        assert_eq!(
            rpc.ok("submitblock", json!([serialize_hex(b)])),
            Value::Null
        );
    }
    assert_eq!(rpc.ok("getblockcount", json!([])), json!(104));
    let by_txid: HashMap<Txid, Transaction> = chain
        .blocks()
        .iter()
        .flat_map(|b| b.txdata.iter().cloned())
        .map(|t| (t.compute_txid(), t))
        .collect();
    let tip = chain.tip();
    let hash = tip.block_hash().to_string();
    assert!(tip.txdata.len() > 1, "the tip has spends");

    // getblock 2: fee per transaction = inputs - outputs; 3: prevouts.
    let b2 = rpc.ok("getblock", json!([hash, 2]));
    let b3 = rpc.ok("getblock", json!([hash, 3]));
    let mut total_fee = 0;
    for (i, tx) in tip.txdata.iter().enumerate() {
        let j2 = &b2["tx"][i];
        let j3 = &b3["tx"][i];
        assert_eq!(j2["txid"], json!(tx.compute_txid().to_string()));
        if tx.is_coinbase() {
            assert!(j2.get("fee").is_none());
            continue;
        }
        let fee = fee_of(tx, &by_txid);
        total_fee += fee;
        assert_eq!(sats(&j2["fee"]), fee);
        assert!(j2["vin"][0].get("prevout").is_none());
        for (k, input) in tx.input.iter().enumerate() {
            let op = input.previous_output;
            let parent = &by_txid[&op.txid];
            let prev = &parent.output[op.vout as usize];
            let p = &j3["vin"][k]["prevout"];
            assert_eq!(sats(&p["value"]), prev.value.to_sat() as i64);
            assert_eq!(
                p["scriptPubKey"]["hex"],
                json!(prev.script_pubkey.to_hex_string())
            );
            assert_eq!(p["generated"], json!(parent.is_coinbase()));
            let parent_height = chain
                .blocks()
                .iter()
                .position(|b| b.txdata.iter().any(|t| t.compute_txid() == op.txid))
                .unwrap();
            assert_eq!(p["height"], json!(parent_height));
        }
        // getrawtransaction 2 with the block hash: the same fee and prevouts.
        let r = rpc.ok(
            "getrawtransaction",
            json!([tx.compute_txid().to_string(), 2, hash]),
        );
        assert_eq!(sats(&r["fee"]), fee);
        assert_eq!(r["vin"][0]["prevout"], j3["vin"][0]["prevout"]);
    }
    assert!(total_fee > 0);

    // A witness transaction decodes to its txid and wtxid.
    let wtx = tip
        .txdata
        .iter()
        .find(|t| t.input.iter().any(|i| !i.witness.is_empty()))
        .expect("a witness spend in the tip");
    let d = rpc.ok("decoderawtransaction", json!([serialize_hex(wtx)]));
    assert_eq!(d["txid"], json!(wtx.compute_txid().to_string()));
    assert_eq!(d["hash"], json!(wtx.compute_wtxid().to_string()));
    assert_eq!(d["vsize"], json!(wtx.vsize()));

    // getrawtransaction 2 of a mempool transaction: fee and prevout from
    // the UTXO set.
    let tx = spend(&chain, 0);
    let txid = rpc.ok("sendrawtransaction", json!([serialize_hex(&tx)]));
    let r = rpc.ok("getrawtransaction", json!([txid, 2]));
    assert_eq!(sats(&r["fee"]), 10_000);
    assert_eq!(sats(&r["fee"]), fee_of(&tx, &by_txid));
    let op = tx.input[0].previous_output;
    assert_eq!(
        sats(&r["vin"][0]["prevout"]["value"]),
        by_txid[&op.txid].output[op.vout as usize].value.to_sat() as i64
    );
    let r1 = rpc.ok("getrawtransaction", json!([txid, 1]));
    assert!(r1.get("fee").is_none());

    // getblockstats: Core's fields, by height and by hash, and the filter.
    let stats = rpc.ok("getblockstats", json!([104]));
    assert_eq!(stats["blockhash"], json!(hash));
    assert_eq!(stats["txs"], json!(tip.txdata.len()));
    assert_eq!(stats["totalfee"], json!(total_fee));
    assert_eq!(stats["subsidy"], json!(50 * 100_000_000i64));
    assert_eq!(
        stats["ins"],
        json!(tip
            .txdata
            .iter()
            .skip(1)
            .map(|t| t.input.len())
            .sum::<usize>())
    );
    assert_eq!(stats["feerate_percentiles"].as_array().unwrap().len(), 5);
    assert_eq!(stats.as_object().unwrap().len(), 31);
    assert_eq!(rpc.ok("getblockstats", json!([hash])), stats);
    let some = rpc.ok("getblockstats", json!([104, ["txs", "totalfee"]]));
    assert_eq!(
        some,
        json!({"totalfee": total_fee, "txs": tip.txdata.len()})
    );
    let (code, msg) = rpc.err("getblockstats", json!([104, ["nosuch"]]));
    assert_eq!(
        (code, msg.as_str()),
        (-8, "Invalid selected statistic 'nosuch'")
    );
    let (code, msg) = rpc.err("getblockstats", json!([105]));
    assert_eq!(
        (code, msg.as_str()),
        (-8, "Target block height 105 after current tip 104")
    );
    let (code, _) = rpc.err("getblockstats", json!([-1]));
    assert_eq!(code, -8);

    // getchaintxstats: the chain's transaction count and the window.
    let total_txs: usize = chain.blocks().iter().map(|b| b.txdata.len()).sum();
    let s = rpc.ok("getchaintxstats", json!([]));
    assert_eq!(s["txcount"], json!(total_txs));
    assert_eq!(s["window_final_block_height"], json!(104));
    assert_eq!(s["window_final_block_hash"], json!(hash));
    assert_eq!(s["window_block_count"], json!(103));
    let window_txs: usize = chain.blocks().iter().skip(2).map(|b| b.txdata.len()).sum();
    assert_eq!(s["window_tx_count"], json!(window_txs));
    let s = rpc.ok("getchaintxstats", json!([10, hash]));
    assert_eq!(s["window_block_count"], json!(10));
    let (code, _) = rpc.err("getchaintxstats", json!([104]));
    assert_eq!(code, -8);
}

#[test]
fn utxo_set_scans_proofs_decoding_and_node_methods() {
    let rpc = Rpc::start();

    // gettxoutsetinfo on genesis alone: an empty set, whose digest is the
    // double SHA-256 of nothing (byte-reversed, as Core prints hashes).
    let empty = rpc.ok("gettxoutsetinfo", json!([]));
    assert_eq!(empty["txouts"], json!(0));
    assert_eq!(
        empty["hash_serialized_3"],
        json!("56944c5d3f98413ef45cf54545538103cc9f298e0575820ad3591376e2e0f65d")
    );
    let hashes = rpc.ok("generatetoaddress", json!([3, ADDR]));
    let info = rpc.ok("gettxoutsetinfo", json!([]));
    assert_eq!(info["height"], json!(3));
    assert_eq!(info["bestblock"], hashes[2]);
    // Three coinbase subsidies of 50 BTC (the witness commitment output
    // is an unspendable OP_RETURN and is not in the set).
    assert_eq!(sats(&info["total_amount"]), 3 * 50 * 100_000_000);
    assert_eq!(info["txouts"], json!(3));
    assert_eq!(info["transactions"], json!(3));
    assert!(info["bogosize"].as_u64().unwrap() > 3 * 50);
    let digest = info["hash_serialized_3"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    let none = rpc.ok("gettxoutsetinfo", json!(["none"]));
    assert!(none.get("hash_serialized_3").is_none());
    assert_eq!(none["txouts"], json!(3));
    let mu = rpc.ok("gettxoutsetinfo", json!(["muhash"]));
    assert!(mu.get("hash_serialized_3").is_none());
    let mu_hash = mu["muhash"].as_str().unwrap().to_string();
    assert_eq!(mu_hash.len(), 64);
    assert_ne!(mu_hash, digest);
    let (code, _) = rpc.err("gettxoutsetinfo", json!(["sha1"]));
    assert_eq!(code, -8);
    rpc.ok("generatetoaddress", json!([1, ADDR]));
    let after = rpc.ok("gettxoutsetinfo", json!([]));
    assert_ne!(after["hash_serialized_3"], json!(digest));
    let mu_after = rpc.ok("gettxoutsetinfo", json!(["muhash"]));
    assert_ne!(mu_after["muhash"], json!(mu_hash));
    assert_eq!(sats(&after["total_amount"]), 4 * 50 * 100_000_000);

    // scantxoutset: the address and the key behind it find the 4 coins.
    for desc in [format!("addr({ADDR})"), format!("wpkh({G})")] {
        let scan = rpc.ok("scantxoutset", json!(["start", [desc]]));
        assert_eq!(scan["success"], json!(true));
        assert_eq!(scan["unspents"].as_array().unwrap().len(), 4, "{desc}");
        assert_eq!(sats(&scan["total_amount"]), 4 * 50 * 100_000_000);
        assert_eq!(scan["height"], json!(4));
        let first = &scan["unspents"][0];
        assert_eq!(first["coinbase"], json!(true));
        assert_eq!(
            first["confirmations"].as_u64().unwrap() + first["height"].as_u64().unwrap(),
            5
        );
    }
    let none = rpc.ok(
        "scantxoutset",
        json!(["start", [format!("pkh({G})"), format!("tr({G})")]]),
    );
    assert_eq!(none["unspents"], json!([]));
    assert_eq!(none["txouts"], json!(4));
    assert_eq!(rpc.ok("scantxoutset", json!(["status"])), Value::Null);
    assert_eq!(rpc.ok("scantxoutset", json!(["abort"])), json!(false));
    let (code, _) = rpc.err("scantxoutset", json!(["start", ["wpkh(02aa)"]]));
    assert_eq!(code, -5);

    // gettxoutproof / verifytxoutproof: found through the UTXO set and by
    // block hash.
    let block1 = rpc.ok("getblock", json!([hashes[0], 1]));
    let coinbase = block1["tx"][0].clone();
    let proof = rpc.ok("gettxoutproof", json!([[coinbase]]));
    assert_eq!(
        rpc.ok("verifytxoutproof", json!([proof])),
        json!([coinbase])
    );
    let proof2 = rpc.ok("gettxoutproof", json!([[coinbase], hashes[0]]));
    assert_eq!(proof2, proof);
    let (code, msg) = rpc.err("gettxoutproof", json!([[coinbase], hashes[1]]));
    assert_eq!(
        (code, msg.as_str()),
        (
            -5,
            "Not all transactions found in specified or retrieved block"
        )
    );
    let (code, _) = rpc.err("gettxoutproof", json!([[]]));
    assert_eq!(code, -8);

    // decoderawtransaction of a known transaction: the genesis coinbase.
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    let d = rpc.ok(
        "decoderawtransaction",
        json!([serialize_hex(&genesis.txdata[0])]),
    );
    assert_eq!(
        d["txid"],
        json!("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b")
    );
    assert_eq!(d["version"], json!(1));
    assert_eq!(d["size"], json!(204));
    assert_eq!(d["vout"][0]["scriptPubKey"]["type"], json!("pubkey"));
    assert_eq!(sats(&d["vout"][0]["value"]), 50 * 100_000_000);
    assert!(d.get("hex").is_none());
    let (code, msg) = rpc.err("decoderawtransaction", json!(["00"]));
    assert_eq!((code, msg.as_str()), (-22, "TX decode failed"));

    // decodescript: P2PKH, P2WPKH, P2TR.
    let p2pkh = rpc.ok(
        "decodescript",
        json!(["76a914751e76e8199196d454941c45d1b3a323f1433bd688ac"]),
    );
    assert_eq!(p2pkh["type"], json!("pubkeyhash"));
    assert_eq!(
        p2pkh["address"],
        json!("mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r")
    );
    assert!(p2pkh["p2sh"].as_str().unwrap().starts_with('2'));
    assert_eq!(p2pkh["segwit"]["type"], json!("witness_v0_keyhash"));
    assert_eq!(p2pkh["segwit"]["address"], json!(ADDR));
    let p2wpkh = rpc.ok(
        "decodescript",
        json!(["0014751e76e8199196d454941c45d1b3a323f1433bd6"]),
    );
    assert_eq!(p2wpkh["type"], json!("witness_v0_keyhash"));
    assert_eq!(p2wpkh["address"], json!(ADDR));
    assert!(p2wpkh.get("p2sh").is_some());
    assert!(p2wpkh.get("segwit").is_none());
    let p2tr = rpc.ok(
        "decodescript",
        json!(["5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c"]),
    );
    assert_eq!(p2tr["type"], json!("witness_v1_taproot"));
    assert!(p2tr["address"].as_str().unwrap().starts_with("bcrt1p"));
    assert!(p2tr.get("p2sh").is_none());
    let (code, _) = rpc.err("decodescript", json!(["zz"]));
    assert_eq!(code, -8);

    // createrawtransaction → decoderawtransaction round trip.
    let hex = rpc.ok(
        "createrawtransaction",
        json!([[{"txid": coinbase, "vout": 0}], {ADDR: 1.5, "data": "00ff"}, 7]),
    );
    let tx = rpc.ok("decoderawtransaction", json!([hex]));
    assert_eq!(tx["vin"][0]["txid"], coinbase);
    assert_eq!(tx["vin"][0]["vout"], json!(0));
    assert_eq!(tx["vin"][0]["sequence"], json!(0xffff_fffdu32));
    assert_eq!(tx["locktime"], json!(7));
    assert_eq!(tx["version"], json!(2));
    assert_eq!(sats(&tx["vout"][0]["value"]), 150_000_000);
    assert_eq!(tx["vout"][0]["scriptPubKey"]["address"], json!(ADDR));
    assert_eq!(tx["vout"][1]["scriptPubKey"]["type"], json!("nulldata"));
    assert_eq!(tx["vout"][1]["scriptPubKey"]["hex"], json!("6a0200ff"));
    let (code, msg) = rpc.err("createrawtransaction", json!([[], {"bcrt1qnope": 1}]));
    assert_eq!(
        (code, msg.as_str()),
        (-5, "Invalid Bitcoin address: bcrt1qnope")
    );
    let (code, _) = rpc.err(
        "createrawtransaction",
        json!([[{"txid": coinbase, "vout": 0, "sequence": 0xffff_ffffu32}], {}, 0, true]),
    );
    assert_eq!(code, -8);

    // Node methods.
    let (code, msg) = rpc.err("addnode", json!(["127.0.0.1:1", "remove"]));
    assert_eq!(
        (code, msg.as_str()),
        (
            -24,
            "Error: Node could not be removed. It has not been added previously."
        )
    );
    let l = rpc.ok("logging", json!([["net"], []]));
    assert_eq!(l["net"], json!(true));
    assert_eq!(l["mempool"], json!(false));
    let l = rpc.ok("logging", json!([[], ["net"]]));
    assert_eq!(l["net"], json!(false));
    let (code, _) = rpc.err("logging", json!([["nosuch"]]));
    assert_eq!(code, -8);
    let info = rpc.ok("getrpcinfo", json!([]));
    assert_eq!(info["active_commands"][0]["method"], json!("getrpcinfo"));
    assert!(info["logpath"].as_str().unwrap().ends_with("debug.log"));
    let mem = rpc.ok("getmemoryinfo", json!([]));
    assert_eq!(mem["locked"]["used"], json!(0));
    assert_eq!(rpc.ok("getindexinfo", json!([])), json!({}));
}
