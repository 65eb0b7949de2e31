//! Deterministic regtest test chains with realistic transactions.
//!
//! This module owns [`ChainBuilder`], which grows a regtest chain from the
//! genesis block, mining each block with [`crate::mining`] and filling it
//! with signed transactions that spend the builder's own outputs: P2PKH
//! (legacy sighash, ECDSA), P2WPKH (BIP143 sighash, ECDSA) and P2TR key-path
//! (BIP341 sighash, Schnorr with the tweaked key). Everything is derived from
//! a seed, so the same calls always give the same blocks. It also builds
//! deliberately invalid variants (bad signatures, double spends, blocks with
//! arbitrary transactions) for tests. It is library code with no threads of
//! its own: it runs on the thread of the test or benchmark that calls it.
//!
//! Compiled only for the crate's own tests and with the `test-util` feature
//! (which the integration tests, benches and examples enable through the
//! self dev-dependency in `Cargo.toml`): an embedder's `strand` has no test
//! code.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::script::{Builder, Instruction, PushBytesBuf};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey, XOnlyPublicKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    absolute, ecdsa, taproot, transaction, Amount, Block, CompressedPublicKey, Network, OutPoint,
    PublicKey, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};

use crate::chain::params::{COINBASE_MATURITY, MEDIAN_TIME_SPAN};
use crate::mining::{self, BlockTemplate};
use crate::util::SplitMix64;

/// Number of keys each builder derives from its seed.
pub const NUM_KEYS: usize = 16;
/// Default spacing between block times, in seconds.
pub const DEFAULT_SPACING: u32 = 600;
/// Outputs are only split while each part stays at least this large.
const MIN_SPLIT: u64 = 100_000;

/// Why a test-data request could not be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestDataError {
    /// A height above the builder's tip was asked for.
    HeightAboveTip {
        /// The height asked for.
        height: u32,
        /// The builder's tip height.
        tip: u32,
    },
    /// The transaction has no input with this index.
    InputIndexOutOfRange(usize),
    /// The input carries no signature to corrupt.
    NoSignature(usize),
    /// The outpoint is not an output of this chain paying to the builder.
    UnknownPrevout(OutPoint),
    /// The spend's inputs cannot pay its outputs.
    InsufficientValue,
    /// Transaction `i` of a custom block is a coinbase.
    CoinbaseInTxs(usize),
    /// The block does not build on the builder's tip.
    NotOnTip,
}

impl fmt::Display for TestDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestDataError::HeightAboveTip { height, tip } => {
                write!(f, "height {height} is above the tip at {tip}")
            }
            TestDataError::InputIndexOutOfRange(i) => write!(f, "no input {i}"),
            TestDataError::NoSignature(i) => write!(f, "input {i} has no signature"),
            TestDataError::UnknownPrevout(o) => {
                write!(f, "outpoint {o} is not a builder output in this chain")
            }
            TestDataError::InsufficientValue => write!(f, "inputs cannot pay the outputs"),
            TestDataError::CoinbaseInTxs(i) => write!(f, "transaction {i} is a coinbase"),
            TestDataError::NotOnTip => write!(f, "block does not build on the tip"),
        }
    }
}

impl std::error::Error for TestDataError {}

/// The output script types the builder pays to and spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// Pay-to-pubkey-hash, spent with a legacy-sighash ECDSA signature.
    P2pkh,
    /// Pay-to-witness-pubkey-hash, spent with a BIP143 ECDSA signature.
    P2wpkh,
    /// Pay-to-taproot, spent by key path with a BIP341 Schnorr signature.
    P2tr,
}

impl OutputKind {
    const ALL: [OutputKind; 3] = [OutputKind::P2pkh, OutputKind::P2wpkh, OutputKind::P2tr];

    /// The kind of a standard output script, if it is one of the three.
    pub fn of(script: &Script) -> Option<OutputKind> {
        if script.is_p2pkh() {
            Some(OutputKind::P2pkh)
        } else if script.is_p2wpkh() {
            Some(OutputKind::P2wpkh)
        } else if script.is_p2tr() {
            Some(OutputKind::P2tr)
        } else {
            None
        }
    }
}

/// One derived key with everything precomputed for signing and paying.
struct Key {
    secret: SecretKey,
    public: PublicKey,
    /// The BIP341-tweaked key pair (no script tree) used for key-path spends.
    tweaked: Keypair,
    /// Output scripts, indexed like [`OutputKind::ALL`].
    scripts: [ScriptBuf; 3],
}

/// The builder's keys, shared by a builder and its forks.
struct Keys {
    secp: Secp256k1<All>,
    keys: Vec<Key>,
    by_script: HashMap<ScriptBuf, (u32, OutputKind)>,
}

impl Keys {
    fn new(seed: u64) -> Keys {
        let secp = Secp256k1::new();
        let mut keys = Vec::with_capacity(NUM_KEYS);
        let mut by_script = HashMap::new();
        for i in 0..NUM_KEYS as u32 {
            let secret = derive_secret(seed, i);
            let public = PublicKey::new(secret.public_key(&secp));
            let tweaked = Keypair::from_secret_key(&secp, &secret)
                .tap_tweak(&secp, None)
                .to_keypair();
            let (output_key, _) = tweaked.x_only_public_key();
            let scripts = [
                ScriptBuf::new_p2pkh(&public.pubkey_hash()),
                ScriptBuf::new_p2wpkh(&CompressedPublicKey(public.inner).wpubkey_hash()),
                ScriptBuf::new_p2tr_tweaked(output_key.dangerous_assume_tweaked()),
            ];
            for (k, kind) in OutputKind::ALL.iter().enumerate() {
                by_script.insert(scripts[k].clone(), (i, *kind));
            }
            keys.push(Key {
                secret,
                public,
                tweaked,
                scripts,
            });
        }
        Keys {
            secp,
            keys,
            by_script,
        }
    }

