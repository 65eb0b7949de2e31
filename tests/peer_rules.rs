//! Other nodes must hear strand: every message the real binary sends is
//! checked against btcd's and Bitcoin Core's receive rules
//! (`common::rules`), in both connection directions, through a btcd-style
//! `getblocks` download and block following, and through Core-style and
//! btcd-style transaction relay (BIP339 wtxid vs txid announcements).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{CommandString, NetworkMessage};
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::{Reject, RejectReason};
use bitcoin::p2p::ServiceFlags;
use bitcoin::{Amount, Block, BlockHash, TxOut};
use common::rules::{Profile, RulePeer};
use common::*;
use serde_json::{json, Value};
use strand::rpc::client::{call, ClientAuth};

const ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// What btcd and Core advertise: NODE_NETWORK | NODE_WITNESS.
fn full() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

fn rpc(node: &NodeProcess, method: &str, params: Vec<Value>) -> Value {
    call(
        node.rpc_addr(),
        &ClientAuth::Cookie(node.cookie()),
        method,
        params,
    )
    .unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn regtest_genesis() -> BlockHash {
    bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash()
}

#[test]
fn features_are_negotiated_before_verack_only_with_70016_peers() {
    let node = NodeProcess::start(&[]);
    for profile in [Profile::Core, Profile::Btcd] {
        let mut p = RulePeer::connect(node.addr(), profile, 70016, full(), 0).unwrap();
        assert!(
            p.strand_wtxidrelay,
            "{profile:?}: no wtxidrelay before verack"
        );
        assert!(
            p.strand_sendaddrv2,
            "{profile:?}: no sendaddrv2 before verack"
        );
        assert_eq!(
            p.received,
            ["version", "wtxidrelay", "sendaddrv2", "verack"],
            "{profile:?}: handshake order"
        );
        assert_eq!(p.wtxid_relay(), profile == Profile::Core);
        p.fence(1).unwrap();
        p.assert_clean();
    }
    // A 70015 peer hears neither (BIP339 and BIP155 start at 70016).
    let mut old = RulePeer::connect(node.addr(), Profile::Core, 70015, full(), 0).unwrap();
    assert_eq!(old.received, ["version", "verack"]);
    old.fence(2).unwrap();
    old.assert_clean();
}

#[test]
fn strand_dialling_out_keeps_both_rule_sets() {
    for profile in [Profile::Btcd, Profile::Core] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap().to_string();
        let node = NodeProcess::start(&["--connect", &target]);
        let stream = accept_within(&listener, Duration::from_secs(15));
        let mut p = RulePeer::accept(stream, profile, 70016, full(), 0).unwrap();
        assert_eq!(
            p.received,
            ["version", "wtxidrelay", "sendaddrv2", "verack"],
            "{profile:?}: outbound handshake order"
        );
        // Core and btcd ask outbound peers for addresses; strand knows none
        // and must not answer with an empty list.
        p.send(NetworkMessage::GetAddr).unwrap();
        let before = p.fence(3).unwrap();
        assert!(
            !before
                .iter()
                .any(|m| matches!(m, NetworkMessage::Addr(_) | NetworkMessage::AddrV2(_))),
            "{profile:?}: answered getaddr: {before:?}"
        );
        p.assert_clean();
        drop(node);
    }
}

