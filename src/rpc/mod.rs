//! The JSON-RPC server (compatible with `bitcoin-cli`) and the client half
//! of `strand cli`.
//!
//! [`RpcServer::start`] binds every address in [`RpcConfig::bind`], writes
//! the `.cookie` file when cookie authentication is used, and starts one
//! `rpc-listen-N` thread per address plus a fixed pool of `rpc-worker-N`
//! threads. A listener accepts, refuses addresses outside `allow_ip` (403)
//! and connections over `max_connections` (503), and queues the rest on a
//! bounded channel. A worker serves one connection at a time: it reads a
//! request ([`http`]), checks HTTP Basic credentials ([`auth`]), runs the
//! JSON-RPC body ([`protocol`]) through the method table ([`methods`]) that
//! calls the node through the [`RpcBackend`] trait, and writes the reply.
//! Between requests of a keep-alive connection, a worker that sees other
//! connections waiting puts its idle connection back at the end of the
//! queue, so idle keep-alive clients never starve new ones; a request must
//! arrive whole within `request_timeout`, so a slow client holds a worker
//! for a bounded time only.
//!
//! A target under `/rest/` goes to [`rest`] (Core's REST interface, off
//! unless [`RpcConfig::rest`]) before authentication; every call's method is
//! counted in [`stats`] for the metrics endpoint.
//!
//! [`RpcServer::stop`] (also run on drop) stops every thread, joins them and
//! removes the cookie file. `stop` over RPC answers first, then calls
//! [`RpcBackend::stop`], which must only *signal* the node to shut down.
//!
//! Wiring, for the node side:
//!
//! ```ignore
//! // Server: after Node::start, with an adapter implementing RpcBackend.
//! let mut rpc = strand::rpc::RpcConfig::new(config.network.default_rpc_port(),
//!                                           config.net_dir().join(".cookie"));
//! rpc.allow_ip.extend(rpcallowip_values);      // loopback is always allowed
//! let server = strand::rpc::RpcServer::start(rpc, Arc::new(adapter))?;
//! // ... on shutdown, before the node: server.stop();
//!
//! // Client: in main.rs, before config::parse_args, for `strand cli ...`:
//! let args: Vec<String> = std::env::args().skip(1).collect();
//! if args.first().map(String::as_str) == Some("cli") {
//!     let code = strand::rpc::client::cli_main(&args[1..]);
//!     return ExitCode::from(code as u8);           // 0..=255
//! }
//! ```

mod active;
pub mod auth;
pub mod backend;
mod blockchain;
pub mod cli_info;
pub mod client;
mod control;
mod fees;
pub mod http;
mod mempool;
pub mod methods;
mod mining;
mod muhash;
mod net;
pub mod node;
mod node_data;
pub mod protocol;
mod rawtransaction;
pub mod rest;
pub mod stats;
mod util;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

pub use auth::{AllowIp, Auth};
pub use backend::*;
pub use methods::Dispatcher;
pub use protocol::{codes, RpcFailure};

/// Default largest request body (Core has no explicit limit below its
/// 32 MiB HTTP limit).
pub const DEFAULT_MAX_BODY: usize = 32 << 20;

/// RPC server options.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Addresses to listen on (default: `127.0.0.1:<port>`).
    pub bind: Vec<SocketAddr>,
    /// Subnets allowed to connect. [`RpcConfig::new`] starts with loopback
    /// (127.0.0.0/8 and ::1), which Core always allows; `--rpcallowip`
    /// values should be appended.
    pub allow_ip: Vec<AllowIp>,
    /// Credentials.
    pub auth: Auth,
    /// Largest accepted request body; larger ones get 413.
    pub max_body: usize,
    /// Worker threads (Core's `-rpcthreads`, default 4).
    pub threads: usize,
    /// Open connections at most (queued or being served); more get 503.
    pub max_connections: usize,
    /// Pause before answering a failed authentication (Core: 250 ms).
    pub auth_fail_delay: Duration,
    /// A whole request must arrive within this time once it has started.
    pub request_timeout: Duration,
    /// A keep-alive connection idle this long is closed (Core's
    /// `-rpcservertimeout`, 30 s).
    pub idle_timeout: Duration,
    /// Serve Core's REST interface under `/rest/`, unauthenticated (Core's
    /// `-rest`, default off; see [`rest`]).
    pub rest: bool,
}

