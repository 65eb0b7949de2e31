//! The values kept in the store ([`IndexEntry`], [`BlockStatus`], [`Coin`],
//! [`BlockUndo`]) and their byte encodings, plus the key layouts of every
//! table. Pure functions, no I/O: used by whichever thread reads or writes
//! (the sync manager encodes into a [`WriteBatch`](super::WriteBatch),
//! readers decode).
//!
//! Decoding never panics: every length is checked and every failure is a
//! [`StoreError::Corrupt`] naming the table and key.
//!
//! # Keys
//!
//! | table | key |
//! |---|---|
//! | `meta` | ASCII names: `magic`, `version`, `tip`, `pruned`, `head_blocks` |
//! | `block_index` (schema 2, what the chain state writes) | index position, `u32` big-endian ([`IndexRecord`]); position ‖ `r` (5 bytes) for the invalid reason, UTF-8 |
//! | `blocks`, `undo` | block hash, 32 bytes, internal byte order (as `BlockHash::as_byte_array`, i.e. reversed from the hex shown by RPC) |
//! | `active_chain` | height, `u32` big-endian (so keys sort by height); no longer written by the chain state, which rebuilds the active chain from the tip |
//! | `utxo` | txid (32 bytes, internal order) ‖ vout `u32` big-endian = 36 bytes (so keys sort by txid, then vout) |
//!
//! # Values
//!
//! Integers in values are little-endian unless stated. `varint` is unsigned
//! LEB128 (7 bits per byte, low group first, high bit = "more"), at most 19
//! bytes (values up to `u128`).
//!
//! * `meta/magic`: the 4 network magic bytes. `meta/version`: `u32`.
//!   `meta/tip`: 32-byte block hash (absent until a tip is set).
//!   `meta/pruned`: one byte, 1, once block data was pruned (absent
//!   before; see `blockdata`). `meta/head_blocks` (Core's
//!   `DB_HEAD_BLOCKS`): new tip hash ‖ old tip hash (64 bytes), present
//!   only while a flush is split over several transactions (the chain
//!   state replays the blocks between them at open; `chain/replay.rs`).
//! * `block_index` records ([`IndexRecord`], schema 2): header (80 bytes,
//!   consensus encoding) ‖ status `u32` ‖ transaction count `u32` = 88
//!   bytes. The hash-keyed [`IndexEntry`] encoding below is schema 1's,
//!   still used by the store's own tests and by nothing else:
//! * `block_index` ([`IndexEntry`], schema 1): header (80 bytes, consensus encoding) ‖
//!   height `u32` ‖ chain work (32 bytes, big-endian 256-bit) ‖ status
//!   `u32` ‖ optionally, when the entry has an invalid reason: length `u16`
//!   ‖ UTF-8 bytes. A value of exactly 120 bytes has no reason.
//! * `active_chain`: 32-byte block hash.
//! * `blocks`: the block in consensus serialization (with witness).
//! * `utxo` ([`Coin`], "compact coin"): `varint(height * 2 + is_coinbase)` ‖
//!   `varint(compress_amount(amount))` ‖ compressed script. The amount and
//!   script compressions are Bitcoin Core's (`CompressAmount`,
//!   `ScriptCompression`) with LEB128 instead of Core's VARINT: script tag 0 =
//!   P2PKH followed by the 20-byte key hash; 1 = P2SH followed by the 20-byte
//!   script hash; 2 or 3 = pay-to-compressed-pubkey followed by the 32-byte
//!   x coordinate (the tag is the key's prefix byte); tags 4 and 5 are
//!   reserved (Core's uncompressed keys, never written here); any other
//!   script is `varint(len + 6)` ‖ raw bytes.
//! * `undo` ([`BlockUndo`]): `varint(count)` ‖ `count` compact coins
//!   (self-delimiting, concatenated).

use bitcoin::block::Header;
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, Txid};

use super::error::{StoreError, Table};

/// Key of `meta`'s network magic.
pub(crate) const META_MAGIC: &[u8] = b"magic";
/// Key of `meta`'s schema version.
pub(crate) const META_VERSION: &[u8] = b"version";
/// Key of `meta`'s best tip.
pub(crate) const META_TIP: &[u8] = b"tip";
/// Key of `meta`'s head-blocks marker (Core's `DB_HEAD_BLOCKS`): present
/// only while a flush is written in several transactions; the value is
/// the new tip's hash ‖ the old (still recorded) tip's hash, 64 bytes.
pub(crate) const META_HEAD_BLOCKS: &[u8] = b"head_blocks";

