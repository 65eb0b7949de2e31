//! tmp
pub use bitcoinconsensus::{VERIFY_NONE, VERIFY_P2SH, VERIFY_WITNESS};
