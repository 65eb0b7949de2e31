//! Script verification: consensus flags per block, input verification through
//! libbitcoinkernel (Bitcoin Core 31's script interpreter, via the
//! `bitcoinkernel` crate) and the parallel [`ScriptCheckPool`].
//!
//! Owns the mapping from heights to script flags (Core `GetBlockScriptFlags`),
//! the calls into the kernel and the worker pool. Each transaction is handed
//! to the kernel once as a [`PrecomputedTransaction`]: decoded, with its
//! spent outputs (always all of them, so taproot is checked) and Core's
//! `PrecomputedTransactionData` (the BIP143/BIP341 hashes), so verifying
//! every input of a transaction costs time linear in its size, not
//! quadratic. The pool is owned by the chain thread, which creates it at
//! start-up, calls [`ScriptCheckPool::verify`] (or
//! [`ScriptCheckPool::verify_block`]) while connecting blocks, and drops it
//! at shutdown, joining its `script-check-N` worker threads. While
//! connecting blocks the chain thread calls
//! [`ScriptCheckPool::submit_block`], which returns at once: the workers
//! build each transaction's precomputed data themselves (the first job of a
//! transaction to run builds it, the others share it) and verify, while the
//! chain thread prepares the next block (`chain/connect.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, OnceLock};
use std::thread::JoinHandle;

use bitcoin::{Block, BlockHash, Transaction, TxOut};
use bitcoinkernel::prelude::*;
use parking_lot::Mutex;

use super::error::ValidationError;
use super::params::ChainParams;

pub use super::flags::{
    VERIFY_ALL, VERIFY_CHECKLOCKTIMEVERIFY, VERIFY_CHECKSEQUENCEVERIFY, VERIFY_DERSIG, VERIFY_NONE,
    VERIFY_NULLDUMMY, VERIFY_P2SH, VERIFY_TAPROOT, VERIFY_WITNESS,
};

// The kernel's own "all" must be exactly ours: it asserts (aborts) on
// unknown bits, and `check_flags` relies on this set.
const _: () = assert!(VERIFY_ALL == bitcoinkernel::VERIFY_ALL);

/// Inputs verified per job sent to a worker.
const INPUTS_PER_JOB: usize = 8;

/// Script flags for a block at `height`, ignoring the per-hash exceptions
/// (Core `GetBlockScriptFlags`): P2SH, WITNESS and TAPROOT always (no
/// historical block but the exceptions violates them), DERSIG from BIP66,
/// CHECKLOCKTIMEVERIFY from BIP65, CHECKSEQUENCEVERIFY from CSV, NULLDUMMY
/// from segwit. Use [`block_script_flags`] when connecting real blocks.
pub fn script_flags_for_height(height: u32, params: &ChainParams) -> u32 {
    height_dependent_flags(
        VERIFY_P2SH | VERIFY_WITNESS | VERIFY_TAPROOT,
        height,
        params,
    )
}

/// Script flags for the block `hash` at `height`, including Core's
/// `script_flag_exceptions` (the mainnet/testnet BIP16 block and the mainnet
/// taproot exception block).
pub fn block_script_flags(height: u32, hash: &BlockHash, params: &ChainParams) -> u32 {
    let base = params
        .script_flag_exceptions
        .iter()
        .find(|(h, _)| h == hash)
        .map(|(_, f)| *f)
        .unwrap_or(VERIFY_P2SH | VERIFY_WITNESS | VERIFY_TAPROOT);
    height_dependent_flags(base, height, params)
}

fn height_dependent_flags(mut flags: u32, height: u32, params: &ChainParams) -> u32 {
    if height >= params.bip66_height {
        flags |= VERIFY_DERSIG;
    }
    if height >= params.bip65_height {
        flags |= VERIFY_CHECKLOCKTIMEVERIFY;
    }
    if height >= params.csv_height {
        flags |= VERIFY_CHECKSEQUENCEVERIFY;
    }
    if height >= params.segwit_height {
        flags |= VERIFY_NULLDUMMY;
    }
    flags
}

/// What libbitcoinkernel refused (see [`ScriptError::Library`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFailure {
    /// The bytes are not exactly one transaction (truncated, undecodable,
    /// or followed by trailing data).
    TxDecode,
    /// The kernel could not build the precomputed transaction data.
    Precompute,
    /// The kernel rejected the verification call itself (flags, input index
    /// or missing spent outputs), which the checks before it should prevent.
    Call,
}

impl fmt::Display for KernelFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelFailure::TxDecode => "transaction does not decode",
            KernelFailure::Precompute => "cannot precompute transaction data",
            KernelFailure::Call => "verification call rejected",
        })
    }
}

/// Why an input's script did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptError {
    /// The scripts ran and failed (bad signature, failed opcode, ...).
    /// libbitcoinkernel does not report the precise script error.
    VerifyFailed,
    /// The flags contain bits libbitcoinkernel does not accept, or WITNESS
    /// without P2SH (which Core's interpreter refuses).
    InvalidFlags(u32),
    /// The number of spent outputs differs from the number of inputs, the
    /// input index is out of range, or a spent value does not fit Core's
    /// `CAmount` (i64).
    SpentOutputsMismatch,
    /// libbitcoinkernel refused the transaction or the call.
    Library(KernelFailure),
    /// A worker panicked while verifying (a bug; never a peer's doing).
    WorkerPanic,
}

impl ScriptError {
    /// Core's reject reason for a failed mandatory script check.
    pub fn reason(&self) -> String {
        format!("mandatory-script-verify-flag-failed ({self})")
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::VerifyFailed => f.write_str("script evaluation failed"),
            ScriptError::InvalidFlags(fl) => write!(f, "invalid script flags 0x{fl:x}"),
            ScriptError::SpentOutputsMismatch => {
                f.write_str("spent outputs do not match the inputs")
            }
            ScriptError::Library(e) => write!(f, "libbitcoinkernel: {e}"),
            ScriptError::WorkerPanic => f.write_str("script worker panicked"),
        }
    }
}

impl std::error::Error for ScriptError {}

/// A failed input of a batch: where it is and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptFailure {
    /// The caller's index of the transaction (its index in the block).
    pub tx_index: usize,
    /// Index of the input within the transaction.
    pub input_index: usize,
    /// What went wrong.
    pub error: ScriptError,
}

impl ScriptFailure {
    /// As a block [`ValidationError`] with Core's reason
    /// `"mandatory-script-verify-flag-failed (...)"`.
    pub fn to_validation_error(&self) -> ValidationError {
        let e = match self.error {
            ScriptError::VerifyFailed | ScriptError::Library(KernelFailure::TxDecode) => {
                ValidationError::consensus(self.error.reason())
            }
            _ => ValidationError::internal(self.error.reason()),
        };
        e.with_tx(self.tx_index).with_input(self.input_index)
    }
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (tx {}, input {})",
            self.error.reason(),
            self.tx_index,
            self.input_index
        )
    }
}

impl std::error::Error for ScriptFailure {}

/// Rejects flags the kernel would refuse or assert on: bits outside
/// [`VERIFY_ALL`], or WITNESS without P2SH.
fn check_flags(flags: u32) -> Result<(), ScriptError> {
    if flags & !VERIFY_ALL != 0 || (flags & VERIFY_WITNESS != 0 && flags & VERIFY_P2SH == 0) {
        return Err(ScriptError::InvalidFlags(flags));
    }
    Ok(())
}