/// Validation and storage state of a block index entry, as bit flags
/// (Bitcoin Core's `BlockStatus`, simplified to independent bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockStatus(u32);

impl BlockStatus {
    /// No flags.
    pub const NONE: BlockStatus = BlockStatus(0);
    /// The header is valid (proof of work, connects to a known header,
    /// contextual header checks).
    pub const VALID_HEADER: BlockStatus = BlockStatus(1 << 0);
    /// The block body is stored in `blocks`.
    pub const HAVE_DATA: BlockStatus = BlockStatus(1 << 1);
    /// The undo data is stored in `undo`.
    pub const HAVE_UNDO: BlockStatus = BlockStatus(1 << 2);
    /// The body passed context-free and contextual transaction checks
    /// (merkle root, sizes, coinbase...).
    pub const VALID_TRANSACTIONS: BlockStatus = BlockStatus(1 << 3);
    /// The block was fully validated (scripts included) and connected to
    /// the UTXO set at least once.
    pub const VALID_SCRIPTS: BlockStatus = BlockStatus(1 << 4);
    /// The block itself is invalid.
    pub const FAILED: BlockStatus = BlockStatus(1 << 5);
    /// The block descends from an invalid block.
    pub const FAILED_CHILD: BlockStatus = BlockStatus(1 << 6);

    const KNOWN: u32 = (1 << 7) - 1;

    /// The raw bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The flags for `bits`, or `None` if an unknown bit is set.
    pub fn from_bits(bits: u32) -> Option<BlockStatus> {
        (bits & !Self::KNOWN == 0).then_some(BlockStatus(bits))
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: BlockStatus) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: BlockStatus) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: BlockStatus) {
        self.0 &= !other.0;
    }

    /// Whether the block or one of its ancestors is known invalid.
    pub fn is_failed(self) -> bool {
        self.0 & (Self::FAILED.0 | Self::FAILED_CHILD.0) != 0
    }
}

impl std::ops::BitOr for BlockStatus {
    type Output = BlockStatus;
    fn bitor(self, rhs: BlockStatus) -> BlockStatus {
        BlockStatus(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for BlockStatus {
    fn bitor_assign(&mut self, rhs: BlockStatus) {
        self.0 |= rhs.0;
    }
}

/// One entry of the block index: everything known about a block header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The block header.
    pub header: Header,
    /// Height (genesis is 0).
    pub height: u32,
    /// Total work of the chain up to and including this block.
    pub chain_work: Work,
    /// Validation and storage flags.
    pub status: BlockStatus,
    /// Why the block is invalid, when [`BlockStatus::FAILED`] is set
    /// (at most 65,535 bytes are stored; longer reasons are truncated).
    pub invalid_reason: Option<String>,
}

#[cfg(test)]
const INDEX_FIXED_LEN: usize = 80 + 4 + 32 + 4;

/// An unspent transaction output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// Value.
    pub amount: Amount,
    /// Height of the block whose transaction created it.
    pub height: u32,
    /// Whether it was created by a coinbase transaction.
    pub is_coinbase: bool,
    /// Locking script.
    pub script_pubkey: ScriptBuf,
}

/// What is needed to disconnect a block: the coins its inputs spent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockUndo {
    /// The coins spent by the block's inputs, in block order: transactions
    /// in block order, inputs in transaction order; the coinbase (which
    /// spends nothing) contributes nothing. Disconnecting walks this list
    /// backwards.
    pub spent: Vec<Coin>,
}

/// The 36-byte `utxo` key of an outpoint.
pub fn outpoint_key(outpoint: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(outpoint.txid.as_byte_array());
    k[32..].copy_from_slice(&outpoint.vout.to_be_bytes());
    k
}

/// The outpoint of a 36-byte `utxo` key.
pub(crate) fn decode_outpoint_key(key: &[u8]) -> Result<OutPoint, StoreError> {
    if key.len() != 36 {
        return Err(StoreError::corrupt(
            Table::Utxo,
            key,
            format!("key is {} bytes, expected 36", key.len()),
        ));
    }
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&key[..32]);
    let mut vout = [0u8; 4];
    vout.copy_from_slice(&key[32..]);
    Ok(OutPoint {
        txid: Txid::from_byte_array(txid),
        vout: u32::from_be_bytes(vout),
    })
}

