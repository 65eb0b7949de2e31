//! A connection's reader and writer threads.
//!
//! [`run_peer`] is the body of the reader thread. It starts the peer's
//! lifecycle and writer jobs, runs the version handshake as Bitcoin Core
//! does, then reads messages until the connection ends, and finally cleans
//! up: shut the socket, set *quit*, wait for the other two jobs, leave the
//! registry. All three run on threads of the node's [`ThreadPool`] (named
//! `peer`), parked between connections. The writer drains the bounded
//! outbound queue of serialized frames (small ones queued together go out
//! in one `write`), gives their bytes back to the peer's send budget (and
//! tells the sync manager when pause-send ends), and sends a ping every
//! `ping_interval`.
//!
//! Pause-recv: before reading a message the reader checks the bytes it
//! handed to the sync manager that are not processed yet; over the peer's
//! receive budget it waits (counted as back-pressure) and leaves the
//! socket unread.
//!
//! The reader blocks while the sync manager's inbox is full (back-pressure).
//! It cannot read a pong then, so that time is recorded on the peer and the
//! writer leaves it out of the ping deadline: a busy sync manager does not
//! make every peer time out at once. The remote's own pings wait in the
//! socket until the reader resumes (Core's `TIMEOUT_INTERVAL` for an
//! unanswered ping is 20 minutes).
//!
//! The handshake follows Bitcoin Core's `net_processing` and the BIPs that
//! negotiate features during it:
//!
//! 1. the outbound side sends `version` first; the inbound side answers the
//!    remote's `version` with its own;
//! 2. on the remote's `version`, strand sends `wtxidrelay` (BIP339) and
//!    `sendaddrv2` (BIP155) if the remote's protocol version is at least
//!    70016 ([`WTXID_RELAY_VERSION`]), then `verack`; nothing else is ever
//!    queued before that `verack` (btcd drops a peer that sends any other
//!    known message before it);
//! 3. a feature is negotiated only when both sides sent its message before
//!    `verack`: wtxid relay when the remote sent `wtxidrelay` and the common
//!    version is at least 70016 (Core: `GetCommonVersion() >=
//!    WTXID_RELAY_VERSION`), addrv2 when the remote sent `sendaddrv2`.
//!
//! Before the remote's `verack`, `version`, `verack`, `wtxidrelay`,
//! `sendaddrv2`, `sendheaders` (ignored, as Core does before verack),
//! `reject` and unknown commands (future negotiation messages such as BIP330's
//! `sendtxrcncl`) are accepted; any other message drops the peer. After it,
//! `wtxidrelay` or `sendaddrv2` drops the peer (Core disconnects for both),
//! and messages whose item counts exceed Core's limits (locators of more than
//! 101 hashes, `inv`/`getdata` of more than 50,000 items, `addr` of more than
//! 1,000) drop it before they reach the sync manager. Addresses are
//! processed in the reader against the peer's token bucket (Core's 0.1
//! per second, starting at one; see [`addrbook`]): the rest are dropped.

use std::fmt;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use crossbeam_channel::{bounded, select, Receiver, Sender};

use super::addr_relay::AddrRelay;
use super::addrbook;
use super::addrman::AddrMan;
use super::lifecycle::run_lifecycle;
use super::pool::ThreadPool;
use super::{
    ConnectionType, Connections, Direction, DisconnectReason, LifecycleEvent, Peer, RegisterError,
    RemoteVersion,
};
use crate::config::Config;
use crate::util::random_nonce;
use crate::wire::{self, WireError};

/// Where a peer's reader thread delivers messages once the handshake is
/// done: the sync manager's inbox. Defined here, at the boundary the reader
/// owns, so the networking layer does not import the sync manager; the
/// sync manager implements it for its channel. [`MessageSink::deliver`]
/// blocks while the inbox is full (back-pressure, a downstream send) and
/// returns `false` once the receiver is gone (shutdown).
pub(crate) trait MessageSink: Send + Sync {
    /// Delivers `msg` from `peer`; `false` if the receiver is gone.
    fn deliver(&self, peer: Arc<Peer>, msg: NetworkMessage) -> bool;
    /// Tells the receiver, without blocking, that `peer`'s send queue is
    /// back within its budget (pause-send ended), so it serves the
    /// `getdata` it deferred. A notice that does not fit is dropped: the
    /// receiver also retries on its own timer.
    fn send_drained(&self, peer: super::PeerId);
}

