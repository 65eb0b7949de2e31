//! Outbound connections, run by the `connmgr` thread: the manual ones
//! (btcd's `connmgr`) and Bitcoin Core's automatic ones
//! (`ThreadOpenConnections`).
//!
//! **Manual.** One connection is kept open to every `--connect` and
//! `--addnode` address and every `addnode add` target. A failed dial or a
//! closed connection is retried after `retry_base × attempts`, capped at
//! `retry_max` (btcd: 5 s steps, 5 min cap); the attempt counter resets
//! once a connection completes its handshake. They hold their own slots
//! (see `peer::Connections`) and never count against the automatic ones.
//!
//! **Automatic** (off with `--connect`, as in Core; `--addnode` keeps it;
//! on regtest it takes `--seednode` or `--autoconnect`, see
//! [`Config::automatic_outbound`](crate::config::Config::automatic_outbound)).
//! Each round (Core's 500 ms) opens at most one connection, of the first
//! kind that is short, in Core's order ([`policy::next_conn_type`]):
//! anchors as block-relay-only, 8 full-relay
//! (`MAX_OUTBOUND_FULL_RELAY_CONNECTIONS`), 2 block-relay-only
//! (`MAX_BLOCK_RELAY_ONLY_CONNECTIONS`), one extra full-relay peer while
//! the tip may be stale, and a feeler every `FEELER_INTERVAL` (2 min on
//! average, exponentially distributed); all within Core's outbound
//! semaphore of 8 + 2 + 1 slots, so one extra peer or feeler at a time.
//! Addresses come from `AddrMan::select` (feelers: a tried-table collision first, else the
//! *new* table), at most one full-relay or block-relay-only peer per
//! network group (manual peers' groups count too), skipping addresses
//! tried in the last 10 minutes until 30 have been looked at, addresses
//! without `NODE_WITNESS` and a full-node bit, our own address and the
//! manual targets. Every dial is reported (`attempt`, counting the failure
//! only when we are evidently online), every completed outbound handshake
//! too (`good`, `set_services`, by the peer's reader in `peer::conn`), and
//! every closed connection that
//! completed one, except block-relay-only ones (`connected`). A feeler is
//! closed as soon as its handshake completes.
//!
//! **Seeds.** `--seednode` addresses get `ADDR_FETCH` connections (the
//! peer asks `getaddr` after the handshake, `peer::conn`): the first at
//! once when the address manager is empty, the next every 10 s
//! (`ADD_NEXT_SEEDNODE`) while fewer than 2 full-relay peers are connected.
//! Core asks each seed node once; strand cycles through them, so a seed
//! node that was not up yet is asked again. An address-fetch connection is
//! closed once the peer answered with more than one address or after 5 min.
//! DNS seeds run on their own thread ([`dnsseed`]). The network's fixed
//! seeds are added once the address manager is still empty after 60 s
//! (at once when there are no DNS seeds, seed nodes or added nodes), unless
//! `--fixedseeds=0`. Regtest has neither DNS nor fixed seeds.
//!
//! **Anchors** ([`anchors`]): the block-relay-only peers still open when
//! the thread stops are written to `anchors.dat`; the file is read and
//! deleted when it starts and its entries are dialled first.
//!
//! **Stale tip** (Core's `CheckForStaleTipAndEvictPeers`): every 45 s
//! (`EXTRA_PEER_CHECK_INTERVAL`) an extra full-relay peer is disconnected
//! if there is one (the one that least recently gave a new block,
//! connected at least 30 s); every 10 min (`STALE_CHECK_INTERVAL`) the tip
//! height published by the sync manager is checked, and if it has not
//! changed for 30 min one extra full-relay connection is allowed. strand
//! does not look at blocks in flight for either (Core does): the sync
//! manager's own stall and download timeouts handle a peer that holds
//! blocks back.
//!
//! Every dial goes through `proxy::dial` (directly, or through
//! `--proxy`/`--onion`; host names are resolved at each attempt), so
//! network groups and anchors are taken from the dialled target, not from
//! the socket, which ends at the proxy. Onion addresses from the address
//! manager are dialled only with a proxy, and `--onlynet` limits the
//! automatic connections (Core's `g_reachable_nets`).
//!
//! The thread stops when the stop channel's sender is dropped.

