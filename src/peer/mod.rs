//! Peers: the shared per-connection handle, the connection registry, and
//! the start of a connection's three threads.
//!
//! A connection, inbound (accepted by the listener in `server.rs`) or
//! outbound (dialled by `connmgr.rs`), becomes a [`Peer`] registered in the
//! [`Connections`] registry and gets three threads (see `conn.rs` and
//! `lifecycle.rs`):
//!
//! * **reader** — performs the version handshake, then turns socket bytes
//!   into messages, answers pings and forwards everything else to the
//!   sync-manager thread. It owns the connection's end: when it stops for any
//!   reason it shuts the socket, sets the *quit* signal, joins the other two
//!   and removes the peer from the registry.
//! * **writer** — drains the peer's bounded outbound queue onto the socket and
//!   sends pings. Nobody ever blocks on a peer's queue: [`Peer::send`] drops a
//!   peer whose queue is full.
//! * **lifecycle** — the only sender of the peer's `Add`/`Done` events.
//!
//! The three roles run on threads of the node's [`pool`] (parked threads
//! reused from one connection to the next, so a short connection does not
//! pay for creating three threads); each live peer still has its own three
//! OS threads.
//!
//! Other threads hold an `Arc<Peer>` to send messages or to disconnect it;
//! [`Peer::disconnect`] records the first [`DisconnectReason`] and shuts the
//! socket, which ends the reader.
//!
//! **Byte budgets** (Bitcoin Core's): [`Peer::send`] serializes the message
//! on the caller's thread and counts its bytes in the peer's send queue
//! until the writer has written them (Core's `nSendSize`). Over
//! `max_send_buffer` (Core's `-maxsendbuffer`, [`DEFAULT_MAX_SEND_BUFFER`])
//! the peer is *paused for sending* ([`Peer::pause_send`], Core's
//! `fPauseSend`): the sync manager stops serving its `getdata` until the
//! writer has drained it. A queue that still grows past
//! [`send_hard_limit`] is dropped ([`DisconnectReason::SendQueueFull`]).
//! Likewise the bytes a reader has handed to the sync manager and that are
//! not yet processed (deferred `getdata` items included) count against
//! `max_receive_buffer` (Core's `-maxreceivebuffer`,
//! [`DEFAULT_MAX_RECEIVE_BUFFER`]); over it the reader stops reading the
//! socket (*pause-recv*, Core's `fPauseRecv`) until the sync manager caught
//! up.

pub mod addr_relay;
pub mod addrbook;
pub mod addrman;
pub mod banlist;
pub(crate) mod conn;
pub mod disconnects;
pub mod eviction;
pub mod lifecycle;
pub(crate) mod pool;
pub mod seeds;
pub mod signal;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use crossbeam_channel::{bounded, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};

use crate::util::random_nonce;
/// A peer's identifier (defined in the bottom layer, [`crate::util`], so the
/// mempool can tag orphans without importing the networking layer).
pub use crate::util::PeerId;
use crate::wire::{WireError, MAX_PAYLOAD};
pub(crate) use conn::{start_peer, MessageSink, NetContext, StartPeerError};
pub use lifecycle::LifecycleEvent;
pub use signal::Signal;

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The remote connected to our listener.
    Inbound,
    /// We connected to the remote (`--connect`/`--addnode`).
    Outbound,
}

/// What a connection is for (Core's `ConnectionType`). Decides its slot,
/// what is relayed on it and how it is evicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// The remote connected to our listener (`INBOUND`).
    Inbound,
    /// An automatic outbound connection relaying blocks, transactions and
    /// addresses (`OUTBOUND_FULL_RELAY`).
    OutboundFullRelay,
    /// An automatic outbound connection relaying blocks only, no
    /// transactions or addresses (`BLOCK_RELAY`).
    BlockRelayOnly,
    /// `--connect`, `--addnode` or the `addnode` RPC (`MANUAL`).
    Manual,
    /// A short connection testing an address from the *new* table
    /// (`FEELER`).
    Feeler,
    /// A short connection asking a seed node for addresses (`ADDR_FETCH`).
    AddrFetch,
}

impl ConnectionType {
    /// Who opens a connection of this type.
    pub fn direction(self) -> Direction {
        match self {
            ConnectionType::Inbound => Direction::Inbound,
            _ => Direction::Outbound,
        }
    }

    /// Core's `connection_type` string in `getpeerinfo`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Inbound => "inbound",
            ConnectionType::OutboundFullRelay => "outbound-full-relay",
            ConnectionType::BlockRelayOnly => "block-relay-only",
            ConnectionType::Manual => "manual",
            ConnectionType::Feeler => "feeler",
            ConnectionType::AddrFetch => "addr-fetch",
        }
    }
}

impl fmt::Display for ConnectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

/// What the remote said about itself in its `version` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteVersion {
    /// Protocol version.
    pub version: u32,
    /// Advertised services.
    pub services: ServiceFlags,
    /// Height the remote claimed at connection time.
    pub start_height: i32,
    /// BIP14 user agent.
    pub user_agent: String,
    /// Whether it wants transactions relayed (BIP37 relay flag).
    pub relay: bool,
}

