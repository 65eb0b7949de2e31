//! Surviving hostile peers, through the real binary: manual bans persist
//! across restarts in `banlist.json` (a damaged file is set aside, never
//! fatal), and inbound connections cannot take the slots kept for
//! outbound ones.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use strand::rpc::client::{call, ClientAuth};

fn rpc(node: &NodeProcess, datadir: &Path, method: &str, params: Value) -> Value {
    let auth = ClientAuth::Cookie(datadir.join("regtest").join(".cookie"));
    let params = params.as_array().cloned().unwrap_or_default();
    call(node.rpc_addr(), &auth, method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
}

#[test]
fn setban_survives_a_restart_and_a_corrupt_banlist_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().to_str().unwrap();
    let banlist = dir.path().join("regtest").join("banlist.json");

    let mut node = NodeProcess::start_in(datadir, &[]);
    assert_eq!(
        rpc(
            &node,
            dir.path(),
            "setban",
            json!(["127.0.0.9", "add", 3600])
        ),
        Value::Null
    );
    assert_eq!(
        rpc(
            &node,
            dir.path(),
            "setban",
            json!(["10.1.0.0/16", "add", 3600])
        ),
        Value::Null
    );
    assert_eq!(
        rpc(
            &node,
            dir.path(),
            "setban",
            json!(["10.1.0.0/16", "remove"])
        ),
        Value::Null
    );
    // Written when the bans change, before any shutdown.
    let text = std::fs::read_to_string(&banlist).expect("banlist.json written on setban");
    assert!(
        text.contains("127.0.0.9/32") && !text.contains("10.1.0.0"),
        "{text}"
    );
    let status = node.terminate(Duration::from_secs(20)).expect("node stops");
    assert!(status.success(), "{status:?}");

    let mut node = NodeProcess::start_in(datadir, &[]);
    let banned = rpc(&node, dir.path(), "listbanned", json!([]));
    let list = banned.as_array().expect("array");
    assert_eq!(list.len(), 1, "{banned}");
    assert_eq!(list[0]["address"], "127.0.0.9/32");
    let until = list[0]["banned_until"].as_u64().expect("banned_until");
    let created = list[0]["ban_created"].as_u64().expect("ban_created");
    assert_eq!(until - created, 3600);
    assert!(node.terminate(Duration::from_secs(20)).is_some());

    // A damaged file: the node starts with no bans and keeps the bad file
    // aside; the next ban writes a fresh list.
    std::fs::write(&banlist, b"{\"banned_nets\": [ garbage").unwrap();
    let mut node = NodeProcess::start_in(datadir, &[]);
    assert_eq!(rpc(&node, dir.path(), "listbanned", json!([])), json!([]));
    assert!(
        node.log_contains("ignoring ban list"),
        "{:?}",
        node.log_lines()
    );
    assert_eq!(
        std::fs::read(banlist.with_extension("json.bad")).unwrap(),
        b"{\"banned_nets\": [ garbage"
    );
    rpc(
        &node,
        dir.path(),
        "setban",
        json!(["127.0.0.10", "add", 60]),
    );
    assert!(std::fs::read_to_string(&banlist)
        .unwrap()
        .contains("127.0.0.10/32"));
    assert!(node.terminate(Duration::from_secs(20)).is_some());
}

#[test]
fn inbound_peers_cannot_take_the_slot_of_a_connect_target() {
    // With --maxpeers 1 the one inbound slot (kept for reachability) is
    // also the whole limit: only the manual allowance beyond it lets the
    // node dial its --connect target.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap().to_string();
    let node = NodeProcess::start(&["--maxpeers", "1", "--connect", &target_addr]);

    // End the first dial at once: the node redials after its back-off
    // (5 s), by which time inbound peers hold every slot they may.
    drop(accept_within(&target, Duration::from_secs(10)));
    let mut inbound = FakePeer::connect(node.addr()).unwrap();
    inbound
        .handshake(0, bitcoin::p2p::ServiceFlags::NETWORK)
        .expect("first inbound peer gets the inbound slot");
    let mut extra = FakePeer::connect(node.addr()).unwrap();
    assert!(
        extra.closed_within(Duration::from_secs(5)),
        "a second inbound peer was accepted"
    );

    let stream = accept_within(&target, Duration::from_secs(15));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut outbound = FakePeer::from_parts(stream, reader);
    outbound
        .handshake(0, bitcoin::p2p::ServiceFlags::NETWORK)
        .expect("the node completes the handshake with its --connect target");
    outbound.ping(7).expect("outbound connection is alive");
    inbound.ping(8).expect("inbound peer kept its slot");
    assert!(
        node.log_contains("connected to peer="),
        "{:?}",
        node.log_lines()
    );
}
