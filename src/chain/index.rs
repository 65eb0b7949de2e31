//! The block index (Core's `BlockMap` of `CBlockIndex`): every header the
//! node accepted, in a `Vec` addressed by a [`BlockPos`] (a `u32` position,
//! assigned in acceptance order so a parent always precedes its children).
//!
//! Each entry stores its hash once, the header's fields but the previous
//! hash (which is the parent's hash, reached by position), height, parent
//! and skip positions (Core's `pskip` and `GetSkipHeight`: ancestors in
//! O(log n)), chain work in 16 bytes, status and Core's `nChainTx`. The
//! hash→position lookup is an open-addressing table of `u32` positions
//! (8 bytes per entry at its load factor), compared against the entries'
//! hashes and keyed with the node's per-process hasher
//! ([`super::hasher::KeyedState`]). The rare invalid-reason strings live in
//! a side map. About 130 bytes per header in all (a `HashMap` of full
//! entries cost ~465).
//!
//! Owned by [`super::state::ChainState`], so run by the sync-manager
//! thread. Entries are never removed.

use std::collections::HashMap;
use std::hash::BuildHasher;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::{BlockHash, TxMerkleNode};

use super::hasher::KeyedState;
use super::pow;
use crate::store::{BlockStatus, IndexEntry};

/// Position of an entry in the [`BlockIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockPos(pub u32);

/// "No position" (genesis's parent and skip).
const NONE: u32 = u32::MAX;

/// One compact entry (120 bytes).
#[derive(Clone)]
struct Node {
    hash: [u8; 32],
    merkle_root: [u8; 32],
    /// Chain work, low and high 64 bits (no 16-byte alignment).
    work: [u64; 2],
    /// Core's `nChainTx`: transactions in the chain up to and including
    /// this block, 0 until the block was connected.
    chain_tx: u64,
    version: i32,
    time: u32,
    bits: u32,
    nonce: u32,
    height: u32,
    parent: u32,
    skip: u32,
    status: BlockStatus,
}

/// Why an entry could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// The header's parent is not in the index (or the index is empty and
    /// the header is not a genesis).
    UnknownParent(BlockHash),
    /// The index already holds `u32::MAX - 1` entries.
    Full,
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::UnknownParent(h) => write!(f, "parent {h} is not in the block index"),
            IndexError::Full => write!(f, "the block index is full"),
        }
    }
}

impl std::error::Error for IndexError {}

/// Core's `GetSkipHeight`: the height `pskip` points to.
fn skip_height(height: u32) -> u32 {
    fn invert_lowest_one(n: u32) -> u32 {
        n & n.wrapping_sub(1)
    }
    if height < 2 {
        return 0;
    }
    if height & 1 == 1 {
        invert_lowest_one(invert_lowest_one(height - 1)) + 1
    } else {
        invert_lowest_one(height)
    }
}

fn work_to_u128(w: Work) -> u128 {
    let b = w.to_be_bytes();
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 16];
    hi.copy_from_slice(&b[..16]);
    lo.copy_from_slice(&b[16..]);
    if u128::from_be_bytes(hi) != 0 {
        u128::MAX
    } else {
        u128::from_be_bytes(lo)
    }
}

fn u128_to_work(w: u128) -> Work {
    let mut b = [0u8; 32];
    b[16..].copy_from_slice(&w.to_be_bytes());
    Work::from_be_bytes(b)
}

/// Open-addressing hash→position table (linear probing, `u32` slots,
/// [`NONE`] = empty, grown at half full). Keys are not stored: a slot's
/// entry hash is read from the index.
#[derive(Clone)]
struct PosTable {
    slots: Vec<u32>,
    used: usize,
    state: KeyedState,
}

impl PosTable {
    fn new() -> PosTable {
        PosTable {
            slots: vec![NONE; 1024],
            used: 0,
            state: KeyedState::default(),
        }
    }

    fn bucket(&self, hash: &[u8; 32]) -> usize {
        // `slots.len()` is a power of two.
        (self.state.hash_one(hash) as usize) & (self.slots.len() - 1)
    }

