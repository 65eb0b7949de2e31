//! Signet block solutions (BIP325; Bitcoin Core `signet.cpp`).
//!
//! Owns the check that a signet block is signed by the network's
//! *challenge* script ([`check_signet_block_solution`], Core's
//! `CheckSignetBlockSolution`), the virtual `to_spend` / `to_sign`
//! transactions it verifies ([`SignetTxs`]); the default signet challenge and
//! the network magic a custom challenge implies ([`signet_magic`], Core's
//! `SigNetParams`) are network parameters, defined in [`super::params`] and
//! re-exported here. The solution is a scriptSig and witness serialized in a
//! push starting with [`SIGNET_HEADER`] inside the coinbase's witness
//! commitment output; it signs the block with that push cut back to the
//! header. The script runs through [`super::script::verify_tx_input`], the
//! same verifier the chain uses. Pure functions, called by
//! [`super::check::check_block`] on the chain / sync-manager thread.

use bitcoin::consensus::Decodable;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

use super::error::ValidationError;
use super::merkle;
use super::params::ChainParams;
pub use super::params::{default_challenge, signet_magic, DEFAULT_SIGNET_CHALLENGE};
use super::script;

/// Marks the signet solution push in the witness commitment output.
pub const SIGNET_HEADER: [u8; 4] = [0xec, 0xc7, 0xda, 0xa2];

/// Script flags of the solution check (Core's `BLOCK_SCRIPT_VERIFY_FLAGS`
/// in `signet.cpp`).
pub const SIGNET_SCRIPT_FLAGS: u32 =
    script::VERIFY_P2SH | script::VERIFY_WITNESS | script::VERIFY_DERSIG | script::VERIFY_NULLDUMMY;

/// Appends `data` to `script` as one push with the shortest length prefix
/// (Core's `CScript << std::vector<unsigned char>`, which never uses the
/// small-integer opcodes).
fn push_data(script: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    if n < 0x4c {
        script.push(n as u8);
    } else if n <= 0xff {
        script.extend_from_slice(&[0x4c, n as u8]);
    } else if n <= 0xffff {
        script.push(0x4d);
        script.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        script.push(0x4e);
        script.extend_from_slice(&(n as u32).to_le_bytes());
    }
    script.extend_from_slice(data);
}

/// Core's `FetchAndClearCommitmentSection`: finds the first push longer
/// than `header` that starts with it, returns what follows the header and
/// rewrites `script` with that push cut back to the header. Every other op
/// is re-serialized as Core's `CScript` would (pushes minimally encoded,
/// parsing stops at a truncated push). `None` when there is no such push.
fn fetch_and_clear_commitment_section(header: &[u8], script: &mut ScriptBuf) -> Option<Vec<u8>> {
    let bytes = script.as_bytes();
    let mut replacement = Vec::with_capacity(bytes.len());
    let mut found = None;
    let mut pc = 0;
    while let Ok(Some((op, data))) = merkle::get_op(bytes, &mut pc) {
        if data.is_empty() {
            replacement.push(op);
        } else if found.is_none() && data.len() > header.len() && data.starts_with(header) {
            found = Some(data[header.len()..].to_vec());
            push_data(&mut replacement, header);
        } else {
            push_data(&mut replacement, data);
        }
    }
    if found.is_some() {
        *script = ScriptBuf::from_bytes(replacement);
    }
    found
}

/// The two virtual transactions of a signet block (Core's `SignetTxs`):
/// `to_spend` pays 0 to the challenge and commits to the block (version,
/// previous hash, merkle root without the solution, time); `to_sign` spends
/// it with the block's solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignetTxs {
    /// The challenge output's transaction.
    pub to_spend: Transaction,
    /// The transaction whose input carries the solution.
    pub to_sign: Transaction,
}