/// What every peer thread needs from the node.
pub(crate) struct NetContext {
    pub config: Config,
    pub magic: Magic,
    pub services: ServiceFlags,
    /// Our best block height, published by the sync manager; sent in `version`.
    pub best_height: Arc<AtomicI32>,
    pub lifecycle_tx: Sender<LifecycleEvent>,
    /// The sync manager's inbox, where the reader delivers messages.
    pub messages: Box<dyn MessageSink>,
    pub connections: Connections,
    /// Parked threads for the readers, writers and lifecycle threads.
    pub pool: ThreadPool,
    /// Core's address manager: every address heard of, new and tried.
    pub addrman: Arc<AddrMan>,
    /// Per-peer address relay queues and the `getaddr` answer cache.
    pub addr_relay: AddrRelay,
}

/// Why [`start_peer`] did not start a connection.
#[derive(Debug)]
pub(crate) enum StartPeerError {
    Register(RegisterError),
    Io(std::io::Error),
}

impl fmt::Display for StartPeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartPeerError::Register(RegisterError::Full) => write!(f, "connection limit reached"),
            StartPeerError::Register(RegisterError::ShuttingDown) => write!(f, "shutting down"),
            StartPeerError::Register(RegisterError::Banned) => write!(f, "address is banned"),
            StartPeerError::Register(RegisterError::Discouraged) => {
                write!(f, "address is discouraged and few slots are free")
            }
            StartPeerError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Registers `stream` as a new peer and starts its threads. On error the
/// stream is dropped (closed) and nothing was started.
pub(crate) fn start_peer(
    ctx: &Arc<NetContext>,
    stream: TcpStream,
    conn_type: ConnectionType,
) -> Result<Arc<Peer>, StartPeerError> {
    let addr = stream.peer_addr().map_err(StartPeerError::Io)?;
    let _ = stream.set_nodelay(true);
    let id = ctx.connections.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = bounded(ctx.config.send_queue_len);
    let budgets = (ctx.config.max_send_buffer, ctx.config.max_receive_buffer);
    let peer = Arc::new(Peer::new(
        id,
        addr,
        conn_type,
        Some(stream),
        tx,
        ctx.magic,
        budgets,
    ));
    ctx.connections
        .register(&peer)
        .map_err(StartPeerError::Register)?;
    let thread_ctx = Arc::clone(ctx);
    let thread_peer = Arc::clone(&peer);
    // The reader's job; its task is not joined (it cleans up after itself).
    let spawned = ctx
        .pool
        .spawn(move || run_peer(thread_ctx, thread_peer, rx));
    if let Err(e) = spawned {
        ctx.connections.remove(&peer);
        return Err(StartPeerError::Io(e));
    }
    Ok(peer)
}

/// The protocol version strand speaks (Bitcoin Core 0.21+: wtxidrelay).
pub const PROTOCOL_VERSION: u32 = 70016;
/// First version that may negotiate wtxid relay (BIP339) and, by Core's and
/// btcd's rule, addrv2 (BIP155): Core's `WTXID_RELAY_VERSION`.
pub const WTXID_RELAY_VERSION: u32 = 70016;
/// Most hashes in a `getheaders`/`getblocks` locator (Core's `MAX_LOCATOR_SZ`).
pub const MAX_LOCATOR_SZ: usize = 101;
/// Most items in an `inv`, `getdata` or `notfound` (Core's `MAX_INV_SZ`).
pub const MAX_INV_SZ: usize = 50_000;
/// Most entries in an `addr`/`addrv2` (Core's `MAX_ADDR_TO_SEND`).
pub const MAX_ADDR_TO_SEND: usize = 1_000;
/// Gossiped addresses are stored as seen 2 hours earlier than advertised
/// (Core's `time_penalty` in `ProcessAddrs`).
const ADDR_TIME_PENALTY: u32 = 2 * 60 * 60;
/// Oldest protocol version accepted from peers (Bitcoin Core's MIN_PEER_PROTO_VERSION).
pub const MIN_PEER_PROTO_VERSION: u32 = 31800;
/// Reader buffer size per peer.
const READ_BUFFER: usize = 16 * 1024;
/// Longest a reader waits for the peer handler's decision before
/// forwarding a message anyway (it is then dropped as from an unknown peer).
const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