pub mod anchors;
pub mod dnsseed;
pub mod policy;

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::p2p::address::AddrV2;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use parking_lot::Mutex;

use crate::chain::ChainParams;
use crate::netaddr::{addr_v2, net_group, NetClass};
use crate::peer::addrman::AddrMan;
use crate::peer::{start_peer, ConnectionType, DisconnectReason, NetContext, Peer};
use crate::proxy::ConnectTarget;
use crate::util::SplitMix64;
use policy::OutboundCounts;

/// How long a TCP connect may take (Core's `DEFAULT_CONNECT_TIMEOUT`, 5 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often manual targets are checked.
const TICK: Duration = Duration::from_millis(250);
/// How long the DNS seed thread is waited for at shutdown (a lookup in
/// progress cannot be interrupted).
const DNS_JOIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests to the connection manager (`addnode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnCmd {
    /// Keep a connection to this target.
    Add(ConnectTarget),
    /// Stop keeping (and retrying) a connection to it.
    Remove(ConnectTarget),
    /// Try one connection, no retries.
    OneTry(ConnectTarget),
}

/// One added node as `getaddednodeinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedNodeInfo {
    /// The target as added (`IP:PORT`, `HOST:PORT` or an onion service).
    pub addednode: String,
    /// The connection to it, if one is open (handshaking or not): the
    /// remote address of the socket.
    pub connected: Option<SocketAddr>,
}

/// What the connection manager publishes for RPC: the nodes added with
/// `--addnode` and `addnode add` (not `--connect`, as in Core).
#[derive(Debug, Default)]
pub struct ConnMgrState {
    added: Mutex<Vec<AddedNodeInfo>>,
}

impl ConnMgrState {
    /// The added nodes and their connections, in the order added.
    pub fn added_nodes(&self) -> Vec<AddedNodeInfo> {
        self.added.lock().clone()
    }
}

/// A manual connection target.
struct Target {
    addr: ConnectTarget,
    once: bool,
    /// From `--addnode` or `addnode add` (listed by `getaddednodeinfo`).
    added: bool,
    attempts: u32,
    next_try: Instant,
    peer: Option<Arc<Peer>>,
}

impl Target {
    fn new(addr: ConnectTarget, once: bool, added: bool) -> Target {
        Target {
            addr,
            once,
            added,
            attempts: 0,
            next_try: Instant::now(),
            peer: None,
        }
    }
}

/// An automatic connection this thread opened.
struct AutoPeer {
    peer: Arc<Peer>,
    /// The address dialled (the socket's remote address is the proxy's
    /// when dialled through `--proxy`).
    target: ConnectTarget,
    /// Its address-manager entry, if it came from there.
    entry: Option<(AddrV2, u16)>,
    /// Its handshake completed (the reader reported it to the address
    /// manager: `good`, `set_services`).
    handshake_seen: bool,
    opened: Instant,
}

/// Back-off before the next attempt after `attempts` consecutive failures.
pub fn retry_delay(base: Duration, max: Duration, attempts: u32) -> Duration {
    base.saturating_mul(attempts.max(1)).min(max)
}

/// Dials `target`, through the proxy the configuration gives it (Core's
/// `-proxy`/`-onion`; host names are then resolved by the proxy).
fn dial(ctx: &NetContext, target: &ConnectTarget) -> std::io::Result<TcpStream> {
    crate::proxy::dial(target, ctx.config.proxy_for(target), CONNECT_TIMEOUT)
}

/// The network group of a target, if it is an address (host names are
/// not resolved here; onion services are grouped by the address manager's
/// rule).
fn target_group(target: &ConnectTarget, loopback_routable: bool) -> Option<Vec<u8>> {
    match target {
        ConnectTarget::Addr(a) => Some(net_group(&addr_v2(a.ip()), loopback_routable)),
        ConnectTarget::Host(..) => None,
        ConnectTarget::Onion(name, _) => {
            crate::addrtext::parse_addr(name, false).map(|a| net_group(&a, loopback_routable))
        }
    }
}

fn now_u32() -> u32 {
    u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX)
}

