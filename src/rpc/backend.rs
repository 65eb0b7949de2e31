//! The interface between the RPC server and the node: the [`RpcBackend`]
//! trait, one Rust method per RPC with typed, already-validated arguments,
//! and the typed results it returns. [`super::methods`] turns those results
//! into Bitcoin Core's JSON shapes, so a backend never builds JSON (except
//! strand's own `getsyncstate`).
//!
//! Backend methods are called on the RPC worker threads, several at once;
//! an implementation reaches the node's threads by message (request
//! channel plus reply channel, as `DESIGN.md` prescribes) and must never
//! block forever. Every method but [`RpcBackend::network`] and
//! [`RpcBackend::stop`] has a default that answers "not supported", so the
//! node can be wired one RPC at a time.

use std::net::SocketAddr;

use bitcoin::p2p::ServiceFlags;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction, TxOut, Txid, Work, Wtxid};

use super::protocol::RpcFailure;
use crate::netaddr::SubNet;

/// What a backend method returns.
pub type RpcResult<T> = Result<T, RpcFailure>;

fn unsupported<T>(method: &str) -> RpcResult<T> {
    Err(RpcFailure::misc(format!(
        "{method} is not supported by this node yet"
    )))
}

/// `getblockchaininfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockchainInfo {
    /// `main`, `test`, `signet` or `regtest`.
    pub chain: String,
    /// Height of the active tip.
    pub blocks: u32,
    /// Height of the best known header.
    pub headers: u32,
    /// Hash of the active tip.
    pub bestblockhash: BlockHash,
    /// The tip's difficulty.
    pub difficulty: f64,
    /// The tip's time.
    pub time: u32,
    /// Median time past of the tip.
    pub mediantime: u32,
    /// Estimate of verification progress, 0..1.
    pub verificationprogress: f64,
    /// Whether the node is in initial block download.
    pub initialblockdownload: bool,
    /// Total work of the active chain.
    pub chainwork: Work,
    /// Bytes used by blocks and chain state on disk.
    pub size_on_disk: u64,
    /// Whether the node prunes.
    pub pruned: bool,
    /// Warnings (Core 28 prints an array).
    pub warnings: Vec<String>,
    /// When pruning: `pruneheight`, `automatic_pruning`, `prune_target_size`.
    pub prune_info: Option<PruneInfo>,
}

/// The pruning fields of `getblockchaininfo` (present only when pruning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneInfo {
    /// First block that was not pruned (0 if nothing was).
    pub pruneheight: u32,
    /// Whether pruning is automatic (`--prune` ≥ 2) or manual (`--prune=1`).
    pub automatic_pruning: bool,
    /// The automatic target, in bytes.
    pub prune_target_size: Option<u64>,
}

/// A block-index entry: what `getblockheader` and `getblock` report
/// besides the block's own bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderInfo {
    /// The header.
    pub header: bitcoin::block::Header,
    /// Its height.
    pub height: u32,
    /// Confirmations: tip height - height + 1 in the active chain, -1 off it.
    pub confirmations: i64,
    /// Total work up to and including this block.
    pub chainwork: Work,
    /// Transactions in the block (0 if only the header is known).
    pub n_tx: u32,
    /// Median time past.
    pub mediantime: u32,
    /// The next block in the active chain.
    pub next_block_hash: Option<BlockHash>,
}

/// `getblock`'s input: the block and its index entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockData {
    /// The index entry.
    pub info: HeaderInfo,
    /// The full block.
    pub block: Block,
    /// Spent outputs (undo data): one list per transaction, in input order
    /// (empty for the coinbase). `None` if not available; with it,
    /// verbosity 2 shows fees and 3 shows `prevout`.
    pub spent_outputs: Option<Vec<Vec<TxOut>>>,
    /// Where each spent output came from, shaped as `spent_outputs`:
    /// (height of its block, created by a coinbase), for verbosity 3's
    /// `prevout.height` and `prevout.generated`. `None` if not available.
    pub spent_origins: Option<Vec<Vec<(u32, bool)>>>,
}

