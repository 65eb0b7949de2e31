//! UTXO-scale benchmark (not a test): millions of outputs created and then
//! spent, connected in-process by `ChainState` at its default options
//! (`--dbcache` 48 MiB, script-check threads one per CPU).
//!
//!     cargo bench --bench utxo
//!
//! The chain (regtest, built on the fly, never held whole): 100 blocks whose
//! coinbases pay `OP_TRUE`; then one block per 90,000 new outputs, each a
//! transaction spending a mature coinbase into 90,000 `OP_TRUE` outputs;
//! then one block per 20,000 of those outputs, each a single transaction
//! spending 20,000 of them (empty scriptSigs: no signing, the kernel still
//! runs every input's script). With the default 5,400,000 outputs that is
//! 100 + 60 + 270 = 430 blocks, the shape of the chain Bitcoin Core was
//! timed on (431 blocks, 5.4 M outputs: 33.9 s at its default cache, 793 MB
//! RSS; 47.8 s at `-dbcache=48`, 645 MB). `STRAND_BENCH_UTXO_OUTPUTS`
//! changes the count; `STRAND_BENCH_DB_BATCH` (bytes) and
//! `STRAND_BENCH_MAP_RELEASE_OPS` set the node's `--dbbatchsize` and
//! `--mapreleaseops`. Prints each phase's time and blocks/s, every flush
//! the chain state logged (its debug line with the duration), the final
//! flush, and this process's peak RSS (`VmHWM`, the chain state plus one
//! block being built) with the anonymous/file split at the end.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitcoin::{
    absolute, transaction, Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Txid, Witness,
};
use strand::chain::state::{ChainOptions, ChainState};
use strand::mining::{build_block, mine, BlockTemplate, CommitmentPolicy};

const DEFAULT_OUTPUTS: u32 = 5_400_000;
const OUTPUTS_PER_CREATE: u32 = 90_000;
const INPUTS_PER_SPEND: u32 = 20_000;
/// Core's `COINBASE_MATURITY`.
const MATURITY: u32 = 100;

fn op_true() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// Mines regtest blocks on a tip, one second apart from genesis.
struct Miner {
    prev: BlockHash,
    height: u32,
    time: u32,
}

impl Miner {
    fn next(&mut self, txs: Vec<Transaction>) -> Block {
        let height = self.height + 1;
        self.time += 1;
        let mut t = BlockTemplate::regtest(self.prev, height, self.time, txs, Amount::ZERO);
        t.witness_commitment = CommitmentPolicy::Never;
        let mut block = build_block(t, op_true()).expect("block builds");
        assert!(mine(&mut block, 10_000_000), "regtest nonce found");
        self.prev = block.block_hash();
        self.height = height;
        block
    }
}

fn tx(input: Vec<TxIn>, output: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input,
        output,
    }
}

fn spend_of(previous_output: OutPoint) -> TxIn {
    TxIn {
        previous_output,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    }
}

/// Builds the benchmark chain block by block (deterministically: the same
/// blocks each call) and hands each to `f`.
fn generate(outputs: u32, mut f: impl FnMut(Block)) {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    let mut miner = Miner {
        prev: genesis.block_hash(),
        height: 0,
        time: genesis.header.time,
    };
    let creates = outputs.div_ceil(OUTPUTS_PER_CREATE);
    // Coinbases funding the creating transactions, by height - 1.
    let mut coinbases: Vec<(Txid, Amount)> = Vec::new();
    let record = |b: &Block, coinbases: &mut Vec<(Txid, Amount)>| {
        if let Some(cb) = b.txdata.first() {
            coinbases.push((cb.compute_txid(), cb.output[0].value));
        }
    };
    for _ in 0..MATURITY {
        let b = miner.next(Vec::new());
        record(&b, &mut coinbases);
        f(b);
    }
    // Creating blocks: (txid, outputs, value of each).
    let mut created: Vec<(Txid, u32, Amount)> = Vec::new();
    let mut left = outputs;
    for k in 0..creates {
        let (cb_txid, cb_value) = coinbases[k as usize];
        let n = left.min(OUTPUTS_PER_CREATE);
        left -= n;
        let each = Amount::from_sat(cb_value.to_sat() / u64::from(n));
        let out = TxOut {
            value: each,
            script_pubkey: op_true(),
        };
        let t_tx = tx(
            vec![spend_of(OutPoint::new(cb_txid, 0))],
            vec![out; n as usize],
        );
        created.push((t_tx.compute_txid(), n, each));
        let b = miner.next(vec![t_tx]);
        record(&b, &mut coinbases);
        f(b);
    }
    // Spending blocks, in creation order.
    let mut pending = created
        .iter()
        .flat_map(|&(txid, n, each)| (0..n).map(move |v| (OutPoint::new(txid, v), each)))
        .peekable();
    while pending.peek().is_some() {
        let spent: Vec<(OutPoint, Amount)> =
            pending.by_ref().take(INPUTS_PER_SPEND as usize).collect();
        let total: u64 = spent.iter().map(|(_, v)| v.to_sat()).sum();
        let t_tx = tx(
            spent.into_iter().map(|(op, _)| spend_of(op)).collect(),
            vec![TxOut {
                value: Amount::from_sat(total),
                script_pubkey: op_true(),
            }],
        );
        f(miner.next(vec![t_tx]));
    }
}

