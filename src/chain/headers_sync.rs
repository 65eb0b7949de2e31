//! Headers pre-sync: download a peer's low-work header chain twice before
//! storing any of it (Bitcoin Core's `HeadersSyncState`, `headerssync.cpp`).
//!
//! A header chain that connects to our block index but whose total work
//! stays below the anti-DoS threshold ([`anti_dos_work_threshold`], Core's
//! `GetAntiDoSWorkThreshold`: the larger of the network's minimum chain work
//! and our tip's work minus 144 blocks of it) is not stored: storing it
//! would let anyone fill memory and disk with cheap headers. Instead:
//!
//! * **PRESYNC**: each header is checked with what needs no storage —
//!   continuity, proof of work against its own `nBits`, permitted
//!   difficulty transitions (Core's `PermittedDifficultyTransition`), and
//!   (strand's addition, O(1) memory) a timestamp above the median of the
//!   previous 11 — and its work is added up. One bit of a salted hash of
//!   the header is kept for every [`HeadersSyncParams::commitment_period`]
//!   headers, at a secret random offset. The number of commitments is
//!   capped by the longest chain the median-time-past rule allows since the
//!   fork point (6 blocks a second, Core's bound), so per-peer memory is
//!   O(commitments): at most about 0.66 MB on mainnet (in 2026).
//! * **REDOWNLOAD**, once the work reaches the threshold: the same headers
//!   are asked for again from the fork point, checked against the
//!   commitments and held in a buffer of
//!   [`HeadersSyncParams::redownload_buffer_size`] compressed headers
//!   (48 bytes each); only headers with that many verified headers on top
//!   of them (or all of them once the redownloaded chain itself reaches the
//!   threshold) are handed back for normal validation and storage.
//! * **FINAL**: done or aborted; all memory released.
//!
//! Core's numbers per network (v31 `kernel/chainparams.cpp`
//! `HeadersSyncParams`) are in [`HeadersSyncParams::for_network`]. The
//! module knows nothing of peers or the network: it is pure over headers,
//! consensus parameters and the time the caller passes in, and runs on the
//! sync-manager thread, one state per peer.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Work};
use bitcoin::{BlockHash, TxMerkleNode};

use super::params::{ChainParams, MAX_FUTURE_BLOCK_TIME, MEDIAN_TIME_SPAN};
use super::pow;

/// Blocks of our tip's work subtracted from its chain work to get the
/// anti-DoS threshold, so headers forking near the tip are always accepted
/// (Core's `GetAntiDoSWorkThreshold`: "a 144 block buffer").
pub const ANTI_DOS_TIP_BUFFER_BLOCKS: u32 = 144;

/// The fastest block rate the median-time-past rule allows (6 a second):
/// Core's bound on the commitments an honest chain can need.
const MAX_BLOCKS_PER_SECOND: u64 = 6;

/// The work a header chain must have before its headers are stored
/// (Core's `GetAntiDoSWorkThreshold`): the larger of `minimum_chain_work`
/// and the tip's chain work minus 144 times the tip's own block proof.
pub fn anti_dos_work_threshold(
    tip_work: Work,
    tip_bits: CompactTarget,
    minimum_chain_work: Work,
) -> Work {
    let zero = Work::from_be_bytes([0; 32]);
    let proof = pow::block_proof(tip_bits);
    let mut buffer = zero;
    for _ in 0..ANTI_DOS_TIP_BUFFER_BLOCKS {
        if buffer >= tip_work {
            break;
        }
        buffer = buffer + proof;
    }
    let near_tip = if buffer >= tip_work {
        zero
    } else {
        tip_work - buffer
    };
    near_tip.max(minimum_chain_work)
}

/// The work `headers` claim on top of a block with `start_work` (Core's
/// `CalculateClaimedHeadersWork` plus the fork point's chain work).
pub fn claimed_chain_work(start_work: Work, headers: &[Header]) -> Work {
    headers
        .iter()
        .fold(start_work, |w, h| w + pow::block_proof(h.bits))
}

/// Memory parameters of headers pre-sync (Core's `HeadersSyncParams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadersSyncParams {
    /// Headers between two commitments (Core's `commitment_period`).
    pub commitment_period: u32,
    /// Verified headers kept in the redownload buffer before the oldest is
    /// released for storage (Core's `redownload_buffer_size`).
    pub redownload_buffer_size: usize,
}

impl HeadersSyncParams {
    /// Core v31's values for `network` (computed by Core's
    /// `headerssync-params.py` for each chain).
    pub fn for_network(network: bitcoin::Network) -> HeadersSyncParams {
        let (commitment_period, redownload_buffer_size) = match network {
            bitcoin::Network::Testnet => (673, 14_460),
            bitcoin::Network::Testnet4 => (606, 16_092),
            bitcoin::Network::Signet => (620, 15_724),
            bitcoin::Network::Regtest => (275, 7_017),
            _ => (641, 15_218),
        };
        HeadersSyncParams {
            commitment_period,
            redownload_buffer_size,
        }
    }
}

