//! Block download from several peers (issue 11, issue 10): blocks come
//! from every peer that has them, 16 in flight per peer; a peer holding up
//! the download window is dropped after the stalling timeout; `notfound`
//! answers free requests at once and unrequested ones are harmless;
//! unrequested blocks far ahead of the tip are not kept.
//!
//! The fake peers here are scripted servers on their own threads; a gate
//! holds a peer's block answers back until the test lets them go, so who
//! serves what does not depend on thread timing.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::{Block, BlockHash};
use common::*;
use strand::chain::state::{ChainOptions, ChainState};
use strand::sync::SyncSnapshot;

/// How a [`Server`] answers `getdata` for blocks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// Sends the blocks (once its gate is open).
    Serve,
    /// Answers `notfound`.
    NotFound,
    /// Never answers.
    Withhold,
}

/// A fake peer serving `blocks` (index = height) from its own thread:
/// answers `getheaders` from the locator, `getdata` per [`Answer`], pings.
struct Server {
    addr: std::net::SocketAddr,
    /// Block items the node asked for.
    asked: Arc<AtomicUsize>,
    /// Blocks sent.
    served: Arc<AtomicUsize>,
    /// While false, requested blocks are queued, not sent.
    gate: Arc<AtomicBool>,
    /// Set when the node closed the connection.
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Server {
    fn start(node: std::net::SocketAddr, blocks: Arc<Vec<Block>>, answer: Answer) -> Server {
        Server::start_gated(node, blocks, answer, true)
    }

    /// Like [`Server::start`], with the gate open or closed.
    fn start_gated(
        node: std::net::SocketAddr,
        blocks: Arc<Vec<Block>>,
        answer: Answer,
        open: bool,
    ) -> Server {
        let mut p = FakePeer::connect(node).expect("connect");
        p.handshake(blocks.len() as i32 - 1, SERVES)
            .expect("handshake");
        Server::run(p, blocks, answer, open)
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::Relaxed)
    }

