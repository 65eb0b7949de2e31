//! Per-peer byte budgets (issue 10): a peer that asks for hundreds of
//! blocks and never reads is paused for sending (Core's `fPauseSend`), its
//! queued bytes stay within the budget plus one block, and a peer that
//! floods requests is paused for receiving (`fPauseRecv`): the node stops
//! reading its socket instead of buffering without bound. Meanwhile an
//! honest peer is served and followed.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use common::*;

const SEND_BUDGET: usize = 20_000;
const RECV_BUDGET: usize = 50_000;

/// Shrinks a socket's kernel receive buffer so the node's writes to it
/// block early (the point of a peer that does not read).
fn small_rcvbuf(s: &std::net::TcpStream) {
    let size: libc::c_int = 4096;
    // SAFETY: a valid socket fd and a c_int option of the right length.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
}

fn peer_snapshot(node: &TestNode, addr: std::net::SocketAddr) -> Option<strand::PeerSnapshot> {
    node.snapshot().peers.into_iter().find(|p| p.addr == addr)
}

/// The honest peer: fetches every block by `getdata` and checks them, then
/// announces `next` and serves it; returns once the node's tip is `next`.
fn honest_peer_is_served_and_followed(
    node: &TestNode,
    blocks: &[bitcoin::Block],
    next: &bitcoin::Block,
) {
    let height = blocks.len() as i32 - 1;
    let mut honest = FakePeer::connect(node.addr).unwrap();
    honest.handshake(height, SERVES).unwrap();
    let wanted: Vec<Inventory> = blocks[1..]
        .iter()
        .map(|b| Inventory::WitnessBlock(b.block_hash()))
        .collect();
    honest.send(NetworkMessage::GetData(wanted)).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < blocks.len() - 1 && Instant::now() < deadline {
        match honest.recv().expect("honest peer reads") {
            NetworkMessage::Block(b) => got.push(b.block_hash()),
            NetworkMessage::Ping(n) => honest.send(NetworkMessage::Pong(n)).unwrap(),
            _ => {}
        }
    }
    let expected: Vec<_> = blocks[1..].iter().map(|b| b.block_hash()).collect();
    assert_eq!(got, expected, "the honest peer got every block, in order");

    // Followed: it announces a new block, the node fetches and connects it.
    honest
        .send(NetworkMessage::Headers(vec![next.header]))
        .unwrap();
    honest
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = false;
    while !served && Instant::now() < deadline {
        match honest.recv() {
            Ok(NetworkMessage::GetData(items))
                if items.iter().any(|i| {
                    matches!(i, Inventory::WitnessBlock(h) | Inventory::Block(h) if *h == next.block_hash())
                }) =>
            {
                honest.send(NetworkMessage::Block(next.clone())).unwrap();
                served = true;
            }
            Ok(NetworkMessage::Ping(n)) => honest.send(NetworkMessage::Pong(n)).unwrap(),
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            Err(e) => panic!("honest peer read: {e}"),
        }
    }
    assert!(served, "the node asked the honest peer for its new block");
    assert!(
        wait_tip(node, next.block_hash(), Duration::from_secs(20)),
        "the node followed the honest peer"
    );
}

