//! Chain-data RPC benchmark (not a test): the cost of the UTXO-set and
//! undo-data methods of issue 13 on an in-process regtest node.
//!
//!     cargo bench --bench rpc_data
//!
//! Builds a 400-block chain with up to 100 signed transactions per block
//! (P2PKH, P2WPKH, P2TR; `testdata::ChainBuilder`) and five blocks fanning
//! out to 100,000 outputs, submits it to a node,
//! then times each call through the RPC dispatcher (no HTTP):
//! `gettxoutsetinfo` with `hash_serialized_3`, `muhash` and none, `scantxoutset`
//! for one address, `getblock` verbosity 3 and `getblockstats` of a full
//! block, `getchaintxstats` (the stand-in count reads every block), and
//! `gettxoutproof` for a txid with no unspent output (Core's
//! `AccessByTxid` probe of 111,111 vouts). Prints each figure.

use std::sync::Arc;
use std::time::Instant;

use bitcoin::hashes::Hash;
use serde_json::{json, Value};
use strand::rpc::methods::Dispatcher;
use strand::rpc::node::NodeBackend;
use strand::{Config, Network};

fn time<T>(label: &str, runs: u32, mut f: impl FnMut() -> T) -> T {
    let mut last = None;
    let t = Instant::now();
    for _ in 0..runs {
        last = Some(f());
    }
    let per = t.elapsed() / runs;
    println!("{label:<44} {:>10.2} ms", per.as_secs_f64() * 1e3);
    match last {
        Some(v) => v,
        None => f(),
    }
}

fn call(d: &Dispatcher, method: &str, params: Value) -> Value {
    d.execute(method, &params)
        .unwrap_or_else(|e| panic!("{method}: {}", e.message))
}

fn main() {
    // `cargo test --benches` lists nothing.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let blocks = 400u32;
    let now = strand::unix_time() as u32;
    let t = Instant::now();
    let mut b = strand::testdata::ChainBuilder::with_times(7, now - blocks * 60 - 3600, 60);
    for _ in 0..blocks {
        b.next_block(100);
    }
    // Five fan-out blocks: one transaction of 20,000 P2WPKH outputs each,
    // so the UTXO set has about 100,000 entries.
    for round in 0..5u32 {
        let (op, _) = b.spendable_outputs()[0];
        let outputs = (0..20_000u32)
            .map(|i| {
                let mut h = [0u8; 20];
                h[..4].copy_from_slice(&i.to_le_bytes());
                h[4..8].copy_from_slice(&round.to_le_bytes());
                bitcoin::TxOut {
                    value: bitcoin::Amount::from_sat(1_000),
                    script_pubkey: bitcoin::ScriptBuf::new_p2wpkh(
                        &bitcoin::WPubkeyHash::from_byte_array(h),
                    ),
                }
            })
            .collect();
        let tx = b.sign_spend(&[op], outputs).expect("fan-out signs");
        let block = b.block_with_txs(vec![tx]).expect("fan-out block");
        b.push_block(block).expect("fan-out block adopted");
    }
    let blocks = blocks + 5;
    let txs: usize = b.blocks().iter().map(|x| x.txdata.len()).sum();
    println!(
        "chain: {blocks} blocks, {txs} transactions, built in {:?}",
        t.elapsed()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(Network::Regtest);
    config.datadir = dir.path().to_path_buf();
    config.listen = None;
    let node = Arc::new(strand::Node::start(config).expect("node starts"));
    let t = Instant::now();
    for block in b.blocks().iter().skip(1) {
        node.submit_block(block.clone()).expect("block accepted");
    }
    println!("submitted in {:?}", t.elapsed());
    let (stop_tx, _stop_rx) = crossbeam_channel::bounded(1);
    let backend = NodeBackend::new(Arc::clone(&node), Network::Regtest, stop_tx);
    let d = Dispatcher::new(Arc::new(backend));

    let info = time("gettxoutsetinfo (hash_serialized_3)", 5, || {
        call(&d, "gettxoutsetinfo", json!([]))
    });
    println!(
        "  UTXO set: {} outputs of {} transactions, bogosize {}",
        info["txouts"], info["transactions"], info["bogosize"]
    );
    time("gettxoutsetinfo muhash", 1, || {
        call(&d, "gettxoutsetinfo", json!(["muhash"]))
    });
    time("gettxoutsetinfo none", 5, || {
        call(&d, "gettxoutsetinfo", json!(["none"]))
    });
    let tip = b.block(blocks - 5).expect("a full block");
    let payout = tip.txdata[0].output[0].script_pubkey.clone();
    let desc = format!("raw({})", payout.to_hex_string());
    let scan = time("scantxoutset start [raw(coinbase payout)]", 5, || {
        call(&d, "scantxoutset", json!(["start", [desc]]))
    });
    println!(
        "  found {} coins",
        scan["unspents"].as_array().map_or(0, Vec::len)
    );
    let hash = tip.block_hash().to_string();
    time(
        &format!("getblock 3 ({} transactions)", tip.txdata.len()),
        20,
        || call(&d, "getblock", json!([hash, 3])),
    );
    time("getblockstats (tip)", 20, || {
        call(&d, "getblockstats", json!([hash]))
    });
    time("getchaintxstats (reads every block)", 5, || {
        call(&d, "getchaintxstats", json!([]))
    });
    let missing = "ab".repeat(32);
    time("gettxoutproof, txid not in the UTXO set", 3, || {
        d.execute("gettxoutproof", &json!([[missing]])).err()
    });
    drop(d);
    if let Ok(node) = Arc::try_unwrap(node) {
        node.shutdown();
    }
}
