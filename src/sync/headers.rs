//! `headers` messages from peers: Bitcoin Core's `ProcessHeadersMessage`
//! with its anti-DoS steps, run by the sync-manager thread.
//!
//! In order, as Core v31 (`net_processing.cpp`):
//!
//! 1. More than 2,000 headers (`MAX_HEADERS_RESULTS`) is a protocol
//!    violation. An empty message ends any pre-sync with the peer.
//! 2. `CheckHeadersPoW`: every header's hash must meet its own `nBits`
//!    and each header must follow the one before; otherwise the peer is
//!    misbehaving (disconnected and discouraged).
//! 3. A running pre-sync gets the headers first
//!    (`IsContinuationOfLowWorkHeadersSync`); in REDOWNLOAD it hands back
//!    the headers that are ready for storage.
//! 4. Headers whose parent is unknown (`HandleUnconnectingHeaders`) are
//!    answered with a `getheaders` from our best header, but only if no
//!    `getheaders` to that peer is unanswered for less than
//!    `HEADERS_RESPONSE_TIME` (2 min): a flood of them costs at most one
//!    `getheaders` each and usually none. Core v31 no longer counts them
//!    (`MAX_NUM_UNCONNECTING_HEADERS_MSGS` was removed in v28) and neither
//!    does strand: they neither disconnect nor discourage.
//! 5. Headers ending on our best header chain or active chain add nothing
//!    and skip the work check. Otherwise, a chain whose work (the fork
//!    point's plus the headers') stays below the anti-DoS threshold
//!    (`GetAntiDoSWorkThreshold`) is not stored (`TryLowWorkHeadersSync`):
//!    a full message starts a pre-sync (`chain::headers_sync`), a short one
//!    is ignored.
//! 6. The rest is validated and stored; an invalid header disconnects and
//!    discourages its sender (Core 25+'s `Misbehaving`), except for a
//!    timestamp too far in the future, which may become valid.
//!
//! Three choices of strand's own. A pre-sync that the peer breaks with
//! invalid headers (a forbidden difficulty change, a timestamp not above
//! the median time past) or with a redownload that differs from what it
//! sent first (commitment mismatch or overrun) disconnects and discourages
//! the peer, where Core v31 only abandons the sync; an honest peer's chain
//! can only change past the threshold work, where no commitment is checked
//! any more. A message that does not continue a running pre-sync (a block
//! announced meanwhile) is processed on its own and leaves the pre-sync
//! running, where Core abandons it. And a peer whose chain turns out to be
//! below the threshold stops being a sync candidate; if it was the sync
//! peer, another is chosen (or initial download ends), so a low-work peer
//! cannot hold the sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

use super::{SyncManager, MAX_HEADERS};
use crate::chain::headers_sync::{
    anti_dos_work_threshold, claimed_chain_work, ChainStart, HeadersSyncParams, HeadersSyncState,
    Phase,
};
use crate::chain::params::MEDIAN_TIME_SPAN;
use crate::chain::pow;
use crate::chain::state::RejectError;
use crate::peer::{DisconnectReason, Peer};

/// How long a `getheaders` to a peer counts as unanswered: no other is
/// sent to it meanwhile for unconnecting headers (Core's
/// `HEADERS_RESPONSE_TIME`).
pub(crate) const HEADERS_RESPONSE_TIME: Duration = Duration::from_secs(2 * 60);

/// What a running pre-sync made of a `headers` message.
enum Continuation {
    /// No pre-sync is running, or it was dropped as benign (Core: the peer
    /// may have reorganised): process the headers normally.
    NotSyncing(Vec<Header>),
    /// The pre-sync consumed the message; these headers (possibly none)
    /// have the work and match the commitments: store them. `running`
    /// says whether the pre-sync goes on (it asked for more itself).
    Validated { headers: Vec<Header>, running: bool },
    /// The peer was disconnected.
    Dropped,
}

