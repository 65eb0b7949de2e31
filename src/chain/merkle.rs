//! Merkle roots, the BIP141 witness commitment and the script-op reader.
//!
//! Owns the only merkle-root formula of the node (Bitcoin Core's
//! `ComputeMerkleRoot`, `BlockMerkleRoot`, `BlockWitnessMerkleRoot`), the
//! witness-commitment output lookup and hash (`GetWitnessCommitmentIndex`),
//! and Core's `GetScriptOp` ([`get_op`]) that the sigop counter, the BIP34
//! check and the signet solution parser scan scripts with. Pure functions
//! below [`super::check`] and [`super::signet`] (which both call them), run
//! on whichever thread calls them (chain / sync-manager, mining).

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Block, TxMerkleNode};

/// The start of the coinbase output script carrying the BIP141 witness
/// commitment: `OP_RETURN`, a 36-byte push, and the magic `aa21a9ed`.
pub const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// Core's `ComputeMerkleRoot`: the root of `leaves` and whether two
/// identical hashes were paired at any level (the CVE-2012-2459 mutation,
/// which lets `[.., a, b, b]` produce the same root as `[.., a, b]`).
pub fn compute_merkle_root(mut hashes: Vec<[u8; 32]>) -> ([u8; 32], bool) {
    let mut mutated = false;
    while hashes.len() > 1 {
        for pair in hashes.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        if hashes.len() % 2 == 1 {
            if let Some(last) = hashes.last().copied() {
                hashes.push(last);
            }
        }
        hashes = hashes
            .chunks_exact(2)
            .map(|pair| {
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&pair[0]);
                buf[32..].copy_from_slice(&pair[1]);
                sha256d::Hash::hash(&buf).to_byte_array()
            })
            .collect();
    }
    (hashes.first().copied().unwrap_or([0; 32]), mutated)
}

/// The transaction merkle root of `block` and whether it is mutated (Core
/// `BlockMerkleRoot`).
pub fn block_merkle_root(block: &Block) -> (TxMerkleNode, bool) {
    let leaves = block
        .txdata
        .iter()
        .map(|tx| tx.compute_txid().to_byte_array())
        .collect();
    let (root, mutated) = compute_merkle_root(leaves);
    (TxMerkleNode::from_byte_array(root), mutated)
}

/// The witness merkle root (coinbase wtxid replaced by zeros; Core
/// `BlockWitnessMerkleRoot`).
pub fn block_witness_merkle_root(block: &Block) -> [u8; 32] {
    let leaves = block
        .txdata
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            if i == 0 {
                [0u8; 32]
            } else {
                tx.compute_wtxid().to_byte_array()
            }
        })
        .collect();
    compute_merkle_root(leaves).0
}

/// Index of the coinbase output holding the witness commitment: the last
/// output whose script starts `OP_RETURN 0x24 aa21a9ed` and is at least 38
/// bytes (Core `GetWitnessCommitmentIndex`).
pub fn witness_commitment_index(block: &Block) -> Option<usize> {
    let coinbase = block.txdata.first()?;
    coinbase
        .output
        .iter()
        .enumerate()
        .rev()
        .find(|(_, out)| {
            let s = out.script_pubkey.as_bytes();
            s.len() >= 38 && s.starts_with(&WITNESS_COMMITMENT_HEADER)
        })
        .map(|(i, _)| i)
}

/// The 32-byte witness commitment for `witness_root` and the coinbase's
/// reserved value: `SHA256d(witness_root || reserved)`.
pub fn witness_commitment(witness_root: &[u8; 32], reserved: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(32 + reserved.len());
    buf.extend_from_slice(witness_root);
    buf.extend_from_slice(reserved);
    sha256d::Hash::hash(&buf).to_byte_array()
}

/// One step of Core's `GetScriptOp`: `Ok(None)` at the end, `Err(())` on a
/// truncated push, otherwise the opcode and its push data.
#[allow(clippy::result_unit_err)]
pub(crate) fn get_op<'a>(s: &'a [u8], pc: &mut usize) -> Result<Option<(u8, &'a [u8])>, ()> {
    let Some(&op) = s.get(*pc) else {
        return Ok(None);
    };
    *pc += 1;
    if op > 0x4e {
        return Ok(Some((op, &[])));
    }
    let len = match op {
        0x4c => {
            let n = *s.get(*pc).ok_or(())? as usize;
            *pc += 1;
            n
        }
        0x4d => {
            let b = s.get(*pc..*pc + 2).ok_or(())?;
            *pc += 2;
            u16::from_le_bytes([b[0], b[1]]) as usize
        }
        0x4e => {
            let b = s.get(*pc..*pc + 4).ok_or(())?;
            *pc += 4;
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        }
        n => n as usize,
    };
    let end = pc.checked_add(len).ok_or(())?;
    let data = s.get(*pc..end).ok_or(())?;
    *pc = end;
    Ok(Some((op, data)))
}