/// The `meta/head_blocks` value: (new tip, old tip).
pub(crate) fn decode_head_blocks(bytes: &[u8]) -> Result<(BlockHash, BlockHash), StoreError> {
    let key = META_HEAD_BLOCKS;
    if bytes.len() != 64 {
        return Err(StoreError::corrupt(
            Table::Meta,
            key,
            format!("head blocks are {} bytes, expected 64", bytes.len()),
        ));
    }
    let (new, old) = bytes.split_at(32);
    Ok((
        decode_hash(Table::Meta, key, new)?,
        decode_hash(Table::Meta, key, old)?,
    ))
}

/// The 4-byte big-endian `active_chain` key of a height.
pub fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

/// A 32-byte hash stored as a value or key in `table`.
pub(crate) fn decode_hash(table: Table, key: &[u8], bytes: &[u8]) -> Result<BlockHash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        StoreError::corrupt(
            table,
            key,
            format!("block hash is {} bytes, expected 32", bytes.len()),
        )
    })?;
    Ok(BlockHash::from_byte_array(arr))
}

// ---------------------------------------------------------------------------
// varint

pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A cursor over a value being decoded; errors carry a static reason.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("value truncated");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn varint(&mut self) -> Result<u128, &'static str> {
        let mut v: u128 = 0;
        for i in 0..19 {
            let b = *self.take(1)?.first().ok_or("value truncated")?;
            let group = u128::from(b & 0x7f);
            // The 19th group holds bits 126 and 127 only.
            if i == 18 && group > 3 {
                return Err("varint overflows");
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }

    pub(crate) fn finish(&self) -> Result<(), &'static str> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes")
        }
    }
}

// ---------------------------------------------------------------------------
// amounts and scripts (Bitcoin Core's compressor.cpp)

/// Bitcoin Core's `CompressAmount`, computed in `u128` so no `u64` amount
/// overflows.
pub(crate) fn compress_amount(n: u64) -> u128 {
    if n == 0 {
        return 0;
    }
    let mut n = u128::from(n);
    let mut e = 0u128;
    while n % 10 == 0 && e < 9 {
        n /= 10;
        e += 1;
    }
    if e < 9 {
        let d = n % 10;
        n /= 10;
        1 + (n * 9 + d - 1) * 10 + e
    } else {
        1 + (n - 1) * 10 + 9
    }
}

/// Bitcoin Core's `DecompressAmount`, checked.
pub(crate) fn decompress_amount(x: u128) -> Result<u64, &'static str> {
    const OVERFLOW: &str = "amount overflows";
    if x == 0 {
        return Ok(0);
    }
    let mut x = x - 1;
    let mut e = x % 10;
    x /= 10;
    let mut n = if e < 9 {
        let d = (x % 9) + 1;
        x /= 9;
        x.checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or(OVERFLOW)?
    } else {
        x.checked_add(1).ok_or(OVERFLOW)?
    };
    while e > 0 {
        n = n.checked_mul(10).ok_or(OVERFLOW)?;
        e -= 1;
    }
    u64::try_from(n).map_err(|_| OVERFLOW)
}

const SPECIAL_SCRIPTS: u128 = 6;

fn write_script(out: &mut Vec<u8>, s: &[u8]) {
    // P2PKH: OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG
    if s.len() == 25 && s[..3] == [0x76, 0xa9, 0x14] && s[23..] == [0x88, 0xac] {
        out.push(0);
        out.extend_from_slice(&s[3..23]);
        return;
    }
    // P2SH: OP_HASH160 <20> OP_EQUAL
    if s.len() == 23 && s[..2] == [0xa9, 0x14] && s[22] == 0x87 {
        out.push(1);
        out.extend_from_slice(&s[2..22]);
        return;
    }
    // P2PK with a compressed key: <33: 02|03 x> OP_CHECKSIG
    if s.len() == 35 && s[0] == 0x21 && (s[1] == 2 || s[1] == 3) && s[34] == 0xac {
        out.push(s[1]);
        out.extend_from_slice(&s[2..34]);
        return;
    }
    write_varint(out, s.len() as u128 + SPECIAL_SCRIPTS);
    out.extend_from_slice(s);
}