impl SignetTxs {
    /// Builds both transactions for `block` under `challenge`; `None` when
    /// the block has no coinbase or no witness commitment, or its solution
    /// does not parse (or has trailing bytes).
    pub fn create(block: &Block, challenge: &[u8]) -> Option<SignetTxs> {
        let mut to_spend = Transaction {
            version: Version(0),
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(vec![0x00]),
                sequence: Sequence::ZERO,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from_bytes(challenge.to_vec()),
            }],
        };
        let mut to_sign = Transaction {
            version: Version(0),
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ZERO,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from_bytes(vec![0x6a]),
            }],
        };

        let mut modified_cb = block.txdata.first()?.clone();
        let pos = merkle::witness_commitment_index(block)?;
        let commitment = &mut modified_cb.output.get_mut(pos)?.script_pubkey;
        // No solution at all is allowed: it lets OP_TRUE be a challenge.
        if let Some(solution) = fetch_and_clear_commitment_section(&SIGNET_HEADER, commitment) {
            let mut cur = solution.as_slice();
            let script_sig = ScriptBuf::consensus_decode(&mut cur).ok()?;
            let witness = Witness::consensus_decode(&mut cur).ok()?;
            if !cur.is_empty() {
                return None;
            }
            to_sign.input[0].script_sig = script_sig;
            to_sign.input[0].witness = witness;
        }

        let mut leaves = Vec::with_capacity(block.txdata.len());
        leaves.push(modified_cb.compute_txid().to_byte_array());
        leaves.extend(
            block
                .txdata
                .iter()
                .skip(1)
                .map(|tx| tx.compute_txid().to_byte_array()),
        );
        let (signet_merkle, _) = merkle::compute_merkle_root(leaves);

        let mut block_data = Vec::with_capacity(72);
        block_data.extend_from_slice(&block.header.version.to_consensus().to_le_bytes());
        block_data.extend_from_slice(block.header.prev_blockhash.as_byte_array());
        block_data.extend_from_slice(&signet_merkle);
        block_data.extend_from_slice(&block.header.time.to_le_bytes());
        let mut script_sig = vec![0x00];
        push_data(&mut script_sig, &block_data);
        to_spend.input[0].script_sig = ScriptBuf::from_bytes(script_sig);
        to_sign.input[0].previous_output = OutPoint::new(to_spend.compute_txid(), 0);
        Some(SignetTxs { to_spend, to_sign })
    }
}

