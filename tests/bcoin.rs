//! Interoperability with bcoin, an independent Bitcoin full node in
//! JavaScript, over loopback on regtest: strand syncs a chain bcoin mined
//! and follows its new blocks; bcoin accepts every block of a chain with
//! signed P2PKH and P2WPKH transactions that strand holds, syncs it from
//! strand over P2P (`getblocks`/`inv`, bcoin's only sync method) and follows
//! strand's new blocks; transactions sent to either node reach the other's
//! mempool.
//!
//! bcoin runs from `interop/bcoin/launch.js` with the packages installed by
//! `(cd interop/bcoin && npm ci --no-audit --no-fund)`. Without them every
//! test here fails, saying so: they are not skipped.
//!
//! Two differences between bcoin's regtest and Bitcoin Core's (which strand
//! follows) shape the chains built here: bcoin activates segwit (and CSV)
//! through BIP9 signalling (108 of 144 blocks with bits 0 and 1), so the
//! earliest it can be active is height 432, and until then it rejects any
//! block with witness data, including the witness reserved value Core's and
//! strand's miners put in every coinbase; and its regtest addresses have
//! their own prefixes (base58 version 0x3c for P2PKH, `rb` for bech32).

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bitcoin::block::Version;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, Block, CompressedPublicKey, OutPoint, PublicKey, ScriptBuf,
    Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use common::*;
use serde_json::{json, Value};
use strand::mining::{self, BlockTemplate, CommitmentPolicy};
use strand::rpc::client::{call, ClientAuth};

/// The install step, for messages.
const INSTALL: &str = "(cd interop/bcoin && npm ci --no-audit --no-fund)";

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/bcoin")
}

