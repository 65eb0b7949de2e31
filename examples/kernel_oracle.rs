//! Test helper (not part of the node): Bitcoin Core's validation engine,
//! libbitcoinkernel, as a child process the tests talk to over pipes
//! (`tests/common/oracle.rs` starts it).
//!
//! Why a separate process: the kernel's process-wide state (its logging
//! callback, the chainstate and its notifications) stays apart from the
//! strand under test, and the verdicts come from a binary that links no
//! strand code. (It was first needed because strand then linked Core 26's
//! libbitcoinconsensus, whose C++ symbols clash with the kernel's.)
//!
//! It runs one regtest `ChainstateManager` in the directory given as its
//! only argument, on its main thread, and answers line requests on stdin:
//!
//! - `B <block hex>`: `ProcessNewBlock`; answers with one `C <hash hex>
//!   <valid 0|1> <BlockValidationResult>` line per `BlockChecked`
//!   notification, one `L <text>` line per error line Core logged, then
//!   `R <new|duplicate|rejected|unparsable>`;
//! - `T`: answers `T <tip hash hex> <height>`.
//!
//! Hashes are in internal byte order. It exits when stdin closes.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};

use bitcoinkernel::prelude::*;
use bitcoinkernel::{
    Block, BlockValidationResult, BlockValidationStateRef, ChainType, ChainstateManager,
    ContextBuilder, Log, Logger, ProcessBlockResult, ValidationMode,
};

type Events = Arc<Mutex<Vec<String>>>;

/// Keeps Core's error lines (the reject reasons are only in the log).
struct Sink(Events);

impl Log for Sink {
    fn log(&self, message: &str) {
        if message.contains("FAILED") || message.contains("failed") {
            let line = message.trim_end().replace('\n', " ");
            lock(&self.0).push(format!("L {line}"));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn class_name(r: BlockValidationResult) -> String {
    format!("{r:?}")
}

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: kernel_oracle DIR");
        std::process::exit(2);
    };
    let events: Events = Arc::new(Mutex::new(Vec::new()));
    bitcoinkernel::log::logging::set_logging_options(bitcoinkernel::log::logging::LoggingOptions {
        log_timestamps: false,
        log_time_micros: false,
        log_threadnames: false,
        log_sourcelocations: false,
        always_print_category_levels: false,
    });
    let _logger = match Logger::new(Sink(Arc::clone(&events))) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kernel logging: {e}");
            std::process::exit(1);
        }
    };
    let sink = Arc::clone(&events);
    let context = ContextBuilder::new()
        .chain_type(ChainType::Regtest)
        .with_block_checked_validation(move |block: Block, state: BlockValidationStateRef<'_>| {
            let valid = u8::from(state.mode() == ValidationMode::Valid);
            lock(&sink).push(format!(
                "C {} {valid} {}",
                hex(&block.hash().to_bytes()),
                class_name(state.result())
            ));
        })
        .build();
    let context = match context {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kernel context: {e}");
            std::process::exit(1);
        }
    };
    let data = format!("{dir}/data");
    let blocks = format!("{dir}/blocks");
    let chainman = ChainstateManager::builder(&context, &data, &blocks).and_then(|b| {
        b.block_tree_db_in_memory(true)
            .chainstate_db_in_memory(true)
            // Script checks on worker threads, as in bitcoind: Core then
            // reports a block's coinbase overpayment before its script
            // failures (checked inline, the order is the other way round).
            .worker_threads(2)
            .build()
    });
    let chainman = match chainman {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kernel chainstate: {e}");
            std::process::exit(1);
        }
    };

    let stdin = io::stdin();
    let mut out = io::BufWriter::new(io::stdout().lock());
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let reply = if let Some(h) = line.strip_prefix("B ") {
            lock(&events).clear();
            let result = match unhex(h.trim()).and_then(|b| Block::new(&b).ok()) {
                None => "unparsable",
                Some(block) => match chainman.process_block(&block) {
                    ProcessBlockResult::NewBlock => "new",
                    ProcessBlockResult::Duplicate => "duplicate",
                    ProcessBlockResult::Rejected => "rejected",
                },
            };
            let mut lines = std::mem::take(&mut *lock(&events));
            lines.push(format!("R {result}"));
            lines.join("\n")
        } else if line.trim() == "T" {
            let chain = chainman.active_chain();
            format!(
                "T {} {}",
                hex(&chain.tip().block_hash().to_bytes()),
                chain.height()
            )
        } else {
            format!("E unknown request {line:?}")
        };
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