impl SyncManager {
    /// Handles a `headers` message; see the module docs.
    pub(super) fn handle_headers(&mut self, peer: &Arc<Peer>, headers: Vec<Header>) {
        if headers.len() > MAX_HEADERS {
            peer.disconnect(DisconnectReason::ProtocolViolation(format!(
                "{} headers in one message",
                headers.len()
            )));
            return;
        }
        let count = headers.len();
        let full = count == MAX_HEADERS;
        if headers.is_empty() {
            // The peer has nothing (more) for us: forget any pre-sync and
            // take this as the answer to our last getheaders.
            let mut presyncing = false;
            if let Some(k) = self.peers.get_mut(&peer.id) {
                presyncing = k.headers_sync.take().is_some();
                k.last_getheaders = None;
            }
            if presyncing {
                // Its chain ended (or it stopped serving it) before
                // anything was stored.
                log::debug!("{peer}: empty headers; headers pre-sync dropped");
                return self.low_work_chain(peer);
            }
            return self.headers_exhausted(peer);
        }
        if let Err(why) = self.check_headers_pow(&headers) {
            log::info!("{peer}: {why}");
            if let Some(h) = headers.first() {
                self.record_reject(h.block_hash(), &why);
            }
            peer.disconnect(DisconnectReason::Misbehaving(why));
            return;
        }

        let (headers, mut already_validated_work, have_headers_sync) =
            match self.continue_headers_sync(peer, headers, full) {
                Continuation::Dropped => return,
                Continuation::NotSyncing(h) => (h, false, false),
                Continuation::Validated { headers, running } => {
                    if headers.is_empty() {
                        if !running {
                            // The peer's chain ended below the threshold
                            // (or it stopped serving it).
                            self.low_work_chain(peer);
                        }
                        return;
                    }
                    (headers, true, running)
                }
            };
        let Some(first) = headers.first() else {
            return;
        };
        let Some(start_work) = self
            .chain
            .entry(&first.prev_blockhash)
            .map(|e| e.chain_work)
        else {
            return self.handle_unconnecting_headers(peer, &headers);
        };
        // They connect: an answer to whatever getheaders was outstanding.
        if let Some(k) = self.peers.get_mut(&peer.id) {
            k.last_getheaders = None;
        }
        let last = headers.last().map(|h| h.block_hash());
        if last.is_some_and(|h| self.chain.is_ancestor_of_best_header_or_tip(&h)) {
            already_validated_work = true;
        }
        if !already_validated_work {
            let threshold = self.anti_dos_threshold();
            if claimed_chain_work(start_work, &headers) < threshold {
                return self.try_low_work_headers_sync(peer, &headers, full, threshold);
            }
        }

        let from_sync_peer = self.sync_peer == Some(peer.id);
        match self.chain.process_headers(&headers) {
            Ok(_) => {
                if from_sync_peer {
                    self.last_progress = Instant::now();
                }
                if let (Some(last), Some(k)) = (last, self.peers.get_mut(&peer.id)) {
                    k.best_known = Some(last);
                }
            }
            Err(RejectError::UnknownParent(_)) => {
                return self.handle_unconnecting_headers(peer, &headers);
            }
            Err(RejectError::Invalid(e)) => {
                log::info!("invalid header from {peer}: {e}");
                if let Some(h) = headers.first() {
                    self.record_reject(h.block_hash(), &e.to_string());
                }
                if e.punish_peer() {
                    peer.disconnect(DisconnectReason::Misbehaving(format!(
                        "invalid header: {e}"
                    )));
                }
                return;
            }
            Err(RejectError::Chain(e)) => return self.fatal(&e.to_string()),
        }
        if have_headers_sync {
            // The pre-sync asked for the next headers itself.
            return self.request_blocks(peer);
        }
        if full {
            if let Some(last) = last {
                let mut locator = vec![last];
                locator.extend(self.chain.block_locator());
                self.send_getheaders_now(peer, locator);
                if from_sync_peer {
                    self.headers_requested = true;
                }
                return;
            }
        }
        self.headers_exhausted(peer);
    }

    /// The peer has no more headers for us (a short or empty message):
    /// the sync peer's headers are synced; fetch blocks.
    fn headers_exhausted(&mut self, peer: &Arc<Peer>) {
        if self.sync_peer == Some(peer.id) {
            self.headers_requested = false;
            log::debug!(
                "headers synced with {peer} at height {}",
                self.chain.best_header_height()
            );
            if self.chain.tip() == self.chain.best_header() {
                self.refresh_candidates();
                self.on_caught_up();
                return;
            }
        }
        self.request_blocks(peer);
    }