    fn script(&self, key: u32, kind: OutputKind) -> &ScriptBuf {
        &self.keys[key as usize].scripts[kind as usize]
    }
}

/// `sha256(seed || i || j)` for the first `j` giving a valid secret key
/// (all but a ~2^-128 fraction of hashes are valid, so `j` is almost
/// always 0).
fn derive_secret(seed: u64, i: u32) -> SecretKey {
    let mut j: u32 = 0;
    loop {
        let mut data = Vec::with_capacity(16);
        data.extend_from_slice(&seed.to_le_bytes());
        data.extend_from_slice(&i.to_le_bytes());
        data.extend_from_slice(&j.to_le_bytes());
        let h = sha256::Hash::hash(&data);
        if let Ok(sk) = SecretKey::from_slice(h.as_byte_array()) {
            return sk;
        }
        j = j.wrapping_add(1);
    }
}

/// A small deterministic generator (splitmix64 seeded from `parts`): test
/// data must not depend on an outside RNG.
struct Rng(SplitMix64);

impl Rng {
    fn new(parts: &[u64]) -> Rng {
        let mut data = Vec::with_capacity(parts.len() * 8);
        for p in parts {
            data.extend_from_slice(&p.to_le_bytes());
        }
        let h = sha256::Hash::hash(&data);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_byte_array()[..8]);
        Rng(SplitMix64::new(u64::from_le_bytes(b)))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// An output the builder can spend.
#[derive(Debug, Clone)]
struct Utxo {
    outpoint: OutPoint,
    value: Amount,
    key: u32,
    kind: OutputKind,
}

/// The builder's outputs at its tip.
#[derive(Clone, Default)]
struct Wallet {
    /// Spendable outputs, oldest first (spent first).
    spendable: VecDeque<Utxo>,
    /// Coinbase outputs with their block height, waiting for maturity.
    immature: VecDeque<(u32, Utxo)>,
}

impl Wallet {
    /// Moves coinbase outputs spendable in a block at `height` to the
    /// spendable queue.
    fn mature(&mut self, height: u32) {
        while let Some((h, _)) = self.immature.front() {
            if h + COINBASE_MATURITY > height {
                break;
            }
            if let Some((_, u)) = self.immature.pop_front() {
                self.spendable.push_back(u);
            }
        }
    }

    /// Applies a block at `height` as [`ChainBuilder::next_block`] would
    /// have left the wallet: matured coinbases, then new outputs appended in
    /// block order, then everything spent removed.
    fn apply_block(&mut self, keys: &Keys, block: &Block, height: u32) {
        self.mature(height);
        let mut spent = HashSet::new();
        for (n, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            if n > 0 {
                spent.extend(tx.input.iter().map(|i| i.previous_output));
            }
            for (vout, out) in tx.output.iter().enumerate() {
                let Some(&(key, kind)) = keys.by_script.get(&out.script_pubkey) else {
                    continue;
                };
                let u = Utxo {
                    outpoint: OutPoint::new(txid, vout as u32),
                    value: out.value,
                    key,
                    kind,
                };
                if n == 0 {
                    self.immature.push_back((height, u));
                } else {
                    self.spendable.push_back(u);
                }
            }
        }
        if !spent.is_empty() {
            self.spendable.retain(|u| !spent.contains(&u.outpoint));
            self.immature.retain(|(_, u)| !spent.contains(&u.outpoint));
        }
    }
}

/// Grows a deterministic regtest chain whose blocks carry signed, valid
/// transactions of mixed script types.
///
/// The builder keeps a wallet of its unspent outputs: coinbases become
/// spendable [`COINBASE_MATURITY`] blocks after they were mined; other
/// outputs at once (later transactions in the same block may spend them).
/// Inputs are spent oldest first.
pub struct ChainBuilder {
    keys: Arc<Keys>,
    seed: u64,
    /// 0 for a chain grown from genesis; a distinct value for every fork,
    /// used as the coinbase extra nonce and to vary the transactions.
    branch: u64,
    forks_made: AtomicU64,
    blocks: Vec<Block>,
    wallet: Wallet,
    first_time: u32,
    spacing: u32,
}

impl ChainBuilder {
    /// A builder at the regtest genesis block with keys derived from
    /// `seed`; block `h` gets time `genesis time + h * 600` (raised past
    /// the median time past if needed).
    pub fn new(seed: u64) -> ChainBuilder {
        let genesis = genesis_block(Network::Regtest);
        let first = genesis.header.time.saturating_add(DEFAULT_SPACING);
        ChainBuilder::with_times(seed, first, DEFAULT_SPACING)
    }

    /// Like [`ChainBuilder::new`], block `h` getting time
    /// `first_block_time + (h - 1) * spacing`. Use a recent
    /// `first_block_time` and a small spacing for chains a node must not
    /// consider stale (or from the future: nodes reject times more than two
    /// hours ahead).
    pub fn with_times(seed: u64, first_block_time: u32, spacing: u32) -> ChainBuilder {
        ChainBuilder {
            keys: Arc::new(Keys::new(seed)),
            seed,
            branch: 0,
            forks_made: AtomicU64::new(0),
            blocks: vec![genesis_block(Network::Regtest)],
            wallet: Wallet::default(),
            first_time: first_block_time,
            spacing,
        }
    }

    /// Every block from genesis (index = height) to the tip.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The block at `height`, if the chain is that long.
    pub fn block(&self, height: u32) -> Option<&Block> {
        self.blocks.get(height as usize)
    }