impl RpcConfig {
    /// Defaults: listen on `127.0.0.1:port`, loopback allowed, cookie
    /// authentication with `cookie_path`, 32 MiB bodies, 4 workers, 64
    /// connections, 250 ms auth-failure delay, 30 s timeouts.
    pub fn new(port: u16, cookie_path: PathBuf) -> RpcConfig {
        RpcConfig {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            allow_ip: AllowIp::loopback(),
            auth: Auth::Cookie(cookie_path),
            max_body: DEFAULT_MAX_BODY,
            threads: 4,
            max_connections: 64,
            auth_fail_delay: Duration::from_millis(250),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            rest: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum RpcError {
    /// An address could not be bound.
    Bind(SocketAddr, io::Error),
    /// The cookie file could not be written.
    Cookie(PathBuf, io::Error),
    /// A thread could not be started.
    Spawn(io::Error),
    /// The configuration is unusable (no address, zero threads).
    Config(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Bind(a, e) => write!(f, "cannot bind RPC address {a}: {e}"),
            RpcError::Cookie(p, e) => {
                write!(f, "cannot write RPC cookie {}: {e}", p.display())
            }
            RpcError::Spawn(e) => write!(f, "cannot start RPC thread: {e}"),
            RpcError::Config(m) => write!(f, "invalid RPC configuration: {m}"),
        }
    }
}

impl std::error::Error for RpcError {}

/// State shared by the listener and worker threads.
struct Shared {
    config: RpcConfig,
    /// `user:password` expected in the Authorization header.
    credentials: String,
    dispatcher: Dispatcher,
    shutdown: AtomicBool,
    open: AtomicUsize,
    /// Calls by method, for the metrics endpoint.
    calls: Arc<stats::RpcCallCounts>,
}

/// An accepted connection waiting for or being served by a worker.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    reader: http::Reader,
    idle_since: Instant,
    _slot: Slot,
}

/// One of `max_connections` slots, released when the connection drops.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running RPC server. Dropping it stops it.
pub struct RpcServer {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
    cookie: Option<PathBuf>,
    stopped: bool,
}

impl RpcServer {
    /// Binds, writes the cookie and starts the threads.
    pub fn start(config: RpcConfig, backend: Arc<dyn RpcBackend>) -> Result<RpcServer, RpcError> {
        if config.bind.is_empty() {
            return Err(RpcError::Config("no address to listen on".into()));
        }
        if config.threads == 0 || config.max_connections == 0 {
            return Err(RpcError::Config(
                "threads and max_connections must be at least 1".into(),
            ));
        }
        let mut listeners = Vec::new();
        for addr in &config.bind {
            let l = TcpListener::bind(addr).map_err(|e| RpcError::Bind(*addr, e))?;
            listeners.push(l);
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .zip(&config.bind)
            .map(|(l, a)| l.local_addr().unwrap_or(*a))
            .collect();
        let (credentials, cookie) = match &config.auth {
            Auth::Cookie(path) => {
                let line =
                    auth::write_cookie(path).map_err(|e| RpcError::Cookie(path.clone(), e))?;
                log::info!("RPC cookie written to {}", path.display());
                (line, Some(path.clone()))
            }
            Auth::UserPass(u, p) => (format!("{u}:{p}"), None),
        };
        let shared = Arc::new(Shared {
            credentials,
            dispatcher: Dispatcher::new(backend),
            shutdown: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            calls: Arc::new(stats::RpcCallCounts::new()),
            config,
        });
        let mut server = RpcServer {
            shared: shared.clone(),
            addrs: addrs.clone(),
            threads: Vec::new(),
            cookie,
            stopped: false,
        };
        let (tx, rx) = bounded::<Conn>(shared.config.max_connections);
        for i in 0..shared.config.threads {
            let (s, tx, rx) = (shared.clone(), tx.clone(), rx.clone());
            let t = std::thread::Builder::new()
                .name(format!("rpc-worker-{i}"))
                .stack_size(512 * 1024)
                .spawn(move || worker(s, tx, rx))
                .map_err(RpcError::Spawn)?;
            server.threads.push(t);
        }
        for (i, l) in listeners.into_iter().enumerate() {
            let (s, tx) = (shared.clone(), tx.clone());
            let t = std::thread::Builder::new()
                .name(format!("rpc-listen-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || listen(s, l, tx))
                .map_err(RpcError::Spawn)?;
            server.threads.push(t);
        }
        log::info!("RPC server listening on {addrs:?}");
        Ok(server)
    }

    /// The bound addresses (with OS-chosen ports).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Calls served so far, by method (read by `crate::metrics`).
    pub fn call_counts(&self) -> Arc<stats::RpcCallCounts> {
        Arc::clone(&self.shared.calls)
    }

    /// Stops every thread, joins them (except the calling thread, if it is
    /// one of the server's) and removes the cookie file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for addr in &self.addrs {
            // Wake the blocking accept.
            let ip = match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::from(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let _ = TcpStream::connect_timeout(
                &SocketAddr::new(ip, addr.port()),
                Duration::from_secs(1),
            );
        }
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        if let Some(p) = self.cookie.take() {
            if let Err(e) = std::fs::remove_file(&p) {
                log::warn!("cannot remove RPC cookie {}: {e}", p.display());
            }
        }
        log::info!("RPC server stopped");
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Writes a one-off response and closes (used before a worker is involved).
fn refuse(mut stream: TcpStream, status: u16, body: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let _ = http::Response::text(status, body.to_string()).write_to(&mut stream, false);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The `rpc-listen-N` thread: accepts, filters, queues.
fn listen(shared: Arc<Shared>, listener: TcpListener, tx: Sender<Conn>) {
    loop {
        let accepted = listener.accept();
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                log::debug!("RPC accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if !shared.config.allow_ip.iter().any(|n| n.contains(peer.ip())) {
            log::warn!("RPC connection from {peer} refused: not in rpcallowip");
            refuse(stream, 403, "");
            continue;
        }
        let open = shared.open.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(shared.clone());
        if open >= shared.config.max_connections {
            log::warn!("RPC connection from {peer} refused: too many connections");
            refuse(stream, 503, "too many RPC connections\n");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(shared.config.request_timeout));
        let conn = Conn {
            stream,
            peer,
            reader: http::Reader::new(),
            idle_since: Instant::now(),
            _slot: slot,
        };
        if let Err(e) = tx.try_send(conn) {
            refuse(e.into_inner().stream, 503, "RPC work queue full\n");
        }
    }
}

/// The `rpc-worker-N` thread.
fn worker(shared: Arc<Shared>, tx: Sender<Conn>, rx: Receiver<Conn>) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(conn) => serve(&shared, &tx, &rx, conn),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Whether the connection has bytes to read (`Some(true)`), was closed
/// (`None`), or has nothing yet (`Some(false)`) within `wait`.
fn readable(stream: &TcpStream, wait: Duration) -> Option<bool> {
    if stream.set_read_timeout(Some(wait)).is_err() {
        return None;
    }
    let mut b = [0u8; 1];
    match stream.peek(&mut b) {
        Ok(0) => None,
        Ok(_) => Some(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Some(false)
        }
        Err(_) => None,
    }
}

/// Serves requests on `conn` until it closes, idles out, or is handed back
/// to the queue because other connections are waiting.
fn serve(shared: &Arc<Shared>, tx: &Sender<Conn>, rx: &Receiver<Conn>, mut conn: Conn) {
    let cfg = &shared.config;
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if !conn.reader.has_buffered() {
            match readable(&conn.stream, Duration::from_millis(50)) {
                None => return,
                Some(true) => {}
                Some(false) => {
                    if conn.idle_since.elapsed() >= cfg.idle_timeout {
                        log::debug!("RPC connection from {} idle, closing", conn.peer);
                        return;
                    }
                    if !rx.is_empty() {
                        // Others are waiting: give the worker to them.
                        let _ = tx.try_send(conn);
                        return;
                    }
                    continue;
                }
            }
        }
        let deadline = Instant::now() + cfg.request_timeout;
        let req = match conn
            .reader
            .read_request(&mut conn.stream, cfg.max_body, deadline)
        {
            Ok(r) => r,
            Err(e) => {
                if let Some((status, body)) = e.response() {
                    log::debug!(
                        "RPC bad request from {}: {status} {}",
                        conn.peer,
                        body.trim()
                    );
                    let _ = http::Response::text(status, body).write_to(&mut conn.stream, false);
                } else if let http::HttpError::Timeout = e {
                    log::debug!("RPC request from {} timed out", conn.peer);
                }
                return;
            }
        };
        let (resp, stop_requested) = handle_request(shared, &conn.peer, &req);
        let keep_alive = req.keep_alive && !stop_requested;
        if resp.write_to(&mut conn.stream, keep_alive).is_err() {
            return;
        }
        if stop_requested {
            log::info!("RPC stop requested by {}", conn.peer);
            shared.dispatcher.backend().stop();
        }
        if !keep_alive {
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
            return;
        }
        conn.idle_since = Instant::now();
    }
}

/// Answers one HTTP request. The flag says an RPC `stop` succeeded.
fn handle_request(
    shared: &Shared,
    peer: &SocketAddr,
    req: &http::Request,
) -> (http::Response, bool) {
    // Core's REST handlers are registered beside the JSON-RPC one and need
    // no credentials.
    if req.target.starts_with("/rest/") {
        return (
            rest::handle(shared.config.rest, &shared.dispatcher, req),
            false,
        );
    }
    if req.method != "POST" {
        return (
            http::Response::text(405, "JSONRPC server handles only POST requests".into()),
            false,
        );
    }
    let path = req.target.split('?').next().unwrap_or_default();
    if path != "/" && !path.starts_with("/wallet/") {
        return (http::Response::text(404, String::new()), false);
    }
    let authorized = req
        .header("Authorization")
        .is_some_and(|h| auth::check_basic(h, &shared.credentials));
    if !authorized {
        if req.header("Authorization").is_some() {
            log::warn!("ThreadRPCServer incorrect password attempt from {peer}");
            // Core's deterrent against brute-forcing.
            std::thread::sleep(shared.config.auth_fail_delay);
        } else {
            log::warn!("RPC request without credentials from {peer}");
        }
        let mut r = http::Response::text(401, String::new());
        r.headers
            .push(("WWW-Authenticate", "Basic realm=\"jsonrpc\"".into()));
        return (r, false);
    }
    let stop = std::cell::Cell::new(false);
    let exec = |method: &str, params: &serde_json::Value| {
        let r = shared.dispatcher.execute(method, params);
        shared.calls.record(method);
        if method == "stop" && r.is_ok() {
            stop.set(true);
        }
        r
    };
    let reply = protocol::handle_body(&req.body, &exec);
    let resp = match reply.body {
        Some(b) => http::Response::json(reply.status, b),
        None => http::Response::json(reply.status, String::new()),
    };
    (resp, stop.get())
}

/// Writes `s` and flushes; used by the CLI.
pub(crate) fn write_out(mut w: impl Write, s: &str) {
    let _ = w.write_all(s.as_bytes());
    let _ = w.flush();
}
