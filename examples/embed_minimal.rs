//! The README's embedding snippet as a program that CI builds (every
//! `cargo test`/`cargo clippy --all-targets` compiles examples) and that
//! `tests/embedding.rs` keeps identical to the README:
//!
//!     cargo run --release --example embed_minimal

// README-EMBED-BEGIN
use strand::bitcoin::ScriptBuf; // the node's own `bitcoin`, re-exported
use strand::{Config, Network, Node};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // strand logs through the `log` facade: install any logger to see it
    // (here env_logger, filtered by RUST_LOG); without one it is silent.
    env_logger::init();
    let datadir = std::env::temp_dir().join(format!("strand-embed-{}", std::process::id()));
    let mut config = Config::new(Network::Regtest);
    config.datadir = datadir.clone();
    config.listen = Some("127.0.0.1:0".parse()?);
    let node = Node::start(config)?; // threads running
    println!("listening on {:?}", node.listen_addr());
    let script = ScriptBuf::from_bytes(vec![0x51]); // OP_TRUE: an example, not a wallet
    let hashes = node.generate(10, script, vec![])?; // regtest mining, announced to peers
    let snap = node.snapshot()?; // peers, sync peer, tip, counters
    println!("tip {} at height {}", snap.tip, snap.best_height);
    let height = node.with_chain(|chain| chain.height())?; // any read, on the sync thread
    let info = node.chain_info()?; // tip, height, UTXO-set digest
    assert_eq!((height, info.tip), (10, hashes[9]));
    node.shutdown(); // joins every thread (also on drop)
    std::fs::remove_dir_all(&datadir)?;
    Ok(())
}
// README-EMBED-END
