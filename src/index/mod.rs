//! Optional indexes over the stored chain (Core's `index/`): each keeps
//! its own LMDB environment under `<network datadir>/indexes/<name>/`,
//! with its own best-block record, and is built and kept in step by its
//! own thread following the active chain and reading block bodies from
//! the chain store (Core's `BaseIndex`). Today there
//! is one, [`txindex`] (Core's `-txindex`).
//!
//! Layer: beside the store (it reads [`crate::store::Store`] and learns the
//! active chain through the [`ActiveChain`] trait the node implements);
//! the node starts the index threads and the RPC layer queries them.

pub mod txindex;

pub use txindex::{
    ActiveChain, IndexError, IndexInfo, TxIndex, TxIndexOptions, TxIndexThread, TxPos,
};

/// The directory of the optional indexes inside a network's data
/// directory (Core's `indexes/`).
pub const INDEXES_DIR: &str = "indexes";
