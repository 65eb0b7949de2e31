//! Block download bookkeeping: which blocks are in flight from which peer,
//! the choice of the next blocks to ask a peer for, and the two download
//! deadlines (Core's `mapBlocksInFlight`, `CNodeState::vBlocksInFlight`,
//! `FindNextBlocksToDownload`, `m_stalling_since`, `m_downloading_since`
//! and `m_block_stalling_timeout` in net_processing.cpp).
//!
//! Owned by the sync-manager thread; nothing here talks to peers. The sync
//! manager asks [`next_blocks`] what to request from a peer, records the
//! requests here, and on its tick asks for the peers past a deadline.
//!
//! As in Core: at most [`MAX_BLOCKS_IN_TRANSIT_PER_PEER`] (16) blocks in
//! flight per peer, each block from one peer at a time, only within a
//! window of blocks ahead of the last block we hold (Core's
//! `BLOCK_DOWNLOAD_WINDOW`, 1,024; `Config::download_window`). When a peer
//! has nothing in flight and cannot be given anything because the window's
//! remaining blocks are all in flight elsewhere, the peer holding the first
//! of them is *stalling* the window; it is disconnected once it has stalled
//! for the stalling timeout (2 s, doubled after each such disconnection up
//! to 64 s, and brought back down by 15 % per connected block). Any block
//! received from it clears its stalling mark. Independently, a peer whose
//! oldest request is older than the base download timeout (10 min, plus
//! half of it per other peer we download from) is disconnected.
//!
//! `notfound` for a block: Core ignores block items of `notfound` (it only
//! frees transaction requests, and never punishes unrequested items), so a
//! peer answering `getdata` with `notfound` holds the block until its
//! download timeout. strand follows btcd here instead: a `notfound` for a
//! block in flight *from that peer* frees the request at once, and that peer
//! is not asked for that block again ([`BlocksInFlight::not_found`],
//! bounded), so another peer gets it on the next request round.
//! Unrequested items are ignored without cost beyond a hash lookup each,
//! and are not punished (Core).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;

use crate::chain::state::ChainState;
use crate::peer::PeerId;

