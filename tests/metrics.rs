//! The Prometheus endpoint (`--metrics`): a scrape of the real binary
//! parses as the text exposition format (every sample `name{labels} value`,
//! every metric with `# HELP` and `# TYPE`), its tip height is
//! `getblockcount`'s and RPC calls are counted by method; in process, a
//! scrape answers while the sync manager is held busy (with the last
//! values, marked stale), and peers and disconnects are counted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use strand::metrics::MetricsServer;
use strand::rpc::client::{call, ClientAuth};
use strand::{Config, Network, Node};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A small parser of the text exposition format 0.0.4: checks every line
/// and that each sample's metric was described by `# HELP` and `# TYPE`
/// before it.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut helped = BTreeSet::new();
    let mut typed = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            check_name(name)?;
            if !helped.insert(name.to_string()) {
                return Err(format!("second HELP for {name}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default();
            let kind = parts.next().unwrap_or_default();
            check_name(name)?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("bad TYPE line '{line}'"));
            }
            if !typed.insert(name.to_string()) {
                return Err(format!("second TYPE for {name}"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let s = parse_sample(line)?;
        if !helped.contains(&s.name) || !typed.contains(&s.name) {
            return Err(format!("{} has no HELP or TYPE before it", s.name));
        }
        samples.push(s);
    }
    Ok(samples)
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name '{name}'"))
    }
}

/// `name{k="v",...} value` with the format's label escapes.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let bad = || format!("bad sample line '{line}'");
    let name_end = line.find(['{', ' ']).ok_or_else(bad)?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end = loop {
            if let Some(&(i, '}')) = chars.peek() {
                break i;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            check_name(&key)?;
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(bad());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        _ => return Err(bad()),
                    },
                    Some(c) => value.push(c),
                    None => return Err(bad()),
                }
            }
            labels.insert(key, value);
            match chars.peek().map(|(_, c)| *c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => return Err(bad()),
            }
        };
        rest = &r[end + 1..];
    }
    let value = rest.strip_prefix(' ').ok_or_else(bad)?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| bad())?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The value of `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// `GET path` on the metrics endpoint: status and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("reply head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    if status == 200 {
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
    }
    (status, body.to_string())
}

/// A scrape that must succeed and parse.
fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

#[test]
fn the_parser_rejects_what_prometheus_rejects() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"w\",j=\"\"} 3\n";
    let s = parse(good).unwrap();
    assert_eq!(s[0].labels["k"], "v\"w");
    assert_eq!(s[0].value, 3.0);
    assert!(parse("a 1\n").is_err(), "no HELP/TYPE");
    assert!(parse("# HELP a x\n# TYPE a gauge\na{k=v} 1\n").is_err());
    assert!(parse("# HELP a x\n# TYPE a gauge\na 1 2 x\n").is_err());
    assert!(parse("# HELP a x\n# TYPE a thing\na 1\n").is_err());
}

#[test]
fn binary_scrape_parses_and_matches_rpc() {
    let node = NodeProcess::start(&["--metrics", "127.0.0.1:0"]);
    let mut metrics: Option<SocketAddr> = None;
    assert!(wait_until(Duration::from_secs(10), || {
        metrics = node.log_lines().iter().find_map(|l| {
            l.split("metrics listening on ")
                .nth(1)
                .and_then(|a| a.trim().parse().ok())
        });
        metrics.is_some()
    }));
    let metrics = metrics.unwrap();
    let rpc = node.rpc_addr();
    let auth = ClientAuth::Cookie(node.cookie());
    let addr = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    call(rpc, &auth, "generatetoaddress", vec![json!(4), json!(addr)]).expect("generate");
    let count = call(rpc, &auth, "getblockcount", vec![]).expect("count");
    assert_eq!(count, json!(4));

    // The sync manager is idle: a scrape gets fresh figures (bounded retry
    // only in case the first request met a busy moment).
    let mut samples = scrape(metrics);
    for _ in 0..20 {
        if value(&samples, "strand_metrics_sample_stale", &[]) == Some(0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        samples = scrape(metrics);
    }
    assert_eq!(
        value(&samples, "strand_metrics_sample_stale", &[]),
        Some(0.0)
    );
    assert_eq!(value(&samples, "strand_tip_height", &[]), Some(4.0));
    assert_eq!(value(&samples, "strand_header_height", &[]), Some(4.0));
    assert_eq!(value(&samples, "strand_up", &[]), Some(1.0));
    assert_eq!(
        value(&samples, "strand_peers", &[("direction", "inbound")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "strand_rpc_calls_total",
            &[("method", "generatetoaddress")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "strand_rpc_calls_total",
            &[("method", "getblockcount")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "strand_lifecycle_anomalies_total",
            &[("kind", "done_peer_unknown")]
        ),
        Some(0.0)
    );
    assert!(value(&samples, "strand_utxo_cache_entries", &[]).is_some());
    assert_eq!(
        value(&samples, "strand_mempool_transactions", &[]),
        Some(0.0)
    );
    assert_eq!(http_get(metrics, "/other").0, 404);
}

#[test]
fn scrape_answers_while_the_sync_manager_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(Network::Regtest);
    config.datadir = dir.path().to_path_buf();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    let node = Arc::new(Node::start(config).expect("node starts"));
    let p2p = node.listen_addr().unwrap();
    let server =
        MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&node), None).unwrap();
    let addr = server.local_addr();

    let first = scrape(addr);
    assert_eq!(value(&first, "strand_tip_height", &[]), Some(0.0));
    assert_eq!(value(&first, "strand_metrics_sample_stale", &[]), Some(0.0));
    // No RPC server: no RPC family.
    assert!(first.iter().all(|s| s.name != "strand_rpc_calls_total"));

    // Hold the sync-manager thread inside a chain closure.
    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let busy = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            node.with_chain(move |_| {
                let _ = entered_tx.send(());
                let _ = release_rx.recv_timeout(Duration::from_secs(60));
            })
        })
    };
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("sync manager runs the closure");
    let during = scrape(addr);
    assert_eq!(
        value(&during, "strand_metrics_sample_stale", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&during, "strand_tip_height", &[]),
        Some(0.0),
        "the last known values are shown"
    );
    // A second scrape while still busy answers too (the request stays
    // pending, no second one piles up).
    let again = scrape(addr);
    assert_eq!(value(&again, "strand_metrics_sample_stale", &[]), Some(1.0));
    release.send(()).unwrap();
    busy.join().unwrap().expect("with_chain returns");
    let mut after = scrape(addr);
    for _ in 0..20 {
        if value(&after, "strand_metrics_sample_stale", &[]) == Some(0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = scrape(addr);
    }
    assert_eq!(value(&after, "strand_metrics_sample_stale", &[]), Some(0.0));

    // A peer is counted inbound while connected and, once gone, as a
    // disconnect closed by the peer.
    let mut peer = FakePeer::connect(p2p).expect("connect");
    peer.handshake(0, SERVES).expect("handshake");
    let mut s = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        s = scrape(addr);
        value(&s, "strand_peers", &[("direction", "inbound")]) == Some(1.0)
    }));
    assert!(value(&s, "strand_bytes_received_total", &[]).unwrap() > 0.0);
    assert!(value(&s, "strand_bytes_sent_total", &[]).unwrap() > 0.0);
    drop(peer);
    assert!(wait_until(Duration::from_secs(10), || {
        s = scrape(addr);
        value(&s, "strand_disconnects_total", &[("reason", "peer_closed")]) == Some(1.0)
    }));
    assert_eq!(
        value(&s, "strand_peers", &[("direction", "inbound")]),
        Some(0.0)
    );
    server.stop();
    drop(node);
}