/// `getchaintips` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTipStatus {
    /// The tip of the active chain.
    Active,
    /// Fully validated, not part of the active chain.
    ValidFork,
    /// All blocks available, not fully validated.
    ValidHeaders,
    /// Only headers are known.
    HeadersOnly,
    /// Contains at least one invalid block.
    Invalid,
}

impl ChainTipStatus {
    /// Core's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainTipStatus::Active => "active",
            ChainTipStatus::ValidFork => "valid-fork",
            ChainTipStatus::ValidHeaders => "valid-headers",
            ChainTipStatus::HeadersOnly => "headers-only",
            ChainTipStatus::Invalid => "invalid",
        }
    }
}

/// One `getchaintips` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    /// Height of the tip.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// Length of the branch connecting it to the active chain (0 for it).
    pub branchlen: u32,
    /// Status.
    pub status: ChainTipStatus,
}

/// `gettxout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutInfo {
    /// The active tip.
    pub bestblock: BlockHash,
    /// Confirmations (0 when only in the mempool).
    pub confirmations: u32,
    /// The output.
    pub txout: TxOut,
    /// Whether it is a coinbase output.
    pub coinbase: bool,
}

/// Where a transaction found by `getrawtransaction` is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxLocation {
    /// Its block.
    pub blockhash: BlockHash,
    /// Confirmations (0 if the block is not in the active chain).
    pub confirmations: u32,
    /// The block's time.
    pub blocktime: u32,
    /// Whether the block is in the active chain.
    pub in_active_chain: bool,
}

/// `getrawtransaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxLookup {
    /// The transaction.
    pub tx: Transaction,
    /// `None` if it is in the mempool.
    pub location: Option<TxLocation>,
}

/// `getmempoolentry` and verbose `getrawmempool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolEntry {
    /// Virtual size.
    pub vsize: u64,
    /// Weight.
    pub weight: u64,
    /// Entry time (Unix seconds).
    pub time: u64,
    /// Tip height when it entered.
    pub height: u32,
    /// Descendants, itself included.
    pub descendantcount: u64,
    /// Their virtual size.
    pub descendantsize: u64,
    /// Ancestors, itself included.
    pub ancestorcount: u64,
    /// Their virtual size.
    pub ancestorsize: u64,
    /// Witness txid.
    pub wtxid: Wtxid,
    /// Fee.
    pub fee_base: Amount,
    /// Fee with prioritisation.
    pub fee_modified: Amount,
    /// Fees of ancestors, itself included.
    pub fee_ancestor: Amount,
    /// Fees of descendants, itself included.
    pub fee_descendant: Amount,
    /// Unconfirmed parents.
    pub depends: Vec<Txid>,
    /// Unconfirmed children.
    pub spentby: Vec<Txid>,
    /// BIP125 replaceable.
    pub bip125_replaceable: bool,
    /// Not yet announced to any peer.
    pub unbroadcast: bool,
}

/// `getmempoolinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Whether the mempool is loaded.
    pub loaded: bool,
    /// Transactions.
    pub size: u64,
    /// Sum of virtual sizes.
    pub bytes: u64,
    /// Memory used.
    pub usage: u64,
    /// Sum of fees.
    pub total_fee: Amount,
    /// Memory limit.
    pub maxmempool: u64,
    /// Minimum fee rate to enter (BTC/kvB).
    pub mempoolminfee: Amount,
    /// Minimum relay fee rate (BTC/kvB).
    pub minrelaytxfee: Amount,
    /// Incremental relay fee rate (BTC/kvB).
    pub incrementalrelayfee: Amount,
    /// Transactions not yet announced.
    pub unbroadcastcount: u64,
    /// Full RBF.
    pub fullrbf: bool,
}

/// One `testmempoolaccept` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolAcceptResult {
    /// Txid.
    pub txid: Txid,
    /// Wtxid.
    pub wtxid: Wtxid,
    /// Whether it would be accepted.
    pub allowed: bool,
    /// Virtual size (when allowed).
    pub vsize: Option<u64>,
    /// Fee (when allowed).
    pub fee: Option<Amount>,
    /// Why not (when not allowed).
    pub reject_reason: Option<String>,
}