/// The connection manager's state; owned by its thread.
struct ConnMgr {
    ctx: Arc<NetContext>,
    addrman: Arc<AddrMan>,
    state: Arc<ConnMgrState>,
    params: Option<ChainParams>,
    targets: Vec<Target>,
    automatic: bool,
    loopback_routable: bool,
    auto: Vec<AutoPeer>,
    anchors: Vec<anchors::Anchor>,
    seeds: Vec<String>,
    next_seed: usize,
    seed_timer: Instant,
    add_addr_fetch: bool,
    addr_fetches: VecDeque<String>,
    add_fixed_seeds: bool,
    start: Instant,
    next_feeler: Instant,
    try_new_outbound: bool,
    last_height: i32,
    last_tip_update: Instant,
    next_extra_peer_check: Instant,
    stale_check_time: Instant,
    rng: SplitMix64,
}

impl ConnMgr {
    fn new(ctx: Arc<NetContext>, state: Arc<ConnMgrState>) -> ConnMgr {
        let config = &ctx.config;
        let mut targets: Vec<Target> = config
            .connect
            .iter()
            .map(|a| Target::new(a.clone(), false, false))
            .collect();
        for a in &config.addnode {
            if !targets.iter().any(|t| t.addr == *a) {
                targets.push(Target::new(a.clone(), false, true));
            }
        }
        let automatic = config.automatic_outbound();
        let anchors_path = config.net_dir().join(anchors::ANCHORS_FILE);
        let anchors = if automatic {
            let a = anchors::read_and_remove(&anchors_path);
            if !a.is_empty() {
                log::info!("{} block-relay-only anchors will be tried first", a.len());
            }
            a
        } else {
            Vec::new()
        };
        let mut rng = SplitMix64::new(crate::util::random_nonce());
        let now = Instant::now();
        let addrman = Arc::clone(&ctx.addrman);
        let add_addr_fetch = addrman.size() == 0 && !config.seednode.is_empty();
        if automatic && !config.fixedseeds {
            log::info!("fixed seeds are disabled");
        }
        ConnMgr {
            params: ChainParams::for_network(config.network.to_bitcoin()),
            targets,
            automatic,
            loopback_routable: config.network == crate::config::Network::Regtest,
            auto: Vec::new(),
            anchors,
            seeds: config.seednode.clone(),
            next_seed: 0,
            seed_timer: now,
            add_addr_fetch,
            addr_fetches: VecDeque::new(),
            add_fixed_seeds: config.fixedseeds,
            start: now,
            next_feeler: now + policy::exp_delay(&mut rng, config.outbound_timers.feeler_interval),
            try_new_outbound: false,
            last_height: ctx.best_height.load(Ordering::Relaxed),
            last_tip_update: now,
            next_extra_peer_check: now + config.outbound_timers.extra_peer_check_interval,
            stale_check_time: now,
            rng,
            addrman,
            state,
            ctx,
        }
    }

    fn handle_command(&mut self, cmd: ConnCmd) {
        let once = matches!(cmd, ConnCmd::OneTry(_));
        match cmd {
            ConnCmd::Add(addr) | ConnCmd::OneTry(addr) => {
                if !self.targets.iter().any(|t| t.addr == addr) {
                    self.targets.push(Target::new(addr, once, !once));
                }
            }
            ConnCmd::Remove(addr) => self.targets.retain(|t| t.addr != addr),
        }
    }

