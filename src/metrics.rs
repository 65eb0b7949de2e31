//! The Prometheus metrics endpoint (`--metrics ADDR:PORT`): a `metrics`
//! thread that accepts one HTTP connection at a time (the request must
//! arrive within 5 s; the connection is closed after the answer) and
//! answers `GET /metrics` with the text exposition format 0.0.4, written by
//! hand (the format is a few lines of text; no crate needed).
//!
//! A scrape never blocks the node. Counters kept in atomics (bytes, open
//! connections, disconnects by reason) and the RPC server's call counts are
//! read directly; the mempool's totals under its short lock. What only the
//! sync-manager and peer-handler threads know (tip and header heights, IBD,
//! the lifecycle anomaly counters, the UTXO cache) is *requested* with a
//! non-blocking send and awaited for at most [`SAMPLE_WAIT`]: a busy thread
//! leaves the request pending (picked up by a later scrape) and the scrape
//! answers with the last values, `strand_metrics_sample_stale 1` and their
//! age in `strand_metrics_sample_age_seconds`. Blocks per second is derived
//! from the heights seen by scrapes over the last [`RATE_WINDOW`].

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

use crate::chain::cache_usage::CoinsCacheUsage;
use crate::peer::Peer;
use crate::rpc::http::{Reader, Response};
use crate::rpc::stats::RpcCallCounts;
use crate::server::{HandlerMsg, HandlerStats};
use crate::sync::{SyncMsg, SyncSnapshot};
use crate::{Direction, NodeHandle};

/// Longest a scrape waits for the sync manager or peer handler to answer
/// before it reports their last values as stale. Prometheus' default
/// scrape timeout is 10 s; this stays far below it.
pub const SAMPLE_WAIT: Duration = Duration::from_millis(250);

