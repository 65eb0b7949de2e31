//! Signet block solutions through the real binary: `strand --signet`
//! (optionally with `--signetchallenge HEX`) fed blocks by a fake peer
//! speaking the signet's own magic.
//!
//! * The first blocks of the public default signet connect on a default
//!   signet node, and are refused with Core's `bad-signet-blksig` (sender
//!   dropped, tip unchanged) by a node whose challenge is the same keys as a
//!   2-of-2 (Core's `feature_signet.py` case).
//! * On a custom 1-of-2 multisig signet, a block signed by one key and mined
//!   at signet's minimum difficulty connects; the same block unsigned, or
//!   signed for another challenge, is refused.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::{deserialize, encode};
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{Amount, Block, BlockHash, CompactTarget, ScriptBuf, Witness};
use common::{rand_nonce, strand_bin, version_message, wait_until};
use strand::chain::signet::{self, SignetTxs, SIGNET_HEADER};
use strand::mining::{self, BlockTemplate};
use strand::rpc::client::{call, ClientAuth};
use strand::wire;

/// Default signet blocks 1 and 2 (public chain data; the blocks Core's
/// `feature_signet.py` submits).
const SIGNET_BLOCKS: [&str; 2] = [
    "00000020f61eee3b63a380a477a063af32b2bbc97c9ff9f01f2c4225e973988108000000f575c83235984e7dc4afc1f30944c170462e84437ab6f2d52e16878a79e4678bd1914d5fae77031eccf4070001010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff025151feffffff0200f2052a010000001600149243f727dd5343293eb83174324019ec16c2630f0000000000000000776a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf94c4fecc7daa2490047304402205e423a8754336ca99dbe16509b877ef1bf98d008836c725005b3c787c41ebe46022047246e4467ad7cc7f1ad98662afcaf14c115e0095a227c7b05c5182591c23e7e01000120000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000020533b53ded9bff4adc94101d32400a144c54edc5ed492a3b26c63b2d686000000b38fef50592017cfafbcab88eb3d9cf50b2c801711cad8299495d26df5e54812e7914d5fae77031ecfdd0b0001010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff025251feffffff0200f2052a01000000160014fd09839740f0e0b4fc6d5e2527e4022aa9b89dfa0000000000000000776a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf94c4fecc7daa24900473044022031d64a1692cdad1fc0ced69838169fe19ae01be524d831b95fcf5ea4e6541c3c02204f9dea0801df8b4d0cd0857c62ab35c6c25cc47c930630dc7fe723531daa3e9b01000120000000000000000000000000000000000000000000000000000000000000000000000000",
];

fn signet_block(i: usize) -> Block {
    deserialize(&Vec::<u8>::from_hex(SIGNET_BLOCKS[i]).unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `strand --signet` in a temporary directory; killed on drop.
struct SignetNode {
    child: std::process::Child,
    log: Arc<Mutex<Vec<String>>>,
    p2p: SocketAddr,
    rpc: SocketAddr,
    auth: ClientAuth,
    magic: Magic,
    _dir: tempfile::TempDir,
}

impl SignetNode {
    fn start(challenge: Option<&[u8]>) -> SignetNode {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(strand_bin());
        cmd.arg("--signet").arg("--datadir").arg(dir.path()).args([
            "--listen",
            "127.0.0.1:0",
            "--rpcport",
            "0",
            // The real signet's first blocks are far below its minimum
            // chain work: a node would pre-sync their headers and store
            // nothing (tests/presync.rs covers that). These tests are about
            // the signet block solution, so the threshold is lifted.
            "--minimumchainwork=0",
        ]);
        if let Some(c) = challenge {
            cmd.arg(format!("--signetchallenge={}", hex(c)));
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strand");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let find = |marker: &str| {
            let mut found = None;
            wait_until(Duration::from_secs(20), || {
                found = log.lock().unwrap().iter().find_map(|l| {
                    l.split(marker)
                        .nth(1)
                        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                });
                found.is_some()
            });
            found
        };
        let (p2p, rpc) = (
            find("listening for peers on "),
            find("JSON-RPC listening on "),
        );
        let (Some(p2p), Some(rpc)) = (p2p, rpc) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strand --signet did not start: {:?}", log.lock().unwrap());
        };
        let magic =
            signet::signet_magic(&challenge.map_or_else(signet::default_challenge, <[u8]>::to_vec));
        SignetNode {
            child,
            log,
            p2p,
            rpc,
            auth: ClientAuth::Cookie(dir.path().join("signet").join(".cookie")),
            magic,
            _dir: dir,
        }
    }

    fn best(&self) -> Option<BlockHash> {
        let v = call(self.rpc, &self.auth, "getbestblockhash", vec![]).ok()?;
        v.as_str()?.parse().ok()
    }

    fn log_has(&self, a: &str, b: &str) -> bool {
        wait_until(Duration::from_secs(5), || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(a) && l.contains(b))
        })
    }

    /// Sends `block` from a new, registered peer and returns the peer.
    fn deliver(&self, block: &Block) -> MagicPeer {
        let mut peer = MagicPeer::connect(self.p2p, self.magic);
        assert!(peer.ping(1), "handshake with the signet node failed");
        // Announced, then sent when asked for: as Core's AcceptBlock, the
        // node does not process an unrequested block below the network's
        // minimum chain work (which the first signet blocks are).
        peer.send(NetworkMessage::Headers(vec![block.header]));
        peer.wait_getdata(block.block_hash());
        peer.send(NetworkMessage::Block(block.clone()));
        peer
    }

    /// Waits until the tip is `hash`.
    fn wait_best(&self, hash: BlockHash) -> bool {
        wait_until(Duration::from_secs(10), || self.best() == Some(hash))
    }
}