/// Why a peer was disconnected. The first reason recorded wins: a peer that
/// strand disconnects for misbehaving is not later reported as "closed by
/// peer" when its socket ends.
#[derive(Clone, Debug)]
pub enum DisconnectReason {
    /// The remote closed the connection.
    PeerClosed,
    /// The remote sent bytes that are not a valid message frame.
    Wire(Arc<WireError>),
    /// No completed version/verack handshake within the negotiation timeout.
    HandshakeTimeout,
    /// Nothing received within the idle timeout.
    IdleTimeout,
    /// A ping went unanswered until the next one was due.
    PingTimeout,
    /// The remote broke the protocol (message out of order, and so on).
    ProtocolViolation(String),
    /// The remote echoed one of our own version nonces: we connected to ourselves.
    SelfConnection,
    /// The remote's protocol version is too old.
    ObsoleteVersion(u32),
    /// The peer's outbound queue was full: it does not read fast enough.
    SendQueueFull,
    /// Writing to the socket failed.
    WriteFailed(String),
    /// The connection limit was reached.
    TooManyPeers,
    /// The sync peer made no progress within the stall timeout.
    Stalled,
    /// A block we asked this peer for did not arrive by its deadline.
    BlockDownloadTimeout,
    /// The peer sent invalid consensus data (header, block) or broke a rule
    /// worth a ban.
    Misbehaving(String),
    /// Disconnected on request (RPC, embedding API).
    Requested,
    /// Its address was banned (`setban`).
    Banned,
    /// The node is shutting down.
    Shutdown,
    /// A thread for the peer could not be started.
    ResourceExhausted(String),
    /// The remote asked for a service we do not offer (Core disconnects,
    /// without discouraging, a peer sending `mempool` when bloom filters
    /// are off).
    ServiceNotOffered(String),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::PeerClosed => write!(f, "connection closed by peer"),
            DisconnectReason::Wire(e) => write!(f, "{e}"),
            DisconnectReason::HandshakeTimeout => write!(f, "version handshake timed out"),
            DisconnectReason::IdleTimeout => write!(f, "idle timeout"),
            DisconnectReason::PingTimeout => write!(f, "ping timeout"),
            DisconnectReason::ProtocolViolation(s) => write!(f, "protocol violation: {s}"),
            DisconnectReason::SelfConnection => write!(f, "connected to self"),
            DisconnectReason::ObsoleteVersion(v) => write!(f, "obsolete protocol version {v}"),
            DisconnectReason::SendQueueFull => write!(f, "send queue full"),
            DisconnectReason::WriteFailed(e) => write!(f, "write failed: {e}"),
            DisconnectReason::TooManyPeers => write!(f, "too many peers"),
            DisconnectReason::Stalled => write!(f, "sync peer stalled"),
            DisconnectReason::BlockDownloadTimeout => write!(f, "block download timed out"),
            DisconnectReason::Misbehaving(s) => write!(f, "misbehaving: {s}"),
            DisconnectReason::Requested => write!(f, "disconnect requested"),
            DisconnectReason::Banned => write!(f, "banned"),
            DisconnectReason::Shutdown => write!(f, "node shutting down"),
            DisconnectReason::ResourceExhausted(s) => write!(f, "cannot start peer thread: {s}"),
            DisconnectReason::ServiceNotOffered(s) => {
                write!(f, "asked for a service we do not offer: {s}")
            }
        }
    }
}

impl DisconnectReason {
    /// The reason's index in [`disconnects::DISCONNECT_KINDS`] (its label without the
    /// detail text, so labels stay few).
    pub fn kind_index(&self) -> usize {
        match self {
            DisconnectReason::PeerClosed => 0,
            DisconnectReason::Wire(_) => 1,
            DisconnectReason::HandshakeTimeout => 2,
            DisconnectReason::IdleTimeout => 3,
            DisconnectReason::PingTimeout => 4,
            DisconnectReason::ProtocolViolation(_) => 5,
            DisconnectReason::SelfConnection => 6,
            DisconnectReason::ObsoleteVersion(_) => 7,
            DisconnectReason::SendQueueFull => 8,
            DisconnectReason::WriteFailed(_) => 9,
            DisconnectReason::TooManyPeers => 10,
            DisconnectReason::Stalled => 11,
            DisconnectReason::BlockDownloadTimeout => 12,
            DisconnectReason::Misbehaving(_) => 13,
            DisconnectReason::Requested => 14,
            DisconnectReason::Banned => 15,
            DisconnectReason::Shutdown => 16,
            DisconnectReason::ResourceExhausted(_) => 17,
            DisconnectReason::ServiceNotOffered(_) => 18,
        }
    }

    /// The reason's metrics label (`peer_closed`, `misbehaving`, ...).
    pub fn kind(&self) -> &'static str {
        disconnects::DISCONNECT_KINDS
            .get(self.kind_index())
            .copied()
            .unwrap_or("none")
    }
}

impl DisconnectReason {
    /// True for misbehaviour that gets the address discouraged (Core's
    /// `Misbehaving` → `MaybeDiscourageAndDisconnect`): invalid consensus
    /// data and protocol violations such as oversize lists. Framing errors,
    /// old versions and self-connections only disconnect, as in Core.
    pub fn discourages(&self) -> bool {
        matches!(
            self,
            DisconnectReason::ProtocolViolation(_) | DisconnectReason::Misbehaving(_)
        )
    }

    /// True for reasons that are the remote's fault (worth an info log).
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            DisconnectReason::Wire(_)
                | DisconnectReason::ProtocolViolation(_)
                | DisconnectReason::ObsoleteVersion(_)
                | DisconnectReason::SelfConnection
                | DisconnectReason::Misbehaving(_)
        )
    }
}

