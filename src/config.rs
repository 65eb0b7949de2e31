//! Node options and per-network parameters.
//!
//! This module owns [`Config`] (everything a node needs to start, whether it
//! is run by the binary or embedded as a library) and the command-line
//! parser used by `main`; [`Network`] and its constants (magic, ports,
//! genesis) belong to the chain layer (`chain::network`) and are re-exported
//! here. The config file (`strand.conf`, Bitcoin Core's syntax) is read by
//! [`parse_args_with_conf`]: [`parse_conf_text`] turns its lines into
//! entries, [`merge_conf`] into `--key=value` arguments placed before the
//! command line's, so one parser checks both (command line wins; repeatable
//! options keep both). [`parse_args`] itself is pure: it returns a
//! [`ConfigError`] with a one-line message and never exits or panics, so
//! `main` alone decides exit codes.
//! It runs on whatever thread calls it (the main thread in the binary).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bitcoin::hex::FromHex;
use bitcoin::p2p::Magic;

pub use crate::chain::assumevalid::AssumeValid;
pub use crate::chain::network::Network;
pub use crate::netaddr::NetClass;
pub use crate::proxy::{ConnectTarget, Proxy};

/// Everything a node needs to start. Build one with [`Config::new`] and
/// change the fields you need; the defaults are Bitcoin Core's and btcd's.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which chain to follow.
    pub network: Network,
    /// Base data directory; the network's files go in its
    /// [`Network::data_subdir`].
    pub datadir: PathBuf,
    /// Where to accept inbound peers; `None` disables listening.
    pub listen: Option<SocketAddr>,
    /// Connect only to these peers (kept connected, retried with back-off).
    /// Host names are resolved each time they are dialled.
    pub connect: Vec<ConnectTarget>,
    /// Extra peers to keep connected (retried with back-off).
    pub addnode: Vec<ConnectTarget>,
    /// Maximum simultaneous connections, inbound and outbound together.
    /// Excess inbound connections are closed at accept.
    pub max_peers: usize,
    /// Time allowed from connect to a completed version/verack handshake.
    pub handshake_timeout: Duration,
    /// A peer that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// How often to ping each peer; a ping still unanswered when the next
    /// one is due disconnects the peer.
    pub ping_interval: Duration,
    /// The sync peer is replaced if it makes no progress for this long.
    pub stall_timeout: Duration,
    /// Base deadline of one block request from any peer (Core: one target
    /// block spacing × `BLOCK_DOWNLOAD_TIMEOUT_BASE` 1 = 10 min), plus half
    /// of it per other peer with blocks in flight
    /// (`BLOCK_DOWNLOAD_TIMEOUT_PER_PEER` 0.5).
    pub block_download_timeout: Duration,
    /// Discourage misbehaving peers on loopback addresses too. Core never
    /// does (every local peer would share the penalty); tests turn it on.
    pub discourage_local: bool,
    /// Outbound retry back-off: `retry_base × attempts`, capped at `retry_max`.
    pub retry_base: Duration,
    /// Cap of the outbound retry back-off.
    pub retry_max: Duration,
    /// Stack size of each per-peer thread (reader, writer, lifecycle).
    pub peer_stack_size: usize,
    /// Capacity of each peer's outbound message queue. A peer whose queue
    /// is full is disconnected rather than allowed to block its sender.
    pub send_queue_len: usize,
    /// User agent sent in `version` (BIP14 form).
    pub user_agent: String,
    /// Script-check worker threads; `None` = one per CPU.
    pub script_threads: Option<usize>,
    /// Blocks ahead of the last block held that may be requested (Core's
    /// `BLOCK_DOWNLOAD_WINDOW`, 1,024; at most 16 are in flight per peer).
    pub download_window: usize,
    /// Initial block download ends once the tip is younger than this (and
    /// has the network's minimum chain work): Core's `-maxtipage`, 24 h.
    pub max_tip_age: Duration,
    /// Write the UTXO set and tip at least every this many blocks (fewer:
    /// less work lost on a crash; more: faster initial sync).
    pub flush_blocks: usize,
    /// UTXO cache limit in MiB.
    pub dbcache_mib: usize,
    /// Release the store map's pages from the node's RSS every this many
    /// store reads or writes, not only after commits (0 = after commits
    /// only; `ChainOptions::map_release_ops`).
    pub map_release_ops: usize,
    /// Core's `-dbbatchsize`: a UTXO flush writes in transactions of about
    /// this many bytes of commit memory, the batch plus LMDB's dirty-page
    /// copies (`WriteBatch::commit_memory`; default 16 MiB).
    pub db_batch_bytes: usize,
    /// JSON-RPC server options (used by the binary; embedders start the
    /// server themselves if they want one).
    pub rpc: RpcOptions,
    /// Signet only: the challenge script blocks must be signed for, instead
    /// of the default signet's (Core's `-signetchallenge`). It also derives
    /// the network magic ([`Config::magic`]); the genesis block stays the
    /// default signet's.
    pub signet_challenge: Option<Vec<u8>>,
    /// SOCKS5 proxy for every outbound connection (Core's `-proxy`); host
    /// names are then resolved by the proxy.
    pub proxy: Option<Proxy>,
    /// A separate SOCKS5 proxy for onion services (Core's `-onion`); when
    /// `None`, onion services go through [`Config::proxy`].
    pub onion_proxy: Option<Proxy>,
    /// Never dial onion services (Core's `-noonion`).
    pub no_onion: bool,
    /// Networks automatic outbound connections may use (Core's
    /// `-onlynet`); empty means every reachable one. Manual connections
    /// (`--connect`, `--addnode`) are not restricted, as in Core.
    pub onlynet: Vec<NetClass>,
    /// Overrides the network's minimum chain work (Core's debug option
    /// `-minimumchainwork`): header chains with less work are pre-synced
    /// (checked and committed to, not stored) until they reach it. `None`
    /// keeps the network's value (Core v31's; zero on regtest).
    pub minimum_chain_work: Option<bitcoin::pow::Work>,
    /// Per-peer send budget in bytes (Core's `-maxsendbuffer`, default
    /// `DEFAULT_MAXSENDBUFFER` 1,000 kB): above it the peer's `getdata` is
    /// not served until its queue drained (pause-send).
    pub max_send_buffer: usize,
    /// Per-peer receive budget in bytes (Core's `-maxreceivebuffer`,
    /// default `DEFAULT_MAXRECEIVEBUFFER` 5,000 kB): above it the peer's
    /// socket is not read until the sync manager caught up (pause-recv).
    pub max_receive_buffer: usize,
    /// Test builds only: once the active chain reaches this height the sync
    /// manager reports a fatal store error, as a failed write would
    /// (`--testfaultheight`), to exercise the AbortNode path.
    #[cfg(feature = "test-util")]
    pub test_fault_height: Option<u32>,
    /// Test builds only: the process aborts (no destructors, no cleanup:
    /// the store is left as a `kill -9` would leave it) right after the
    /// N-th partial transaction of a multi-transaction UTXO flush
    /// (`--testcrashflushbatch N`; `ChainOptions::crash_after_flush_batches`).
    #[cfg(feature = "test-util")]
    pub test_crash_flush_batch: Option<usize>,
    /// Core's `-assumevalid`: skip the scripts of blocks buried under this
    /// block (the network's default, `--assumevalid=0` never, or a hash);
    /// see `chain::assumevalid`.
    pub assume_valid: AssumeValid,
    /// Core's `-blocksonly`: announce `relay=false`, disconnect peers that
    /// send or announce transactions anyway; transactions from RPC are still
    /// accepted and relayed.
    pub blocksonly: bool,
    /// Mean interval between address relay flushes to one peer (Poisson;
    /// Core's `AVG_ADDRESS_BROADCAST_INTERVAL`, 30 s); tests shorten it.
    pub addr_broadcast_interval: Duration,
    /// Mean interval between re-announcements of our own address to one
    /// peer (Poisson; Core's `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`, 24 h);
    /// tests shorten it.
    pub local_addr_broadcast_interval: Duration,
    /// Keep the transaction index (Core's `-txindex`, default off).
    /// Turning it off leaves its data in place, as Core does.
    pub txindex: bool,
    /// Rebuild the block index from the stored blocks, then the chain
    /// state (Core's `-reindex`; it also rebuilds the txindex).
    pub reindex: bool,
    /// Rebuild the UTXO set and active chain from the stored blocks
    /// (Core's `-reindex-chainstate`).
    pub reindex_chainstate: bool,
    /// Test builds only: pause this long after each block the txindex
    /// indexes while catching up (`--testtxindexdelay MS`).
    #[cfg(feature = "test-util")]
    pub test_txindex_delay: Duration,
    /// Open automatic outbound connections from the address manager
    /// (Core's default; `--connect` or `--connect=0` turns it off). On
    /// regtest it is off unless `--seednode` or `--autoconnect` is given,
    /// see [`Config::automatic_outbound`].
    pub autoconnect: Option<bool>,
    /// `--seednode HOST[:PORT]`: peers asked for addresses once
    /// (`ADDR_FETCH` connections), resolved when dialled.
    pub seednode: Vec<String>,
    /// Query the network's DNS seeds when the address manager knows few
    /// addresses (`--dnsseed`, Core's `DEFAULT_DNSSEED` true).
    pub dnsseed: bool,
    /// Add the network's fixed seeds after 60 s without a working outbound
    /// connection (`--fixedseeds`, Core's `DEFAULT_FIXEDSEEDS` true).
    pub fixedseeds: bool,
    /// Automatic full-relay outbound connections kept (Core's
    /// `MAX_OUTBOUND_FULL_RELAY_CONNECTIONS`, 8).
    pub max_outbound_full_relay: usize,
    /// Automatic block-relay-only outbound connections kept (Core's
    /// `MAX_BLOCK_RELAY_ONLY_CONNECTIONS`, 2).
    pub max_outbound_block_relay: usize,
    /// Timers of the outbound connection policy (Core's constants; tests
    /// shorten them).
    pub outbound_timers: OutboundTimers,
    /// Mempool memory limit in MB of 1,000,000 bytes (`-maxmempool`, Core's
    /// `DEFAULT_MAX_MEMPOOL_SIZE_MB` 300), compared with the mempool's
    /// usage estimate.
    pub max_mempool_mb: usize,
    /// Mempool transactions older than this many hours are dropped
    /// (`-mempoolexpiry`, Core's `DEFAULT_MEMPOOL_EXPIRY_HOURS` 336).
    pub mempool_expiry_hours: u64,
    /// Save the mempool to `mempool.dat` at shutdown and load it at start
    /// (`-persistmempool`, Core's `DEFAULT_PERSIST_MEMPOOL` true).
    pub persist_mempool: bool,
    /// Block pruning (Core's `-prune`, checked against the network by
    /// [`crate::chain::prune::PruneMode::from_mib`]): off by default.
    pub prune: crate::chain::prune::PruneMode,
}