/// Connection type of a peer (`getpeerinfo`'s `connection_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    /// Inbound.
    Inbound,
    /// Automatic outbound full relay.
    OutboundFullRelay,
    /// `--connect`/`--addnode`/`addnode`.
    Manual,
    /// Block-relay-only outbound.
    BlockRelayOnly,
    /// Short-lived feeler.
    Feeler,
    /// `addnode onetry` / address fetch.
    AddrFetch,
}

impl ConnectionType {
    /// Core's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Inbound => "inbound",
            ConnectionType::OutboundFullRelay => "outbound-full-relay",
            ConnectionType::Manual => "manual",
            ConnectionType::BlockRelayOnly => "block-relay-only",
            ConnectionType::Feeler => "feeler",
            ConnectionType::AddrFetch => "addr-fetch",
        }
    }
}

/// One `getnodeaddresses` entry (Core's fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// Last seen, Unix seconds.
    pub time: u32,
    /// Services advertised.
    pub services: ServiceFlags,
    /// Host text (Core's `ToStringAddr`).
    pub address: String,
    /// Port.
    pub port: u16,
    /// Core's network name.
    pub network: &'static str,
}

/// One `getaddrmaninfo` row: network name (or `all_networks`), new, tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrManCounts {
    /// Core's network name, or `all_networks`.
    pub network: &'static str,
    /// Entries in the new table.
    pub new: usize,
    /// Entries in the tried table.
    pub tried: usize,
}

/// One `getpeerinfo` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// Peer id.
    pub id: u64,
    /// Remote address.
    pub addr: SocketAddr,
    /// Our address on that connection.
    pub addrlocal: Option<SocketAddr>,
    /// Services it offers.
    pub services: ServiceFlags,
    /// Whether it wants transaction relay.
    pub relaytxes: bool,
    /// Last send (Unix seconds).
    pub lastsend: u64,
    /// Last receive (Unix seconds).
    pub lastrecv: u64,
    /// Bytes sent.
    pub bytessent: u64,
    /// Bytes received.
    pub bytesrecv: u64,
    /// Connection time (Unix seconds).
    pub conntime: u64,
    /// Last ping round trip, seconds.
    pub pingtime: Option<f64>,
    /// Smallest ping seen, seconds.
    pub minping: Option<f64>,
    /// Protocol version.
    pub version: u32,
    /// User agent.
    pub subver: String,
    /// Whether it connected to us.
    pub inbound: bool,
    /// Height it reported at connection.
    pub startingheight: i32,
    /// Last header height in common.
    pub synced_headers: i32,
    /// Last block height in common.
    pub synced_blocks: i32,
    /// Heights of blocks in flight from it.
    pub inflight: Vec<u32>,
    /// Headers checked in its low-work pre-sync, -1 if none.
    pub presynced_headers: i64,
    /// Unix time of the last new block it gave us first, 0 if none.
    pub last_block: u64,
    /// Unix time of its last new mempool transaction, 0 if none.
    pub last_transaction: u64,
    /// Connection type.
    pub connection_type: ConnectionType,
    /// Addresses from it processed (Core's `addr_processed`).
    pub addr_processed: u64,
    /// Addresses from it dropped by the rate limit (`addr_rate_limited`).
    pub addr_rate_limited: u64,
}

/// `getnettotals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetTotals {
    /// Bytes received since start.
    pub totalbytesrecv: u64,
    /// Bytes sent since start.
    pub totalbytessent: u64,
    /// Now, Unix milliseconds.
    pub timemillis: u64,
}

/// One local address in `getnetworkinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Score.
    pub score: i32,
}