/// A transaction as libbitcoinkernel verifies it: decoded once, with the
/// outputs its inputs spend and Core's `PrecomputedTransactionData` (the
/// BIP143 and BIP341 hashes), ready to verify any of its inputs.
///
/// Build it once per transaction and call
/// [`PrecomputedTransaction::verify_input`] for every input. It is
/// `Send + Sync`, so worker threads share it through an `Arc`.
///
/// Cost: libbitcoinkernel 0.3 (Core 31) copies the precomputed data on every
/// verification call (`btck_script_pubkey_verify` binds it through a
/// conditional expression whose other branch is a temporary), spent outputs
/// included. So the spent outputs go into the precomputed data only when
/// some input spends a taproot output, the one case whose signature hash
/// needs them (BIP341); for every other transaction the kernel gets none
/// and the TAPROOT flag is dropped, which changes nothing because Core's
/// interpreter reads that flag only for a native witness v1 32-byte
/// program (`VerifyWitnessProgram`). Verifying all inputs is then linear in
/// the transaction's size; with a taproot input it still pays that copy
/// (one `CTxOut` per input) per input, but never recomputes the hashes.
pub struct PrecomputedTransaction {
    // Declared first, so dropped before the transaction and outputs it was
    // computed from.
    txdata: bitcoinkernel::PrecomputedTransactionData,
    tx: bitcoinkernel::Transaction,
    spent: Vec<bitcoinkernel::TxOut>,
    /// Some input spends a taproot output, so `txdata` holds the spent
    /// outputs and TAPROOT is passed on.
    spends_taproot: bool,
}

/// Whether `script` is what Core's interpreter treats as taproot when
/// SCRIPT_VERIFY_TAPROOT is set: a native witness v1 program of 32 bytes
/// (`OP_1 <32 bytes>`, 34 bytes in all).
fn is_taproot_output(script: &bitcoin::Script) -> bool {
    matches!(script.as_bytes(), [0x51, 0x20, rest @ ..] if rest.len() == 32)
}

impl fmt::Debug for PrecomputedTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrecomputedTransaction")
            .field("inputs", &self.spent.len())
            .finish_non_exhaustive()
    }
}

impl PrecomputedTransaction {
    /// Prepares `tx` spending `spent_outputs` (one per input, in order).
    pub fn new(
        tx: &Transaction,
        spent_outputs: &[TxOut],
    ) -> Result<PrecomputedTransaction, ScriptError> {
        if spent_outputs.len() != tx.input.len() {
            return Err(ScriptError::SpentOutputsMismatch);
        }
        let kernel_tx = bitcoinkernel::Transaction::new(&bitcoin::consensus::serialize(tx))
            .map_err(|_| ScriptError::Library(KernelFailure::TxDecode))?;
        Self::with_kernel_tx(kernel_tx, spent_outputs)
    }

    /// Prepares the consensus-serialised transaction `tx_bytes` (with
    /// witness) spending `spent_outputs` (one per input, in order). The
    /// bytes must hold exactly one transaction.
    pub fn from_bytes(
        tx_bytes: &[u8],
        spent_outputs: &[TxOut],
    ) -> Result<PrecomputedTransaction, ScriptError> {
        // The kernel's decoder ignores trailing bytes; rust-bitcoin's
        // refuses them and gives the input count.
        let tx: Transaction = bitcoin::consensus::deserialize(tx_bytes)
            .map_err(|_| ScriptError::Library(KernelFailure::TxDecode))?;
        if spent_outputs.len() != tx.input.len() {
            return Err(ScriptError::SpentOutputsMismatch);
        }
        let kernel_tx = bitcoinkernel::Transaction::new(tx_bytes)
            .map_err(|_| ScriptError::Library(KernelFailure::TxDecode))?;
        Self::with_kernel_tx(kernel_tx, spent_outputs)
    }

    fn with_kernel_tx(
        tx: bitcoinkernel::Transaction,
        spent_outputs: &[TxOut],
    ) -> Result<PrecomputedTransaction, ScriptError> {
        // The kernel asserts (aborts) on these, so check them first.
        if tx.input_count() != spent_outputs.len() {
            return Err(ScriptError::SpentOutputsMismatch);
        }
        let mut spent = Vec::with_capacity(spent_outputs.len());
        for o in spent_outputs {
            let value =
                i64::try_from(o.value.to_sat()).map_err(|_| ScriptError::SpentOutputsMismatch)?;
            let script = bitcoinkernel::ScriptPubkey::new(o.script_pubkey.as_bytes())
                .map_err(|_| ScriptError::Library(KernelFailure::Precompute))?;
            spent.push(bitcoinkernel::TxOut::new(&script, value));
        }
        let spends_taproot = spent_outputs
            .iter()
            .any(|o| is_taproot_output(&o.script_pubkey));
        let for_txdata: &[bitcoinkernel::TxOut] = if spends_taproot { &spent } else { &[] };
        let txdata = bitcoinkernel::PrecomputedTransactionData::new(&tx, for_txdata)
            .map_err(|_| ScriptError::Library(KernelFailure::Precompute))?;
        Ok(PrecomputedTransaction {
            txdata,
            tx,
            spent,
            spends_taproot,
        })
    }

    /// Number of inputs (and spent outputs).
    pub fn input_count(&self) -> usize {
        self.spent.len()
    }

    /// Verifies input `input_index` under `flags`.
    pub fn verify_input(&self, input_index: usize, flags: u32) -> Result<(), ScriptError> {
        check_flags(flags)?;
        let spent = self
            .spent
            .get(input_index)
            .ok_or(ScriptError::SpentOutputsMismatch)?;
        // Without a taproot input TAPROOT has no effect (see the type's
        // documentation), and the kernel refuses it without spent outputs.
        let kernel_flags = if self.spends_taproot {
            flags
        } else {
            flags & !VERIFY_TAPROOT
        };
        match bitcoinkernel::verify(
            &spent.script_pubkey(),
            Some(spent.value()),
            &self.tx,
            input_index,
            Some(kernel_flags),
            &self.txdata,
        ) {
            Ok(()) => Ok(()),
            Err(bitcoinkernel::KernelError::ScriptVerify(
                bitcoinkernel::ScriptVerifyError::Invalid,
            )) => Err(ScriptError::VerifyFailed),
            Err(_) => Err(ScriptError::Library(KernelFailure::Call)),
        }
    }
}

/// Verifies input `input_index` of the consensus-serialised transaction
/// `tx_bytes` (with witness) against `spent_outputs` (the outputs spent by
/// every input, in order) under `flags`.
///
/// This prepares the whole transaction for one input; to check several
/// inputs of one transaction build a [`PrecomputedTransaction`] once (or
/// use [`verify_transaction`]).
pub fn verify_input(
    tx_bytes: &[u8],
    input_index: usize,
    spent_outputs: &[TxOut],
    flags: u32,
) -> Result<(), ScriptError> {
    check_flags(flags)?;
    if input_index >= spent_outputs.len() {
        return Err(ScriptError::SpentOutputsMismatch);
    }
    PrecomputedTransaction::from_bytes(tx_bytes, spent_outputs)?.verify_input(input_index, flags)
}