/// The timers of the outbound connection policy (`connmgr`), Bitcoin
/// Core's values by default. Only tests change them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundTimers {
    /// Mean time between feeler connections (Core's `FEELER_INTERVAL`,
    /// 2 min, exponentially distributed).
    pub feeler_interval: Duration,
    /// How often the tip is checked for staleness (Core's
    /// `STALE_CHECK_INTERVAL`, 10 min).
    pub stale_check_interval: Duration,
    /// A tip unchanged this long may be stale: one extra full-relay peer is
    /// tried (Core's `TipMayBeStale`: 3 × the 10-minute block spacing).
    pub stale_tip_age: Duration,
    /// How often extra outbound peers are looked for eviction (Core's
    /// `EXTRA_PEER_CHECK_INTERVAL`, 45 s).
    pub extra_peer_check_interval: Duration,
    /// A peer younger than this is not evicted as an extra outbound peer
    /// (Core's `MINIMUM_CONNECT_TIME`, 30 s).
    pub minimum_connect_time: Duration,
    /// An address-fetch connection is closed after this long even without
    /// an answer (Core: 10 × `AVG_ADDRESS_BROADCAST_INTERVAL` = 5 min).
    pub addr_fetch_timeout: Duration,
    /// While fewer than 2 full-relay peers are connected, the next
    /// `--seednode` is asked this often (Core's `ADD_NEXT_SEEDNODE`, 10 s).
    pub next_seednode: Duration,
    /// Fixed seeds are added after this long without addresses (Core: 60 s).
    pub fixed_seeds_delay: Duration,
    /// How often the connection manager looks at its connections (Core's
    /// `ThreadOpenConnections` sleeps 500 ms per round).
    pub tick: Duration,
}

impl Default for OutboundTimers {
    fn default() -> OutboundTimers {
        OutboundTimers {
            feeler_interval: Duration::from_secs(2 * 60),
            stale_check_interval: Duration::from_secs(10 * 60),
            stale_tip_age: Duration::from_secs(30 * 60),
            extra_peer_check_interval: Duration::from_secs(45),
            minimum_connect_time: Duration::from_secs(30),
            addr_fetch_timeout: Duration::from_secs(5 * 60),
            next_seednode: Duration::from_secs(10),
            fixed_seeds_delay: Duration::from_secs(60),
            tick: Duration::from_millis(500),
        }
    }
}

/// JSON-RPC server options.
#[derive(Clone, Debug, Default)]
pub struct RpcOptions {
    /// Serve JSON-RPC at all (`--norpc` turns it off).
    pub disabled: bool,
    /// Addresses to bind (`--rpcbind`); empty means 127.0.0.1.
    pub bind: Vec<std::net::IpAddr>,
    /// Port (`--rpcport`); `None` means the network's default.
    pub port: Option<u16>,
    /// Extra allowed client subnets (`--rpcallowip`), validated.
    pub allow_ip: Vec<String>,
    /// `--rpcuser`/`--rpcpassword`; `None` means cookie authentication.
    pub user_pass: Option<(String, String)>,
    /// Serve Core's REST interface on the RPC port (`--rest`, Core's
    /// `-rest`, default off).
    pub rest: bool,
    /// Serve Prometheus metrics on this address (`--metrics ADDR:PORT`,
    /// strand's own; default none).
    pub metrics: Option<SocketAddr>,
    /// `--rpccookiefile`: where the cookie is written (relative to the
    /// network's data directory); `None` means `.cookie` there.
    pub cookie_file: Option<PathBuf>,
}

/// Bitcoin Core's `DEFAULT_MAXSENDBUFFER` (1,000 kB, net.h): the send queue
/// above which a peer's `getdata` is no longer served (pause-send).
pub const DEFAULT_MAX_SEND_BUFFER: usize = 1_000_000;
/// Bitcoin Core's `DEFAULT_MAXRECEIVEBUFFER` (5,000 kB, net.h): unprocessed
/// received bytes above which a peer's socket is no longer read
/// (pause-recv).
pub const DEFAULT_MAX_RECEIVE_BUFFER: usize = 5_000_000;

/// The default per-peer thread stack size (256 KiB).
pub const DEFAULT_PEER_STACK: usize = 256 * 1024;

impl Config {
    /// Defaults for `network`: listen on all interfaces on the network's
    /// port, 125 peers, data in `~/.strand`.
    pub fn new(network: Network) -> Config {
        Config {
            network,
            datadir: default_datadir(),
            listen: Some(SocketAddr::new(
                IpAddr::from([0, 0, 0, 0]),
                network.default_p2p_port(),
            )),
            connect: Vec::new(),
            addnode: Vec::new(),
            max_peers: 125,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(5 * 60),
            ping_interval: Duration::from_secs(2 * 60),
            stall_timeout: Duration::from_secs(3 * 60),
            block_download_timeout: Duration::from_secs(10 * 60),
            discourage_local: false,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(5 * 60),
            peer_stack_size: DEFAULT_PEER_STACK,
            send_queue_len: 1024,
            user_agent: format!("/strand:{}/", env!("CARGO_PKG_VERSION")),
            script_threads: None,
            download_window: 1024,
            max_tip_age: Duration::from_secs(24 * 60 * 60),
            flush_blocks: 2_000,
            dbcache_mib: 48,
            map_release_ops: 0,
            // Core's nDefaultDbBatchSize (chain::replay::DEFAULT_DB_BATCH_BYTES).
            db_batch_bytes: 16 << 20,
            rpc: RpcOptions::default(),
            signet_challenge: None,
            autoconnect: None,
            seednode: Vec::new(),
            dnsseed: true,
            fixedseeds: true,
            max_outbound_full_relay: 8,
            max_outbound_block_relay: 2,
            outbound_timers: OutboundTimers::default(),
            prune: crate::chain::prune::PruneMode::Off,
            proxy: None,
            onion_proxy: None,
            no_onion: false,
            onlynet: Vec::new(),
            minimum_chain_work: None,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER,
            max_receive_buffer: DEFAULT_MAX_RECEIVE_BUFFER,
            #[cfg(feature = "test-util")]
            test_fault_height: None,
            #[cfg(feature = "test-util")]
            test_crash_flush_batch: None,
            assume_valid: AssumeValid::Default,
            blocksonly: false,
            // Core's AVG_ADDRESS_BROADCAST_INTERVAL.
            addr_broadcast_interval: Duration::from_secs(30),
            // Core's AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL.
            local_addr_broadcast_interval: Duration::from_secs(24 * 60 * 60),
            max_mempool_mb: crate::mempool::DEFAULT_MAX_MEMPOOL_SIZE_MB,
            mempool_expiry_hours: crate::mempool::DEFAULT_MEMPOOL_EXPIRY_HOURS,
            persist_mempool: true,
            txindex: false,
            reindex: false,
            reindex_chainstate: false,
            #[cfg(feature = "test-util")]
            test_txindex_delay: Duration::ZERO,
        }
    }

    /// The proxy to dial `target` through, if any: onion services use
    /// [`Config::onion_proxy`], else [`Config::proxy`] (none with
    /// [`Config::no_onion`]); everything else uses [`Config::proxy`].
    pub fn proxy_for(&self, target: &ConnectTarget) -> Option<&Proxy> {
        match target {
            ConnectTarget::Onion(..) if self.no_onion => None,
            ConnectTarget::Onion(..) => self.onion_proxy.as_ref().or(self.proxy.as_ref()),
            _ => self.proxy.as_ref(),
        }
    }

    /// Whether automatic outbound connections may use `net` (Core's
    /// `g_reachable_nets`): listed by `--onlynet` (or no `--onlynet`),
    /// and, for onion, a proxy to reach it.
    pub fn is_reachable(&self, net: NetClass) -> bool {
        let listed = self.onlynet.is_empty() || self.onlynet.contains(&net);
        match net {
            NetClass::Ipv4 | NetClass::Ipv6 => listed,
            NetClass::Onion => {
                listed && !self.no_onion && (self.onion_proxy.or(self.proxy)).is_some()
            }
            _ => false,
        }
    }

    /// Whether the connection manager opens automatic outbound connections
    /// (full-relay, block-relay-only, feelers). Core: yes unless
    /// `-connect` is given. strand: the same, except on regtest, where
    /// every loopback address is routable (so nodes on one machine can find
    /// each other) and hand-wired test networks would otherwise grow
    /// connections of their own: there it takes `--seednode` or
    /// `--autoconnect` (Core's test harness passes `-connect=0` instead).
    pub fn automatic_outbound(&self) -> bool {
        if !self.connect.is_empty() {
            return false;
        }
        self.autoconnect
            .unwrap_or(self.network != Network::Regtest || !self.seednode.is_empty())
    }

    /// The P2P message start of this node's network: a custom signet's is
    /// derived from its challenge as Core does, every other network's is
    /// fixed.
    pub fn magic(&self) -> Magic {
        match (&self.signet_challenge, self.network) {
            (Some(c), Network::Signet) => crate::chain::signet::signet_magic(c),
            _ => self.network.magic(),
        }
    }

    /// The directory this network's files live in.
    pub fn net_dir(&self) -> PathBuf {
        let sub = self.network.data_subdir();
        if sub.is_empty() {
            self.datadir.clone()
        } else {
            self.datadir.join(sub)
        }
    }
}

fn default_datadir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".strand"),
        None => PathBuf::from(".strand"),
    }
}

/// A command-line or configuration error: one line, no backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run a node with this configuration; `log_level` is `--debug`'s value.
    Run {
        /// The node's configuration.
        config: Box<Config>,
        /// Log level filter from `--debug`, if given.
        log_level: Option<String>,
        /// `--pid FILE`: write the process id there (relative to the
        /// network's data directory), removed at shutdown.
        pid_file: Option<PathBuf>,
        /// Logging options (`-debug`, `-printtoconsole`, `-debuglogfile`, …).
        log: Box<crate::logging::LogOptions>,
        /// `-blocknotify=CMD`: run for each new tip, `%s` = its hash.
        blocknotify: Option<String>,
    },
    /// Mine `count` regtest blocks to `address` into the data directory of
    /// a node that is not running, print their hashes.
    Generate {
        /// Network and data directory.
        config: Box<Config>,
        /// Blocks to mine.
        count: u32,
        /// Payout address.
        address: String,
    },
    /// Print usage and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// Usage text printed by `--help`.