/// Body of a peer's reader thread; see the module docs.
pub(crate) fn run_peer(ctx: Arc<NetContext>, peer: Arc<Peer>, outbox: Receiver<Vec<u8>>) {
    let lifecycle = {
        let peer = Arc::clone(&peer);
        let events = ctx.lifecycle_tx.clone();
        ctx.pool.spawn(move || {
            run_lifecycle(peer, &events);
        })
    };
    let lifecycle = match lifecycle {
        Ok(h) => h,
        Err(e) => {
            log::warn!(
                "{peer}: {}",
                DisconnectReason::ResourceExhausted(e.to_string())
            );
            peer.disconnect(DisconnectReason::ResourceExhausted(e.to_string()));
            peer.quit.set_quiet();
            ctx.connections.remove(&peer);
            return;
        }
    };
    let writer = {
        let peer = Arc::clone(&peer);
        let thread_ctx = Arc::clone(&ctx);
        ctx.pool
            .spawn(move || write_loop(&thread_ctx, &peer, outbox))
    };
    let reason = match writer {
        Ok(writer) => {
            let reason = read_loop(&ctx, &peer);
            let reason = peer.record_reason(reason);
            if let Some(s) = peer.socket() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            ctx.connections.release_slot(&peer);
            peer.quit.set(&*peer);
            writer.join();
            reason
        }
        Err(e) => {
            let reason = peer.record_reason(DisconnectReason::ResourceExhausted(e.to_string()));
            peer.quit.set(&*peer);
            reason
        }
    };
    if reason.discourages() && peer.direction == Direction::Inbound {
        // Core exempts manual connections (ours are the outbound ones) and
        // local addresses (all peers on one host would share the penalty).
        if ctx.config.discourage_local || !is_local(peer.addr.ip()) {
            ctx.connections.discourage(peer.addr.ip());
            log::info!("discouraging {} for 24 h", peer.addr.ip());
        }
    }
    if reason.is_misbehaviour() {
        log::info!("disconnecting {peer}: {reason}");
    } else {
        log::debug!("disconnected {peer}: {reason}");
    }
    lifecycle.join();
    ctx.connections.remove(&peer);
}

/// Core's `CNetAddr::IsLocal`: loopback and `0.0.0.0/8`.
fn is_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0,
        std::net::IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// Core's `RejectIncomingTxs`: no transactions on block-relay-only
/// connections, nor from anyone with `--blocksonly`.
fn rejects_incoming_txs(ctx: &NetContext, peer: &Peer) -> bool {
    peer.conn_type == ConnectionType::BlockRelayOnly || ctx.config.blocksonly
}

fn version_message(ctx: &NetContext, peer: &Peer) -> NetworkMessage {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    NetworkMessage::Version(VersionMessage {
        version: PROTOCOL_VERSION,
        services: ctx.services,
        timestamp,
        receiver: Address::new(&peer.addr, ServiceFlags::NONE),
        sender: Address::new(&unspecified, ctx.services),
        nonce: peer.local_nonce,
        user_agent: ctx.config.user_agent.clone(),
        start_height: ctx.best_height.load(Ordering::Relaxed),
        relay: !rejects_incoming_txs(ctx, peer),
    })
}

fn read_error(e: WireError, timeout: DisconnectReason) -> DisconnectReason {
    match e {
        WireError::Closed => DisconnectReason::PeerClosed,
        e if e.is_timeout() => timeout,
        WireError::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                DisconnectReason::PeerClosed
            }
            _ => DisconnectReason::Wire(Arc::new(WireError::Io(e))),
        },
        e => DisconnectReason::Wire(Arc::new(e)),
    }
}

