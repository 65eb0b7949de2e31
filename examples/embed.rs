//! Embedding strand: start a regtest node in-process, subscribe to its
//! events, mine a few blocks, print what happens, shut down.
//!
//!     cargo run --release --example embed
//!
//! The node listens on an OS-chosen loopback port and keeps its data in a
//! temporary directory (removed at the end).

use std::time::Duration;

use strand::events::NodeEvent;
use strand::{Config, Network, Node};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::new(Network::Regtest);
    config.datadir = dir.path().to_path_buf();
    config.listen = Some("127.0.0.1:0".parse()?);
    let node = Node::start(config)?;
    println!("node listening on {:?}", node.listen_addr());

    let sub = node.subscribe(256)?;
    // Pay the coinbases to an OP_TRUE-like anyone-can-spend script: this is
    // an example, not a wallet.
    let script = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let hashes = node.generate(5, script, Vec::new())?;
    println!("mined {} blocks", hashes.len());

    for _ in 0..hashes.len() {
        match sub.events.recv_timeout(Duration::from_secs(5))? {
            NodeEvent::BlockConnected { hash, height } => println!("connected {height} {hash}"),
            other => println!("{other:?}"),
        }
    }
    let info = node.chain_info()?;
    println!(
        "tip {} at height {}, UTXO digest {}, events dropped {}",
        info.tip,
        info.height,
        info.utxo_digest,
        sub.dropped()
    );
    node.shutdown();
    Ok(())
}
