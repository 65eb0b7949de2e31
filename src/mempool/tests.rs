//! Unit tests of the mempool and orphan pool.