pub const USAGE: &str = "\
usage: strand [OPTIONS]
       strand cli [--regtest] [--datadir DIR] [--conf FILE] [--rpcconnect HOST] [--rpcport N] METHOD [ARGS...]
       strand generate [--regtest] [--datadir DIR] N --to ADDRESS

Options (one or two leading dashes; `--opt VALUE` or `--opt=VALUE`; `--noOPT` is
`--OPT=0`). Each may also be set in the config file as `opt=value` (Bitcoin
Core's syntax: `#` comments, [main]/[test]/[signet]/[testnet4]/[regtest] sections);
command-line values win, repeatable options are appended to the file's:
  --conf FILE              config file (default: <datadir>/strand.conf, if present)
  --regtest | --testnet | --signet | --testnet4   chain to follow (default: mainnet)
  --chain NAME             main, test, signet, testnet4 or regtest (Core's -chain)
  --signetchallenge HEX    with --signet: blocks must satisfy this script (custom signet)
  --datadir DIR            data directory (default: ~/.strand)
  --minimumchainwork HEX   header chains with less work are pre-synced, not
                           stored (default: the network's, Core v31's; 0 on regtest)
  --listen ADDR:PORT       accept peers here (default: 0.0.0.0:<network port>)
  --nolisten, --listen=0   do not accept inbound peers
  --bind IP[:PORT]         same as --listen (strand listens on one address)
  --port N                 listening port (default: 8333/18333/38333/18444 by network)
  --connect HOST[:PORT]    keep a connection to this peer (repeatable; IP, [IPv6],
                           DNS name resolved at each dial, or v3 .onion)
  --addnode HOST[:PORT]    also keep a connection to this peer (repeatable)
  --proxy IP[:PORT]        dial every outbound connection through this SOCKS5 proxy
                           (default port 9050; host names resolved by the proxy)
  --onion IP[:PORT]        a separate SOCKS5 proxy for .onion peers (default: --proxy)
  --noonion                never dial .onion peers
  --proxyrandomize=0|1     new proxy credentials per connection, Tor stream
                           isolation (default: 1)
  --onlynet NET            automatic outbound connections only to NET: ipv4, ipv6,
                           onion (repeatable; onion needs --proxy or --onion)
  --connect=0              no automatic outbound connections
  --seednode HOST[:PORT]   ask this peer for addresses, then disconnect (repeatable)
  --dnsseed=0|1            query DNS seeds when few addresses are known (default: 1)
  --fixedseeds=0|1         use the built-in seeds after 60 s without peers (default: 1)
  --autoconnect=0|1        automatic outbound connections (default: 1; on regtest
                           only with --seednode)
  --maxpeers N, --maxconnections N
                           maximum connections, in and out (default: 125);
                           10 are kept from inbound peers for outbound ones,
                           and manual connections may use 8 more
  --handshaketimeout SECS  version/verack deadline (default: 30)
  --stalltimeout SECS      replace a sync peer silent this long (default: 180)
  --blockdownloadtimeout SECS
                           re-request a block not delivered this long (default: 600)
  --maxtipage SECS         initial block download ends once the tip is younger
                           than this (default: 86400, Core's -maxtipage)
  --peerstack KIB          stack size of per-peer threads (default: 256)
  --dbcache MIB            UTXO cache size (default: 48)
  --dbbatchsize BYTES      UTXO flush transaction memory with LMDB pages (default: 16777216)
  --mapreleaseops N        drop the store's mapped pages from RSS every N store
                           reads/writes too, not only after commits: lower peak
                           RSS, slower (256 for small machines; default: 0)
  --flushblocks N          write the chain state at least every N blocks (default: 2000)
  --par N                  script-check threads, 0 = none (default: one per CPU)
  --rpcport N              JSON-RPC port (default: 8332/18332/38332/18443 by network)
  --rpcbind IP             JSON-RPC address (repeatable; default: 127.0.0.1)
  --rpcallowip IP[/BITS]   also allow these clients (loopback always is)
  --rpcuser U --rpcpassword P   credentials (default: a .cookie file in the data directory)
  --norpc                  no JSON-RPC server
  --rpccookiefile FILE     where to write the cookie (relative to the network's data
                           directory; default: .cookie)
  --rpcconnect HOST        ignored by the node: strand cli's server address, so one
                           config file serves both
  --debug CATEGORY         debug lines of one of Core's categories (repeatable): net,
                           addrman, mempool, validation, rpc, http, proxy, leveldb, ...;
                           1 or all: every category; 0 or none: none. A level (error,
                           warn, info, debug, trace, off) sets the global level instead.
                           RUST_LOG (env_logger syntax) wins over both
  --debugexclude CATEGORY  no debug lines of CATEGORY (repeatable)
  --loglevel [CAT:]LEVEL   debug or trace for the enabled categories (default: debug)
  --maxsendbuffer KB       per-peer send budget, 1000 bytes each (default: 1000)
  --maxreceivebuffer KB    per-peer receive budget, 1000 bytes each (default: 5000)
  --printtoconsole=0|1     log lines to stderr too (default: 1, as Core without -daemon)
  --debuglogfile PATH      log file, relative to the network's data directory
                           (default: debug.log); --nodebuglogfile: no file
  --shrinkdebugfile=0|1    cut debug.log to its last 10 MB at start when over 11 MB
                           (default: 1 unless --debug categories are on)
  --logtimemicros          microseconds in log timestamps
  --blocknotify CMD        run CMD (via sh -c) for each new tip; %s = its block hash
  --testnet4               use testnet4 (BIP94; same as --chain=testnet4)
  --pid FILE               write the process id to FILE (relative to the network's
                           data directory), removed at shutdown (default: none)
  --daemon                 not supported: run strand under a service manager
  --assumevalid=0|HASH     skip the scripts of blocks buried more than two weeks of
                           work under HASH on the best header chain (default: the
                           network's, Core v31's; none on regtest); 0 checks every script
  --blocksonly             relay no transactions: announce relay=false and disconnect
                           peers that send them (RPC transactions still go out)
  --rest                   serve Core's REST interface on the RPC port, without
                           authentication (default: off)
  --metrics IP:PORT        serve Prometheus metrics at http://IP:PORT/metrics
  --maxmempool MB          mempool memory limit, evicting the lowest fee rates
                           (default: 300; at least 5)
  --mempoolexpiry HOURS    drop mempool transactions older than this (default: 336)
  --persistmempool=0|1     save the mempool at shutdown, reload it at start (default: 1)
  --txindex[=0|1]          keep an index of all transactions, for getrawtransaction
                           (default: 0; built in the background; turning it off
                           keeps its data in <datadir>/indexes/txindex)
  --reindex                rebuild the block index and chain state from the stored
                           blocks (also rebuilds the txindex)
  --reindex-chainstate     rebuild the chain state (UTXO set) from the stored blocks
  --prune MIB              keep block and undo data under MIB (>= 550; any on
                           regtest); 1 = prune only through pruneblockchain;
                           0 = never (default)
  --help, --version
";

/// Parses `-assumevalid` as Core does (`uint256::FromUserHex`: hex with an
/// optional `0x`, at most 64 digits, the hash as displayed): zero is off.
fn parse_assume_valid(v: &str) -> Option<AssumeValid> {
    let digits = v.strip_prefix("0x").unwrap_or(v);
    if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if digits.bytes().all(|b| b == b'0') {
        return Some(AssumeValid::Off);
    }
    format!("{digits:0>64}")
        .parse()
        .ok()
        .map(AssumeValid::Block)
}

/// Parses a 256-bit amount of work the way Core reads `-minimumchainwork`
/// (`IsHexNumber`, `uint256::FromUserHex`): hex digits with an optional
/// `0x`, at most 64 of them, big-endian.
fn parse_work(v: &str) -> Option<bitcoin::pow::Work> {
    let digits = v.strip_prefix("0x").unwrap_or(v);
    if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{digits:0>64}");
    let bytes = <[u8; 32]>::from_hex(&padded).ok()?;
    Some(bitcoin::pow::Work::from_be_bytes(bytes))
}

/// Parses the node's arguments (without the program name).
pub fn parse_args<I, S>(args: I) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args: Vec<String> = args.into_iter().map(Into::into).collect();
    let generate = args.first().is_some_and(|a| a == "generate");
    let mut gen_count = None;
    let mut gen_to = None;
    if generate {
        args.remove(0);
    }
    let mut network = None;
    let set_network = |n: Network, network: &mut Option<Network>| match network {
        Some(prev) if *prev != n => Err(ConfigError(format!(
            "conflicting networks: --{} and --{}",
            flag_name(*prev),
            flag_name(n)
        ))),
        _ => {
            *network = Some(n);
            Ok(())
        }
    };
    let mut datadir = None;
    let mut listen: Option<Option<String>> = None;
    let mut nolisten = false;
    let mut connect = Vec::new();
    let mut addnode = Vec::new();
    let mut max_peers = None;
    let mut handshake = None;
    let mut stall = None;
    let mut block_download = None;
    let mut max_tip_age = None;
    let mut stack = None;
    let mut log_level = None;
    let mut flush_blocks = None;
    let mut dbcache = None;
    let mut map_release_ops = None;
    let mut db_batch_bytes = None;
    let mut script_threads = None;
    let mut rpc = RpcOptions::default();
    let mut rpc_user = None;
    let mut rpc_password = None;
    let mut signet_challenge = None;
    let mut seednode = Vec::new();
    let mut dnsseed = None;
    let mut fixedseeds = None;
    let mut autoconnect = None;
    let mut proxy = None;
    let mut onion = None;
    let mut no_onion = false;
    let mut proxy_randomize = true;
    let mut onlynet: Vec<NetClass> = Vec::new();
    let mut minimum_chain_work = None;
    let mut max_send_buffer = None;
    let mut max_receive_buffer = None;
    let mut prune_mib = None;
    let mut p2p_port: Option<u16> = None;
    let mut pid_file: Option<PathBuf> = None;
    let mut log_opts = crate::logging::LogOptions::default();
    let mut blocknotify: Option<String> = None;
    #[cfg(feature = "test-util")]
    let mut test_fault_height = None;
    #[cfg(feature = "test-util")]
    let mut test_crash_flush_batch = None;
    let mut assume_valid = AssumeValid::Default;
    let mut blocksonly = false;
    let mut max_mempool = None;
    let mut mempool_expiry = None;
    let mut persist_mempool = None;
    let mut txindex = false;
    let mut reindex = false;
    let mut reindex_chainstate = false;
    #[cfg(feature = "test-util")]
    let mut test_txindex_delay = None;

    let mut i = 0;
    while i < args.len() {
        let raw = &args[i];
        i += 1;
        let Some(body) = raw.strip_prefix("--").or_else(|| raw.strip_prefix('-')) else {
            if generate && gen_count.is_none() {
                gen_count = Some(parse_number("generate", raw, 1, 100_000)? as u32);
                continue;
            }
            return Err(ConfigError(format!(
                "unexpected argument '{raw}' (see --help)"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // Core's `-noX` negation of any option X (`-noX=0` is `-X=1`);
        // strand's own `nolisten`, `norpc`, `noonion` are options of their own.
        let (name, inline) = match name.strip_prefix("no") {
            Some(rest) if !OPTION_NAMES.contains(&name) && OPTION_NAMES.contains(&rest) => {
                let v = match inline.as_deref() {
                    None | Some("1") => "0",
                    Some("0") => "1",
                    Some(v) => {
                        return Err(ConfigError(format!(
                            "option -{name} takes 0 or 1 (got '{v}')"
                        )))
                    }
                };
                (rest, Some(v.to_string()))
            }
            _ => (name, inline),
        };
        let value = |i: &mut usize| -> Result<String, ConfigError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            match args.get(*i) {
                Some(v) => {
                    *i += 1;
                    Ok(v.clone())
                }
                None => Err(ConfigError(format!("option --{name} needs a value"))),
            }
        };
        let no_value = |inline: &Option<String>| -> Result<(), ConfigError> {
            match inline {
                Some(v) if v != "1" => Err(ConfigError(format!(
                    "option --{name} takes no value (got '{v}')"
                ))),
                _ => Ok(()),
            }
        };
        match name {
            "help" | "h" => return Ok(Command::Help),
            "to" if generate => gen_to = Some(value(&mut i)?),
            "version" => return Ok(Command::Version),
            // `-regtest=0` and the like select nothing (Core).
            "regtest" | "testnet" | "signet" | "testnet4" if inline.as_deref() == Some("0") => {}
            "chain" => set_network(parse_chain(&value(&mut i)?)?, &mut network)?,
            "conf" => {
                // Read before parsing (parse_args_with_conf); nothing to do here.
                value(&mut i)?;
            }
            "port" => p2p_port = Some(parse_number(name, &value(&mut i)?, 0, 65_535)? as u16),
            "bind" => {
                listen = Some(Some(value(&mut i)?));
                nolisten = false;
            }
            "printtoconsole" => {
                log_opts.print_to_console = Some(parse_bool(name, inline.as_deref())?);
            }
            "pid" => {
                let v = value(&mut i)?;
                if v.is_empty() {
                    return Err(ConfigError("--pid must not be empty".into()));
                }
                pid_file = Some(expand_tilde(&v));
            }
            "daemon" => {
                if parse_bool(name, inline.as_deref())? {
                    return Err(ConfigError(
                        "-daemon is not supported: run strand under your service manager \
                         (systemd, runit, ...)"
                            .into(),
                    ));
                }
            }
            "regtest" => {
                no_value(&inline)?;
                set_network(Network::Regtest, &mut network)?
            }
            "testnet" => {
                no_value(&inline)?;
                set_network(Network::Testnet, &mut network)?
            }
            "signet" => {
                no_value(&inline)?;
                set_network(Network::Signet, &mut network)?
            }
            "signetchallenge" => {
                if signet_challenge.is_some() {
                    return Err(ConfigError(
                        "--signetchallenge cannot be given more than once".into(),
                    ));
                }
                let v = value(&mut i)?;
                match Vec::<u8>::from_hex(&v) {
                    Ok(bytes) if !bytes.is_empty() => signet_challenge = Some(bytes),
                    _ => {
                        return Err(ConfigError(format!(
                            "--signetchallenge must be non-empty hex, not '{v}'"
                        )))
                    }
                }
            }
            "minimumchainwork" => {
                let v = value(&mut i)?;
                minimum_chain_work = Some(parse_work(&v).ok_or_else(|| {
                    ConfigError(format!(
                        "--minimumchainwork must be a hex number of at most 64 digits, not '{v}'"
                    ))
                })?);
            }
            "datadir" => {
                let v = value(&mut i)?;
                if v.is_empty() {
                    return Err(ConfigError("--datadir must not be empty".into()));
                }
                datadir = Some(expand_tilde(&v));
            }
            "listen" => match value(&mut i)?.as_str() {
                // Core's boolean `-listen=0|1`.
                "0" => {
                    listen = None;
                    nolisten = true;
                }
                "1" => {
                    listen = None;
                    nolisten = false;
                }
                v => listen = Some(Some(v.to_string())),
            },
            "nolisten" => {
                no_value(&inline)?;
                nolisten = true
            }
            "connect" => {
                let v = value(&mut i)?;
                // Core's `-connect=0`: no automatic connections, no target.
                if v == "0" {
                    autoconnect = Some(false);
                } else {
                    connect.push(v);
                }
            }
            "seednode" => {
                let v = value(&mut i)?;
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err(ConfigError(format!(
                        "--seednode: cannot parse address '{v}' (expected HOST[:PORT])"
                    )));
                }
                seednode.push(v);
            }
            "dnsseed" => dnsseed = Some(parse_bool(name, inline.as_deref())?),
            "fixedseeds" => fixedseeds = Some(parse_bool(name, inline.as_deref())?),
            "autoconnect" => autoconnect = Some(parse_bool(name, inline.as_deref())?),
            "addnode" => addnode.push(value(&mut i)?),
            "maxpeers" | "maxconnections" => {
                max_peers = Some(parse_number(name, &value(&mut i)?, 1, 100_000)?)
            }
            "handshaketimeout" => handshake = Some(parse_number(name, &value(&mut i)?, 1, 3600)?),
            "stalltimeout" => stall = Some(parse_number(name, &value(&mut i)?, 1, 86_400)?),
            "blockdownloadtimeout" => {
                block_download = Some(parse_number(name, &value(&mut i)?, 1, 86_400)?)
            }
            "maxtipage" => max_tip_age = Some(parse_number(name, &value(&mut i)?, 1, 1 << 40)?),
            "peerstack" => stack = Some(parse_number(name, &value(&mut i)?, 64, 65_536)?),
            "flushblocks" => {
                flush_blocks = Some(parse_number(name, &value(&mut i)?, 1, 1_000_000)?)
            }
            "dbcache" => dbcache = Some(parse_number(name, &value(&mut i)?, 4, 1_000_000)?),
            "dbbatchsize" => {
                db_batch_bytes = Some(parse_number(name, &value(&mut i)?, 1, 1 << 40)?)
            }
            "mapreleaseops" => {
                map_release_ops = Some(parse_number(name, &value(&mut i)?, 0, 1 << 32)?)
            }
            "par" => script_threads = Some(parse_number(name, &value(&mut i)?, 0, 256)?),
            "norpc" => {
                no_value(&inline)?;
                rpc.disabled = true
            }
            "rpcport" => rpc.port = Some(parse_number(name, &value(&mut i)?, 0, 65_535)? as u16),
            "rest" => rpc.rest = parse_bool(name, inline.as_deref())?,
            "metrics" => {
                let v = value(&mut i)?;
                rpc.metrics = Some(v.parse::<SocketAddr>().map_err(|_| {
                    ConfigError(format!(
                        "--metrics: cannot parse address '{v}' (expected IP:PORT)"
                    ))
                })?);
            }
            "rpcbind" => {
                let v = value(&mut i)?;
                let ip = v.parse::<std::net::IpAddr>().map_err(|_| {
                    ConfigError(format!(
                        "--rpcbind: cannot parse address '{v}' (expected an IP)"
                    ))
                })?;
                rpc.bind.push(ip);
            }
            "rpcallowip" => {
                let v = value(&mut i)?;
                v.parse::<crate::netaddr::SubNet>()
                    .map_err(|e| ConfigError(e.to_string()))?;
                rpc.allow_ip.push(v);
            }
            "proxy" => proxy = parse_proxy("--proxy", &value(&mut i)?)?,
            "onion" => {
                let v = value(&mut i)?;
                if v == "0" {
                    no_onion = true;
                    onion = None;
                } else {
                    onion = parse_proxy("--onion", &v)?;
                    no_onion = onion.is_none();
                }
            }
            "noonion" => {
                no_value(&inline)?;
                no_onion = true;
                onion = None;
            }
            "proxyrandomize" => {
                proxy_randomize = match inline.as_deref() {
                    None | Some("1") => true,
                    Some("0") => false,
                    Some(v) => {
                        return Err(ConfigError(format!(
                            "--proxyrandomize takes 0 or 1 (got '{v}')"
                        )))
                    }
                }
            }
            "onlynet" => {
                let v = value(&mut i)?;
                let net = match v.to_ascii_lowercase().as_str() {
                    "ipv4" => NetClass::Ipv4,
                    "ipv6" => NetClass::Ipv6,
                    "onion" => NetClass::Onion,
                    "i2p" | "cjdns" => {
                        return Err(ConfigError(format!(
                            "--onlynet={v}: strand cannot reach {v} peers (ipv4, ipv6, onion)"
                        )))
                    }
                    _ => {
                        return Err(ConfigError(format!(
                            "Unknown network specified in --onlynet: '{v}' (ipv4, ipv6, onion)"
                        )))
                    }
                };
                if !onlynet.contains(&net) {
                    onlynet.push(net);
                }
            }
            "rpcuser" => rpc_user = Some(value(&mut i)?),
            "rpcpassword" => rpc_password = Some(value(&mut i)?),
            "debug" => {
                let v = inline.clone().unwrap_or_else(|| {
                    // `--debug` alone means debug; `--debug LEVEL` takes the next word
                    // only when it is a level, so `--debug --regtest` still works.
                    match args.get(i) {
                        Some(next) if is_level(next) => {
                            i += 1;
                            next.clone()
                        }
                        _ => "debug".to_string(),
                    }
                });
                // A level keeps strand's older meaning (a global level);
                // anything else is one of Core's categories (`1`/`all`:
                // every one, `0`/`none`: none).
                log_opts
                    .add_debug(&v)
                    .map_err(|e| ConfigError(e.to_string()))?;
                log_level = if is_level(&v) {
                    Some(v)
                } else if matches!(v.as_str(), "1" | "all") {
                    Some("debug".to_string())
                } else if matches!(v.as_str(), "0" | "none") {
                    None
                } else {
                    log_level
                };
            }
            // Core's units: 1,000 bytes.
            "maxsendbuffer" => {
                max_send_buffer = Some(parse_number(name, &value(&mut i)?, 1, 1_000_000)?)
            }
            "maxreceivebuffer" => {
                max_receive_buffer = Some(parse_number(name, &value(&mut i)?, 1, 1_000_000)?)
            }
            "prune" => {
                let v = value(&mut i)?;
                if v.starts_with('-') {
                    return Err(ConfigError(
                        "Prune cannot be configured with a negative value.".into(),
                    ));
                }
                prune_mib = Some(parse_number(name, &v, 0, 1 << 40)?)
            }
            "debugexclude" => log_opts
                .add_exclude(&value(&mut i)?)
                .map_err(|e| ConfigError(e.to_string()))?,
            "loglevel" => log_opts
                .add_loglevel(&value(&mut i)?)
                .map_err(|e| ConfigError(e.to_string()))?,
            "debuglogfile" => {
                let v = value(&mut i)?;
                log_opts.file = match v.as_str() {
                    // `-nodebuglogfile` (Core: no file at all).
                    "0" => crate::logging::DebugLogFile::Disabled,
                    "" | "1" => crate::logging::DebugLogFile::Default,
                    p => crate::logging::DebugLogFile::Path(expand_tilde(p)),
                };
            }
            "shrinkdebugfile" => log_opts.shrink = Some(parse_bool(name, inline.as_deref())?),
            "logtimemicros" => log_opts.time_micros = parse_bool(name, inline.as_deref())?,
            "blocknotify" => {
                let v = value(&mut i)?;
                blocknotify = if v.is_empty() || v == "0" {
                    None
                } else {
                    Some(v)
                };
            }
            "rpccookiefile" => rpc.cookie_file = Some(expand_tilde(&value(&mut i)?)),
            // A client option (`strand cli`) that may share the node's
            // config file, as Core's bitcoin.conf.
            "rpcconnect" => {
                value(&mut i)?;
            }
            "testnet4" => {
                no_value(&inline)?;
                set_network(Network::Testnet4, &mut network)?
            }
            #[cfg(feature = "test-util")]
            "testcrashflushbatch" => {
                test_crash_flush_batch =
                    Some(parse_number(name, &value(&mut i)?, 1, 1_000_000)? as usize)
            }
            #[cfg(feature = "test-util")]
            "testfaultheight" => {
                test_fault_height = Some(parse_number(name, &value(&mut i)?, 0, 10_000_000)? as u32)
            }
            "assumevalid" => {
                let v = value(&mut i)?;
                assume_valid = parse_assume_valid(&v).ok_or_else(|| {
                    ConfigError(format!(
                        "--assumevalid must be 0 or a block hash of at most 64 hex digits, not '{v}'"
                    ))
                })?;
            }
            "blocksonly" => blocksonly = parse_bool(name, inline.as_deref())?,
            // Core: at least 40 × the descendant size limit (101 kvB).
            "maxmempool" => max_mempool = Some(parse_number(name, &value(&mut i)?, 5, 1_000_000)?),
            "mempoolexpiry" => {
                mempool_expiry = Some(parse_number(name, &value(&mut i)?, 1, 1_000_000)?)
            }
            "persistmempool" => persist_mempool = Some(parse_bool(name, inline.as_deref())?),
            "txindex" => txindex = parse_bool(name, inline.as_deref())?,
            "reindex" => reindex = parse_bool(name, inline.as_deref())?,
            "reindex-chainstate" => reindex_chainstate = parse_bool(name, inline.as_deref())?,
            #[cfg(feature = "test-util")]
            "testtxindexdelay" => {
                test_txindex_delay = Some(parse_number(name, &value(&mut i)?, 0, 10_000)?)
            }
            _ => return Err(ConfigError(format!("unknown option '{raw}' (see --help)"))),
        }
    }

    let network = network.unwrap_or(Network::Mainnet);
    if signet_challenge.is_some() && network != Network::Signet {
        return Err(ConfigError("--signetchallenge needs --signet".into()));
    }
    let mut config = Config::new(network);
    config.signet_challenge = signet_challenge;
    config.minimum_chain_work = minimum_chain_work;
    config.assume_valid = assume_valid;
    config.blocksonly = blocksonly;
    if let Some(d) = datadir {
        config.datadir = d;
    }
    let port = network.default_p2p_port();
    // `--port` (Core's `-port`): the listening port, also of a `--listen`
    // or `--bind` address given without one.
    let listen_port = p2p_port.unwrap_or(port);
    match (nolisten, listen) {
        (true, Some(_)) => {
            return Err(ConfigError("--listen and --nolisten conflict".into()));
        }
        (true, None) => config.listen = None,
        (false, Some(Some(addr))) => {
            config.listen = Some(parse_addr("--listen", &addr, listen_port)?)
        }
        _ => {
            if let Some(l) = config.listen.as_mut() {
                l.set_port(listen_port);
            }
        }
    }
    config.connect = connect
        .iter()
        .map(|a| parse_target("--connect", a, port))
        .collect::<Result<_, _>>()?;
    config.addnode = addnode
        .iter()
        .map(|a| parse_target("--addnode", a, port))
        .collect::<Result<_, _>>()?;
    let with_randomize = |p: Option<Proxy>| {
        p.map(|p| Proxy {
            randomize_credentials: proxy_randomize,
            ..p
        })
    };
    config.proxy = with_randomize(proxy);
    config.onion_proxy = with_randomize(onion);
    config.no_onion = no_onion;
    config.onlynet = onlynet;
    // Core's init rules: onion-only needs a way to reach Tor.
    if config.onlynet.contains(&NetClass::Onion) {
        if config.no_onion {
            return Err(ConfigError(
                "outbound connections restricted to Tor (--onlynet=onion) but the proxy for \
                 reaching the Tor network is explicitly forbidden: --noonion"
                    .into(),
            ));
        }
        if config.proxy.is_none() && config.onion_proxy.is_none() {
            return Err(ConfigError(
                "outbound connections restricted to Tor (--onlynet=onion) but the proxy for \
                 reaching the Tor network is not provided: none of --proxy or --onion is given"
                    .into(),
            ));
        }
    }
    // --connect/--addnode onion services need a proxy as well.
    if let Some(t) = config
        .connect
        .iter()
        .chain(&config.addnode)
        .find(|t| matches!(t, ConnectTarget::Onion(..)) && config.proxy_for(t).is_none())
    {
        return Err(ConfigError(format!(
            "{t}: onion services need --proxy or --onion"
        )));
    }
    if let Some(n) = max_peers {
        config.max_peers = n as usize;
    }
    if let Some(s) = handshake {
        config.handshake_timeout = Duration::from_secs(s);
    }
    if let Some(s) = stall {
        config.stall_timeout = Duration::from_secs(s);
    }
    if let Some(s) = max_tip_age {
        config.max_tip_age = Duration::from_secs(s);
    }
    if let Some(s) = block_download {
        config.block_download_timeout = Duration::from_secs(s);
    }
    if let Some(k) = stack {
        config.peer_stack_size = k as usize * 1024;
    }
    if let Some(n) = flush_blocks {
        config.flush_blocks = n as usize;
    }
    if let Some(n) = dbcache {
        config.dbcache_mib = n as usize;
    }
    if let Some(n) = db_batch_bytes {
        config.db_batch_bytes = n as usize;
    }
    if let Some(n) = map_release_ops {
        config.map_release_ops = n as usize;
    }
    if let Some(n) = script_threads {
        config.script_threads = Some(n as usize);
    }
    rpc.user_pass = match (rpc_user, rpc_password) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some((u, p)),
        (None, None) => None,
        _ => {
            return Err(ConfigError(
                "--rpcuser and --rpcpassword must be given together and be non-empty".into(),
            ))
        }
    };
    config.rpc = rpc;
    if let Some(kb) = max_send_buffer {
        config.max_send_buffer = kb as usize * 1000;
    }
    if let Some(kb) = max_receive_buffer {
        config.max_receive_buffer = kb as usize * 1000;
    }
    if let Some(mib) = prune_mib {
        config.prune =
            crate::chain::prune::PruneMode::from_mib(mib, config.network == Network::Regtest)
                .map_err(ConfigError)?;
    }
    #[cfg(feature = "test-util")]
    {
        config.test_fault_height = test_fault_height;
        config.test_crash_flush_batch = test_crash_flush_batch;
    }
    config.seednode = seednode;
    if let Some(b) = dnsseed {
        config.dnsseed = b;
    }
    if let Some(b) = fixedseeds {
        config.fixedseeds = b;
    }
    if let Some(mb) = max_mempool {
        config.max_mempool_mb = mb as usize;
    }
    if let Some(h) = mempool_expiry {
        config.mempool_expiry_hours = h;
    }
    if let Some(b) = persist_mempool {
        config.persist_mempool = b;
    }
    if autoconnect.is_some() {
        config.autoconnect = autoconnect;
    }
    config.txindex = txindex;
    config.reindex = reindex;
    config.reindex_chainstate = reindex_chainstate;
    #[cfg(feature = "test-util")]
    if let Some(ms) = test_txindex_delay {
        config.test_txindex_delay = Duration::from_millis(ms);
    }
    if generate {
        let count = gen_count.ok_or_else(|| ConfigError("generate needs a block count".into()))?;
        let address = gen_to.ok_or_else(|| ConfigError("generate needs --to ADDRESS".into()))?;
        return Ok(Command::Generate {
            config: Box::new(config),
            count,
            address,
        });
    }
    Ok(Command::Run {
        config: Box::new(config),
        log_level,
        pid_file,
        log: Box::new(log_opts),
        blocknotify,
    })
}

/// A boolean option: `--name` or `--name=1` is true, `--name=0` false
/// (Core's `-dnsseed=0` form).
fn parse_bool(name: &str, inline: Option<&str>) -> Result<bool, ConfigError> {
    match inline {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(ConfigError(format!("--{name} takes 0 or 1 (got '{v}')"))),
    }
}

fn flag_name(n: Network) -> &'static str {
    match n {
        Network::Mainnet => "mainnet",
        Network::Testnet => "testnet",
        Network::Signet => "signet",
        Network::Testnet4 => "testnet4",
        Network::Regtest => "regtest",
    }
}

fn is_level(s: &str) -> bool {
    matches!(s, "error" | "warn" | "info" | "debug" | "trace" | "off")
}

fn parse_number(name: &str, v: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(ConfigError(format!(
            "--{name} must be between {min} and {max} (got '{v}')"
        ))),
        Err(_) => Err(ConfigError(format!(
            "--{name} needs a whole number (got '{v}')"
        ))),
    }
}

/// Parses a `--connect`/`--addnode`/`addnode` value: `IP[:PORT]`,
/// `[IPv6][:PORT]`, `HOST[:PORT]` or a v3 `.onion[:PORT]` (see
/// [`ConnectTarget::parse`]); names are kept, to be resolved when dialled.
pub fn parse_target(
    option: &str,
    s: &str,
    default_port: u16,
) -> Result<ConnectTarget, ConfigError> {
    ConnectTarget::parse(s, default_port).map_err(|e| ConfigError(format!("{option}: {e}")))
}

/// Parses a `--proxy`/`--onion` value: `IP[:PORT]` (Core's default port
/// 9050, `DEFAULT_TOR_SOCKS_PORT`); `0` or empty means none.
fn parse_proxy(option: &str, s: &str) -> Result<Option<Proxy>, ConfigError> {
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    let addr = s
        .parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, crate::proxy::DEFAULT_TOR_SOCKS_PORT))
        })
        .map_err(|_| {
            ConfigError(format!(
                "Invalid {option} address: '{s}' (expected IP[:PORT])"
            ))
        })?;
    Ok(Some(Proxy::new(addr)))
}

