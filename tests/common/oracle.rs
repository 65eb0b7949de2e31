//! Bitcoin Core's own validation engine (libbitcoinkernel, through the
//! `bitcoinkernel` crate) as a differential oracle for the tests.
//!
//! An [`Oracle`] is a regtest `ChainstateManager` of the kernel in a
//! temporary directory (block index and UTXO set in memory). Blocks are
//! handed to it one at a time with [`Oracle::submit`], which reports Core's
//! [`Verdict`] on that block: [`Verdict::Connected`] when Core validated it in
//! full and made it part of its active chain, [`Verdict::Stored`] when Core
//! only checked it context-free and stored it on a side branch with no more
//! work than its tip (Core validates such a block only if its branch later
//! becomes the best one), [`Verdict::Duplicate`] for a block it already had,
//! and [`Verdict::Rejected`] with Core's reject reason (`bad-txnmrklroot`,
//! `bad-cb-amount`, `block-script-verify-flag-failed (...)`, ...). A block
//! whose parent Core does not know is rejected with `prev-blk-not-found`.
//!
//! Where the verdicts come from: the kernel's validation interface calls
//! `BlockChecked` (valid or not) for every block it connects or fails, and
//! for every block it rejects before storing; that callback carries the
//! validation mode and result class but not the reject reason string, so the
//! reason is read from the error lines Core logs for the same call
//! (`ProcessNewBlock: AcceptBlock FAILED (reason, debug)` and
//! `ConnectTip: ConnectBlock <hash> failed, reason, debug`). A submission may
//! also validate other, earlier stored blocks (a reorganisation onto a branch
//! that turns out invalid): [`Submission::checked`] lists every block checked
//! during the call, and [`Oracle::verdict_of`] remembers the last verdict per
//! block. [`Oracle::tip`] is Core's active tip: compare it with strand's after
//! a sequence of blocks.
//!
//! The kernel runs in a child process, the `kernel_oracle` example
//! (`examples/kernel_oracle.rs`), one per oracle, spoken to over its stdin
//! and stdout, so the kernel's process-wide state (its logging, the
//! chainstate) stays apart from the strand under test. The example is built by `cargo test`
//! (all targets); a test run with target filters builds it on first use with
//! `cargo build --example kernel_oracle` (same profile and target dir).
//! Oracle methods block the calling test thread on the child's answer; the
//! child is killed and reaped when the oracle is dropped. Setup is cheap: no
//! disk database, and a 120-block chain is fed in well under a second in
//! release builds.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};

/// Core's verdict on one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Fully validated and connected to the active chain.
    Connected,
    /// Stored without full validation: on a branch with no more work than
    /// the active chain. Core says nothing yet about its transactions.
    Stored,
    /// Already known to Core (same hash, data already stored).
    Duplicate,
    /// Rejected.
    Rejected {
        /// Core's `BlockValidationResult` class (`Consensus`, `Mutated`, ...).
        class: String,
        /// Core's reject reason (`bad-txnmrklroot`, ...), or `class` in lower
        /// case when Core logged no reason for it.
        reason: String,
        /// The reason followed by Core's debug message, as Core logged it.
        full: String,
    },
}

impl Verdict {
    /// Whether Core refused the block.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Verdict::Rejected { .. })
    }

    /// Core's reject reason, if rejected.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// What one [`Oracle::submit`] call did.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The verdict on the submitted block.
    pub verdict: Verdict,
    /// Every block Core checked during the call (connected or failed), in
    /// order; may include earlier blocks of a branch Core tried to activate.
    pub checked: Vec<(BlockHash, Verdict)>,
}

/// One `BlockChecked` notification.
struct Checked {
    hash: BlockHash,
    valid: bool,
    class: String,
}