/// Collects the chain state's "flushed chain state" debug lines.
struct FlushLog(Mutex<Vec<String>>);

impl log::Log for FlushLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("strand::chain")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let mut line = r.args().to_string();
            if line.starts_with("flushed chain state") {
                line.push_str(&format!("; after it {}", memory_line()));
                if let Ok(mut l) = self.0.lock() {
                    l.push(line);
                }
            }
        }
    }
    fn flush(&self) {}
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// glibc's heap: bytes in use (arenas and mmapped chunks) and bytes free
/// but kept by the allocator.
fn heap_mb() -> (f64, f64) {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    (mb(m.uordblks + m.hblkhd), mb(m.fordblks))
}

/// Anonymous RSS and the heap split, for the flush lines.
/// Highest RssAnon, RssFile and their sum (kB) seen by a thread that
/// samples `/proc/self/status` every 2 ms until `stop` is set: where the
/// VmHWM peak comes from.
fn sample_rss(stop: &'static std::sync::atomic::AtomicBool) -> std::thread::JoinHandle<[u64; 3]> {
    std::thread::spawn(move || {
        let mut max = [0u64; 3];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (a, f) = (status_kb("RssAnon:"), status_kb("RssFile:"));
            max = [max[0].max(a), max[1].max(f), max[2].max(a + f)];
            std::thread::sleep(Duration::from_millis(2));
        }
        max
    })
}

fn memory_line() -> String {
    let (used, free) = heap_mb();
    format!(
        "anon {:.1} MB (heap in use {used:.1} MB, free in the allocator {free:.1} MB)",
        status_kb("RssAnon:") as f64 / 1024.0
    )
}

/// CPU seconds (user + system) this process used so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn connect(chain: &mut ChainState, block: Block) -> Duration {
    let t = Instant::now();
    let height = chain.height() + 1;
    if let Err(e) = chain.accept_block(block) {
        eprintln!("block {height} rejected: {e}");
        std::process::exit(1);
    }
    t.elapsed()
}

