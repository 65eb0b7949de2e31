//! Outbound connections through a SOCKS5 proxy (`--proxy`, `proxy.rs`) and
//! host-name targets: a small SOCKS5 server in the test records every
//! CONNECT request (address type, name, port, credentials) and relays
//! bytes to the node it maps the name to.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use strand::config::{ConnectTarget, Proxy};
use strand::peer::Direction;

/// One CONNECT request as the proxy saw it.
#[derive(Clone, Debug)]
struct Request {
    /// Authentication methods offered in the greeting.
    methods: Vec<u8>,
    /// RFC 1929 username and password, if sent.
    credentials: Option<(String, String)>,
    /// SOCKS5 address type: 1 IPv4, 3 domain name, 4 IPv6.
    atyp: u8,
    /// The name (or address) asked for.
    host: String,
    port: u16,
}

/// What the test proxy answers.
#[derive(Clone, Copy)]
enum Mode {
    /// Connect to the mapped address and relay.
    Relay,
    /// Answer every CONNECT with reply 5, connection refused.
    Refuse,
}

/// A SOCKS5 server on 127.0.0.1 (OS port): serves at most
/// `MAX_CONNECTIONS` connections, then stops accepting; everything it
/// opened is shut when it is dropped.
struct TestProxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

const MAX_CONNECTIONS: usize = 32;