/// Runs the handshake, then the message loop. Returns why it stopped.
fn read_loop(ctx: &NetContext, peer: &Arc<Peer>) -> DisconnectReason {
    let Some(socket) = peer.socket() else {
        return DisconnectReason::PeerClosed;
    };
    let magic = ctx.magic;
    let mut reader = BufReader::with_capacity(READ_BUFFER, socket);

    // --- version handshake -------------------------------------------------
    let deadline = Instant::now() + ctx.config.handshake_timeout;
    if peer.direction == Direction::Outbound {
        peer.send(version_message(ctx, peer));
    }
    let mut got_version = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return DisconnectReason::HandshakeTimeout;
        }
        let msg = match wire::read_message(&mut reader, magic) {
            Ok((msg, size)) => {
                count_received(ctx, peer, size);
                msg
            }
            Err(e) => return read_error(e, DisconnectReason::HandshakeTimeout),
        };
        match msg {
            NetworkMessage::Version(v) => {
                if got_version {
                    log::debug!("{peer}: ignoring redundant version");
                    continue;
                }
                if v.version < MIN_PEER_PROTO_VERSION {
                    return DisconnectReason::ObsoleteVersion(v.version);
                }
                if peer.direction == Direction::Inbound && ctx.connections.is_local_nonce(v.nonce) {
                    return DisconnectReason::SelfConnection;
                }
                log::debug!(
                    "{peer}: version {} {} height={} services={}",
                    v.version,
                    v.user_agent,
                    v.start_height,
                    v.services
                );
                let _ = peer.version.set(RemoteVersion {
                    version: v.version,
                    services: v.services,
                    start_height: v.start_height,
                    user_agent: v.user_agent,
                    // We relay no transactions on a block-relay-only
                    // connection, whatever the remote asked (Core's
                    // `m_relays_txs`, `relaytxes` in getpeerinfo).
                    relay: v.relay && peer.conn_type != ConnectionType::BlockRelayOnly,
                });
                if peer.direction == Direction::Inbound {
                    peer.send(version_message(ctx, peer));
                }
                // Feature negotiation goes between version and verack
                // (BIP339, BIP155), only to peers whose version knows it.
                if common_version(v.version) >= WTXID_RELAY_VERSION {
                    peer.send(NetworkMessage::WtxidRelay);
                    peer.send(NetworkMessage::SendAddrV2);
                }
                peer.send(NetworkMessage::Verack);
                got_version = true;
            }
            NetworkMessage::Verack if got_version => break,
            NetworkMessage::Verack => {
                return DisconnectReason::ProtocolViolation("verack before version".into())
            }
            NetworkMessage::WtxidRelay if got_version => {
                // Negotiated only if we sent ours too (Core: the common
                // version must be at least WTXID_RELAY_VERSION).
                let theirs = peer.remote_version().map_or(0, |v| v.version);
                if common_version(theirs) >= WTXID_RELAY_VERSION {
                    peer.wtxid_relay.store(true, Ordering::Relaxed)
                } else {
                    log::debug!("{peer}: ignoring wtxidrelay at protocol version {theirs}");
                }
            }
            NetworkMessage::SendAddrV2 if got_version => {
                peer.addr_v2.store(true, Ordering::Relaxed)
            }
            // Core ignores sendheaders before verack; so do we.
            NetworkMessage::SendHeaders if got_version => {}
            NetworkMessage::Reject(r) => {
                log::debug!("{peer}: reject for '{}': {}", r.message, r.reason);
            }
            NetworkMessage::Unknown { command, .. } => {
                log::debug!("{peer}: ignoring unknown message '{command}' during the handshake");
            }
            other => {
                return DisconnectReason::ProtocolViolation(format!(
                    "'{}' before the handshake completed",
                    other.command()
                ))
            }
        }
    }
    peer.verack.set(&**peer);
    log::debug!("{peer}: handshake complete");
    // Core's per-peer addr rate limit; this thread is its only user.
    let mut addr_bucket = addrbook::AddrTokenBucket::new(Instant::now());
    // Core's m_getaddr_sent: the answer to our getaddr is not relayed.
    let mut getaddr_sent = false;
    if peer.direction == Direction::Outbound {
        getaddr_sent = outbound_addr_setup(ctx, peer, &mut addr_bucket);
        if getaddr_sent {
            // Address relay is on with this peer: announce ourselves.
            if let Some(msg) = ctx.addr_relay.announcement(peer) {
                peer.send(msg);
            }
        }
    }

    // --- message loop --------------------------------------------------------
    if socket
        .set_read_timeout(Some(ctx.config.idle_timeout))
        .is_err()
    {
        return DisconnectReason::IdleTimeout;
    }
    loop {
        if peer.pause_recv() {
            // Pause-recv: the sync manager has not processed what we gave
            // it; leave the rest in the socket (the remote's sends block).
            // The wait is the node's, not the peer's (ping deadline).
            peer.set_backpressure(true);
            let go_on = peer.wait_recv_budget();
            peer.set_backpressure(false);
            if !go_on {
                return peer
                    .disconnect_reason()
                    .unwrap_or(DisconnectReason::Shutdown);
            }
        }
        let (msg, size) = match wire::read_message(&mut reader, magic) {
            Ok((msg, size)) => {
                count_received(ctx, peer, size);
                (msg, size)
            }
            Err(e) => return read_error(e, DisconnectReason::IdleTimeout),
        };
        if let Some(why) = oversized(&msg) {
            return DisconnectReason::ProtocolViolation(why);
        }
        match msg {
            NetworkMessage::Ping(nonce) => {
                peer.send(NetworkMessage::Pong(nonce));
            }
            NetworkMessage::Pong(nonce) => {
                let mut ping = peer.ping.lock();
                match *ping {
                    Some((sent, at)) if sent == nonce => {
                        let rtt = at.elapsed().as_micros() as i64;
                        peer.last_ping_rtt_us.store(rtt, Ordering::Relaxed);
                        let min = peer.min_ping_us.load(Ordering::Relaxed);
                        if min < 0 || rtt < min {
                            peer.min_ping_us.store(rtt, Ordering::Relaxed);
                        }
                        *ping = None;
                    }
                    _ => log::debug!("{peer}: unsolicited pong {nonce}"),
                }
            }
            NetworkMessage::Version(_) | NetworkMessage::Verack => {
                log::debug!("{peer}: ignoring redundant {}", msg.command());
            }
            NetworkMessage::SendHeaders => peer.send_headers.store(true, Ordering::Relaxed),
            NetworkMessage::WtxidRelay | NetworkMessage::SendAddrV2 => {
                // Core disconnects for both after verack (BIP339, BIP155).
                return DisconnectReason::ProtocolViolation(format!(
                    "'{}' after verack",
                    msg.command()
                ));
            }
            NetworkMessage::Reject(r) => {
                // btcd still sends reject; Core stopped in 0.20. Nothing to do.
                log::debug!("{peer}: reject for '{}': {}", r.message, r.reason);
            }
            NetworkMessage::FeeFilter(rate) => peer.fee_filter.store(rate, Ordering::Relaxed),
            // Core disconnects a peer that sends a transaction or announces
            // one when it told it relay=false (`RejectIncomingTxs`:
            // block-relay-only connections, `--blocksonly`).
            NetworkMessage::Tx(_) if rejects_incoming_txs(ctx, peer) => {
                return DisconnectReason::ProtocolViolation(
                    "transaction sent in violation of protocol (we announced relay=false)".into(),
                );
            }
            NetworkMessage::Inv(ref items)
                if rejects_incoming_txs(ctx, peer)
                    && items.iter().any(|i| {
                        matches!(
                            i,
                            bitcoin::p2p::message_blockdata::Inventory::Transaction(_)
                                | bitcoin::p2p::message_blockdata::Inventory::WitnessTransaction(_)
                                | bitcoin::p2p::message_blockdata::Inventory::WTx(_)
                        )
                    }) =>
            {
                return DisconnectReason::ProtocolViolation(
                    "transaction inv sent in violation of protocol (we announced relay=false)"
                        .into(),
                );
            }
            NetworkMessage::Unknown { command, .. } => {
                log::debug!("{peer}: ignoring unknown message '{command}'");
            }
            NetworkMessage::Addr(list) => {
                let v2 = addrbook::addr_v1_to_v2(&list);
                process_addrs(
                    ctx,
                    peer,
                    "addr",
                    list.len(),
                    &v2,
                    &mut addr_bucket,
                    &mut getaddr_sent,
                );
            }
            NetworkMessage::AddrV2(list) => {
                process_addrs(
                    ctx,
                    peer,
                    "addrv2",
                    list.len(),
                    &list,
                    &mut addr_bucket,
                    &mut getaddr_sent,
                );
            }
            NetworkMessage::GetAddr => {
                // Core answers inbound peers only (outbound: fingerprinting),
                // once per connection, and never with an empty message (btcd
                // disconnects a peer that sends an address message without
                // addresses).
                if peer.direction == Direction::Inbound
                    && !peer.getaddr_answered.swap(true, Ordering::Relaxed)
                {
                    // Core's GetAddresses leaves out banned and discouraged
                    // addresses.
                    let keep = |m: &bitcoin::p2p::address::AddrV2Message| {
                        m.socket_addr().map_or(true, |a| {
                            !ctx.connections.is_banned(a.ip())
                                && !ctx.connections.is_discouraged(a.ip())
                        })
                    };
                    if let Some(answer) =
                        ctx.addr_relay
                            .getaddr_answer_filtered(peer, &ctx.addrman, &keep)
                    {
                        peer.send(answer);
                    }
                    // Its getaddr turned address relay on: announce ourselves.
                    if let Some(msg) = ctx.addr_relay.announcement(peer) {
                        peer.send(msg);
                    }
                } else {
                    log::debug!("{peer}: ignoring getaddr ({})", peer.conn_type);
                }
            }
            other => {
                if !peer.announced.is_set() {
                    // Keep NewPeer ahead of this peer's messages on the sync
                    // manager's channel (both are FIFO behind the handler's
                    // send). Bounded: a peer the handler never decides about
                    // (shutdown) is not waited for long.
                    let _ = peer.announced.receiver().recv_timeout(ANNOUNCE_WAIT);
                }
                // Time spent here while the sync inbox is full is the node's,
                // not the peer's: the writer's ping deadline leaves it out.
                peer.set_backpressure(true);
                peer.queue_received(size as u64);
                let delivered = ctx.messages.deliver(Arc::clone(peer), other);
                peer.set_backpressure(false);
                if !delivered {
                    return DisconnectReason::Shutdown;
                }
            }
        }
    }
}