    /// The tip block.
    pub fn tip(&self) -> &Block {
        // `blocks` always holds at least the genesis block.
        &self.blocks[self.blocks.len() - 1]
    }

    /// The tip height (0 at genesis).
    pub fn height(&self) -> u32 {
        (self.blocks.len() - 1) as u32
    }

    /// Number of outputs the next block may spend (including those that
    /// mature at the next height).
    pub fn spendable_count(&self) -> usize {
        let next = self.height() + 1;
        self.wallet.spendable.len()
            + self
                .wallet
                .immature
                .iter()
                .take_while(|(h, _)| h + COINBASE_MATURITY <= next)
                .count()
    }

    /// Mines the next block on the tip with up to `n_txs` transactions (as
    /// many as the spendable outputs allow: none before height 101), appends
    /// it and returns it.
    ///
    /// Each transaction spends 1 to 5 outputs (oldest first; usually 1 to
    /// 4, 3 to 5 when consolidating over 4,000 outputs) and pays 1 to 4
    /// outputs of random type and key, with a fee of
    /// `1000 + 200 * inputs + 50 * outputs` satoshis; while outputs are
    /// scarce it fans out (one input, three or four outputs). The coinbase
    /// pays subsidy plus fees to a P2PKH, P2WPKH or P2TR output in turn.
    pub fn next_block(&mut self, n_txs: usize) -> Block {
        let height = self.height() + 1;
        let mut rng = Rng::new(&[self.seed, self.branch, u64::from(height)]);
        self.wallet.mature(height);

        let mut txs = Vec::with_capacity(n_txs);
        let mut fees = Amount::ZERO;
        for i in 0..n_txs {
            let pool = self.wallet.spendable.len();
            if pool == 0 {
                break;
            }
            let remaining = (n_txs - i) as u64;
            let (n_in, n_out) = if (pool as u64) < 3 * remaining {
                (1, rng.range(3, 4))
            } else if pool > 4000 {
                (rng.range(3, 5), rng.range(1, 2))
            } else {
                (rng.range(1, 4), rng.range(1, 4))
            };
            let n_in = (n_in as usize).min(pool);
            let inputs: Vec<Utxo> = self.wallet.spendable.drain(..n_in).collect();
            let (tx, fee) = self.make_tx(&mut rng, inputs, n_out);
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                if let Some(&(key, kind)) = self.keys.by_script.get(&out.script_pubkey) {
                    self.wallet.spendable.push_back(Utxo {
                        outpoint: OutPoint::new(txid, vout as u32),
                        value: out.value,
                        key,
                        kind,
                    });
                }
            }
            fees += fee;
            txs.push(tx);
        }

        let kind = OutputKind::ALL[height as usize % 3];
        let key = height % NUM_KEYS as u32;
        let block = self.mine_on_tip(txs, fees, self.keys.script(key, kind).clone());
        let coinbase = &block.txdata[0];
        self.wallet.immature.push_back((
            height,
            Utxo {
                outpoint: OutPoint::new(coinbase.compute_txid(), 0),
                value: coinbase.output[0].value,
                key,
                kind,
            },
        ));
        self.blocks.push(block.clone());
        block
    }

    /// Builds and signs one transaction spending `inputs` into `n_out`
    /// outputs. Returns it with its fee.
    fn make_tx(&self, rng: &mut Rng, inputs: Vec<Utxo>, n_out: u64) -> (Transaction, Amount) {
        let total: u64 = inputs.iter().map(|u| u.value.to_sat()).sum();
        let mut n_out = n_out;
        let mut fee = 1000 + 200 * inputs.len() as u64 + 50 * n_out;
        while n_out > 1 && total < fee + n_out * MIN_SPLIT {
            n_out -= 1;
            fee -= 50;
        }
        if fee >= total {
            // Only dust left: give half of it as fee.
            fee = total / 2;
        }
        let avail = total - fee;
        let share = avail / n_out;
        let mut output = Vec::with_capacity(n_out as usize);
        let mut paid = 0;
        for k in 0..n_out {
            // Each of the first outputs gets 0.75..1.25 shares, so with at
            // most four outputs the last one still gets at least a quarter.
            let value = if k + 1 == n_out {
                avail - paid
            } else {
                share * 3 / 4 + rng.next() % (share / 2 + 1)
            };
            paid += value;
            let kind = OutputKind::ALL[(rng.next() % 3) as usize];
            let key = (rng.next() % NUM_KEYS as u64) as u32;
            output.push(TxOut {
                value: Amount::from_sat(value),
                script_pubkey: self.keys.script(key, kind).clone(),
            });
        }
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|u| TxIn {
                    previous_output: u.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output,
        };
        sign_tx(&self.keys, &mut tx, &inputs);
        (tx, Amount::from_sat(fee))
    }

    /// Builds and mines a block on the tip with `txs` after a coinbase paying
    /// subsidy + `fees` to `script`.
    fn mine_on_tip(&self, txs: Vec<Transaction>, fees: Amount, script: ScriptBuf) -> Block {
        let height = self.height() + 1;
        let start = self.blocks.len().saturating_sub(MEDIAN_TIME_SPAN as usize);
        let prev_times: Vec<u32> = self.blocks[start..].iter().map(|b| b.header.time).collect();
        let now = self
            .first_time
            .saturating_add((height - 1).saturating_mul(self.spacing));
        let mut template = BlockTemplate::regtest(
            self.tip().block_hash(),
            height,
            mining::next_block_time(&prev_times, now),
            txs,
            fees,
        );
        template.extra_nonce = self.branch;
        // Cannot fail: the height is at most a few million (far below
        // i32::MAX), fees come from outputs of this chain so subsidy + fees
        // stays below 21 million BTC, and the builder never puts a coinbase
        // among `txs` it builds (callers of `block_with_txs` get a typed
        // error before this).
        let mut block = mining::build_block(template, script)
            .expect("invariant: builder templates are always buildable");
        // At the regtest target each try succeeds with probability ~1/2;
        // 2^64 tries cannot all fail.
        let found = mining::mine(&mut block, u64::MAX);
        debug_assert!(found);
        block
    }