/// Blocks in flight per peer (Core's `MAX_BLOCKS_IN_TRANSIT_PER_PEER`).
pub const MAX_BLOCKS_IN_TRANSIT_PER_PEER: usize = 16;
/// Blocks ahead of the last one we hold that may be requested (Core's
/// `BLOCK_DOWNLOAD_WINDOW`).
pub const BLOCK_DOWNLOAD_WINDOW: usize = 1024;
/// First stalling timeout (Core's `BLOCK_STALLING_TIMEOUT_DEFAULT`).
pub const BLOCK_STALLING_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Most the stalling timeout grows to (Core's `BLOCK_STALLING_TIMEOUT_MAX`).
pub const BLOCK_STALLING_TIMEOUT_MAX: Duration = Duration::from_secs(64);
/// Block hashes remembered per peer as answered with `notfound`; the set is
/// cleared when full (a window's worth).
const MAX_NOT_FOUND_PER_PEER: usize = BLOCK_DOWNLOAD_WINDOW;

/// One peer's download state.
#[derive(Debug)]
struct PeerDownload {
    /// Its requests, oldest first (Core's `vBlocksInFlight`).
    queue: VecDeque<BlockHash>,
    /// Since when its oldest request has been waiting (Core's
    /// `m_downloading_since`).
    downloading_since: Instant,
    /// When it started holding up the download window (Core's
    /// `m_stalling_since`).
    stalling_since: Option<Instant>,
    /// Blocks it answered with `notfound`: not asked from it again.
    not_found: HashSet<BlockHash>,
}

impl PeerDownload {
    fn new(now: Instant) -> PeerDownload {
        PeerDownload {
            queue: VecDeque::new(),
            downloading_since: now,
            stalling_since: None,
            not_found: HashSet::new(),
        }
    }
}

/// Blocks requested and not yet received, per block and per peer.
#[derive(Debug)]
pub struct BlocksInFlight {
    /// Each block in flight, with the peer asked and the block's height.
    by_hash: HashMap<BlockHash, (PeerId, u32)>,
    peers: HashMap<PeerId, PeerDownload>,
    /// Core's `m_block_stalling_timeout`.
    stalling_timeout: Duration,
}

impl Default for BlocksInFlight {
    fn default() -> Self {
        BlocksInFlight {
            by_hash: HashMap::new(),
            peers: HashMap::new(),
            stalling_timeout: BLOCK_STALLING_TIMEOUT_DEFAULT,
        }
    }
}

impl BlocksInFlight {
    /// Blocks in flight from anyone.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The peer `hash` was asked from (Core's `IsBlockRequested`).
    pub fn requester(&self, hash: &BlockHash) -> Option<PeerId> {
        self.by_hash.get(hash).map(|(p, _)| *p)
    }

    /// Blocks in flight from `peer`.
    pub fn count(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |d| d.queue.len())
    }

    /// Heights of the blocks in flight from `peer`, ascending.
    pub fn heights(&self, peer: PeerId) -> Vec<u32> {
        let Some(d) = self.peers.get(&peer) else {
            return Vec::new();
        };
        let mut h: Vec<u32> = d
            .queue
            .iter()
            .filter_map(|b| self.by_hash.get(b).map(|(_, h)| *h))
            .collect();
        h.sort_unstable();
        h
    }

    /// Whether `peer` answered `hash` with `notfound`.
    pub fn peer_lacks(&self, peer: PeerId, hash: &BlockHash) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|d| d.not_found.contains(hash))
    }

    /// Records a request (Core's `BlockRequested`).
    pub fn requested(&mut self, peer: PeerId, hash: BlockHash, height: u32, now: Instant) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        self.by_hash.insert(hash, (peer, height));
        let d = self
            .peers
            .entry(peer)
            .or_insert_with(|| PeerDownload::new(now));
        if d.queue.is_empty() {
            d.downloading_since = now;
        }
        d.queue.push_back(hash);
    }

    /// A block arrived (Core's `RemoveBlockRequest`): frees its request,
    /// whoever it was asked from, and clears the requester's stalling mark.
    /// Returns the peer it was asked from.
    pub fn received(&mut self, hash: &BlockHash, now: Instant) -> Option<PeerId> {
        let (peer, _) = self.by_hash.remove(hash)?;
        if let Some(d) = self.peers.get_mut(&peer) {
            if d.queue.front() == Some(hash) {
                // The oldest request was answered: the next one's clock
                // starts now at the earliest.
                d.downloading_since = d.downloading_since.max(now);
            }
            d.queue.retain(|h| h != hash);
            d.stalling_since = None;
        }
        Some(peer)
    }

    /// `peer` answered `getdata` with `notfound` for these blocks: those in
    /// flight from it are freed and not asked from it again. Returns how
    /// many were freed; other items are ignored.
    pub fn not_found(&mut self, peer: PeerId, hashes: &[BlockHash]) -> usize {
        let mut freed = 0;
        for hash in hashes {
            if self.requester(hash) != Some(peer) {
                continue;
            }
            self.by_hash.remove(hash);
            if let Some(d) = self.peers.get_mut(&peer) {
                d.queue.retain(|h| h != hash);
                if d.not_found.len() >= MAX_NOT_FOUND_PER_PEER {
                    d.not_found.clear();
                }
                d.not_found.insert(*hash);
            }
            freed += 1;
        }
        freed
    }

    /// Forgets `peer` and frees every block in flight from it.
    pub fn remove_peer(&mut self, peer: PeerId) {
        if let Some(d) = self.peers.remove(&peer) {
            for h in d.queue {
                self.by_hash.remove(&h);
            }
        }
    }

    /// Marks `peer` as holding up the window, unless it already is.
    pub fn mark_stalling(&mut self, peer: PeerId, now: Instant) {
        if let Some(d) = self.peers.get_mut(&peer) {
            if d.stalling_since.is_none() {
                log::debug!("stall started peer={peer}");
                d.stalling_since = Some(now);
            }
        }
    }

    /// The current stalling timeout.
    pub fn stalling_timeout(&self) -> Duration {
        self.stalling_timeout
    }

    /// Peers that held up the window longer than the stalling timeout.
    /// The timeout doubles (up to 64 s) when there are any, so that a slow
    /// link of our own does not get every peer disconnected in turn.
    pub fn stallers(&mut self, now: Instant) -> Vec<PeerId> {
        let timeout = self.stalling_timeout;
        let mut out: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, d)| d.stalling_since.is_some_and(|s| now >= s + timeout))
            .map(|(p, _)| *p)
            .collect();
        out.sort_unstable();
        if !out.is_empty() {
            let doubled = (timeout * 2).min(BLOCK_STALLING_TIMEOUT_MAX);
            if doubled != timeout {
                log::debug!("increased stalling timeout temporarily to {doubled:?}");
            }
            self.stalling_timeout = doubled;
        }
        out
    }

    /// A block was connected: a raised stalling timeout decays by 15 %
    /// towards the default (Core's `BlockConnected`).
    pub fn block_connected(&mut self) {
        if self.stalling_timeout > BLOCK_STALLING_TIMEOUT_DEFAULT {
            let secs = (self.stalling_timeout.as_secs_f64() * 0.85).floor();
            self.stalling_timeout =
                Duration::from_secs_f64(secs).max(BLOCK_STALLING_TIMEOUT_DEFAULT);
        }
    }

    /// Peers whose oldest request waited longer than `base` × (1 + 0.5 ×
    /// the other peers we download from): Core's `BLOCK_DOWNLOAD_TIMEOUT_BASE`
    /// and `BLOCK_DOWNLOAD_TIMEOUT_PER_PEER`, `base` being Core's target
    /// spacing (10 min).
    pub fn timed_out(&self, base: Duration, now: Instant) -> Vec<PeerId> {
        let downloading = self.peers.values().filter(|d| !d.queue.is_empty()).count();
        let others = downloading.saturating_sub(1).min(125) as u32;
        let timeout = base + base / 2 * others;
        let mut out: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, d)| !d.queue.is_empty() && now >= d.downloading_since + timeout)
            .map(|(p, _)| *p)
            .collect();
        out.sort_unstable();
        out
    }
}

