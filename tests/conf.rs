//! The config file and Core's option names, from outside: a node
//! configured only by `<datadir>/strand.conf` (network, sections, RPC
//! credentials, listen address, PID file) and `strand cli` reading the
//! same file; command line over file; the one-line exit-2 errors for an
//! unknown key, a missing `--conf` file and `-daemon`; `~` expansion; log
//! options and `rpccookiefile`/`rpcconnect` read from files.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::strand_bin;

/// A port no one listens on right now (the OS picks it; the listener is
/// closed before the node binds it).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `strand` child killed and reaped on drop unless it already exited.
struct Node {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let mut child = Command::new(strand_bin())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strand");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits (at most 20 s) for a log line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.log.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// SIGTERM, then waits at most 20 s for a clean exit.
    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run(args: &[&str], home: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(strand_bin());
    cmd.args(args).stdin(Stdio::null());
    if let Some(h) = home {
        cmd.env("HOME", h);
    }
    let out = cmd.output().expect("run strand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 2 with exactly one line on stderr containing every needle.
fn assert_one_line_error(args: &[&str], home: Option<&Path>, needles: &[&str]) {
    let (code, _, err) = run(args, home);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
}

#[test]
fn node_and_cli_configured_by_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let port = free_port();
    // The [test] section's values would make the node fail (port 1, a
    // bad number): they must not apply on regtest.
    std::fs::write(
        dir.path().join("strand.conf"),
        format!(
            "# strand.conf written by the test\n\
             regtest=1\n\
             \n\
             [regtest]\n\
             rpcport={port}   # comment after a value\n\
             rpcuser=u\n\
             rpcpassword=p\n\
             listen=127.0.0.1:0\n\
             pid=strand.pid\n\
             nodnsseed=1\n\
             [test]\n\
             rpcport=1\n\
             maxconnections=lots\n"
        ),
    )
    .unwrap();
    let mut node = Node::start(&["--datadir", d]);
    let rpc_line = node.wait_line("JSON-RPC listening on");
    assert!(
        rpc_line
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!("127.0.0.1:{port}"))),
        "{rpc_line:?} {:?}",
        node.log
    );
    let pid_path = dir.path().join("regtest").join("strand.pid");
    let pid = std::fs::read_to_string(&pid_path).expect("PID file written");
    assert_eq!(pid.trim(), node.child.id().to_string());
    // User and password from the file: no cookie is written.
    assert!(!dir.path().join("regtest").join(".cookie").exists());

    let (code, out, err) = run(&["cli", "--datadir", d, "getblockcount"], None);
    assert_eq!((code, out.trim()), (0, "0"), "{err}");
    let (code, out, err) = run(&["cli", "--datadir", d, "getblockchaininfo"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"chain\": \"regtest\""), "{out}");
    // The command line beats the file: wrong credentials fail.
    let (code, _, err) = run(
        &[
            "cli",
            "--datadir",
            d,
            "--rpcpassword",
            "wrong",
            "getblockcount",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("Authorization failed"), "{err}");

    assert!(node.terminate(), "clean exit");
    assert!(!pid_path.exists(), "PID file removed at shutdown");
}

#[test]
fn command_line_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let file_port = free_port();
    let cmd_port = free_port();
    std::fs::write(
        dir.path().join("strand.conf"),
        format!(
            "chain=regtest\nrpcport={file_port}\nrpcuser=u\nrpcpassword=p\n\
             listen=127.0.0.1:0\n"
        ),
    )
    .unwrap();
    let port_arg = cmd_port.to_string();
    let mut node = Node::start(&["--datadir", d, "--rpcport", &port_arg]);
    let rpc_line = node.wait_line("JSON-RPC listening on");
    assert!(
        rpc_line
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!("127.0.0.1:{cmd_port}"))),
        "{rpc_line:?} {:?}",
        node.log
    );
    let (code, out, err) = run(
        &[
            "cli",
            "--datadir",
            d,
            "--rpcport",
            &port_arg,
            "getblockcount",
        ],
        None,
    );
    assert_eq!((code, out.trim()), (0, "0"), "{err}");
    assert!(node.terminate(), "clean exit");
}