impl TestProxy {
    fn start(names: HashMap<String, SocketAddr>, mode: Mode) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (requests, sockets, stop) = (
                Arc::clone(&requests),
                Arc::clone(&sockets),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut served = 0;
                while !stop.load(Ordering::SeqCst) && served < MAX_CONNECTIONS {
                    match listener.accept() {
                        Ok((s, _)) => {
                            served += 1;
                            s.set_nonblocking(false).unwrap();
                            let (requests, sockets, names) =
                                (Arc::clone(&requests), Arc::clone(&sockets), names.clone());
                            std::thread::spawn(move || {
                                if let Err(e) = serve(s, &names, mode, &requests, &sockets) {
                                    eprintln!("test proxy: {e}");
                                }
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => panic!("test proxy accept: {e}"),
                    }
                }
            })
        };
        TestProxy {
            addr,
            requests,
            sockets,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// One client: RFC 1928 greeting, RFC 1929 credentials when offered,
/// CONNECT, then relaying.
fn serve(
    mut client: TcpStream,
    names: &HashMap<String, SocketAddr>,
    mode: Mode,
    requests: &Mutex<Vec<Request>>,
    sockets: &Mutex<Vec<TcpStream>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    sockets.lock().unwrap().push(client.try_clone()?);
    let head = read_n(&mut client, 2)?;
    assert_eq!(head[0], 5, "not SOCKS5");
    let methods = read_n(&mut client, usize::from(head[1]))?;
    let mut credentials = None;
    if methods.contains(&2) {
        client.write_all(&[5, 2])?;
        let v = read_n(&mut client, 2)?;
        assert_eq!(v[0], 1, "RFC 1929 version");
        let user = read_n(&mut client, usize::from(v[1]))?;
        let plen = read_n(&mut client, 1)?[0];
        let pass = read_n(&mut client, usize::from(plen))?;
        credentials = Some((
            String::from_utf8_lossy(&user).into_owned(),
            String::from_utf8_lossy(&pass).into_owned(),
        ));
        client.write_all(&[1, 0])?;
    } else {
        client.write_all(&[5, 0])?;
    }
    let req = read_n(&mut client, 4)?;
    assert_eq!(&req[..3], &[5, 1, 0], "CONNECT");
    let host = match req[3] {
        1 => {
            let b = read_n(&mut client, 4)?;
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
        }
        3 => {
            let n = read_n(&mut client, 1)?[0];
            String::from_utf8_lossy(&read_n(&mut client, usize::from(n))?).into_owned()
        }
        4 => {
            let b: [u8; 16] = read_n(&mut client, 16)?.try_into().unwrap();
            std::net::Ipv6Addr::from(b).to_string()
        }
        other => panic!("bad ATYP {other}"),
    };
    let p = read_n(&mut client, 2)?;
    let port = u16::from_be_bytes([p[0], p[1]]);
    requests.lock().unwrap().push(Request {
        methods,
        credentials,
        atyp: req[3],
        host: host.clone(),
        port,
    });
    let target = match (mode, names.get(&host)) {
        (Mode::Relay, Some(a)) => TcpStream::connect_timeout(a, Duration::from_secs(5)).ok(),
        _ => None,
    };
    let Some(target) = target else {
        client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    client.set_read_timeout(None)?;
    sockets.lock().unwrap().push(target.try_clone()?);
    let (mut c2, mut t2) = (client.try_clone()?, target.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c2, &mut t2);
        let _ = t2.shutdown(Shutdown::Both);
    });
    let (mut t3, mut c3) = (target, client);
    let _ = io::copy(&mut t3, &mut c3);
    let _ = c3.shutdown(Shutdown::Both);
    let _ = up.join();
    Ok(())
}

/// The Tor Project's v3 onion service name (valid checksum).
const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

#[test]
fn names_are_resolved_by_the_proxy_with_fresh_credentials_per_connection() {
    let chain = test_chain(0x5ec5_0c55, 5, 0);
    let a = node_with_blocks(&chain.blocks()[1..], |_| {});
    let c = TestNode::start(|_| {});
    // `.example` names never resolve (RFC 2606) and onion names only in
    // Tor: only the proxy knows them.
    let names = HashMap::from([
        ("somehost.example".to_string(), a.addr),
        (ONION.to_string(), c.addr),
    ]);
    let proxy = TestProxy::start(names, Mode::Relay);
    let b = TestNode::start(|cfg| {
        cfg.proxy = Some(Proxy::new(proxy.addr));
        cfg.connect = vec![
            ConnectTarget::parse("somehost.example:18444", 18444).unwrap(),
            ConnectTarget::parse(ONION, 18444).unwrap(),
        ];
    });
    let tip = chain.blocks().last().unwrap().block_hash();
    assert!(
        wait_tip(&b, tip, Duration::from_secs(30)),
        "did not sync from the node behind the proxy"
    );
    assert!(wait_until(Duration::from_secs(10), || b
        .snapshot()
        .peers
        .iter()
        .filter(|p| p.direction == Direction::Outbound)
        .count()
        == 2));
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let mut hosts: Vec<_> = reqs.iter().map(|r| r.host.as_str()).collect();
    hosts.sort();
    assert_eq!(hosts, [ONION, "somehost.example"]);
    for r in &reqs {
        assert_eq!(r.atyp, 3, "name not sent as a domain name: {r:?}");
        assert_eq!(r.port, 18444);
        assert!(
            r.methods.contains(&2),
            "no username/password offered: {r:?}"
        );
        let (user, pass) = r.credentials.clone().expect("credentials sent");
        assert_eq!(user, pass, "Core sends the same user and password");
        assert!(!user.is_empty());
    }
    assert_ne!(
        reqs[0].credentials, reqs[1].credentials,
        "stream isolation needs distinct credentials"
    );
}

#[test]
fn proxy_refusal_is_logged_and_retried() {
    let proxy = TestProxy::start(HashMap::new(), Mode::Refuse);
    let proxy_addr = proxy.addr.to_string();
    let node = NodeProcess::start(&[
        "--proxy",
        &proxy_addr,
        "--proxyrandomize=0",
        "--connect",
        "somehost.example:18444",
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || node.log_contains(
            "cannot connect to somehost.example:18444: proxy: connection refused"
        )),
        "{:?}",
        node.log_lines()
    );
    // Retried with back-off (5 s after the first failure).
    assert!(
        wait_until(Duration::from_secs(20), || proxy.requests().len() >= 2),
        "not retried: {:?}",
        proxy.requests()
    );
    let reqs = proxy.requests();
    assert!(reqs
        .iter()
        .all(|r| r.atyp == 3 && r.host == "somehost.example"));
    // --proxyrandomize=0: no username/password offered.
    assert!(reqs
        .iter()
        .all(|r| r.methods == [0] && r.credentials.is_none()));
}

#[test]
fn localhost_names_are_resolved_when_dialled_and_retried() {
    // A port with nothing on it yet: the first dials fail.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = TestNode::start(|cfg| {
        cfg.connect = vec![ConnectTarget::parse(&format!("localhost:{port}"), 18444).unwrap()];
        cfg.retry_base = Duration::from_millis(100);
        cfg.retry_max = Duration::from_millis(500);
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.snapshot().peers.is_empty());
    let chain = test_chain(0x10ca_1405, 3, 0);
    let a = node_with_blocks(&chain.blocks()[1..], |cfg| {
        cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    });
    assert_eq!(a.addr.port(), port);
    let tip = chain.blocks().last().unwrap().block_hash();
    assert!(
        wait_tip(&b, tip, Duration::from_secs(30)),
        "localhost:{port} never connected"
    );
}

#[test]
fn bad_network_options_exit_2_with_one_line() {
    for (args, needle) in [
        (&["--connect", "bad host:1"][..], "cannot parse address"),
        (&["--addnode", "300.1.1.1"], "cannot parse address"),
        (
            &["--proxy", "proxy.example:9050"],
            "Invalid --proxy address",
        ),
        (
            &["--onlynet", "mars"],
            "Unknown network specified in --onlynet",
        ),
        (&["--onlynet", "onion"], "--onlynet=onion"),
        (
            &["--onlynet=onion", "--proxy=127.0.0.1", "--noonion"],
            "--noonion",
        ),
        (&["--proxyrandomize=yes"], "--proxyrandomize"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut child = Command::new(strand_bin())
            .arg("--regtest")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?}: still running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = read_all(child.stderr.take().unwrap());
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    }
}

#[test]
fn addnode_rpc_takes_host_names() {
    use serde_json::json;
    use strand::rpc::client::{call, ClientAuth, ClientError};
    let target = TestNode::start(|_| {});
    let node = NodeProcess::start(&[]);
    let (rpc, auth) = (node.rpc_addr(), ClientAuth::Cookie(node.cookie()));
    let name = format!("localhost:{}", target.addr.port());
    call(rpc, &auth, "addnode", vec![json!(name), json!("onetry")]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || target
            .snapshot()
            .peers
            .iter()
            .any(|p| p.direction == Direction::Inbound)),
        "addnode {name} did not connect"
    );
    match call(
        rpc,
        &auth,
        "addnode",
        vec![json!("bad host:1"), json!("add")],
    ) {
        Err(ClientError::Rpc(e)) => {
            assert_eq!(e.code, -8);
            assert!(e.message.contains("cannot parse address"), "{}", e.message);
        }
        other => panic!("expected an RPC error, got {other:?}"),
    }
}