    /// A builder continuing from the block at `height` of this chain, with
    /// the wallet it had there. Its blocks differ from this builder's (a
    /// distinct coinbase extra nonce and transaction choice), so the two
    /// builders grow competing branches sharing blocks `0..=height`. Each
    /// call gives a different branch, deterministically.
    pub fn fork_at(&self, height: u32) -> Result<ChainBuilder, TestDataError> {
        if height > self.height() {
            return Err(TestDataError::HeightAboveTip {
                height,
                tip: self.height(),
            });
        }
        let n = self.forks_made.fetch_add(1, Ordering::Relaxed);
        let mut branch = Rng::new(&[self.seed, self.branch, u64::from(height), n]).next();
        if branch == 0 || branch == self.branch {
            branch = branch.wrapping_add(1).max(1);
        }
        let blocks = self.blocks[..=height as usize].to_vec();
        let mut wallet = Wallet::default();
        for (h, b) in blocks.iter().enumerate().skip(1) {
            wallet.apply_block(&self.keys, b, h as u32);
        }
        Ok(ChainBuilder {
            keys: Arc::clone(&self.keys),
            seed: self.seed,
            branch,
            forks_made: AtomicU64::new(0),
            blocks,
            wallet,
            first_time: self.first_time,
            spacing: self.spacing,
        })
    }

    /// A mined block on the tip carrying exactly `txs` (valid or not) after
    /// a coinbase claiming only the subsidy. The builder is not changed;
    /// use [`ChainBuilder::push_block`] to adopt the block.
    pub fn block_with_txs(&self, txs: Vec<Transaction>) -> Result<Block, TestDataError> {
        if let Some(i) = txs.iter().position(|t| t.is_coinbase()) {
            return Err(TestDataError::CoinbaseInTxs(i));
        }
        let height = self.height() + 1;
        let script = self
            .keys
            .script(height % NUM_KEYS as u32, OutputKind::P2wpkh);
        Ok(self.mine_on_tip(txs, Amount::ZERO, script.clone()))
    }

    /// Appends `block` (typically from [`ChainBuilder::block_with_txs`]) as
    /// the new tip and updates the wallet: outputs it spends are dropped,
    /// outputs paying the builder's keys are added. The block is not
    /// validated beyond building on the tip.
    pub fn push_block(&mut self, block: Block) -> Result<(), TestDataError> {
        if block.header.prev_blockhash != self.tip().block_hash() {
            return Err(TestDataError::NotOnTip);
        }
        let height = self.height() + 1;
        let keys = Arc::clone(&self.keys);
        self.wallet.apply_block(&keys, &block, height);
        self.blocks.push(block);
        Ok(())
    }

    /// Outputs the next block may spend, oldest first, with their values.
    pub fn spendable_outputs(&self) -> Vec<(OutPoint, Amount)> {
        let next = self.height() + 1;
        self.wallet
            .spendable
            .iter()
            .chain(
                self.wallet
                    .immature
                    .iter()
                    .take_while(|(h, _)| h + COINBASE_MATURITY <= next)
                    .map(|(_, u)| u),
            )
            .map(|u| (u.outpoint, u.value))
            .collect()
    }

    /// The kind of `script` if it pays one of this builder's keys.
    pub fn owns(&self, script: &Script) -> Option<OutputKind> {
        self.keys.by_script.get(script).map(|&(_, kind)| kind)
    }