/// The block in our index the peer's chain builds on.
#[derive(Debug, Clone)]
pub struct ChainStart {
    /// Its header.
    pub header: Header,
    /// Its height.
    pub height: u32,
    /// Its chain work.
    pub chain_work: Work,
    /// Timestamps of it and up to 10 ancestors, oldest first (for the
    /// median-time-past checks and the commitment bound).
    pub recent_times: Vec<u32>,
    /// A block locator starting at it (Core's `LocatorEntries`).
    pub locator: Vec<BlockHash>,
}

/// Where a [`HeadersSyncState`] is (Core's `HeadersSyncState::State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Checking headers and storing commitments until the work suffices.
    Presync,
    /// Downloading the same headers again, checking them against the
    /// commitments.
    Redownload,
    /// Done or aborted; nothing more to do.
    Final,
}

/// Why a headers sync was aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersSyncError {
    /// No headers were given.
    Empty,
    /// The state is [`Phase::Final`].
    Finished,
    /// A header does not follow the previous one.
    NonContinuous {
        /// The phase it happened in.
        phase: Phase,
        /// Height the header would have had.
        height: u64,
    },
    /// A header's hash is above its own target, or the target is invalid.
    HighHash {
        /// Height of the header.
        height: u64,
    },
    /// `nBits` changed where no valid chain could change it.
    DifficultyTransition {
        /// The phase it happened in.
        phase: Phase,
        /// Height of the header.
        height: u64,
    },
    /// A timestamp not above the median of the previous 11.
    TimeTooOld {
        /// Height of the header.
        height: u64,
    },
    /// The chain is longer than any chain the time rules allow.
    TooManyCommitments {
        /// Height reached.
        height: u64,
    },
    /// The redownloaded chain ran past the commitments it was due to match.
    CommitmentOverrun {
        /// Height of the header.
        height: u64,
    },
    /// A redownloaded header does not match the commitment from pre-sync.
    CommitmentMismatch {
        /// Height of the header.
        height: u64,
    },
}

impl HeadersSyncError {
    /// Whether the peer served something it cannot have served honestly:
    /// an invalid header, or a redownloaded header that differs from what
    /// it sent in pre-sync. Headers that do not continue the chain may be
    /// benign (the peer reorganised, or announced a new block), as Core
    /// says; so may a chain longer than the bound (it grew since the sync
    /// began: Core suggests trying again later); the caller errors are
    /// ours.
    pub fn is_deviation(&self) -> bool {
        matches!(
            self,
            HeadersSyncError::HighHash { .. }
                | HeadersSyncError::DifficultyTransition { .. }
                | HeadersSyncError::TimeTooOld { .. }
                | HeadersSyncError::CommitmentOverrun { .. }
                | HeadersSyncError::CommitmentMismatch { .. }
        )
    }
}

impl fmt::Display for HeadersSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadersSyncError::Empty => write!(f, "no headers"),
            HeadersSyncError::Finished => write!(f, "headers sync already finished"),
            HeadersSyncError::NonContinuous { phase, height } => {
                write!(f, "non-continuous headers at height {height} ({phase:?})")
            }
            HeadersSyncError::HighHash { height } => {
                write!(f, "header with invalid proof of work at height {height}")
            }
            HeadersSyncError::DifficultyTransition { phase, height } => {
                write!(
                    f,
                    "invalid difficulty transition at height {height} ({phase:?})"
                )
            }
            HeadersSyncError::TimeTooOld { height } => {
                write!(f, "timestamp not above median time past at height {height}")
            }
            HeadersSyncError::TooManyCommitments { height } => {
                write!(f, "exceeded max commitments at height {height}")
            }
            HeadersSyncError::CommitmentOverrun { height } => {
                write!(f, "commitment overrun at height {height}")
            }
            HeadersSyncError::CommitmentMismatch { height } => {
                write!(f, "commitment mismatch at height {height}")
            }
        }
    }
}

impl std::error::Error for HeadersSyncError {}

/// The outcome of [`HeadersSyncState::process_next_headers`] (Core's
/// `ProcessingResult`).
#[derive(Debug)]
pub struct ProcessingResult {
    /// Headers ready for normal validation and storage: their chain has
    /// enough work and they match the commitments (REDOWNLOAD only).
    pub headers: Vec<Header>,
    /// `Err` when the sync was aborted because of what the peer sent.
    pub result: Result<(), HeadersSyncError>,
    /// Whether to ask the peer for more, with
    /// [`HeadersSyncState::next_locator`].
    pub request_more: bool,
}

/// A header without its `prev_blockhash` (48 bytes, Core's
/// `CompressedHeader`): the redownload buffer is a chain, so each header's
/// parent is the one before it.
#[derive(Debug, Clone, Copy)]
struct CompressedHeader {
    version: i32,
    merkle_root: [u8; 32],
    time: u32,
    bits: u32,
    nonce: u32,
}