/// The shared handle of one connection.
///
/// Created when the connection is accepted or dialled; lives as long as
/// anyone holds it, but the connection itself ends when the reader thread
/// stops (observable as [`Peer::is_closed`]).
pub struct Peer {
    /// Unique id.
    pub id: PeerId,
    /// Remote address.
    pub addr: SocketAddr,
    /// Who opened the connection.
    pub direction: Direction,
    /// What the connection is for.
    pub conn_type: ConnectionType,
    /// When the connection was made.
    pub connected_at: SystemTime,
    /// Set by the reader when `verack` arrives after `version`.
    pub(crate) verack: Signal,
    /// Set by the reader when the connection has ended.
    pub(crate) quit: Signal,
    /// Set by the peer handler once it has decided about the peer: after
    /// sending `NewPeer` (then `known_to_sync` is true) or on rejecting it.
    /// The reader forwards nothing to the sync manager before this, so the
    /// sync manager sees a peer's `NewPeer` before its messages.
    pub(crate) announced: Signal,
    socket: Option<TcpStream>,
    magic: Magic,
    /// Serialized frames for the writer.
    outbox: Sender<Vec<u8>>,
    version: OnceLock<RemoteVersion>,
    local_nonce: u64,
    reason: Mutex<Option<DisconnectReason>>,
    /// Set by the peer handler when it has sent `NewPeer` for this peer.
    pub(crate) known_to_sync: AtomicBool,
    /// Set by the sync manager when it has handled `DonePeer` for this peer.
    pub(crate) sync_done: AtomicBool,
    pub(crate) ping: Mutex<Option<(u64, Instant)>>,
    pub(crate) last_ping_rtt_us: AtomicI64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_recv: AtomicU64,
    pub(crate) send_headers: AtomicBool,
    pub(crate) wtxid_relay: AtomicBool,
    /// The peer sent `sendaddrv2` (BIP155) before verack.
    pub(crate) addr_v2: AtomicBool,
    /// We answered its `getaddr` already (once per connection, as Core).
    pub(crate) getaddr_answered: AtomicBool,
    pub(crate) fee_filter: AtomicI64,
    /// Core's `hashContinue`: when this peer fetches this block (the last
    /// of a 500-block `inv` answering `getblocks`), send it an `inv` of our
    /// tip so it asks for more.
    pub(crate) hash_continue: Mutex<Option<bitcoin::BlockHash>>,
    /// Time the reader spent waiting on a full sync inbox (back-pressure):
    /// since when it is waiting now, and the total of its finished waits.
    /// The writer's ping deadline does not count it against the peer.
    backpressure: Mutex<(Option<Instant>, Duration)>,
    slot_released: AtomicBool,
    /// Its address was discouraged when it connected: the first inbound
    /// peer evicted when the node is full (Core's `m_prefer_evict`).
    prefer_evict: AtomicBool,
    /// Unix time of the last new block this peer gave us first, 0 if none
    /// (Core's `m_last_block_time`, protects it from inbound eviction).
    pub(crate) last_block_time: AtomicU64,
    /// Unix time of the last new mempool transaction from it, 0 if none
    /// (Core's `m_last_tx_time`).
    pub(crate) last_tx_time: AtomicU64,
    /// Lowest ping round trip seen, microseconds, -1 before the first pong
    /// (Core's `m_min_ping_time`).
    pub(crate) min_ping_us: AtomicI64,
    /// Unix time of the last message written to / read from it (Core's
    /// `m_last_send`, `m_last_recv`), 0 before the first.
    pub(crate) last_send: AtomicU64,
    pub(crate) last_recv: AtomicU64,
    /// Addresses from its `addr`/`addrv2` processed and dropped by the rate
    /// limit (Core's `m_addr_processed`, `m_addr_rate_limited`).
    pub(crate) addr_processed: AtomicU64,
    /// See [`Peer::addr_processed`].
    pub(crate) addr_rate_limited: AtomicU64,
    /// Bytes queued for the writer and not yet written (Core's `nSendSize`).
    send_queued: AtomicU64,
    /// Bytes the reader handed to the sync manager that it has not
    /// processed yet, deferred `getdata` items included (Core's
    /// `m_msg_process_queue_size`).
    recv_queued: AtomicU64,
    /// Sizes of the messages handed to the sync manager and not yet
    /// processed, oldest first (one channel carries them, in this order).
    recv_sizes: Mutex<VecDeque<u64>>,
    /// Wakes a reader paused for receiving.
    recv_wait: (Mutex<()>, Condvar),
    /// The budgets (`max_send_buffer`, `max_receive_buffer`), in bytes.
    max_send_buffer: u64,
    max_recv_buffer: u64,
    /// Set by the sync manager when it left some of this peer's `getdata`
    /// for later because the peer was paused for sending: the writer tells
    /// it when the queue is back under budget.
    pub(crate) getdata_deferred: AtomicBool,
}

pub use crate::config::{DEFAULT_MAX_RECEIVE_BUFFER, DEFAULT_MAX_SEND_BUFFER};