#[test]
fn getaddr_is_never_answered_with_an_empty_address_message() {
    let node = NodeProcess::start(&[]);
    // btcd connects to strand and asks for addresses at once: strand knows
    // none and stays silent (btcd drops a peer that sends an empty addrv2,
    // then reconnects forever).
    let mut btcd = RulePeer::connect(node.addr(), Profile::Btcd, 70016, full(), 0).unwrap();
    btcd.send(NetworkMessage::GetAddr).unwrap();
    let before = btcd.fence(4).unwrap();
    assert!(
        !before
            .iter()
            .any(|m| matches!(m, NetworkMessage::Addr(_) | NetworkMessage::AddrV2(_))),
        "empty book answered: {before:?}"
    );
    btcd.assert_clean();

    // Once strand has heard of addresses, a btcd peer (sendaddrv2) gets
    // them as addrv2 and an old peer (no sendaddrv2) as addr.
    // One teller per address: a new peer's addr budget is one address
    // (Core's token bucket starts at one token).
    // Core answers with at most 23 % of the table: 2 of 9.
    let now = strand::unix_time() as u32;
    let mut tellers = Vec::new();
    for i in 1..=9u8 {
        let mut teller = FakePeer::connect(node.addr()).unwrap();
        teller.handshake(0, SERVES).unwrap();
        let sa: std::net::SocketAddr = format!("11.{i}.0.1:18444").parse().unwrap();
        let addrs: Vec<(u32, Address)> = vec![(now - 60, Address::new(&sa, full()))];
        teller.send(NetworkMessage::Addr(addrs)).unwrap();
        teller.ping(9).unwrap();
        tellers.push(teller);
    }
    // A teller's ping answer does not wait for the address manager to file
    // its address: wait (bounded) until all nine are in the table.
    let filed = wait_until(Duration::from_secs(10), || {
        rpc(&node, "getaddrmaninfo", vec![])["all_networks"]["total"] == json!(9)
    });
    assert!(filed, "{}", rpc(&node, "getaddrmaninfo", vec![]));
    let mut v2 = RulePeer::connect(node.addr(), Profile::Btcd, 70016, full(), 0).unwrap();
    v2.send(NetworkMessage::GetAddr).unwrap();
    match v2.recv_until("addrv2", Duration::from_secs(10), |m| {
        matches!(m, NetworkMessage::AddrV2(_))
    }) {
        Ok(NetworkMessage::AddrV2(list)) => assert_eq!(list.len(), 2),
        other => panic!("{other:?}"),
    }
    v2.assert_clean();
    let mut v1 = RulePeer::connect(node.addr(), Profile::Core, 70015, full(), 0).unwrap();
    v1.send(NetworkMessage::GetAddr).unwrap();
    match v1.recv_until("addr", Duration::from_secs(10), |m| {
        matches!(m, NetworkMessage::Addr(_))
    }) {
        Ok(NetworkMessage::Addr(list)) => assert_eq!(list.len(), 2),
        other => panic!("{other:?}"),
    }
    v1.assert_clean();
}