/// Counts a received frame on the peer and in the node's totals.
fn count_received(ctx: &NetContext, peer: &Peer, size: usize) {
    peer.bytes_recv.fetch_add(size as u64, Ordering::Relaxed);
    ctx.connections
        .total_bytes_recv
        .fetch_add(size as u64, Ordering::Relaxed);
    peer.last_recv
        .store(crate::util::unix_time(), Ordering::Relaxed);
}

/// Core's "Received addr: N addresses (P processed, R rate-limited)".
fn log_addrs(peer: &Peer, what: &str, n: usize, out: addrbook::AddrOutcome) {
    peer.addr_processed
        .fetch_add(out.processed as u64, Ordering::Relaxed);
    peer.addr_rate_limited
        .fetch_add(out.rate_limited as u64, Ordering::Relaxed);
    log::debug!(
        "{peer}: received {what}: {n} addresses ({} processed, {} rate-limited)",
        out.processed,
        out.rate_limited
    );
}

fn unix_now_u32() -> u32 {
    u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX)
}

/// Core's address steps at the end of an outbound handshake: record the
/// services and success in the address manager (`SetServices`, `Good`),
/// and, unless block-relay-only or a feeler, enable address relay and ask
/// for addresses once (`getaddr`, with `MAX_ADDR_TO_SEND` extra tokens for
/// the answer). Returns whether `getaddr` was sent.
fn outbound_addr_setup(
    ctx: &NetContext,
    peer: &Arc<Peer>,
    bucket: &mut addrbook::AddrTokenBucket,
) -> bool {
    let addr = crate::netaddr::addr_v2(peer.addr.ip());
    ctx.addrman
        .set_services(&addr, peer.addr.port(), peer.services());
    ctx.addrman.good(&addr, peer.addr.port(), unix_now_u32());
    if ctx.addr_relay.enable(peer) {
        peer.send(NetworkMessage::GetAddr);
        bucket.credit(MAX_ADDR_TO_SEND as f64);
        return true;
    }
    false
}