#[test]
fn peer_that_never_reads_is_paused_within_its_send_budget() {
    let mut chain = test_chain(0xb0d6_e701, 200, 2);
    let blocks = chain.blocks().to_vec();
    let next = chain.next_block(0);
    let max_frame = blocks
        .iter()
        .map(|b| bitcoin::consensus::serialize(b).len() + 24)
        .max()
        .unwrap();
    let node = node_with_blocks(&blocks[1..], |c| {
        c.max_send_buffer = SEND_BUDGET;
        c.max_receive_buffer = RECV_BUDGET;
    });

    // The hostile peer asks for every block 250 times over (50,000 items,
    // Core's MAX_INV_SZ; tens of MB) and never reads.
    let mut hostile = FakePeer::connect(node.addr).unwrap();
    hostile.handshake(0, SERVES).unwrap();
    small_rcvbuf(&hostile.stream);
    let one_round: Vec<Inventory> = blocks[1..]
        .iter()
        .map(|b| Inventory::WitnessBlock(b.block_hash()))
        .collect();
    let mut items = Vec::new();
    while items.len() + one_round.len() <= 50_000 {
        items.extend_from_slice(&one_round);
    }
    let requested_bytes: usize = items.len() / one_round.len()
        * blocks[1..]
            .iter()
            .map(|b| bitcoin::consensus::serialize(b).len() + 24)
            .sum::<usize>();
    hostile.send(NetworkMessage::GetData(items)).unwrap();
    let me = hostile.local_addr();

    // The node defers what it cannot queue: the deferred items show as
    // received-but-unprocessed bytes.
    let mut max_queued = 0;
    let deferred = wait_until(Duration::from_secs(20), || {
        let Some(p) = peer_snapshot(&node, me) else {
            return false;
        };
        max_queued = max_queued.max(p.send_queued_bytes);
        p.recv_queued_bytes > 0
    });
    assert!(deferred, "the node deferred the hostile peer's getdata");
    for _ in 0..50 {
        let p = peer_snapshot(&node, me).expect("hostile peer still connected");
        max_queued = max_queued.max(p.send_queued_bytes);
        std::thread::sleep(Duration::from_millis(10));
    }

    honest_peer_is_served_and_followed(&node, &blocks, &next);

    let p = peer_snapshot(&node, me).expect("hostile peer paused, not dropped");
    max_queued = max_queued.max(p.send_queued_bytes);
    eprintln!(
        "hostile peer: max queued {max_queued} B, sent {} of {requested_bytes} B, {} B deferred",
        p.bytes_sent, p.recv_queued_bytes
    );
    assert!(
        max_queued as usize <= SEND_BUDGET + max_frame + 1_000,
        "queued {max_queued} bytes for the hostile peer (budget {SEND_BUDGET}, block {max_frame})"
    );
    assert!(
        (p.bytes_sent as usize) < requested_bytes / 2,
        "sent {} of {requested_bytes} requested bytes to a peer that reads nothing",
        p.bytes_sent
    );
}

#[test]
fn flooding_peer_is_paused_for_receiving_not_buffered() {
    let mut chain = test_chain(0xb0d6_e702, 120, 1);
    let blocks = chain.blocks().to_vec();
    let next = chain.next_block(0);
    let node = node_with_blocks(&blocks[1..], |c| {
        c.max_send_buffer = SEND_BUDGET;
        c.max_receive_buffer = RECV_BUDGET;
    });

    let mut flooder = FakePeer::connect(node.addr).unwrap();
    flooder.handshake(0, SERVES).unwrap();
    small_rcvbuf(&flooder.stream);
    let me = flooder.local_addr();
    // getdata messages of 5,000 items (180 kB each), sent back to back
    // until the node stops reading: at most 400 of them (72 MB).
    let items: Vec<Inventory> = blocks[1..]
        .iter()
        .cycle()
        .take(5_000)
        .map(|b| Inventory::WitnessBlock(b.block_hash()))
        .collect();
    let frame = strand::wire::encode_message(MAGIC, NetworkMessage::GetData(items));
    let frame_len = frame.len();
    let mut stream = flooder.stream.try_clone().unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        let mut written = 0usize;
        for _ in 0..400 {
            match stream.write_all(&frame) {
                Ok(()) => written += frame.len(),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (written, true)
                }
                Err(e) => panic!("flooder write: {e}"),
            }
        }
        (written, false)
    });
    let mut max_recv_queued = 0;
    while !writer.is_finished() {
        if let Some(p) = peer_snapshot(&node, me) {
            max_recv_queued = max_recv_queued.max(p.recv_queued_bytes);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (written, blocked) = writer.join().unwrap();
    eprintln!("flooder: wrote {written} B before blocking ({blocked}), max unprocessed {max_recv_queued} B");
    assert!(
        blocked,
        "the node kept reading a flood of {written} bytes from a peer it could not serve"
    );
    assert!(written < 400 * frame_len);
    for _ in 0..50 {
        let p = peer_snapshot(&node, me).expect("flooder paused, not dropped");
        max_recv_queued = max_recv_queued.max(p.recv_queued_bytes);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        max_recv_queued as usize <= RECV_BUDGET + frame_len,
        "{max_recv_queued} unprocessed bytes held for the flooder (budget {RECV_BUDGET}, message {frame_len})"
    );
    assert!(max_recv_queued > 0, "the flood was never held back");

    honest_peer_is_served_and_followed(&node, &blocks, &next);
    assert!(
        peer_snapshot(&node, me).is_some(),
        "the flooder is paused, not disconnected"
    );
}