    /// A signed transaction spending `prevouts` (outputs of this chain paying
    /// the builder, spent or not: double spends are the point) into
    /// `outputs`. Does not check that the outputs are affordable, so it can
    /// build overspends too.
    pub fn sign_spend(
        &self,
        prevouts: &[OutPoint],
        outputs: Vec<TxOut>,
    ) -> Result<Transaction, TestDataError> {
        let index = self.tx_index();
        let mut inputs = Vec::with_capacity(prevouts.len());
        for op in prevouts {
            let out = index
                .get(&op.txid)
                .and_then(|tx| tx.output.get(op.vout as usize))
                .ok_or(TestDataError::UnknownPrevout(*op))?;
            let &(key, kind) = self
                .keys
                .by_script
                .get(&out.script_pubkey)
                .ok_or(TestDataError::UnknownPrevout(*op))?;
            inputs.push(Utxo {
                outpoint: *op,
                value: out.value,
                key,
                kind,
            });
        }
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: prevouts
                .iter()
                .map(|op| TxIn {
                    previous_output: *op,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs,
        };
        sign_tx(&self.keys, &mut tx, &inputs);
        Ok(tx)
    }

    /// A validly signed transaction conflicting with `tx`: it spends the same
    /// inputs and pays their value, less a 10,000 satoshi fee, to one P2WPKH
    /// output of the builder (so its txid differs from `tx`'s).
    pub fn double_spend(&self, tx: &Transaction) -> Result<Transaction, TestDataError> {
        let prevouts: Vec<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
        let index = self.tx_index();
        let mut total = Amount::ZERO;
        for op in &prevouts {
            let out = index
                .get(&op.txid)
                .and_then(|t| t.output.get(op.vout as usize))
                .ok_or(TestDataError::UnknownPrevout(*op))?;
            total = total
                .checked_add(out.value)
                .ok_or(TestDataError::InsufficientValue)?;
        }
        let value = total
            .checked_sub(Amount::from_sat(10_000))
            .ok_or(TestDataError::InsufficientValue)?;
        let out = TxOut {
            value,
            script_pubkey: self.keys.script(0, OutputKind::P2wpkh).clone(),
        };
        self.sign_spend(&prevouts, vec![out])
    }

    fn tx_index(&self) -> HashMap<Txid, &Transaction> {
        self.blocks
            .iter()
            .flat_map(|b| b.txdata.iter())
            .map(|t| (t.compute_txid(), t))
            .collect()
    }
}

/// Signs every input of `tx`, spending `inputs` (same order), with
/// SIGHASH_ALL (ECDSA) or SIGHASH_DEFAULT (taproot).
fn sign_tx(keys: &Keys, tx: &mut Transaction, inputs: &[Utxo]) {
    enum Sig {
        Legacy(ecdsa::Signature),
        V0(ecdsa::Signature),
        Taproot(taproot::Signature),
    }
    let has_taproot = inputs.iter().any(|u| u.kind == OutputKind::P2tr);
    let prevouts: Vec<TxOut> = if has_taproot {
        inputs
            .iter()
            .map(|u| TxOut {
                value: u.value,
                script_pubkey: keys.script(u.key, u.kind).clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut sigs = Vec::with_capacity(inputs.len());
    {
        let mut cache = SighashCache::new(&*tx);
        for (i, u) in inputs.iter().enumerate() {
            let key = &keys.keys[u.key as usize];
            let script = keys.script(u.key, u.kind);
            // The sighash calls below cannot fail: `i` indexes both `inputs`
            // and `tx.input` (the caller builds one from the other), the
            // script passed for P2WPKH is a P2WPKH script, and `prevouts`
            // holds one output per input whenever a taproot input exists.
            let sig = match u.kind {
                OutputKind::P2pkh => {
                    let h = cache
                        .legacy_signature_hash(i, script, EcdsaSighashType::All.to_u32())
                        .expect("invariant: input index in range");
                    let msg = Message::from_digest(h.to_byte_array());
                    Sig::Legacy(ecdsa::Signature::sighash_all(
                        keys.secp.sign_ecdsa(&msg, &key.secret),
                    ))
                }
                OutputKind::P2wpkh => {
                    let h = cache
                        .p2wpkh_signature_hash(i, script, u.value, EcdsaSighashType::All)
                        .expect("invariant: input index in range, script is p2wpkh");
                    let msg = Message::from_digest(h.to_byte_array());
                    Sig::V0(ecdsa::Signature::sighash_all(
                        keys.secp.sign_ecdsa(&msg, &key.secret),
                    ))
                }
                OutputKind::P2tr => {
                    let h = cache
                        .taproot_key_spend_signature_hash(
                            i,
                            &Prevouts::All(&prevouts),
                            TapSighashType::Default,
                        )
                        .expect("invariant: input index in range, one prevout per input");
                    let msg = Message::from_digest(h.to_byte_array());
                    Sig::Taproot(taproot::Signature {
                        signature: keys.secp.sign_schnorr_no_aux_rand(&msg, &key.tweaked),
                        sighash_type: TapSighashType::Default,
                    })
                }
            };
            sigs.push(sig);
        }
    }
    for ((input, sig), u) in tx.input.iter_mut().zip(sigs).zip(inputs) {
        let key = &keys.keys[u.key as usize];
        match sig {
            Sig::Legacy(s) => {
                input.script_sig = Builder::new()
                    .push_slice(s.serialize())
                    .push_key(&key.public)
                    .into_script();
            }
            Sig::V0(s) => input.witness = Witness::p2wpkh(&s, &key.public.inner),
            Sig::Taproot(s) => input.witness = Witness::p2tr_key_spend(&s),
        }
    }
}

/// Makes input `input_index`'s signature invalid while keeping it well
/// formed: flips one bit inside the signature's `r` value (DER for ECDSA,
/// the first 32 bytes for Schnorr). Works on P2PKH scriptSigs (first push)
/// and on witnesses (first element: P2WPKH and P2TR key path).
pub fn corrupt_signature(tx: &mut Transaction, input_index: usize) -> Result<(), TestDataError> {
    let input = tx
        .input
        .get_mut(input_index)
        .ok_or(TestDataError::InputIndexOutOfRange(input_index))?;
    // Byte 5 is inside `r` for DER (30 len 02 rlen r...) and for Schnorr.
    const FLIP_AT: usize = 5;
    if !input.witness.is_empty() {
        let mut elems: Vec<Vec<u8>> = input.witness.iter().map(|e| e.to_vec()).collect();
        match elems.first_mut() {
            Some(sig) if sig.len() > FLIP_AT => sig[FLIP_AT] ^= 0x01,
            _ => return Err(TestDataError::NoSignature(input_index)),
        }
        input.witness = Witness::from_slice(&elems);
        return Ok(());
    }
    let mut pushes: Vec<Vec<u8>> = Vec::new();
    for ins in input.script_sig.instructions() {
        match ins {
            Ok(Instruction::PushBytes(p)) => pushes.push(p.as_bytes().to_vec()),
            _ => return Err(TestDataError::NoSignature(input_index)),
        }
    }
    match pushes.first_mut() {
        Some(sig) if sig.len() > FLIP_AT => sig[FLIP_AT] ^= 0x01,
        _ => return Err(TestDataError::NoSignature(input_index)),
    }
    let mut b = Builder::new();
    for p in pushes {
        // Same length as the push it came from, so within push limits.
        let p = PushBytesBuf::try_from(p).map_err(|_| TestDataError::NoSignature(input_index))?;
        b = b.push_slice(p);
    }
    input.script_sig = b.into_script();
    Ok(())
}

/// Verifies the signature of input `index` of `tx` spending `prevouts`
/// (one per input, in order) for the three script types the builder uses:
/// checks that the key matches the output script and that the signature
/// verifies against the recomputed sighash. `false` for anything else.
///
/// This is a test oracle for builder output, not a script interpreter.
pub fn verify_input(
    secp: &Secp256k1<All>,
    tx: &Transaction,
    index: usize,
    prevouts: &[TxOut],
) -> bool {
    let (Some(input), Some(prev)) = (tx.input.get(index), prevouts.get(index)) else {
        return false;
    };
    if prevouts.len() != tx.input.len() {
        return false;
    }
    let spk = &prev.script_pubkey;
    let mut cache = SighashCache::new(tx);
    match OutputKind::of(spk) {
        Some(OutputKind::P2pkh) => {
            if !input.witness.is_empty() {
                return false;
            }
            let pushes: Vec<&[u8]> = input
                .script_sig
                .instructions()
                .filter_map(|i| match i {
                    Ok(Instruction::PushBytes(p)) => Some(p.as_bytes()),
                    _ => None,
                })
                .collect();
            let [sig, pk] = pushes[..] else {
                return false;
            };
            let (Ok(sig), Ok(pk)) = (ecdsa::Signature::from_slice(sig), PublicKey::from_slice(pk))
            else {
                return false;
            };
            if ScriptBuf::new_p2pkh(&pk.pubkey_hash()) != *spk {
                return false;
            }
            let Ok(h) = cache.legacy_signature_hash(index, spk, sig.sighash_type.to_u32()) else {
                return false;
            };
            let msg = Message::from_digest(h.to_byte_array());
            secp.verify_ecdsa(&msg, &sig.signature, &pk.inner).is_ok()
        }
        Some(OutputKind::P2wpkh) => {
            if !input.script_sig.is_empty() || input.witness.len() != 2 {
                return false;
            }
            let (Some(sig), Some(pk)) = (input.witness.nth(0), input.witness.nth(1)) else {
                return false;
            };
            let (Ok(sig), Ok(pk)) = (ecdsa::Signature::from_slice(sig), PublicKey::from_slice(pk))
            else {
                return false;
            };
            let Ok(wpkh) = pk.wpubkey_hash() else {
                return false;
            };
            if ScriptBuf::new_p2wpkh(&wpkh) != *spk {
                return false;
            }
            let Ok(h) = cache.p2wpkh_signature_hash(index, spk, prev.value, sig.sighash_type)
            else {
                return false;
            };
            let msg = Message::from_digest(h.to_byte_array());
            secp.verify_ecdsa(&msg, &sig.signature, &pk.inner).is_ok()
        }
        Some(OutputKind::P2tr) => {
            if !input.script_sig.is_empty() || input.witness.len() != 1 {
                return false;
            }
            let Some(sig) = input.witness.nth(0) else {
                return false;
            };
            let (Ok(sig), Ok(key)) = (
                taproot::Signature::from_slice(sig),
                XOnlyPublicKey::from_slice(&spk.as_bytes()[2..34]),
            ) else {
                return false;
            };
            let Ok(h) = cache.taproot_key_spend_signature_hash(
                index,
                &Prevouts::All(prevouts),
                sig.sighash_type,
            ) else {
                return false;
            };
            let msg = Message::from_digest(h.to_byte_array());
            secp.verify_schnorr(&sig.signature, &msg, &key).is_ok()
        }
        None => false,
    }
}

/// `n` headers on `parent` with valid proof of work under `params` (regtest
/// difficulty), one second apart; `tag` (the merkle root's bytes) tells
/// chains on the same parent apart. For header-only tests and benchmarks.
pub fn headers_on(
    params: &crate::chain::ChainParams,
    parent: &bitcoin::block::Header,
    n: usize,
    tag: u8,
) -> Vec<bitcoin::block::Header> {
    use bitcoin::block::{Header, Version};
    let mut prev = *parent;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut h = Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev.block_hash(),
            merkle_root: bitcoin::TxMerkleNode::from_byte_array([tag; 32]),
            time: prev.time + 1,
            bits: params.pow_limit_bits(),
            nonce: i as u32,
        };
        while crate::chain::pow::check_proof_of_work(&h, params).is_err() {
            h.nonce = h.nonce.wrapping_add(0x1_0000);
        }
        out.push(h);
        prev = h;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{check, pow};
    use std::time::Instant;

    /// Replays `blocks` like a validating node would (for what the builder
    /// produces) and panics on the first violation. Returns the number of
    /// inputs verified per output kind.
    fn validate_chain(blocks: &[Block]) -> HashMap<OutputKind, usize> {
        let secp = Secp256k1::new();
        let mut kinds = HashMap::new();
        let genesis = genesis_block(Network::Regtest);
        assert_eq!(blocks[0], genesis);
        // outpoint -> (output, height, is coinbase)
        let mut utxos: HashMap<OutPoint, (TxOut, u32, bool)> = HashMap::new();
        let mut times = vec![genesis.header.time];
        for (h, block) in blocks.iter().enumerate().skip(1) {
            let h = h as u32;
            assert_eq!(
                block.header.prev_blockhash,
                blocks[h as usize - 1].block_hash()
            );
            assert!(block.header.validate_pow(block.header.target()).is_ok());
            assert!(block.check_merkle_root(), "merkle root at {h}");
            assert!(block.check_witness_commitment(), "commitment at {h}");
            assert!(block.header.time > pow::median_time_past(&times));
            times.push(block.header.time);
            let cb = &block.txdata[0];
            assert!(cb.is_coinbase());
            assert!(block.txdata[1..].iter().all(|t| !t.is_coinbase()));
            assert_eq!(mining::coinbase_height(&cb.input[0].script_sig), Some(h));
            let mut fees = Amount::ZERO;
            for tx in &block.txdata[1..] {
                let mut prevouts = Vec::new();
                for input in &tx.input {
                    let (out, ph, is_cb) = utxos
                        .remove(&input.previous_output)
                        .unwrap_or_else(|| panic!("missing or spent input at height {h}"));
                    if is_cb {
                        assert!(h - ph >= COINBASE_MATURITY, "immature spend at {h}");
                    }
                    prevouts.push(out);
                }
                for i in 0..tx.input.len() {
                    assert!(verify_input(&secp, tx, i, &prevouts), "bad sig at {h}");
                    let kind = OutputKind::of(&prevouts[i].script_pubkey).unwrap();
                    *kinds.entry(kind).or_insert(0) += 1;
                }
                let vin: Amount = prevouts.iter().map(|o| o.value).sum();
                let vout: Amount = tx.output.iter().map(|o| o.value).sum();
                assert!(vin >= vout);
                fees += vin - vout;
                let txid = tx.compute_txid();
                for (n, o) in tx.output.iter().enumerate() {
                    utxos.insert(OutPoint::new(txid, n as u32), (o.clone(), h, false));
                }
            }
            let cb_value: Amount = cb.output.iter().map(|o| o.value).sum();
            assert_eq!(cb_value, check::subsidy_at(h, 150) + fees);
            let txid = cb.compute_txid();
            for (n, o) in cb.output.iter().enumerate() {
                utxos.insert(OutPoint::new(txid, n as u32), (o.clone(), h, true));
            }
        }
        kinds
    }

    fn build(seed: u64, blocks: u32, n_txs: usize) -> ChainBuilder {
        let mut b = ChainBuilder::new(seed);
        for _ in 0..blocks {
            b.next_block(n_txs);
        }
        b
    }

    #[test]
    fn chain_of_120_blocks_is_valid() {
        let b = build(7, 120, 25);
        assert_eq!(b.height(), 120);
        assert_eq!(b.blocks().len(), 121);
        assert_eq!(b.tip().block_hash(), b.blocks()[120].block_hash());
        // Nothing to spend until the first coinbase matures at 101.
        assert!(b.blocks()[1..=100].iter().all(|blk| blk.txdata.len() == 1));
        assert_eq!(b.blocks()[101].txdata.len(), 26);
        assert!(b.blocks()[101..].iter().all(|blk| blk.txdata.len() == 26));
        let kinds = validate_chain(b.blocks());
        for k in OutputKind::ALL {
            assert!(kinds.get(&k).copied().unwrap_or(0) > 20, "{k:?}: {kinds:?}");
        }
        // Several inputs and outputs occur.
        let txs: Vec<&Transaction> = b.blocks()[101..]
            .iter()
            .flat_map(|b| &b.txdata[1..])
            .collect();
        assert!(txs.iter().any(|t| t.input.len() >= 2));
        assert!(txs.iter().any(|t| t.output.len() >= 3));
    }

    #[test]
    fn chain_across_halving_is_valid() {
        // Regtest halves at 150: the coinbase check in `validate_chain`
        // uses the halved subsidy from there on.
        let b = build(8, 155, 3);
        validate_chain(b.blocks());
        let cb = &b.blocks()[150].txdata[0];
        assert!(cb.output[0].value < Amount::from_btc(25.1).unwrap());
        assert!(cb.output[0].value >= Amount::from_btc(25.0).unwrap());
    }

    #[test]
    fn builder_is_deterministic_and_seeded() {
        let a = build(1, 103, 5);
        let b = build(1, 103, 5);
        let c = build(2, 103, 5);
        assert_eq!(a.tip().block_hash(), b.tip().block_hash());
        assert_ne!(a.tip().block_hash(), c.tip().block_hash());
    }

    #[test]
    fn fork_shares_prefix_and_diverges() {
        let mut main = build(3, 110, 10);
        let mut fork = main.fork_at(105).unwrap();
        assert_eq!(fork.height(), 105);
        assert_eq!(fork.blocks(), &main.blocks()[..=105]);
        // The rebuilt wallet is the one the main builder had at 105: a
        // replay of the main chain's block 106 from it must match.
        let mut replay = main.fork_at(105).unwrap();
        replay.branch = 0;
        assert_eq!(replay.next_block(10), main.blocks()[106]);

        for _ in 0..8 {
            fork.next_block(10);
        }
        main.next_block(10);
        assert_eq!(fork.height(), 113);
        for h in 106..=111 {
            assert_ne!(fork.blocks()[h].block_hash(), main.blocks()[h].block_hash());
        }
        assert_eq!(
            fork.blocks()[106].header.prev_blockhash,
            main.blocks()[105].block_hash()
        );
        validate_chain(fork.blocks());
        validate_chain(main.blocks());
        // A second fork at the same height is another branch.
        let mut other = main.fork_at(105).unwrap();
        assert_ne!(other.next_block(10), fork.blocks()[106]);
        assert!(main.fork_at(200).is_err());
        // Forking below maturity works too (empty wallet).
        let mut early = main.fork_at(50).unwrap();
        early.next_block(10);
        assert_eq!(early.tip().txdata.len(), 1);
    }

    #[test]
    fn corrupted_signatures_fail_for_each_kind() {
        let b = build(4, 103, 30);
        let secp = Secp256k1::new();
        let mut outs: HashMap<OutPoint, TxOut> = HashMap::new();
        for blk in b.blocks() {
            for tx in &blk.txdata {
                let txid = tx.compute_txid();
                for (n, o) in tx.output.iter().enumerate() {
                    outs.insert(OutPoint::new(txid, n as u32), o.clone());
                }
            }
        }
        let mut seen = HashSet::new();
        for blk in &b.blocks()[101..] {
            for tx in &blk.txdata[1..] {
                let prevouts: Vec<TxOut> = tx
                    .input
                    .iter()
                    .map(|i| outs[&i.previous_output].clone())
                    .collect();
                for i in 0..tx.input.len() {
                    let kind = OutputKind::of(&prevouts[i].script_pubkey).unwrap();
                    assert!(verify_input(&secp, tx, i, &prevouts));
                    let mut bad = tx.clone();
                    corrupt_signature(&mut bad, i).unwrap();
                    assert_ne!(bad.compute_wtxid(), tx.compute_wtxid());
                    assert!(!verify_input(&secp, &bad, i, &prevouts), "{kind:?}");
                    // Other inputs of ECDSA spends are unaffected by a
                    // scriptSig/witness change only if they do not commit
                    // to it; all three sighashes exclude other signatures.
                    for j in (0..tx.input.len()).filter(|&j| j != i) {
                        assert!(verify_input(&secp, &bad, j, &prevouts));
                    }
                    seen.insert(kind);
                }
            }
        }
        assert_eq!(seen.len(), 3);
        let mut tx = b.blocks()[102].txdata[1].clone();
        assert_eq!(
            corrupt_signature(&mut tx, 99),
            Err(TestDataError::InputIndexOutOfRange(99))
        );
        let mut cb = b.tip().txdata[0].clone();
        cb.input[0].witness = Witness::new();
        assert_eq!(
            corrupt_signature(&mut cb, 0),
            Err(TestDataError::NoSignature(0))
        );
    }

    #[test]
    fn double_spend_and_custom_blocks() {
        let mut b = build(5, 102, 6);
        let secp = Secp256k1::new();
        let victim = b.blocks()[102].txdata[2].clone();
        let ds = b.double_spend(&victim).unwrap();
        assert_ne!(ds.compute_txid(), victim.compute_txid());
        assert_eq!(
            ds.input
                .iter()
                .map(|i| i.previous_output)
                .collect::<Vec<_>>(),
            victim
                .input
                .iter()
                .map(|i| i.previous_output)
                .collect::<Vec<_>>()
        );
        let index = b.tx_index();
        let prevouts: Vec<TxOut> = ds
            .input
            .iter()
            .map(|i| index[&i.previous_output.txid].output[i.previous_output.vout as usize].clone())
            .collect();
        for i in 0..ds.input.len() {
            assert!(verify_input(&secp, &ds, i, &prevouts));
        }
        // A block with the double spend (invalid: inputs already spent) is
        // well formed and mined, but the builder does not adopt it.
        let blk = b.block_with_txs(vec![ds]).unwrap();
        assert!(blk.check_merkle_root() && blk.check_witness_commitment());
        assert_eq!(blk.header.prev_blockhash, b.tip().block_hash());
        assert_eq!(b.height(), 102);

        // A valid custom block spending a spendable output can be adopted.
        let (op, value) = b.spendable_outputs()[0];
        let spend = b
            .sign_spend(
                &[op],
                vec![TxOut {
                    value: value - Amount::from_sat(5000),
                    script_pubkey: b.keys.script(1, OutputKind::P2tr).clone(),
                }],
            )
            .unwrap();
        let blk = b.block_with_txs(vec![spend.clone()]).unwrap();
        let stale = blk.clone();
        b.push_block(blk).unwrap();
        assert_eq!(b.push_block(stale), Err(TestDataError::NotOnTip));
        assert!(!b.spendable_outputs().iter().any(|(o, _)| *o == op));
        assert!(b
            .spendable_outputs()
            .iter()
            .any(|(o, _)| *o == OutPoint::new(spend.compute_txid(), 0)));
        b.next_block(6);
        validate_chain_lenient(b.blocks());
        assert_eq!(
            b.sign_spend(&[OutPoint::null()], vec![]),
            Err(TestDataError::UnknownPrevout(OutPoint::null()))
        );
    }

    /// Like `validate_chain` but allowing coinbases that claim less than
    /// subsidy + fees (custom blocks pay the subsidy only).
    fn validate_chain_lenient(blocks: &[Block]) {
        let secp = Secp256k1::new();
        let mut utxos: HashMap<OutPoint, TxOut> = HashMap::new();
        for block in blocks.iter().skip(1) {
            for tx in &block.txdata {
                if !tx.is_coinbase() {
                    let prevouts: Vec<TxOut> = tx
                        .input
                        .iter()
                        .map(|i| utxos.remove(&i.previous_output).expect("unspent input"))
                        .collect();
                    for i in 0..tx.input.len() {
                        assert!(verify_input(&secp, tx, i, &prevouts));
                    }
                }
                let txid = tx.compute_txid();
                for (n, o) in tx.output.iter().enumerate() {
                    utxos.insert(OutPoint::new(txid, n as u32), o.clone());
                }
            }
        }
    }

    /// The benchmark workload: `STRAND_BENCH_BLOCKS` (default 2,000) blocks
    /// of 100 transactions. Run with
    /// `cargo test --lib testdata::tests::bench_chain -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_chain() {
        let n: u32 = std::env::var("STRAND_BENCH_BLOCKS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000);
        let start = Instant::now();
        let mut b = ChainBuilder::new(42);
        let (mut txs, mut ins) = (0usize, 0usize);
        for _ in 0..n {
            let blk = b.next_block(100);
            txs += blk.txdata.len() - 1;
            ins += blk.txdata[1..].iter().map(|t| t.input.len()).sum::<usize>();
        }
        let el = start.elapsed();
        println!(
            "{n} blocks, {txs} txs, {ins} inputs (signatures) in {el:.2?} ({:.1} µs/signature)",
            el.as_micros() as f64 / ins.max(1) as f64
        );
        assert_eq!(b.height(), n);
    }
}