/// Window over which `strand_blocks_per_second` is computed.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// A scrape request must arrive whole within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The exposition format's content type (version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running metrics endpoint. Dropping it stops it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and starts the `metrics` thread serving `node`'s
    /// figures, with `rpc_calls` (from `RpcServer::call_counts`) if the
    /// RPC server runs.
    pub fn start(
        addr: SocketAddr,
        node: Arc<NodeHandle>,
        rpc_calls: Option<Arc<RpcCallCounts>>,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut sampler = Sampler::new(node, rpc_calls);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .stack_size(256 * 1024)
            .spawn(move || serve(listener, &flag, &mut sampler))?;
        log::info!("metrics listening on {addr}");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (with the OS-chosen port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(t) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::from(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = TcpStream::connect_timeout(
            &SocketAddr::new(ip, self.addr.port()),
            Duration::from_secs(1),
        );
        let _ = t.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `metrics` thread.
fn serve(listener: TcpListener, stop: &AtomicBool, sampler: &mut Sampler) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((mut stream, peer)) = accepted else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let resp = match Reader::new().read_request(&mut stream, 0, deadline) {
            Ok(req) => {
                let path = req.target.split('?').next().unwrap_or_default();
                if req.method != "GET" {
                    text(405, "metrics are read with GET\n".into())
                } else if path == "/metrics" || path == "/" {
                    text(200, sampler.scrape())
                } else {
                    text(404, "not found; try /metrics\n".into())
                }
            }
            Err(e) => match e.response() {
                Some((status, body)) => text(status, body),
                None => continue,
            },
        };
        if let Err(e) = resp.write_to(&mut stream, false) {
            log::debug!("metrics reply to {peer} failed: {e}");
        }
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}

fn text(status: u16, body: String) -> Response {
    Response {
        status,
        headers: Vec::new(),
        content_type: CONTENT_TYPE,
        body: body.into_bytes(),
    }
}

impl NodeHandle {
    /// Asks the sync manager for its snapshot without waiting: `None` if
    /// its inbox is full or the node stopped.
    fn request_sync_snapshot(&self) -> Option<Receiver<SyncSnapshot>> {
        let (tx, rx) = bounded(1);
        self.inner()
            .ok()?
            .sync_tx
            .try_send(SyncMsg::Snapshot(tx))
            .ok()?;
        Some(rx)
    }

    /// Asks the sync manager for the UTXO cache's size without waiting.
    fn request_cache_usage(&self) -> Option<Receiver<CoinsCacheUsage>> {
        let (tx, rx) = bounded(1);
        self.inner()
            .ok()?
            .sync_tx
            .try_send(SyncMsg::WithChain(Box::new(move |c| {
                let _ = tx.send(c.coins_cache_usage());
            })))
            .ok()?;
        Some(rx)
    }

    /// Asks the peer handler for its table and counters without waiting.
    fn request_handler_stats(&self) -> Option<Receiver<(Vec<Arc<Peer>>, HandlerStats)>> {
        let (tx, rx) = bounded(1);
        self.inner()
            .ok()?
            .handler_tx
            .try_send(HandlerMsg::Peers(tx))
            .ok()?;
        Some(rx)
    }
}

/// One value requested from a node thread: the last answer (as kept, `T`,
/// from the reply `R`), when it came, and the request still pending.
struct Polled<R, T> {
    last: Option<T>,
    at: Option<Instant>,
    pending: Option<Receiver<R>>,
    keep: fn(R) -> T,
}

impl<R, T> Polled<R, T> {
    fn new(keep: fn(R) -> T) -> Polled<R, T> {
        Polled {
            last: None,
            at: None,
            pending: None,
            keep,
        }
    }

    /// Sends a request unless one is pending, then waits until `deadline`
    /// for the answer. True if a fresh answer arrived.
    fn refresh(
        &mut self,
        request: impl FnOnce() -> Option<Receiver<R>>,
        deadline: Instant,
    ) -> bool {
        if self.pending.is_none() {
            self.pending = request();
        }
        let Some(rx) = &self.pending else {
            return false;
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(v) => {
                self.last = Some((self.keep)(v));
                self.at = Some(Instant::now());
                self.pending = None;
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.pending = None;
                false
            }
        }
    }
}

/// The `metrics` thread's state between scrapes.
struct Sampler {
    node: Arc<NodeHandle>,
    rpc_calls: Option<Arc<RpcCallCounts>>,
    sync: Polled<SyncSnapshot, SyncSnapshot>,
    cache: Polled<CoinsCacheUsage, CoinsCacheUsage>,
    /// The peer table is dropped at once: only the counters are kept.
    handler: Polled<(Vec<Arc<Peer>>, HandlerStats), HandlerStats>,
    /// Active heights seen, oldest first, within [`RATE_WINDOW`].
    heights: VecDeque<(Instant, i32)>,
}

impl Sampler {
    fn new(node: Arc<NodeHandle>, rpc_calls: Option<Arc<RpcCallCounts>>) -> Sampler {
        Sampler {
            node,
            rpc_calls,
            sync: Polled::new(|s| s),
            cache: Polled::new(|u| u),
            handler: Polled::new(|(_, stats)| stats),
            heights: VecDeque::new(),
        }
    }

    /// One scrape's text.
    fn scrape(&mut self) -> String {
        let deadline = Instant::now() + SAMPLE_WAIT;
        let node = Arc::clone(&self.node);
        let fresh_sync = self.sync.refresh(|| node.request_sync_snapshot(), deadline);
        let fresh_cache = self.cache.refresh(|| node.request_cache_usage(), deadline);
        let fresh_handler = self
            .handler
            .refresh(|| node.request_handler_stats(), deadline);
        let mut e = Exposition::default();

        e.family(
            "strand_up",
            "gauge",
            "1 while the node runs, 0 after it stopped.",
        );
        e.sample("strand_up", &[], u64::from(node.is_running()));

        if let Ok(inner) = node.inner() {
            let conns = &inner.ctx.connections;
            let list = conns.list();
            let done = |d: Direction| {
                list.iter()
                    .filter(|p| p.direction == d && p.verack.is_set() && !p.is_closed())
                    .count()
            };
            e.family(
                "strand_peers",
                "gauge",
                "Peers whose version handshake completed, by direction.",
            );
            e.sample(
                "strand_peers",
                &[("direction", "inbound")],
                done(Direction::Inbound),
            );
            e.sample(
                "strand_peers",
                &[("direction", "outbound")],
                done(Direction::Outbound),
            );
            e.family(
                "strand_connections",
                "gauge",
                "Open connections, handshaking ones included.",
            );
            e.sample("strand_connections", &[], list.len());
            e.family(
                "strand_bytes_sent_total",
                "counter",
                "Bytes sent to peers since start (Core's getnettotals totalbytessent).",
            );
            e.sample(
                "strand_bytes_sent_total",
                &[],
                conns.total_bytes_sent.load(Ordering::Relaxed),
            );
            e.family(
                "strand_bytes_received_total",
                "counter",
                "Bytes received from peers since start (Core's getnettotals totalbytesrecv).",
            );
            e.sample(
                "strand_bytes_received_total",
                &[],
                conns.total_bytes_recv.load(Ordering::Relaxed),
            );
            e.family(
                "strand_disconnects_total",
                "counter",
                "Connections closed since start, by reason.",
            );
            for (kind, n) in conns.disconnects.snapshot() {
                e.sample("strand_disconnects_total", &[("reason", kind)], n);
            }

            let info = inner.mempool.lock().info();
            e.family(
                "strand_mempool_transactions",
                "gauge",
                "Transactions in the mempool.",
            );
            e.sample("strand_mempool_transactions", &[], info.size);
            e.family(
                "strand_mempool_bytes",
                "gauge",
                "Virtual size of the mempool's transactions (getmempoolinfo bytes).",
            );
            e.sample("strand_mempool_bytes", &[], info.bytes);
            e.family(
                "strand_mempool_usage_bytes",
                "gauge",
                "Estimated memory used by the mempool (getmempoolinfo usage).",
            );
            e.sample("strand_mempool_usage_bytes", &[], info.usage);
            e.family(
                "strand_mempool_orphans",
                "gauge",
                "Orphan transactions held.",
            );
            e.sample("strand_mempool_orphans", &[], info.orphans);
        }

        if let Some(s) = &self.sync.last {
            let now = Instant::now();
            let at = self.sync.at.unwrap_or(now);
            if fresh_sync {
                self.heights.push_back((at, s.best_height));
            }
            while self
                .heights
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                && self.heights.len() > 1
            {
                self.heights.pop_front();
            }
            e.family("strand_tip_height", "gauge", "Height of the active tip.");
            e.sample("strand_tip_height", &[], s.best_height);
            e.family(
                "strand_header_height",
                "gauge",
                "Height of the best known header.",
            );
            e.sample("strand_header_height", &[], s.best_header_height);
            e.family(
                "strand_initial_block_download",
                "gauge",
                "1 while the node is in initial block download.",
            );
            e.sample(
                "strand_initial_block_download",
                &[],
                u64::from(s.initial_block_download),
            );
            let progress = if s.initial_block_download {
                let best = s.best_header_height.max(1);
                f64::from(s.best_height.max(0) as u32) / f64::from(best)
            } else {
                1.0
            };
            e.family(
                "strand_ibd_progress",
                "gauge",
                "Sync progress 0..1: tip height over header height during IBD (getblockchaininfo verificationprogress).",
            );
            e.sample_f64("strand_ibd_progress", &[], progress.min(1.0));
            let rate = match (self.heights.front(), self.heights.back()) {
                (Some((t0, h0)), Some((t1, h1))) if t1 > t0 => {
                    f64::from(h1.saturating_sub(*h0)) / t1.duration_since(*t0).as_secs_f64()
                }
                _ => 0.0,
            };
            e.family(
                "strand_blocks_per_second",
                "gauge",
                "Blocks connected per second over the last minute of scrapes.",
            );
            e.sample_f64("strand_blocks_per_second", &[], rate);
            e.family(
                "strand_blocks_in_flight",
                "gauge",
                "Blocks requested and not yet received.",
            );
            e.sample("strand_blocks_in_flight", &[], s.blocks_in_flight);
            e.family(
                "strand_sync_peer",
                "gauge",
                "1 while a sync peer is chosen.",
            );
            e.sample("strand_sync_peer", &[], u64::from(s.sync_peer.is_some()));
            e.family(
                "strand_lifecycle_anomalies_total",
                "counter",
                "Must-never-happen peer lifecycle events seen by the sync manager.",
            );
            let a = &s.anomalies;
            for (kind, n) in [
                ("done_peer_unknown", a.done_peer_unknown),
                ("new_peer_after_done", a.new_peer_after_done),
            ] {
                e.sample("strand_lifecycle_anomalies_total", &[("kind", kind)], n);
            }
            e.family(
                "strand_sync_events_total",
                "counter",
                "Informational sync-manager counters.",
            );
            let c = &s.counters;
            for (event, n) in [
                ("new_peer_closed", c.new_peer_closed),
                ("message_unknown_peer", c.message_unknown_peer),
                ("stalls", c.stalls),
                ("block_timeouts", c.block_timeouts),
                ("presync_headers", c.presync_headers),
                ("low_work_chains", c.low_work_chains),
                ("presync_aborted", c.presync_aborted),
                ("unconnecting_headers", c.unconnecting_headers),
                ("download_stalls", c.download_stalls),
                ("notfound_blocks", c.notfound_blocks),
                ("unrequested_dropped", c.unrequested_dropped),
            ] {
                e.sample("strand_sync_events_total", &[("event", event)], n);
            }
        }
        if let Some(h) = &self.handler.last {
            e.family(
                "strand_peer_handler_events_total",
                "counter",
                "Peer-handler lifecycle counters (NewPeer/DonePeer sent, rejected, Done without Add).",
            );
            for (event, n) in [
                ("new_peer_sent", h.new_peer_sent),
                ("done_peer_sent", h.done_peer_sent),
                ("rejected", h.rejected),
                ("done_without_add", h.done_without_add),
            ] {
                e.sample("strand_peer_handler_events_total", &[("event", event)], n);
            }
        }
        if let Some(u) = &self.cache.last {
            e.family(
                "strand_utxo_cache_entries",
                "gauge",
                "Coins held in the UTXO cache.",
            );
            e.sample("strand_utxo_cache_entries", &[], u.entries);
            e.family(
                "strand_utxo_cache_bytes",
                "gauge",
                "Estimated memory of the UTXO cache (checked against --dbcache).",
            );
            e.sample("strand_utxo_cache_bytes", &[], u.bytes);
            e.family(
                "strand_utxo_cache_dirty",
                "gauge",
                "UTXO cache entries to write at the next flush.",
            );
            e.sample("strand_utxo_cache_dirty", &[], u.dirty);
        }
        if let Some(calls) = &self.rpc_calls {
            e.family(
                "strand_rpc_calls_total",
                "counter",
                "JSON-RPC calls served, by method.",
            );
            for (method, n) in calls.snapshot() {
                e.sample("strand_rpc_calls_total", &[("method", method)], n);
            }
        }
        e.family(
            "strand_metrics_sample_stale",
            "gauge",
            "1 if a node thread did not answer this scrape in time and older values are shown.",
        );
        let stale = !(fresh_sync && fresh_cache && fresh_handler);
        e.sample("strand_metrics_sample_stale", &[], u64::from(stale));
        e.family(
            "strand_metrics_sample_age_seconds",
            "gauge",
            "Age of the sync manager's figures in this scrape.",
        );
        let age = self.sync.at.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
        e.sample_f64("strand_metrics_sample_age_seconds", &[], age);
        e.out
    }
}

/// A text exposition being written.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` lines of one metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample with an integer value.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Integer>) {
        let v = value.into().0;
        self.line(name, labels, &v.to_string());
    }

    /// One sample with a float value (`NaN`, `+Inf`, `-Inf` as the format
    /// spells them).
    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let v = if value.is_nan() {
            "NaN".to_string()
        } else if value.is_infinite() {
            if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
        } else {
            format!("{value}")
        };
        self.line(name, labels, &v);
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(value);
        self.out.push('\n');
    }
}