fn main() {
    // `cargo test --benches` lists nothing.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // As the `strand` binary does: two malloc arenas, heap trimmed after
    // commits and flushes (`strand::memory`).
    strand::memory::configure_process();
    let outputs: u32 = std::env::var("STRAND_BENCH_UTXO_OUTPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_OUTPUTS);
    let creates = outputs.div_ceil(OUTPUTS_PER_CREATE);
    let spends = outputs.div_ceil(INPUTS_PER_SPEND);
    let flushes: &'static FlushLog = Box::leak(Box::new(FlushLog(Mutex::new(Vec::new()))));
    if log::set_logger(flushes).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    // `STRAND_BENCH_MAP_RELEASE_OPS=256`: the node's `--mapreleaseops 256`.
    let opts = ChainOptions {
        map_release_ops: std::env::var("STRAND_BENCH_MAP_RELEASE_OPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        // `STRAND_BENCH_DB_BATCH=BYTES`: the node's `--dbbatchsize`.
        db_batch_bytes: std::env::var("STRAND_BENCH_DB_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(ChainOptions::default().db_batch_bytes),
        ..ChainOptions::default()
    };
    println!(
        "utxo: {outputs} outputs: {MATURITY} coinbase blocks, {creates} blocks creating up to \
         {OUTPUTS_PER_CREATE}, {spends} blocks spending up to {INPUTS_PER_SPEND} in one \
         transaction; dbcache {} MiB, {} script threads, map pages released every {} store \
         operations (0: after commits only)",
        opts.coins_cache_bytes >> 20,
        opts.script_threads,
        opts.map_release_ops
    );
    let mut chain =
        ChainState::open(dir.path(), strand::Network::Regtest, opts).expect("open chain state");
    // Headers first, as a syncing node has them (else every block would be
    // the best header and flushed at once); the blocks are then built again
    // (deterministically) and connected.
    let t_headers = Instant::now();
    let mut headers = Vec::new();
    generate(outputs, |b| headers.push(b.header));
    for chunk in headers.chunks(2_000) {
        chain.process_headers(chunk).expect("headers accepted");
    }
    println!(
        "utxo headers: {} built and accepted in {:.2} s (not counted)",
        headers.len(),
        t_headers.elapsed().as_secs_f64()
    );
    static SAMPLER_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let sampler = sample_rss(&SAMPLER_STOP);
    let started = Instant::now();
    let cpu0 = cpu_secs();
    let (mut create, mut spend) = (Duration::ZERO, Duration::ZERO);
    let mut slowest = Duration::ZERO;
    let mut spent_blocks = 0u32;
    let mut built = Duration::ZERO;
    // Highest anonymous RSS seen after a block (kB) and at which height.
    let mut peak_anon = (0u64, 0u32);
    let mut t_build = Instant::now();
    generate(outputs, |b| {
        built += t_build.elapsed();
        let height = chain.height() + 1;
        let d = connect(&mut chain, b);
        let anon = status_kb("RssAnon:");
        if anon > peak_anon.0 {
            peak_anon = (anon, height);
        }
        if height > MATURITY + creates {
            spend += d;
            spent_blocks += 1;
            slowest = slowest.max(d);
        } else if height > MATURITY {
            create += d;
        }
        t_build = Instant::now();
    });
    let build = built;
    let create_secs = create.as_secs_f64();
    let spend_secs = spend.as_secs_f64();
    let t_flush = Instant::now();
    chain.flush().expect("final flush");
    let final_flush = t_flush.elapsed();
    let total = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;

    assert_eq!(chain.height(), MATURITY + creates + spent_blocks);
    let hwm = status_kb("VmHWM:");
    SAMPLER_STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    let sampled = sampler.join().unwrap_or_default();
    let (anon, file) = (status_kb("RssAnon:"), status_kb("RssFile:"));
    let lines = flushes.0.lock().map(|l| l.clone()).unwrap_or_default();
    for l in &lines {
        println!("utxo flush:   {l}");
    }
    println!(
        "utxo create:  {creates} blocks, {outputs} outputs connected in {create_secs:.2} s \
         ({:.1} blocks/s)",
        f64::from(creates) / create_secs
    );
    println!(
        "utxo spend:   {spent_blocks} blocks connected in {spend_secs:.2} s ({:.1} blocks/s, \
         slowest block {:.2} s)",
        f64::from(spent_blocks) / spend_secs,
        slowest.as_secs_f64()
    );
    println!(
        "utxo flushes: {} during the run in {} write transactions (batch size {} MiB), final \
         flush {:.2} s",
        lines.len(),
        chain.flush_transactions(),
        chain.options().db_batch_bytes >> 20,
        final_flush.as_secs_f64()
    );
    let cache = chain.coins_cache_usage();
    println!(
        "utxo memory at the end: {}; the coins cache estimates itself at {:.1} MB ({} entries)",
        memory_line(),
        cache.bytes as f64 / (1 << 20) as f64,
        cache.entries
    );
    println!(
        "utxo total:   {total:.2} s for {} blocks (building the blocks in this process {:.2} s of it; \
         CPU {cpu:.2} s; load average {})  (target <= 47.8 s; Core 33.9 s default cache, 47.8 s \
         -dbcache=48)",
        chain.height(),
        build.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    );
    println!(
        "utxo peak RSS: {:.1} MB (target <= 150 MB; Core 793 MB / 645 MB); at the end anon {:.1} \
         MB, file/mmap {:.1} MB; highest anon after a block {:.1} MB (height {})",
        hwm as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        peak_anon.0 as f64 / 1024.0,
        peak_anon.1
    );
    println!(
        "utxo sampled every 2 ms: highest anon {:.1} MB, highest file/mmap {:.1} MB, highest \
         sum {:.1} MB",
        sampled[0] as f64 / 1024.0,
        sampled[1] as f64 / 1024.0,
        sampled[2] as f64 / 1024.0
    );
}
