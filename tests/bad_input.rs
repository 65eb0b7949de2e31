//! Malformed input, one test each. Each drops only the offending peer: a
//! well-behaved peer connected alongside stays connected and answered.

mod common;

use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::GetHeadersMessage;
use bitcoin::p2p::Magic;
use common::*;
use strand::wire::{encode_message, MAX_PAYLOAD};

/// Starts a node with a good peer, has a second peer (handshaken first if
/// `handshake`) send `bytes`, and checks that only the second is dropped.
fn only_offender_dropped(handshake: bool, bytes: &[u8], half_close: bool) {
    let node = TestNode::start(|_| {});
    let mut good = FakePeer::connect(node.addr).unwrap();
    good.handshake(0, SERVES).unwrap();
    good.ping(1).unwrap();
    let good_addr = good.local_addr();

    let mut bad = FakePeer::connect(node.addr).unwrap();
    if handshake {
        bad.handshake(0, SERVES).unwrap();
        bad.ping(2).unwrap();
        assert!(wait_until(Duration::from_secs(5), || node
            .snapshot()
            .peers
            .len()
            == 2));
    }
    bad.send_raw(bytes).unwrap();
    if half_close {
        bad.shutdown_write().unwrap();
    }
    assert!(
        bad.closed_within(Duration::from_secs(5)),
        "offending peer was not disconnected"
    );

    // The good peer is still connected and answered.
    good.ping(3).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        let s = node.snapshot();
        s.connections == 1 && s.peers.len() == 1 && s.peers[0].addr == good_addr
    }));
    good.ping(4).unwrap();
    assert_eq!(node.snapshot().anomalies, strand::Anomalies::default());
}

#[test]
fn wrong_magic() {
    let bytes = encode_message(Magic::BITCOIN, NetworkMessage::Ping(5));
    only_offender_dropped(true, &bytes, false);
}

#[test]
fn bad_checksum() {
    let mut bytes = encode_message(MAGIC, NetworkMessage::Ping(5));
    bytes[20] ^= 0x55;
    only_offender_dropped(true, &bytes, false);
}

#[test]
fn length_over_32_mib() {
    // Header only: the node must reject it from the length field alone,
    // without waiting for (or allocating) 32 MiB.
    let mut header = encode_message(MAGIC, NetworkMessage::Ping(5))[..24].to_vec();
    header[4..16].copy_from_slice(b"block\0\0\0\0\0\0\0");
    header[16..20].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    only_offender_dropped(true, &header, false);
}

#[test]
fn truncated_frame() {
    let bytes = encode_message(MAGIC, NetworkMessage::Ping(5));
    // Half a ping, then end of stream.
    only_offender_dropped(true, &bytes[..bytes.len() - 4], true);
}

#[test]
fn getheaders_before_handshake() {
    let msg = NetworkMessage::GetHeaders(GetHeadersMessage {
        version: 70016,
        locator_hashes: vec![strand::Network::Regtest.genesis_hash()],
        stop_hash: bitcoin::hashes::Hash::all_zeros(),
    });
    only_offender_dropped(false, &encode_message(MAGIC, msg), false);
}

#[test]
fn garbage_bytes() {
    // Deterministic noise (xorshift), not starting with the regtest magic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_ne!(bytes[..4], MAGIC.to_bytes());
    only_offender_dropped(true, &bytes, false);
}

#[test]
fn malformed_payload() {
    // A correctly framed `headers` whose payload claims more headers than it has.
    let payload = [0x05u8, 0x00];
    let mut frame = MAGIC.to_bytes().to_vec();
    frame.extend_from_slice(b"headers\0\0\0\0\0");
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let sum = <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::hash(&payload);
    frame.extend_from_slice(&sum[..4]);
    frame.extend_from_slice(&payload);
    only_offender_dropped(true, &frame, false);
}

#[test]
fn unknown_command_is_ignored() {
    let node = TestNode::start(|_| {});
    let mut p = FakePeer::connect(node.addr).unwrap();
    p.handshake(0, SERVES).unwrap();
    let mut frame = MAGIC.to_bytes().to_vec();
    frame.extend_from_slice(b"futurecmd\0\0\0");
    frame.extend_from_slice(&0u32.to_le_bytes());
    let sum = <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::hash(&[]);
    frame.extend_from_slice(&sum[..4]);
    p.send_raw(&frame).unwrap();
    p.ping(77).unwrap();
    assert!(wait_until(Duration::from_secs(5), || node
        .snapshot()
        .peers
        .len()
        == 1));
}
