//! AbortNode (issue 10): a fatal chain error stops the node. Through the
//! binary: it exits with status 1 and the reason on stderr. Through the
//! embedding API: the `Fatal` event arrives, the handle reports the node
//! stopped, and it takes no more peers. The store failure is injected
//! deterministically with the test-only `--testfaultheight` /
//! `Config::test_fault_height` (a failed write once the chain reaches that
//! height).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use strand::events::NodeEvent;
use strand::rpc::client::{call, ClientAuth};

const ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

#[test]
fn binary_exits_non_zero_with_the_reason_on_a_fatal_store_error() {
    let mut node = NodeProcess::start(&["--testfaultheight", "3"]);
    let rpc = node.rpc_addr();
    let auth = ClientAuth::Cookie(node.cookie());
    let hashes = call(rpc, &auth, "generatetoaddress", vec![json!(3), json!(ADDR)])
        .expect("generatetoaddress");
    assert_eq!(hashes.as_array().map(|a| a.len()), Some(3));

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = node.child.try_wait().expect("wait for strand") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = status.expect("strand exits by itself after a fatal error");
    assert_eq!(status.code(), Some(1), "exit status {status:?}");
    // The reader thread may still be collecting the last lines.
    assert!(
        wait_until(Duration::from_secs(5), || node.log_contains(
            "strand: fatal error: injected fault: store write failed at height 3"
        )),
        "reason on stderr: {:?}",
        node.log_lines()
    );
    assert!(node.log_contains("shutdown complete"), "clean shutdown");
}

#[test]
fn embedder_gets_the_fatal_event_and_the_node_stops() {
    let node = TestNode::start(|c| c.test_fault_height = Some(2));
    let sub = node.handle.subscribe(64).unwrap();
    let mut peer = FakePeer::connect(node.addr).unwrap();
    peer.handshake(0, SERVES).unwrap();
    assert!(node.handle.is_running());

    node.handle
        .generate(2, bitcoin::ScriptBuf::from(vec![0x51]), vec![])
        .expect("generate");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reason = None;
    while reason.is_none() && Instant::now() < deadline {
        if let Ok(NodeEvent::Fatal { reason: r }) =
            sub.events.recv_timeout(Duration::from_millis(100))
        {
            reason = Some(r);
        }
    }
    let reason = reason.expect("a Fatal event");
    assert!(reason.contains("injected fault"), "{reason}");
    assert_eq!(node.handle.fatal_error(), Some(reason));
    assert!(!node.handle.is_running());
    assert!(matches!(
        node.handle.snapshot(),
        Err(strand::NodeError::Stopped)
    ));
    // Its peers are dropped and new ones are not taken.
    assert!(peer.closed_within(Duration::from_secs(10)), "peer dropped");
    let mut late = FakePeer::connect(node.addr).unwrap();
    assert!(late.handshake(0, SERVES).is_err() || late.closed_within(Duration::from_secs(10)));
}
