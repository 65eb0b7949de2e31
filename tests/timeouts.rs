//! Liveness rules with shortened timers: ping/pong, idle timeout, sync-peer
//! stall, a peer that does not read, and outbound retry with back-off.

mod common;

use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use common::*;

#[test]
fn unanswered_ping_disconnects_answered_ping_does_not() {
    let node = TestNode::start(|c| c.ping_interval = Duration::from_millis(300));
    let mut silent = FakePeer::connect(node.addr).unwrap();
    silent.handshake(0, SERVES).unwrap();
    let mut polite = FakePeer::connect(node.addr).unwrap();
    polite.handshake(0, SERVES).unwrap();

    // The polite peer answers every ping for a while.
    let until = Instant::now() + Duration::from_millis(1500);
    let mut answered = 0;
    while Instant::now() < until {
        if let NetworkMessage::Ping(n) = polite
            .recv_until("ping", |m| matches!(m, NetworkMessage::Ping(_)))
            .unwrap()
        {
            polite.send(NetworkMessage::Pong(n)).unwrap();
            answered += 1;
        }
    }
    assert!(answered >= 2, "only {answered} pings in 1.5 s");
    // The silent one read nothing and answered nothing: gone.
    assert!(silent.closed_within(Duration::from_secs(3)));
    polite.ping(1).unwrap();
    let s = node.snapshot();
    assert_eq!(s.peers.len(), 1);
    assert!(s.peers[0].ping.is_some(), "round trip recorded");
}

#[test]
fn idle_peer_is_disconnected() {
    let node = TestNode::start(|c| {
        c.idle_timeout = Duration::from_millis(700);
        c.ping_interval = Duration::from_secs(3600);
    });
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.handshake(0, SERVES).unwrap();
    let started = Instant::now();
    assert!(p.closed_within(Duration::from_secs(5)));
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(node.wait_quiet(Duration::from_secs(5)).peers.is_empty());
}

#[test]
fn stalled_sync_peer_is_replaced() {
    let node = TestNode::start(|c| c.stall_timeout = Duration::from_secs(1));
    let mut staller = FakePeer::connect(node.addr).unwrap();
    staller.handshake(100, SERVES).unwrap();
    staller
        .recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
        .unwrap();
    let mut other = FakePeer::connect(node.addr).unwrap();
    other.handshake(90, SERVES).unwrap();
    // The staller never answers: after the stall timeout it is dropped and
    // the other candidate is asked for headers.
    let started = Instant::now();
    other
        .recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(staller.closed_within(Duration::from_secs(3)));
    let s = node.snapshot();
    assert_eq!(s.counters.stalls, 1);
    assert_eq!(s.peers.len(), 1);
    assert_eq!(s.sync_peer, Some(s.peers[0].id));
}

#[test]
fn peer_that_does_not_read_is_dropped_without_blocking_others() {
    let node = TestNode::start(|c| c.send_queue_len = 8);
    let mut hog = FakePeer::connect(node.addr).unwrap();
    hog.handshake(0, SERVES).unwrap();
    let mut good = FakePeer::connect(node.addr).unwrap();
    good.handshake(0, SERVES).unwrap();
    // Flood pings and never read the pongs: the node's socket buffer and
    // then the hog's queue fill, and the hog is disconnected.
    let ping = strand::wire::encode_message(MAGIC, NetworkMessage::Ping(1));
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 4096)
        .collect();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if hog.send_raw(&batch).is_err() {
            break;
        }
        sent += 4096;
        if node.snapshot().peers.len() == 1 {
            break;
        }
    }
    assert!(
        wait_until(Duration::from_secs(5), || node.snapshot().peers.len() == 1),
        "hog still connected after {sent} pings"
    );
    good.ping(2).unwrap();
    assert_eq!(node.snapshot().peers[0].addr, good.local_addr());
}

#[test]
fn outbound_connection_is_retried_with_back_off() {
    // Reserve a port, free it, and only listen there after a while.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = strand::Config::new(strand::Network::Regtest);
    config.datadir = dir.path().to_path_buf();
    config.listen = None;
    config.addnode = vec![target.into()];
    config.retry_base = Duration::from_millis(200);
    let node = strand::Node::start(config).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let listener = std::net::TcpListener::bind(target).unwrap();
    // The first dial failed (nothing listened); only a retry can arrive here.
    let stream = accept_within(&listener, Duration::from_secs(10));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut r = std::io::BufReader::new(stream);
    let (msg, _) = strand::wire::read_message(&mut r, MAGIC).unwrap();
    assert!(matches!(msg, NetworkMessage::Version(_)));
    node.shutdown();
}
