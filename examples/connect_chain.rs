//! Profiling aid: connects a cached benchmark chain (see `benches/sync.rs`)
//! to a fresh chain state in-process and prints the time.
//!
//!     cargo run --release --example connect_chain -- target/bench-chain-1-2000-100.bin

use std::time::Instant;

use bitcoin::hashes::Hash;
use strand::chain::state::{ChainOptions, ChainState};

fn main() {
    let path = std::env::args().nth(1).expect("usage: connect_chain FILE");
    let data = std::fs::read(&path).expect("read chain file");
    let mut blocks = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&data[at..at + len]).unwrap();
        at += len;
        blocks.push(block);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut chain = ChainState::open(
        dir.path(),
        strand::Network::Regtest,
        ChainOptions::default(),
    )
    .unwrap();
    let started = Instant::now();
    let skip =
        usize::from(blocks.first().is_some_and(|b| {
            b.header.prev_blockhash == bitcoin::BlockHash::from_byte_array([0; 32])
        }));
    for b in blocks.into_iter().skip(skip) {
        chain.accept_block(b).unwrap();
    }
    chain.flush().unwrap();
    println!(
        "height {} in {:.2} s",
        chain.height(),
        started.elapsed().as_secs_f64()
    );
}