    /// Core's `CheckHeadersPoW`: each header meets its own target and
    /// follows the previous one.
    fn check_headers_pow(&self, headers: &[Header]) -> Result<(), String> {
        let mut prev: Option<BlockHash> = None;
        for h in headers {
            if prev.is_some_and(|p| p != h.prev_blockhash) {
                return Err("non-continuous headers sequence".into());
            }
            if pow::check_proof_of_work(h, self.chain.params()).is_err() {
                return Err(format!(
                    "header {} with invalid proof of work",
                    h.block_hash()
                ));
            }
            prev = Some(h.block_hash());
        }
        Ok(())
    }

    /// Core's `GetAntiDoSWorkThreshold` for our tip.
    fn anti_dos_threshold(&self) -> bitcoin::pow::Work {
        let tip = self.chain.tip();
        let min = self.chain.params().minimum_chain_work;
        match self.chain.entry(&tip) {
            Some(e) => anti_dos_work_threshold(e.chain_work, e.header.bits, min),
            None => min,
        }
    }

    /// Core's `HandleUnconnectingHeaders`: ask for the headers between our
    /// best header and these, unless a `getheaders` to this peer is still
    /// unanswered. Not counted against the peer (Core v31).
    fn handle_unconnecting_headers(&mut self, peer: &Arc<Peer>, headers: &[Header]) {
        self.counters.unconnecting_headers += 1;
        let locator = self.chain.block_locator();
        if self.maybe_send_getheaders(peer, locator) {
            if let Some(h) = headers.first() {
                log::debug!(
                    "{peer}: header {} has unknown parent {}; sent getheaders from height {}",
                    h.block_hash(),
                    h.prev_blockhash,
                    self.chain.best_header_height()
                );
            }
        }
    }

    /// Core's `MaybeSendGetHeaders`: sends a `getheaders` only if none to
    /// this peer is younger than [`HEADERS_RESPONSE_TIME`].
    fn maybe_send_getheaders(&mut self, peer: &Arc<Peer>, locator: Vec<BlockHash>) -> bool {
        let Some(k) = self.peers.get_mut(&peer.id) else {
            return false;
        };
        if k.last_getheaders
            .is_some_and(|t| t.elapsed() <= HEADERS_RESPONSE_TIME)
        {
            return false;
        }
        k.last_getheaders = Some(Instant::now());
        self.send_getheaders(peer, locator, BlockHash::all_zeros());
        true
    }

    /// Sends a `getheaders` continuing a sync the peer is answering (its
    /// previous one was just answered) and records it as outstanding.
    fn send_getheaders_now(&mut self, peer: &Arc<Peer>, locator: Vec<BlockHash>) {
        if let Some(k) = self.peers.get_mut(&peer.id) {
            k.last_getheaders = None;
        }
        self.maybe_send_getheaders(peer, locator);
    }

    /// Core's `IsContinuationOfLowWorkHeadersSync`.
    fn continue_headers_sync(
        &mut self,
        peer: &Arc<Peer>,
        headers: Vec<Header>,
        full: bool,
    ) -> Continuation {
        let Some(k) = self.peers.get_mut(&peer.id) else {
            return Continuation::NotSyncing(headers);
        };
        // A message that does not continue the pre-sync (a new block
        // announced meanwhile, say) is handled on its own and leaves the
        // pre-sync running; Core abandons the sync there.
        let continues = k.headers_sync.as_ref().is_some_and(|s| {
            s.expected_prev().is_some()
                && s.expected_prev() == headers.first().map(|h| h.prev_blockhash)
        });
        if !continues {
            return Continuation::NotSyncing(headers);
        }
        let Some(mut state) = k.headers_sync.take() else {
            return Continuation::NotSyncing(headers);
        };
        if state.phase() == Phase::Presync {
            self.counters.presync_headers += headers.len() as u64;
        }
        let r = state.process_next_headers(self.chain.params(), &headers, full);
        if r.result.is_ok() && self.sync_peer == Some(peer.id) {
            self.last_progress = Instant::now();
        }
        let running = state.phase() != Phase::Final;
        if r.request_more {
            let locator = state.next_locator();
            self.send_getheaders_now(peer, locator);
            if self.sync_peer == Some(peer.id) {
                self.headers_requested = true;
            }
        }
        if running {
            if let Some(k) = self.peers.get_mut(&peer.id) {
                k.headers_sync = Some(state);
            }
        }
        match r.result {
            Ok(()) => Continuation::Validated {
                headers: r.headers,
                running,
            },
            Err(e) if e.is_deviation() => {
                self.counters.presync_aborted += 1;
                log::info!("{peer}: headers pre-sync failed: {e}");
                peer.disconnect(DisconnectReason::Misbehaving(format!(
                    "headers pre-sync: {e}"
                )));
                Continuation::Dropped
            }
            Err(e) => {
                self.counters.presync_aborted += 1;
                log::debug!("{peer}: headers pre-sync dropped: {e}");
                Continuation::NotSyncing(headers)
            }
        }
    }