impl Drop for SignetNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake peer on a network with any magic.
struct MagicPeer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    magic: Magic,
}

impl MagicPeer {
    fn connect(addr: SocketAddr, magic: Magic) -> MagicPeer {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut p = MagicPeer {
            stream,
            reader,
            magic,
        };
        p.send(version_message(0, ServiceFlags::NETWORK, rand_nonce()));
        p.send(NetworkMessage::Verack);
        p
    }

    fn send(&mut self, msg: NetworkMessage) {
        use std::io::Write;
        // The node may already have closed the connection: that is what
        // the callers look at, not the write.
        let _ = self
            .stream
            .write_all(&wire::encode_message(self.magic, msg));
    }

    /// Reads until a `getdata` asking for `hash` (or a close, error or
    /// timeout: the caller's assertions tell).
    fn wait_getdata(&mut self, hash: BlockHash) {
        use bitcoin::p2p::message_blockdata::Inventory;
        for _ in 0..1000 {
            match wire::read_message(&mut self.reader, self.magic) {
                Ok((NetworkMessage::GetData(items), _))
                    if items.iter().any(|i| {
                        matches!(i, Inventory::Block(h) | Inventory::WitnessBlock(h) if *h == hash)
                    }) =>
                {
                    return
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Pings and reads until the pong; false on close, error or timeout.
    fn ping(&mut self, nonce: u64) -> bool {
        self.send(NetworkMessage::Ping(nonce));
        for _ in 0..1000 {
            match wire::read_message(&mut self.reader, self.magic) {
                Ok((NetworkMessage::Pong(n), _)) if n == nonce => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// True if the node closes the connection within `timeout`.
    fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match wire::read_message(&mut self.reader, self.magic) {
                Ok(_) => {}
                Err(e) if e.is_timeout() => return false,
                Err(_) => return true,
            }
        }
        false
    }
}

#[test]
fn default_signet_blocks_connect() {
    let node = SignetNode::start(None);
    assert_eq!(node.magic, Magic::SIGNET);
    for i in 0..2 {
        let b = signet_block(i);
        let mut peer = node.deliver(&b);
        assert!(
            node.wait_best(b.block_hash()),
            "signet block {} did not connect",
            i + 1
        );
        assert!(peer.ping(2), "sender of signet block {} dropped", i + 1);
    }
}

#[test]
fn two_of_two_challenge_refuses_default_signet_blocks() {
    let mut challenge = signet::default_challenge();
    challenge[0] = 0x52; // OP_2: the same keys, both needed
    let node = SignetNode::start(Some(&challenge));
    assert_ne!(node.magic, Magic::SIGNET);
    let genesis = node.best().expect("rpc answers");
    let b = signet_block(0);
    let mut peer = node.deliver(&b);
    assert!(
        peer.closed_within(Duration::from_secs(10)),
        "sender of a badly signed block kept"
    );
    assert_eq!(node.best(), Some(genesis), "tip moved");
    assert!(
        node.log_has(
            &format!("invalid block {}", b.block_hash()),
            "bad-signet-blksig"
        ),
        "no bad-signet-blksig in the log"
    );
}

/// A 1-of-2 bare multisig challenge and its keys.
fn custom_keys() -> ([SecretKey; 2], Vec<u8>) {
    let secp = Secp256k1::new();
    let keys = [
        SecretKey::from_slice(&[0x31; 32]).unwrap(),
        SecretKey::from_slice(&[0x32; 32]).unwrap(),
    ];
    let mut challenge = vec![0x51];
    for k in &keys {
        challenge.push(33);
        challenge.extend_from_slice(&k.public_key(&secp).serialize());
    }
    challenge.extend_from_slice(&[0x52, 0xae]);
    (keys, challenge)
}

/// Writes the signet push (`SIGNET_HEADER` + `solution`) after the witness
/// commitment and fixes the merkle root.
fn set_solution(block: &mut Block, solution: &[u8]) {
    let spk = &mut block.txdata[0].output[1].script_pubkey;
    let mut bytes = spk.as_bytes()[..38].to_vec();
    let mut push = SIGNET_HEADER.to_vec();
    push.extend_from_slice(solution);
    assert!(push.len() <= 0xff);
    if push.len() >= 0x4c {
        bytes.push(0x4c); // OP_PUSHDATA1, as Core's CScript would write it
    }
    bytes.push(push.len() as u8);
    bytes.extend_from_slice(&push);
    *spk = ScriptBuf::from_bytes(bytes);
    block.header.merkle_root = block.compute_merkle_root().unwrap();
}

/// Signs `block` for `challenge` with `key` (scriptSig `OP_0 <sig>`).
fn sign(block: &mut Block, challenge: &[u8], key: &SecretKey) {
    set_solution(block, &[]);
    let txs = SignetTxs::create(block, challenge).unwrap();
    let sighash = SighashCache::new(&txs.to_sign)
        .legacy_signature_hash(
            0,
            &txs.to_spend.output[0].script_pubkey,
            EcdsaSighashType::All.to_u32(),
        )
        .unwrap();
    let sig = Secp256k1::new().sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), key);
    let mut der = sig.serialize_der().to_vec();
    der.push(0x01);
    let mut script_sig = vec![0x00, der.len() as u8];
    script_sig.extend_from_slice(&der);
    let mut solution = encode::serialize(&ScriptBuf::from_bytes(script_sig));
    solution.extend(encode::serialize(&Witness::new()));
    set_solution(block, &solution);
}

#[test]
fn custom_one_of_two_signet() {
    let (keys, challenge) = custom_keys();
    let node = SignetNode::start(Some(&challenge));
    let genesis_hash = node.best().expect("rpc answers");
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Signet);
    assert_eq!(genesis_hash, genesis.block_hash());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut t = BlockTemplate::regtest(genesis_hash, 1, now, vec![], Amount::ZERO);
    t.bits = CompactTarget::from_consensus(0x1e03_77ae);
    t.halving_interval = 210_000;
    let payout = ScriptBuf::from_bytes(vec![0x51]);
    let unsigned = mining::build_block(t, payout).unwrap();
    assert!(unsigned.txdata[0].output.len() == 2, "witness commitment");

    // Signed by the second key, then mined at signet's minimum difficulty
    // (about five million hashes; the nonce is not signed).
    let mut good = unsigned.clone();
    sign(&mut good, &challenge, &keys[1]);
    assert!(
        mining::mine(&mut good, 400_000_000),
        "no nonce found at 0x1e0377ae"
    );

    // A block signed by a key outside the challenge, mined too: refused
    // with Core's reason, its sender dropped.
    let mut wrong_key = unsigned.clone();
    sign(
        &mut wrong_key,
        &challenge,
        &SecretKey::from_slice(&[0x33; 32]).unwrap(),
    );
    assert!(mining::mine(&mut wrong_key, 400_000_000));
    let mut peer = node.deliver(&wrong_key);
    assert!(
        peer.closed_within(Duration::from_secs(10)),
        "sender of a block signed by a stranger kept"
    );
    assert_eq!(node.best(), Some(genesis_hash), "tip moved");
    assert!(
        node.log_has(
            &format!("invalid block {}", wrong_key.block_hash()),
            "bad-signet-blksig"
        ),
        "no bad-signet-blksig in the log"
    );

    let mut peer = node.deliver(&good);
    assert!(
        node.wait_best(good.block_hash()),
        "signed custom signet block did not connect: {:?}",
        node.log.lock().unwrap()
    );
    assert!(peer.ping(3), "sender of a correctly signed block dropped");
}