/// `getnetworkinfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    /// Node version as Core encodes it (e.g. 10000 for 0.1.0).
    pub version: u32,
    /// User agent, e.g. `/strand:0.1.0/`.
    pub subversion: String,
    /// P2P protocol version.
    pub protocolversion: u32,
    /// Services we offer.
    pub localservices: ServiceFlags,
    /// Whether we relay transactions.
    pub localrelay: bool,
    /// Whether P2P networking is active.
    pub networkactive: bool,
    /// Inbound connections.
    pub connections_in: u32,
    /// Outbound connections.
    pub connections_out: u32,
    /// Minimum relay fee rate (BTC/kvB).
    pub relayfee: Amount,
    /// Incremental relay fee rate (BTC/kvB).
    pub incrementalfee: Amount,
    /// Our advertised addresses.
    pub localaddresses: Vec<LocalAddress>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// `addnode` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddNodeCommand {
    /// Add to the list of nodes kept connected.
    Add,
    /// Remove from it.
    Remove,
    /// Try one connection.
    OneTry,
}

/// `disconnectnode` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectTarget {
    /// By address (as given by the user).
    Address(String),
    /// By peer id.
    Id(u64),
}

/// `setban` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanCommand {
    /// Ban until `until` (Unix seconds) if given, else for `duration`
    /// seconds (`None`: the default ban time, 24 h).
    Add {
        /// Ban length in seconds.
        duration: Option<u64>,
        /// Absolute end of the ban.
        until: Option<u64>,
    },
    /// Lift a ban.
    Remove,
}

/// One `listbanned` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannedEntry {
    /// The banned subnet.
    pub subnet: SubNet,
    /// When the ban was set (Unix seconds).
    pub ban_created: u64,
    /// When it ends (Unix seconds).
    pub banned_until: u64,
}

/// A transaction for `generateblock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockTx {
    /// A mempool transaction.
    Txid(Txid),
    /// A raw transaction.
    Raw(Transaction),
}

/// `generateblock`'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedBlock {
    /// The block hash.
    pub hash: BlockHash,
    /// The block, when it was not submitted.
    pub block: Option<Block>,
}

/// `gettxoutsetinfo`'s `hash_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtxoHashType {
    /// Core's `hash_serialized_3`.
    HashSerialized3,
    /// Core's MuHash3072 of the set.
    MuHash,
    /// No digest.
    None,
}

/// `gettxoutsetinfo` (Core's `CCoinsStats` without the coinstats index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoSetInfo {
    /// Height of the tip the set belongs to.
    pub height: u32,
    /// That tip.
    pub bestblock: BlockHash,
    /// Transactions with unspent outputs.
    pub transactions: u64,
    /// Unspent outputs.
    pub txouts: u64,
    /// Core's `nBogoSize`: 50 bytes plus the script per output.
    pub bogosize: u64,
    /// `hash_serialized_3` when asked for.
    pub hash_serialized_3: Option<bitcoin::hashes::sha256d::Hash>,
    /// `muhash` when asked for, in Core's `uint256` byte order.
    pub muhash: Option<[u8; 32]>,
    /// Bytes of the chain-state store on disk.
    pub disk_size: u64,
    /// Sum of the outputs' values.
    pub total_amount: Amount,
}

/// One `scantxoutset` match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedCoin {
    /// The output.
    pub outpoint: bitcoin::OutPoint,
    /// Its value and script.
    pub txout: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Hash of that block.
    pub blockhash: BlockHash,
    /// Whether a coinbase created it.
    pub coinbase: bool,
}

/// `scantxoutset start`'s result before JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoScan {
    /// Tip height of the scanned set.
    pub height: u32,
    /// That tip.
    pub bestblock: BlockHash,
    /// Outputs scanned.
    pub txouts: u64,
    /// Outputs whose script is one of the wanted ones, in set order.
    pub unspents: Vec<ScannedCoin>,
}

/// An output spent by a transaction's input, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentOutput {
    /// The output.
    pub txout: TxOut,
    /// Height of the block that created it (Core's `MEMPOOL_HEIGHT`,
    /// 0x7fffffff, for an unconfirmed parent).
    pub height: u32,
    /// Whether a coinbase created it.
    pub coinbase: bool,
}

/// One `getindexinfo` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// Index name (`txindex`, ...).
    pub name: String,
    /// Whether it is in step with the tip.
    pub synced: bool,
    /// Height it has indexed up to.
    pub best_block_height: u32,
}