/// Core's `CheckSignetBlockSolution`: `Ok` for networks without a signet
/// challenge and for the genesis block; otherwise the block's solution must
/// satisfy the challenge, or `"bad-signet-blksig"` (a consensus failure of
/// the context-free block check).
pub fn check_signet_block_solution(
    block: &Block,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    let Some(challenge) = params.signet_challenge.as_deref() else {
        return Ok(());
    };
    if block.block_hash() == params.genesis_hash {
        return Ok(());
    }
    let bad = |detail: &str| {
        ValidationError::consensus("bad-signet-blksig").with_detail(format!(
            "signet block signature validation failure ({detail})"
        ))
    };
    let txs = SignetTxs::create(block, challenge).ok_or_else(|| bad("solution parse failure"))?;
    let spent = txs.to_spend.output.clone();
    script::verify_tx_input(&txs.to_sign, 0, &spent, SIGNET_SCRIPT_FLAGS)
        .map_err(|e| bad(&format!("solution invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::check;
    use bitcoin::block::{Header, Version as BlockVersion};
    use bitcoin::consensus::{deserialize, encode};
    use bitcoin::hex::FromHex;
    use bitcoin::p2p::Magic;
    use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
    use bitcoin::sighash::{EcdsaSighashType, SighashCache};
    use bitcoin::{CompactTarget, TxMerkleNode};

    /// The first blocks of the default signet (public chain data; the same
    /// blocks Core's `feature_signet.py` submits).
    const SIGNET_BLOCK_1: &str = "00000020f61eee3b63a380a477a063af32b2bbc97c9ff9f01f2c4225e973988108000000f575c83235984e7dc4afc1f30944c170462e84437ab6f2d52e16878a79e4678bd1914d5fae77031eccf4070001010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff025151feffffff0200f2052a010000001600149243f727dd5343293eb83174324019ec16c2630f0000000000000000776a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf94c4fecc7daa2490047304402205e423a8754336ca99dbe16509b877ef1bf98d008836c725005b3c787c41ebe46022047246e4467ad7cc7f1ad98662afcaf14c115e0095a227c7b05c5182591c23e7e01000120000000000000000000000000000000000000000000000000000000000000000000000000";
    const SIGNET_BLOCK_2: &str = "00000020533b53ded9bff4adc94101d32400a144c54edc5ed492a3b26c63b2d686000000b38fef50592017cfafbcab88eb3d9cf50b2c801711cad8299495d26df5e54812e7914d5fae77031ecfdd0b0001010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff025251feffffff0200f2052a01000000160014fd09839740f0e0b4fc6d5e2527e4022aa9b89dfa0000000000000000776a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf94c4fecc7daa24900473044022031d64a1692cdad1fc0ced69838169fe19ae01be524d831b95fcf5ea4e6541c3c02204f9dea0801df8b4d0cd0857c62ab35c6c25cc47c930630dc7fe723531daa3e9b01000120000000000000000000000000000000000000000000000000000000000000000000000000";

    fn block(hex: &str) -> Block {
        deserialize(&Vec::<u8>::from_hex(hex).unwrap()).unwrap()
    }

    fn with_challenge(challenge: Vec<u8>) -> ChainParams {
        let mut p = ChainParams::signet();
        p.signet_challenge = Some(challenge);
        p
    }

    #[test]
    fn default_magic_and_challenge() {
        assert_eq!(signet_magic(&default_challenge()), Magic::SIGNET);
        assert_eq!(
            ChainParams::signet().signet_challenge,
            Some(default_challenge())
        );
        assert_ne!(signet_magic(&[0x51]), Magic::SIGNET);
    }

    #[test]
    fn real_signet_blocks_verify() {
        let p = ChainParams::signet();
        let b1 = block(SIGNET_BLOCK_1);
        assert_eq!(
            b1.block_hash().to_string(),
            "00000086d6b2636cb2a392d45edc4ec544a10024d30141c9adf4bfd9de533b53"
        );
        check_signet_block_solution(&b1, &p).unwrap();
        check_signet_block_solution(&block(SIGNET_BLOCK_2), &p).unwrap();
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Signet);
        check_signet_block_solution(&genesis, &p).unwrap();
        // No challenge (other networks): nothing to check.
        check_signet_block_solution(&b1, &ChainParams::regtest()).unwrap();

        // Core's feature_signet.py: the same keys as a 2-of-2 refuse it.
        let mut two = default_challenge();
        two[0] = 0x52;
        let e = check_signet_block_solution(&b1, &with_challenge(two)).unwrap_err();
        assert_eq!(e.reason(), "bad-signet-blksig");
        assert!(e.is_permanent());

        // The signature covers the time (and so the rest of the header).
        let mut moved = b1.clone();
        moved.header.time += 1;
        assert_eq!(
            check_signet_block_solution(&moved, &p)
                .unwrap_err()
                .reason(),
            "bad-signet-blksig"
        );
        // ... but not the nonce: the solution is made before mining.
        let mut renonced = b1.clone();
        renonced.header.nonce ^= 1;
        check_signet_block_solution(&renonced, &p).unwrap();
    }

    /// Two keys of a custom 1-of-2 bare multisig challenge.
    pub(crate) struct Signer {
        keys: [SecretKey; 2],
        pub challenge: Vec<u8>,
    }

    impl Signer {
        pub(crate) fn new() -> Signer {
            let secp = Secp256k1::new();
            let keys = [
                SecretKey::from_slice(&[0x11; 32]).unwrap(),
                SecretKey::from_slice(&[0x22; 32]).unwrap(),
            ];
            let mut challenge = vec![0x51];
            for k in &keys {
                let pk = k.public_key(&secp).serialize();
                push_data(&mut challenge, &pk);
            }
            challenge.extend_from_slice(&[0x52, 0xae]);
            Signer { keys, challenge }
        }

        /// Puts a solution by key `key` into `block`'s commitment output.
        pub(crate) fn sign(&self, block: &mut Block, key: usize) {
            // Reserve the section first: the signature covers the block
            // with the section cut back to its header.
            set_solution(block, &[]);
            let txs = SignetTxs::create(block, &self.challenge).unwrap();
            let sighash = SighashCache::new(&txs.to_sign)
                .legacy_signature_hash(
                    0,
                    &txs.to_spend.output[0].script_pubkey,
                    EcdsaSighashType::All.to_u32(),
                )
                .unwrap();
            let secp = Secp256k1::new();
            let msg = Message::from_digest(sighash.to_byte_array());
            let mut sig = secp
                .sign_ecdsa(&msg, &self.keys[key])
                .serialize_der()
                .to_vec();
            sig.push(0x01);
            let mut script_sig = vec![0x00];
            push_data(&mut script_sig, &sig);
            let mut solution = encode::serialize(&ScriptBuf::from_bytes(script_sig));
            solution.extend(encode::serialize(&Witness::new()));
            set_solution(block, &solution);
        }
    }

    /// Replaces (or appends) the signet push of the witness commitment
    /// output and fixes the merkle root.
    pub(crate) fn set_solution(block: &mut Block, solution: &[u8]) {
        let pos = check::witness_commitment_index(block).unwrap();
        let spk = &mut block.txdata[0].output[pos].script_pubkey;
        let mut bytes = spk.as_bytes()[..38].to_vec();
        let mut push = SIGNET_HEADER.to_vec();
        push.extend_from_slice(solution);
        push_data(&mut bytes, &push);
        *spk = ScriptBuf::from_bytes(bytes);
        block.header.merkle_root = check::block_merkle_root(block).0;
    }

    /// A block on the signet genesis with a witness commitment (no PoW).
    fn unsigned_block() -> Block {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Signet);
        let mut cb = check::tests::coinbase(1, 50 * 100_000_000);
        cb.input[0].witness = Witness::from_slice(&[[0u8; 32]]);
        let mut b = Block {
            header: Header {
                version: BlockVersion::from_consensus(0x2000_0000),
                prev_blockhash: genesis.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: genesis.header.time + 600,
                bits: CompactTarget::from_consensus(0x1e03_77ae),
                nonce: 0,
            },
            txdata: vec![cb],
        };
        let root = check::block_witness_merkle_root(&b);
        let c = check::witness_commitment(&root, &[0u8; 32]);
        let mut spk = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        spk.extend_from_slice(&c);
        b.txdata[0].output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(spk),
        });
        b.header.merkle_root = check::block_merkle_root(&b).0;
        b
    }

    #[test]
    fn custom_one_of_two_challenge() {
        let signer = Signer::new();
        let p = with_challenge(signer.challenge.clone());
        for key in [0, 1] {
            let mut b = unsigned_block();
            signer.sign(&mut b, key);
            check_signet_block_solution(&b, &p).unwrap();
            assert!(b.check_merkle_root() && b.check_witness_commitment());
        }

        // Missing solution, empty solution, wrong signature, trailing
        // bytes, no witness commitment: all refused.
        let refused = |b: &Block| {
            check_signet_block_solution(b, &p)
                .unwrap_err()
                .reason()
                .to_string()
        };
        let unsigned = unsigned_block();
        assert_eq!(refused(&unsigned), "bad-signet-blksig");
        let mut empty = unsigned_block();
        set_solution(&mut empty, &[0x00, 0x00]);
        assert_eq!(refused(&empty), "bad-signet-blksig");

        let mut signed = unsigned_block();
        signer.sign(&mut signed, 0);
        let mut other_block = signed.clone();
        other_block.txdata[0].output[0].value -= Amount::from_sat(1);
        other_block.header.merkle_root = check::block_merkle_root(&other_block).0;
        assert_eq!(refused(&other_block), "bad-signet-blksig");

        let mut trailing = signed.clone();
        let pos = check::witness_commitment_index(&trailing).unwrap();
        let push = trailing.txdata[0].output[pos].script_pubkey.as_bytes()[38..].to_vec();
        let mut cur = 0;
        let (_, data) = check::get_op(&push, &mut cur).unwrap().unwrap();
        let mut longer = data[4..].to_vec();
        longer.push(0x00);
        set_solution(&mut trailing, &longer);
        assert!(SignetTxs::create(&trailing, &signer.challenge).is_none());
        assert_eq!(refused(&trailing), "bad-signet-blksig");

        let mut bare = signed.clone();
        bare.txdata[0].output.truncate(1);
        bare.txdata[0].input[0].witness = Witness::new();
        assert_eq!(refused(&bare), "bad-signet-blksig");

        // The signet check is part of the context-free block check, and the
        // default challenge refuses a block signed for the custom one.
        assert!(check_signet_block_solution(&signed, &ChainParams::signet()).is_err());
    }

    #[test]
    fn op_true_challenge_needs_no_solution() {
        let p = with_challenge(vec![0x51]);
        check_signet_block_solution(&unsigned_block(), &p).unwrap();
        let mut b = unsigned_block();
        set_solution(&mut b, &[0x00, 0x00]);
        check_signet_block_solution(&b, &p).unwrap();
    }

    #[test]
    fn commitment_section_is_cut_back_to_its_header() {
        let mut s = vec![0x6a];
        push_data(&mut s, &[0xaa, 0x21, 0xa9, 0xed]);
        push_data(&mut s, &[0xec, 0xc7, 0xda, 0xa2, 1, 2, 3]);
        push_data(&mut s, &[0xec, 0xc7, 0xda, 0xa2, 9]);
        let mut script = ScriptBuf::from_bytes(s);
        let got = fetch_and_clear_commitment_section(&SIGNET_HEADER, &mut script);
        assert_eq!(got, Some(vec![1, 2, 3]));
        let mut want = vec![0x6a];
        push_data(&mut want, &[0xaa, 0x21, 0xa9, 0xed]);
        push_data(&mut want, &SIGNET_HEADER);
        push_data(&mut want, &[0xec, 0xc7, 0xda, 0xa2, 9]);
        assert_eq!(script.as_bytes(), &want[..]);
        // The header alone is no section; nothing changes.
        let mut only = ScriptBuf::from_bytes(vec![0x04, 0xec, 0xc7, 0xda, 0xa2]);
        assert_eq!(
            fetch_and_clear_commitment_section(&SIGNET_HEADER, &mut only),
            None
        );
        assert_eq!(only.len(), 5);
    }
}