/// Core's `ProcessAddrs`: addresses from block-relay-only and feeler
/// peers are ignored; the rest pass the token bucket, are remembered as
/// known by the peer, relayed if fresh (not in the answer to our own
/// `getaddr`), and added to the address manager with Core's 2-hour time
/// penalty.
fn process_addrs(
    ctx: &NetContext,
    peer: &Arc<Peer>,
    what: &str,
    n: usize,
    list: &[bitcoin::p2p::address::AddrV2Message],
    bucket: &mut addrbook::AddrTokenBucket,
    getaddr_sent: &mut bool,
) {
    if !ctx.addr_relay.enable(peer) {
        log::debug!(
            "{peer}: ignoring {what} from a {} connection",
            peer.conn_type
        );
        return;
    }
    let now = unix_now_u32();
    let (out, ok) = addrbook::process_addrs(list, bucket, Instant::now(), now);
    log_addrs(peer, what, n, out);
    ctx.addr_relay.add_known(peer.id, &ok);
    if !*getaddr_sent {
        let lb = ctx.addrman.loopback_routable();
        ctx.addr_relay.relay_fresh(peer.id, n, &ok, lb, now);
    }
    let source = crate::netaddr::addr_v2(peer.addr.ip());
    ctx.addrman.add(&ok, &source, ADDR_TIME_PENALTY);
    if n < MAX_ADDR_TO_SEND {
        *getaddr_sent = false;
    }
}