/// What [`next_blocks`] found for a peer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NextBlocks {
    /// Blocks to request, with their heights, in chain order.
    pub blocks: Vec<(BlockHash, u32)>,
    /// The peer holding the window's first block in flight, when nothing
    /// could be found for this peer only because the window is exhausted
    /// (Core's `nodeStaller`).
    pub staller: Option<PeerId>,
}

/// Core's `FindNextBlocksToDownload` along our best header chain: up to
/// `count` blocks `peer` has (its announced best header `best_known`
/// descends from them), that we neither hold nor have in flight, within
/// `window` blocks of the last block of the best header chain we have on
/// the active chain.
pub fn next_blocks(
    chain: &ChainState,
    flight: &BlocksInFlight,
    peer: PeerId,
    best_known: &BlockHash,
    count: usize,
    window: usize,
) -> NextBlocks {
    let mut out = NextBlocks::default();
    if count == 0 {
        return out;
    }
    let Some(peer_height) = chain.header_chain_common_height(best_known) else {
        return out;
    };
    let start = chain.download_start();
    let window_end = start.saturating_add(window as u32);
    // One past the window, to notice a window that cannot move.
    let max_height = peer_height.min(window_end.saturating_add(1));
    let mut waiting_for: Option<PeerId> = None;
    for height in start + 1..=max_height {
        let Some(hash) = chain.header_chain_hash(height) else {
            break;
        };
        if chain.have_block(&hash) {
            continue;
        }
        if let Some(p) = flight.requester(&hash) {
            waiting_for.get_or_insert(p);
            continue;
        }
        if height > window_end {
            if out.blocks.is_empty() && waiting_for != Some(peer) {
                out.staller = waiting_for;
            }
            return out;
        }
        if flight.peer_lacks(peer, &hash) {
            continue;
        }
        out.blocks.push((hash, height));
        if out.blocks.len() >= count {
            return out;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn h(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    #[test]
    fn received_block_frees_request_and_clears_stalling() {
        let mut f = BlocksInFlight::default();
        let t = Instant::now();
        f.requested(1, h(1), 1, t);
        f.requested(1, h(2), 2, t);
        f.requested(2, h(2), 2, t); // already in flight: ignored
        assert_eq!(f.count(1), 2);
        assert_eq!(f.count(2), 0);
        f.mark_stalling(1, t);
        assert_eq!(f.received(&h(1), t), Some(1));
        assert_eq!(f.heights(1), vec![2]);
        assert!(f.stallers(t + Duration::from_secs(100)).is_empty());
        f.remove_peer(1);
        assert!(f.is_empty());
    }

    #[test]
    fn stalling_timeout_doubles_to_the_max_and_decays() {
        let mut f = BlocksInFlight::default();
        let t = Instant::now();
        f.requested(7, h(1), 1, t);
        f.mark_stalling(7, t);
        assert!(f.stallers(t + Duration::from_secs(1)).is_empty());
        assert_eq!(f.stallers(t + Duration::from_secs(2)), vec![7]);
        assert_eq!(f.stalling_timeout(), Duration::from_secs(4));
        for _ in 0..10 {
            f.stallers(t + Duration::from_secs(1000));
        }
        assert_eq!(f.stalling_timeout(), BLOCK_STALLING_TIMEOUT_MAX);
        f.block_connected();
        assert_eq!(f.stalling_timeout(), Duration::from_secs(54));
        for _ in 0..100 {
            f.block_connected();
        }
        assert_eq!(f.stalling_timeout(), BLOCK_STALLING_TIMEOUT_DEFAULT);
    }

    #[test]
    fn download_timeout_grows_with_peers_downloading() {
        let mut f = BlocksInFlight::default();
        let t = Instant::now();
        let base = Duration::from_secs(10);
        f.requested(1, h(1), 1, t);
        assert_eq!(f.timed_out(base, t + Duration::from_secs(10)), vec![1]);
        f.requested(2, h(2), 2, t);
        // Two peers downloading: 10 s × (1 + 0.5).
        assert!(f.timed_out(base, t + Duration::from_secs(14)).is_empty());
        assert_eq!(f.timed_out(base, t + Duration::from_secs(15)), vec![1, 2]);
    }

    #[test]
    fn not_found_frees_only_own_requests() {
        let mut f = BlocksInFlight::default();
        let t = Instant::now();
        f.requested(1, h(1), 1, t);
        f.requested(2, h(2), 2, t);
        assert_eq!(f.not_found(1, &[h(1), h(2), h(3)]), 1);
        assert_eq!(f.requester(&h(1)), None);
        assert_eq!(f.requester(&h(2)), Some(2));
        assert!(f.peer_lacks(1, &h(1)));
        assert!(!f.peer_lacks(2, &h(1)));
    }
}