/// The send queue at which a peer is disconnected
/// ([`DisconnectReason::SendQueueFull`]): the budget plus two messages of
/// the largest size (2 × `MAX_PROTOCOL_MESSAGE_LENGTH`, 8 MB). Core has no
/// such cap because it stops processing *every* message of a paused peer;
/// strand only defers `getdata`, so answers to other requests (headers,
/// pongs) of a peer that never reads could otherwise pile up.
pub fn send_hard_limit(max_send_buffer: usize) -> u64 {
    (max_send_buffer + 2 * MAX_PAYLOAD) as u64
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer={} ({} {})", self.id, self.direction, self.addr)
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Peer {
    fn new(
        id: PeerId,
        addr: SocketAddr,
        conn_type: ConnectionType,
        socket: Option<TcpStream>,
        outbox: Sender<Vec<u8>>,
        magic: Magic,
        budgets: (usize, usize),
    ) -> Peer {
        Peer {
            id,
            addr,
            direction: conn_type.direction(),
            conn_type,
            connected_at: SystemTime::now(),
            verack: Signal::new("verack"),
            quit: Signal::new("quit"),
            announced: Signal::new("announced"),
            socket,
            magic,
            outbox,
            version: OnceLock::new(),
            local_nonce: random_nonce(),
            reason: Mutex::new(None),
            known_to_sync: AtomicBool::new(false),
            sync_done: AtomicBool::new(false),
            ping: Mutex::new(None),
            last_ping_rtt_us: AtomicI64::new(-1),
            bytes_sent: AtomicU64::new(0),
            bytes_recv: AtomicU64::new(0),
            send_headers: AtomicBool::new(false),
            wtxid_relay: AtomicBool::new(false),
            addr_v2: AtomicBool::new(false),
            getaddr_answered: AtomicBool::new(false),
            fee_filter: AtomicI64::new(0),
            hash_continue: Mutex::new(None),
            backpressure: Mutex::new((None, Duration::ZERO)),
            slot_released: AtomicBool::new(false),
            prefer_evict: AtomicBool::new(false),
            last_block_time: AtomicU64::new(0),
            last_tx_time: AtomicU64::new(0),
            min_ping_us: AtomicI64::new(-1),
            last_send: AtomicU64::new(0),
            last_recv: AtomicU64::new(0),
            addr_processed: AtomicU64::new(0),
            addr_rate_limited: AtomicU64::new(0),
            send_queued: AtomicU64::new(0),
            recv_queued: AtomicU64::new(0),
            recv_sizes: Mutex::new(VecDeque::new()),
            recv_wait: (Mutex::new(()), Condvar::new()),
            max_send_buffer: budgets.0 as u64,
            max_recv_buffer: budgets.1 as u64,
            getdata_deferred: AtomicBool::new(false),
        }
    }

    /// A peer with no socket, for unit tests of the lifecycle machinery.
    pub fn detached(id: PeerId, direction: Direction) -> Peer {
        let (tx, _rx) = bounded(1);
        Peer::new(
            id,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            match direction {
                Direction::Inbound => ConnectionType::Inbound,
                Direction::Outbound => ConnectionType::Manual,
            },
            None,
            tx,
            Magic::REGTEST,
            (DEFAULT_MAX_SEND_BUFFER, DEFAULT_MAX_RECEIVE_BUFFER),
        )
    }

    /// Marks the start (`true`) or end (`false`) of a wait of the reader on
    /// the sync inbox.
    pub(crate) fn set_backpressure(&self, waiting: bool) {
        let mut bp = self.backpressure.lock();
        match (waiting, bp.0) {
            (true, None) => bp.0 = Some(Instant::now()),
            (false, Some(since)) => {
                bp.0 = None;
                bp.1 += since.elapsed();
            }
            _ => {}
        }
    }

    /// Total time the reader has waited on back-pressure, the current wait
    /// included.
    pub(crate) fn backpressure_total(&self) -> Duration {
        let bp = self.backpressure.lock();
        bp.1 + bp.0.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// The remote's `version` data, once received.
    pub fn remote_version(&self) -> Option<&RemoteVersion> {
        self.version.get()
    }

    /// True once the version handshake completed.
    pub fn handshake_done(&self) -> bool {
        self.verack.is_set()
    }

    /// True once the connection has ended (the reader stopped).
    pub fn is_closed(&self) -> bool {
        self.quit.is_set()
    }

    /// Why the connection ended (or is ending), if it has.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.reason.lock().clone()
    }

    /// Serializes `msg` and queues it for the writer thread without
    /// blocking. A full queue (in messages, or past [`send_hard_limit`] in
    /// bytes) disconnects the peer ([`DisconnectReason::SendQueueFull`]).
    /// Returns whether the message was queued.
    pub fn send(&self, msg: NetworkMessage) -> bool {
        let frame = crate::wire::encode_message(self.magic, msg);
        let len = frame.len() as u64;
        let queued = self.send_queued.fetch_add(len, Ordering::SeqCst) + len;
        if queued > send_hard_limit(self.max_send_buffer as usize) {
            self.send_queued.fetch_sub(len, Ordering::SeqCst);
            self.disconnect(DisconnectReason::SendQueueFull);
            return false;
        }
        match self.outbox.try_send(frame) {
            Ok(()) => true,
            Err(e) => {
                self.send_queued.fetch_sub(len, Ordering::SeqCst);
                if matches!(e, TrySendError::Full(_)) {
                    self.disconnect(DisconnectReason::SendQueueFull);
                }
                false
            }
        }
    }

    /// Bytes queued for the writer and not yet written.
    pub fn send_queued_bytes(&self) -> u64 {
        self.send_queued.load(Ordering::SeqCst)
    }

    /// Core's `fPauseSend`: the send queue is over the budget, so no more
    /// `getdata` of this peer is served until the writer drained it.
    pub fn pause_send(&self) -> bool {
        self.send_queued_bytes() > self.max_send_buffer
    }

    /// The writer wrote a frame of `len` bytes. Returns whether that took
    /// the queue from over the budget to within it.
    pub(crate) fn sent(&self, len: u64) -> bool {
        let before = self.send_queued.fetch_sub(len, Ordering::SeqCst);
        let after = before.saturating_sub(len);
        before > self.max_send_buffer && after <= self.max_send_buffer
    }

    /// Bytes handed to the sync manager and not yet processed.
    pub fn recv_queued_bytes(&self) -> u64 {
        self.recv_queued.load(Ordering::SeqCst)
    }

    /// Core's `fPauseRecv`: too many received bytes wait for processing, so
    /// the reader does not read the socket.
    pub fn pause_recv(&self) -> bool {
        self.recv_queued_bytes() > self.max_recv_buffer
    }

    /// The reader hands a message of `size` bytes to the sync manager.
    pub(crate) fn queue_received(&self, size: u64) {
        self.recv_sizes.lock().push_back(size);
        self.recv_queued.fetch_add(size, Ordering::SeqCst);
    }

    /// The sync manager processed this peer's oldest message handed over
    /// and keeps `kept` bytes of work from it for later (deferred `getdata`
    /// items). The message's bytes are swapped for `kept` in one update, so
    /// the budget never counts both: at most the budget plus one message is
    /// ever held, however the reader and the sync manager interleave.
    pub(crate) fn received_processed(&self, kept: u64) {
        let size = self.recv_sizes.lock().pop_front().unwrap_or(0);
        if kept >= size {
            self.charge_received(kept - size);
        } else {
            self.uncharge_received(size - kept);
        }
    }

    /// Counts `bytes` more against the receive budget (work the sync
    /// manager keeps for later, such as deferred `getdata` items).
    pub(crate) fn charge_received(&self, bytes: u64) {
        self.recv_queued.fetch_add(bytes, Ordering::SeqCst);
    }

    /// Gives back `bytes` of the receive budget; wakes a paused reader
    /// once the queue is within the budget.
    pub(crate) fn uncharge_received(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut cur = self.recv_queued.load(Ordering::SeqCst);
        loop {
            let new = cur.saturating_sub(bytes);
            match self.recv_queued.compare_exchange_weak(
                cur,
                new,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur > self.max_recv_buffer && !self.pause_recv() {
            self.wake_reader();
        }
    }

    fn wake_reader(&self) {
        let _guard = self.recv_wait.0.lock();
        self.recv_wait.1.notify_all();
    }

    /// Blocks the reader while it is paused for receiving. Returns early
    /// (false) once the peer is being disconnected.
    pub(crate) fn wait_recv_budget(&self) -> bool {
        let mut guard = self.recv_wait.0.lock();
        loop {
            if self.reason.lock().is_some() {
                return false;
            }
            if !self.pause_recv() {
                return true;
            }
            // Bounded wait: `disconnect` wakes it too, this is a safety net.
            self.recv_wait
                .1
                .wait_for(&mut guard, Duration::from_millis(200));
        }
    }

    /// Core's `ping` RPC: sends a ping now unless one is outstanding.
    /// Returns whether one was sent.
    pub fn send_ping(&self) -> bool {
        if !self.handshake_done() || self.is_closed() {
            return false;
        }
        let mut ping = self.ping.lock();
        if ping.is_some() {
            return false;
        }
        let nonce = random_nonce();
        *ping = Some((nonce, Instant::now()));
        drop(ping);
        self.send(NetworkMessage::Ping(nonce))
    }

    /// Lowest ping round trip seen.
    pub fn min_ping(&self) -> Option<Duration> {
        let us = self.min_ping_us.load(Ordering::Relaxed);
        (us >= 0).then(|| Duration::from_micros(us as u64))
    }

    /// Ends the connection: records `reason` (unless one is already
    /// recorded) and shuts the socket, which stops the reader thread. Safe to
    /// call from any thread, any number of times.
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.record_reason(reason);
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
        // A reader paused for receiving is not reading the socket.
        self.wake_reader();
    }

    fn record_reason(&self, reason: DisconnectReason) -> DisconnectReason {
        let mut r = self.reason.lock();
        r.get_or_insert(reason).clone()
    }

    fn socket(&self) -> Option<&TcpStream> {
        self.socket.as_ref()
    }

    /// The remote's services, or none before `version`.
    pub fn services(&self) -> ServiceFlags {
        self.version
            .get()
            .map(|v| v.services)
            .unwrap_or(ServiceFlags::NONE)
    }

    /// Last measured ping round trip.
    pub fn ping_rtt(&self) -> Option<Duration> {
        let us = self.last_ping_rtt_us.load(Ordering::Relaxed);
        (us >= 0).then(|| Duration::from_micros(us as u64))
    }
}

/// The services strand advertises in `version`, as an unpruned Bitcoin
/// Core does: `NODE_NETWORK`, `NODE_WITNESS`, and `NODE_NETWORK_LIMITED`
/// (BIP159: at least the last 288 blocks are served, which an archive
/// node does too). btcd refuses outbound peers without `NODE_NETWORK`; Core
/// wants `NODE_NETWORK` (or `NODE_NETWORK_LIMITED`) with `NODE_WITNESS`.
pub fn local_services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS
}

/// [`local_services`], without `NODE_NETWORK` when the node prunes (Core's
/// init: a pruned node serves only the last 288 blocks, BIP159's
/// `NODE_NETWORK_LIMITED`).
pub fn local_services_for(pruned: bool) -> ServiceFlags {
    let mut s = local_services();
    if pruned {
        s.remove(ServiceFlags::NETWORK);
    }
    s
}

/// Why a connection could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// No slot for its direction: `max_peers` connections (inbound: its
    /// share of them) are open, or the manual allowance beyond it is used.
    Full,
    /// The node is shutting down.
    ShuttingDown,
    /// The address is banned (`setban`).
    Banned,
    /// The address is discouraged and few inbound slots are left.
    Discouraged,
}