/// The protocol version both sides speak (Core's `GetCommonVersion`).
fn common_version(theirs: u32) -> u32 {
    theirs.min(PROTOCOL_VERSION)
}

/// Why `msg` carries more items than Bitcoin Core accepts in one message
/// (Core disconnects or punishes the sender for each), or `None`.
pub(crate) fn oversized(msg: &NetworkMessage) -> Option<String> {
    let (what, n, max) = match msg {
        NetworkMessage::GetHeaders(m) => {
            ("getheaders locator", m.locator_hashes.len(), MAX_LOCATOR_SZ)
        }
        NetworkMessage::GetBlocks(m) => {
            ("getblocks locator", m.locator_hashes.len(), MAX_LOCATOR_SZ)
        }
        NetworkMessage::Inv(v) => ("inv", v.len(), MAX_INV_SZ),
        NetworkMessage::GetData(v) => ("getdata", v.len(), MAX_INV_SZ),
        NetworkMessage::NotFound(v) => ("notfound", v.len(), MAX_INV_SZ),
        NetworkMessage::Addr(v) => ("addr", v.len(), MAX_ADDR_TO_SEND),
        NetworkMessage::AddrV2(v) => ("addrv2", v.len(), MAX_ADDR_TO_SEND),
        _ => return None,
    };
    (n > max).then(|| format!("{what} of {n} entries (limit {max})"))
}