/// Parses `IP:PORT`, `[IPv6]:PORT`, a bare IP (default port), or
/// `localhost[:PORT]` into a socket address (for `--listen`).
pub fn parse_addr(option: &str, s: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Some(rest) = s.strip_prefix("localhost") {
        let localhost = IpAddr::from([127, 0, 0, 1]);
        if rest.is_empty() {
            return Ok(SocketAddr::new(localhost, default_port));
        }
        if let Some(Ok(port)) = rest.strip_prefix(':').map(str::parse::<u16>) {
            return Ok(SocketAddr::new(localhost, port));
        }
    }
    Err(ConfigError(format!(
        "{option}: cannot parse address '{s}' (expected IP:PORT)"
    )))
}

/// Every option name [`parse_args`] accepts, which are also the keys a
/// config file may use (Core's rule: a file key is the option without its
/// dashes). `noX` negates `X` (Core's `-noX`).
pub const OPTION_NAMES: &[&str] = &[
    "regtest",
    "testnet",
    "signet",
    "chain",
    "signetchallenge",
    "datadir",
    "conf",
    "minimumchainwork",
    "listen",
    "nolisten",
    "bind",
    "port",
    "connect",
    "addnode",
    "proxy",
    "onion",
    "noonion",
    "proxyrandomize",
    "onlynet",
    "seednode",
    "dnsseed",
    "fixedseeds",
    "autoconnect",
    "maxpeers",
    "maxconnections",
    "handshaketimeout",
    "stalltimeout",
    "blockdownloadtimeout",
    "maxtipage",
    "peerstack",
    "dbcache",
    "mapreleaseops",
    "dbbatchsize",
    "flushblocks",
    "par",
    "rpcport",
    "rpcbind",
    "rpcallowip",
    "rpcuser",
    "rpcpassword",
    "norpc",
    "debug",
    "printtoconsole",
    "pid",
    "daemon",
    "maxsendbuffer",
    "maxreceivebuffer",
    "assumevalid",
    "blocksonly",
    "rest",
    "metrics",
    "maxmempool",
    "mempoolexpiry",
    "persistmempool",
    "txindex",
    "reindex",
    "reindex-chainstate",
    "prune",
    "debugexclude",
    "loglevel",
    "debuglogfile",
    "shrinkdebugfile",
    "logtimemicros",
    "blocknotify",
    "testnet4",
    "rpccookiefile",
    "rpcconnect",
];