    /// Keeps the manual targets connected.
    fn manual_round(&mut self) {
        let (base, max) = (self.ctx.config.retry_base, self.ctx.config.retry_max);
        let ctx = Arc::clone(&self.ctx);
        for t in self.targets.iter_mut() {
            if let Some(p) = &t.peer {
                if !p.is_closed() {
                    if p.handshake_done() {
                        t.attempts = 0;
                    }
                    continue;
                }
                let reason = p.disconnect_reason();
                t.peer = None;
                t.attempts += 1;
                t.next_try = Instant::now() + retry_delay(base, max, t.attempts);
                log::info!(
                    "connection to {} ended ({}); retrying in {:?}",
                    t.addr,
                    reason.map_or_else(|| "unknown".to_string(), |r| r.to_string()),
                    retry_delay(base, max, t.attempts)
                );
            }
            if Instant::now() < t.next_try {
                continue;
            }
            if t.once && t.attempts > 0 {
                continue;
            }
            match dial(&ctx, &t.addr) {
                Ok(stream) => match start_peer(&ctx, stream, ConnectionType::Manual) {
                    Ok(peer) => {
                        log::info!("connected to {peer}");
                        t.peer = Some(peer);
                    }
                    Err(e) => {
                        t.attempts += 1;
                        t.next_try = Instant::now() + retry_delay(base, max, t.attempts);
                        log::info!("cannot start peer {}: {e}", t.addr);
                    }
                },
                Err(e) => {
                    t.attempts += 1;
                    let delay = retry_delay(base, max, t.attempts);
                    t.next_try = Instant::now() + delay;
                    log::info!("cannot connect to {}: {e}; retrying in {delay:?}", t.addr);
                }
            }
        }
        let added = self
            .targets
            .iter()
            .filter(|t| t.added)
            .map(|t| AddedNodeInfo {
                addednode: t.addr.to_string(),
                connected: t.peer.as_ref().filter(|p| !p.is_closed()).map(|p| p.addr),
            })
            .collect();
        *self.state.added.lock() = added;
    }

    /// Follows the automatic connections: closes feelers once their
    /// handshake completed and answered or timed-out address fetches,
    /// reports and forgets closed ones.
    fn follow_auto_peers(&mut self, now: Instant) {
        let timers = &self.ctx.config.outbound_timers;
        self.auto.retain_mut(|a| {
            let p = &a.peer;
            if p.is_closed() {
                // Core's FinalizeNode: `Connected` for every outbound peer
                // that completed the handshake, except block-relay-only
                // ones (their existence is not leaked through addrman).
                if a.handshake_seen && p.conn_type != ConnectionType::BlockRelayOnly {
                    if let Some((addr, port)) = &a.entry {
                        self.addrman.connected(addr, *port, now_u32());
                    }
                }
                return false;
            }
            if p.handshake_done() && !a.handshake_seen {
                a.handshake_seen = true;
                if p.conn_type == ConnectionType::Feeler {
                    log::debug!("feeler {p} answered; disconnecting");
                    p.disconnect(DisconnectReason::Requested);
                }
            }
            if p.conn_type == ConnectionType::AddrFetch {
                if addr_fetch_answered(p) {
                    log::debug!("address fetch from {p} completed; disconnecting");
                    p.disconnect(DisconnectReason::Requested);
                } else if now.saturating_duration_since(a.opened) > timers.addr_fetch_timeout {
                    log::debug!("address fetch from {p} timed out; disconnecting");
                    p.disconnect(DisconnectReason::Requested);
                }
            }
            true
        });
    }