#[test]
fn reject_and_unknown_negotiation_messages_are_ignored_quietly() {
    let node = NodeProcess::start(&[]);
    // BIP330's sendtxrcncl goes between version and verack; strand does not
    // speak it and must skip it like any unknown message.
    let sendtxrcncl = NetworkMessage::Unknown {
        command: CommandString::try_from_static("sendtxrcncl").unwrap(),
        payload: vec![1, 0, 0, 0, 7, 7, 7, 7, 7, 7, 7, 7],
    };
    let mut p = RulePeer::connect_with(
        node.addr(),
        Profile::Core,
        70016,
        full(),
        0,
        vec![sendtxrcncl],
    )
    .unwrap();
    // btcd still sends reject; strand carries on.
    p.send(NetworkMessage::Reject(Reject {
        message: "tx".into(),
        ccode: RejectReason::Duplicate,
        reason: "txn-already-known".into(),
        hash: bitcoin::hashes::sha256d::Hash::all_zeros(),
    }))
    .unwrap();
    p.fence(5).unwrap();
    p.assert_clean();
    // The peer handler lists the peer once its lifecycle thread's Add
    // arrives, which the fence above does not wait for: wait (bounded)
    // for it, then check it is still connected.
    let listed = wait_until(Duration::from_secs(10), || {
        rpc(&node, "getpeerinfo", vec![])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert!(listed, "{}", rpc(&node, "getpeerinfo", vec![]));
    p.fence(5).unwrap();
    p.assert_clean();
}

#[test]
fn late_negotiation_and_oversized_lists_drop_the_sender() {
    let node = NodeProcess::start(&[]);
    let many = |n: usize| -> Vec<BlockHash> {
        (0..n)
            .map(|i| BlockHash::from_byte_array([(i % 251) as u8 + 1; 32]))
            .collect()
    };
    let cases: Vec<(&str, NetworkMessage)> = vec![
        ("wtxidrelay after verack", NetworkMessage::WtxidRelay),
        ("sendaddrv2 after verack", NetworkMessage::SendAddrV2),
        (
            "getheaders with 102 locator hashes",
            NetworkMessage::GetHeaders(GetHeadersMessage {
                version: 70016,
                locator_hashes: many(102),
                stop_hash: BlockHash::all_zeros(),
            }),
        ),
        (
            "getblocks with 102 locator hashes",
            NetworkMessage::GetBlocks(GetBlocksMessage {
                version: 70016,
                locator_hashes: many(102),
                stop_hash: BlockHash::all_zeros(),
            }),
        ),
        (
            "inv of 50,001 items",
            NetworkMessage::Inv(many(50_001).into_iter().map(Inventory::Block).collect()),
        ),
        (
            "getdata of 50,001 items",
            NetworkMessage::GetData(many(50_001).into_iter().map(Inventory::Block).collect()),
        ),
    ];
    let mut honest = RulePeer::connect(node.addr(), Profile::Core, 70016, full(), 0).unwrap();
    for (what, msg) in cases {
        let mut p = FakePeer::connect(node.addr()).unwrap();
        p.handshake(0, SERVES).unwrap();
        p.send(msg).unwrap();
        assert!(
            p.closed_within(Duration::from_secs(10)),
            "not disconnected for {what}"
        );
    }
    // At the limits a peer is served, and the honest peer never noticed.
    let mut p = FakePeer::connect(node.addr()).unwrap();
    p.handshake(0, SERVES).unwrap();
    p.send(NetworkMessage::GetHeaders(GetHeadersMessage {
        version: 70016,
        locator_hashes: many(101),
        stop_hash: BlockHash::all_zeros(),
    }))
    .unwrap();
    p.recv_until("headers", |m| matches!(m, NetworkMessage::Headers(_)))
        .unwrap();
    honest.fence(6).unwrap();
    honest.assert_clean();
}

/// btcd's block download on regtest (no checkpoints, so not headers-first):
/// `getblocks`, `getdata` for every unknown block in an `inv` (witness
/// blocks from a witness peer), `getblocks` towards the orphan root when a
/// block does not connect, and `getblocks` from the last item when an
/// `inv` ends with a known block (netsync `handleInvMsg`/`handleBlockMsg`).
struct BtcdSync {
    chain: Vec<BlockHash>,
    known: HashSet<BlockHash>,
    orphans: HashMap<BlockHash, Block>,
    in_flight: HashSet<BlockHash>,
    getblocks_sent: usize,
}

impl BtcdSync {
    fn new() -> BtcdSync {
        let g = regtest_genesis();
        BtcdSync {
            chain: vec![g],
            known: HashSet::from([g]),
            orphans: HashMap::new(),
            in_flight: HashSet::new(),
            getblocks_sent: 0,
        }
    }

    fn tip(&self) -> BlockHash {
        *self.chain.last().unwrap()
    }

    fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut i = self.chain.len() as i64 - 1;
        let mut step = 1;
        while i > 0 {
            out.push(self.chain[i as usize]);
            if out.len() >= 10 {
                step *= 2;
            }
            i -= step;
        }
        out.push(self.chain[0]);
        out
    }

    fn getblocks(&mut self, p: &mut RulePeer, stop: BlockHash) {
        self.getblocks_sent += 1;
        p.send(NetworkMessage::GetBlocks(GetBlocksMessage {
            version: 70016,
            locator_hashes: self.locator(),
            stop_hash: stop,
        }))
        .unwrap();
    }

    fn handle(&mut self, p: &mut RulePeer, msg: NetworkMessage) {
        match msg {
            NetworkMessage::Inv(items) => {
                let blocks: Vec<BlockHash> = items
                    .iter()
                    .filter_map(|i| match i {
                        Inventory::Block(h) => Some(*h),
                        _ => None,
                    })
                    .collect();
                let wanted: Vec<Inventory> = blocks
                    .iter()
                    .filter(|h| !self.known.contains(*h) && !self.orphans.contains_key(*h))
                    .filter(|h| self.in_flight.insert(**h))
                    .map(|h| Inventory::WitnessBlock(*h))
                    .collect();
                if let Some(last) = blocks.last() {
                    if self.known.contains(last) {
                        self.getblocks(p, BlockHash::all_zeros());
                    }
                }
                if !wanted.is_empty() {
                    p.send(NetworkMessage::GetData(wanted)).unwrap();
                }
            }
            NetworkMessage::Block(b) => {
                let hash = b.block_hash();
                self.in_flight.remove(&hash);
                if b.header.prev_blockhash == self.tip() {
                    self.connect(hash);
                } else if !self.known.contains(&b.header.prev_blockhash) {
                    // An orphan: ask for what lies between our tip and it.
                    self.orphans.insert(b.header.prev_blockhash, b);
                    self.getblocks(p, hash);
                }
            }
            _ => {}
        }
    }

    fn connect(&mut self, mut hash: BlockHash) {
        loop {
            self.chain.push(hash);
            self.known.insert(hash);
            match self.orphans.remove(&hash) {
                Some(child) => hash = child.block_hash(),
                None => return,
            }
        }
    }

    /// Runs until our tip is `target` or `timeout` passes.
    fn run_until(&mut self, p: &mut RulePeer, target: BlockHash, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.tip() != target && Instant::now() < deadline {
            p.peer
                .stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            match p.recv() {
                Ok(m) => self.handle(p, m),
                Err(e) if e.contains("timed out") || e.contains("Resource temporarily") => {}
                Err(e) => panic!("btcd-like peer: {e}"),
            }
        }
        self.tip() == target
    }
}

#[test]
fn btcd_like_peer_downloads_then_follows_300_blocks() {
    let node = NodeProcess::start(&[]);
    let hashes = rpc(&node, "generatetoaddress", vec![json!(280), json!(ADDR)]);
    assert_eq!(hashes.as_array().unwrap().len(), 280);
    let best: BlockHash = rpc(&node, "getbestblockhash", vec![])
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // btcd, pointed at strand with --connect: handshake, getaddr, getblocks.
    let mut p = RulePeer::connect(node.addr(), Profile::Btcd, 70016, full(), 0).unwrap();
    p.send(NetworkMessage::GetAddr).unwrap();
    let mut sync = BtcdSync::new();
    sync.getblocks(&mut p, BlockHash::all_zeros());
    assert!(
        sync.run_until(&mut p, best, Duration::from_secs(60)),
        "btcd-like peer stopped at height {} of 280 (getblocks sent: {})",
        sync.chain.len() - 1,
        sync.getblocks_sent
    );
    assert_eq!(sync.chain.len(), 281);

    // Then it follows strand's new blocks, announced one by one.
    for i in 0..20 {
        let h = rpc(&node, "generatetoaddress", vec![json!(1), json!(ADDR)]);
        let new: BlockHash = h[0].as_str().unwrap().parse().unwrap();
        assert!(
            sync.run_until(&mut p, new, Duration::from_secs(20)),
            "new block {i} not followed"
        );
    }
    assert_eq!(sync.chain.len(), 301);
    let best: BlockHash = rpc(&node, "getbestblockhash", vec![])
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sync.tip(), best);
    p.fence(7).unwrap();
    p.assert_clean();
}

