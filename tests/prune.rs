//! Pruning (`--prune`) against the real binary on regtest: the data
//! directory stays bounded over a chain ten times the target, the last
//! 288 blocks are kept and served (older ones answered with `notfound`),
//! the version message advertises `NODE_NETWORK_LIMITED` without
//! `NODE_NETWORK`, `getblockchaininfo` reports the pruning fields, a
//! pruned node restarts and keeps syncing, `kill -9` during pruning loses
//! nothing, and `pruneblockchain` follows Core (errors without `--prune`,
//! manual pruning with `--prune=1`).
//!
//! Test blocks carry a ~9 KB `OP_RETURN` output in their coinbase, so a 2 MiB target is ~220 blocks and the 288 kept blocks
//! ~2.6 MB.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::ServiceFlags;
use bitcoin::{Amount, Block, ScriptBuf, TxOut};
use common::*;
use serde_json::{json, Value};
use strand::chain::state::{ChainOptions, ChainState};
use strand::rpc::client::{call, ClientAuth, ClientError};
use strand::store::BlockStatus;
use strand::testdata::ChainBuilder;

/// `OP_RETURN` padding per block.
const PAD: usize = 9_000;
/// `--prune` target in MiB.
const TARGET_MIB: u64 = 2;
/// Core's `MIN_BLOCKS_TO_KEEP`.
const KEEP: u32 = 288;

/// Appends `n` blocks to `b`, each with a `PAD`-byte `OP_RETURN` output
/// added to its coinbase (no other transaction: nothing to sign, and the
/// builder's transaction index, rebuilt per signature, stays unused).
fn extend(b: &mut ChainBuilder, n: u32) {
    for _ in 0..n {
        let mut block = b.block_with_txs(Vec::new()).expect("block on tip");
        let mut pad = vec![0x6a];
        pad.resize(PAD + 1, 0);
        block.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(pad),
        });
        block.header.merkle_root = block.compute_merkle_root().expect("merkle root");
        assert!(strand::mining::mine(&mut block, u64::MAX));
        b.push_block(block).expect("push block");
    }
}

/// A padded chain of `n` blocks timed so that its tip is about now.
fn padded_chain(seed: u64, n: u32) -> ChainBuilder {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    // Room for 200 more blocks after a restart.
    let mut b = ChainBuilder::with_times(seed, now - (n + 200) * 60 - 3600, 60);
    extend(&mut b, n);
    b
}

/// Allocated bytes of every file under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn chain_bytes(blocks: &[Block]) -> u64 {
    blocks.iter().map(|b| b.total_size() as u64).sum()
}