#[test]
fn config_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let conf = dir.path().join("strand.conf");
    std::fs::write(&conf, "regtest=1\n# fine\nbogus=1\n").unwrap();
    let named = format!("{}:3", conf.display());
    assert_one_line_error(&["--datadir", d], None, &[&named, "bogus"]);
    // An unknown section is an error too.
    std::fs::write(&conf, "[mars]\nrpcport=1\n").unwrap();
    assert_one_line_error(&["--datadir", d], None, &["strand.conf:1", "mars"]);

    let missing = dir.path().join("nope.conf");
    let m = missing.to_str().unwrap();
    assert_one_line_error(&["--datadir", d, "--conf", m], None, &["nope.conf"]);
    // `strand cli` exits 1 on its errors, as bitcoin-cli.
    let (code, _, err) = run(&["cli", "--conf", m, "getblockcount"], None);
    assert_eq!(code, 1);
    assert!(err.contains("nope.conf"), "{err}");

    let (code, _, err) = run(&["--regtest", "-daemon"], None);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim_end(),
        "strand: -daemon is not supported: run strand under your service manager (systemd, runit, ...)"
    );
}

#[test]
fn tilde_expands_to_home_for_conf_and_datadir() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("x.conf"), "bogus=1\n").unwrap();
    let want = format!("{}:1", home.path().join("x.conf").display());
    assert_one_line_error(&["--conf", "~/x.conf"], Some(home.path()), &[&want]);

    std::fs::create_dir(home.path().join("d")).unwrap();
    std::fs::write(home.path().join("d").join("strand.conf"), "\nbogus=2\n").unwrap();
    let want = format!("{}:2", home.path().join("d").join("strand.conf").display());
    assert_one_line_error(&["--datadir", "~/d"], Some(home.path()), &[&want]);
}

#[test]
fn log_options_and_cli_cookie_file_from_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("strand.conf"),
        format!(
            "chain=regtest\n[regtest]\nrpcport={port}\nlisten=127.0.0.1:0\n\
             debug=net\ndebuglogfile=node.log\nrpccookiefile=node.cookie\n"
        ),
    )
    .unwrap();
    let mut node = Node::start(&["--datadir", d]);
    assert!(
        node.wait_line("JSON-RPC listening on").is_some(),
        "{:?}",
        node.log
    );
    let log_file = dir.path().join("regtest").join("node.log");
    assert!(!dir.path().join("regtest").join("debug.log").exists());

    // The client's own file: another (empty) data directory, so only the
    // file's `rpccookiefile` can find the node's cookie.
    let client = tempfile::tempdir().unwrap();
    let cookie = client.path().join("copied.cookie");
    // The node wrote its cookie where its file said (relative to regtest/).
    assert!(!dir.path().join("regtest").join(".cookie").exists());
    std::fs::copy(dir.path().join("regtest").join("node.cookie"), &cookie).unwrap();
    let conf = client.path().join("cli.conf");
    std::fs::write(
        &conf,
        format!(
            "regtest=1\ndatadir={}\nrpcconnect=127.0.0.1\nrpcport={port}\nrpccookiefile={}\n",
            client.path().display(),
            cookie.display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(
        &["cli", "--conf", conf.to_str().unwrap(), "getblockcount"],
        None,
    );
    assert_eq!((code, out.trim()), (0, "0"), "{err}");
    std::fs::remove_file(&cookie).unwrap();
    let (code, _, err) = run(
        &["cli", "--conf", conf.to_str().unwrap(), "getblockcount"],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("copied.cookie"), "{err}");

    assert!(node.terminate(), "clean exit");
    let text = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(text.contains("JSON-RPC listening on"), "{text}");
    // An unknown category in a file is refused like on the command line.
    std::fs::write(dir.path().join("strand.conf"), "regtest=1\ndebug=chatty\n").unwrap();
    assert_one_line_error(
        &["--datadir", d],
        None,
        &["Unsupported logging category -debug=chatty."],
    );
}