/// The node as the RPC server sees it. See the module documentation for
/// the threading rules. Arguments are validated and decoded by the
/// dispatch layer (hashes, hex, addresses, descriptors, ranges) with Core's
/// messages; a backend reports node-side failures with Core's codes and
/// messages (e.g. [`RpcFailure::not_found`]`("Block not found")`).
pub trait RpcBackend: Send + Sync {
    /// The chain, for address parsing and `chain`.
    fn network(&self) -> bitcoin::Network;

    /// Signals the node to shut down (`stop`). Must not block: it is
    /// called on an RPC worker thread, after the reply is sent.
    fn stop(&self);

    /// `Some(status)` while the node is starting: calls then fail with
    /// `RPC_IN_WARMUP` (-28) and this message.
    fn warmup_status(&self) -> Option<String> {
        None
    }

    /// `getblockchaininfo`.
    fn blockchain_info(&self) -> RpcResult<BlockchainInfo> {
        unsupported("getblockchaininfo")
    }
    /// `getblockcount`: height of the active tip.
    fn block_count(&self) -> RpcResult<u32> {
        unsupported("getblockcount")
    }
    /// `getbestblockhash`.
    fn best_block_hash(&self) -> RpcResult<BlockHash> {
        unsupported("getbestblockhash")
    }
    /// `getblockhash`: the active chain's block at `height`, `None` above
    /// the tip.
    fn block_hash(&self, height: u32) -> RpcResult<Option<BlockHash>> {
        let _ = height;
        unsupported("getblockhash")
    }
    /// `getblockheader`: `None` if the hash is unknown.
    fn block_header(&self, hash: BlockHash) -> RpcResult<Option<HeaderInfo>> {
        let _ = hash;
        unsupported("getblockheader")
    }
    /// `getblock`: `None` if the hash is unknown; an error such as
    /// `misc("Block not available (pruned data)")` if only the header is.
    fn block(&self, hash: BlockHash) -> RpcResult<Option<BlockData>> {
        let _ = hash;
        unsupported("getblock")
    }
    /// `getchaintips`.
    fn chain_tips(&self) -> RpcResult<Vec<ChainTip>> {
        unsupported("getchaintips")
    }
    /// `getdifficulty`.
    fn difficulty(&self) -> RpcResult<f64> {
        unsupported("getdifficulty")
    }
    /// `gettxout`: `None` if spent or unknown.
    fn tx_out(&self, txid: Txid, vout: u32, include_mempool: bool) -> RpcResult<Option<TxOutInfo>> {
        let _ = (txid, vout, include_mempool);
        unsupported("gettxout")
    }
    /// `getrawtransaction`: look in the mempool, then in `blockhash` if
    /// given, else in the transaction index (`-txindex`). When
    /// not found, fail with Core's -5 messages: "Block hash not found",
    /// "No such transaction found in the provided block. Use
    /// gettransaction for wallet transactions.", or "No such mempool or
    /// blockchain transaction. Use gettransaction for wallet
    /// transactions."
    fn raw_transaction(&self, txid: Txid, blockhash: Option<BlockHash>) -> RpcResult<TxLookup> {
        let _ = (txid, blockhash);
        unsupported("getrawtransaction")
    }
    /// `getrawmempool` (txids).
    fn raw_mempool(&self) -> RpcResult<Vec<Txid>> {
        unsupported("getrawmempool")
    }
    /// `getrawmempool true`.
    fn raw_mempool_verbose(&self) -> RpcResult<Vec<(Txid, MempoolEntry)>> {
        unsupported("getrawmempool")
    }
    /// `getmempoolinfo`.
    fn mempool_info(&self) -> RpcResult<MempoolInfo> {
        unsupported("getmempoolinfo")
    }
    /// `getmempoolentry`: `None` if not in the mempool.
    fn mempool_entry(&self, txid: Txid) -> RpcResult<Option<MempoolEntry>> {
        let _ = txid;
        unsupported("getmempoolentry")
    }
    /// `sendrawtransaction`: `max_fee_rate` in BTC/kvB (0 = no limit;
    /// dispatch passes Core's default 0.10).
    fn send_raw_transaction(&self, tx: Transaction, max_fee_rate: Amount) -> RpcResult<Txid> {
        let _ = (tx, max_fee_rate);
        unsupported("sendrawtransaction")
    }
    /// `testmempoolaccept` (1..=25 transactions, already decoded).
    fn test_mempool_accept(
        &self,
        txs: Vec<Transaction>,
        max_fee_rate: Amount,
    ) -> RpcResult<Vec<MempoolAcceptResult>> {
        let _ = (txs, max_fee_rate);
        unsupported("testmempoolaccept")
    }
    /// `submitblock`: `None` if accepted, else Core's result string
    /// (`duplicate`, `duplicate-invalid`, `inconclusive`, or the reject
    /// reason).
    fn submit_block(&self, block: Block) -> RpcResult<Option<String>> {
        let _ = block;
        unsupported("submitblock")
    }
    /// `getpeerinfo`.
    fn peer_info(&self) -> RpcResult<Vec<PeerInfo>> {
        unsupported("getpeerinfo")
    }
    /// `getnettotals`.
    fn net_totals(&self) -> RpcResult<NetTotals> {
        unsupported("getnettotals")
    }
    /// `ping`: queue a ping to every peer.
    fn ping(&self) -> RpcResult<()> {
        unsupported("ping")
    }
    /// `getconnectioncount`.
    fn connection_count(&self) -> RpcResult<u32> {
        unsupported("getconnectioncount")
    }
    /// `getnetworkinfo`.
    fn network_info(&self) -> RpcResult<NetworkInfo> {
        unsupported("getnetworkinfo")
    }
    /// `addnode`.
    fn add_node(&self, node: String, command: AddNodeCommand) -> RpcResult<()> {
        let _ = (node, command);
        unsupported("addnode")
    }
    /// `getaddednodeinfo`: the nodes added with `--addnode`/`addnode add`
    /// and their open connections.
    fn added_node_info(&self) -> RpcResult<Vec<crate::connmgr::AddedNodeInfo>> {
        unsupported("getaddednodeinfo")
    }
    /// `disconnectnode`: fail with -29 "Node not found in connected nodes".
    fn disconnect_node(&self, target: DisconnectTarget) -> RpcResult<()> {
        let _ = target;
        unsupported("disconnectnode")
    }
    /// `setban`.
    fn set_ban(&self, subnet: SubNet, command: BanCommand) -> RpcResult<()> {
        let _ = (subnet, command);
        unsupported("setban")
    }
    /// `listbanned`.
    fn list_banned(&self) -> RpcResult<Vec<BannedEntry>> {
        unsupported("listbanned")
    }
    /// `invalidateblock`: `None`-like failures use "Block not found" (-5).
    fn invalidate_block(&self, hash: BlockHash) -> RpcResult<()> {
        let _ = hash;
        unsupported("invalidateblock")
    }
    /// `reconsiderblock`.
    fn reconsider_block(&self, hash: BlockHash) -> RpcResult<()> {
        let _ = hash;
        unsupported("reconsiderblock")
    }
    /// `generatetoaddress`/`generatetodescriptor`: mine `count` blocks
    /// paying to `script`, trying at most `max_tries` nonces in all.
    fn generate_to_script(
        &self,
        count: u32,
        script: ScriptBuf,
        max_tries: u64,
    ) -> RpcResult<Vec<BlockHash>> {
        let _ = (count, script, max_tries);
        unsupported("generatetoaddress")
    }
    /// `generateblock`: mine one block with exactly `txs` (in order),
    /// submitting it if `submit`.
    fn generate_block(
        &self,
        script: ScriptBuf,
        txs: Vec<BlockTx>,
        submit: bool,
    ) -> RpcResult<GeneratedBlock> {
        let _ = (script, txs, submit);
        unsupported("generateblock")
    }
    /// `getnodeaddresses`: up to `count` (0: all) good addresses from the
    /// address manager, only `network` if given.
    fn node_addresses(
        &self,
        count: usize,
        network: Option<crate::netaddr::NetClass>,
    ) -> RpcResult<Vec<NodeAddress>> {
        let _ = (count, network);
        unsupported("getnodeaddresses")
    }
    /// `getaddrmaninfo`: per network (ipv4, ipv6, onion, i2p, cjdns) and
    /// `all_networks`, the new and tried counts.
    fn addrman_info(&self) -> RpcResult<Vec<AddrManCounts>> {
        unsupported("getaddrmaninfo")
    }
    /// `addpeeraddress`: adds `addr:port` as if it announced itself; with
    /// `tried`, also moves it to the tried table. `Ok(None)` on success,
    /// `Ok(Some(error))` with Core's error string otherwise.
    fn add_peer_address(
        &self,
        addr: bitcoin::p2p::address::AddrV2,
        port: u16,
        tried: bool,
    ) -> RpcResult<Option<&'static str>> {
        let _ = (addr, port, tried);
        unsupported("addpeeraddress")
    }
    /// `uptime`: seconds since the node started.
    fn uptime(&self) -> RpcResult<u64> {
        unsupported("uptime")
    }
    /// `getsyncstate`: strand's own view of sync (sync peer, candidates,
    /// anomaly counters); any JSON object.
    fn sync_state(&self) -> RpcResult<serde_json::Value> {
        unsupported("getsyncstate")
    }
    /// The txindex hook: the block holding `txid`, `None` when unknown
    /// (strand has no `-txindex` yet; the txindex work overrides this).
    fn tx_block_hash(&self, txid: Txid) -> RpcResult<Option<BlockHash>> {
        let _ = txid;
        Ok(None)
    }
    /// The outputs `tx`'s inputs spend, in input order: from `blockhash`'s
    /// undo data when given, else from the mempool and the UTXO set.
    /// `None` when any is unknown (a coinbase spends nothing: empty list).
    fn tx_spent_outputs(
        &self,
        tx: &Transaction,
        blockhash: Option<BlockHash>,
    ) -> RpcResult<Option<Vec<SpentOutput>>> {
        let _ = (tx, blockhash);
        Ok(None)
    }
    /// `gettxoutsetinfo` at the tip.
    fn utxo_set_info(&self, hash_type: UtxoHashType) -> RpcResult<UtxoSetInfo> {
        let _ = hash_type;
        unsupported("gettxoutsetinfo")
    }
    /// `scantxoutset start`: every unspent output paying one of `scripts`.
    fn scan_utxos(&self, scripts: Vec<ScriptBuf>) -> RpcResult<UtxoScan> {
        let _ = scripts;
        unsupported("scantxoutset")
    }
    /// `gettxoutproof`: a BIP37 merkle block proving `txids` (distinct,
    /// non-empty) are in `blockhash`, or in the block found through the
    /// UTXO set or [`RpcBackend::tx_block_hash`]; Core's -5 errors.
    fn tx_out_proof(
        &self,
        txids: Vec<Txid>,
        blockhash: Option<BlockHash>,
    ) -> RpcResult<bitcoin::MerkleBlock> {
        let _ = (txids, blockhash);
        unsupported("gettxoutproof")
    }
    /// Transactions in the chain up to and including `hash` (Core's
    /// `m_chain_tx_count`), `None` when not known.
    fn chain_tx_count(&self, hash: BlockHash) -> RpcResult<Option<u64>> {
        let _ = hash;
        Ok(None)
    }
    /// `logging`: switches on `include`, then off `exclude` (Core's
    /// category names, checked and with `all` expanded by the caller), and
    /// returns the categories now on.
    fn logging(&self, include: Vec<String>, exclude: Vec<String>) -> RpcResult<Vec<String>> {
        let _ = (include, exclude);
        unsupported("logging")
    }
    /// `getrpcinfo`'s `logpath`: the debug log file.
    fn log_path(&self) -> RpcResult<String> {
        Ok(String::new())
    }
    /// `getindexinfo`: the optional indexes (none until txindex merges).
    fn index_info(&self) -> RpcResult<Vec<IndexInfo>> {
        Ok(Vec::new())
    }
    /// `getblocktemplate` (template mode): the next block on the tip with
    /// the mempool's best transactions. Errors as Core (-9 not connected,
    /// -10 in initial download, on mainnet only).
    fn block_template(&self) -> RpcResult<BlockTemplateInfo> {
        unsupported("getblocktemplate")
    }
    /// `getmininginfo`.
    fn mining_info(&self) -> RpcResult<MiningInfo> {
        unsupported("getmininginfo")
    }
    /// `submitheader`: accepts a header whose parent is known (-25
    /// otherwise, or with the reject reason when it is invalid).
    fn submit_header(&self, header: bitcoin::block::Header) -> RpcResult<()> {
        let _ = header;
        unsupported("submitheader")
    }
    /// `prioritisetransaction`: adds `delta` satoshis to the fee `txid`
    /// is mined and evicted by.
    fn prioritise_transaction(&self, txid: Txid, delta: i64) -> RpcResult<()> {
        let _ = (txid, delta);
        unsupported("prioritisetransaction")
    }
    /// `getprioritisedtransactions`: (txid, delta, modified fee when the
    /// transaction is in the mempool).
    fn prioritised_transactions(&self) -> RpcResult<Vec<(Txid, i64, Option<i64>)>> {
        unsupported("getprioritisedtransactions")
    }
    /// `estimatesmartfee`: the fee rate (satoshis per kvB, already raised
    /// to the mempool and relay minimums) for `target` blocks, if any, and
    /// the target it was found for.
    fn estimate_smart_fee(&self, target: u32) -> RpcResult<(Option<Amount>, u32)> {
        let _ = target;
        unsupported("estimatesmartfee")
    }
    /// `estimaterawfee`: the estimator's raw answer at `target` (at most
    /// [`crate::mempool::fees::MAX_TRACKED_TARGET`]) and `threshold`.
    fn estimate_raw_fee(
        &self,
        target: u32,
        threshold: f64,
    ) -> RpcResult<crate::mempool::fees::RawEstimate> {
        let _ = (target, threshold);
        unsupported("estimaterawfee")
    }
    /// `savemempool`: writes `mempool.dat`; returns its path.
    fn save_mempool(&self) -> RpcResult<std::path::PathBuf> {
        unsupported("savemempool")
    }
    /// `pruneblockchain`: prune up to a height or a Unix time (Core's
    /// semantics and errors); returns the height of the last block pruned,
    /// or -1.
    fn prune_blockchain(&self, height: i64) -> RpcResult<i64> {
        let _ = height;
        unsupported("pruneblockchain")
    }
}

