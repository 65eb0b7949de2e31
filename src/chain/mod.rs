//! Chain: consensus rules, block index, UTXO set and reorganisation.
//!
//! The consensus rules live here as pure functions with typed errors
//! ([`ValidationError`]): [`params`] (per-network constants), [`pow`]
//! (proof of work, retarget, median time past), [`check`] (block and
//! transaction checks after Bitcoin Core's `CheckBlock`,
//! `ContextualCheckBlockHeader`, `ContextualCheckBlock`, `CheckTransaction`,
//! `CheckTxInputs`, sequence locks, sigops, subsidy) and [`script`] (script
//! verification through libbitcoinkernel and the parallel
//! [`script::ScriptCheckPool`]), with [`signet`] block solutions
//! (Core's `CheckSignetBlockSolution`). Below them all: [`network`],
//! [`flags`] (script flag constants) and [`merkle`] (merkle roots, witness
//! commitment). The chain-state layer (block index, UTXO set,
//! connect/disconnect) calls them from the chain thread. [`headers_sync`]
//! is Core's headers pre-sync state machine (one per peer syncing a
//! low-work header chain), pure over headers and parameters; [`assumevalid`]
//! is Core's decision whether a block's scripts may be skipped.

pub mod assumevalid;
pub mod cache_usage;
pub mod check;
pub mod coins;
mod connect;
pub mod error;
pub mod flags;
pub mod hasher;
pub mod headers_sync;
pub mod index;
pub mod merkle;
pub mod network;
pub mod params;
pub mod pow;
pub mod prune;
mod prune_state;
pub mod reindex;
pub mod replay;
pub mod script;
pub mod signet;
pub mod state;
#[cfg(test)]
mod tests;
pub mod tiplog;

pub use error::{RejectKind, ValidationError};
pub use params::ChainParams;