    fn run(mut p: FakePeer, blocks: Arc<Vec<Block>>, answer: Answer, open: bool) -> Server {
        let addr = p.local_addr();
        let asked = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(AtomicBool::new(open));
        let closed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (asked2, served2, gate2, closed2, stop2) = (
            Arc::clone(&asked),
            Arc::clone(&served),
            Arc::clone(&gate),
            Arc::clone(&closed),
            Arc::clone(&stop),
        );
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let by_hash: std::collections::HashMap<BlockHash, usize> = blocks
                .iter()
                .enumerate()
                .map(|(h, b)| (b.block_hash(), h))
                .collect();
            p.stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
            let mut queue: VecDeque<usize> = VecDeque::new();
            while !stop2.load(Ordering::Relaxed) {
                if gate2.load(Ordering::Relaxed) {
                    while let Some(h) = queue.pop_front() {
                        if p.send(NetworkMessage::Block(blocks[h].clone())).is_err() {
                            closed2.store(true, Ordering::Relaxed);
                            return Ok(());
                        }
                        served2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let msg = match p.recv() {
                    Ok(m) => m,
                    Err(e) if e.is_timeout() => continue,
                    Err(_) => {
                        closed2.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                };
                let reply =
                    match msg {
                        NetworkMessage::GetHeaders(gh) => Some(NetworkMessage::Headers(
                            headers_after(&blocks, &by_hash, &gh.locator_hashes),
                        )),
                        NetworkMessage::GetData(items) => {
                            let wanted: Vec<usize> = items
                                .iter()
                                .filter_map(|i| match i {
                                    Inventory::Block(h) | Inventory::WitnessBlock(h) => {
                                        by_hash.get(h).copied()
                                    }
                                    _ => None,
                                })
                                .collect();
                            asked2.fetch_add(wanted.len(), Ordering::Relaxed);
                            match answer {
                                Answer::Serve => {
                                    queue.extend(wanted);
                                    None
                                }
                                Answer::NotFound => Some(NetworkMessage::NotFound(items)),
                                Answer::Withhold => None,
                            }
                        }
                        NetworkMessage::Ping(n) => Some(NetworkMessage::Pong(n)),
                        _ => None,
                    };
                if let Some(m) = reply {
                    if p.send(m).is_err() {
                        closed2.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        Server {
            addr,
            asked,
            served,
            gate,
            closed,
            stop,
            thread: Some(thread),
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map_or(Ok(()), |t| t.join().expect("server thread"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sync_snapshot(node: &TestNode) -> SyncSnapshot {
    node.handle.sync_snapshot().expect("sync snapshot")
}

/// The node's id for the fake peer at `addr`.
fn peer_id(node: &TestNode, addr: std::net::SocketAddr) -> Option<strand::PeerId> {
    node.snapshot()
        .peers
        .iter()
        .find(|p| p.addr == addr)
        .map(|p| p.id)
}

fn chain_blocks(seed: u64, n: u32) -> Arc<Vec<Block>> {
    Arc::new(test_chain(seed, n, 0).blocks().to_vec())
}

#[test]
fn blocks_are_downloaded_from_every_peer_that_has_them() {
    let blocks = chain_blocks(0x9a4a_11e1, 200);
    let tip = blocks[200].block_hash();
    let node = TestNode::start(|_| {});

    // A becomes the sync peer and gets the first 16 blocks asked; its
    // answers are held back until B and C have served blocks too.
    let mut a = FakePeer::connect(node.addr).unwrap();
    a.handshake(200, SERVES).unwrap();
    let a = Server::run(a, Arc::clone(&blocks), Answer::Serve, false);
    assert!(wait_until(Duration::from_secs(20), || a
        .asked
        .load(Ordering::Relaxed)
        == 16));
    let a_id = peer_id(&node, a.addr).expect("A known");
    let s = sync_snapshot(&node);
    assert_eq!(s.sync_peer, Some(a_id));
    let a_info = s.peers.iter().find(|p| p.id == a_id).expect("A in sync");
    assert_eq!(a_info.inflight, (1..=16).collect::<Vec<u32>>());
    assert_eq!(a_info.synced_headers, 200);

    // B and C, gated too, each get 16 other blocks once they have told
    // the node (asked for headers) what they have.
    let b = Server::start_gated(node.addr, Arc::clone(&blocks), Answer::Serve, false);
    let c = Server::start_gated(node.addr, Arc::clone(&blocks), Answer::Serve, false);
    assert!(
        wait_until(Duration::from_secs(30), || b.asked() == 16
            && c.asked() == 16),
        "B and C were not asked for blocks: {:?}",
        sync_snapshot(&node)
    );
    assert_eq!(sync_snapshot(&node).blocks_in_flight, 48);
    b.gate.store(true, Ordering::Relaxed);
    c.gate.store(true, Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(30), || b.served() > 0 && c.served() > 0),
        "B and C did not serve: {:?}",
        sync_snapshot(&node)
    );
    // Nobody has more than 16 blocks in flight.
    assert!(sync_snapshot(&node)
        .peers
        .iter()
        .all(|p| p.inflight.len() <= 16));
    a.gate.store(true, Ordering::Relaxed);

    assert!(
        wait_tip(&node, tip, Duration::from_secs(60)),
        "tip not reached: {:?}",
        sync_snapshot(&node)
    );
    let s = sync_snapshot(&node);
    assert_eq!(s.best_height, 200);
    assert_eq!(s.blocks_in_flight, 0);
    assert_eq!((s.pending_blocks, s.pending_bytes), (0, 0));
    assert!(a.served() >= 16);
    assert!(b.served() > 0 && c.served() > 0);
    assert_eq!(a.served() + b.served() + c.served(), 200, "a block twice");
    for srv in [a, b, c] {
        srv.finish().unwrap();
    }
}

#[test]
fn peer_holding_up_the_window_is_dropped_after_the_stalling_timeout() {
    let blocks = chain_blocks(0x57a1_1e12, 100);
    let tip = blocks[100].block_hash();
    // A 20-block window so that 16 withheld blocks exhaust it.
    let node = TestNode::start(|c| c.download_window = 20);

    let staller = Server::start(node.addr, Arc::clone(&blocks), Answer::Withhold);
    assert!(wait_until(Duration::from_secs(20), || staller
        .asked
        .load(Ordering::Relaxed)
        == 16));
    let honest = Server::start(node.addr, Arc::clone(&blocks), Answer::Serve);

    assert!(
        wait_tip(&node, tip, Duration::from_secs(60)),
        "tip not reached: {:?}",
        sync_snapshot(&node)
    );
    assert!(wait_until(Duration::from_secs(10), || staller
        .closed
        .load(Ordering::Relaxed)));
    let s = sync_snapshot(&node);
    assert_eq!(s.counters.download_stalls, 1);
    assert_eq!(s.counters.block_timeouts, 0);
    assert_eq!(staller.served(), 0);
    assert_eq!(honest.served(), 100);
    // Raised to 4 s by the disconnection, back to 2 s after 100 blocks.
    assert_eq!(s.stalling_timeout, Duration::from_secs(2));
    assert!(!honest.closed.load(Ordering::Relaxed));
    staller.finish().unwrap();
    honest.finish().unwrap();
}

#[test]
fn notfound_answer_sends_the_blocks_to_another_peer_at_once() {
    let blocks = chain_blocks(0x0707_f0d1, 60);
    let tip = blocks[60].block_hash();
    // Default 10-minute download timeout: only notfound can free the blocks.
    let node = TestNode::start(|_| {});
    let lacking = Server::start(node.addr, Arc::clone(&blocks), Answer::NotFound);
    assert!(wait_until(Duration::from_secs(20), || lacking
        .asked
        .load(Ordering::Relaxed)
        >= 16));
    let honest = Server::start(node.addr, Arc::clone(&blocks), Answer::Serve);
    assert!(
        wait_tip(&node, tip, Duration::from_secs(60)),
        "tip not reached: {:?}",
        sync_snapshot(&node)
    );
    let s = sync_snapshot(&node);
    assert!(s.counters.notfound_blocks >= 16, "{:?}", s.counters);
    assert_eq!(s.counters.block_timeouts + s.counters.download_stalls, 0);
    assert_eq!(honest.served(), 60);
    // Not punished for it.
    assert!(!lacking.closed.load(Ordering::Relaxed));
    assert_eq!(node.snapshot().peers.len(), 2);
    lacking.finish().unwrap();
    honest.finish().unwrap();
}

#[test]
fn unrequested_notfound_flood_is_ignored() {
    let blocks = chain_blocks(0xf100_d0f1, 40);
    let tip = blocks[40].block_hash();
    let node = TestNode::start(|_| {});
    let mut flooder = FakePeer::connect(node.addr).unwrap();
    flooder.handshake(0, SERVES).unwrap();
    let honest = Server::start(node.addr, Arc::clone(&blocks), Answer::Serve);
    for round in 0..200u32 {
        let items = (0..500u32)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&round.to_le_bytes());
                b[4..8].copy_from_slice(&i.to_le_bytes());
                if i % 2 == 0 {
                    Inventory::WitnessBlock(BlockHash::from_byte_array(b))
                } else {
                    Inventory::WTx(bitcoin::Wtxid::from_byte_array(b))
                }
            })
            .chain(
                blocks
                    .iter()
                    .take(10)
                    .map(|b| Inventory::Block(b.block_hash())),
            )
            .collect();
        flooder.send(NetworkMessage::NotFound(items)).unwrap();
    }
    flooder.ping(7).unwrap();
    assert!(
        wait_tip(&node, tip, Duration::from_secs(60)),
        "tip not reached: {:?}",
        sync_snapshot(&node)
    );
    let s = sync_snapshot(&node);
    assert_eq!(s.counters.notfound_blocks, 0);
    assert_eq!(honest.served(), 40);
    // Still connected and answering.
    flooder.ping(8).unwrap();
    assert_eq!(node.snapshot().peers.len(), 2);
    honest.finish().unwrap();
}

#[test]
fn unrequested_blocks_far_ahead_are_dropped_and_memory_stays_bounded() {
    let blocks = chain_blocks(0x0b5e_55ed, 700);
    let tip = blocks[700].block_hash();
    let node = TestNode::start(|c| c.block_download_timeout = Duration::from_secs(4));

    // The pusher is the sync peer: it sends the headers, withholds the 16
    // blocks asked, and pushes 84 blocks within 288 of the tip and 401
    // beyond, none of them asked for.
    let mut pusher = FakePeer::connect(node.addr).unwrap();
    pusher.handshake(700, SERVES).unwrap();
    pusher
        .recv_until("getheaders", |m| matches!(m, NetworkMessage::GetHeaders(_)))
        .unwrap();
    pusher
        .send(NetworkMessage::Headers(
            blocks[1..].iter().map(|b| b.header).collect(),
        ))
        .unwrap();
    pusher
        .recv_until("getdata", |m| matches!(m, NetworkMessage::GetData(_)))
        .unwrap();
    for b in blocks[300..=700].iter().chain(&blocks[17..=100]) {
        pusher.send(NetworkMessage::Block(b.clone())).unwrap();
    }
    pusher.ping(1).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || sync_snapshot(&node)
            .counters
            .unrequested_dropped
            == 401),
        "{:?}",
        sync_snapshot(&node)
    );
    let s = sync_snapshot(&node);
    assert_eq!(s.best_height, 0);
    assert_eq!(s.pending_blocks, 84, "blocks 17..=100 wait for 1..=16");
    assert!(s.pending_bytes <= strand::chain::state::MAX_PENDING_BYTES);
    let pusher = Server::run(pusher, Arc::clone(&blocks), Answer::Withhold, true);

    // An honest peer serves the rest; the pusher's 16 requests time out.
    let honest = Server::start(node.addr, Arc::clone(&blocks), Answer::Serve);
    assert!(
        wait_tip(&node, tip, Duration::from_secs(120)),
        "tip not reached: {:?}",
        sync_snapshot(&node)
    );
    let s = sync_snapshot(&node);
    assert_eq!(s.counters.block_timeouts, 1);
    assert!(wait_until(Duration::from_secs(10), || pusher
        .closed
        .load(Ordering::Relaxed)));
    assert_eq!((s.pending_blocks, s.pending_bytes), (0, 0));
    assert_eq!(honest.served(), 700 - 84);
    pusher.finish().unwrap();
    honest.finish().unwrap();
}

fn open_chain(dir: &std::path::Path, pending_bytes: usize) -> ChainState {
    ChainState::open(
        dir,
        strand::Network::Regtest,
        ChainOptions {
            script_threads: 0,
            pending_bytes,
            ..Default::default()
        },
    )
    .expect("open chain state")
}

#[test]
fn bodies_past_the_memory_budget_go_to_the_store_and_connect_later() {
    let chain = test_chain(0x5707_e000, 40, 3);
    let blocks = chain.blocks();
    let dir = tempfile::tempdir().unwrap();
    let mut cs = open_chain(dir.path(), 2_000);
    let headers: Vec<_> = blocks[1..].iter().map(|b| b.header).collect();
    cs.process_headers(&headers).unwrap();
    // Everything but block 1: nothing connects, at most 2,000 bytes stay
    // in memory, the rest is in the store.
    for b in &blocks[2..] {
        assert!(cs.accept_block(b.clone()).unwrap().is_empty());
    }
    let (held, bytes) = cs.pending_usage();
    assert!(bytes <= 2_000, "{bytes} bytes held");
    assert!(held < 10, "{held} blocks held");
    assert!(blocks[2..].iter().all(|b| cs.have_block(&b.block_hash())));
    assert_eq!(cs.height(), 0);
    let events = cs.accept_block(blocks[1].clone()).unwrap();
    assert_eq!(events.len(), 40);
    assert_eq!(cs.height(), 40);
    assert_eq!(cs.tip(), blocks[40].block_hash());
    assert_eq!(cs.pending_usage(), (0, 0));
    drop(cs);
    let cs = open_chain(dir.path(), 2_000);
    assert_eq!(cs.tip(), blocks[40].block_hash());
}

#[test]
fn unrequested_block_is_processed_only_within_288_of_the_tip() {
    let chain = test_chain(0x0288_0288, 300, 0);
    let blocks = chain.blocks();
    let dir = tempfile::tempdir().unwrap();
    let mut cs = open_chain(dir.path(), strand::chain::state::MAX_PENDING_BYTES);
    let headers: Vec<_> = blocks[1..].iter().map(|b| b.header).collect();
    cs.process_headers(&headers).unwrap();
    cs.accept_block_requested(blocks[289].clone(), false)
        .unwrap();
    assert!(!cs.have_block(&blocks[289].block_hash()), "too far ahead");
    assert_eq!(cs.unrequested_dropped(), 1);
    cs.accept_block_requested(blocks[288].clone(), false)
        .unwrap();
    assert!(cs.have_block(&blocks[288].block_hash()));
    // Asked for, the far block is kept.
    cs.accept_block_requested(blocks[289].clone(), true)
        .unwrap();
    assert!(cs.have_block(&blocks[289].block_hash()));
    assert_eq!(cs.unrequested_dropped(), 1);
    // Connecting the start leaves blocks 288 and 289 waiting in memory.
    for b in &blocks[1..=10] {
        cs.accept_block(b.clone()).unwrap();
    }
    assert_eq!(cs.height(), 10);
    assert_eq!(cs.pending_usage().0, 2);
}