/// Every connection whose threads are running, handshaking or not, with
/// the version nonces we sent. Shared by the listener, the connection
/// manager, the reader threads (which remove themselves) and the node handle
/// (shutdown); it is the one piece of shared networking state, small and
/// behind one lock.
///
/// `max` (`--maxpeers`) counts every connection, but inbound ones may hold
/// at most [`max_inbound`] slots, so an inbound flood cannot take the slots
/// kept for outbound connections; outbound (manual) connections always get
/// a slot, up to [`MAX_ADDNODE_CONNECTIONS`] beyond `max`, as in Core.
///
/// The peer limit counts *slots*: a connection holds one from registration
/// until its socket is finished with (the reader stopped), not until its
/// threads have been joined, so a burst of short connections is not refused
/// while their clean-up catches up. A connection that finds no free slot
/// waits up to [`SLOT_WAIT`] for one before it is refused.
pub(crate) struct Connections {
    table: Mutex<ConnTable>,
    emptied: Condvar,
    slot_freed: Condvar,
    next_id: AtomicU64,
    max: usize,
    /// Where bans are persisted (`banlist.json`), once loaded from there;
    /// the mutex also orders concurrent writes of the file.
    banlist: Mutex<Option<std::path::PathBuf>>,
    /// Bytes sent to and received from all peers since start, closed ones
    /// included (Core's `nTotalBytesSent`, `nTotalBytesRecv`).
    pub(crate) total_bytes_sent: AtomicU64,
    pub(crate) total_bytes_recv: AtomicU64,
    /// Closed connections by reason (metrics).
    pub(crate) disconnects: disconnects::DisconnectCounts,
}