/// A block template for `getblocktemplate` (Core's `BlockTemplate` plus
/// what the RPC shows of the chain).
#[derive(Debug, Clone)]
pub struct BlockTemplateInfo {
    /// Header fields of the next block.
    pub next: crate::mining::NextBlock,
    /// Header version.
    pub version: i32,
    /// Transactions, in block order.
    pub transactions: Vec<crate::mempool::TemplateTx>,
    /// Subsidy plus the transactions' (base) fees.
    pub coinbasevalue: Amount,
    /// The BIP141 commitment output script for these transactions.
    pub default_witness_commitment: ScriptBuf,
    /// Mempool updates counter, part of `longpollid`.
    pub transactions_updated: u64,
    /// Signet: the challenge blocks must satisfy.
    pub signet_challenge: Option<Vec<u8>>,
}

/// `getmininginfo` (Core 31's fields).
#[derive(Debug, Clone)]
pub struct MiningInfo {
    /// Tip height.
    pub blocks: u32,
    /// Tip `nBits`.
    pub bits: bitcoin::CompactTarget,
    /// Tip difficulty.
    pub difficulty: f64,
    /// Network hash rate over the last 120 blocks (hashes per second).
    pub networkhashps: f64,
    /// Mempool transactions.
    pub pooledtx: u64,
    /// Core's chain name (main, test, signet, regtest).
    pub chain: String,
    /// The next block's header fields.
    pub next: crate::mining::NextBlock,
    /// Signet: the challenge blocks must satisfy.
    pub signet_challenge: Option<Vec<u8>>,
}