impl CompressedHeader {
    fn new(h: &Header) -> CompressedHeader {
        CompressedHeader {
            version: h.version.to_consensus(),
            merkle_root: h.merkle_root.to_byte_array(),
            time: h.time,
            bits: h.bits.to_consensus(),
            nonce: h.nonce,
        }
    }

    fn full(&self, prev: BlockHash) -> Header {
        Header {
            version: Version::from_consensus(self.version),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::from_byte_array(self.merkle_root),
            time: self.time,
            bits: CompactTarget::from_consensus(self.bits),
            nonce: self.nonce,
        }
    }
}

/// A queue of bits, 64 to a word (Core's `bitdeque`).
#[derive(Debug, Default)]
struct BitQueue {
    words: VecDeque<u64>,
    /// Bit offset of the first element in the front word.
    head: u32,
    len: u64,
}

impl BitQueue {
    fn push_back(&mut self, bit: bool) {
        let pos = u64::from(self.head) + self.len;
        let word = (pos / 64) as usize;
        if word >= self.words.len() {
            self.words.push_back(0);
        }
        if let Some(w) = self.words.get_mut(word) {
            if bit {
                *w |= 1 << (pos % 64);
            }
            self.len += 1;
        }
    }

    fn pop_front(&mut self) -> Option<bool> {
        if self.len == 0 {
            return None;
        }
        let bit = (self.words.front()? >> self.head) & 1 == 1;
        self.head += 1;
        self.len -= 1;
        if self.head == 64 {
            self.words.pop_front();
            self.head = 0;
        }
        Some(bit)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }
}

/// The last [`MEDIAN_TIME_SPAN`] timestamps of the chain being pre-synced.
#[derive(Debug, Clone)]
struct TimeWindow {
    times: [u32; MEDIAN_TIME_SPAN as usize],
    len: usize,
    next: usize,
}

impl TimeWindow {
    fn new(recent: &[u32]) -> TimeWindow {
        let mut w = TimeWindow {
            times: [0; MEDIAN_TIME_SPAN as usize],
            len: 0,
            next: 0,
        };
        for t in recent {
            w.push(*t);
        }
        w
    }

    fn push(&mut self, t: u32) {
        if let Some(slot) = self.times.get_mut(self.next) {
            *slot = t;
        }
        self.next = (self.next + 1) % self.times.len();
        self.len = (self.len + 1).min(self.times.len());
    }

    fn median(&self) -> u32 {
        pow::median_time_past(self.times.get(..self.len).unwrap_or(&[]))
    }
}

/// One peer's headers pre-sync; see the module docs.
pub struct HeadersSyncState {
    params: HeadersSyncParams,
    /// Secret height offset of the commitments (Core's `m_commit_offset`).
    commit_offset: u32,
    /// Salt of the commitment hash (SipHash with random keys).
    salt: RandomState,
    start_hash: BlockHash,
    start_height: u64,
    start_work: Work,
    start_bits: CompactTarget,
    start_locator: Vec<BlockHash>,
    minimum_required_work: Work,
    // PRESYNC
    current_chain_work: Work,
    commitments: BitQueue,
    max_commitments: u64,
    last_header: Header,
    last_hash: BlockHash,
    current_height: u64,
    times: TimeWindow,
    // REDOWNLOAD
    redownloaded: VecDeque<CompressedHeader>,
    redownload_last_height: u64,
    redownload_last_hash: BlockHash,
    redownload_last_bits: CompactTarget,
    redownload_first_prev_hash: BlockHash,
    redownload_chain_work: Work,
    process_all_remaining: bool,
    phase: Phase,
}

impl HeadersSyncState {
    /// Starts a pre-sync of a chain building on `start` that must reach
    /// `minimum_required_work`; `now` is the current UNIX time (for the
    /// commitment bound). The commitment offset and salt are random.
    pub fn new(
        sync: HeadersSyncParams,
        start: ChainStart,
        minimum_required_work: Work,
        now: u64,
    ) -> HeadersSyncState {
        // A fresh random key (not the salt's) for the offset.
        let period = u64::from(sync.commitment_period.max(1));
        let offset = (RandomState::new().hash_one(0u64) % period) as u32;
        HeadersSyncState::with_offset(sync, start, minimum_required_work, now, offset)
    }