/// How long a misbehaving peer's address stays discouraged (Core's
/// `DEFAULT_MISBEHAVING_BANTIME`, 24 h, which its rolling bloom filter
/// approximates).
pub(crate) const DISCOURAGE_TIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Most discouraged addresses remembered, oldest forgotten first (Core's
/// rolling bloom filter holds 50,000).
pub(crate) const MAX_DISCOURAGED: usize = 50_000;

/// Outbound full-relay connections Core keeps (`MAX_OUTBOUND_FULL_RELAY_CONNECTIONS`,
/// net.h); their slots are kept from inbound peers.
pub const MAX_OUTBOUND_FULL_RELAY_CONNECTIONS: usize = 8;
/// Outbound block-relay-only connections Core keeps
/// (`MAX_BLOCK_RELAY_ONLY_CONNECTIONS`, net.h); also kept from inbound peers.
pub const MAX_BLOCK_RELAY_ONLY_CONNECTIONS: usize = 2;
/// Manual connections (`--connect`, `--addnode`, RPC `addnode`) allowed
/// beyond `--maxpeers` (Core's `MAX_ADDNODE_CONNECTIONS`, net.h: Core's
/// `-maxconnections` does not limit them, this many do).
pub const MAX_ADDNODE_CONNECTIONS: usize = 8;

/// Inbound slots out of `max_peers` (Core's `m_max_inbound`): all but the
/// outbound ones (8 full-relay + 2 block-relay-only), but at least one, so
/// a node with a small `--maxpeers` stays reachable (Core would give it
/// none); strand's outbound connections are manual and get a slot anyway.
pub fn max_inbound(max_peers: usize) -> usize {
    let reserved = MAX_OUTBOUND_FULL_RELAY_CONNECTIONS + MAX_BLOCK_RELAY_ONLY_CONNECTIONS;
    max_peers.saturating_sub(reserved).max(1)
}

/// Connections of any kind the node may hold at once: `max_peers` plus
/// the manual ones allowed beyond it.
pub fn max_connections(max_peers: usize) -> usize {
    max_peers + MAX_ADDNODE_CONNECTIONS
}

/// How long a new connection waits for a free slot before it is refused.
pub(crate) const SLOT_WAIT: Duration = Duration::from_millis(100);

struct ConnTable {
    peers: HashMap<PeerId, Arc<Peer>>,
    /// Banned subnets with the Unix time their ban ends (`setban`).
    bans: Vec<(crate::netaddr::SubNet, u64, u64)>,
    nonces: HashSet<u64>,
    /// Discouraged addresses and when their discouragement ends, with their
    /// insertion order (oldest first) to bound the set.
    discouraged: HashMap<std::net::IpAddr, u64>,
    discouraged_order: std::collections::VecDeque<std::net::IpAddr>,
    /// Connections holding a slot.
    slots: usize,
    /// Inbound connections holding a slot.
    inbound_slots: usize,
    closed: bool,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Connections {
        Connections {
            table: Mutex::new(ConnTable {
                peers: HashMap::new(),
                bans: Vec::new(),
                nonces: HashSet::new(),
                discouraged: HashMap::new(),
                discouraged_order: std::collections::VecDeque::new(),
                slots: 0,
                inbound_slots: 0,
                closed: false,
            }),
            emptied: Condvar::new(),
            slot_freed: Condvar::new(),
            next_id: AtomicU64::new(1),
            max,
            banlist: Mutex::new(None),
            total_bytes_sent: AtomicU64::new(0),
            total_bytes_recv: AtomicU64::new(0),
            disconnects: disconnects::DisconnectCounts::default(),
        }
    }

    /// Loads the persisted bans from `path` (Core's `banlist.json`; ended
    /// bans dropped, a damaged file set aside, see [`banlist::load`]) and
    /// persists every later change of the bans there.
    pub(crate) fn load_bans(&self, path: std::path::PathBuf) {
        let mut file = self.banlist.lock();
        let loaded = banlist::load(&path, crate::util::unix_time());
        if !loaded.is_empty() {
            log::info!("loaded {} bans from {}", loaded.len(), path.display());
        }
        self.table.lock().bans = loaded;
        *file = Some(path);
    }

    /// Writes the current bans to the ban list file, if there is one
    /// (after every change and at shutdown). A failure is logged: bans in
    /// memory still apply.
    pub(crate) fn save_bans(&self) {
        let file = self.banlist.lock();
        if let Some(path) = file.as_ref() {
            if let Err(e) = banlist::write(path, &self.bans()) {
                log::warn!("cannot write the ban list: {e}");
            }
        }
    }

    fn register(&self, peer: &Arc<Peer>) -> Result<(), RegisterError> {
        let deadline = Instant::now() + SLOT_WAIT;
        if self.is_banned(peer.addr.ip()) {
            return Err(RegisterError::Banned);
        }
        let discouraged = self.is_discouraged(peer.addr.ip());
        let inbound = peer.direction == Direction::Inbound;
        let max_inbound = max_inbound(self.max);
        let fits = |t: &ConnTable| {
            if inbound {
                t.inbound_slots < max_inbound && t.slots < self.max
            } else {
                t.slots < max_connections(self.max)
            }
        };
        let mut t = self.table.lock();
        if discouraged && inbound {
            // Core's AcceptConnection: a discouraged address gets in only
            // while more than one inbound slot is free.
            if t.inbound_slots + 1 >= max_inbound || t.slots + 1 >= self.max {
                return Err(RegisterError::Discouraged);
            }
            peer.prefer_evict.store(true, Ordering::Relaxed);
        }
        let mut evicted = false;
        loop {
            if t.closed {
                return Err(RegisterError::ShuttingDown);
            }
            if fits(&t) {
                break;
            }
            if !evicted && inbound {
                // Full: an inbound peer from a discouraged address makes
                // room first (Core's eviction prefers `m_prefer_evict`).
                evicted = true;
                let victim = t
                    .peers
                    .values()
                    .filter(|p| {
                        p.direction == Direction::Inbound
                            && p.prefer_evict.load(Ordering::Relaxed)
                            && !p.slot_released.load(Ordering::SeqCst)
                    })
                    .max_by_key(|p| p.id)
                    .cloned();
                if let Some(v) = victim {
                    log::info!("evicting discouraged {v} for a new inbound connection");
                    v.disconnect(DisconnectReason::TooManyPeers);
                }
            }
            if self.slot_freed.wait_until(&mut t, deadline).timed_out() && !fits(&t) {
                return Err(RegisterError::Full);
            }
        }
        t.slots += 1;
        if inbound {
            t.inbound_slots += 1;
        }
        t.nonces.insert(peer.local_nonce);
        t.peers.insert(peer.id, Arc::clone(peer));
        Ok(())
    }

    /// Discourages `ip` for [`DISCOURAGE_TIME`] (Core's `BanMan::Discourage`).
    pub(crate) fn discourage(&self, ip: std::net::IpAddr) {
        let until = crate::util::unix_time() + DISCOURAGE_TIME.as_secs();
        let mut t = self.table.lock();
        if t.discouraged.insert(ip, until).is_none() {
            t.discouraged_order.push_back(ip);
        }
        while t.discouraged_order.len() > MAX_DISCOURAGED {
            if let Some(old) = t.discouraged_order.pop_front() {
                t.discouraged.remove(&old);
            }
        }
    }

    /// Whether `ip` is discouraged now.
    pub(crate) fn is_discouraged(&self, ip: std::net::IpAddr) -> bool {
        let now = crate::util::unix_time();
        self.table
            .lock()
            .discouraged
            .get(&ip)
            .is_some_and(|until| *until > now)
    }

    /// Whether `ip` is banned now (expired bans are dropped).
    pub(crate) fn is_banned(&self, ip: std::net::IpAddr) -> bool {
        let now = crate::util::unix_time();
        let mut t = self.table.lock();
        t.bans.retain(|(_, _, until)| *until > now);
        t.bans.iter().any(|(net, _, _)| net.contains(ip))
    }

    /// Bans `net` until `until` (Unix seconds) and disconnects its peers.
    /// Returns false if it was already banned.
    pub(crate) fn ban(&self, net: crate::netaddr::SubNet, until: u64) -> bool {
        let peers: Vec<_> = {
            let mut t = self.table.lock();
            if t.bans.iter().any(|(n, _, _)| *n == net) {
                return false;
            }
            t.bans.push((net, crate::util::unix_time(), until));
            t.peers
                .values()
                .filter(|p| net.contains(p.addr.ip()))
                .cloned()
                .collect()
        };
        self.save_bans();
        for p in peers {
            p.disconnect(DisconnectReason::Banned);
        }
        true
    }

    /// Lifts the ban on `net`; false if there was none.
    pub(crate) fn unban(&self, net: &crate::netaddr::SubNet) -> bool {
        let removed = {
            let mut t = self.table.lock();
            let before = t.bans.len();
            t.bans.retain(|(n, _, _)| n != net);
            t.bans.len() != before
        };
        if removed {
            self.save_bans();
        }
        removed
    }

    /// Current bans: subnet, start, end (Unix seconds).
    pub(crate) fn bans(&self) -> Vec<(crate::netaddr::SubNet, u64, u64)> {
        let now = crate::util::unix_time();
        let mut t = self.table.lock();
        t.bans.retain(|(_, _, until)| *until > now);
        t.bans.clone()
    }

    /// Gives back `peer`'s slot: its socket is finished with. Idempotent.
    pub(crate) fn release_slot(&self, peer: &Peer) {
        if !peer.slot_released.swap(true, Ordering::SeqCst) {
            let mut t = self.table.lock();
            t.slots = t.slots.saturating_sub(1);
            if peer.direction == Direction::Inbound {
                t.inbound_slots = t.inbound_slots.saturating_sub(1);
            }
            t.nonces.remove(&peer.local_nonce);
            // Wake every waiter: an inbound slot freed does not serve an
            // outbound waiter and the other way round.
            self.slot_freed.notify_all();
        }
    }

    /// Forgets `peer` once its threads are done (releasing its slot if
    /// that has not happened yet).
    pub(crate) fn remove(&self, peer: &Peer) {
        self.release_slot(peer);
        let reason = peer.disconnect_reason();
        let mut t = self.table.lock();
        if t.peers.remove(&peer.id).is_some() {
            self.disconnects
                .record(reason.as_ref().map(DisconnectReason::kind_index));
        }
        if t.peers.is_empty() {
            self.emptied.notify_all();
        }
    }

    /// True if `nonce` is one we sent on a connection that is still open.
    pub(crate) fn is_local_nonce(&self, nonce: u64) -> bool {
        self.table.lock().nonces.contains(&nonce)
    }

    /// Number of open connections.
    pub(crate) fn len(&self) -> usize {
        self.table.lock().peers.len()
    }

    /// All open connections.
    pub(crate) fn list(&self) -> Vec<Arc<Peer>> {
        self.table.lock().peers.values().cloned().collect()
    }

    /// Refuses new connections and disconnects every open one.
    pub(crate) fn close_all(&self) {
        let peers: Vec<_> = {
            let mut t = self.table.lock();
            t.closed = true;
            t.peers.values().cloned().collect()
        };
        for p in peers {
            p.disconnect(DisconnectReason::Shutdown);
        }
    }

    /// Waits until every connection's threads have finished.
    pub(crate) fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut t = self.table.lock();
        while !t.peers.is_empty() {
            if self.emptied.wait_until(&mut t, deadline).timed_out() {
                return t.peers.is_empty();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(c: &Connections, direction: Direction) -> Arc<Peer> {
        let id = c.next_id.fetch_add(1, Ordering::Relaxed);
        Arc::new(Peer::detached(id, direction))
    }

    /// A socketless peer with the given budgets and its writer's queue.
    fn budgeted(send: usize, recv: usize) -> (Peer, crossbeam_channel::Receiver<Vec<u8>>) {
        let (tx, rx) = bounded(1024);
        let p = Peer::new(
            1,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            ConnectionType::Inbound,
            None,
            tx,
            Magic::REGTEST,
            (send, recv),
        );
        (p, rx)
    }

    fn big_message(bytes: usize) -> NetworkMessage {
        NetworkMessage::Unknown {
            command: bitcoin::p2p::message::CommandString::try_from_static("filler")
                .expect("valid command"),
            payload: vec![0; bytes],
        }
    }

    #[test]
    fn send_queue_is_counted_in_bytes_with_pause_send_and_a_hard_limit() {
        let (p, rx) = budgeted(1_000, 5_000);
        assert!(p.send(NetworkMessage::Ping(1)));
        assert_eq!(p.send_queued_bytes(), 32, "24-byte header + 8-byte nonce");
        assert!(!p.pause_send());
        assert!(p.send(big_message(2_000)));
        assert!(p.pause_send(), "over the 1,000-byte budget");
        // The writer writes the big frame: back within the budget.
        let first = rx.recv().unwrap();
        assert!(!p.sent(first.len() as u64), "still over after the ping");
        let second = rx.recv().unwrap();
        assert!(p.sent(second.len() as u64), "within the budget again");
        assert_eq!(p.send_queued_bytes(), 0);
        // Past budget + 2 × MAX_PAYLOAD the peer is dropped, not queued.
        for _ in 0..2 {
            assert!(p.send(big_message(MAX_PAYLOAD - 100)));
        }
        assert!(!p.send(big_message(MAX_PAYLOAD - 100)));
        assert!(matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::SendQueueFull)
        ));
        assert!(p.send_queued_bytes() <= send_hard_limit(1_000));
    }

    #[test]
    fn receive_budget_pauses_and_disconnect_wakes_the_reader() {
        let (p, _rx) = budgeted(1_000, 100);
        p.queue_received(60);
        p.queue_received(60);
        assert!(p.pause_recv());
        p.received_processed(0);
        assert_eq!(p.recv_queued_bytes(), 60);
        p.received_processed(45);
        assert_eq!(
            p.recv_queued_bytes(),
            45,
            "the message swapped for the work kept"
        );
        assert!(p.wait_recv_budget(), "within the budget: no wait");
        p.charge_received(200);
        assert!(p.pause_recv());
        let p = Arc::new(p);
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.wait_recv_budget())
        };
        p.uncharge_received(200);
        assert!(waiter.join().unwrap(), "woken once within the budget");
        p.charge_received(200);
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.wait_recv_budget())
        };
        p.disconnect(DisconnectReason::Requested);
        assert!(!waiter.join().unwrap(), "a disconnect ends the wait");
    }

    #[test]
    fn inbound_share_follows_core_and_keeps_one_slot() {
        assert_eq!(max_inbound(125), 115);
        assert_eq!(max_inbound(12), 2);
        assert_eq!(max_inbound(10), 1);
        assert_eq!(max_inbound(3), 1);
        assert_eq!(max_inbound(1), 1);
        assert_eq!(max_connections(125), 133);
    }

    #[test]
    fn inbound_cannot_take_outbound_slots_and_manual_ones_go_beyond_the_limit() {
        let c = Connections::new(12);
        let inbound: Vec<_> = (0..2).map(|_| peer(&c, Direction::Inbound)).collect();
        for p in &inbound {
            assert_eq!(c.register(p), Ok(()));
        }
        let refused = peer(&c, Direction::Inbound);
        assert_eq!(c.register(&refused), Err(RegisterError::Full));
        // 10 outbound fill --maxpeers, 8 more manual ones are allowed.
        let outbound: Vec<_> = (0..18).map(|_| peer(&c, Direction::Outbound)).collect();
        for p in &outbound {
            assert_eq!(c.register(p), Ok(()));
        }
        assert_eq!(
            c.register(&peer(&c, Direction::Outbound)),
            Err(RegisterError::Full)
        );
        // A freed outbound slot is no inbound slot; a freed inbound one is,
        // but only while the total is under --maxpeers.
        c.release_slot(&outbound[0]);
        assert_eq!(c.register(&refused), Err(RegisterError::Full));
        for p in &outbound[1..8] {
            c.release_slot(p);
        }
        c.release_slot(&inbound[0]);
        assert_eq!(c.register(&refused), Ok(()));
        assert_eq!(c.table.lock().slots, 12);
        assert_eq!(c.table.lock().inbound_slots, 2);
    }
}