    /// The open automatic connections by kind, the network groups taken
    /// (Core: manual, full-relay and block-relay-only peers take one;
    /// inbound, feeler and address-fetch ones do not), and every target
    /// with an open connection. Groups come from the dialled targets, not
    /// the sockets, which end at the proxy with `--proxy`.
    fn outbound_view(&self) -> (OutboundCounts, Vec<Vec<u8>>, Vec<ConnectTarget>) {
        let mut counts = OutboundCounts::default();
        let mut groups = Vec::new();
        let mut open = Vec::new();
        let lb = self.loopback_routable;
        let auto = self
            .auto
            .iter()
            .filter(|a| !a.peer.is_closed())
            .map(|a| (a.peer.conn_type, &a.target));
        let manual = self.targets.iter().filter_map(|t| {
            t.peer
                .as_ref()
                .filter(|p| !p.is_closed())
                .map(|p| (p.conn_type, &t.addr))
        });
        for (conn_type, target) in auto.chain(manual) {
            open.push(target.clone());
            match conn_type {
                ConnectionType::OutboundFullRelay => counts.full_relay += 1,
                ConnectionType::BlockRelayOnly => counts.block_relay += 1,
                ConnectionType::Feeler => counts.feeler += 1,
                _ => {}
            }
            if matches!(
                conn_type,
                ConnectionType::Manual
                    | ConnectionType::OutboundFullRelay
                    | ConnectionType::BlockRelayOnly
            ) {
                if let Some(g) = target_group(target, lb) {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
        (counts, groups, open)
    }

    /// Our own listening address, never dialled (Core's `IsLocal`, without
    /// discovered addresses: the specific listen address, or a loopback
    /// address on our port when listening on all interfaces).
    fn is_local(&self, addr: &SocketAddr) -> bool {
        self.ctx.config.listen.is_some_and(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip() || (l.ip().is_unspecified() && addr.ip().is_loopback()))
        })
    }

    fn open(
        &mut self,
        target: ConnectTarget,
        entry: Option<(AddrV2, u16)>,
        conn_type: ConnectionType,
        count_failure: bool,
    ) {
        if let Some((addr, port)) = &entry {
            self.addrman.attempt(addr, *port, count_failure, now_u32());
        }
        match dial(&self.ctx, &target) {
            Ok(stream) => match start_peer(&self.ctx, stream, conn_type) {
                Ok(peer) => {
                    log::debug!("opened {conn_type} connection {peer} to {target}");
                    self.auto.push(AutoPeer {
                        peer,
                        target,
                        entry,
                        handshake_seen: false,
                        opened: Instant::now(),
                    });
                }
                Err(e) => log::debug!("cannot start {conn_type} peer {target}: {e}"),
            },
            Err(e) => log::debug!("cannot connect to {target} ({conn_type}): {e}"),
        }
    }

    /// Core's `ProcessAddrFetch`: one address fetch per round.
    fn process_addr_fetch(&mut self, open: &[ConnectTarget]) {
        let Some(seed) = self.addr_fetches.pop_front() else {
            return;
        };
        let port = self.params.as_ref().map_or(0, |p| p.default_port);
        match ConnectTarget::parse(&seed, port) {
            Ok(target) if !open.contains(&target) => {
                log::info!("asking seed node {target} for addresses");
                self.open(target, None, ConnectionType::AddrFetch, false);
            }
            Ok(_) => {}
            Err(e) => log::info!("cannot use seed node {seed}: {e}"),
        }
    }

    /// Core: fixed seeds once the address manager is still empty 60 s
    /// after start, or at once with no other source of addresses.
    fn maybe_add_fixed_seeds(&mut self, now: Instant) {
        if !self.add_fixed_seeds || self.addrman.size() > 0 {
            return;
        }
        let Some(params) = &self.params else {
            return;
        };
        let config = &self.ctx.config;
        let other_sources = (config.dnsseed && !params.dns_seeds.is_empty())
            || !config.seednode.is_empty()
            || self.targets.iter().any(|t| t.added);
        let due =
            now.saturating_duration_since(self.start) > config.outbound_timers.fixed_seeds_delay;
        if !due && other_sources {
            return;
        }
        let seeds = crate::peer::seeds::fixed_seeds(params);
        self.add_fixed_seeds = false;
        if seeds.is_empty() {
            return;
        }
        let source = AddrV2::Ipv4(std::net::Ipv4Addr::UNSPECIFIED);
        let added = self.addrman.add(&seeds, &source, 0);
        log::info!(
            "added {added} of {} fixed seeds ({})",
            seeds.len(),
            if due {
                "60 seconds without addresses"
            } else {
                "no other source of addresses"
            }
        );
    }

    /// Core's `CheckForStaleTipAndEvictPeers` and `EvictExtraOutboundPeers`.
    fn check_stale_tip_and_evict(&mut self, now: Instant) {
        let timers = self.ctx.config.outbound_timers.clone();
        let height = self.ctx.best_height.load(Ordering::Relaxed);
        if height != self.last_height {
            self.last_height = height;
            self.last_tip_update = now;
        }
        if now < self.next_extra_peer_check {
            return;
        }
        self.next_extra_peer_check = now + timers.extra_peer_check_interval;
        let full: Vec<Arc<Peer>> = self
            .ctx
            .connections
            .list()
            .into_iter()
            .filter(|p| {
                p.conn_type == ConnectionType::OutboundFullRelay
                    && !p.is_closed()
                    && p.handshake_done()
            })
            .collect();
        let candidates: Vec<policy::OutboundCandidate> = full
            .iter()
            .map(|p| policy::OutboundCandidate {
                id: p.id,
                last_block_time: p.last_block_time.load(Ordering::Relaxed),
                connected_for: p.connected_at.elapsed().unwrap_or_default(),
            })
            .collect();
        if let Some(id) = policy::select_extra_outbound_to_evict(
            &candidates,
            self.ctx.config.max_outbound_full_relay,
            timers.minimum_connect_time,
        ) {
            if let Some(p) = full.iter().find(|p| p.id == id) {
                log::info!("disconnecting extra outbound {p} (least recent block)");
                p.disconnect(DisconnectReason::Requested);
                self.try_new_outbound = false;
            }
        }
        if now >= self.stale_check_time {
            if policy::tip_may_be_stale(self.last_tip_update, now, timers.stale_tip_age) {
                log::info!(
                    "potential stale tip detected, will try an extra outbound peer (last tip update {}s ago)",
                    now.saturating_duration_since(self.last_tip_update).as_secs()
                );
                self.try_new_outbound = true;
            } else {
                self.try_new_outbound = false;
            }
            self.stale_check_time = now + timers.stale_check_interval;
        }
    }

    /// One round of Core's `ThreadOpenConnections`.
    fn automatic_round(&mut self) {
        let now = Instant::now();
        let timers = self.ctx.config.outbound_timers.clone();
        self.follow_auto_peers(now);
        if self.add_addr_fetch && !self.seeds.is_empty() {
            self.add_addr_fetch = false;
            let seed = self.seeds[self.next_seed % self.seeds.len()].clone();
            self.next_seed += 1;
            if self.addrman.size() == 0 {
                log::info!("empty address manager, adding seed node {seed} to address fetches");
            } else {
                log::info!(
                    "too few peers from the address manager, adding seed node {seed} to address fetches"
                );
            }
            self.addr_fetches.push_back(seed);
        }
        let (_, _, open) = self.outbound_view();
        self.process_addr_fetch(&open);
        self.maybe_add_fixed_seeds(now);
        self.check_stale_tip_and_evict(now);

        let (counts, groups, open) = self.outbound_view();
        if !self.seeds.is_empty()
            && counts.full_relay < policy::SEED_OUTBOUND_CONNECTION_THRESHOLD
            && now.saturating_duration_since(self.seed_timer) > timers.next_seednode
        {
            self.seed_timer = now;
            self.add_addr_fetch = true;
        }
        let config = &self.ctx.config;
        let (max_full, max_block) = (
            config.max_outbound_full_relay,
            config.max_outbound_block_relay,
        );
        let Some((conn_type, anchor)) = policy::next_conn_type(
            counts,
            max_full,
            max_block,
            !self.anchors.is_empty(),
            self.try_new_outbound,
            now > self.next_feeler,
        ) else {
            return;
        };
        let feeler = conn_type == ConnectionType::Feeler;
        if feeler {
            self.next_feeler = now + policy::exp_delay(&mut self.rng, timers.feeler_interval);
        }
        self.addrman.resolve_collisions();
        let current = now_u32();
        let mut chosen = None;
        let mut tries = 0u32;
        // Core's `g_reachable_nets`: `--onlynet`, and onion only with a proxy.
        let reachable: Vec<NetClass> = [NetClass::Ipv4, NetClass::Ipv6, NetClass::Onion]
            .into_iter()
            .filter(|n| self.ctx.config.is_reachable(*n))
            .collect();
        while chosen.is_none() {
            if anchor {
                let Some(a) = self.anchors.pop() else {
                    break;
                };
                let group = net_group(&addr_v2(a.addr.ip()), self.loopback_routable);
                if self.is_local(&a.addr)
                    || !policy::has_desirable_services(a.services)
                    || groups.contains(&group)
                {
                    continue;
                }
                log::debug!("trying anchor connection to {}", a.addr);
                chosen = Some((ConnectTarget::Addr(a.addr), None));
                break;
            }
            tries += 1;
            if tries > policy::MAX_SELECT_TRIES {
                break;
            }
            let reachable = &reachable;
            let info = if feeler {
                match self.addrman.select_tried_collision() {
                    Some(c) => {
                        let t = to_target(&c.addr, c.port);
                        if t.is_some_and(|t| open.contains(&t)) {
                            // Test-before-evict would dial a peer we are
                            // connected to: it is evidently good.
                            self.addrman.good(&c.addr, c.port, current);
                            self.addrman.select(true, reachable)
                        } else {
                            Some(c)
                        }
                    }
                    None => self.addrman.select(true, reachable),
                }
            } else {
                self.addrman.select(false, reachable)
            };
            let Some(info) = info else {
                break;
            };
            let Some(target) = to_target(&info.addr, info.port) else {
                continue;
            };
            if !reachable.contains(&crate::netaddr::net_class(
                &info.addr,
                self.loopback_routable,
            )) {
                continue;
            }
            if !feeler && groups.contains(&net_group(&info.addr, self.loopback_routable)) {
                continue;
            }
            let local = matches!(&target, ConnectTarget::Addr(a) if self.is_local(a));
            if local || open.contains(&target) {
                continue;
            }
            if policy::recently_tried(info.last_try, current, tries) {
                continue;
            }
            if feeler {
                if !policy::may_have_useful_address_db(info.services) {
                    continue;
                }
            } else if !policy::has_desirable_services(info.services) {
                continue;
            }
            // Not automatically to a manual target: it has its own slot.
            if self.targets.iter().any(|t| t.addr == target) {
                continue;
            }
            chosen = Some((target, Some((info.addr.clone(), info.port))));
        }
        let Some((target, entry)) = chosen else {
            return;
        };
        let max_automatic = max_full + max_block + 1;
        let count_failure = policy::count_failures(groups.len(), max_automatic);
        if feeler {
            log::debug!("making feeler connection to {target}");
        }
        self.open(target, entry, conn_type, count_failure);
    }

    /// Core's `DumpAnchors`: the open block-relay-only peers.
    fn dump_anchors(&self) {
        if !self.automatic {
            return;
        }
        let list: Vec<anchors::Anchor> = self
            .auto
            .iter()
            .filter(|a| {
                let p = &a.peer;
                p.conn_type == ConnectionType::BlockRelayOnly
                    && p.handshake_done()
                    && !p.is_closed()
            })
            .filter_map(|a| match a.target {
                ConnectTarget::Addr(addr) => Some(anchors::Anchor {
                    addr,
                    services: a.peer.services(),
                }),
                _ => None,
            })
            .take(anchors::MAX_BLOCK_RELAY_ONLY_ANCHORS)
            .collect();
        let path = self.ctx.config.net_dir().join(anchors::ANCHORS_FILE);
        match anchors::write(&path, &list) {
            Ok(()) => log::info!("{} block-relay-only anchors saved", list.len()),
            Err(e) => log::warn!("cannot write {}: {e}", path.display()),
        }
    }

    fn start_dns_seeder(&self, stop: &Receiver<()>) -> Option<std::thread::JoinHandle<()>> {
        let config = &self.ctx.config;
        let params = self.params.as_ref()?;
        if !self.automatic || params.dns_seeds.is_empty() {
            return None;
        }
        if !config.dnsseed {
            log::info!("DNS seeding disabled");
            return None;
        }
        let ctx = Arc::clone(&self.ctx);
        let seeder = dnsseed::DnsSeeder {
            seeds: params.dns_seeds.clone(),
            default_port: params.default_port,
            addrman: Arc::clone(&self.addrman),
            have_seednodes: !config.seednode.is_empty(),
            full_outbound: Box::new(move || full_outbound_count(&ctx)),
            stop: stop.clone(),
        };
        match std::thread::Builder::new()
            .name("dnsseed".into())
            .spawn(move || seeder.run())
        {
            Ok(h) => Some(h),
            Err(e) => {
                log::warn!("cannot start the DNS seed thread: {e}");
                None
            }
        }
    }
}

/// Core closes an address-fetch connection once the peer sent an address
/// message of more than one entry ("require multiple addresses to avoid
/// disconnecting on self-announcements"); strand looks at the addresses
/// the reader processed from it.
fn addr_fetch_answered(p: &Peer) -> bool {
    p.addr_processed.load(Ordering::Relaxed) > 1
}

/// Open full-relay connections with a completed handshake (Core's
/// `GetFullOutboundConnCount`).
fn full_outbound_count(ctx: &NetContext) -> usize {
    ctx.connections
        .list()
        .iter()
        .filter(|p| {
            p.conn_type == ConnectionType::OutboundFullRelay && p.handshake_done() && !p.is_closed()
        })
        .count()
}

/// The dial target of an address-manager entry: IPv4/IPv6 addresses,
/// onion services by name (dialled through the proxy); `None` for networks
/// strand cannot dial (I2P, CJDNS).
fn to_target(addr: &AddrV2, port: u16) -> Option<ConnectTarget> {
    match addr {
        AddrV2::Ipv4(ip) => Some(ConnectTarget::Addr(SocketAddr::new((*ip).into(), port))),
        AddrV2::Ipv6(ip) => Some(ConnectTarget::Addr(SocketAddr::new((*ip).into(), port))),
        AddrV2::TorV3(_) => Some(ConnectTarget::Onion(
            crate::addrtext::addr_to_string(addr),
            port,
        )),
        _ => None,
    }
}

/// Body of the `connmgr` thread.
pub(crate) fn run_connmgr(
    ctx: Arc<NetContext>,
    state: Arc<ConnMgrState>,
    stop: Receiver<()>,
    commands: Receiver<ConnCmd>,
) {
    let round = ctx.config.outbound_timers.tick;
    let tick = TICK.min(round);
    let mut mgr = ConnMgr::new(ctx, state);
    let dns = mgr.start_dns_seeder(&stop);
    let mut next_round = Instant::now();
    loop {
        while let Ok(cmd) = commands.try_recv() {
            mgr.handle_command(cmd);
        }
        mgr.manual_round();
        if mgr.automatic && Instant::now() >= next_round {
            mgr.automatic_round();
            next_round = Instant::now() + round;
        }
        match stop.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    mgr.dump_anchors();
    if let Some(h) = dns {
        let deadline = Instant::now() + DNS_JOIN_TIMEOUT;
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            log::warn!("DNS seed lookup still running at shutdown; leaving it");
        }
    }
    log::debug!("connmgr stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_linearly_and_is_capped() {
        let (b, m) = (Duration::from_secs(5), Duration::from_secs(300));
        assert_eq!(retry_delay(b, m, 1), Duration::from_secs(5));
        assert_eq!(retry_delay(b, m, 3), Duration::from_secs(15));
        assert_eq!(retry_delay(b, m, 1000), Duration::from_secs(300));
    }

    #[test]
    fn address_manager_entries_become_dial_targets() {
        assert_eq!(
            to_target(&AddrV2::Ipv4([1, 2, 3, 4].into()), 8333),
            Some(ConnectTarget::Addr("1.2.3.4:8333".parse().unwrap()))
        );
        let onion = to_target(&AddrV2::TorV3([7; 32]), 9333);
        assert!(
            matches!(&onion, Some(ConnectTarget::Onion(name, 9333)) if name.ends_with(".onion")),
            "{onion:?}"
        );
        assert_eq!(to_target(&AddrV2::I2p([0; 32]), 1), None);
        // Groups come from the dialled target, not the proxy's socket.
        let a = ConnectTarget::Addr("1.2.3.4:8333".parse().unwrap());
        let b = ConnectTarget::Addr("1.2.200.4:8333".parse().unwrap());
        assert_eq!(target_group(&a, false), target_group(&b, false));
        assert_eq!(
            target_group(&ConnectTarget::Host("x".into(), 1), false),
            None
        );
    }
}
