//! Counts of JSON-RPC calls by method, for the metrics endpoint
//! (`crate::metrics`). The RPC worker threads (`rpc-worker-N`) add to it
//! after each call; a metrics scrape reads it. Only known method names are
//! counted under their name (an unknown one is counted as `other`), so a
//! client cannot grow the table without bound.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Calls by method name.
#[derive(Debug, Default)]
pub struct RpcCallCounts {
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl RpcCallCounts {
    /// An empty table.
    pub fn new() -> RpcCallCounts {
        RpcCallCounts::default()
    }

    /// Counts one call of `method`.
    pub fn record(&self, method: &str) {
        let name = super::methods::method_names()
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        *self.calls.lock().entry(name).or_insert(0) += 1;
    }

    /// Every method called so far with its count, by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.calls.lock().iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_methods_by_name_and_the_rest_as_other() {
        let c = RpcCallCounts::new();
        c.record("getblockcount");
        c.record("getblockcount");
        c.record("no-such-method");
        c.record("another-unknown");
        assert_eq!(c.snapshot(), vec![("getblockcount", 2), ("other", 2)]);
    }
}