/// A label value escaped as the format requires: `\`, `"` and newline.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// An integer sample value (counts are unsigned, heights signed).
struct Integer(i128);

impl From<u64> for Integer {
    fn from(v: u64) -> Integer {
        Integer(i128::from(v))
    }
}
impl From<usize> for Integer {
    fn from(v: usize) -> Integer {
        Integer(v as i128)
    }
}
impl From<u32> for Integer {
    fn from(v: u32) -> Integer {
        Integer(i128::from(v))
    }
}
impl From<i32> for Integer {
    fn from(v: i32) -> Integer {
        Integer(i128::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_and_escaping() {
        let mut e = Exposition::default();
        e.family("strand_x_total", "counter", "A back\\slash\nand newline.");
        e.sample("strand_x_total", &[("k", "a\"b\\c\nd")], 7u64);
        e.sample_f64("strand_y", &[], f64::NAN);
        e.sample_f64("strand_y", &[("a", "1"), ("b", "2")], 0.5);
        assert_eq!(
            e.out,
            "# HELP strand_x_total A back\\\\slash\\nand newline.\n\
             # TYPE strand_x_total counter\n\
             strand_x_total{k=\"a\\\"b\\\\c\\nd\"} 7\n\
             strand_y NaN\n\
             strand_y{a=\"1\",b=\"2\"} 0.5\n"
        );
    }
}