/// Fails the test (never skips it) when bcoin is not installed.
fn require_bcoin() {
    let dir = interop_dir();
    let pkg = dir.join("node_modules/bcoin/package.json");
    assert!(
        pkg.is_file(),
        "bcoin is not installed: {} is missing. Run `{INSTALL}` from the repository root \
         (needs Node >= 18, npm, g++, make and python3) and run the tests again.",
        dir.join("node_modules").display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` is not runnable ({node:?}); bcoin needs Node >= 18"
    );
}

/// A port that was free a moment ago (bcoin wants explicit ports).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until `done`, up to `limit`, failing early when `progress`
/// has not changed for `stall`.
fn wait_progress<T: PartialEq>(
    limit: Duration,
    stall: Duration,
    mut progress: impl FnMut() -> T,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut last = progress();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        let now = progress();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() > stall {
            return false;
        }
    }
    false
}

/// Last `n` lines of a log, for failure messages.
fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A bcoin node (`node interop/bcoin/launch.js`): terminated on drop.
/// Queries both nodes answer the same way.
trait ChainRpc {
    fn rpc(&self, method: &str, params: Value) -> Value;

    fn best(&self) -> String {
        self.rpc("getbestblockhash", json!([]))
            .as_str()
            .unwrap()
            .into()
    }

    fn mempool(&self) -> Vec<String> {
        let v = self.rpc("getrawmempool", json!([]));
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }
}

struct Bcoin {
    child: Child,
    p2p: SocketAddr,
    http: SocketAddr,
    auth: ClientAuth,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Bcoin {
    /// Starts bcoin on free loopback ports and waits for its ready line
    /// (retrying with new ports if one was taken meanwhile).
    fn start() -> Bcoin {
        require_bcoin();
        let mut last_log = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(b) => return b,
                Err(log) => last_log = log,
            }
        }
        panic!("bcoin did not start:\n{}", tail(&last_log, 40));
    }

    fn try_start() -> Result<Bcoin, Vec<String>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (p2p_port, http_port) = (free_port(), free_port());
        let key = format!("strand-interop-{}", rand_nonce());
        let level = std::env::var("BCOIN_LOG_LEVEL").unwrap_or_else(|_| "debug".into());
        let mut child = Command::new("node")
            .arg(interop_dir().join("launch.js"))
            .arg(p2p_port.to_string())
            .arg(http_port.to_string())
            .arg(&key)
            .arg(dir.path())
            .env("BCOIN_LOG_LEVEL", level)
            .env("BCOIN_EXIT_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node (is Node.js installed?)");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, out) in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .enumerate()
        {
            let (log, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if i == 0 && line.starts_with("bcoin ready ") {
                        let _ = tx.send(());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut b = Bcoin {
            child,
            p2p: SocketAddr::from(([127, 0, 0, 1], p2p_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            auth: ClientAuth::UserPass("x".into(), key),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                return Ok(b);
            }
            if let Ok(Some(_)) = b.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                return Err(b.log_lines());
            }
        }
        Err(b.log_lines())
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let params = params.as_array().cloned().unwrap_or_default();
        call(self.http, &self.auth, method, params).map_err(|e| format!("bcoin {method}: {e}"))
    }
}

impl ChainRpc for Bcoin {
    fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{e}\nbcoin log:\n{}", tail(&self.log_lines(), 40)))
    }
}

impl Drop for Bcoin {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A strand process (debug log) with its RPC address and cookie.
struct Strand {
    node: NodeProcess,
    rpc: SocketAddr,
    auth: ClientAuth,
}

impl Strand {
    fn start(args: &[&str]) -> Strand {
        let mut all = vec!["--debug", "debug"];
        all.extend_from_slice(args);
        let node = NodeProcess::start(&all);
        let rpc = node.rpc_addr();
        let auth = ClientAuth::Cookie(node.cookie());
        Strand { node, rpc, auth }
    }

    fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let params = params.as_array().cloned().unwrap_or_default();
        call(self.rpc, &self.auth, method, params).map_err(|e| format!("strand {method}: {e}"))
    }

    fn block(&self, hash: &str) -> Block {
        let hex = self.rpc("getblock", json!([hash, 0]));
        deserialize_hex(hex.as_str().unwrap()).expect("block hex")
    }
}

/// Both logs' tails, for a failure message.
/// RPC calls in bcoin's log and tip updates in strand's are left out.
fn logs(bcoin: &Bcoin, strand: &Strand) -> String {
    let bcoin_log: Vec<String> = bcoin
        .log_lines()
        .into_iter()
        .filter(|l| !l.contains("(rpc)"))
        .collect();
    let strand_log: Vec<String> = strand
        .node
        .log_lines()
        .into_iter()
        .filter(|l| !l.contains("UpdateTip") && !l.contains("flushed chain state"))
        .collect();
    format!(
        "--- bcoin log (last 60 lines, without RPC calls) ---\n{}\n\
         --- strand log (last 60 lines, without tip updates) ---\n{}",
        tail(&bcoin_log, 60),
        tail(&strand_log, 60)
    )
}

/// The test's key: P2PKH and P2WPKH scripts, addresses for both nodes, and
/// signing.
struct Key {
    secret: SecretKey,
    public: PublicKey,
}

impl Key {
    fn new(seed: u8) -> Key {
        let secp = Secp256k1::new();
        let secret = SecretKey::from_slice(&[seed; 32]).expect("valid secret key");
        let public = PublicKey::new(secret.public_key(&secp));
        Key { secret, public }
    }

    fn p2pkh(&self) -> ScriptBuf {
        ScriptBuf::new_p2pkh(&self.public.pubkey_hash())
    }

    fn p2wpkh(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.public.wpubkey_hash().expect("compressed"))
    }

    /// The P2PKH address in bcoin's regtest encoding (base58 version 0x3c).
    fn bcoin_address(&self) -> String {
        let mut payload = vec![0x3c];
        payload.extend_from_slice(self.public.pubkey_hash().as_byte_array());
        bitcoin::base58::encode_check(&payload)
    }

    /// The P2WPKH address in Core's (and strand's) regtest encoding.
    fn strand_address(&self) -> String {
        let pk = CompressedPublicKey(self.public.inner);
        bitcoin::Address::p2wpkh(&pk, bitcoin::Network::Regtest).to_string()
    }

    /// A version-2 transaction spending `inputs` (each P2PKH or P2WPKH of
    /// this key, with its value) to `outputs`, signed SIGHASH_ALL.
    fn spend(&self, inputs: &[(OutPoint, TxOut)], outputs: Vec<TxOut>) -> Transaction {
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|(op, _)| TxIn {
                    previous_output: *op,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        let secp = Secp256k1::new();
        let mut sigs = Vec::new();
        {
            let mut cache = SighashCache::new(&tx);
            for (i, (_, prev)) in inputs.iter().enumerate() {
                let sighash: [u8; 32] = if prev.script_pubkey == self.p2pkh() {
                    cache
                        .legacy_signature_hash(i, &prev.script_pubkey, EcdsaSighashType::All as u32)
                        .expect("legacy sighash")
                        .to_byte_array()
                } else if prev.script_pubkey == self.p2wpkh() {
                    cache
                        .p2wpkh_signature_hash(
                            i,
                            &prev.script_pubkey,
                            prev.value,
                            EcdsaSighashType::All,
                        )
                        .expect("segwit sighash")
                        .to_byte_array()
                } else {
                    panic!("input {i} does not pay this key: {:?}", prev.script_pubkey)
                };
                let sig = secp.sign_ecdsa(&Message::from_digest(sighash), &self.secret);
                sigs.push(bitcoin::ecdsa::Signature {
                    signature: sig,
                    sighash_type: EcdsaSighashType::All,
                });
            }
        }
        for (i, (_, prev)) in inputs.iter().enumerate() {
            if prev.script_pubkey == self.p2pkh() {
                tx.input[i].script_sig = bitcoin::script::Builder::new()
                    .push_slice(sigs[i].serialize())
                    .push_key(&self.public)
                    .into_script();
            } else {
                tx.input[i].witness = Witness::p2wpkh(&sigs[i], &self.public.inner);
            }
        }
        tx
    }
}

/// Output `vout` of `tx` as an input for [`Key::spend`].
fn coin(tx: &Transaction, vout: u32) -> (OutPoint, TxOut) {
    (
        OutPoint::new(tx.compute_txid(), vout),
        tx.output[vout as usize].clone(),
    )
}

const FEE: Amount = Amount::from_sat(10_000);

fn txids(v: &[String]) -> Vec<Txid> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

// --- (a) strand syncs from bcoin -------------------------------------------

#[test]
fn strand_syncs_a_chain_mined_by_bcoin_and_follows_it() {
    let bcoin = Bcoin::start();
    let key = Key::new(1);
    let mined = bcoin.rpc("generatetoaddress", json!([150, key.bcoin_address()]));
    assert_eq!(mined.as_array().unwrap().len(), 150);
    let tip = bcoin.best();

    let connect = bcoin.p2p.to_string();
    let strand = Strand::start(&["--connect", &connect]);
    assert!(
        wait_until(Duration::from_secs(120), || strand.best() == tip),
        "strand did not reach bcoin's tip {tip} (strand at {:?})\n{}",
        strand.try_rpc("getblockcount", json!([])),
        logs(&bcoin, &strand)
    );
    assert_eq!(strand.rpc("getblockcount", json!([])), json!(150));
    // bcoin's coinbases pay the test key (same script, other address format).
    let b1 = strand.block(mined[0].as_str().unwrap());
    assert_eq!(b1.txdata[0].output[0].script_pubkey, key.p2pkh());

    // New blocks are announced and followed.
    let more = bcoin.rpc("generatetoaddress", json!([3, key.bcoin_address()]));
    let new_tip = more[2].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(60), || strand.best() == new_tip),
        "strand did not follow bcoin's new blocks to {new_tip}\n{}",
        logs(&bcoin, &strand)
    );
    assert_eq!(
        bcoin
            .rpc("getpeerinfo", json!([]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// --- (c) mempools: bcoin -> strand and strand -> bcoin ----------------------

#[test]
fn transactions_cross_between_bcoin_and_strand_mempools() {
    let bcoin = Bcoin::start();
    let key = Key::new(2);
    let mined = bcoin.rpc("generatetoaddress", json!([105, key.bcoin_address()]));
    let tip = mined[104].as_str().unwrap().to_string();
    let connect = bcoin.p2p.to_string();
    let strand = Strand::start(&["--connect", &connect]);
    assert!(
        wait_until(Duration::from_secs(120), || strand.best() == tip),
        "strand did not sync bcoin's chain\n{}",
        logs(&bcoin, &strand)
    );
    let coinbase = |h: usize| strand.block(mined[h].as_str().unwrap()).txdata[0].clone();

    // bcoin -> strand: a P2PKH spend of bcoin's first coinbase, split in two.
    let cb1 = coinbase(0);
    let half = (cb1.output[0].value - FEE) / 2;
    let tx1 = key.spend(
        &[coin(&cb1, 0)],
        vec![
            TxOut {
                value: half,
                script_pubkey: key.p2pkh(),
            },
            TxOut {
                value: half,
                script_pubkey: key.p2wpkh(),
            },
        ],
    );
    let txid1 = bcoin.rpc("sendrawtransaction", json!([serialize_hex(&tx1)]));
    assert_eq!(txid1, json!(tx1.compute_txid().to_string()));
    assert!(
        wait_until(Duration::from_secs(30), || txids(&strand.mempool())
            .contains(&tx1.compute_txid())),
        "transaction sent to bcoin did not reach strand's mempool\n{}",
        logs(&bcoin, &strand)
    );

    // strand -> bcoin: a spend of another coinbase.
    let cb2 = coinbase(1);
    let tx2 = key.spend(
        &[coin(&cb2, 0)],
        vec![TxOut {
            value: cb2.output[0].value - FEE,
            script_pubkey: key.p2pkh(),
        }],
    );
    let txid2 = strand.rpc("sendrawtransaction", json!([serialize_hex(&tx2)]));
    assert_eq!(txid2, json!(tx2.compute_txid().to_string()));
    assert!(
        wait_until(Duration::from_secs(30), || txids(&bcoin.mempool())
            .contains(&tx2.compute_txid())),
        "transaction sent to strand did not reach bcoin's mempool\n{}",
        logs(&bcoin, &strand)
    );

    // A child of tx1 sent to strand reaches bcoin too (it has the parent).
    let tx3 = key.spend(
        &[coin(&tx1, 0)],
        vec![TxOut {
            value: half - FEE,
            script_pubkey: key.p2pkh(),
        }],
    );
    strand.rpc("sendrawtransaction", json!([serialize_hex(&tx3)]));
    assert!(
        wait_until(Duration::from_secs(30), || txids(&bcoin.mempool())
            .contains(&tx3.compute_txid())),
        "child transaction sent to strand did not reach bcoin's mempool\n{}",
        logs(&bcoin, &strand)
    );

    // bcoin mines them all; strand follows and empties its mempool.
    let block = bcoin.rpc("generatetoaddress", json!([1, key.bcoin_address()]));
    let hash = block[0].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(60), || strand.best() == hash),
        "strand did not follow bcoin's block with the transactions\n{}",
        logs(&bcoin, &strand)
    );
    let got = strand.block(&hash);
    for tx in [&tx1, &tx2, &tx3] {
        assert!(got.txdata.contains(tx), "{} not mined", tx.compute_txid());
    }
    assert!(wait_until(Duration::from_secs(10), || strand
        .mempool()
        .is_empty()));
}

// --- (b) bcoin syncs from strand --------------------------------------------

/// Block version signalling CSV (bit 0) and segwit (bit 1), so bcoin's BIP9
/// deployments lock in at 288 and activate at 432 (strand ignores the bits).
const SIGNAL: i32 = 0x2000_0003;
/// First height at which bcoin accepts witness data.
const BCOIN_SEGWIT_HEIGHT: u32 = 432;

/// Builds and mines a block on `prev` (at `height - 1`) with header time
/// `time`: no witness before bcoin's segwit height, the BIP141 commitment
/// when needed after.
fn build_block(
    prev: &Block,
    height: u32,
    time: u32,
    txs: Vec<Transaction>,
    fees: Amount,
    pay: &Key,
) -> Block {
    let mut template = BlockTemplate::regtest(prev.block_hash(), height, time, txs, fees);
    template.version = Version::from_consensus(SIGNAL);
    template.witness_commitment = if height < BCOIN_SEGWIT_HEIGHT {
        CommitmentPolicy::Never
    } else {
        CommitmentPolicy::IfWitness
    };
    let mut block = mining::build_block(template, pay.p2pkh()).expect("buildable template");
    assert!(mining::mine(&mut block, 1 << 20), "regtest block mined");
    block
}

/// Gives `strand` a 601-block chain bcoin can accept and returns its tip:
/// heights 1..=441 built here and handed over with `submitblock`, the rest
/// mined by strand's `generatetoaddress`.
fn strand_chain_with_transactions(strand: &Strand, key: &Key) -> String {
    let genesis = strand.block(strand.best().as_str());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;

    // Heights 1..=440 built here and handed to strand with `submitblock`:
    // coinbase-only at first, then signed P2PKH spends (one creating a
    // P2WPKH output, a parent and child in one block, a two-input spend),
    // after 432 a P2WPKH spend.
    let mut chain: Vec<Block> = vec![genesis];
    let first_time = now - 600 * 60;
    let mut pending: Vec<Transaction> = Vec::new();
    let mut created: Vec<Transaction> = Vec::new();
    for height in 1..=440u32 {
        let coinbase = |h: usize, chain: &Vec<Block>| chain[h].txdata[0].clone();
        match height {
            110 => {
                let cb = coinbase(1, &chain);
                let half = (cb.output[0].value - FEE) / 2;
                let parent = key.spend(
                    &[coin(&cb, 0)],
                    vec![
                        TxOut {
                            value: half,
                            script_pubkey: key.p2pkh(),
                        },
                        TxOut {
                            value: half,
                            script_pubkey: key.p2wpkh(),
                        },
                    ],
                );
                let child = key.spend(
                    &[coin(&parent, 0)],
                    vec![TxOut {
                        value: half - FEE,
                        script_pubkey: key.p2pkh(),
                    }],
                );
                pending = vec![parent, child];
            }
            111 => {
                let (a, b) = (coinbase(2, &chain), coinbase(3, &chain));
                let tx = key.spend(
                    &[coin(&a, 0), coin(&b, 0)],
                    vec![TxOut {
                        value: a.output[0].value + b.output[0].value - FEE,
                        script_pubkey: key.p2wpkh(),
                    }],
                );
                pending = vec![tx];
            }
            435 => {
                // Witness spends, now that bcoin enforces segwit.
                let parent = &created[0];
                let multi = &created[2];
                let tx = key.spend(
                    &[coin(parent, 1), coin(multi, 0)],
                    vec![TxOut {
                        value: parent.output[1].value + multi.output[0].value - FEE,
                        script_pubkey: key.p2wpkh(),
                    }],
                );
                pending = vec![tx];
            }
            _ => {}
        }
        let txs = std::mem::take(&mut pending);
        let fees = FEE * txs.len() as u64;
        created.extend(txs.iter().cloned());
        let time = first_time + height * 60;
        let block = build_block(chain.last().unwrap(), height, time, txs, fees, key);
        let result = strand.rpc("submitblock", json!([serialize_hex(&block)]));
        assert!(
            result.is_null(),
            "strand refused test block {height}: {result}"
        );
        chain.push(block);
    }
    // A P2WPKH spend through strand's mempool, mined here (strand's
    // `generatetoaddress` leaves the mempool out, unlike Core's, and its
    // `generateblock` is not wired to the node yet), then two blocks from
    // strand's own miner (with the coinbase witness commitment).
    let tx = key.spend(
        &[coin(&created[3], 0)],
        vec![TxOut {
            value: created[3].output[0].value - FEE,
            script_pubkey: key.p2pkh(),
        }],
    );
    let txid = strand.rpc("sendrawtransaction", json!([serialize_hex(&tx)]));
    assert_eq!(strand.mempool(), vec![txid.as_str().unwrap().to_string()]);
    let block = build_block(
        chain.last().unwrap(),
        441,
        first_time + 441 * 60,
        vec![tx],
        FEE,
        key,
    );
    let result = strand.rpc("submitblock", json!([serialize_hex(&block)]));
    assert!(result.is_null(), "strand refused block 441: {result}");
    assert!(wait_until(Duration::from_secs(10), || strand
        .mempool()
        .is_empty()));
    // More than 500 blocks in all: bcoin's getblocks gets at most 500
    // hashes per inv and goes on from the tip the server announces when the
    // last of them is fetched (Core's hashContinue).
    let mined = strand.rpc("generatetoaddress", json!([160, key.strand_address()]));
    let tip = mined[159].as_str().unwrap().to_string();
    assert_eq!(strand.rpc("getblockcount", json!([])), json!(601));

    tip
}

/// The blocks at heights `1..=tip` of strand's active chain, as hex.
fn strand_blocks_hex(strand: &Strand) -> Vec<String> {
    let height = strand.rpc("getblockcount", json!([])).as_u64().unwrap();
    (1..=height)
        .map(|h| {
            let hash = strand.rpc("getblockhash", json!([h]));
            strand
                .rpc("getblock", json!([hash, 0]))
                .as_str()
                .unwrap()
                .into()
        })
        .collect()
}

#[test]
fn bcoin_accepts_strands_blocks_and_follows_its_announcements() {
    require_bcoin();
    let key = Key::new(4);
    let strand = Strand::start(&[]);
    let tip = strand_chain_with_transactions(&strand, &key);

    // Every block is valid to bcoin (handed over through its RPC, so this
    // checks the blocks, not the P2P sync).
    let bcoin = Bcoin::start();
    for (i, hex) in strand_blocks_hex(&strand).iter().enumerate() {
        let result = bcoin.rpc("submitblock", json!([hex]));
        assert!(
            result.is_null(),
            "bcoin refused strand's block {}: {result}\n{}",
            i + 1,
            tail(&bcoin.log_lines(), 20)
        );
    }
    assert_eq!(bcoin.best(), tip);
    let forks = &bcoin.rpc("getblockchaininfo", json!([]))["bip9_softforks"];
    assert_eq!(forks["segwit"]["status"], "active", "{forks}");
    assert_eq!(forks["csv"]["status"], "active", "{forks}");

    // Connected, bcoin learns strand's next blocks from its announcements
    // (`inv`: bcoin never sends `sendheaders`) and fetches them.
    bcoin.rpc("addnode", json!([strand.node.addr().to_string(), "add"]));
    assert!(
        wait_until(Duration::from_secs(30), || strand
            .rpc("getconnectioncount", json!([]))
            .as_u64()
            == Some(1)),
        "bcoin did not connect to strand\n{}",
        logs(&bcoin, &strand)
    );
    for _ in 0..2 {
        let next = strand.rpc("generatetoaddress", json!([1, key.strand_address()]));
        let next = next[0].as_str().unwrap().to_string();
        assert!(
            wait_until(Duration::from_secs(30), || bcoin.best() == next),
            "bcoin did not follow strand's new block {next}\n{}",
            logs(&bcoin, &strand)
        );
    }
}

#[test]
fn bcoin_syncs_a_chain_with_transactions_from_strand_and_follows_it() {
    require_bcoin();
    let key = Key::new(3);
    let strand = Strand::start(&[]);
    let tip = strand_chain_with_transactions(&strand, &key);

    // bcoin dials strand and must reach the same tip.
    let bcoin = Bcoin::start();
    bcoin.rpc("addnode", json!([strand.node.addr().to_string(), "add"]));
    let synced = wait_progress(
        Duration::from_secs(180),
        Duration::from_secs(30),
        || bcoin.try_rpc("getblockcount", json!([])).ok(),
        || bcoin.try_rpc("getbestblockhash", json!([])).ok() == Some(json!(tip)),
    );
    if !synced {
        let log = bcoin.log_lines();
        let asked = log
            .iter()
            .filter(|l| l.contains("Sending getblocks"))
            .count();
        let hashes = log
            .iter()
            .filter(|l| l.contains("block hashes from peer"))
            .count();
        panic!(
            "bcoin did not sync strand's chain to {tip}: bcoin at height {:?}, no progress \
             for 30 s; bcoin sent {asked} getblocks and got {hashes} inv(s) of block hashes \
             (bcoin syncs with getblocks -> inv -> getdata, never with getheaders)\n{}",
            bcoin.try_rpc("getblockcount", json!([])),
            logs(&bcoin, &strand)
        );
    }

    // A new block from strand is announced to bcoin and followed.
    let next = strand.rpc("generatetoaddress", json!([1, key.strand_address()]));
    let next = next[0].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(60), || bcoin.best() == next),
        "bcoin did not follow strand's new block {next}\n{}",
        logs(&bcoin, &strand)
    );
}

impl ChainRpc for Strand {
    fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|e| panic!("{e}\nstrand log:\n{}", tail(&self.node.log_lines(), 40)))
    }
}