fn read_script(r: &mut Reader<'_>) -> Result<ScriptBuf, &'static str> {
    let tag = r.varint()?;
    let bytes = match tag {
        0 => {
            let h = r.take(20)?;
            let mut s = Vec::with_capacity(25);
            s.extend_from_slice(&[0x76, 0xa9, 0x14]);
            s.extend_from_slice(h);
            s.extend_from_slice(&[0x88, 0xac]);
            s
        }
        1 => {
            let h = r.take(20)?;
            let mut s = Vec::with_capacity(23);
            s.extend_from_slice(&[0xa9, 0x14]);
            s.extend_from_slice(h);
            s.push(0x87);
            s
        }
        2 | 3 => {
            let x = r.take(32)?;
            let mut s = Vec::with_capacity(35);
            s.push(0x21);
            s.push(tag as u8);
            s.extend_from_slice(x);
            s.push(0xac);
            s
        }
        4 | 5 => return Err("reserved script compression tag"),
        n => {
            let len = usize::try_from(n - SPECIAL_SCRIPTS).map_err(|_| "script too long")?;
            r.take(len)?.to_vec()
        }
    };
    Ok(ScriptBuf::from_bytes(bytes))
}

// ---------------------------------------------------------------------------
// coins

pub(crate) fn write_coin(out: &mut Vec<u8>, coin: &Coin) {
    write_varint(
        out,
        u128::from(coin.height) * 2 + u128::from(coin.is_coinbase),
    );
    write_varint(out, compress_amount(coin.amount.to_sat()));
    write_script(out, coin.script_pubkey.as_bytes());
}

pub(crate) fn read_coin(r: &mut Reader<'_>) -> Result<Coin, &'static str> {
    let code = r.varint()?;
    let height = u32::try_from(code >> 1).map_err(|_| "coin height exceeds 32 bits")?;
    let is_coinbase = code & 1 == 1;
    let amount = Amount::from_sat(decompress_amount(r.varint()?)?);
    let script_pubkey = read_script(r)?;
    Ok(Coin {
        amount,
        height,
        is_coinbase,
        script_pubkey,
    })
}

impl Coin {
    /// The compact encoding stored in `utxo` (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.script_pubkey.len());
        write_coin(&mut out, self);
        out
    }

    /// Decodes [`Coin::encode`]'s output. `key` is only used in the error.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Coin, StoreError> {
        let mut r = Reader::new(bytes);
        read_coin(&mut r)
            .and_then(|c| r.finish().map(|()| c))
            .map_err(|e| StoreError::corrupt(Table::Utxo, key, e))
    }
}

// ---------------------------------------------------------------------------
// undo

impl BlockUndo {
    /// The encoding stored in `undo` (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.spent.len() * 32);
        write_varint(&mut out, self.spent.len() as u128);
        for c in &self.spent {
            write_coin(&mut out, c);
        }
        out
    }

    /// Decodes [`BlockUndo::encode`]'s output. `key` is only used in the
    /// error.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<BlockUndo, StoreError> {
        let corrupt = |e| StoreError::corrupt(Table::Undo, key, e);
        let mut r = Reader::new(bytes);
        let count = r.varint().map_err(corrupt)?;
        // A compact coin takes at least 3 bytes: never trust `count` for
        // the allocation.
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= r.buf.len() / 3)
            .ok_or_else(|| corrupt("coin count exceeds value size"))?;
        let mut spent = Vec::with_capacity(count);
        for _ in 0..count {
            spent.push(read_coin(&mut r).map_err(corrupt)?);
        }
        r.finish().map_err(corrupt)?;
        Ok(BlockUndo { spent })
    }
}

// ---------------------------------------------------------------------------
// index entries