#[test]
fn sendrawtransaction_reaches_core_as_wtxid_and_btcd_as_txid() {
    let chain = test_chain(71, 110, 0);
    let node = NodeProcess::start(&[]);
    let server = ChainServer::start(node.addr(), chain.blocks().to_vec(), Serve::Everything);
    let tip = chain.tip().block_hash().to_string();
    assert!(
        wait_until(Duration::from_secs(60), || {
            rpc(&node, "getbestblockhash", vec![]) == json!(tip)
        }),
        "strand did not sync the funding chain"
    );
    server.finish().unwrap();

    let mut core = RulePeer::connect(node.addr(), Profile::Core, 70016, full(), 0).unwrap();
    let mut btcd = RulePeer::connect(node.addr(), Profile::Btcd, 70016, full(), 0).unwrap();
    // A 70015 peer that sends wtxidrelay anyway: not negotiated (BIP339).
    let mut old = RulePeer::connect_with(
        node.addr(),
        Profile::Core,
        70015,
        full(),
        0,
        vec![NetworkMessage::WtxidRelay],
    )
    .unwrap();
    assert!(core.wtxid_relay() && !btcd.wtxid_relay() && !old.wtxid_relay());
    for (i, p) in [&mut core, &mut btcd, &mut old].into_iter().enumerate() {
        p.fence(10 + i as u64).unwrap();
    }
    // Transactions are announced to the peers the sync manager knows: wait
    // until its NewPeer for all three has been handled (a pong comes from
    // the reader and does not show that).
    assert!(
        wait_until(Duration::from_secs(10), || {
            rpc(&node, "getsyncstate", vec![])["sync_known"]
                .as_array()
                .is_some_and(|k| k.len() == 3)
        }),
        "the sync manager did not learn of the three peers: {}",
        rpc(&node, "getsyncstate", vec![])
    );

    let (op, value) = chain.spendable_outputs()[0];
    let tx = chain
        .sign_spend(
            &[op],
            vec![TxOut {
                value: value - Amount::from_sat(10_000),
                script_pubkey: chain.tip().txdata[0].output[0].script_pubkey.clone(),
            }],
        )
        .unwrap();
    let txid = rpc(&node, "sendrawtransaction", vec![json!(serialize_hex(&tx))]);
    assert_eq!(txid, json!(tx.compute_txid().to_string()));

    let wtxid = tx.compute_wtxid();
    let inv = core
        .recv_until(
            "wtx inv",
            Duration::from_secs(10),
            |m| matches!(m, NetworkMessage::Inv(i) if i.contains(&Inventory::WTx(wtxid))),
        )
        .unwrap();
    drop(inv);
    core.send(NetworkMessage::GetData(vec![Inventory::WTx(wtxid)]))
        .unwrap();
    match core.recv_until("tx", Duration::from_secs(10), |m| {
        matches!(m, NetworkMessage::Tx(_))
    }) {
        Ok(NetworkMessage::Tx(got)) => assert_eq!(got.compute_wtxid(), wtxid),
        other => panic!("{other:?}"),
    }
    for p in [&mut btcd, &mut old] {
        let want = Inventory::Transaction(tx.compute_txid());
        p.recv_until(
            "tx inv",
            Duration::from_secs(10),
            |m| matches!(m, NetworkMessage::Inv(i) if i.contains(&want)),
        )
        .unwrap();
        p.send(NetworkMessage::GetData(vec![
            Inventory::WitnessTransaction(tx.compute_txid()),
        ]))
        .unwrap();
        match p.recv_until("tx", Duration::from_secs(10), |m| {
            matches!(m, NetworkMessage::Tx(_))
        }) {
            Ok(NetworkMessage::Tx(got)) => assert_eq!(got.compute_wtxid(), wtxid),
            other => panic!("{other:?}"),
        }
    }
    for (i, p) in [&mut core, &mut btcd, &mut old].into_iter().enumerate() {
        p.fence(20 + i as u64).unwrap();
        p.assert_clean();
    }
}