    /// Core's `TryLowWorkHeadersSync` for headers that connect at their
    /// first header's parent but whose chain has less work than
    /// `threshold`: a full message starts a pre-sync, a short one is
    /// ignored. Nothing of them is stored either way.
    fn try_low_work_headers_sync(
        &mut self,
        peer: &Arc<Peer>,
        headers: &[Header],
        full: bool,
        threshold: bitcoin::pow::Work,
    ) {
        let Some(start) = headers
            .first()
            .and_then(|h| self.chain_start(&h.prev_blockhash))
        else {
            return;
        };
        if !full {
            log::debug!(
                "ignoring low-work chain (height {}) from {peer}",
                u64::from(start.height) + headers.len() as u64
            );
            return self.low_work_chain(peer);
        }
        log::debug!(
            "{peer}: starting headers pre-sync from height {} (work below the anti-DoS threshold)",
            start.height
        );
        let state = HeadersSyncState::new(
            HeadersSyncParams::for_network(self.chain.params().network),
            start,
            threshold,
            crate::util::unix_time(),
        );
        if let Some(k) = self.peers.get_mut(&peer.id) {
            k.headers_sync = Some(Box::new(state));
        }
        match self.continue_headers_sync(peer, headers.to_vec(), full) {
            Continuation::Validated {
                headers,
                running: false,
            } if headers.is_empty() => self.low_work_chain(peer),
            // Anything released now would mean the threshold was reached
            // in the first message, which the check above ruled out.
            _ => {}
        }
    }

    /// Where a pre-sync from `hash` starts: the block, its time window and
    /// its locator.
    fn chain_start(&self, hash: &BlockHash) -> Option<ChainStart> {
        let entry = self.chain.entry(hash)?;
        let mut recent_times = Vec::with_capacity(MEDIAN_TIME_SPAN as usize);
        let mut cur = Some(entry.clone());
        while let Some(e) = cur {
            recent_times.push(e.header.time);
            if recent_times.len() == MEDIAN_TIME_SPAN as usize || e.height == 0 {
                break;
            }
            cur = self.chain.entry(&e.header.prev_blockhash);
        }
        recent_times.reverse();
        Some(ChainStart {
            header: entry.header,
            height: entry.height,
            chain_work: entry.chain_work,
            recent_times,
            locator: self.chain.locator_from(hash),
        })
    }

    /// The peer's chain has less work than we require: it is no sync
    /// candidate, and if it was the sync peer another one takes over (or
    /// initial block download ends, as when the sync peer leaves).
    fn low_work_chain(&mut self, peer: &Arc<Peer>) {
        self.counters.low_work_chains += 1;
        if let Some(k) = self.peers.get_mut(&peer.id) {
            k.candidate = false;
        }
        if self.sync_peer != Some(peer.id) {
            return;
        }
        log::info!("sync peer {peer} has a chain below the minimum work; choosing another");
        self.sync_peer = None;
        self.headers_requested = false;
        self.start_sync();
        if self.sync_peer.is_none() && self.ibd {
            log::info!("no other peer is ahead; leaving initial block download");
            self.ibd = false;
        }
    }
}
