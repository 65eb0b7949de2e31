//! Why a transaction was not accepted into the mempool.
//!
//! Owns [`MempoolReject`] and [`RejectCode`]: Bitcoin Core's reject reason
//! strings (`"dust"`, `"insufficient fee"`, `"min relay fee not met"`, ...),
//! their class (Core's `TxValidationResult`), and the JSON-RPC error code and
//! message `sendrawtransaction` answers with. Plain data, produced by
//! whichever thread calls [`crate::mempool::Mempool::accept`] and read by the
//! P2P layer (to decide whether to punish the peer) and by RPC threads.

use std::borrow::Cow;
use std::fmt;

use bitcoin::Txid;

use crate::chain::{RejectKind, ValidationError};

/// Bitcoin Core `RPC_VERIFY_ERROR` (`RPC_TRANSACTION_ERROR`).
pub const RPC_VERIFY_ERROR: i32 = -25;
/// Bitcoin Core `RPC_VERIFY_REJECTED` (`RPC_TRANSACTION_REJECTED`).
pub const RPC_VERIFY_REJECTED: i32 = -26;
/// Bitcoin Core `RPC_VERIFY_ALREADY_IN_CHAIN` (`RPC_TRANSACTION_ALREADY_IN_CHAIN`).
pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;

/// Class of a rejection, after Bitcoin Core's `TxValidationResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// Breaks a consensus rule (`TX_CONSENSUS`): the sender may be punished.
    Consensus,
    /// Not standard by local policy (`TX_NOT_STANDARD`).
    NotStandard,
    /// Spends outputs in a non-standard way (`TX_INPUTS_NOT_STANDARD`).
    InputsNotStandard,
    /// Inputs unknown (`TX_MISSING_INPUTS`): an orphan.
    MissingInputs,
    /// Not final yet, immature coinbase spend or BIP68-locked
    /// (`TX_PREMATURE_SPEND`).
    PrematureSpend,
    /// Already known, or conflicts with the chain (`TX_CONFLICT`).
    Conflict,
    /// Violates a mempool policy (chain limits, replacement rules;
    /// `TX_MEMPOOL_POLICY`).
    MempoolPolicy,
    /// Fee too low for now; may be accepted later or in a package
    /// (`TX_RECONSIDERABLE`).
    Reconsiderable,
}

/// A transaction the mempool did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MempoolReject {
    /// Some inputs are neither in the UTXO view nor in the mempool. Holds
    /// the txids of the missing parents (deduplicated, in input order) so
    /// the caller can keep the transaction as an orphan and ask for them.
    /// Core: `TX_MISSING_INPUTS`, `"bad-txns-inputs-missingorspent"`.
    MissingInputs(Vec<Txid>),
    /// Any other rejection.
    Rejected {
        /// Its class.
        code: RejectCode,
        /// Core's reject reason, e.g. `"dust"`.
        reason: Cow<'static, str>,
        /// Core's debug message (possibly empty), e.g. `"100 < 141"`.
        detail: String,
    },
}

impl MempoolReject {
    /// A rejection of class `code` with Core reason `reason`.
    pub fn new(code: RejectCode, reason: impl Into<Cow<'static, str>>) -> MempoolReject {
        MempoolReject::Rejected {
            code,
            reason: reason.into(),
            detail: String::new(),
        }
    }

    /// Adds Core's debug message.
    pub fn with_detail(self, detail: impl Into<String>) -> MempoolReject {
        match self {
            MempoolReject::Rejected { code, reason, .. } => MempoolReject::Rejected {
                code,
                reason,
                detail: detail.into(),
            },
            other => other,
        }
    }

    /// Shorthand for a [`RejectCode::NotStandard`] rejection.
    pub fn not_standard(reason: impl Into<Cow<'static, str>>) -> MempoolReject {
        MempoolReject::new(RejectCode::NotStandard, reason)
    }

    /// A consensus check's failure, classed like Core does for transactions
    /// (premature coinbase spends and missing inputs keep their class).
    pub fn from_validation(e: &ValidationError) -> MempoolReject {
        let code = match e.kind() {
            RejectKind::PrematureSpend => RejectCode::PrematureSpend,
            RejectKind::MissingInputs => RejectCode::MissingInputs,
            _ => RejectCode::Consensus,
        };
        MempoolReject::new(code, e.reason().to_string()).with_detail(e.detail())
    }

    /// The class.
    pub fn code(&self) -> RejectCode {
        match self {
            MempoolReject::MissingInputs(_) => RejectCode::MissingInputs,
            MempoolReject::Rejected { code, .. } => *code,
        }
    }

    /// Core's reject reason.
    pub fn reason(&self) -> &str {
        match self {
            MempoolReject::MissingInputs(_) => "bad-txns-inputs-missingorspent",
            MempoolReject::Rejected { reason, .. } => reason,
        }
    }

    /// Core's debug message (possibly empty).
    pub fn detail(&self) -> &str {
        match self {
            MempoolReject::MissingInputs(_) => "",
            MempoolReject::Rejected { detail, .. } => detail,
        }
    }

    /// True for `"txn-already-known"`: the transaction's outputs are already
    /// in the UTXO set (it is confirmed).
    pub fn is_already_in_chain(&self) -> bool {
        self.reason() == "txn-already-known"
    }

    /// True when the peer that relayed the transaction should be punished
    /// (Core `MaybePunishNodeForTx`: consensus failures only).
    pub fn punish_peer(&self) -> bool {
        self.code() == RejectCode::Consensus
    }

    /// The JSON-RPC error code `sendrawtransaction` answers with:
    /// -27 for a confirmed transaction, -25 for missing inputs, -26 for
    /// every other rejection.
    pub fn rpc_code(&self) -> i32 {
        if self.is_already_in_chain() {
            RPC_VERIFY_ALREADY_IN_CHAIN
        } else if self.code() == RejectCode::MissingInputs {
            RPC_VERIFY_ERROR
        } else {
            RPC_VERIFY_REJECTED
        }
    }

    /// The JSON-RPC error message `sendrawtransaction` answers with:
    /// Core's `TxValidationState::ToString()` (`"reason, detail"`), or
    /// `"Transaction outputs already in utxo set"` for -27.
    pub fn rpc_message(&self) -> String {
        if self.is_already_in_chain() {
            "Transaction outputs already in utxo set".to_string()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for MempoolReject {
    /// Core's `ToString()`: the reason, then `", "` and the debug message
    /// when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        if !self.detail().is_empty() {
            write!(f, ", {}", self.detail())?;
        }
        Ok(())
    }
}

impl std::error::Error for MempoolReject {}

/// Why the orphan pool did not take a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanReject {
    /// It is already in the orphan pool.
    AlreadyHave,
    /// Its weight is above the limit (Core: `MAX_STANDARD_TX_WEIGHT`).
    TooLarge {
        /// The transaction's weight.
        weight: u64,
        /// The limit.
        max: u64,
    },
    /// The pool is configured to hold no orphans.
    Disabled,
}

impl fmt::Display for OrphanReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrphanReject::AlreadyHave => f.write_str("orphan already held"),
            OrphanReject::TooLarge { weight, max } => {
                write!(f, "orphan too large: weight {weight} > {max}")
            }
            OrphanReject::Disabled => f.write_str("orphan pool disabled"),
        }
    }
}

impl std::error::Error for OrphanReject {}