/// Options that may be given more than once: config-file values and
/// command-line values are both kept (file first), as Core does. Every
/// other option given on the command line replaces the file's value.
const REPEATABLE: &[&str] = &[
    "connect",
    "addnode",
    "seednode",
    "onlynet",
    "rpcbind",
    "rpcallowip",
    "debug",
    "debugexclude",
    "loglevel",
];

/// The config file's name inside the data directory (Core's
/// `bitcoin.conf`).
pub const CONF_FILENAME: &str = "strand.conf";

/// One `key=value` line of a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfEntry {
    /// `[main]`, `[test]`, `[signet]`, `[testnet4]`, `[regtest]`, or `None` for the top.
    pub section: Option<String>,
    /// The option name, without dashes.
    pub key: String,
    /// Everything after the first `=`, trimmed.
    pub value: String,
    /// 1-based line number, for error messages.
    pub line: usize,
}

/// The config-file section name of a network (Core's
/// `ChainTypeToString`: main, test, signet, testnet4, regtest).
pub fn section_name(n: Network) -> &'static str {
    match n {
        Network::Mainnet => "main",
        Network::Testnet => "test",
        Network::Signet => "signet",
        Network::Testnet4 => "testnet4",
        Network::Regtest => "regtest",
    }
}

/// Whether `name` is an option, directly or as `noX` of an option.
fn is_known_option(name: &str) -> bool {
    OPTION_NAMES.contains(&name)
        || name
            .strip_prefix("no")
            .is_some_and(|rest| OPTION_NAMES.contains(&rest))
}