impl IndexEntry {
    /// Schema 1's hash-keyed `block_index` encoding (see the module
    /// docs); only the store's own tests still use it.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_FIXED_LEN);
        out.extend_from_slice(&encode::serialize(&self.header));
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.chain_work.to_be_bytes());
        out.extend_from_slice(&self.status.bits().to_le_bytes());
        if let Some(reason) = &self.invalid_reason {
            let mut end = reason.len().min(u16::MAX as usize);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            out.extend_from_slice(&(end as u16).to_le_bytes());
            out.extend_from_slice(&reason.as_bytes()[..end]);
        }
        out
    }

    #[cfg(test)]
    /// Decodes [`IndexEntry::encode`]'s output. `key` is only used in the
    /// error.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<IndexEntry, StoreError> {
        let corrupt = |e: String| StoreError::corrupt(Table::BlockIndex, key, e);
        let mut r = Reader::new(bytes);
        let fixed = r.take(INDEX_FIXED_LEN).map_err(|e| corrupt(e.into()))?;
        let header: Header =
            encode::deserialize(&fixed[..80]).map_err(|e| corrupt(format!("bad header: {e}")))?;
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&fixed[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let height = u32_at(80);
        let mut work = [0u8; 32];
        work.copy_from_slice(&fixed[84..116]);
        let status = BlockStatus::from_bits(u32_at(116))
            .ok_or_else(|| corrupt(format!("unknown status bits {:#x}", u32_at(116))))?;
        let invalid_reason = if r.buf.is_empty() {
            None
        } else {
            let len = r.take(2).map_err(|e| corrupt(e.into()))?;
            let len = u16::from_le_bytes([len[0], len[1]]) as usize;
            let s = r.take(len).map_err(|e| corrupt(e.into()))?;
            r.finish().map_err(|e| corrupt(e.into()))?;
            Some(
                String::from_utf8(s.to_vec())
                    .map_err(|_| corrupt("invalid reason is not UTF-8".into()))?,
            )
        };
        Ok(IndexEntry {
            header,
            height,
            chain_work: Work::from_be_bytes(work),
            status,
            invalid_reason,
        })
    }
}

// ---------------------------------------------------------------------------
// compact index records (schema 2)

/// Length of an [`IndexRecord`]'s encoding.
pub const INDEX_RECORD_LEN: usize = 80 + 4 + 4;

/// One header of the block index as stored (schema 2): what cannot be
/// recomputed at load. Hash, height, parent, chain work and `nChainTx` are
/// rebuilt from the headers in position order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    /// The block header.
    pub header: Header,
    /// Validation and storage flags.
    pub status: BlockStatus,
    /// Transactions in the block (0 until it was connected).
    pub tx_count: u32,
}

/// The `block_index` key of the record at `pos` (big-endian, so records
/// append in order and LMDB's pages fill completely).
pub fn index_record_key(pos: u32) -> [u8; 4] {
    pos.to_be_bytes()
}

/// The `block_index` key of the invalid reason of the record at `pos`:
/// its record key followed by `r` (sorts right after the record).
pub fn index_reason_key(pos: u32) -> [u8; 5] {
    let mut k = [b'r'; 5];
    k[..4].copy_from_slice(&pos.to_be_bytes());
    k
}

impl IndexRecord {
    /// The stored encoding: header (80 bytes) ‖ status `u32` ‖ transaction
    /// count `u32`.
    pub fn encode(&self) -> [u8; INDEX_RECORD_LEN] {
        let mut out = [0u8; INDEX_RECORD_LEN];
        let header = encode::serialize(&self.header);
        out[..80].copy_from_slice(&header);
        out[80..84].copy_from_slice(&self.status.bits().to_le_bytes());
        out[84..88].copy_from_slice(&self.tx_count.to_le_bytes());
        out
    }

    /// Decodes [`IndexRecord::encode`]'s output. `key` is only used in the
    /// error.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<IndexRecord, StoreError> {
        let corrupt = |e: String| StoreError::corrupt(Table::BlockIndex, key, e);
        if bytes.len() != INDEX_RECORD_LEN {
            return Err(corrupt(format!(
                "index record is {} bytes, expected {INDEX_RECORD_LEN}",
                bytes.len()
            )));
        }
        let (head, rest) = bytes.split_at(80);
        let header: Header =
            encode::deserialize(head).map_err(|e| corrupt(format!("bad header: {e}")))?;
        let mut status = [0u8; 4];
        let mut txs = [0u8; 4];
        for (i, b) in rest.iter().enumerate() {
            match i {
                0..=3 => status[i] = *b,
                _ => txs[i - 4] = *b,
            }
        }
        let bits = u32::from_le_bytes(status);
        let status = BlockStatus::from_bits(bits)
            .ok_or_else(|| corrupt(format!("unknown status bits {bits:#x}")))?;
        Ok(IndexRecord {
            header,
            status,
            tx_count: u32::from_le_bytes(txs),
        })
    }
}
