//! The race storm: a port of btcd's TestSyncManagerRaceCorruption.
//!
//! Hundreds of fake peers connect at once, wave after wave, each completing
//! or half-completing the handshake and closing at once. Afterwards the node
//! must know no peer, have no sync peer, show no lifecycle anomaly, and still
//! pick a fresh peer as sync peer and ask it for headers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

const PEERS_PER_WAVE: usize = 300;
const WAVES: usize = 20;

/// One fake peer's script. Every I/O error is returned, never ignored.
fn storm_peer(addr: SocketAddr, kind: usize, nonce: u64) -> Result<(), String> {
    let mut p = FakePeer::connect(addr).map_err(|e| format!("connect: {e}"))?;
    match kind % 5 {
        // Close before version.
        0 => {}
        // Send version and close without waiting.
        1 => p
            .send(version_message(10, SERVES, nonce))
            .map_err(|e| format!("send version: {e}"))?,
        // Version exchanged, close before our verack.
        2 => p.send_version(10, SERVES)?,
        // Complete handshake, close right after verack.
        3 => p.handshake(10, SERVES)?,
        // Complete handshake, ping, wait for the pong, close.
        _ => {
            p.handshake(10, SERVES)?;
            p.ping(nonce)?;
        }
    }
    Ok(())
}

fn run_storm(addr: SocketAddr) {
    for wave in 0..WAVES {
        let threads: Vec<_> = (0..PEERS_PER_WAVE)
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || storm_peer(addr, i + wave, (wave * 1000 + i) as u64 + 1))
                    .expect("spawn fake peer")
            })
            .collect();
        let errors: Vec<String> = threads
            .into_iter()
            .filter_map(|t| t.join().expect("fake peer thread").err())
            .collect();
        assert!(
            errors.is_empty(),
            "wave {wave}: {} fake peers failed, first: {}",
            errors.len(),
            errors[0]
        );
    }
}

/// A fresh, well-behaved peer ahead of the node must become the sync peer
/// and be asked for headers.
fn fresh_peer_gets_getheaders(addr: SocketAddr) -> FakePeer {
    let mut p = FakePeer::connect(addr).expect("connect fresh peer");
    p.handshake(500, SERVES).expect("fresh handshake");
    let msg = p
        .recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
        .expect("fresh peer receives getheaders");
    match msg {
        NetworkMessage::GetHeaders(gh) => {
            assert_eq!(
                gh.locator_hashes,
                vec![strand::Network::Regtest.genesis_hash()]
            )
        }
        _ => unreachable!(),
    }
    p
}

#[test]
fn race_storm_in_process() {
    let node = TestNode::start(|c| {
        c.max_peers = 2 * PEERS_PER_WAVE + 100;
        c.handshake_timeout = Duration::from_secs(10);
    });
    run_storm(node.addr);

    let snap = node.wait_quiet(Duration::from_secs(30));
    assert_eq!(snap.connections, 0, "connections left: {snap:?}");
    assert!(
        snap.peers.is_empty(),
        "peer table not empty: {:?}",
        snap.peers
    );
    assert!(
        snap.sync_known.is_empty(),
        "sync manager still knows {:?}",
        snap.sync_known
    );
    assert_eq!(snap.sync_peer, None);
    assert!(snap.candidates.is_empty());
    assert_eq!(snap.anomalies.done_peer_unknown, 0, "{:?}", snap.anomalies);
    assert_eq!(
        snap.anomalies.new_peer_after_done, 0,
        "{:?}",
        snap.anomalies
    );

    let fresh = fresh_peer_gets_getheaders(node.addr);
    let local = fresh.local_addr();
    assert!(wait_until(Duration::from_secs(5), || {
        let s = node.snapshot();
        s.peers.len() == 1
            && s.peers[0].addr == local
            && s.sync_peer == Some(s.peers[0].id)
            && s.peers[0].state == strand::PeerState::SyncPeer
    }));
    let s = node.snapshot();
    assert_eq!(s.candidates, vec![s.peers[0].id]);
    assert_eq!(s.anomalies, strand::Anomalies::default());
    drop(fresh);

    // Then a real sync: a mining node connects and the stressed node
    // reaches its tip.
    let chain = test_chain(77, 150, 5);
    let miner = node_with_blocks(&chain.blocks()[1..], |c| c.connect = vec![node.addr.into()]);
    assert!(
        wait_tip(&node, chain.tip().block_hash(), Duration::from_secs(60)),
        "stressed node did not sync from the miner: {:?}",
        node.snapshot()
    );
    assert_eq!(node.snapshot().anomalies, strand::Anomalies::default());
    miner.handle.shutdown();
    node.handle.shutdown();
}

#[test]
fn race_storm_real_binary() {
    let max = (2 * PEERS_PER_WAVE + 100).to_string();
    let mut node = NodeProcess::start(&["--maxpeers", &max, "--handshaketimeout", "10"]);
    run_storm(node.addr());
    let fresh = fresh_peer_gets_getheaders(node.addr());
    drop(fresh);
    let status = node
        .terminate(Duration::from_secs(20))
        .expect("strand exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let log = node.log_lines();
    assert!(log.iter().any(|l| l.contains("shutdown complete")));
    for bad in [
        "DonePeer for unknown",
        "NewPeer after DonePeer",
        "panicked",
        "signalled twice",
    ] {
        assert!(
            !log.iter().any(|l| l.contains(bad)),
            "log contains '{bad}': {:?}",
            log.iter().find(|l| l.contains(bad))
        );
    }
}