/// Serialises the one-off build of the helper among test threads.
static BUILD: Mutex<()> = Mutex::new(());
/// Longest wait for building the helper (it may compile Bitcoin Core).
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// The `kernel_oracle` example next to this test binary
/// (`target/<profile>/deps/<test>` → `target/<profile>/examples/`), built
/// first if missing.
fn helper_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary under target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("kernel_oracle{}", std::env::consts::EXE_SUFFIX));
    let _build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return path;
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--example", "kernel_oracle", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        if let Some(target) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
    }
    let mut child = cmd.spawn().expect("start cargo to build kernel_oracle");
    let deadline = Instant::now() + BUILD_TIMEOUT;
    loop {
        match child.try_wait().expect("wait for cargo") {
            Some(status) => {
                assert!(status.success(), "building kernel_oracle failed: {status}");
                break;
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("building kernel_oracle took over {BUILD_TIMEOUT:?}");
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    assert!(path.exists(), "kernel_oracle not at {}", path.display());
    path
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hash_from_hex(s: &str) -> BlockHash {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = s
            .get(2 * i..2 * i + 2)
            .and_then(|x| u8::from_str_radix(x, 16).ok())
            .unwrap_or_else(|| panic!("bad hash from kernel_oracle: {s:?}"));
    }
    BlockHash::from_byte_array(bytes)
}

/// A regtest Bitcoin Core chainstate (in a child process) in a temporary
/// directory.
pub struct Oracle {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    verdicts: HashMap<BlockHash, Verdict>,
    // Dropped after the child is reaped (see `Drop`).
    _dir: tempfile::TempDir,
}

impl Oracle {
    /// A fresh regtest chainstate at the genesis block.
    pub fn new() -> Oracle {
        let dir = tempfile::tempdir().expect("oracle temp dir");
        let mut child = Command::new(helper_path())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kernel_oracle");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Oracle {
            child,
            stdin,
            stdout,
            verdicts: HashMap::new(),
            _dir: dir,
        }
    }

    /// A chainstate holding `blocks` (index = height; the genesis block at
    /// index 0 is skipped). Panics unless Core connects every block.
    pub fn with_chain(blocks: &[Block]) -> Oracle {
        let mut o = Oracle::new();
        o.feed_chain(blocks);
        o
    }

    /// Feeds a chain in order, skipping the genesis block if present, and
    /// panics unless Core connects every block.
    pub fn feed_chain(&mut self, blocks: &[Block]) {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
        for (i, b) in blocks.iter().enumerate() {
            if b.block_hash() == genesis {
                continue;
            }
            let s = self.submit(b);
            assert_eq!(
                s.verdict,
                Verdict::Connected,
                "Core did not connect block {i} ({}) of the chain",
                b.block_hash()
            );
        }
    }

    fn request(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("oracle stdin open");
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.write_all(b"\n"))
            .and_then(|_| stdin.flush())
            .expect("write to kernel_oracle (did it crash?)");
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .expect("read from kernel_oracle");
        assert!(n > 0, "kernel_oracle exited");
        line.trim_end().to_string()
    }

    /// Hands `block` to Core (`ProcessNewBlock`) and reports what it did.
    pub fn submit(&mut self, block: &Block) -> Submission {
        let hash = block.block_hash();
        let bytes = bitcoin::consensus::encode::serialize(block);
        self.request(&format!("B {}", hex(&bytes)));
        let mut checked = Vec::new();
        let mut lines = Vec::new();
        let result = loop {
            let line = self.read_line();
            if let Some(r) = line.strip_prefix("R ") {
                break r.to_string();
            } else if let Some(l) = line.strip_prefix("L ") {
                lines.push(l.to_string());
            } else if let Some(c) = line.strip_prefix("C ") {
                let mut parts = c.split(' ');
                let (Some(h), Some(v), Some(class)) = (parts.next(), parts.next(), parts.next())
                else {
                    panic!("bad line from kernel_oracle: {line:?}");
                };
                checked.push(Checked {
                    hash: hash_from_hex(h),
                    valid: v == "1",
                    class: class.to_string(),
                });
            } else {
                panic!("unexpected line from kernel_oracle: {line:?}");
            }
        };
        let mut out = Vec::new();
        for c in &checked {
            let v = if c.valid {
                Verdict::Connected
            } else {
                rejected(&c.class, reason_for(&lines, &c.hash, c.hash == hash))
            };
            self.verdicts.insert(c.hash, v.clone());
            out.push((c.hash, v));
        }
        let own = out
            .iter()
            .rev()
            .find(|(h, _)| *h == hash)
            .map(|(_, v)| v.clone());
        let verdict = match (own, result.as_str()) {
            (Some(v), _) => v,
            (None, "new") => Verdict::Stored,
            (None, "duplicate") => Verdict::Duplicate,
            (None, "unparsable") => Verdict::Rejected {
                class: "Unparsable".into(),
                reason: "unparsable".into(),
                full: "unparsable".into(),
            },
            (None, _) => rejected("Unset", reason_for(&lines, &hash, true)),
        };
        if !matches!(verdict, Verdict::Duplicate) {
            self.verdicts.insert(hash, verdict.clone());
        }
        Submission {
            verdict,
            checked: out,
        }
    }

    /// The last verdict Core gave on `hash` (from any submission).
    pub fn verdict_of(&self, hash: &BlockHash) -> Option<&Verdict> {
        self.verdicts.get(hash)
    }

    fn tip_and_height(&mut self) -> (BlockHash, u32) {
        self.request("T");
        let line = self.read_line();
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("T"), Some(h), Some(n)) => (
                hash_from_hex(h),
                n.parse().unwrap_or_else(|_| panic!("bad height {n:?}")),
            ),
            _ => panic!("unexpected line from kernel_oracle: {line:?}"),
        }
    }

    /// Core's active tip.
    pub fn tip(&mut self) -> BlockHash {
        self.tip_and_height().0
    }

    /// Core's active chain height.
    pub fn height(&mut self) -> u32 {
        self.tip_and_height().1
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Closing stdin ends the child's loop; kill it if it lingers.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle::new()
    }
}

