//! Runs `scripts/regtest-network.sh` and `scripts/regtest-race.sh` against
//! the binary under test (`STRAND_BIN` = `CARGO_BIN_EXE_strand`).
//!
//! The scripts need the `regtest_tx` and `storm` examples, which an
//! integration test cannot depend on, so the first test to run builds them
//! with `cargo build --example regtest_tx --example storm` into this test's
//! own target directory and profile (derived from the test executable's
//! path, `<target>/<profile>/deps/scripts-*`); under `cargo test` they are
//! usually up to date and the build is a no-op. The two scripts run one
//! after the other (a lock), each under a watchdog: SIGTERM (the script's
//! trap stops its nodes) then SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Serialises the scripts: each starts several nodes, on two shared cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Builds the examples once; returns their directory.
fn examples_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--example", "regtest_tx", "--example", "storm"])
            .arg("--target-dir")
            .arg(target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let started = Instant::now();
        let out = cmd.output().expect("run cargo build for the examples");
        assert!(
            out.status.success(),
            "building the examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "examples built (or up to date) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        profile_dir.join("examples")
    })
}

/// Runs `scripts/NAME` with the test's binary and examples; returns its
/// combined output after asserting exit status 0 within `limit`.
fn run_script(name: &str, limit: Duration) -> String {
    let examples = examples_dir();
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out_path = out_dir.path().join("output");
    let out_file = std::fs::File::create(&out_path).expect("output file");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .current_dir(root)
        .env("STRAND_BIN", env!("CARGO_BIN_EXE_strand"))
        .env("STRAND_EXAMPLES", examples)
        .env_remove("KEEP_TMP")
        .env_remove("STRAND_LOG")
        .env_remove("STRAND_BLOCKS")
        .env_remove("STRAND_STORM_PEERS")
        .env_remove("STRAND_STORM_WAVES")
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("clone output file"))
        .stderr(out_file)
        .spawn()
        .expect("start bash");
    let mut status = None;
    while started.elapsed() < limit {
        if let Some(s) = child.try_wait().expect("wait for the script") {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let Some(status) = status else {
        // SIGTERM lets the script's trap stop its nodes and remove its
        // directory; SIGKILL if it does not end within 10 s.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{name} did not finish within {limit:?}; output:\n{}",
            output(&out_path)
        );
    };
    let text = output(&out_path);
    eprintln!(
        "{name}: {status} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "{name} failed ({status}); output:\n{text}"
    );
    text
}

/// Asserts that some line of `output` contains every one of `parts`.
fn assert_line(output: &str, parts: &[&str]) {
    assert!(
        output.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no line with {parts:?} in:\n{output}"
    );
}

#[test]
fn regtest_network_script() {
    let out = run_script("regtest-network.sh", Duration::from_secs(90));
    assert_line(&out, &["connected: A=1 B=2 C=1 peers"]);
    assert_line(&out, &["node C: height 110, tip"]);
    assert_line(&out, &["mempools equal on A, B and C (4 transactions)"]);
    assert_line(&out, &["(height 111) holds the 4 transactions"]);
    for node in ["A", "B", "C"] {
        assert_line(&out, &[&format!("node {node}: tip"), "mempool size 0"]);
        assert_line(&out, &[&format!("node {node} stopped (exit 0)")]);
    }
    assert_line(&out, &["tips equal, mempools empty everywhere"]);
    assert_line(&out, &["[regtest-network] OK"]);
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn regtest_race_script() {
    let out = run_script("regtest-race.sh", Duration::from_secs(120));
    assert_line(&out, &["storm: 2000 connections", "2000 ok, 0 errors"]);
    assert_line(
        &out,
        &["S after the storm: connections=0 peers=0 sync_known=0 sync_peer=null candidates=[]"],
    );
    let anomalies = out
        .lines()
        .filter(|l| l.contains("S anomalies: done_peer_unknown=0 new_peer_after_done=0"))
        .count();
    assert_eq!(
        anomalies, 2,
        "anomaly checks after the storm and the sync:\n{out}"
    );
    assert_line(&out, &["S synced from M: height 150"]);
    assert_line(&out, &["S follows M: height 155"]);
    assert_line(&out, &["node S stopped (exit 0)"]);
    assert_line(&out, &["[regtest-race] OK"]);
    assert!(!out.contains("FAILED"), "{out}");
}