/// Parses a config file in Bitcoin Core's syntax: `key=value` lines,
/// `#` comments (anywhere on a line, as Core), blank lines, `[section]`
/// headers and `section.key=value`. Unknown keys and sections are errors
/// naming `path` and the line.
pub fn parse_conf_text(path: &str, text: &str) -> Result<Vec<ConfEntry>, ConfigError> {
    let mut section: Option<String> = None;
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |m: String| ConfigError(format!("{path}:{line_no}: {m}"));
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| err(format!("cannot parse section header '{line}'")))?
                .trim();
            if !matches!(name, "main" | "test" | "signet" | "testnet4" | "regtest") {
                return Err(err(format!(
                    "unknown section [{name}] (main, test, signet, testnet4, regtest)"
                )));
            }
            section = Some(name.to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!(
                "parse error '{line}' (expected key=value; for a negated option use no{line}=1)"
            )));
        };
        let key = key.trim();
        let value = value.trim().to_string();
        let (sec, key) = match key.split_once('.') {
            Some((s, k)) if matches!(s, "main" | "test" | "signet" | "testnet4" | "regtest") => {
                (Some(s.to_string()), k)
            }
            Some(_) => return Err(err(format!("unknown option '{key}'"))),
            None => (section.clone(), key),
        };
        if !is_known_option(key) || matches!(key, "conf" | "noconf") {
            return Err(err(if key == "conf" {
                "conf cannot be set in a config file".to_string()
            } else {
                format!("unknown option '{key}'")
            }));
        }
        out.push(ConfEntry {
            section: sec,
            key: key.to_string(),
            value,
            line: line_no,
        });
    }
    Ok(out)
}

/// The network a list of `(name, value)` options selects: `regtest`,
/// `testnet`, `signet` (value absent or not `0`) or `chain=NAME`. The last
/// one wins here; [`parse_args`] reports conflicts.
fn network_of<'a>(
    opts: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Option<Network>, ConfigError> {
    let mut net = None;
    for (name, value) in opts {
        let on = value != Some("0");
        match name {
            "regtest" if on => net = Some(Network::Regtest),
            "testnet" if on => net = Some(Network::Testnet),
            "signet" if on => net = Some(Network::Signet),
            "testnet4" if on => net = Some(Network::Testnet4),
            "chain" => net = Some(parse_chain(value.unwrap_or(""))?),
            _ => {}
        }
    }
    Ok(net)
}

/// Core's `-chain=` names (main, test, signet, regtest).
fn parse_chain(v: &str) -> Result<Network, ConfigError> {
    match v {
        "main" => Ok(Network::Mainnet),
        "test" => Ok(Network::Testnet),
        "signet" => Ok(Network::Signet),
        "regtest" => Ok(Network::Regtest),
        "testnet4" => Ok(Network::Testnet4),
        _ => Err(ConfigError(format!(
            "invalid -chain '{v}' (main, test, signet, testnet4, regtest)"
        ))),
    }
}

/// `(name, inline value)` of each dashed command-line argument, with the
/// value of `--opt VALUE` pairs for the options that take one.
fn scan_args(args: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            continue;
        };
        match body.split_once('=') {
            Some((n, v)) => out.push((n.to_string(), Some(v.to_string()))),
            None => {
                let takes = matches!(body, "conf" | "datadir" | "chain");
                if takes {
                    out.push((body.to_string(), args.get(i).cloned()));
                    i += 1;
                } else {
                    out.push((body.to_string(), None));
                }
            }
        }
    }
    out
}

/// Expands a leading `~` (alone or `~/...`) to `$HOME`.
pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" || p.starts_with("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            let rest = p.trim_start_matches('~').trim_start_matches('/');
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(p)
}

/// What a config file contributes for a network: the entries of the top
/// section and of the network's section, in file order.
pub fn entries_for(entries: &[ConfEntry], network: Network) -> Vec<&ConfEntry> {
    let sec = section_name(network);
    entries
        .iter()
        .filter(|e| e.section.as_deref().is_none_or(|s| s == sec))
        .collect()
}

/// The network chosen by the command line, else by the config file's top
/// section, else mainnet.
pub fn conf_network(cmdline: &[String], entries: &[ConfEntry]) -> Result<Network, ConfigError> {
    let scanned = scan_args(cmdline);
    if let Some(n) = network_of(scanned.iter().map(|(k, v)| (k.as_str(), v.as_deref())))? {
        return Ok(n);
    }
    let top = entries
        .iter()
        .filter(|e| e.section.is_none())
        .map(|e| (e.key.as_str(), Some(e.value.as_str())));
    Ok(network_of(top)?.unwrap_or(Network::Mainnet))
}

/// The config file to read for these command-line arguments: `--conf`
/// (`~` expanded; an error later if missing) or `<datadir>/strand.conf`
/// (skipped if missing). Returns the path and whether it was explicit.
pub fn conf_path(cmdline: &[String]) -> (PathBuf, bool) {
    let scanned = scan_args(cmdline);
    let last = |name: &str| {
        scanned
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    };
    if let Some(c) = last("conf") {
        return (expand_tilde(&c), true);
    }
    let datadir = last("datadir")
        .map(|d| expand_tilde(&d))
        .unwrap_or_else(default_datadir);
    (datadir.join(CONF_FILENAME), false)
}

