//! Bounded memory (issue 12) end to end: two `strand` processes with the
//! LMDB map's pages released after every commit (`src/store/residency.rs`,
//! on by default) and the binary's allocator settings (`src/memory.rs`),
//! committing often (`--flushblocks 5`, `--dbcache 4`: 1 MiB block
//! batches). Node A is loaded by a fake peer and then serves every block
//! to node B from its released map; both must end on the same tip and
//! UTXO set, equal to what Bitcoin Core's kernel accepts.

mod common;

use std::time::Duration;

use common::oracle::Oracle;
use common::*;

#[test]
fn nodes_releasing_map_pages_after_many_commits_sync_and_serve() {
    let chain = test_chain(17, 300, 12);
    let tip = chain.tip().block_hash();
    let args = ["--flushblocks", "5", "--dbcache", "4"];
    let mut a = NodeProcess::start(&args);
    let server = ChainServer::start(a.addr(), chain.blocks().to_vec(), Serve::Everything);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(a.addr())
            == Some(300)),
        "node A did not reach 300: {:?}",
        a.log_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    server.finish().unwrap();

    let connect = a.addr().to_string();
    let mut b_args = vec!["--connect", connect.as_str()];
    b_args.extend(args);
    let mut b = NodeProcess::start(&b_args);
    assert!(
        wait_until(Duration::from_secs(120), || probe_height(b.addr())
            == Some(300)),
        "node B did not sync from A: {:?}",
        b.log_lines().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(a.terminate(Duration::from_secs(20)).unwrap().success());
    assert!(b.terminate(Duration::from_secs(20)).unwrap().success());

    let (tip_a, digest_a) = chain_of(a.dir.path()).utxo_digest().unwrap();
    let (tip_b, digest_b) = chain_of(b.dir.path()).utxo_digest().unwrap();
    assert_eq!(tip_a, tip);
    assert_eq!(tip_b, tip);
    assert_eq!(Oracle::with_chain(chain.blocks()).tip(), tip);
    assert_eq!(digest_a, digest_b);
}
