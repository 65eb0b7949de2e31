//! Peer statistics over JSON-RPC (issue 11): `getpeerinfo` with Core's
//! fields and types after real traffic, `getnettotals`, and `ping` (the
//! round trip then shows as `pingtime`/`minping`).

mod common;

use std::time::{Duration, Instant};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use common::*;
use serde_json::Value;
use strand::rpc::client::{call, ClientAuth};

fn rpc(node: &NodeProcess, method: &str) -> Value {
    call(
        node.rpc_addr(),
        &ClientAuth::Cookie(node.cookie()),
        method,
        vec![],
    )
    .unwrap_or_else(|e| panic!("{method}: {e}"))
}

#[test]
fn getpeerinfo_getnettotals_and_ping_have_cores_shapes() {
    let node = NodeProcess::start(&[]);
    let mut peer = FakePeer::connect(node.addr()).unwrap();
    peer.handshake(0, SERVES).unwrap();
    // Two addresses: the first uses the peer's one starting token, the
    // second is rate-limited (Core's token bucket, 0.1/s).
    let a: std::net::SocketAddr = "1.2.3.4:8333".parse().unwrap();
    let b: std::net::SocketAddr = "5.6.7.8:8333".parse().unwrap();
    let now = strand::unix_time() as u32;
    peer.send(NetworkMessage::Addr(vec![
        (now, Address::new(&a, SERVES)),
        (now, Address::new(&b, SERVES)),
    ]))
    .unwrap();
    peer.ping(7).unwrap();

    // `ping`: the node pings every peer; the fake peer answers.
    assert_eq!(rpc(&node, "ping"), Value::Null);
    let msg = peer
        .recv_until("the node's ping", |m| matches!(m, NetworkMessage::Ping(_)))
        .unwrap();
    let NetworkMessage::Ping(nonce) = msg else {
        unreachable!()
    };
    peer.send(NetworkMessage::Pong(nonce)).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let info = loop {
        let list = rpc(&node, "getpeerinfo");
        let info = list.as_array().and_then(|l| l.first()).cloned();
        if let Some(i) = info.filter(|i| i.get("pingtime").is_some()) {
            if i["addr_processed"].as_u64().unwrap_or(0)
                + i["addr_rate_limited"].as_u64().unwrap_or(0)
                == 2
            {
                break i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pingtime and addr counts in getpeerinfo"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let now = strand::unix_time();
    for field in ["conntime", "lastsend", "lastrecv"] {
        let t = info[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {info}"));
        assert!(t > 1_600_000_000 && t <= now, "{field} = {t}");
    }
    assert!(info["bytessent"].as_u64().unwrap() > 0);
    assert!(info["bytesrecv"].as_u64().unwrap() > 0);
    let ping = info["pingtime"].as_f64().expect("pingtime is a number");
    let minping = info["minping"].as_f64().expect("minping is a number");
    assert!(ping > 0.0 && ping < 10.0, "pingtime {ping}");
    assert!(minping > 0.0 && minping <= ping, "minping {minping}");
    assert_eq!(info["synced_headers"].as_i64(), Some(-1));
    // No pre-sync running, no block or transaction from it yet.
    assert_eq!(info["presynced_headers"].as_i64(), Some(-1));
    assert_eq!(info["last_block"].as_u64(), Some(0));
    assert_eq!(info["last_transaction"].as_u64(), Some(0));
    assert!(info["synced_blocks"].is_i64());
    assert!(info["inflight"].is_array());
    assert_eq!(info["connection_type"], "inbound");
    assert_eq!(info["network"], "not_publicly_routable");
    assert!(info["addr_rate_limited"].as_u64().unwrap() >= 1);
    assert_eq!(info["inbound"], Value::Bool(true));

    let totals = rpc(&node, "getnettotals");
    let recv = totals["totalbytesrecv"].as_u64().unwrap();
    let sent = totals["totalbytessent"].as_u64().unwrap();
    assert!(recv >= info["bytesrecv"].as_u64().unwrap(), "{totals}");
    assert!(sent >= info["bytessent"].as_u64().unwrap(), "{totals}");
    assert!(totals["timemillis"].as_u64().unwrap() > 1_600_000_000_000);
    let target = &totals["uploadtarget"];
    assert_eq!(target["timeframe"], 86400);
    assert_eq!(target["target"], 0);
    assert_eq!(target["target_reached"], false);
    assert_eq!(target["serve_historical_blocks"], true);
    assert!(target["bytes_left_in_cycle"].is_u64());
    assert!(target["time_left_in_cycle"].is_u64());
}