    /// [`HeadersSyncState::new`] with a chosen commitment offset (tests).
    pub fn with_offset(
        sync: HeadersSyncParams,
        start: ChainStart,
        minimum_required_work: Work,
        now: u64,
        commit_offset: u32,
    ) -> HeadersSyncState {
        let sync = HeadersSyncParams {
            commitment_period: sync.commitment_period.max(1),
            ..sync
        };
        let times = TimeWindow::new(&start.recent_times);
        // Core: 6 blocks a second from the fork point's median time past
        // until now plus MAX_FUTURE_BLOCK_TIME.
        let seconds =
            now.saturating_sub(u64::from(times.median())) + u64::from(MAX_FUTURE_BLOCK_TIME);
        let max_commitments = MAX_BLOCKS_PER_SECOND * seconds / u64::from(sync.commitment_period);
        let start_hash = start.header.block_hash();
        log::debug!(
            "headers pre-sync started at height {}, max_commitments={max_commitments}",
            start.height
        );
        HeadersSyncState {
            params: sync,
            commit_offset: commit_offset % sync.commitment_period,
            salt: RandomState::new(),
            start_hash,
            start_height: u64::from(start.height),
            start_work: start.chain_work,
            start_bits: start.header.bits,
            start_locator: start.locator,
            minimum_required_work,
            current_chain_work: start.chain_work,
            commitments: BitQueue::default(),
            max_commitments,
            last_header: start.header,
            last_hash: start_hash,
            current_height: u64::from(start.height),
            times,
            redownloaded: VecDeque::new(),
            redownload_last_height: 0,
            redownload_last_hash: start_hash,
            redownload_last_bits: start.header.bits,
            redownload_first_prev_hash: start_hash,
            redownload_chain_work: start.chain_work,
            process_all_remaining: false,
            phase: Phase::Presync,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Height reached in pre-sync (Core's `GetPresyncHeight`).
    pub fn presync_height(&self) -> u64 {
        self.current_height
    }

    /// Work of the chain seen in pre-sync (Core's `GetPresyncWork`).
    pub fn presync_work(&self) -> Work {
        self.current_chain_work
    }

    /// Timestamp of the last pre-sync header (Core's `GetPresyncTime`).
    pub fn presync_time(&self) -> u32 {
        self.last_header.time
    }

    /// The parent the next header must have: the last one received in
    /// this phase (`None` once final).
    pub fn expected_prev(&self) -> Option<BlockHash> {
        match self.phase {
            Phase::Presync => Some(self.last_hash),
            Phase::Redownload => Some(self.redownload_last_hash),
            Phase::Final => None,
        }
    }

    /// Height of the last redownloaded header.
    pub fn redownload_height(&self) -> u64 {
        self.redownload_last_height
    }

    /// Commitments held.
    pub fn commitments(&self) -> u64 {
        self.commitments.len()
    }

    /// Most commitments this sync may hold before it is aborted.
    pub fn max_commitments(&self) -> u64 {
        self.max_commitments
    }

    /// Headers held in the redownload buffer.
    pub fn buffered_headers(&self) -> usize {
        self.redownloaded.len()
    }

    /// Bytes this state holds (the struct, commitments, buffer, locator).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.commitments.bytes()
            + self.redownloaded.capacity() * std::mem::size_of::<CompressedHeader>()
            + self.start_locator.capacity() * std::mem::size_of::<BlockHash>()
    }

    /// Processes the next `headers` message from the peer (Core's
    /// `ProcessNextHeaders`); `full` is whether it held the most headers a
    /// message may (2,000), so the peer may have more. On any error, and
    /// when nothing more is to be asked, the state becomes [`Phase::Final`]
    /// and releases its memory.
    pub fn process_next_headers(
        &mut self,
        params: &ChainParams,
        headers: &[Header],
        full: bool,
    ) -> ProcessingResult {
        let mut ret = ProcessingResult {
            headers: Vec::new(),
            result: Ok(()),
            request_more: false,
        };
        if headers.is_empty() {
            ret.result = Err(HeadersSyncError::Empty);
            return ret;
        }
        match self.phase {
            Phase::Final => ret.result = Err(HeadersSyncError::Finished),
            Phase::Presync => {
                ret.result = self.validate_and_store_commitments(params, headers);
                if ret.result.is_ok() {
                    if full || self.phase == Phase::Redownload {
                        ret.request_more = true;
                    } else {
                        log::debug!(
                            "headers pre-sync ended: incomplete headers message at height {} (presync phase)",
                            self.current_height
                        );
                    }
                }
            }
            Phase::Redownload => {
                // Released header by header, so the buffer never holds
                // more than its size plus one (Core pops after the whole
                // message; what is released in the end is the same).
                let mut ready = Vec::new();
                ret.result = headers.iter().try_for_each(|h| {
                    self.validate_and_store_redownloaded(params, h)?;
                    self.pop_headers_ready(&mut ready);
                    Ok(())
                });
                if ret.result.is_ok() {
                    ret.headers = ready;
                    if self.redownloaded.is_empty() && self.process_all_remaining {
                        log::debug!(
                            "headers pre-sync complete: released all at height {}",
                            self.redownload_last_height
                        );
                    } else if full {
                        ret.request_more = true;
                    } else {
                        log::debug!(
                            "headers pre-sync ended: incomplete headers message at height {} (redownload phase)",
                            self.redownload_last_height
                        );
                    }
                }
            }
        }
        if let Err(e) = &ret.result {
            log::debug!("headers pre-sync aborted: {e}");
        }
        if !(ret.result.is_ok() && ret.request_more) {
            self.finalize();
        }
        ret
    }

    /// The locator for the next `getheaders` (Core's
    /// `NextHeadersRequestLocator`): the last header received in this
    /// phase, then the fork point's locator. Empty once final.
    pub fn next_locator(&self) -> Vec<BlockHash> {
        let first = match self.phase {
            Phase::Presync => self.last_hash,
            Phase::Redownload => self.redownload_last_hash,
            Phase::Final => return Vec::new(),
        };
        let mut locator = Vec::with_capacity(self.start_locator.len() + 1);
        locator.push(first);
        locator.extend_from_slice(&self.start_locator);
        locator
    }

    fn finalize(&mut self) {
        self.commitments = BitQueue::default();
        self.redownloaded = VecDeque::new();
        self.start_locator = Vec::new();
        self.process_all_remaining = false;
        self.current_height = 0;
        self.phase = Phase::Final;
    }

    fn commitment_bit(&self, hash: &BlockHash) -> bool {
        self.salt.hash_one(hash.to_byte_array()) & 1 == 1
    }

    fn is_commitment_height(&self, height: u64) -> bool {
        height % u64::from(self.params.commitment_period) == u64::from(self.commit_offset)
    }

    fn validate_and_store_commitments(
        &mut self,
        params: &ChainParams,
        headers: &[Header],
    ) -> Result<(), HeadersSyncError> {
        for h in headers {
            self.validate_presync_header(params, h)?;
        }
        if self.current_chain_work >= self.minimum_required_work {
            // Its most, allocated once: no doubling past Core's bound.
            self.redownloaded = VecDeque::with_capacity(self.params.redownload_buffer_size + 1);
            self.redownload_last_height = self.start_height;
            self.redownload_first_prev_hash = self.start_hash;
            self.redownload_last_hash = self.start_hash;
            self.redownload_last_bits = self.start_bits;
            self.redownload_chain_work = self.start_work;
            self.phase = Phase::Redownload;
            log::debug!(
                "headers pre-sync reached sufficient work at height {}; redownloading from height {}",
                self.current_height,
                self.start_height
            );
        }
        Ok(())
    }

    fn validate_presync_header(
        &mut self,
        params: &ChainParams,
        header: &Header,
    ) -> Result<(), HeadersSyncError> {
        let height = self.current_height + 1;
        if header.prev_blockhash != self.last_hash {
            return Err(HeadersSyncError::NonContinuous {
                phase: Phase::Presync,
                height,
            });
        }
        if pow::check_proof_of_work(header, params).is_err() {
            return Err(HeadersSyncError::HighHash { height });
        }
        if !pow::permitted_difficulty_transition(params, height, self.last_header.bits, header.bits)
        {
            return Err(HeadersSyncError::DifficultyTransition {
                phase: Phase::Presync,
                height,
            });
        }
        if header.time <= self.times.median() {
            return Err(HeadersSyncError::TimeTooOld { height });
        }
        let hash = header.block_hash();
        if self.is_commitment_height(height) {
            let bit = self.commitment_bit(&hash);
            self.commitments.push_back(bit);
            if self.commitments.len() > self.max_commitments {
                return Err(HeadersSyncError::TooManyCommitments { height });
            }
        }
        self.current_chain_work = self.current_chain_work + pow::block_proof(header.bits);
        self.last_header = *header;
        self.last_hash = hash;
        self.current_height = height;
        self.times.push(header.time);
        Ok(())
    }

    fn validate_and_store_redownloaded(
        &mut self,
        params: &ChainParams,
        header: &Header,
    ) -> Result<(), HeadersSyncError> {
        let height = self.redownload_last_height + 1;
        if header.prev_blockhash != self.redownload_last_hash {
            return Err(HeadersSyncError::NonContinuous {
                phase: Phase::Redownload,
                height,
            });
        }
        if pow::check_proof_of_work(header, params).is_err() {
            return Err(HeadersSyncError::HighHash { height });
        }
        if !pow::permitted_difficulty_transition(
            params,
            height,
            self.redownload_last_bits,
            header.bits,
        ) {
            return Err(HeadersSyncError::DifficultyTransition {
                phase: Phase::Redownload,
                height,
            });
        }
        self.redownload_chain_work = self.redownload_chain_work + pow::block_proof(header.bits);
        if self.redownload_chain_work >= self.minimum_required_work {
            self.process_all_remaining = true;
        }
        let hash = header.block_hash();
        // Past the target work the peer may have extended its chain since
        // pre-sync: no commitments are checked any more (as Core).
        if !self.process_all_remaining && self.is_commitment_height(height) {
            let expected = self
                .commitments
                .pop_front()
                .ok_or(HeadersSyncError::CommitmentOverrun { height })?;
            if self.commitment_bit(&hash) != expected {
                return Err(HeadersSyncError::CommitmentMismatch { height });
            }
        }
        self.redownloaded.push_back(CompressedHeader::new(header));
        self.redownload_last_height = height;
        self.redownload_last_hash = hash;
        self.redownload_last_bits = header.bits;
        Ok(())
    }

    /// Headers with enough verified headers on top (or all, once the
    /// redownloaded chain has the work), oldest first.
    fn pop_headers_ready(&mut self, out: &mut Vec<Header>) {
        while self.redownloaded.len() > self.params.redownload_buffer_size
            || (!self.redownloaded.is_empty() && self.process_all_remaining)
        {
            let Some(c) = self.redownloaded.pop_front() else {
                break;
            };
            let header = c.full(self.redownload_first_prev_hash);
            self.redownload_first_prev_hash = header.block_hash();
            out.push(header);
        }
    }
}

impl fmt::Debug for HeadersSyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadersSyncState")
            .field("phase", &self.phase)
            .field("start_height", &self.start_height)
            .field("presync_height", &self.current_height)
            .field("redownload_height", &self.redownload_last_height)
            .field("commitments", &self.commitments.len())
            .field("buffered", &self.redownloaded.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_296_688_602 + 100_000;

    fn regtest() -> ChainParams {
        ChainParams::regtest()
    }

    fn genesis() -> Header {
        bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header
    }

    fn start(params: &ChainParams) -> ChainStart {
        let g = genesis();
        ChainStart {
            header: g,
            height: 0,
            chain_work: pow::block_proof(g.bits),
            recent_times: vec![g.time],
            locator: vec![params.genesis_hash],
        }
    }

    use crate::testdata::headers_on;

    /// Feeds `headers` in messages of 2,000 as a peer answers.
    fn feed(
        s: &mut HeadersSyncState,
        params: &ChainParams,
        headers: &[Header],
    ) -> (Vec<Header>, Result<(), HeadersSyncError>, bool) {
        let mut released = Vec::new();
        let mut more = false;
        for chunk in headers.chunks(2000) {
            let r = s.process_next_headers(params, chunk, chunk.len() == 2000);
            released.extend(r.headers);
            more = r.request_more;
            if r.result.is_err() {
                return (released, r.result, more);
            }
        }
        (released, Ok(()), more)
    }

    #[test]
    fn honest_chain_is_presynced_then_released_in_order() {
        let p = regtest();
        let st = start(&p);
        let chain = headers_on(&p, &st.header, 9_000, 1);
        // The threshold is reached at height 8,000.
        let target = claimed_chain_work(st.chain_work, &chain[..8_000]);
        let sync = HeadersSyncParams::for_network(bitcoin::Network::Regtest);
        let mut s = HeadersSyncState::new(sync, st.clone(), target, NOW);
        assert_eq!(s.phase(), Phase::Presync);

        // Pre-sync: nothing is released; the next request continues from
        // the last header, then switches to the fork point.
        for (i, chunk) in chain[..8_000].chunks(2000).enumerate() {
            let r = s.process_next_headers(&p, chunk, true);
            assert!(r.result.is_ok() && r.headers.is_empty() && r.request_more);
            if i < 3 {
                assert_eq!(s.phase(), Phase::Presync);
                assert_eq!(s.presync_height(), 2000 * (i as u64 + 1));
                assert_eq!(s.next_locator()[0], chunk[1999].block_hash());
            }
        }
        assert_eq!(s.phase(), Phase::Redownload);
        assert_eq!(s.next_locator(), vec![p.genesis_hash, p.genesis_hash]);
        // 8,000 headers at one commitment per 275.
        assert!((29..=30).contains(&s.commitments()), "{}", s.commitments());

        // Redownload: the first 2,000 stay buffered (buffer 7,017).
        let r = s.process_next_headers(&p, &chain[..2000], true);
        assert!(r.result.is_ok() && r.headers.is_empty() && r.request_more);
        assert_eq!(s.buffered_headers(), 2000);
        assert_eq!(s.next_locator()[0], chain[1999].block_hash());
        // Up to 8,000: over the buffer the oldest go, then all of them at
        // the target work.
        let mut released = Vec::new();
        let mut peak = 0;
        for chunk in chain[2000..8000].chunks(2000) {
            let r = s.process_next_headers(&p, chunk, true);
            assert!(r.result.is_ok());
            released.extend(r.headers);
            peak = peak.max(s.memory_usage());
            // Never more than the buffer's size plus one.
            assert!(s.buffered_headers() <= 7_018, "{}", s.buffered_headers());
        }
        assert_eq!(released.len(), 8000);
        assert_eq!(released, chain[..8000].to_vec());
        // The buffer is allocated once at its bound: 7,018 headers of 48
        // bytes, plus the state, a few words of commitments, the locator.
        let bound = std::mem::size_of::<HeadersSyncState>() + 7_018 * 48 + 256;
        assert!(peak > 7_000 * 48 && peak <= bound, "{peak} > {bound}");
        assert_eq!(s.phase(), Phase::Final);
        assert_eq!(s.commitments(), 0);
    }

    #[test]
    fn redownload_releases_only_beyond_the_buffer_until_the_target() {
        let p = regtest();
        let st = start(&p);
        let chain = headers_on(&p, &st.header, 8_000, 2);
        let target = claimed_chain_work(st.chain_work, &chain);
        let sync = HeadersSyncParams::for_network(bitcoin::Network::Regtest);
        let mut s = HeadersSyncState::new(sync, st, target, NOW);
        let (released, r, more) = feed(&mut s, &p, &chain);
        assert!(r.is_ok() && more && released.is_empty());
        assert_eq!(s.phase(), Phase::Redownload);
        let (released, r, _) = feed(&mut s, &p, &chain[..6000]);
        assert!(r.is_ok());
        assert!(released.is_empty(), "6,000 < 7,017 buffered");
        let r = s.process_next_headers(&p, &chain[6000..8000], true);
        assert!(r.result.is_ok());
        // The last header carries the target work: everything goes.
        assert_eq!(r.headers.len(), 8000);
        assert!(!r.request_more);
        assert_eq!(s.phase(), Phase::Final);
    }

    #[test]
    fn low_work_chain_is_never_released_and_state_stays_small() {
        let p = regtest();
        let st = start(&p);
        let chain = headers_on(&p, &st.header, 20_001, 3);
        let target =
            claimed_chain_work(st.chain_work, &chain) + pow::block_proof(p.pow_limit_bits());
        let sync = HeadersSyncParams::for_network(bitcoin::Network::Regtest);
        let mut s = HeadersSyncState::with_offset(sync, st, target, NOW, 7);
        let mut peak = 0;
        for chunk in chain[..20_000].chunks(2000) {
            let r = s.process_next_headers(&p, chunk, true);
            assert!(r.result.is_ok() && r.headers.is_empty() && r.request_more);
            peak = peak.max(s.memory_usage());
        }
        // Heights 7, 282, ... up to 20,000: one bit each.
        assert_eq!(s.commitments(), (20_000 - 7) / 275 + 1);
        // O(commitments): 73 bits fit in two words; no header is held.
        assert_eq!(s.buffered_headers(), 0);
        assert!(
            peak <= std::mem::size_of::<HeadersSyncState>() + 128,
            "{peak} bytes"
        );
        // The chain ends short of the target: the sync ends, nothing kept.
        let r = s.process_next_headers(&p, &chain[20_000..], false);
        assert!(r.result.is_ok() && r.headers.is_empty() && !r.request_more);
        assert_eq!(s.phase(), Phase::Final);
        assert!(s.memory_usage() <= std::mem::size_of::<HeadersSyncState>());
    }

    #[test]
    fn a_different_chain_in_redownload_fails_the_commitments() {
        let p = regtest();
        let st = start(&p);
        let a = headers_on(&p, &st.header, 8_000, 4);
        let b = headers_on(&p, &st.header, 8_000, 5);
        let target = claimed_chain_work(st.chain_work, &a);
        let sync = HeadersSyncParams::for_network(bitcoin::Network::Regtest);
        let mut s = HeadersSyncState::new(sync, st, target, NOW);
        let (_, r, more) = feed(&mut s, &p, &a);
        assert!(r.is_ok() && more);
        assert_eq!(s.phase(), Phase::Redownload);
        // ~25 one-bit commitments are checked before the 7,017-header
        // buffer could release anything: all match by chance with
        // probability 2^-25.
        let (released, r, _) = feed(&mut s, &p, &b);
        assert!(released.is_empty(), "released {} headers", released.len());
        let e = r.expect_err("the switch is noticed");
        assert!(
            matches!(e, HeadersSyncError::CommitmentMismatch { .. }),
            "{e}"
        );
        assert!(e.is_deviation());
        assert_eq!(s.phase(), Phase::Final);
    }

    #[test]
    fn gaps_end_the_sync_without_blaming_the_peer() {
        let p = regtest();
        let st = start(&p);
        let a = headers_on(&p, &st.header, 4_000, 6);
        let sync = HeadersSyncParams::for_network(bitcoin::Network::Regtest);
        let target = claimed_chain_work(st.chain_work, &a);

        let mut s = HeadersSyncState::new(sync, st.clone(), target, NOW);
        let r = s.process_next_headers(&p, &a[..2000], true);
        assert!(r.result.is_ok());
        let r = s.process_next_headers(&p, &a[2001..4000], true);
        let e = r.result.expect_err("gap");
        assert_eq!(
            e,
            HeadersSyncError::NonContinuous {
                phase: Phase::Presync,
                height: 2001
            }
        );
        assert!(!e.is_deviation());
        assert_eq!(s.phase(), Phase::Final);
        let r = s.process_next_headers(&p, &a[..1], true);
        assert_eq!(r.result, Err(HeadersSyncError::Finished));

        let mut s = HeadersSyncState::new(sync, st, target, NOW);
        let (_, r, _) = feed(&mut s, &p, &a);
        assert!(r.is_ok());
        assert_eq!(s.phase(), Phase::Redownload);
        assert_eq!(s.expected_prev(), Some(p.genesis_hash));
        let r = s.process_next_headers(&p, &a[1..2001], true);
        let e = r.result.expect_err("does not start at the fork point");
        assert!(!e.is_deviation(), "{e}");
        assert_eq!(s.expected_prev(), None);
    }

    #[test]
    fn invalid_headers_abort_presync() {
        let p = regtest();
        let st = start(&p);
        let sync = HeadersSyncParams::for_network(bitcoin::Network::Regtest);
        let far = Work::from_be_bytes([0xff; 32]);

        // Proof of work above the header's own target.
        let mut chain = headers_on(&p, &st.header, 3, 7);
        while pow::check_proof_of_work(&chain[0], &p).is_ok() {
            chain[0].nonce = chain[0].nonce.wrapping_add(1);
        }
        let mut s = HeadersSyncState::new(sync, st.clone(), far, NOW);
        let r = s.process_next_headers(&p, &chain[..1], true);
        assert_eq!(r.result, Err(HeadersSyncError::HighHash { height: 1 }));

        // A timestamp at the median time past of the 11 before it.
        let mut chain = headers_on(&p, &st.header, 12, 8);
        let mtp = pow::median_time_past(
            &std::iter::once(st.header.time)
                .chain(chain[..10].iter().map(|h| h.time))
                .collect::<Vec<_>>(),
        );
        chain[10].time = mtp;
        while pow::check_proof_of_work(&chain[10], &p).is_err() {
            chain[10].nonce = chain[10].nonce.wrapping_add(1);
        }
        let mut s = HeadersSyncState::new(sync, st.clone(), far, NOW);
        let r = s.process_next_headers(&p, &chain[..11], true);
        assert_eq!(r.result, Err(HeadersSyncError::TimeTooOld { height: 11 }));

        // A difficulty change inside a retarget period where difficulty
        // is not allowed to drop to the minimum.
        let mut strict = regtest();
        strict.allow_min_difficulty_blocks = false;
        let mut chain = headers_on(&strict, &st.header, 2, 9);
        chain[1].bits = CompactTarget::from_consensus(0x207f_fffe);
        while pow::check_proof_of_work(&chain[1], &strict).is_err() {
            chain[1].nonce = chain[1].nonce.wrapping_add(1);
        }
        let mut s = HeadersSyncState::new(sync, st, far, NOW);
        let r = s.process_next_headers(&strict, &chain, true);
        assert_eq!(
            r.result,
            Err(HeadersSyncError::DifficultyTransition {
                phase: Phase::Presync,
                height: 2
            })
        );
        assert!(r.result.unwrap_err().is_deviation());
    }

    #[test]
    fn a_chain_longer_than_time_allows_is_cut_off() {
        let p = regtest();
        let mut st = start(&p);
        // Fork point's median time past = now: the bound is 6 blocks a
        // second for MAX_FUTURE_BLOCK_TIME, 43,200 blocks = 43 commitments
        // of 1,000.
        st.recent_times = vec![NOW as u32];
        st.header.time = NOW as u32;
        let sync = HeadersSyncParams {
            commitment_period: 1_000,
            redownload_buffer_size: 10,
        };
        let mut s =
            HeadersSyncState::with_offset(sync, st, Work::from_be_bytes([0xff; 32]), NOW, 0);
        assert_eq!(s.max_commitments(), 43);
        // Headers need not connect to the real start header's hash for
        // this bound: build them on the modified start.
        let parent = Header {
            time: NOW as u32,
            ..genesis()
        };
        let chain = headers_on(&p, &parent, 44_000, 10);
        let (_, r, _) = feed(&mut s, &p, &chain);
        assert_eq!(
            r,
            Err(HeadersSyncError::TooManyCommitments { height: 44_000 })
        );
    }

    #[test]
    fn anti_dos_threshold_is_core_formula() {
        let p = regtest();
        let two = pow::block_proof(p.pow_limit_bits());
        let zero = Work::from_be_bytes([0; 32]);
        let mut tip = zero;
        for _ in 0..1000 {
            tip = tip + two;
        }
        let mut buffer = zero;
        for _ in 0..144 {
            buffer = buffer + two;
        }
        // 1,000 blocks of work minus 144 blocks.
        assert_eq!(
            anti_dos_work_threshold(tip, p.pow_limit_bits(), zero),
            tip - buffer
        );
        // The minimum chain work wins when larger.
        let big = tip + tip;
        assert_eq!(anti_dos_work_threshold(tip, p.pow_limit_bits(), big), big);
        // A short chain: no buffer below zero.
        assert_eq!(anti_dos_work_threshold(two, p.pow_limit_bits(), zero), zero);
        // Core's values for each network.
        assert_eq!(
            HeadersSyncParams::for_network(bitcoin::Network::Bitcoin),
            HeadersSyncParams {
                commitment_period: 641,
                redownload_buffer_size: 15_218
            }
        );
    }

    #[test]
    fn bit_queue_keeps_order_across_words() {
        let mut q = BitQueue::default();
        let bits: Vec<bool> = (0..200).map(|i| (i * 7 + i / 3) % 5 < 2).collect();
        for (i, b) in bits.iter().enumerate() {
            q.push_back(*b);
            if i == 99 {
                for want in &bits[..50] {
                    assert_eq!(q.pop_front(), Some(*want));
                }
            }
        }
        for want in &bits[50..] {
            assert_eq!(q.pop_front(), Some(*want));
        }
        assert_eq!(q.pop_front(), None);
        assert!(q.words.len() <= 1);
    }
}