/// [`verify_input`] for a decoded transaction.
pub fn verify_tx_input(
    tx: &Transaction,
    input_index: usize,
    spent_outputs: &[TxOut],
    flags: u32,
) -> Result<(), ScriptError> {
    check_flags(flags)?;
    if input_index >= spent_outputs.len() {
        return Err(ScriptError::SpentOutputsMismatch);
    }
    PrecomputedTransaction::new(tx, spent_outputs)?.verify_input(input_index, flags)
}

/// Verifies every input of `tx` on the calling thread, preparing the
/// transaction once; the error names the first failing input.
pub fn verify_transaction(
    tx: &Transaction,
    spent_outputs: &[TxOut],
    flags: u32,
) -> Result<(), (usize, ScriptError)> {
    check_flags(flags).map_err(|e| (0, e))?;
    let prepared = PrecomputedTransaction::new(tx, spent_outputs).map_err(|e| (0, e))?;
    for i in 0..prepared.input_count() {
        prepared.verify_input(i, flags).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// One transaction's share of a script-check batch.
#[derive(Debug, Clone)]
pub struct TxScriptCheck {
    /// The caller's label for the transaction, reported back on failure
    /// (normally its index in the block).
    pub tx_index: usize,
    /// The transaction.
    pub tx: Transaction,
    /// Outputs spent by its inputs, in input order.
    pub spent_outputs: Vec<TxOut>,
    /// Script flags for the block containing it.
    pub flags: u32,
}

/// A transaction of a batch, prepared once by the caller and shared by its
/// jobs ([`ScriptCheckPool::verify`], [`ScriptCheckPool::verify_block`]).
struct PreparedTx {
    tx_index: usize,
    data: PrecomputedTransaction,
    flags: u32,
}

/// A transaction of a block submitted through a [`BlockSubmission`]:
/// prepared by the worker that first runs one of its jobs; its other jobs
/// (a transaction with more than [`INPUTS_PER_JOB`] inputs has several)
/// wait for that preparation and share it.
struct TxInBlock {
    block: Arc<Block>,
    /// Index in the block (≥ 1).
    tx_index: usize,
    /// The outputs its inputs spend, in order.
    spent: Vec<TxOut>,
    flags: u32,
    prepared: OnceLock<Result<PrecomputedTransaction, ScriptError>>,
}

impl TxInBlock {
    fn prepared(&self) -> Result<&PrecomputedTransaction, ScriptError> {
        self.prepared
            .get_or_init(|| {
                let tx = self
                    .block
                    .txdata
                    .get(self.tx_index)
                    .ok_or(ScriptError::SpentOutputsMismatch)?;
                check_flags(self.flags)?;
                PrecomputedTransaction::new(tx, &self.spent)
            })
            .as_ref()
            .map_err(|e| *e)
    }
}

/// One batch of jobs: how many are left, the first failure, and the
/// caller's wake-up.
struct Batch {
    remaining: AtomicUsize,
    failed: AtomicBool,
    failure: Mutex<Option<ScriptFailure>>,
    done: std::sync::Mutex<bool>,
    done_cv: Condvar,
}

impl Batch {
    fn new(total: usize) -> Batch {
        Batch {
            remaining: AtomicUsize::new(total),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            done: std::sync::Mutex::new(total == 0),
            done_cv: Condvar::new(),
        }
    }

    fn record(&self, failure: ScriptFailure) {
        let mut slot = self.failure.lock();
        let earlier = match *slot {
            None => true,
            Some(f) => (failure.tx_index, failure.input_index) < (f.tx_index, f.input_index),
        };
        if earlier {
            *slot = Some(failure);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Marks `n` jobs finished; the one that finishes the batch wakes the
    /// caller.
    fn finish(&self, n: usize) {
        if n > 0 && self.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            *done = true;
            self.done_cv.notify_all();
        }
    }

    /// Blocks until every job of the batch is finished.
    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.done_cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What a job verifies: a transaction the caller prepared, or one of a
/// submitted block's transactions (by block index), prepared by a worker.
enum Work {
    Prepared(Arc<PreparedTx>),
    InBlock(Arc<TxInBlock>),
}

struct Job {
    work: Work,
    inputs: Range<usize>,
    batch: Arc<Batch>,
}

fn run_job(job: &Job) {
    let (tx_index, data, flags) = match &job.work {
        Work::Prepared(tx) => (tx.tx_index, &tx.data, tx.flags),
        Work::InBlock(tx) => {
            if job.batch.failed.load(Ordering::Acquire) {
                return;
            }
            let prepared = catch_unwind(AssertUnwindSafe(|| tx.prepared()))
                .unwrap_or(Err(ScriptError::WorkerPanic));
            match prepared {
                Ok(data) => (tx.tx_index, data, tx.flags),
                Err(error) => {
                    job.batch.record(ScriptFailure {
                        tx_index: tx.tx_index,
                        input_index: 0,
                        error,
                    });
                    return;
                }
            }
        }
    };
    for i in job.inputs.clone() {
        if job.batch.failed.load(Ordering::Acquire) {
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(|| data.verify_input(i, flags)))
            .unwrap_or(Err(ScriptError::WorkerPanic));
        if let Err(error) = result {
            job.batch.record(ScriptFailure {
                tx_index,
                input_index: i,
                error,
            });
            return;
        }
    }
}

/// The pool's job queue: a mutex-guarded deque and a condition variable.
/// An idle worker sleeps on the condition variable (a futex wait), where
/// crossbeam's channel spun through `sched_yield` first (≈ 3 % of a full
/// sync's CPU, measured with perf).
struct Queue {
    state: std::sync::Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `jobs`; returns how many were queued (none once closed).
    fn push(&self, jobs: Vec<Job>) -> usize {
        let n = jobs.len();
        {
            let mut state = self.lock();
            if state.closed {
                return 0;
            }
            state.jobs.extend(jobs);
        }
        match n {
            0 => {}
            1 => self.ready.notify_one(),
            _ => self.ready.notify_all(),
        }
        n
    }

    /// The next job; `None` once the queue is closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

fn worker(queue: &Queue) {
    while let Some(job) = queue.pop() {
        run_job(&job);
        job.batch.finish(1);
    }
}

/// The scripts of one block, submitted with
/// [`ScriptCheckPool::submit_block`] and running on the workers. Dropping
/// it without [`BlockScripts::wait`] cancels what has not started.
pub struct BlockScripts {
    batch: Arc<Batch>,
}

impl fmt::Debug for BlockScripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockScripts")
            .field("remaining", &self.batch.remaining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl BlockScripts {
    /// Waits for every input; returns the failure with the lowest
    /// (tx_index, input_index) among those found before the batch stopped.
    pub fn wait(self) -> Result<(), ScriptFailure> {
        self.batch.wait();
        let failure = *self.batch.failure.lock();
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

impl Drop for BlockScripts {
    fn drop(&mut self) {
        // After `wait` every job is finished and this changes nothing;
        // before it, the jobs not yet run return at once.
        self.batch.failed.store(true, Ordering::Release);
    }
}

/// A block's scripts being submitted ([`ScriptCheckPool::begin_block`]).
/// Dropping it unfinished cancels what was queued.
pub struct BlockSubmission {
    queue: Option<Arc<Queue>>,
    block: Arc<Block>,
    flags: u32,
    batch: Arc<Batch>,
    /// With zero threads: the jobs, run by `finish` on the caller.
    deferred: Vec<Job>,
    finished: bool,
}

impl BlockSubmission {
    /// Queues the inputs of transaction `tx_index` (its index in the
    /// block, ≥ 1), which spend `spent` (one output per input, in order).
    pub fn push(&mut self, tx_index: usize, spent: Vec<TxOut>) {
        let n = self
            .block
            .txdata
            .get(tx_index)
            .map_or(0, |tx| tx.input.len());
        if n == 0 && spent.is_empty() {
            return; // nothing to verify
        }
        let tx = Arc::new(TxInBlock {
            block: Arc::clone(&self.block),
            tx_index,
            spent,
            flags: self.flags,
            prepared: OnceLock::new(),
        });
        // A transaction that is not in the block, or whose spent outputs
        // do not match its inputs, still gets one job, which reports it.
        let jobs: Vec<Job> = (0..n.max(1))
            .step_by(INPUTS_PER_JOB)
            .map(|start| Job {
                work: Work::InBlock(Arc::clone(&tx)),
                inputs: start..(start + INPUTS_PER_JOB).min(n),
                batch: Arc::clone(&self.batch),
            })
            .collect();
        let count = jobs.len();
        self.batch.remaining.fetch_add(count, Ordering::AcqRel);
        match &self.queue {
            Some(queue) => {
                let queued = queue.push(jobs);
                // Only a closed queue refuses jobs, and it is closed only
                // when the pool is dropped: account for them anyway.
                if queued < count {
                    self.batch.record(ScriptFailure {
                        tx_index,
                        input_index: 0,
                        error: ScriptError::WorkerPanic,
                    });
                    self.batch.finish(count - queued);
                }
            }
            None => self.deferred.extend(jobs),
        }
    }

    /// Ends the submission; [`BlockScripts::wait`] collects the outcome.
    pub fn finish(mut self) -> BlockScripts {
        for job in std::mem::take(&mut self.deferred) {
            run_job(&job);
            self.batch.finish(1);
        }
        self.batch.finish(1);
        self.finished = true;
        BlockScripts {
            batch: Arc::clone(&self.batch),
        }
    }
}

impl Drop for BlockSubmission {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped before `finish` (the block failed another check):
            // the jobs queued return at once.
            self.batch.failed.store(true, Ordering::Release);
        }
    }
}

/// A bounded pool of script-verification threads.
///
/// `threads` workers (default: available parallelism) take jobs of up to
/// [`INPUTS_PER_JOB`] inputs of one transaction from one queue.
/// [`ScriptCheckPool::submit_block`] queues a whole block and returns at
/// once (the chain thread prepares the next block meanwhile); the workers
/// prepare each transaction (a [`PrecomputedTransaction`]) themselves.
/// [`ScriptCheckPool::verify`] and [`ScriptCheckPool::verify_block`] take
/// borrowed transactions, so the calling thread prepares them and queues
/// their jobs one transaction at a time, then waits. The queue holds at
/// most the jobs of the batches handed to it (the chain submits at most two
/// blocks ahead of its waits). A batch stops early after the first failure.
/// With zero threads, batches are verified on the calling thread.
///
/// Owned by the chain thread; dropping it closes the queue and joins the
/// workers, which finish the jobs still queued first.
pub struct ScriptCheckPool {
    queue: Option<Arc<Queue>>,
    workers: Vec<JoinHandle<()>>,
}

impl ScriptCheckPool {
    /// Starts a pool with `threads` workers (0 = verify on the caller).
    pub fn new(threads: usize) -> std::io::Result<ScriptCheckPool> {
        if threads == 0 {
            return Ok(ScriptCheckPool {
                queue: None,
                workers: Vec::new(),
            });
        }
        let queue = Arc::new(Queue {
            state: std::sync::Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let q = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("script-check-{i}"))
                .spawn(move || worker(&q));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    queue.close();
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(ScriptCheckPool {
            queue: Some(queue),
            workers,
        })
    }

    /// Starts a pool with one worker per available CPU.
    pub fn with_default_threads() -> std::io::Result<ScriptCheckPool> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        ScriptCheckPool::new(n)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Verifies every input of every transaction in `checks`; returns the
    /// failure with the lowest (tx_index, input_index) among those found
    /// before the batch stopped.
    pub fn verify(&self, checks: Vec<TxScriptCheck>) -> Result<(), ScriptFailure> {
        self.verify_each(
            checks
                .iter()
                .map(|c| (c.tx_index, &c.tx, c.spent_outputs.as_slice(), c.flags)),
        )
    }

    /// Verifies all non-coinbase inputs of `block`. `spent_outputs[i]` holds
    /// the outputs spent by `block.txdata[i + 1]`; `flags` come from
    /// [`block_script_flags`]. Failures report the transaction's index in
    /// the block.
    pub fn verify_block(
        &self,
        block: &Block,
        spent_outputs: &[Vec<TxOut>],
        flags: u32,
    ) -> Result<(), ScriptFailure> {
        let txs = block.txdata.get(1..).unwrap_or(&[]);
        if txs.len() != spent_outputs.len() {
            return Err(ScriptFailure {
                tx_index: 0,
                input_index: 0,
                error: ScriptError::SpentOutputsMismatch,
            });
        }
        self.verify_each(
            txs.iter()
                .zip(spent_outputs)
                .enumerate()
                .map(|(i, (tx, spent))| (i + 1, tx, spent.as_slice(), flags)),
        )
    }

    /// Queues the scripts of all non-coinbase inputs of `block` (as
    /// [`ScriptCheckPool::verify_block`]: `spent_outputs[i]` for
    /// `block.txdata[i + 1]`) and returns at once; the workers prepare and
    /// verify, [`BlockScripts::wait`] collects the outcome. With zero
    /// threads the scripts are verified here, before returning.
    pub fn submit_block(
        &self,
        block: Arc<Block>,
        spent_outputs: Vec<Vec<TxOut>>,
        flags: u32,
    ) -> BlockScripts {
        if block.txdata.len().saturating_sub(1) != spent_outputs.len() {
            let batch = Arc::new(Batch::new(0));
            batch.record(ScriptFailure {
                tx_index: 0,
                input_index: 0,
                error: ScriptError::SpentOutputsMismatch,
            });
            return BlockScripts { batch };
        }
        let mut submission = self.begin_block(block, flags);
        for (i, spent) in spent_outputs.into_iter().enumerate() {
            submission.push(i + 1, spent);
        }
        submission.finish()
    }

    /// Starts submitting the scripts of `block` transaction by transaction
    /// ([`BlockSubmission::push`]), so the workers start on the first while
    /// the caller still checks the rest of the block.
    pub fn begin_block(&self, block: Arc<Block>, flags: u32) -> BlockSubmission {
        BlockSubmission {
            queue: self.queue.clone(),
            block,
            flags,
            // One token for the open submission, released by `finish`.
            batch: Arc::new(Batch::new(1)),
            deferred: Vec::new(),
            finished: false,
        }
    }

    /// The batch behind [`ScriptCheckPool::verify`] and
    /// [`ScriptCheckPool::verify_block`]: `(tx_index, tx, spent, flags)`.
    fn verify_each<'a>(
        &self,
        checks: impl Iterator<Item = (usize, &'a Transaction, &'a [TxOut], u32)>,
    ) -> Result<(), ScriptFailure> {
        // A transaction without inputs has no scripts to run (and is
        // rejected by `check_transaction` long before this).
        let checks: Vec<_> = checks.filter(|c| !c.1.input.is_empty()).collect();
        let prepare = |(tx_index, tx, spent, flags): (usize, &Transaction, &[TxOut], u32)| {
            check_flags(flags)
                .and_then(|()| PrecomputedTransaction::new(tx, spent))
                .map(|data| PreparedTx {
                    tx_index,
                    data,
                    flags,
                })
                .map_err(|error| ScriptFailure {
                    tx_index,
                    input_index: 0,
                    error,
                })
        };

        let Some(queue) = &self.queue else {
            for check in checks {
                let tx = prepare(check)?;
                for i in 0..tx.data.input_count() {
                    tx.data
                        .verify_input(i, tx.flags)
                        .map_err(|error| ScriptFailure {
                            tx_index: tx.tx_index,
                            input_index: i,
                            error,
                        })?;
                }
            }
            return Ok(());
        };

        // A prepared transaction has exactly `tx.input.len()` inputs
        // (`PrecomputedTransaction::new` checks), so this counts the jobs
        // queued below.
        let total: usize = checks
            .iter()
            .map(|c| c.1.input.len().div_ceil(INPUTS_PER_JOB))
            .sum();
        if total == 0 {
            return Ok(());
        }
        let batch = Arc::new(Batch::new(total));
        // Prepare each transaction and queue its jobs at once, so the
        // workers start on the first while the caller prepares the next.
        let mut sent = 0;
        for check in checks {
            if batch.failed.load(Ordering::Acquire) {
                break;
            }
            let tx = match prepare(check) {
                Ok(tx) => Arc::new(tx),
                Err(failure) => {
                    batch.record(failure);
                    break;
                }
            };
            let n = tx.data.input_count();
            let jobs: Vec<Job> = (0..n)
                .step_by(INPUTS_PER_JOB)
                .map(|start| Job {
                    work: Work::Prepared(Arc::clone(&tx)),
                    inputs: start..(start + INPUTS_PER_JOB).min(n),
                    batch: Arc::clone(&batch),
                })
                .collect();
            let want = jobs.len();
            let queued = queue.push(jobs);
            sent += queued;
            if queued < want {
                break; // queue closed: account for the rest below
            }
        }
        batch.finish(total.saturating_sub(sent));
        // Every job queued is finished by a worker (panics are caught), and
        // unqueued ones were finished above.
        batch.wait();
        let failure = *batch.failure.lock();
        match failure {
            Some(f) => Err(f),
            None if sent < total => Err(ScriptFailure {
                tx_index: 0,
                input_index: 0,
                error: ScriptError::WorkerPanic,
            }),
            None => Ok(()),
        }
    }
}

impl Drop for ScriptCheckPool {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.close(); // workers drain the queue and exit
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::key::{Keypair, TapTweak};
    use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
    use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
    use bitcoin::transaction::Version;
    use bitcoin::{
        Amount, CompressedPublicKey, Network, OutPoint, PublicKey, ScriptBuf, Sequence, TxIn, Txid,
        Witness,
    };

    fn key(n: u8) -> SecretKey {
        SecretKey::from_slice(&[n; 32]).unwrap()
    }

    fn unsigned_spend(n_inputs: usize) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: (0..n_inputs)
                .map(|i| TxIn {
                    previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), i as u32),
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(90_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        }
    }

    fn p2pkh_spend(sk: &SecretKey, sign_with: &SecretKey) -> (Transaction, Vec<TxOut>) {
        let secp = Secp256k1::new();
        let pk = PublicKey::new(sk.public_key(&secp));
        let prev = TxOut {
            value: Amount::from_sat(100_000),
            script_pubkey: ScriptBuf::new_p2pkh(&pk.pubkey_hash()),
        };
        let mut tx = unsigned_spend(1);
        let sighash = SighashCache::new(&tx)
            .legacy_signature_hash(0, &prev.script_pubkey, EcdsaSighashType::All.to_u32())
            .unwrap();
        let sig = secp.sign_ecdsa(&Message::from(sighash), sign_with);
        let sig = bitcoin::ecdsa::Signature::sighash_all(sig);
        tx.input[0].script_sig = bitcoin::script::Builder::new()
            .push_slice(sig.serialize())
            .push_key(&pk)
            .into_script();
        (tx, vec![prev])
    }

    fn p2wpkh_spend(sk: &SecretKey, signed_value: u64) -> (Transaction, Vec<TxOut>) {
        let secp = Secp256k1::new();
        let pk = CompressedPublicKey(sk.public_key(&secp));
        let prev = TxOut {
            value: Amount::from_sat(100_000),
            script_pubkey: ScriptBuf::new_p2wpkh(&pk.wpubkey_hash()),
        };
        let mut tx = unsigned_spend(1);
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(
                0,
                &prev.script_pubkey,
                Amount::from_sat(signed_value),
                EcdsaSighashType::All,
            )
            .unwrap();
        let sig = secp.sign_ecdsa(&Message::from(sighash), sk);
        tx.input[0].witness = Witness::p2wpkh(&bitcoin::ecdsa::Signature::sighash_all(sig), &pk.0);
        (tx, vec![prev])
    }

    /// Two-input taproot key-path spend; `corrupt` flips a signature bit.
    fn p2tr_spend(corrupt: bool) -> (Transaction, Vec<TxOut>) {
        let secp = Secp256k1::new();
        let keypairs: Vec<Keypair> = [3u8, 4]
            .iter()
            .map(|n| Keypair::from_secret_key(&secp, &key(*n)))
            .collect();
        let prevs: Vec<TxOut> = keypairs
            .iter()
            .map(|kp| TxOut {
                value: Amount::from_sat(50_000),
                script_pubkey: ScriptBuf::new_p2tr(&secp, kp.x_only_public_key().0, None),
            })
            .collect();
        let mut tx = unsigned_spend(2);
        let mut witnesses = Vec::new();
        {
            let mut cache = SighashCache::new(&tx);
            for (i, kp) in keypairs.iter().enumerate() {
                let sighash = cache
                    .taproot_key_spend_signature_hash(
                        i,
                        &Prevouts::All(&prevs),
                        TapSighashType::Default,
                    )
                    .unwrap();
                let tweaked = kp.tap_tweak(&secp, None);
                let mut sig = secp
                    .sign_schnorr_no_aux_rand(&Message::from(sighash), &tweaked.to_keypair())
                    .serialize();
                if corrupt && i == 1 {
                    sig[10] ^= 1;
                }
                let sig = bitcoin::taproot::Signature::from_slice(&sig).unwrap();
                witnesses.push(Witness::p2tr_key_spend(&sig));
            }
        }
        for (input, w) in tx.input.iter_mut().zip(witnesses) {
            input.witness = w;
        }
        (tx, prevs)
    }

    const ALL: u32 = VERIFY_ALL;

    #[test]
    fn flags_follow_core() {
        let m = ChainParams::mainnet();
        let base = VERIFY_P2SH | VERIFY_WITNESS | VERIFY_TAPROOT;
        assert_eq!(script_flags_for_height(0, &m), base);
        assert_eq!(script_flags_for_height(363_725, &m), base | VERIFY_DERSIG);
        assert_eq!(
            script_flags_for_height(388_381, &m),
            base | VERIFY_DERSIG | VERIFY_CHECKLOCKTIMEVERIFY
        );
        assert_eq!(
            script_flags_for_height(419_328, &m),
            base | VERIFY_DERSIG | VERIFY_CHECKLOCKTIMEVERIFY | VERIFY_CHECKSEQUENCEVERIFY
        );
        assert_eq!(script_flags_for_height(481_824, &m), ALL);
        let (bip16_block, _) = m.script_flag_exceptions[0];
        assert_eq!(block_script_flags(170_060, &bip16_block, &m), VERIFY_NONE);
        let (taproot_block, _) = m.script_flag_exceptions[1];
        assert_eq!(
            block_script_flags(692_261, &taproot_block, &m),
            ALL & !VERIFY_TAPROOT
        );
        assert_eq!(
            block_script_flags(700_000, &BlockHash::all_zeros(), &m),
            ALL
        );
        let r = ChainParams::regtest();
        assert_eq!(script_flags_for_height(0, &r), base | VERIFY_NULLDUMMY);
        assert_eq!(script_flags_for_height(1, &r), ALL);
        let _ = Network::Regtest;
    }

    #[test]
    fn p2pkh_spend_verifies_and_bad_signature_fails() {
        let (tx, prev) = p2pkh_spend(&key(1), &key(1));
        assert_eq!(verify_tx_input(&tx, 0, &prev, ALL), Ok(()));
        let (tx, prev) = p2pkh_spend(&key(1), &key(2));
        assert_eq!(
            verify_tx_input(&tx, 0, &prev, ALL),
            Err(ScriptError::VerifyFailed)
        );
    }

    #[test]
    fn p2wpkh_spend_verifies_and_wrong_amount_fails() {
        let (tx, prev) = p2wpkh_spend(&key(5), 100_000);
        assert_eq!(verify_transaction(&tx, &prev, ALL), Ok(()));
        // Signed for another amount: BIP143 commits to the value.
        let (tx, prev) = p2wpkh_spend(&key(5), 100_001);
        assert_eq!(
            verify_transaction(&tx, &prev, ALL),
            Err((0, ScriptError::VerifyFailed))
        );
    }

    #[test]
    fn p2tr_key_spend_verifies_and_bad_signature_fails() {
        let (tx, prev) = p2tr_spend(false);
        assert_eq!(verify_transaction(&tx, &prev, ALL), Ok(()));
        let (tx, prev) = p2tr_spend(true);
        assert_eq!(
            verify_transaction(&tx, &prev, ALL),
            Err((1, ScriptError::VerifyFailed))
        );
        // Without the TAPROOT flag a v1 witness program is anyone-can-spend.
        assert_eq!(
            verify_transaction(&tx, &prev, ALL & !VERIFY_TAPROOT),
            Ok(())
        );
        // A wrong spent amount changes the BIP341 sighash.
        let (tx, mut prev) = p2tr_spend(false);
        prev[0].value = Amount::from_sat(50_001);
        assert_eq!(
            verify_transaction(&tx, &prev, ALL),
            Err((0, ScriptError::VerifyFailed))
        );
    }

    #[test]
    fn bad_calls_are_errors_not_panics() {
        let (tx, prev) = p2pkh_spend(&key(1), &key(1));
        let bytes = bitcoin::consensus::serialize(&tx);
        assert_eq!(
            verify_input(&bytes, 0, &prev, VERIFY_WITNESS),
            Err(ScriptError::InvalidFlags(VERIFY_WITNESS))
        );
        assert_eq!(
            verify_input(&bytes, 0, &prev, 1 << 30),
            Err(ScriptError::InvalidFlags(1 << 30))
        );
        assert_eq!(
            verify_input(&bytes, 1, &prev, ALL),
            Err(ScriptError::SpentOutputsMismatch)
        );
        let undecodable = Err(ScriptError::Library(KernelFailure::TxDecode));
        assert_eq!(verify_input(&bytes[..10], 0, &prev, ALL), undecodable);
        assert_eq!(verify_input(&[], 0, &prev, ALL), undecodable);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(verify_input(&trailing, 0, &prev, ALL), undecodable);
        assert_eq!(
            PrecomputedTransaction::from_bytes(&[0xff; 64], &prev).unwrap_err(),
            ScriptError::Library(KernelFailure::TxDecode)
        );
        // Spent values beyond Core's CAmount are refused, not wrapped.
        let mut huge = prev.clone();
        huge[0].value = Amount::from_sat(u64::MAX);
        assert_eq!(
            verify_tx_input(&tx, 0, &huge, ALL),
            Err(ScriptError::SpentOutputsMismatch)
        );
        // No inputs: rust-bitcoin writes the segwit marker with no witness,
        // which Core's decoder refuses ("superfluous witness record"): an
        // error, not a panic or an abort.
        let mut empty = tx.clone();
        empty.input.clear();
        assert_eq!(
            PrecomputedTransaction::new(&empty, &[]).unwrap_err(),
            ScriptError::Library(KernelFailure::TxDecode)
        );
        let two = vec![prev[0].clone(), prev[0].clone()];
        assert_eq!(
            verify_input(&bytes, 0, &two, ALL),
            Err(ScriptError::SpentOutputsMismatch)
        );
        let f = ScriptFailure {
            tx_index: 2,
            input_index: 1,
            error: ScriptError::VerifyFailed,
        };
        let e = f.to_validation_error();
        assert_eq!(
            e.reason(),
            "mandatory-script-verify-flag-failed (script evaluation failed)"
        );
        assert_eq!((e.tx_index(), e.input_index()), (Some(2), Some(1)));
        assert!(e.is_permanent());
    }

    /// `n` P2WPKH inputs, each with its own key and amount; `bad` gets a
    /// signature by the wrong key.
    fn p2wpkh_multi(n: usize, bad: Option<usize>) -> (Transaction, Vec<TxOut>) {
        let secp = Secp256k1::new();
        let keys: Vec<SecretKey> = (0..n).map(|i| key(10 + (i % 200) as u8)).collect();
        let prevs: Vec<TxOut> = keys
            .iter()
            .enumerate()
            .map(|(i, sk)| TxOut {
                value: Amount::from_sat(10_000 + i as u64),
                script_pubkey: ScriptBuf::new_p2wpkh(
                    &CompressedPublicKey(sk.public_key(&secp)).wpubkey_hash(),
                ),
            })
            .collect();
        let mut tx = unsigned_spend(n);
        let mut witnesses = Vec::with_capacity(n);
        {
            let mut cache = SighashCache::new(&tx);
            for (i, (sk, prev)) in keys.iter().zip(&prevs).enumerate() {
                let sighash = cache
                    .p2wpkh_signature_hash(
                        i,
                        &prev.script_pubkey,
                        prev.value,
                        EcdsaSighashType::All,
                    )
                    .unwrap();
                let signer = if Some(i) == bad { key(250) } else { *sk };
                let sig = secp.sign_ecdsa(&Message::from(sighash), &signer);
                witnesses.push(Witness::p2wpkh(
                    &bitcoin::ecdsa::Signature::sighash_all(sig),
                    &sk.public_key(&secp),
                ));
            }
        }
        for (input, w) in tx.input.iter_mut().zip(witnesses) {
            input.witness = w;
        }
        (tx, prevs)
    }

    #[test]
    fn multi_input_failure_names_the_last_input() {
        const N: usize = 40;
        let (tx, prev) = p2wpkh_multi(N, None);
        assert_eq!(verify_transaction(&tx, &prev, ALL), Ok(()));
        let (bad, prev) = p2wpkh_multi(N, Some(N - 1));
        assert_eq!(
            verify_transaction(&bad, &prev, ALL),
            Err((N - 1, ScriptError::VerifyFailed))
        );
        // One preparation serves every input.
        let prepared = PrecomputedTransaction::new(&bad, &prev).unwrap();
        assert_eq!(prepared.input_count(), N);
        for i in 0..N - 1 {
            assert_eq!(prepared.verify_input(i, ALL), Ok(()), "input {i}");
        }
        assert_eq!(
            prepared.verify_input(N - 1, ALL),
            Err(ScriptError::VerifyFailed)
        );
        assert_eq!(
            prepared.verify_input(N, ALL),
            Err(ScriptError::SpentOutputsMismatch)
        );
        assert_eq!(
            verify_tx_input(&bad, N - 1, &prev, ALL),
            Err(ScriptError::VerifyFailed)
        );
        assert_eq!(verify_tx_input(&bad, N - 2, &prev, ALL), Ok(()));
        // Through the pool, on the caller and on workers, jobs of 8 inputs
        // sharing the preparation.
        for threads in [0, 2] {
            let pool = ScriptCheckPool::new(threads).unwrap();
            let checks = vec![
                TxScriptCheck {
                    tx_index: 1,
                    tx: tx.clone(),
                    spent_outputs: prev.clone(),
                    flags: ALL,
                },
                TxScriptCheck {
                    tx_index: 2,
                    tx: bad.clone(),
                    spent_outputs: prev.clone(),
                    flags: ALL,
                },
            ];
            let f = pool.verify(checks).unwrap_err();
            assert_eq!(
                (f.tx_index, f.input_index, f.error),
                (2, N - 1, ScriptError::VerifyFailed),
                "threads={threads}"
            );
            let e = f.to_validation_error();
            assert_eq!(
                e.reason(),
                "mandatory-script-verify-flag-failed (script evaluation failed)"
            );
            assert_eq!((e.tx_index(), e.input_index()), (Some(2), Some(N - 1)));
        }
    }

    #[test]
    fn flag_constants_are_the_kernels() {
        // Core's SCRIPT_VERIFY_* bit positions (libbitcoinconsensus used the same).
        assert_eq!(VERIFY_NONE, 0);
        assert_eq!(VERIFY_P2SH, 1 << 0);
        assert_eq!(VERIFY_DERSIG, 1 << 2);
        assert_eq!(VERIFY_NULLDUMMY, 1 << 4);
        assert_eq!(VERIFY_CHECKLOCKTIMEVERIFY, 1 << 9);
        assert_eq!(VERIFY_CHECKSEQUENCEVERIFY, 1 << 10);
        assert_eq!(VERIFY_WITNESS, 1 << 11);
        assert_eq!(VERIFY_TAPROOT, 1 << 17);
        assert_eq!(VERIFY_ALL, bitcoinkernel::VERIFY_ALL);
    }

    /// Input 0 spends P2WPKH, input 1 P2TR (key path): the spent outputs
    /// must reach the kernel because of input 1. `corrupt` spoils input 1's
    /// signature.
    fn mixed_spend(corrupt: bool) -> (Transaction, Vec<TxOut>) {
        let secp = Secp256k1::new();
        let wpkh = CompressedPublicKey(key(5).public_key(&secp));
        let kp = Keypair::from_secret_key(&secp, &key(6));
        let prevs = vec![
            TxOut {
                value: Amount::from_sat(70_000),
                script_pubkey: ScriptBuf::new_p2wpkh(&wpkh.wpubkey_hash()),
            },
            TxOut {
                value: Amount::from_sat(30_000),
                script_pubkey: ScriptBuf::new_p2tr(&secp, kp.x_only_public_key().0, None),
            },
        ];
        let mut tx = unsigned_spend(2);
        let (w0, w1) = {
            let mut cache = SighashCache::new(&tx);
            let h0 = cache
                .p2wpkh_signature_hash(
                    0,
                    &prevs[0].script_pubkey,
                    prevs[0].value,
                    EcdsaSighashType::All,
                )
                .unwrap();
            let sig0 = secp.sign_ecdsa(&Message::from(h0), &key(5));
            let h1 = cache
                .taproot_key_spend_signature_hash(
                    1,
                    &Prevouts::All(&prevs),
                    TapSighashType::Default,
                )
                .unwrap();
            let tweaked = kp.tap_tweak(&secp, None);
            let mut sig1 = secp
                .sign_schnorr_no_aux_rand(&Message::from(h1), &tweaked.to_keypair())
                .serialize();
            if corrupt {
                sig1[3] ^= 1;
            }
            (
                Witness::p2wpkh(&bitcoin::ecdsa::Signature::sighash_all(sig0), &wpkh.0),
                Witness::p2tr_key_spend(&bitcoin::taproot::Signature::from_slice(&sig1).unwrap()),
            )
        };
        tx.input[0].witness = w0;
        tx.input[1].witness = w1;
        (tx, prevs)
    }

    #[test]
    fn mixed_segwit_and_taproot_inputs() {
        let (tx, prev) = mixed_spend(false);
        assert_eq!(verify_transaction(&tx, &prev, ALL), Ok(()));
        let (bad, prev) = mixed_spend(true);
        assert_eq!(
            verify_transaction(&bad, &prev, ALL),
            Err((1, ScriptError::VerifyFailed))
        );
        // The P2TR input's amount is committed to by the BIP341 hash of
        // every input's amounts; input 0's also by its BIP143 hash.
        let (tx, mut prev) = mixed_spend(false);
        prev[0].value = Amount::from_sat(70_001);
        assert_eq!(
            verify_transaction(&tx, &prev, ALL),
            Err((0, ScriptError::VerifyFailed))
        );
        assert_eq!(
            verify_tx_input(&tx, 1, &prev, ALL),
            Err(ScriptError::VerifyFailed)
        );
    }

    #[test]
    fn taproot_outputs_are_recognised_like_core() {
        let secp = Secp256k1::new();
        let xonly = Keypair::from_secret_key(&secp, &key(6))
            .x_only_public_key()
            .0;
        let p2tr = ScriptBuf::new_p2tr(&secp, xonly, None);
        assert!(is_taproot_output(&p2tr));
        let pk = CompressedPublicKey(key(5).public_key(&secp));
        let p2wpkh = ScriptBuf::new_p2wpkh(&pk.wpubkey_hash());
        assert!(!is_taproot_output(&p2wpkh));
        // A 32-byte v0 program (P2WSH), a v1 program of another length and
        // a v2 32-byte program are not taproot.
        let mut p2wsh = vec![0x00, 0x20];
        p2wsh.extend([7; 32]);
        assert!(!is_taproot_output(&ScriptBuf::from_bytes(p2wsh)));
        let mut v1_short = vec![0x51, 0x1f];
        v1_short.extend([7; 31]);
        assert!(!is_taproot_output(&ScriptBuf::from_bytes(v1_short)));
        let mut v2 = vec![0x52, 0x20];
        v2.extend([7; 32]);
        assert!(!is_taproot_output(&ScriptBuf::from_bytes(v2)));
        let mut v1_long = p2tr.to_bytes();
        v1_long.push(0x00);
        assert!(!is_taproot_output(&ScriptBuf::from_bytes(v1_long)));
        assert!(!is_taproot_output(&ScriptBuf::new()));
    }

    fn batch(bad_tx: Option<usize>) -> Vec<TxScriptCheck> {
        (0..12)
            .map(|i| {
                let (tx, prev) = match i % 3 {
                    0 => p2pkh_spend(&key(1), &key(if Some(i) == bad_tx { 2 } else { 1 })),
                    1 => p2wpkh_spend(&key(5), if Some(i) == bad_tx { 1 } else { 100_000 }),
                    _ => p2tr_spend(Some(i) == bad_tx),
                };
                TxScriptCheck {
                    tx_index: i + 1,
                    tx,
                    spent_outputs: prev,
                    flags: ALL,
                }
            })
            .collect()
    }

    #[test]
    fn pool_verifies_batches_in_parallel_and_reports_failure() {
        for threads in [0, 1, 3] {
            let pool = ScriptCheckPool::new(threads).unwrap();
            assert_eq!(pool.threads(), threads);
            assert_eq!(pool.verify(batch(None)), Ok(()), "threads={threads}");
            let f = pool.verify(batch(Some(5))).unwrap_err();
            assert_eq!(f.tx_index, 6);
            assert_eq!(f.input_index, 1);
            assert_eq!(f.error, ScriptError::VerifyFailed);
            let f = pool.verify(batch(Some(3))).unwrap_err();
            assert_eq!((f.tx_index, f.input_index), (4, 0));
            assert_eq!(pool.verify(Vec::new()), Ok(()));
            // A transaction that cannot be prepared is reported like a
            // failed input (input 0), not a panic.
            let mut short = batch(None);
            short[6].spent_outputs.pop();
            let f = pool.verify(short).unwrap_err();
            assert_eq!(
                (f.tx_index, f.input_index, f.error),
                (7, 0, ScriptError::SpentOutputsMismatch)
            );
            // The pool is reusable after a failure.
            assert_eq!(pool.verify(batch(None)), Ok(()));
        }
    }

    /// A block of a coinbase and `batch(None)`'s transactions, with the
    /// spent outputs of each non-coinbase transaction.
    fn batch_block() -> (Block, Vec<Vec<TxOut>>) {
        let checks = batch(None);
        let mut txdata = vec![crate::chain::check::tests::coinbase(1, 1)];
        let mut spent = Vec::new();
        for c in &checks {
            txdata.push(c.tx.clone());
            spent.push(c.spent_outputs.clone());
        }
        let block = Block {
            header: bitcoin::constants::genesis_block(Network::Regtest).header,
            txdata,
        };
        (block, spent)
    }

    #[test]
    fn pool_verify_block() {
        let pool = ScriptCheckPool::new(2).unwrap();
        let (block, mut spent) = batch_block();
        assert_eq!(pool.verify_block(&block, &spent, ALL), Ok(()));
        spent[4][0].value = Amount::from_sat(1); // p2wpkh tx at block index 5
        let f = pool.verify_block(&block, &spent, ALL).unwrap_err();
        assert_eq!((f.tx_index, f.input_index), (5, 0));
        let f = pool.verify_block(&block, &spent[1..], ALL).unwrap_err();
        assert_eq!(f.error, ScriptError::SpentOutputsMismatch);
    }

    #[test]
    fn pool_submit_block_runs_asynchronously_and_cancels() {
        let (block, spent) = batch_block();
        let block = Arc::new(block);
        let mut bad = spent.clone();
        bad[4][0].value = Amount::from_sat(1); // p2wpkh tx at block index 5
        for threads in [0, 1, 2] {
            let pool = ScriptCheckPool::new(threads).unwrap();
            // Two blocks in flight at once, waited for in order.
            let first = pool.submit_block(Arc::clone(&block), spent.clone(), ALL);
            let second = pool.submit_block(Arc::clone(&block), bad.clone(), ALL);
            assert_eq!(first.wait(), Ok(()), "threads={threads}");
            let f = second.wait().unwrap_err();
            assert_eq!(
                (f.tx_index, f.input_index, f.error),
                (5, 0, ScriptError::VerifyFailed)
            );
            // Dropped unwaited: cancelled, and the pool still works.
            drop(pool.submit_block(Arc::clone(&block), spent.clone(), ALL));
            let f = pool
                .submit_block(Arc::clone(&block), spent[1..].to_vec(), ALL)
                .wait()
                .unwrap_err();
            assert_eq!(f.error, ScriptError::SpentOutputsMismatch);
            let mut short = spent.clone();
            short[6].pop();
            let f = pool
                .submit_block(Arc::clone(&block), short, ALL)
                .wait()
                .unwrap_err();
            assert_eq!(
                (f.tx_index, f.input_index, f.error),
                (7, 0, ScriptError::SpentOutputsMismatch)
            );
            assert_eq!(
                pool.submit_block(Arc::clone(&block), spent.clone(), ALL)
                    .wait(),
                Ok(())
            );
        }
    }

    #[test]
    fn block_submission_transaction_by_transaction() {
        let (block, spent) = batch_block();
        let block = Arc::new(block);
        for threads in [0, 2] {
            let pool = ScriptCheckPool::new(threads).unwrap();
            let mut s = pool.begin_block(Arc::clone(&block), ALL);
            for (i, out) in spent.iter().enumerate() {
                s.push(i + 1, out.clone());
            }
            assert_eq!(s.finish().wait(), Ok(()), "threads={threads}");
            // One bad transaction per batch (with two, whichever fails
            // first may stop the other): a wrong amount, a short list.
            for (bad, error) in [
                (5, ScriptError::VerifyFailed),
                (9, ScriptError::SpentOutputsMismatch),
            ] {
                let mut s = pool.begin_block(Arc::clone(&block), ALL);
                for (i, out) in spent.iter().enumerate() {
                    let mut out = out.clone();
                    if i + 1 == bad && bad == 5 {
                        out[0].value = Amount::from_sat(1);
                    } else if i + 1 == bad {
                        out.clear();
                    }
                    s.push(i + 1, out);
                }
                let f = s.finish().wait().unwrap_err();
                assert_eq!(
                    (f.tx_index, f.input_index, f.error),
                    (bad, 0, error),
                    "threads={threads}"
                );
            }
            // Dropped before `finish` (another check failed): no hang, and
            // the pool goes on.
            let mut s = pool.begin_block(Arc::clone(&block), ALL);
            s.push(1, spent[0].clone());
            drop(s);
            let mut s = pool.begin_block(Arc::clone(&block), ALL);
            s.push(3, spent[2].clone());
            assert_eq!(s.finish().wait(), Ok(()));
        }
    }
}
