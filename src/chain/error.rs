//! The validation error shared by every consensus check in [`crate::chain`].
//!
//! Owns [`ValidationError`] and [`RejectKind`]: a Bitcoin Core reject reason
//! string (`"bad-txnmrklroot"`, `"bad-cb-amount"`, ...) plus the class of
//! failure, which tells the chain layer whether the block may be marked
//! permanently invalid and whether the peer that sent it deserves a penalty
//! (Core's `BlockValidationResult`). Plain data; used by whichever thread runs
//! the checks (the chain / sync-manager thread and the script workers).

use std::borrow::Cow;
use std::fmt;

/// Class of a validation failure, after Bitcoin Core's `BlockValidationResult`
/// and `TxValidationResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// The block breaks a consensus rule and its hash commits to the bad part:
    /// mark it (and its descendants) permanently invalid. Core `BLOCK_CONSENSUS`.
    Consensus,
    /// The header itself is invalid (bad proof of work, wrong bits, timestamp
    /// before the median time past, outdated version). Core
    /// `BLOCK_INVALID_HEADER`; permanent.
    InvalidHeader,
    /// The block data does not match its header (merkle root mismatch,
    /// CVE-2012-2459 duplicate transactions, bad witness commitment or
    /// unexpected witness). The header may still be valid: the same hash with
    /// the right transactions can be valid, so this must **not** mark the
    /// block hash invalid. Core `BLOCK_MUTATED`.
    Mutated,
    /// The timestamp is too far in the future; it may become valid later.
    /// Core `BLOCK_TIME_FUTURE`; not permanent, peer not punished.
    TimeFuture,
    /// The block conflicts with a hard-coded checkpoint. Core
    /// `BLOCK_CHECKPOINT`; permanent.
    Checkpoint,
    /// A coinbase output is spent before maturity. Core
    /// `TX_PREMATURE_SPEND`; in a block this is a consensus failure.
    PrematureSpend,
    /// Inputs are missing or already spent. Core `TX_MISSING_INPUTS`; in a
    /// block this is a consensus failure.
    MissingInputs,
    /// The caller passed inconsistent data (e.g. an ancestor it should have
    /// had is missing). Not the peer's fault; nothing should be marked.
    Internal,
}

/// A failed consensus check: Core's reject reason, its class, and where in
/// the block it happened.
///
/// `Display` is lower-case: `"<reason>: <detail>"` (detail omitted when
/// empty), e.g. `bad-txns-in-belowout: value in 1000 < value out 2000 (tx 3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    reason: Cow<'static, str>,
    kind: RejectKind,
    detail: String,
    tx_index: Option<usize>,
    input_index: Option<usize>,
}

impl ValidationError {
    /// A new error with Core reject reason `reason` and class `kind`.
    pub fn new(kind: RejectKind, reason: impl Into<Cow<'static, str>>) -> Self {
        ValidationError {
            reason: reason.into(),
            kind,
            detail: String::new(),
            tx_index: None,
            input_index: None,
        }
    }

    /// Shorthand for a [`RejectKind::Consensus`] error.
    pub fn consensus(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectKind::Consensus, reason)
    }

    /// Shorthand for a [`RejectKind::Mutated`] error.
    pub fn mutated(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectKind::Mutated, reason)
    }

    /// Shorthand for a [`RejectKind::InvalidHeader`] error.
    pub fn header(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectKind::InvalidHeader, reason)
    }

    /// Shorthand for a [`RejectKind::Internal`] error.
    pub fn internal(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectKind::Internal, reason)
    }

    /// Adds a human-readable detail (lower-case).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Records the index of the offending transaction in its block.
    pub fn with_tx(mut self, tx_index: usize) -> Self {
        self.tx_index = Some(tx_index);
        self
    }

    /// Records the index of the offending input in its transaction.
    pub fn with_input(mut self, input_index: usize) -> Self {
        self.input_index = Some(input_index);
        self
    }

    /// Re-classifies the error (e.g. a transaction check that fails inside a
    /// block becomes [`RejectKind::Consensus`]).
    pub fn with_kind(mut self, kind: RejectKind) -> Self {
        self.kind = kind;
        self
    }

    /// Bitcoin Core's reject reason, e.g. `"bad-txns-duplicate"`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The class of the failure.
    pub fn kind(&self) -> RejectKind {
        self.kind
    }

    /// Extra detail, possibly empty.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Index of the offending transaction in the block, when known.
    pub fn tx_index(&self) -> Option<usize> {
        self.tx_index
    }

    /// Index of the offending input in its transaction, when known.
    pub fn input_index(&self) -> Option<usize> {
        self.input_index
    }

    /// True when the block data may be corrupt or malleated rather than the
    /// block being invalid: its hash must not be cached as invalid.
    pub fn is_mutated(&self) -> bool {
        self.kind == RejectKind::Mutated
    }

    /// True when the block hash (and its descendants) can be marked invalid
    /// for good. False for mutated blocks, future timestamps and internal
    /// errors.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.kind,
            RejectKind::Consensus
                | RejectKind::InvalidHeader
                | RejectKind::Checkpoint
                | RejectKind::PrematureSpend
                | RejectKind::MissingInputs
        )
    }

    /// True when the peer that relayed the block should be penalised (Core
    /// punishes everything but future timestamps; a mutated block is punished
    /// too since an honest peer relays the block as mined).
    pub fn punish_peer(&self) -> bool {
        !matches!(self.kind, RejectKind::TimeFuture | RejectKind::Internal)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        match (self.tx_index, self.input_index) {
            (Some(t), Some(i)) => write!(f, " (tx {t}, input {i})"),
            (Some(t), None) => write!(f, " (tx {t})"),
            (None, Some(i)) => write!(f, " (input {i})"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for ValidationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_classes() {
        let e = ValidationError::consensus("bad-txns-in-belowout")
            .with_detail("value in 1 < value out 2")
            .with_tx(3);
        assert_eq!(
            e.to_string(),
            "bad-txns-in-belowout: value in 1 < value out 2 (tx 3)"
        );
        assert!(e.is_permanent());
        assert!(!e.is_mutated());
        let m = ValidationError::mutated("bad-txnmrklroot");
        assert!(m.is_mutated());
        assert!(!m.is_permanent());
        assert!(m.punish_peer());
        let t = ValidationError::new(RejectKind::TimeFuture, "time-too-new");
        assert!(!t.is_permanent());
        assert!(!t.punish_peer());
    }
}