fn rpc(
    node: &NodeProcess,
    datadir: &Path,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, ClientError> {
    let auth = ClientAuth::Cookie(datadir.join("regtest").join(".cookie"));
    call(node.rpc_addr(), &auth, method, params)
}

fn rpc_error(r: Result<Value, ClientError>) -> (i32, String) {
    match r {
        Err(ClientError::Rpc(f)) => (f.code, f.message),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// Connects a fake peer, returns it with the services of the node's
/// `version` message, after a complete handshake.
fn peer_with_services(node: std::net::SocketAddr) -> (FakePeer, ServiceFlags) {
    let mut p = FakePeer::connect(node).expect("connect");
    p.send(version_message(0, ServiceFlags::NONE, rand_nonce()))
        .expect("send version");
    let services = match p.recv().expect("read version") {
        NetworkMessage::Version(v) => v.services,
        other => panic!("expected version, got {}", other.command()),
    };
    p.send(NetworkMessage::Verack).expect("send verack");
    (p, services)
}

/// Sends `getdata` for `hashes` (witness blocks) and collects the blocks
/// and the `notfound` items answered, until all are accounted for.
fn fetch(
    p: &mut FakePeer,
    hashes: &[bitcoin::BlockHash],
) -> (Vec<bitcoin::BlockHash>, Vec<bitcoin::BlockHash>) {
    p.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    p.send(NetworkMessage::GetData(
        hashes.iter().map(|h| Inventory::WitnessBlock(*h)).collect(),
    ))
    .expect("send getdata");
    let (mut got, mut missing) = (Vec::new(), Vec::new());
    // Every item is answered by a block or a notfound entry; other
    // messages (pings, inv, sendheaders...) are skipped, at most 1,000.
    for _ in 0..hashes.len() + 1_000 {
        if got.len() + missing.len() >= hashes.len() {
            break;
        }
        match p.recv().expect("read answer") {
            NetworkMessage::Block(b) => got.push(b.block_hash()),
            NetworkMessage::NotFound(items) => {
                missing.extend(items.iter().filter_map(|i| match i {
                    Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(*h),
                    _ => None,
                }))
            }
            NetworkMessage::Ping(n) => p.send(NetworkMessage::Pong(n)).expect("pong"),
            _ => {}
        }
    }
    (got, missing)
}

/// The node's last log lines (for failure messages).
fn tail(node: &NodeProcess) -> Vec<String> {
    let lines = node.log_lines();
    let mut out: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("panicked") || l.contains("ERROR"))
        .take(5)
        .cloned()
        .collect();
    out.extend(lines.iter().skip(lines.len().saturating_sub(5)).cloned());
    out
}

fn wait_height(node: &NodeProcess, height: u32, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || {
        probe_height(node.addr()) == Some(height as i32)
    })
}

#[test]
fn pruned_node_stays_bounded_keeps_288_serves_them_and_restarts() {
    const N: u32 = 2_400;
    let mut chain = padded_chain(12, N);
    let total = chain_bytes(chain.blocks());
    assert!(
        total >= 10 * (TARGET_MIB << 20),
        "the chain ({total} bytes) must be ten times the target"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let datadir = dir.path().to_str().expect("utf-8 path").to_string();
    let prune = TARGET_MIB.to_string();
    let mut node = NodeProcess::start_in(&datadir, &["--prune", &prune]);

    // Services: NODE_NETWORK_LIMITED, not NODE_NETWORK.
    let (probe, services) = peer_with_services(node.addr());
    assert!(services.has(ServiceFlags::NETWORK_LIMITED), "{services}");
    assert!(services.has(ServiceFlags::WITNESS), "{services}");
    assert!(!services.has(ServiceFlags::NETWORK), "{services}");
    drop(probe);

    // Sync, sampling the data directory's size.
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    let mut peak = 0u64;
    let done = wait_until(Duration::from_secs(300), || {
        peak = peak.max(disk_usage(dir.path()));
        probe_height(node.addr()) == Some(N as i32)
    });
    assert!(done, "did not sync {N} blocks: {:?}", tail(&node));
    peak = peak.max(disk_usage(dir.path()));
    drop(server);
    eprintln!(
        "chain {} KiB, target {} KiB, peak data directory {} KiB",
        total >> 10,
        TARGET_MIB << 10,
        peak >> 10
    );
    // 288 blocks (~2.6 MB) + the margin + index, UTXO set and LMDB's free
    // pages (measured: 6.6 MiB) stay under 10 MiB while the chain is over
    // 20 MiB.
    assert!(
        peak < 10 << 20,
        "data directory reached {peak} bytes for a {total}-byte chain"
    );

    // getblockchaininfo.
    let info = rpc(&node, dir.path(), "getblockchaininfo", vec![]).expect("getblockchaininfo");
    assert_eq!(info["pruned"], json!(true));
    assert_eq!(info["automatic_pruning"], json!(true));
    assert_eq!(info["prune_target_size"], json!(TARGET_MIB << 20));
    let pruneheight = info["pruneheight"].as_u64().expect("pruneheight") as u32;
    assert!(
        pruneheight > 1 && pruneheight <= N - KEEP + 1,
        "pruneheight {pruneheight}"
    );

    // The last 288 blocks are served; blocks below the prune height are not.
    let (mut p, _) = peer_with_services(node.addr());
    let last: Vec<_> = (N - KEEP + 1..=N)
        .map(|h| chain.blocks()[h as usize].block_hash())
        .collect();
    let (got, missing) = fetch(&mut p, &last);
    assert_eq!(got.len(), KEEP as usize, "missing: {missing:?}");
    assert_eq!(got, last);
    let old: Vec<_> = [1, pruneheight / 2, pruneheight - 1]
        .iter()
        .map(|&h| chain.blocks()[h as usize].block_hash())
        .collect();
    let (got, missing) = fetch(&mut p, &old);
    assert!(got.is_empty(), "pruned blocks served: {got:?}");
    assert_eq!(missing, old);
    drop(p);

    // Restart: still pruned, keeps syncing and pruning.
    assert!(node
        .terminate(Duration::from_secs(30))
        .is_some_and(|s| s.success()));
    extend(&mut chain, 150);
    let node = NodeProcess::start_in(&datadir, &["--prune", &prune]);
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_height(&node, N + 150, 120),
        "did not sync after restart"
    );
    drop(server);
    let info = rpc(&node, dir.path(), "getblockchaininfo", vec![]).expect("getblockchaininfo");
    let after = info["pruneheight"].as_u64().expect("pruneheight") as u32;
    assert!(after > pruneheight, "prune height {pruneheight} -> {after}");
    assert!(disk_usage(dir.path()) < 10 << 20);
}

#[test]
fn kill_9_during_pruning_loses_nothing() {
    const N: u32 = 1_500;
    let started = std::time::Instant::now();
    let chain = padded_chain(13, N);
    eprintln!("chain built in {:?}", started.elapsed());
    let tip = chain.tip().block_hash();
    let reference_dir = tempfile::tempdir().expect("temp dir");
    let reference = {
        let mut c = ChainState::open(
            reference_dir.path(),
            strand::Network::Regtest,
            ChainOptions::default(),
        )
        .expect("reference chain state");
        // Headers first: blocks then connect without a flush per block.
        let headers: Vec<_> = chain.blocks()[1..].iter().map(|b| b.header).collect();
        c.process_headers(&headers).expect("reference headers");
        for b in &chain.blocks()[1..] {
            c.accept_block(b.clone()).expect("reference block");
        }
        c.utxo_digest().expect("reference digest")
    };
    assert_eq!(reference.0, tip);

    let dir = tempfile::tempdir().expect("temp dir");
    let datadir = dir.path().to_str().expect("utf-8 path").to_string();
    let prune = TARGET_MIB.to_string();
    let mut heights = Vec::new();
    // Each round serves the chain up to a higher height, waits until the
    // node reports it (its in-memory tip; the store's tip is at most one
    // `--flushblocks` interval behind) and kills it at once: no timing, and
    // from the second round on the kills land where pruning runs (every ~55
    // blocks once the tip passes 388), right after a flush and its prune.
    eprintln!("chain and reference built in {:?}", started.elapsed());
    for target in [300u32, 450, 600, 800, 1_000, 1_250] {
        let mut node = NodeProcess::start_in(&datadir, &["--prune", &prune, "--flushblocks", "37"]);
        let served = chain.blocks()[..=target as usize].to_vec();
        let server = ChainServer::start(node.addr(), served, Serve::Everything);
        assert!(
            wait_height(&node, target, 120),
            "did not reach {target}: {:?}",
            tail(&node)
        );
        let _ = node.child.kill(); // SIGKILL
        let _ = node.child.wait();
        drop(server);
        let c = chain_of(dir.path());
        let h = c.height();
        assert_eq!(c.tip(), chain.blocks()[h as usize].block_hash());
        // Every block the store's tip might need to disconnect to (the
        // last 288) still has its data.
        for height in h.saturating_sub(KEEP - 1).max(1)..=h {
            let e = c
                .entry(&chain.blocks()[height as usize].block_hash())
                .expect("active entry");
            assert!(
                e.status
                    .contains(BlockStatus::HAVE_DATA | BlockStatus::HAVE_UNDO),
                "block {height} lost its data (tip {h})"
            );
        }
        heights.push(h);
    }
    eprintln!(
        "killed at heights {heights:?} after {:?}",
        started.elapsed()
    );
    let mut node = NodeProcess::start_in(&datadir, &["--prune", &prune]);
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_height(&node, N, 120),
        "did not finish after kills at {heights:?}: {:?}",
        tail(&node)
    );
    drop(server);
    assert!(node
        .terminate(Duration::from_secs(30))
        .is_some_and(|s| s.success()));
    let mut c = chain_of(dir.path());
    assert!(c.store().have_pruned().expect("meta"), "nothing was pruned");
    let first = c
        .entry(&chain.blocks()[1].block_hash())
        .expect("entry of block 1");
    assert!(!first.status.contains(BlockStatus::HAVE_DATA));
    assert!(c
        .store()
        .get_block_raw(&chain.blocks()[1].block_hash())
        .expect("read")
        .is_none());
    let (final_tip, digest) = c.utxo_digest().expect("digest");
    assert_eq!(final_tip, tip);
    assert_eq!(
        digest, reference.1,
        "UTXO set differs after kills at {heights:?}"
    );
    assert!(
        heights.iter().filter(|&&h| h > 100 + KEEP && h < N).count() >= 4,
        "kills must land where pruning runs: {heights:?}"
    );
}

