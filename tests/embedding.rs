//! The README's embedding snippet is the compiled program
//! `examples/embed_minimal.rs` (between its `README-EMBED` markers), so the
//! snippet cannot drift from code that builds; and the crate re-exports the
//! `bitcoin` it is built on.

#[test]
fn readme_embedding_snippet_is_the_example_program() {
    let example = include_str!("../examples/embed_minimal.rs");
    let readme = include_str!("../README.md");
    let begin = "// README-EMBED-BEGIN\n";
    let end = "// README-EMBED-END";
    let start = example.find(begin).expect("begin marker") + begin.len();
    let stop = example.find(end).expect("end marker");
    let snippet = &example[start..stop];
    assert!(snippet.contains("fn main()"), "a complete program");
    let fenced = format!("```rust\n{snippet}```");
    assert!(
        readme.contains(&fenced),
        "README's Embedding section must show examples/embed_minimal.rs verbatim:\n{fenced}"
    );
}

#[test]
fn bitcoin_is_reexported_at_its_own_version() {
    // The same type through both paths: embedders need no own `bitcoin`.
    let hash: strand::bitcoin::BlockHash =
        bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
    let tip: bitcoin::BlockHash = hash;
    assert_eq!(
        tip.to_string(),
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
}