    /// Position of `hash`, reading entries' hashes through `hash_of`.
    fn find(&self, hash: &[u8; 32], hash_of: impl Fn(u32) -> Option<[u8; 32]>) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.bucket(hash);
        loop {
            let pos = *self.slots.get(i)?;
            if pos == NONE {
                return None;
            }
            if hash_of(pos).as_ref() == Some(hash) {
                return Some(pos);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `pos` (whose hash is `hash`; not already present).
    fn insert(&mut self, hash: &[u8; 32], pos: u32, hash_of: impl Fn(u32) -> Option<[u8; 32]>) {
        if (self.used + 1) * 2 > self.slots.len() {
            let grown = vec![NONE; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            for p in old.into_iter().filter(|p| *p != NONE) {
                if let Some(h) = hash_of(p) {
                    self.place(&h, p);
                }
            }
        }
        self.place(hash, pos);
        self.used += 1;
    }

    fn place(&mut self, hash: &[u8; 32], pos: u32) {
        let mask = self.slots.len() - 1;
        let mut i = self.bucket(hash);
        while let Some(slot) = self.slots.get_mut(i) {
            if *slot == NONE {
                *slot = pos;
                return;
            }
            i = (i + 1) & mask;
        }
    }
}

/// The block index; see the module docs.
#[derive(Clone)]
pub struct BlockIndex {
    nodes: Vec<Node>,
    table: PosTable,
    reasons: HashMap<u32, String>,
}

impl Default for BlockIndex {
    fn default() -> Self {
        BlockIndex::new()
    }
}

impl BlockIndex {
    /// An empty index.
    pub fn new() -> BlockIndex {
        BlockIndex {
            nodes: Vec::new(),
            table: PosTable::new(),
            reasons: HashMap::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every position, in acceptance order (parents first).
    pub fn positions(&self) -> impl Iterator<Item = BlockPos> {
        (0..self.nodes.len() as u32).map(BlockPos)
    }

    fn node(&self, pos: BlockPos) -> Option<&Node> {
        self.nodes.get(pos.0 as usize)
    }

    /// Position of `hash`.
    pub fn find(&self, hash: &BlockHash) -> Option<BlockPos> {
        let nodes = &self.nodes;
        self.table
            .find(hash.as_byte_array(), |p| {
                nodes.get(p as usize).map(|n| n.hash)
            })
            .map(BlockPos)
    }

    /// Whether `hash` is indexed.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.find(hash).is_some()
    }

    /// Adds `header` (hash `hash`, which the caller computed) with
    /// `status`. Its parent must be indexed, unless the index is empty (a
    /// genesis block). Chain work saturates at `u128::MAX` (mainnet's total
    /// is ~2^95).
    pub fn push(
        &mut self,
        header: &Header,
        hash: BlockHash,
        status: BlockStatus,
    ) -> Result<BlockPos, IndexError> {
        let pos = u32::try_from(self.nodes.len())
            .ok()
            .filter(|p| *p < NONE)
            .ok_or(IndexError::Full)?;
        let proof = work_to_u128(pow::block_proof(header.bits));
        let (height, parent, work) = if self.nodes.is_empty() {
            (0, NONE, proof)
        } else {
            let parent = self
                .find(&header.prev_blockhash)
                .ok_or(IndexError::UnknownParent(header.prev_blockhash))?;
            let p = self
                .node(parent)
                .ok_or(IndexError::UnknownParent(header.prev_blockhash))?;
            let pw = u128::from(p.work[0]) | (u128::from(p.work[1]) << 64);
            (p.height + 1, parent.0, pw.saturating_add(proof))
        };
        let skip = if parent == NONE {
            NONE
        } else {
            self.ancestor(BlockPos(parent), skip_height(height))
                .map_or(NONE, |p| p.0)
        };
        self.nodes.push(Node {
            hash: hash.to_byte_array(),
            merkle_root: header.merkle_root.to_byte_array(),
            work: [work as u64, (work >> 64) as u64],
            chain_tx: 0,
            version: header.version.to_consensus(),
            time: header.time,
            bits: header.bits.to_consensus(),
            nonce: header.nonce,
            height,
            parent,
            skip,
            status,
        });
        let nodes = &self.nodes;
        self.table.insert(hash.as_byte_array(), pos, |p| {
            nodes.get(p as usize).map(|n| n.hash)
        });
        Ok(BlockPos(pos))
    }

    /// Hash of the entry at `pos` (all zeros for a position not in the
    /// index).
    pub fn hash(&self, pos: BlockPos) -> BlockHash {
        self.node(pos)
            .map_or_else(BlockHash::all_zeros, |n| BlockHash::from_byte_array(n.hash))
    }

    /// Height of `pos`.
    pub fn height(&self, pos: BlockPos) -> Option<u32> {
        self.node(pos).map(|n| n.height)
    }

    /// Parent of `pos` (`None` for genesis).
    pub fn parent(&self, pos: BlockPos) -> Option<BlockPos> {
        self.node(pos)
            .map(|n| n.parent)
            .filter(|p| *p != NONE)
            .map(BlockPos)
    }

    /// The header of `pos`, rebuilt (its previous hash read from the
    /// parent).
    pub fn header(&self, pos: BlockPos) -> Option<Header> {
        let n = self.node(pos)?;
        let prev_blockhash = if n.parent == NONE {
            BlockHash::all_zeros()
        } else {
            self.hash(BlockPos(n.parent))
        };
        Some(Header {
            version: Version::from_consensus(n.version),
            prev_blockhash,
            merkle_root: TxMerkleNode::from_byte_array(n.merkle_root),
            time: n.time,
            bits: CompactTarget::from_consensus(n.bits),
            nonce: n.nonce,
        })
    }

    /// Total work of the chain up to `pos`.
    pub fn chain_work(&self, pos: BlockPos) -> Option<Work> {
        self.node(pos)
            .map(|n| u128_to_work(u128::from(n.work[0]) | (u128::from(n.work[1]) << 64)))
    }

    /// Status of `pos`.
    pub fn status(&self, pos: BlockPos) -> Option<BlockStatus> {
        self.node(pos).map(|n| n.status)
    }

    /// Header time of `pos`.
    pub fn time(&self, pos: BlockPos) -> Option<u32> {
        self.node(pos).map(|n| n.time)
    }

    /// Replaces the status of `pos`.
    pub fn set_status(&mut self, pos: BlockPos, status: BlockStatus) {
        if let Some(n) = self.nodes.get_mut(pos.0 as usize) {
            n.status = status;
        }
    }

    /// Core's `nChainTx` of `pos` (0 while unknown).
    pub fn chain_tx(&self, pos: BlockPos) -> u64 {
        self.node(pos).map_or(0, |n| n.chain_tx)
    }

    /// Transactions in block `pos` (0 while unknown): its `nChainTx`
    /// minus its parent's.
    pub fn tx_count(&self, pos: BlockPos) -> u32 {
        let own = self.chain_tx(pos);
        let parent = self.parent(pos).map_or(0, |p| self.chain_tx(p));
        if own == 0 || (parent == 0 && self.parent(pos).is_some()) {
            return 0;
        }
        u32::try_from(own - parent.min(own)).unwrap_or(u32::MAX)
    }

    /// Records that block `pos` has `n` transactions: its `nChainTx`
    /// becomes its parent's plus `n` when the parent's is known (always so
    /// for a block connected on top of the active chain).
    pub fn set_tx_count(&mut self, pos: BlockPos, n: u32) {
        let parent_tx = match self.parent(pos) {
            None => Some(0),
            Some(p) => Some(self.chain_tx(p)).filter(|t| *t > 0),
        };
        if let (Some(base), Some(node)) = (parent_tx, self.nodes.get_mut(pos.0 as usize)) {
            if n > 0 {
                node.chain_tx = base + u64::from(n);
            }
        }
    }

    /// Why `pos` is invalid, if recorded.
    pub fn invalid_reason(&self, pos: BlockPos) -> Option<&str> {
        self.reasons.get(&pos.0).map(String::as_str)
    }

    /// Records (or clears) why `pos` is invalid.
    pub fn set_invalid_reason(&mut self, pos: BlockPos, reason: Option<String>) {
        match reason {
            Some(r) => self.reasons.insert(pos.0, r),
            None => self.reasons.remove(&pos.0),
        };
    }

    /// The entry of `pos` as a value (for callers outside the chain state).
    pub fn entry(&self, pos: BlockPos) -> Option<IndexEntry> {
        let n = self.node(pos)?;
        Some(IndexEntry {
            header: self.header(pos)?,
            height: n.height,
            chain_work: self.chain_work(pos)?,
            status: n.status,
            invalid_reason: self.invalid_reason(pos).map(str::to_owned),
        })
    }

    /// Ancestor of `pos` at `height` (Core's `CBlockIndex::GetAncestor`,
    /// by skip pointers).
    pub fn ancestor(&self, pos: BlockPos, height: u32) -> Option<BlockPos> {
        let mut walk = self.node(pos)?;
        let mut at = pos.0;
        if height > walk.height {
            return None;
        }
        let mut h = walk.height;
        while h > height {
            let skip_h = skip_height(h);
            let skip_prev_h = skip_height(h - 1);
            let take_skip = walk.skip != NONE
                && (skip_h == height
                    || (skip_h > height && !(skip_prev_h + 2 < skip_h && skip_prev_h >= height)));
            if take_skip {
                at = walk.skip;
                h = skip_h;
            } else {
                at = walk.parent;
                h -= 1;
            }
            walk = self.nodes.get(at as usize)?;
        }
        Some(BlockPos(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainParams;

    fn regtest_chain(n: usize) -> Vec<Header> {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        let mut out = vec![genesis];
        out.extend(crate::testdata::headers_on(
            &ChainParams::regtest(),
            &genesis,
            n,
            0,
        ));
        out
    }

    fn index_of(headers: &[Header]) -> BlockIndex {
        let mut idx = BlockIndex::new();
        for h in headers {
            idx.push(h, h.block_hash(), BlockStatus::VALID_HEADER)
                .expect("connects");
        }
        idx
    }

    fn naive_ancestor(idx: &BlockIndex, mut pos: BlockPos, height: u32) -> Option<BlockPos> {
        loop {
            let h = idx.height(pos)?;
            if h == height {
                return Some(pos);
            }
            pos = idx.parent(pos)?;
        }
    }

    #[test]
    fn skip_ancestor_matches_a_naive_walk() {
        let headers = regtest_chain(600);
        let mut idx = index_of(&headers);
        // A branch off height 300, so positions and heights differ.
        let fork = headers[300];
        let branch = crate::testdata::headers_on(&ChainParams::regtest(), &fork, 200, 1);
        for h in &branch {
            idx.push(h, h.block_hash(), BlockStatus::VALID_HEADER)
                .expect("connects");
        }
        let mut checked = 0;
        for pos in idx.positions().step_by(7) {
            let top = idx.height(pos).expect("height");
            for height in (0..=top).step_by(3).chain([top]) {
                assert_eq!(
                    idx.ancestor(pos, height),
                    naive_ancestor(&idx, pos, height),
                    "pos {pos:?} height {height}"
                );
                checked += 1;
            }
            assert_eq!(idx.ancestor(pos, top + 1), None);
        }
        assert!(checked > 10_000);
        // The branch's tip walks back into the main chain.
        let tip = idx.find(&branch[199].block_hash()).expect("indexed");
        assert_eq!(idx.height(tip), Some(500));
        let at_300 = idx.ancestor(tip, 300).expect("ancestor");
        assert_eq!(idx.hash(at_300), headers[300].block_hash());
        let at_301 = idx.ancestor(tip, 301).expect("ancestor");
        assert_eq!(idx.hash(at_301), branch[0].block_hash());
    }

    #[test]
    fn skip_heights_are_core_s() {
        // Core's GetSkipHeight for a few heights.
        assert_eq!(skip_height(0), 0);
        assert_eq!(skip_height(1), 0);
        assert_eq!(skip_height(2), 0);
        assert_eq!(skip_height(3), 1);
        assert_eq!(skip_height(4), 0);
        assert_eq!(skip_height(6), 4);
        assert_eq!(skip_height(7), 1);
        assert_eq!(skip_height(12), 8);
        assert_eq!(skip_height(13), 1);
        assert_eq!(skip_height(15), 9);
        for h in 2..10_000 {
            assert!(skip_height(h) < h);
        }
    }

    #[test]
    fn lookup_grows_and_finds_every_entry() {
        let headers = regtest_chain(5_000);
        let idx = index_of(&headers);
        assert_eq!(idx.len(), 5_001);
        // Grown from 1,024 slots, kept at most half full.
        assert!(idx.table.slots.len() >= 2 * idx.len());
        assert_eq!(idx.table.used, idx.len());
        for (i, h) in headers.iter().enumerate() {
            let pos = idx.find(&h.block_hash()).expect("found");
            assert_eq!(pos, BlockPos(i as u32));
            assert_eq!(idx.header(pos), Some(*h));
            assert_eq!(idx.height(pos), Some(i as u32));
        }
        assert_eq!(idx.find(&BlockHash::all_zeros()), None);
        assert_eq!(idx.find(&BlockHash::from_byte_array([7; 32])), None);
    }

    #[test]
    fn colliding_buckets_probe_to_the_right_entry() {
        // Force every key into one bucket: a table with a single, fixed
        // seed cannot be made to collide on purpose, so probe directly.
        let mut t = PosTable::new();
        let keys: Vec<[u8; 32]> = (0..600u32)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        let hash_of = |p: u32| keys.get(p as usize).copied();
        // Place them all starting from the same bucket by inserting with
        // a table small enough that they wrap around.
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, i as u32, hash_of);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.find(k, hash_of), Some(i as u32));
        }
        // Same bucket, different key: a miss, not a wrong hit.
        let mut other = keys[5];
        other[31] = 1;
        assert_eq!(t.find(&other, hash_of), None);
        // A full cluster: all slots of a tiny table in a row.
        let mut tiny = PosTable {
            slots: vec![NONE; 8],
            used: 0,
            state: KeyedState::default(),
        };
        for (i, k) in keys.iter().take(4).enumerate() {
            tiny.insert(k, i as u32, hash_of);
        }
        assert_eq!(tiny.slots.iter().filter(|s| **s != NONE).count(), 4);
        for (i, k) in keys.iter().take(4).enumerate() {
            assert_eq!(tiny.find(k, hash_of), Some(i as u32));
        }
    }

    #[test]
    fn work_chain_tx_and_errors() {
        let headers = regtest_chain(10);
        let mut idx = index_of(&headers);
        let proof = pow::block_proof(headers[0].bits);
        let tip = BlockPos(10);
        let mut expect = proof;
        for _ in 0..10 {
            expect = expect + proof;
        }
        assert_eq!(idx.chain_work(tip), Some(expect));
        assert_eq!(idx.chain_tx(BlockPos(1)), 0);
        idx.set_tx_count(BlockPos(0), 1);
        idx.set_tx_count(BlockPos(2), 5); // parent's unknown: stays unknown
        assert_eq!(idx.chain_tx(BlockPos(2)), 0);
        idx.set_tx_count(BlockPos(1), 3);
        idx.set_tx_count(BlockPos(2), 5);
        assert_eq!(idx.chain_tx(BlockPos(2)), 9);
        assert_eq!(idx.tx_count(BlockPos(2)), 5);
        assert_eq!(idx.tx_count(BlockPos(0)), 1);
        let orphan = crate::testdata::headers_on(&ChainParams::regtest(), &headers[10], 2, 0);
        assert_eq!(
            idx.push(&orphan[1], orphan[1].block_hash(), BlockStatus::NONE),
            Err(IndexError::UnknownParent(orphan[0].block_hash()))
        );
        assert_eq!(work_to_u128(Work::from_be_bytes([0xff; 32])), u128::MAX);
        assert_eq!(std::mem::size_of::<Node>(), 120);
    }
}