#[test]
fn pruneblockchain_errors_without_prune_and_prunes_manually_with_prune_1() {
    let chain = padded_chain(14, 500);
    let tip_height = 500u32;

    // Without --prune: Core's error, and NODE_NETWORK advertised.
    let dir = tempfile::tempdir().expect("temp dir");
    let datadir = dir.path().to_str().expect("utf-8 path").to_string();
    let node = NodeProcess::start_in(&datadir, &[]);
    let (_, services) = peer_with_services(node.addr());
    assert!(services.has(ServiceFlags::NETWORK));
    let (code, msg) = rpc_error(rpc(&node, dir.path(), "pruneblockchain", vec![json!(10)]));
    assert_eq!(code, -1);
    assert_eq!(
        msg,
        "Cannot prune blocks because node is not in prune mode."
    );
    let info = rpc(&node, dir.path(), "getblockchaininfo", vec![]).expect("getblockchaininfo");
    assert_eq!(info["pruned"], json!(false));
    assert!(info.get("pruneheight").is_none());
    drop(node);

    // --prune=1: manual only.
    let dir = tempfile::tempdir().expect("temp dir");
    let datadir = dir.path().to_str().expect("utf-8 path").to_string();
    let node = NodeProcess::start_in(&datadir, &["--prune=1"]);
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(wait_height(&node, tip_height, 120), "did not sync");
    drop(server);
    let info = rpc(&node, dir.path(), "getblockchaininfo", vec![]).expect("getblockchaininfo");
    assert_eq!(info["pruned"], json!(true));
    assert_eq!(info["automatic_pruning"], json!(false));
    assert!(info.get("prune_target_size").is_none());
    assert_eq!(
        info["pruneheight"],
        json!(0),
        "nothing pruned automatically"
    );

    let (code, msg) = rpc_error(rpc(&node, dir.path(), "pruneblockchain", vec![json!(-1)]));
    assert_eq!((code, msg.as_str()), (-8, "Negative block height."));
    let (code, msg) = rpc_error(rpc(&node, dir.path(), "pruneblockchain", vec![json!(501)]));
    assert_eq!(
        (code, msg.as_str()),
        (-8, "Blockchain is shorter than the attempted prune height.")
    );
    // 100 is below tip − 288: pruned up to it.
    let last = rpc(&node, dir.path(), "pruneblockchain", vec![json!(100)]).expect("prune to 100");
    assert_eq!(last, json!(100));
    // Close to the tip: lowered to tip − 288.
    let last = rpc(
        &node,
        dir.path(),
        "pruneblockchain",
        vec![json!(tip_height)],
    )
    .expect("prune");
    assert_eq!(last, json!(tip_height - KEEP));
    let info = rpc(&node, dir.path(), "getblockchaininfo", vec![]).expect("getblockchaininfo");
    assert_eq!(info["pruneheight"], json!(tip_height - KEEP + 1));
    let (code, msg) = rpc_error(rpc(
        &node,
        dir.path(),
        "getblock",
        vec![json!(chain.blocks()[50].block_hash().to_string())],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (-1, "Block not available (pruned data)")
    );
    let (mut p, _) = peer_with_services(node.addr());
    let kept = chain.blocks()[(tip_height - KEEP + 1) as usize].block_hash();
    let pruned = chain.blocks()[(tip_height - KEEP) as usize].block_hash();
    let (got, missing) = fetch(&mut p, &[kept, pruned]);
    assert_eq!(got, vec![kept]);
    assert_eq!(missing, vec![pruned]);
}