/// Reads the config file for `cmdline` ([`conf_path`]); `Ok(empty)` when
/// the default file does not exist.
pub fn read_conf(cmdline: &[String]) -> Result<Vec<ConfEntry>, ConfigError> {
    let (path, explicit) = conf_path(cmdline);
    // No default file (or no usable data directory, reported later by the
    // node with its own message): nothing to read.
    if !explicit && !path.is_file() {
        return Ok(Vec::new());
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_conf_text(&path.display().to_string(), &text),
        Err(e) => Err(ConfigError(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}

/// Merges config-file entries into the command line: the file's entries
/// for the selected network become `--key=value` arguments placed before
/// the command-line ones. A non-repeatable option given on the command
/// line drops the file's values (command line over file); repeatable ones
/// keep both, file first (Core). Network keys are dropped when the command
/// line picks a network.
pub fn merge_conf(cmdline: &[String], entries: &[ConfEntry]) -> Result<Vec<String>, ConfigError> {
    let network = conf_network(cmdline, entries)?;
    let scanned = scan_args(cmdline);
    // The option a key sets, so that `--nolisten` overrides a file's
    // `listen=`, `--noX` a file's `X=` and so on.
    let base = |k: &str| -> String {
        let k = match k.strip_prefix("no") {
            Some(rest) if !OPTION_NAMES.contains(&k) && OPTION_NAMES.contains(&rest) => rest,
            _ => k,
        };
        match k {
            "nolisten" | "bind" => "listen",
            "maxconnections" => "maxpeers",
            "noonion" => "onion",
            other => other,
        }
        .to_string()
    };
    let on_cmdline: Vec<String> = scanned.iter().map(|(k, _)| base(k)).collect();
    let is_net = |k: &str| matches!(k, "regtest" | "testnet" | "signet" | "testnet4" | "chain");
    let cmd_has_net = on_cmdline.iter().any(|k| is_net(k));
    let mut out = Vec::new();
    let mut rest = cmdline;
    if cmdline.first().is_some_and(|a| a == "generate") {
        out.push("generate".to_string());
        rest = &cmdline[1..];
    }
    for e in entries_for(entries, network) {
        let key = base(&e.key);
        if is_net(&key) {
            // Already decided by conf_network; pass the chosen one once.
            if cmd_has_net {
                continue;
            }
            if key != "chain" && e.value == "0" {
                continue;
            }
        }
        if !REPEATABLE.contains(&key.as_str()) && on_cmdline.contains(&key) {
            continue;
        }
        out.push(format!("--{}={}", e.key, e.value));
    }
    out.extend(rest.iter().cloned());
    Ok(out)
}

/// [`parse_args`] after reading the config file ([`read_conf`],
/// [`merge_conf`]): what the binary calls.
pub fn parse_args_with_conf(cmdline: &[String]) -> Result<Command, ConfigError> {
    let entries = read_conf(cmdline)?;
    parse_args(merge_conf(cmdline, &entries)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ConfigError> {
        match parse_args(args.iter().copied())? {
            Command::Run { config, .. } => Ok(*config),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_mainnet_with_core_ports() {
        let c = run(&[]).unwrap();
        assert_eq!(c.network, Network::Mainnet);
        assert_eq!(c.listen.unwrap().port(), 8333);
        assert_eq!(c.max_peers, 125);
    }

    #[test]
    fn regtest_and_addresses() {
        let c = run(&[
            "--regtest",
            "--listen=127.0.0.1:0",
            "-connect",
            "127.0.0.1:1234",
            "--addnode",
            "10.0.0.1",
            "--maxpeers",
            "9",
        ])
        .unwrap();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.listen.unwrap().port(), 0);
        assert_eq!(
            c.connect,
            vec![ConnectTarget::Addr("127.0.0.1:1234".parse().unwrap())]
        );
        assert_eq!(c.addnode[0].port(), 18444);
        assert_eq!(c.max_peers, 9);
        assert!(c.net_dir().ends_with("regtest"));
    }

    #[test]
    fn map_release_ops_defaults_to_after_commits_only() {
        assert_eq!(run(&[]).unwrap().map_release_ops, 0);
        assert_eq!(
            run(&[]).unwrap().db_batch_bytes,
            crate::chain::replay::DEFAULT_DB_BATCH_BYTES
        );
        assert_eq!(
            run(&["--dbbatchsize", "4096"]).unwrap().db_batch_bytes,
            4096
        );
        assert!(run(&["--dbbatchsize", "0"]).is_err());
        assert_eq!(
            run(&["--mapreleaseops", "256"]).unwrap().map_release_ops,
            256
        );
        let e = run(&["--mapreleaseops", "-1"]).unwrap_err();
        assert!(e.to_string().contains("--mapreleaseops"), "{e}");
    }

    #[test]
    fn download_window_and_max_tip_age_are_cores() {
        let c = run(&[]).unwrap();
        assert_eq!(c.download_window, 1024);
        assert_eq!(c.max_tip_age, Duration::from_secs(86_400));
        let c = run(&["--maxtipage", "600"]).unwrap();
        assert_eq!(c.max_tip_age, Duration::from_secs(600));
        assert!(run(&["--maxtipage", "0"]).is_err());
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        for args in [
            &["--bogus"][..],
            &["--maxpeers", "x"],
            &["--maxpeers", "0"],
            &["--connect", "not an address"],
            &["--connect", "300.1.1.1:5"],
            &["--proxy", "example.com:9050"],
            &["--onlynet", "mars"],
            &["--onlynet", "onion"],
            &["--onlynet", "onion", "--proxy", "127.0.0.1", "--noonion"],
            &["--proxyrandomize=2"],
            &["--listen"],
            &["--regtest", "--testnet"],
            &["--listen", "1.2.3.4:1", "--nolisten"],
            &["--debug=loud"],
            &["stray"],
        ] {
            let err = run(args).unwrap_err();
            assert!(!err.0.contains('\n'), "{err}");
            assert!(!err.0.is_empty());
        }
    }

    #[test]
    fn host_names_proxies_and_onlynet() {
        let c = run(&[
            "--regtest",
            "--connect",
            "localhost:5",
            "--addnode",
            "node.example",
        ])
        .unwrap();
        assert_eq!(c.connect, vec![ConnectTarget::Host("localhost".into(), 5)]);
        assert_eq!(
            c.addnode,
            vec![ConnectTarget::Host("node.example".into(), 18444)]
        );
        assert_eq!(c.proxy, None);
        assert!(c.is_reachable(NetClass::Ipv4) && !c.is_reachable(NetClass::Onion));

        let c = run(&[
            "--proxy",
            "127.0.0.1",
            "--onlynet",
            "onion",
            "--onlynet=ipv4",
        ])
        .unwrap();
        let proxy = Proxy::new("127.0.0.1:9050".parse().unwrap());
        assert_eq!(c.proxy, Some(proxy));
        assert!(proxy.randomize_credentials);
        assert_eq!(c.onlynet, vec![NetClass::Onion, NetClass::Ipv4]);
        assert!(c.is_reachable(NetClass::Onion) && c.is_reachable(NetClass::Ipv4));
        assert!(!c.is_reachable(NetClass::Ipv6));
        let onion = ConnectTarget::Onion("x.onion".into(), 1);
        assert_eq!(c.proxy_for(&onion), Some(&proxy));

        // A separate onion proxy; credentials not randomized.
        let c = run(&[
            "--onion=127.0.0.2:9150",
            "--proxy=127.0.0.1:9050",
            "--proxyrandomize=0",
        ])
        .unwrap();
        assert_eq!(c.proxy_for(&onion).map(|p| p.addr.port()), Some(9150));
        assert_eq!(
            c.proxy_for(&ConnectTarget::Host("a.example".into(), 1))
                .map(|p| (p.addr.port(), p.randomize_credentials)),
            Some((9050, false))
        );
        let c = run(&["--proxy=127.0.0.1", "--noonion"]).unwrap();
        assert_eq!(c.proxy_for(&onion), None);
        assert!(!c.is_reachable(NetClass::Onion));

        // Onion targets and onion-only need a proxy.
        let name = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
        assert!(run(&["--connect", name])
            .unwrap_err()
            .0
            .contains("need --proxy"));
        assert!(run(&["--connect", name, "--proxy", "127.0.0.1"]).is_ok());
        let err = run(&["--onlynet", "onion"]).unwrap_err();
        assert!(err.0.contains("not provided"), "{err}");
        let err = run(&["--onlynet", "i2p"]).unwrap_err();
        assert!(err.0.contains("cannot reach"), "{err}");
    }

    #[test]
    fn minimum_chain_work_option() {
        use bitcoin::pow::Work;
        let c = run(&["--regtest"]).unwrap();
        assert_eq!(c.minimum_chain_work, None);
        let c = run(&["--regtest", "--minimumchainwork", "0x2000"]).unwrap();
        let mut want = [0u8; 32];
        want[30] = 0x20;
        assert_eq!(c.minimum_chain_work, Some(Work::from_be_bytes(want)));
        let full = "f".repeat(64);
        let arg = format!("--minimumchainwork={full}");
        let c = run(&[arg.as_str()]).unwrap();
        assert_eq!(c.minimum_chain_work, Some(Work::from_be_bytes([0xff; 32])));
        for bad in ["", "0x", "12g", "-1", &"1".repeat(65)] {
            let err = run(&["--minimumchainwork", bad]).unwrap_err();
            assert!(err.0.contains("minimumchainwork"), "{bad}: {err}");
        }
    }

    #[test]
    fn signet_challenge_option() {
        let c = run(&["--signet"]).unwrap();
        assert_eq!(c.signet_challenge, None);
        assert_eq!(c.magic(), Magic::SIGNET);
        let c = run(&["--signet", "--signetchallenge", "51"]).unwrap();
        assert_eq!(c.signet_challenge, Some(vec![0x51]));
        assert_ne!(c.magic(), Magic::SIGNET);
        assert_eq!(c.magic(), crate::chain::signet::signet_magic(&[0x51]));
        assert_eq!(c.listen.unwrap().port(), 38333);
        // The default challenge given explicitly is the default signet.
        let default = crate::chain::signet::DEFAULT_SIGNET_CHALLENGE;
        let c = run(&["--signet", &format!("--signetchallenge={default}")]).unwrap();
        assert_eq!(c.magic(), Magic::SIGNET);
        for args in [
            &["--signetchallenge", "51"][..],
            &["--regtest", "--signetchallenge", "51"],
            &["--signet", "--signetchallenge", "5g"],
            &["--signet", "--signetchallenge", "515"],
            &["--signet", "--signetchallenge="],
            &[
                "--signet",
                "--signetchallenge",
                "51",
                "--signetchallenge",
                "51",
            ],
        ] {
            let err = run(args).unwrap_err();
            assert!(err.0.contains("signetchallenge"), "{args:?}: {err}");
        }
    }

    #[test]
    fn seed_and_autoconnect_options() {
        let c = run(&["--regtest"]).unwrap();
        assert!(!c.automatic_outbound(), "regtest: off by default");
        assert!(c.dnsseed && c.fixedseeds);
        let c = run(&["--regtest", "--seednode", "localhost:1", "--dnsseed=0"]).unwrap();
        assert_eq!(c.seednode, vec!["localhost:1".to_string()]);
        assert!(c.automatic_outbound());
        assert!(!c.dnsseed);
        let c = run(&["--fixedseeds=0"]).unwrap();
        assert!(c.automatic_outbound(), "mainnet: on by default");
        assert!(!c.fixedseeds);
        let c = run(&["--connect=0"]).unwrap();
        assert!(c.connect.is_empty());
        assert!(!c.automatic_outbound());
        let c = run(&["--connect", "10.0.0.1"]).unwrap();
        assert!(
            !c.automatic_outbound(),
            "--connect disables automatic connections"
        );
        let c = run(&["--addnode", "10.0.0.1"]).unwrap();
        assert!(c.automatic_outbound(), "--addnode does not");
        let c = run(&["--regtest", "--autoconnect"]).unwrap();
        assert!(c.automatic_outbound());
        for args in [
            &["--dnsseed=2"][..],
            &["--seednode="],
            &["--autoconnect=yes"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn conf_file_syntax_and_sections() {
        let text = "# top\nregtest=1\nconnect=10.0.0.1 # c\n\n[regtest]\nrpcport=5\n\
                    [test]\nrpcport=6\nmain.maxpeers=7\nmain.nodnsseed=1\n";
        let e = parse_conf_text("f", text).unwrap();
        assert_eq!(e.len(), 6);
        assert_eq!(e[1].value, "10.0.0.1");
        assert_eq!(e[4].section.as_deref(), Some("main"));
        let args = merge_conf(&strings(&["--connect", "10.0.0.2"]), &e).unwrap();
        assert_eq!(
            args,
            strings(&[
                "--regtest=1",
                "--connect=10.0.0.1",
                "--rpcport=5",
                "--connect",
                "10.0.0.2"
            ])
        );
        let c = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.rpc.port, Some(5));
        assert_eq!(c.connect.len(), 2, "repeatable: file and command line");
        // The command line's network selects the [test] section; its
        // single-valued options replace the file's.
        let args = merge_conf(&strings(&["--testnet", "--rpcport=9"]), &e).unwrap();
        let c = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(c.network, Network::Testnet);
        assert_eq!(c.rpc.port, Some(9));
        assert!(c.dnsseed, "nodnsseed is in [main]");
        let args = merge_conf(&strings(&["--chain=main"]), &e).unwrap();
        let c = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            (c.network, c.max_peers, c.dnsseed),
            (Network::Mainnet, 7, false)
        );

        for (bad, line) in [
            ("par=1\nbogus=1", "f:2"),
            ("[foo]", "f:1"),
            ("regtest", "f:1"),
            ("x.rpcport=1", "f:1"),
            ("conf=a", "f:1"),
        ] {
            let err = parse_conf_text("f", bad).unwrap_err();
            assert!(err.0.starts_with(line), "{bad}: {err}");
        }
    }

    #[test]
    fn core_option_names() {
        let c = run(&["--regtest", "--port=5555"]).unwrap();
        assert_eq!(c.listen.unwrap().port(), 5555);
        let c = run(&["--regtest", "--port=5555", "--bind=127.0.0.2"]).unwrap();
        assert_eq!(c.listen, Some("127.0.0.2:5555".parse().unwrap()));
        assert_eq!(run(&["--listen=0"]).unwrap().listen, None);
        assert_eq!(run(&["-nolisten"]).unwrap().listen, None);
        assert_eq!(run(&["--chain=signet"]).unwrap().network, Network::Signet);
        assert_eq!(run(&["--regtest=0"]).unwrap().network, Network::Mainnet);
        assert!(run(&["--chain=mars"]).is_err());
        assert!(run(&["--chain=test", "--regtest"]).is_err());
        assert_eq!(run(&["--maxconnections=3"]).unwrap().max_peers, 3);
        assert!(!run(&["--nodnsseed"]).unwrap().dnsseed);
        assert!(run(&["--nodnsseed=0"]).unwrap().dnsseed);
        assert!(run(&["--printtoconsole"]).is_ok());
        assert!(run(&["--daemon=0"]).is_ok());
        let err = run(&["-daemon"]).unwrap_err();
        assert!(err.0.starts_with("-daemon is not supported"), "{err}");
        match parse_args(["--pid=x.pid"]).unwrap() {
            Command::Run { pid_file, .. } => assert_eq!(pid_file, Some(PathBuf::from("x.pid"))),
            _ => panic!(),
        }
        // Every option a file may name is one the parser knows.
        for name in OPTION_NAMES {
            let arg = format!("--{name}=1");
            if let Err(e) = parse_args([arg.as_str()]) {
                assert!(!e.0.contains("unknown option"), "{name}: {e}");
            }
            assert!(USAGE.contains(&format!("--{name}")), "--help lacks {name}");
        }
    }

    #[test]
    fn debug_flag_forms() {
        for (args, level) in [
            (&["--debug"][..], "debug"),
            (&["--debug", "trace"], "trace"),
            (&["--debug=warn"], "warn"),
            (&["--debug", "--regtest"], "debug"),
        ] {
            match parse_args(args.iter().copied()).unwrap() {
                Command::Run { log_level, .. } => assert_eq!(log_level.as_deref(), Some(level)),
                _ => panic!(),
            }
        }
    }
    #[test]
    fn assumevalid_and_blocksonly_options() {
        let c = run(&["--regtest"]).unwrap();
        assert_eq!(
            (c.assume_valid, c.blocksonly),
            (AssumeValid::Default, false)
        );
        assert_eq!(
            run(&["--assumevalid=0"]).unwrap().assume_valid,
            AssumeValid::Off
        );
        assert_eq!(
            run(&["--noassumevalid"]).unwrap().assume_valid,
            AssumeValid::Off
        );
        let hash = "0000000000000000000100b8a4e2acd5c4f1e3c0a2b7fd30a9e8a8e8f4f0e1d2";
        match run(&["--assumevalid", hash]).unwrap().assume_valid {
            AssumeValid::Block(h) => assert_eq!(h.to_string(), hash),
            other => panic!("{other:?}"),
        }
        // Core's FromUserHex: short hex is zero-padded on the left.
        match run(&["--assumevalid=0x1f"]).unwrap().assume_valid {
            AssumeValid::Block(h) => assert_eq!(h.to_string(), format!("{:0>64}", "1f")),
            other => panic!("{other:?}"),
        }
        for bad in [
            "--assumevalid=xyz",
            "--assumevalid=",
            &format!("--assumevalid=0{hash}"),
        ] {
            let err = run(&[bad]).unwrap_err();
            assert!(err.0.contains("--assumevalid must be"), "{bad}: {err}");
        }
        assert!(run(&["--blocksonly"]).unwrap().blocksonly);
        assert!(!run(&["--blocksonly=0"]).unwrap().blocksonly);
        // Through the config file, in Core's syntax.
        let e = parse_conf_text("f", "blocksonly=1\nassumevalid=0\n").unwrap();
        let args = merge_conf(&strings(&["--regtest"]), &e).unwrap();
        let c = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert!(c.blocksonly);
        assert_eq!(c.assume_valid, AssumeValid::Off);
    }

    #[test]
    fn logging_options_and_testnet4() {
        use crate::logging::DebugLogFile;
        let log_of = |args: &[&str]| match parse_args(args.iter().copied()).unwrap() {
            Command::Run { log, .. } => *log,
            _ => panic!(),
        };
        let l = log_of(&["-debug=net", "-debug=mempool", "-debugexclude=mempool"]);
        assert_eq!(l.enabled_categories(), vec!["net"]);
        assert_eq!(l.level, None);
        assert_eq!(log_of(&["-debug=all"]).enabled_categories().len(), 29);
        assert!(log_of(&["-debug=net", "-debug=0"])
            .enabled_categories()
            .is_empty());
        assert_eq!(log_of(&["-nodebuglogfile"]).file, DebugLogFile::Disabled);
        assert_eq!(
            log_of(&["-debuglogfile=logs/x.log"]).file,
            DebugLogFile::Path(PathBuf::from("logs/x.log"))
        );
        assert_eq!(log_of(&["-printtoconsole=0"]).print_to_console, Some(false));
        assert_eq!(log_of(&[]).print_to_console, None);
        let err = parse_args(["-debug=chatty"]).unwrap_err();
        assert_eq!(err.0, "Unsupported logging category -debug=chatty.");
        assert!(parse_args(["-loglevel=net:shout"]).is_err());
        match parse_args(["-blocknotify=echo %s"]).unwrap() {
            Command::Run { blocknotify, .. } => assert_eq!(blocknotify.as_deref(), Some("echo %s")),
            _ => panic!(),
        }
        for args in [&["-testnet4"][..], &["-chain=testnet4"], &["--testnet4"]] {
            let c = run(args).unwrap();
            assert_eq!(c.network, Network::Testnet4, "{args:?}");
        }
        assert_eq!(run(&["-testnet4=0"]).unwrap().network, Network::Mainnet);
        let err = run(&["-testnet4", "-testnet"]).unwrap_err();
        assert_eq!(err.0, "conflicting networks: --testnet4 and --testnet");
        assert_eq!(run(&["-testnet4=1"]).unwrap().network, Network::Testnet4);
        assert!(run(&["-testnet4=2"]).is_err(), "a flag, as --testnet");
        // The [testnet4] section and `testnet4.` prefix, as Core.
        let text = "testnet4=1\n[test]\nrpcport=6\n[testnet4]\nrpcport=5\n\
                    testnet4.maxpeers=7\n";
        let e = parse_conf_text("f", text).unwrap();
        assert_eq!(e[2].section.as_deref(), Some("testnet4"));
        let args = merge_conf(&[], &e).unwrap();
        let c = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            (c.network, c.rpc.port, c.max_peers),
            (Network::Testnet4, Some(5), 7)
        );
    }
}
