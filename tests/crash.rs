//! Crash safety: `kill -9` a real strand process at several moments while
//! it syncs 2,000 blocks, restart it each time; it must finish at the right
//! tip with the UTXO digest of an uninterrupted sync.

mod common;

use std::time::Duration;

use common::*;
use strand::chain::state::{ChainOptions, ChainState};

/// Deterministic "random" delays (xorshift), in milliseconds.
fn delays(seed: u64, n: usize, max_ms: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            20 + x % max_ms
        })
        .collect()
}

/// The tip and UTXO digest of `chain` connected without interruption.
fn reference_digest(
    chain: &strand::testdata::ChainBuilder,
) -> (bitcoin::BlockHash, bitcoin::hashes::sha256d::Hash) {
    let reference_dir = tempfile::tempdir().unwrap();
    let mut c = ChainState::open(
        reference_dir.path(),
        strand::Network::Regtest,
        ChainOptions::default(),
    )
    .unwrap();
    for b in &chain.blocks()[1..] {
        c.accept_block(b.clone()).unwrap();
    }
    c.utxo_digest().unwrap()
}

/// Restarts the node in `datadir`, serves it `chain` to the tip, stops it
/// cleanly, and checks the stored tip and UTXO digest against `reference`.
fn finish_sync(
    datadir: &str,
    chain: &strand::testdata::ChainBuilder,
    reference: (bitcoin::BlockHash, bitcoin::hashes::sha256d::Hash),
    context: &str,
) {
    let height = chain.blocks().len() as i32 - 1;
    let mut node = NodeProcess::start_in(datadir, &[]);
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(node.addr())
            == Some(height)),
        "did not reach height {height} {context}"
    );
    drop(server);
    assert!(node.terminate(Duration::from_secs(20)).unwrap().success());
    let (final_tip, digest) = chain_of(std::path::Path::new(datadir))
        .utxo_digest()
        .unwrap();
    assert_eq!(final_tip, reference.0, "tip {context}");
    assert_eq!(digest, reference.1, "UTXO set differs {context}");
}

#[test]
fn kill_9_during_sync_then_finish_consistently() {
    let chain = test_chain(9, 2_000, 2);
    let tip = chain.tip().block_hash();

    let reference = reference_digest(&chain);
    assert_eq!(reference.0, tip);

    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().to_str().unwrap().to_string();
    let mut heights_at_kill = Vec::new();
    for (round, delay) in delays(0x5eed_1234, 6, 250).into_iter().enumerate() {
        let mut node = NodeProcess::start_in(&datadir, &["--flushblocks", "97"]);
        let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = node.child.kill(); // SIGKILL
        let _ = node.child.wait();
        drop(server);
        // The store opens cleanly and its tip is a block of the chain.
        let c = chain_of(dir.path());
        let h = c.height();
        assert_eq!(
            c.tip(),
            chain.blocks()[h as usize].block_hash(),
            "round {round}"
        );
        heights_at_kill.push(h);
        drop(c);
    }

    eprintln!("killed at heights {heights_at_kill:?}");
    // Final run to completion.
    finish_sync(
        &datadir,
        &chain,
        reference,
        &format!("after kills at heights {heights_at_kill:?}"),
    );
    assert!(
        heights_at_kill.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {heights_at_kill:?}"
    );
    assert!(
        heights_at_kill.iter().any(|&h| h < 2_000),
        "no kill landed before the sync finished: {heights_at_kill:?}"
    );
}

/// A crash in the middle of a UTXO flush written in several transactions
/// (Core's `-dbbatchsize`): the test build aborts the process right after
/// the second partial transaction (`--testcrashflushbatch 2`, no cleanup,
/// as `kill -9` at that moment). The store must then hold the head-blocks
/// marker (the crash did land mid-flush), reopen by finishing the flush
/// (Core's `ReplayBlocks`), and the node must sync to the tip with the
/// UTXO digest of an uninterrupted sync.
#[test]
fn crash_inside_a_multi_transaction_flush_replays_at_restart() {
    let chain = test_chain(11, 300, 2);
    let reference = reference_digest(&chain);
    assert_eq!(reference.0, chain.tip().block_hash());
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().to_str().unwrap().to_string();

    // The first flush (no stored tip yet) is one transaction; the second,
    // 50 blocks later, is split into ~512-byte batches and crashes.
    let mut node = NodeProcess::start_in(
        &datadir,
        &[
            "--flushblocks",
            "50",
            "--dbbatchsize",
            "512",
            "--testcrashflushbatch",
            "2",
        ],
    );
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            status = node.child.try_wait().ok().flatten();
            status.is_some()
        }),
        "the node did not crash inside a flush"
    );
    drop(server);
    let status = status.unwrap();
    assert!(!status.success(), "exited cleanly: {status:?}");

    let chainstate = dir.path().join("regtest").join("chainstate");
    let (new_tip, old_tip) = {
        let store =
            strand::store::Store::open(&chainstate, bitcoin::p2p::Magic::REGTEST.to_bytes())
                .unwrap();
        let marker = store.head_blocks().unwrap();
        assert!(
            marker.is_some(),
            "no head-blocks marker: the crash was not mid-flush"
        );
        marker.unwrap()
    };
    assert_ne!(new_tip, old_tip);
    // Reopening finishes the flush: the tip is the flush's new tip, the
    // marker is gone.
    {
        let c = chain_of(dir.path());
        assert_eq!(c.tip(), new_tip);
        assert_eq!(c.store().head_blocks().unwrap(), None);
    }

    finish_sync(&datadir, &chain, reference, "after the crash");
}