/// Body of a peer's writer thread.
fn write_loop(ctx: &NetContext, peer: &Peer, outbox: Receiver<Vec<u8>>) {
    let Some(mut socket) = peer.socket() else {
        return;
    };
    let _ = socket.set_write_timeout(Some(ctx.config.idle_timeout));
    let interval = ctx.config.ping_interval;
    let mut next_ping = Instant::now() + interval;
    // The reader's back-pressure total when the outstanding ping was sent.
    let mut ping_backpressure = Duration::ZERO;
    let quit = peer.quit.receiver();
    // A frame taken from the queue that did not fit the last write.
    let mut pending: Option<Vec<u8>> = None;
    loop {
        // Core's MaybeSendAddr: flush the address relay queue when due. A
        // peer whose relay is enabled while this thread sleeps gets its
        // first flush at the next wake (a message to send or the ping).
        let relay_due = ctx.addr_relay.next_due(peer.id);
        let wait = relay_due.map_or(next_ping, |d| d.min(next_ping));
        let wait = wait.saturating_duration_since(Instant::now());
        let due = relay_due.is_some_and(|d| d <= Instant::now());
        // Frames from the queue (counted in the send budget), the address
        // relay flush, or our ping.
        let (bytes, queued) = if let Some(frame) = pending.take() {
            (coalesce(frame, &outbox, &mut pending), true)
        } else if due {
            match ctx.addr_relay.take_due(peer.id, Instant::now()) {
                Some(msg) => (wire::encode_message(ctx.magic, msg), false),
                None => continue,
            }
        } else {
            select! {
                recv(outbox) -> frame => match frame {
                    Ok(frame) => (coalesce(frame, &outbox, &mut pending), true),
                    Err(_) => return,
                },
                recv(quit) -> _ => return,
                default(wait) => {
                    if Instant::now() < next_ping {
                        continue; // woken for the address relay flush
                    }
                    next_ping = Instant::now() + interval;
                    if !peer.handshake_done() {
                        continue;
                    }
                    let mut ping = peer.ping.lock();
                    if let Some((_, sent)) = *ping {
                        // While our reader waited on a full sync inbox it could
                        // not read the pong: that time is not the peer's.
                        let waited = peer.backpressure_total().saturating_sub(ping_backpressure);
                        let charged = sent.elapsed().saturating_sub(waited);
                        if charged < interval {
                            next_ping = Instant::now() + (interval - charged).max(Duration::from_millis(10));
                            continue;
                        }
                        drop(ping);
                        peer.disconnect(DisconnectReason::PingTimeout);
                        return;
                    }
                    let nonce = random_nonce();
                    ping_backpressure = peer.backpressure_total();
                    *ping = Some((nonce, Instant::now()));
                    (wire::encode_message(ctx.magic, NetworkMessage::Ping(nonce)), false)
                },
            }
        };
        let written = socket.write_all(&bytes);
        let len = bytes.len() as u64;
        drop(bytes);
        if queued && peer.sent(len) && peer.getdata_deferred.swap(false, Ordering::SeqCst) {
            // Pause-send is over: the sync manager serves what it deferred.
            ctx.messages.send_drained(peer.id);
        }
        if let Err(e) = written {
            peer.disconnect(DisconnectReason::WriteFailed(e.to_string()));
            return;
        }
        peer.bytes_sent.fetch_add(len, Ordering::Relaxed);
        ctx.connections
            .total_bytes_sent
            .fetch_add(len, Ordering::Relaxed);
        peer.last_send
            .store(crate::util::unix_time(), Ordering::Relaxed);
    }
}

/// Small frames queued together are written with one `write` (the
/// handshake's `version`, `wtxidrelay`, `sendaddrv2`, `verack`; `inv`
/// bursts) up to this many bytes.
const COALESCE_BYTES: usize = 64 * 1024;

/// `first` followed by the frames already queued behind it, as long as the
/// total stays within [`COALESCE_BYTES`]; a frame that does not fit is left
/// in `pending` for the next write.
fn coalesce(first: Vec<u8>, outbox: &Receiver<Vec<u8>>, pending: &mut Option<Vec<u8>>) -> Vec<u8> {
    let mut bytes = first;
    while bytes.len() < COALESCE_BYTES {
        match outbox.try_recv() {
            Ok(next) if bytes.len() + next.len() <= COALESCE_BYTES => {
                bytes.extend_from_slice(&next)
            }
            Ok(next) => {
                *pending = Some(next);
                break;
            }
            Err(_) => break,
        }
    }
    bytes
}

/// How long a clean shutdown waits for peer threads.
pub(crate) const PEER_JOIN_TIMEOUT: Duration = Duration::from_secs(10);