fn rejected(class: &str, full: Option<String>) -> Verdict {
    let class = class.to_string();
    let full = full.unwrap_or_else(|| class.to_lowercase());
    Verdict::Rejected {
        reason: reason_token(&full).to_string(),
        class,
        full,
    }
}

/// Core's logged `reason, debug` text for block `hash`: the `ConnectBlock
/// <hash> failed, ...` line naming it, or (for the submitted block) the
/// `AcceptBlock FAILED (...)` line of the call.
fn reason_for(lines: &[String], hash: &BlockHash, submitted: bool) -> Option<String> {
    let hex = hash.to_string();
    for l in lines {
        if let Some(i) = l.find("ConnectBlock ") {
            let rest = &l[i + "ConnectBlock ".len()..];
            if let Some(r) = rest.strip_prefix(&hex) {
                if let Some(r) = r.strip_prefix(" failed, ") {
                    return Some(r.trim().to_string());
                }
            }
        }
    }
    if submitted {
        for l in lines {
            if let Some(i) = l.find("AcceptBlock FAILED (") {
                let rest = l[i + "AcceptBlock FAILED (".len()..].trim_end();
                let rest = rest.strip_suffix(')').unwrap_or(rest);
                return Some(rest.to_string());
            }
        }
    }
    None
}

/// The reject reason of Core's `reason, debug` text: everything before the
/// first `", "` outside parentheses (`block-script-verify-flag-failed (...)`
/// keeps its parenthesised script error).
pub fn reason_token(full: &str) -> &str {
    let mut depth = 0i32;
    let bytes = full.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 && bytes.get(i + 1) == Some(&b' ') => return &full[..i],
            _ => {}
        }
    }
    full
}

/// The comparable core of a reject reason, from strand (`reason: detail`,
/// `reason (script error): detail`) or Core (`reason (script error), debug`):
/// the reason word without parenthesised script error, version number
/// (`bad-version(0x00000001)`) or detail, with the
/// one naming difference mapped: strand says `mandatory-script-verify-flag-
/// failed` (Core until v29), this Core says `block-script-verify-flag-failed`
/// for the same block-level script failure.
pub fn normalize_reason(reason: &str) -> &str {
    let end = reason.find([' ', ':', ',', '(']).unwrap_or(reason.len());
    match &reason[..end] {
        "block-script-verify-flag-failed" => "mandatory-script-verify-flag-failed",
        r => r,
    }
}

/// Whether strand's reject reason and Core's name the same rule.
pub fn same_reason(strand: &str, core: &str) -> bool {
    normalize_reason(strand) == normalize_reason(core)
}

/// Asserts that Core rejected a block for the same reason as strand.
pub fn assert_core_rejects_like(core: &Verdict, strand_reason: &str, what: &str) {
    match core {
        Verdict::Rejected { reason, full, .. } => assert!(
            same_reason(strand_reason, reason),
            "{what}: strand and Core reject for different reasons: strand `{strand_reason}`, \
             Core `{full}`"
        ),
        other => panic!(
            "{what}: strand rejects (`{strand_reason}`) but Core's verdict is {other:?}: \
             a consensus split"
        ),
    }
}
