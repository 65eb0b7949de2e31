//! The node behind the RPC server: [`NodeBackend`] implements
//! [`RpcBackend`] over a running [`NodeHandle`].
//!
//! Runs on the RPC worker threads. Chain queries travel to the sync-manager
//! thread as closures ([`NodeHandle::with_chain`]) and come back on reply
//! channels; mempool queries take the mempool lock briefly; peer queries use
//! the node's snapshot. Nothing here blocks the node for long, and nothing a
//! client sends can panic it: every failure is an [`RpcFailure`].

use std::sync::Arc;
use std::time::Instant;

use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf, Transaction, Txid};
use crossbeam_channel::Sender;

use super::backend::*;
use super::protocol::RpcFailure;
use crate::chain::state::ChainEvent;
use crate::mempool::MempoolEntry as PoolEntry;
use crate::store::BlockStatus;
use crate::{Direction, NodeHandle, SendTxError};

type RpcResult<T> = Result<T, RpcFailure>;

/// [`RpcBackend`] for a running node.
pub struct NodeBackend {
    node: Arc<NodeHandle>,
    network: crate::Network,
    started: Instant,
    stop: Sender<()>,
}

impl NodeBackend {
    /// Serves `node`; `stop` receives one message when a client calls `stop`.
    pub fn new(node: Arc<NodeHandle>, network: crate::Network, stop: Sender<()>) -> NodeBackend {
        NodeBackend {
            node,
            network,
            started: Instant::now(),
            stop,
        }
    }

    fn chain<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::chain::state::ChainState) -> R + Send + 'static,
    ) -> RpcResult<R> {
        self.node
            .with_chain(f)
            .map_err(|e| RpcFailure::new(-28, e.to_string()))
    }

    fn mempool(&self) -> RpcResult<crate::mempool::SharedMempool> {
        self.node
            .mempool()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))
    }

    fn snapshot(&self) -> RpcResult<crate::Snapshot> {
        self.node
            .snapshot()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))
    }
}

/// A transaction looked up in a block: the transaction if the block holds
/// it, the block's height and time, whether it is active, the tip height.
type FoundInBlock = Option<(Option<Transaction>, u32, u32, bool, u32)>;

impl NodeBackend {
    /// Looks `txid` up in block `hash` (at position `pos` when known).
    fn tx_in_block(
        &self,
        txid: Txid,
        hash: BlockHash,
        pos: Option<u32>,
    ) -> RpcResult<FoundInBlock> {
        self.chain(move |c| {
            let e = c.entry(&hash)?.clone();
            let raw = c.block_bytes(&hash).ok().flatten()?;
            let block = bitcoin::consensus::deserialize::<Block>(&raw).ok()?;
            let active = c.is_active(&hash);
            let tx = match pos {
                Some(i) => block
                    .txdata
                    .into_iter()
                    .nth(i as usize)
                    .filter(|t| t.compute_txid() == txid),
                None => block.txdata.into_iter().find(|t| t.compute_txid() == txid),
            };
            Some((tx, e.height, e.header.time, active, c.height()))
        })
    }

    /// `getrawtransaction` of a transaction not in the mempool, through
    /// the transaction index (Core's `g_txindex->FindTx`).
    fn raw_transaction_indexed(
        &self,
        txid: Txid,
        index: &crate::index::TxIndex,
    ) -> RpcResult<TxLookup> {
        let not_found = || {
            RpcFailure::not_found(if index.info().synced {
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
            } else {
                "No such mempool or blockchain transaction. Blockchain transactions are still in the process of being indexed. Use gettransaction for wallet transactions."
            })
        };
        let pos = index
            .find_tx(&txid)
            .map_err(|e| RpcFailure::misc(e.to_string()))?
            .ok_or_else(not_found)?;
        match self.tx_in_block(txid, pos.block, Some(pos.index))? {
            Some((Some(tx), height, time, active, tip)) => Ok(TxLookup {
                tx,
                location: Some(TxLocation {
                    blockhash: pos.block,
                    confirmations: if active { tip - height + 1 } else { 0 },
                    blocktime: time,
                    in_active_chain: active,
                }),
            }),
            _ => Err(not_found()),
        }
    }
}

fn fee_amount(rate: crate::mempool::FeeRate) -> Amount {
    Amount::from_sat(rate.0)
}

fn map_chain_op(e: crate::ChainOpError) -> RpcFailure {
    let e = e.to_string();
    if e.starts_with("Block not found") {
        RpcFailure::not_found("Block not found")
    } else {
        RpcFailure::new(-25, e)
    }
}

fn pool_entry(e: PoolEntry) -> MempoolEntry {
    MempoolEntry {
        vsize: e.vsize,
        weight: e.weight,
        time: e.time,
        height: e.height,
        descendantcount: e.descendant_count as u64,
        descendantsize: e.descendant_size,
        ancestorcount: e.ancestor_count as u64,
        ancestorsize: e.ancestor_size,
        wtxid: e.wtxid,
        fee_base: e.fee,
        fee_modified: Amount::from_sat(e.modified_fee.max(0) as u64),
        fee_ancestor: e.ancestor_fees,
        fee_descendant: e.descendant_fees,
        depends: e.depends,
        spentby: e.spent_by,
        bip125_replaceable: e.bip125_replaceable,
        unbroadcast: false,
    }
}

/// Header facts for `hash`, computed on the sync-manager thread.
fn header_info(c: &mut crate::chain::state::ChainState, hash: &BlockHash) -> Option<HeaderInfo> {
    let e = c.entry(hash)?;
    let active = c.is_active(hash);
    let n_tx = if e.status.contains(BlockStatus::HAVE_DATA) {
        c.block_bytes(hash)
            .ok()
            .flatten()
            .and_then(|raw| bitcoin::consensus::deserialize::<Block>(&raw).ok())
            .map_or(0, |b| b.txdata.len() as u32)
    } else {
        0
    };
    Some(HeaderInfo {
        header: e.header,
        height: e.height,
        confirmations: if active {
            i64::from(c.height()) - i64::from(e.height) + 1
        } else {
            -1
        },
        chainwork: e.chain_work,
        n_tx,
        mediantime: if active {
            c.median_time_past(e.height).unwrap_or(e.header.time)
        } else {
            e.header.time
        },
        next_block_hash: if active {
            c.active_hash(e.height + 1)
        } else {
            None
        },
    })
}

impl RpcBackend for NodeBackend {
    fn network(&self) -> bitcoin::Network {
        self.network.to_bitcoin()
    }

    fn stop(&self) {
        let _ = self.stop.try_send(());
    }

    fn blockchain_info(&self) -> RpcResult<BlockchainInfo> {
        let snap = self.snapshot()?;
        let chain = match self.network {
            crate::Network::Mainnet => "main",
            crate::Network::Testnet => "test",
            crate::Network::Signet => "signet",
            crate::Network::Testnet4 => "testnet4",
            crate::Network::Regtest => "regtest",
        }
        .to_string();
        let ibd = snap.initial_block_download;
        self.chain(move |c| {
            let tip = c.tip();
            let e = c.entry(&tip);
            let height = c.height();
            let size = std::fs::metadata(c.store().path().join("data.mdb")).map_or(0, |m| m.len());
            let best = c.best_header_height().max(height);
            let prune = c.prune_mode();
            e.map(|e| BlockchainInfo {
                chain,
                blocks: height,
                headers: best,
                bestblockhash: tip,
                difficulty: e.header.difficulty_float(),
                time: e.header.time,
                mediantime: c.median_time_past(height).unwrap_or(e.header.time),
                verificationprogress: if ibd {
                    f64::from(height) / f64::from(best.max(1))
                } else {
                    1.0
                },
                initialblockdownload: ibd,
                chainwork: e.chain_work,
                size_on_disk: size,
                pruned: prune.is_prune_mode(),
                warnings: Vec::new(),
                prune_info: prune
                    .is_prune_mode()
                    .then(|| crate::rpc::backend::PruneInfo {
                        pruneheight: c.prune_height().map_or(0, |h| h + 1),
                        automatic_pruning: prune != crate::chain::prune::PruneMode::Manual,
                        prune_target_size: match prune {
                            crate::chain::prune::PruneMode::Automatic { target_bytes } => {
                                Some(target_bytes)
                            }
                            _ => None,
                        },
                    }),
            })
        })?
        .ok_or_else(|| RpcFailure::misc("tip not in the block index"))
    }

    fn block_count(&self) -> RpcResult<u32> {
        self.chain(|c| c.height())
    }

    fn best_block_hash(&self) -> RpcResult<BlockHash> {
        self.chain(|c| c.tip())
    }

    fn block_hash(&self, height: u32) -> RpcResult<Option<BlockHash>> {
        self.chain(move |c| c.active_hash(height))
    }

    fn block_header(&self, hash: BlockHash) -> RpcResult<Option<HeaderInfo>> {
        self.chain(move |c| header_info(c, &hash))
    }

    fn block(&self, hash: BlockHash) -> RpcResult<Option<BlockData>> {
        // Core's getblock: a known block whose data was pruned.
        let pruned = self.chain(move |c| {
            c.store().have_pruned().unwrap_or(false)
                && c.entry(&hash)
                    .is_some_and(|e| !e.status.contains(BlockStatus::HAVE_DATA))
                && c.is_active(&hash)
        })?;
        if pruned {
            return Err(RpcFailure::misc("Block not available (pruned data)"));
        }
        self.chain(move |c| {
            let info = header_info(c, &hash)?;
            let block = super::node_data::read_block(c, &hash)?;
            let (spent_outputs, spent_origins) =
                super::node_data::block_spent(c, &hash, &block).unzip();
            Some(BlockData {
                info,
                block,
                spent_outputs,
                spent_origins,
            })
        })
    }

    fn chain_tips(&self) -> RpcResult<Vec<ChainTip>> {
        self.chain(|c| {
            let tip = c.tip();
            c.chain_tips()
                .into_iter()
                .map(|(hash, height, branchlen, status)| ChainTip {
                    height,
                    hash,
                    branchlen,
                    status: if hash == tip {
                        ChainTipStatus::Active
                    } else if status.is_failed() {
                        ChainTipStatus::Invalid
                    } else if status.contains(BlockStatus::VALID_SCRIPTS) {
                        ChainTipStatus::ValidFork
                    } else if status.contains(BlockStatus::HAVE_DATA) {
                        ChainTipStatus::ValidHeaders
                    } else {
                        ChainTipStatus::HeadersOnly
                    },
                })
                .collect()
        })
    }

    fn difficulty(&self) -> RpcResult<f64> {
        self.chain(|c| {
            let tip = c.tip();
            c.entry(&tip).map_or(0.0, |e| e.header.difficulty_float())
        })
    }

    fn tx_out(&self, txid: Txid, vout: u32, include_mempool: bool) -> RpcResult<Option<TxOutInfo>> {
        let op = OutPoint::new(txid, vout);
        if include_mempool {
            // Read under the (leaf) mempool lock, release it, then ask the
            // sync-manager thread: never wait on a thread while holding it.
            let (spent, unconfirmed) = {
                let pool = self.mempool()?;
                let pool = pool.lock();
                (
                    pool.spender_of(&op).is_some(),
                    pool.get(&txid)
                        .map(|tx| tx.output.get(vout as usize).cloned()),
                )
            };
            if spent {
                return Ok(None);
            }
            if let Some(out) = unconfirmed {
                let best = self.chain(|c| c.tip())?;
                return Ok(out.map(|o| TxOutInfo {
                    bestblock: best,
                    confirmations: 0,
                    txout: o,
                    coinbase: false,
                }));
            }
        }
        self.chain(move |c| {
            let coin = c.coin(&op).ok().flatten()?;
            Some(TxOutInfo {
                bestblock: c.tip(),
                confirmations: c.height().saturating_sub(coin.height) + 1,
                txout: bitcoin::TxOut {
                    value: coin.amount,
                    script_pubkey: coin.script_pubkey,
                },
                coinbase: coin.is_coinbase,
            })
        })
    }

    fn raw_transaction(&self, txid: Txid, blockhash: Option<BlockHash>) -> RpcResult<TxLookup> {
        if blockhash.is_none() {
            if let Some(tx) = self.mempool()?.lock().get(&txid).cloned() {
                return Ok(TxLookup { tx, location: None });
            }
            let Some(index) = self.node.txindex() else {
                return Err(RpcFailure::not_found(
                    "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions.",
                ));
            };
            return self.raw_transaction_indexed(txid, &index);
        }
        let Some(hash) = blockhash else {
            return Err(RpcFailure::not_found("Block hash not found"));
        };
        let found = self.tx_in_block(txid, hash, None)?;
        match found {
            None => Err(RpcFailure::not_found("Block hash not found")),
            Some((None, ..)) => Err(RpcFailure::not_found(
                "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
            )),
            Some((Some(tx), height, time, active, tip)) => Ok(TxLookup {
                tx,
                location: Some(TxLocation {
                    blockhash: hash,
                    confirmations: if active { tip - height + 1 } else { 0 },
                    blocktime: time,
                    in_active_chain: active,
                }),
            }),
        }
    }

    fn tx_block_hash(&self, txid: Txid) -> RpcResult<Option<BlockHash>> {
        let Some(index) = self.node.txindex() else {
            return Ok(None);
        };
        index
            .find_tx(&txid)
            .map(|p| p.map(|p| p.block))
            .map_err(|e| RpcFailure::misc(e.to_string()))
    }

    fn index_info(&self) -> RpcResult<Vec<IndexInfo>> {
        Ok(self
            .node
            .txindex()
            .map(|i| {
                let info = i.info();
                IndexInfo {
                    name: "txindex".into(),
                    synced: info.synced,
                    best_block_height: info.best_block_height,
                }
            })
            .into_iter()
            .collect())
    }

    fn raw_mempool(&self) -> RpcResult<Vec<Txid>> {
        Ok(self.mempool()?.lock().txids())
    }

    fn raw_mempool_verbose(&self) -> RpcResult<Vec<(Txid, MempoolEntry)>> {
        let pool = self.mempool()?;
        let pool = pool.lock();
        Ok(pool
            .txids()
            .into_iter()
            .filter_map(|t| pool.entry(&t).map(|e| (t, pool_entry(e))))
            .collect())
    }

    fn mempool_info(&self) -> RpcResult<MempoolInfo> {
        let i = self.mempool()?.lock().info();
        Ok(MempoolInfo {
            loaded: i.loaded,
            size: i.size as u64,
            bytes: i.bytes,
            usage: i.usage as u64,
            total_fee: i.total_fee,
            maxmempool: i.maxmempool as u64,
            mempoolminfee: fee_amount(i.mempoolminfee),
            minrelaytxfee: fee_amount(i.minrelaytxfee),
            incrementalrelayfee: fee_amount(i.incrementalrelayfee),
            unbroadcastcount: i.unbroadcastcount as u64,
            fullrbf: i.fullrbf,
        })
    }

    fn mempool_entry(&self, txid: Txid) -> RpcResult<Option<MempoolEntry>> {
        Ok(self.mempool()?.lock().entry(&txid).map(pool_entry))
    }

    fn send_raw_transaction(&self, tx: Transaction, max_fee_rate: Amount) -> RpcResult<Txid> {
        if max_fee_rate > Amount::ZERO {
            // Core's maxfeerate (BTC/kvB): checked on a trial acceptance
            // into a copy of the mempool before the real one.
            let trial = self.test_mempool_accept(vec![tx.clone()], Amount::ZERO)?;
            if let Some(MempoolAcceptResult {
                allowed: true,
                vsize: Some(vsize),
                fee: Some(fee),
                ..
            }) = trial.first()
            {
                let rate_per_kvb = fee.to_sat().saturating_mul(1000) / (*vsize).max(1);
                if rate_per_kvb > max_fee_rate.to_sat() {
                    return Err(RpcFailure::new(
                        -25,
                        "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                    ));
                }
            }
        }
        match self.node.send_transaction(tx) {
            Ok(txid) => Ok(txid),
            Err(SendTxError::Rejected(e)) => Err(RpcFailure::new(e.rpc_code(), e.rpc_message())),
            Err(e) => Err(RpcFailure::new(-28, e.to_string())),
        }
    }

    fn test_mempool_accept(
        &self,
        txs: Vec<Transaction>,
        _max_fee_rate: Amount,
    ) -> RpcResult<Vec<MempoolAcceptResult>> {
        // Accept into a copy of the mempool, in order (a package's later
        // transactions may spend earlier ones); the real pool is untouched.
        let mut pool = self.mempool()?.lock().clone();
        self.chain(move |c| {
            let params = c.params().clone();
            let height = c.height() + 1;
            let ctx = crate::mempool::AcceptContext {
                height,
                median_time_past: i64::from(c.median_time_past(c.height()).unwrap_or(0)),
                script_flags: crate::chain::script::script_flags_for_height(height, &params),
                params: &params,
                time: crate::util::unix_time(),
            };
            txs.into_iter()
                .map(|tx| {
                    let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
                    match pool.accept(tx, c, &ctx) {
                        Ok(a) => MempoolAcceptResult {
                            txid,
                            wtxid,
                            allowed: true,
                            vsize: Some(a.vsize),
                            fee: Some(a.fee),
                            reject_reason: None,
                        },
                        Err(e) => MempoolAcceptResult {
                            txid,
                            wtxid,
                            allowed: false,
                            vsize: None,
                            fee: None,
                            reject_reason: Some(match &e {
                                crate::mempool::MempoolReject::MissingInputs(_) => {
                                    "missing-inputs".to_string()
                                }
                                other => other.reason().to_string(),
                            }),
                        },
                    }
                })
                .collect()
        })
    }

    fn generate_block(
        &self,
        script: ScriptBuf,
        txs: Vec<BlockTx>,
        submit: bool,
    ) -> RpcResult<GeneratedBlock> {
        let pool = self.mempool()?;
        let mut resolved = Vec::with_capacity(txs.len());
        for t in txs {
            match t {
                BlockTx::Raw(tx) => resolved.push(tx),
                BlockTx::Txid(id) => match pool.lock().get(&id).cloned() {
                    Some(tx) => resolved.push(tx),
                    None => {
                        return Err(RpcFailure::invalid_parameter(format!(
                            "Transaction {id} not in mempool."
                        )))
                    }
                },
            }
        }
        let block = self
            .chain(move |c| crate::mining::build_block_on_tip(c, &script, resolved))?
            .map_err(|e| RpcFailure::misc(e.to_string()))?;
        let hash = block.block_hash();
        if submit {
            self.node
                .submit_block(block)
                .map_err(|e| RpcFailure::new(-25, format!("TestBlockValidity failed: {e}")))?;
            Ok(GeneratedBlock { hash, block: None })
        } else {
            Ok(GeneratedBlock {
                hash,
                block: Some(block),
            })
        }
    }

    fn submit_block(&self, block: Block) -> RpcResult<Option<String>> {
        let hash = block.block_hash();
        let known = self.chain(move |c| c.entry(&hash).map(|e| e.status))?;
        if let Some(status) = known {
            if status.is_failed() {
                return Ok(Some("duplicate-invalid".into()));
            }
            if status.contains(BlockStatus::HAVE_DATA) {
                return Ok(Some("duplicate".into()));
            }
        }
        match self.node.submit_block(block) {
            Ok(events) => {
                if events
                    .iter()
                    .any(|e| matches!(e, ChainEvent::Connected { hash: h, .. } if *h == hash))
                {
                    Ok(None)
                } else {
                    Ok(Some("inconclusive".into()))
                }
            }
            Err(e) => Ok(Some(
                e.to_string()
                    .split(':')
                    .next()
                    .unwrap_or("rejected")
                    .to_string(),
            )),
        }
    }

    fn peer_info(&self) -> RpcResult<Vec<PeerInfo>> {
        let snap = self.snapshot()?;
        Ok(snap
            .peers
            .iter()
            .map(|p| PeerInfo {
                id: p.id,
                addr: p.addr,
                addrlocal: None,
                services: p.services,
                relaytxes: true,
                lastsend: p.last_send,
                lastrecv: p.last_recv,
                bytessent: p.bytes_sent,
                bytesrecv: p.bytes_recv,
                conntime: p.conn_time,
                pingtime: p.ping.map(|d| d.as_secs_f64()),
                minping: p.min_ping.map(|d| d.as_secs_f64()),
                version: p.version,
                subver: p.user_agent.clone(),
                inbound: p.direction == Direction::Inbound,
                startingheight: p.start_height,
                synced_headers: p.synced_headers,
                synced_blocks: p.synced_blocks,
                inflight: p.inflight.clone(),
                presynced_headers: p.presynced_headers,
                last_block: p.last_block,
                last_transaction: p.last_transaction,
                connection_type: match p.conn_type {
                    crate::peer::ConnectionType::Inbound => ConnectionType::Inbound,
                    crate::peer::ConnectionType::OutboundFullRelay => {
                        ConnectionType::OutboundFullRelay
                    }
                    crate::peer::ConnectionType::BlockRelayOnly => ConnectionType::BlockRelayOnly,
                    crate::peer::ConnectionType::Manual => ConnectionType::Manual,
                    crate::peer::ConnectionType::Feeler => ConnectionType::Feeler,
                    crate::peer::ConnectionType::AddrFetch => ConnectionType::AddrFetch,
                },
                addr_processed: p.addr_processed,
                addr_rate_limited: p.addr_rate_limited,
            })
            .collect())
    }

    fn net_totals(&self) -> RpcResult<NetTotals> {
        let t = self
            .node
            .net_totals()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))?;
        let timemillis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(NetTotals {
            totalbytesrecv: t.bytes_recv,
            totalbytessent: t.bytes_sent,
            timemillis,
        })
    }

    fn ping(&self) -> RpcResult<()> {
        self.node
            .ping_peers()
            .map(|_| ())
            .map_err(|e| RpcFailure::new(-28, e.to_string()))
    }

    fn connection_count(&self) -> RpcResult<u32> {
        Ok(self.snapshot()?.peers.len() as u32)
    }

    fn network_info(&self) -> RpcResult<NetworkInfo> {
        let snap = self.snapshot()?;
        let inbound = snap
            .peers
            .iter()
            .filter(|p| p.direction == Direction::Inbound)
            .count() as u32;
        let info = self.mempool()?.lock().info();
        Ok(NetworkInfo {
            version: super::net::CLIENT_VERSION,
            subversion: format!("/strand:{}/", env!("CARGO_PKG_VERSION")),
            protocolversion: crate::peer::conn::PROTOCOL_VERSION,
            localservices: crate::peer::local_services_for(
                self.chain(|c| c.prune_mode().is_prune_mode())?,
            ),
            localrelay: true,
            networkactive: true,
            connections_in: inbound,
            connections_out: snap.peers.len() as u32 - inbound,
            relayfee: fee_amount(info.minrelaytxfee),
            incrementalfee: fee_amount(info.incrementalrelayfee),
            localaddresses: Vec::new(),
            warnings: Vec::new(),
        })
    }

    fn disconnect_node(&self, target: DisconnectTarget) -> RpcResult<()> {
        let snap = self.snapshot()?;
        let id = match target {
            DisconnectTarget::Id(id) => Some(id),
            DisconnectTarget::Address(a) => snap
                .peers
                .iter()
                .find(|p| p.addr.to_string() == a)
                .map(|p| p.id),
        };
        match id {
            Some(id) if self.node.disconnect_peer(id) => Ok(()),
            _ => Err(RpcFailure::new(-29, "Node not found in connected nodes")),
        }
    }

    fn generate_to_script(
        &self,
        count: u32,
        script: ScriptBuf,
        _max_tries: u64,
    ) -> RpcResult<Vec<BlockHash>> {
        self.node
            .generate(count, script, Vec::new())
            .map_err(|e| RpcFailure::misc(e.to_string()))
    }

    fn add_node(&self, node: String, command: AddNodeCommand) -> RpcResult<()> {
        let addr = crate::config::parse_target("addnode", &node, self.network.default_p2p_port())
            .map_err(|e| RpcFailure::invalid_parameter(e.to_string()))?;
        super::node_data::check_added(&self.added_node_info()?, &addr.to_string(), command)?;
        let cmd = match command {
            AddNodeCommand::Add => crate::connmgr::ConnCmd::Add(addr),
            AddNodeCommand::Remove => crate::connmgr::ConnCmd::Remove(addr),
            AddNodeCommand::OneTry => crate::connmgr::ConnCmd::OneTry(addr),
        };
        self.node
            .add_node(cmd)
            .map_err(|e| RpcFailure::new(-28, e.to_string()))
    }

    fn added_node_info(&self) -> RpcResult<Vec<crate::connmgr::AddedNodeInfo>> {
        self.node
            .added_node_info()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))
    }

    fn set_ban(&self, subnet: crate::netaddr::SubNet, command: BanCommand) -> RpcResult<()> {
        match command {
            BanCommand::Add { duration, until } => {
                let until = until.unwrap_or_else(|| crate::util::unix_time() + duration.unwrap_or(24 * 3600));
                match self.node.ban(subnet, until) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(RpcFailure::new(-23, "Error: IP/Subnet already banned")),
                    Err(e) => Err(RpcFailure::new(-28, e.to_string())),
                }
            }
            BanCommand::Remove => match self.node.unban(&subnet) {
                Ok(true) => Ok(()),
                Ok(false) => Err(RpcFailure::new(-30, "Error: Unban failed. Requested address/subnet was not previously manually banned.")),
                Err(e) => Err(RpcFailure::new(-28, e.to_string())),
            },
        }
    }

    fn node_addresses(
        &self,
        count: usize,
        network: Option<crate::netaddr::NetClass>,
    ) -> RpcResult<Vec<NodeAddress>> {
        let am = self
            .node
            .addrman()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))?;
        use crate::addrtext;
        let lb = am.loopback_routable();
        Ok(am
            .get_addr(count, 0, network)
            .into_iter()
            .map(|m| NodeAddress {
                time: m.time,
                services: m.services,
                address: addrtext::addr_to_string(&m.addr),
                port: m.port,
                network: addrtext::network_name(crate::netaddr::net_class(&m.addr, lb)),
            })
            .collect())
    }

    fn addrman_info(&self) -> RpcResult<Vec<AddrManCounts>> {
        let am = self
            .node
            .addrman()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))?;
        use crate::addrtext::network_name;
        use crate::netaddr::NetClass;
        let by_net = am.size_by_network();
        let mut out: Vec<AddrManCounts> = [
            NetClass::Ipv4,
            NetClass::Ipv6,
            NetClass::Onion,
            NetClass::I2p,
            NetClass::Cjdns,
        ]
        .into_iter()
        .map(|net| {
            let (new, tried) = by_net.get(&net).copied().unwrap_or((0, 0));
            AddrManCounts {
                network: network_name(net),
                new,
                tried,
            }
        })
        .collect();
        let (new, tried) = am.size_new_tried();
        out.push(AddrManCounts {
            network: "all_networks",
            new,
            tried,
        });
        Ok(out)
    }

    fn add_peer_address(
        &self,
        addr: bitcoin::p2p::address::AddrV2,
        port: u16,
        tried: bool,
    ) -> RpcResult<Option<&'static str>> {
        let am = self
            .node
            .addrman()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))?;
        let now = u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX);
        // Core: the address is its own source, as if it announced itself,
        // with NODE_NETWORK | NODE_WITNESS and the current time.
        let msg = bitcoin::p2p::address::AddrV2Message {
            time: now,
            services: bitcoin::p2p::ServiceFlags::NETWORK | bitcoin::p2p::ServiceFlags::WITNESS,
            addr: addr.clone(),
            port,
        };
        if am.add(&[msg], &addr, 0) == 0 {
            return Ok(Some("failed-adding-to-new"));
        }
        if tried && !am.good_checked(&addr, port, now) {
            return Ok(Some("failed-adding-to-tried"));
        }
        Ok(None)
    }

    fn list_banned(&self) -> RpcResult<Vec<BannedEntry>> {
        Ok(self
            .node
            .banned()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))?
            .into_iter()
            .map(|(subnet, ban_created, banned_until)| BannedEntry {
                subnet,
                ban_created,
                banned_until,
            })
            .collect())
    }

    fn invalidate_block(&self, hash: BlockHash) -> RpcResult<()> {
        self.node.invalidate_block(hash).map_err(map_chain_op)
    }

    fn reconsider_block(&self, hash: BlockHash) -> RpcResult<()> {
        self.node.reconsider_block(hash).map_err(map_chain_op)
    }

    fn uptime(&self) -> RpcResult<u64> {
        Ok(self.started.elapsed().as_secs())
    }

    fn prune_blockchain(&self, height: i64) -> RpcResult<i64> {
        self.chain(move |c| c.prune_blockchain(height))?
            .map_err(|e| RpcFailure::new(e.code(), e.to_string()))
    }

    fn sync_state(&self) -> RpcResult<serde_json::Value> {
        let s = self.snapshot()?;
        Ok(serde_json::json!({
            "sync_peer": s.sync_peer,
            "candidates": s.candidates,
            "initial_block_download": s.initial_block_download,
            "blocks": s.best_height,
            "headers": s.best_header_height,
            "bestblockhash": s.tip.to_string(),
            "connections": s.connections,
            "peers": s.peers.iter().map(|p| serde_json::json!({
                "id": p.id,
                "addr": p.addr.to_string(),
                "inbound": p.direction == Direction::Inbound,
                "state": format!("{:?}", p.state).to_lowercase(),
                "startingheight": p.start_height,
            })).collect::<Vec<_>>(),
            "sync_known": s.sync_known,
            "anomalies": {
                "done_peer_unknown": s.anomalies.done_peer_unknown,
                "new_peer_after_done": s.anomalies.new_peer_after_done,
            },
            "counters": {
                "new_peer_closed": s.counters.new_peer_closed,
                "message_unknown_peer": s.counters.message_unknown_peer,
                "stalls": s.counters.stalls,
                "new_peer_sent": s.handler.new_peer_sent,
                "done_peer_sent": s.handler.done_peer_sent,
                "rejected": s.handler.rejected,
                "done_without_add": s.handler.done_without_add,
            },
            "recent_rejects": s.recent_rejects.iter().map(|(h, r)| serde_json::json!({"hash": h.to_string(), "reason": r})).collect::<Vec<_>>(),
            "uptime": self.started.elapsed().as_secs(),
            "time": crate::util::unix_time(),
        }))
    }

    fn tx_spent_outputs(
        &self,
        tx: &Transaction,
        blockhash: Option<BlockHash>,
    ) -> RpcResult<Option<Vec<SpentOutput>>> {
        if tx.is_coinbase() {
            return Ok(Some(Vec::new()));
        }
        let tx = tx.clone();
        if let Some(hash) = blockhash {
            return self.chain(move |c| super::node_data::spent_in_block(c, &tx, &hash));
        }
        let known: Vec<Option<bitcoin::TxOut>> = {
            let pool = self.mempool()?;
            let pool = pool.lock();
            tx.input
                .iter()
                .map(|i| {
                    pool.get(&i.previous_output.txid)
                        .and_then(|p| p.output.get(i.previous_output.vout as usize).cloned())
                })
                .collect()
        };
        self.chain(move |c| super::node_data::spent_from_utxos(c, &tx, known))
    }

    fn utxo_set_info(&self, hash_type: UtxoHashType) -> RpcResult<UtxoSetInfo> {
        self.chain(move |c| super::node_data::utxo_set_info(c, hash_type))?
    }

    fn scan_utxos(&self, scripts: Vec<ScriptBuf>) -> RpcResult<UtxoScan> {
        self.chain(move |c| super::node_data::scan_utxos(c, scripts))?
    }

    fn tx_out_proof(
        &self,
        txids: Vec<Txid>,
        blockhash: Option<BlockHash>,
    ) -> RpcResult<bitcoin::MerkleBlock> {
        let hinted = match (blockhash, txids.first()) {
            (None, Some(t)) => self.tx_block_hash(*t)?,
            _ => None,
        };
        self.chain(move |c| super::node_data::tx_out_proof(c, txids, blockhash, hinted))?
    }

    fn chain_tx_count(&self, hash: BlockHash) -> RpcResult<Option<u64>> {
        self.chain(move |c| super::node_data::chain_tx_count(c, hash))
    }

    fn logging(&self, include: Vec<String>, exclude: Vec<String>) -> RpcResult<Vec<String>> {
        Ok(super::node_data::set_log_categories(include, exclude))
    }

    fn log_path(&self) -> RpcResult<String> {
        self.chain(super::node_data::log_path)
    }
    fn block_template(&self) -> RpcResult<BlockTemplateInfo> {
        // Core checks peers and initial download on mainnet only
        // (`IsTestChain`).
        if self.network == crate::Network::Mainnet {
            let snap = self.snapshot()?;
            if snap.peers.is_empty() {
                return Err(RpcFailure::new(-9, "strand is not connected!"));
            }
            if snap.initial_block_download {
                return Err(RpcFailure::new(
                    -10,
                    "strand is in initial sync and waiting for blocks...",
                ));
            }
        }
        let now = u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX);
        let (next, challenge) = self.chain(move |c| {
            (
                crate::mining::next_block_on_tip(c, now),
                c.params().signet_challenge.clone(),
            )
        })?;
        let next = next.map_err(|e| RpcFailure::misc(e.to_string()))?;
        let pool = self.mempool()?;
        let (transactions, updates) = {
            let pool = pool.lock();
            let txs = pool.select_for_block(
                crate::chain::check::MAX_BLOCK_WEIGHT
                    - crate::mining::DEFAULT_BLOCK_RESERVED_WEIGHT,
                crate::mining::MAX_BLOCK_SIGOPS_COST - crate::mining::COINBASE_SIGOPS_RESERVED,
            );
            (txs, pool.transactions_updated())
        };
        let fees: Amount = transactions.iter().map(|t| t.fee).sum();
        let txs: Vec<Transaction> = transactions.iter().map(|t| t.tx.clone()).collect();
        let commitment = crate::mining::witness_commitment(&txs);
        Ok(BlockTemplateInfo {
            coinbasevalue: next.subsidy + fees,
            next,
            version: crate::mining::TEMPLATE_VERSION,
            transactions,
            default_witness_commitment: crate::mining::witness_commitment_script(&commitment),
            transactions_updated: updates,
            signet_challenge: challenge,
        })
    }

    fn mining_info(&self) -> RpcResult<MiningInfo> {
        let now = u32::try_from(crate::util::unix_time()).unwrap_or(u32::MAX);
        let chain = chain_name(self.network);
        let pooledtx = self.mempool()?.lock().len() as u64;
        self.chain(move |c| {
            let tip = c.entry(&c.tip())?.clone();
            let next = crate::mining::next_block_on_tip(c, now).ok()?;
            Some(MiningInfo {
                blocks: c.height(),
                bits: tip.header.bits,
                difficulty: tip.header.difficulty_float(),
                networkhashps: network_hash_ps(c, 120),
                pooledtx,
                chain,
                next,
                signet_challenge: c.params().signet_challenge.clone(),
            })
        })?
        .ok_or_else(|| RpcFailure::misc("tip not in the block index"))
    }

    fn submit_header(&self, header: bitcoin::block::Header) -> RpcResult<()> {
        use crate::chain::state::RejectError;
        self.chain(move |c| {
            if c.entry(&header.prev_blockhash).is_none() {
                return Err(RpcFailure::new(
                    -25,
                    format!(
                        "Must submit previous header ({}) first",
                        header.prev_blockhash
                    ),
                ));
            }
            match c.process_headers(&[header]) {
                Ok(_) => Ok(()),
                Err(RejectError::Invalid(e)) => Err(RpcFailure::new(-25, e.reason().to_string())),
                Err(e) => Err(RpcFailure::new(-25, e.to_string())),
            }
        })?
    }

    fn prioritise_transaction(&self, txid: Txid, delta: i64) -> RpcResult<()> {
        self.mempool()?.lock().prioritise_transaction(txid, delta);
        Ok(())
    }

    fn prioritised_transactions(&self) -> RpcResult<Vec<(Txid, i64, Option<i64>)>> {
        let pool = self.mempool()?;
        let pool = pool.lock();
        Ok(pool
            .prioritised()
            .into_iter()
            .map(|(t, d, in_pool)| (t, d, in_pool.then(|| pool.modified_fee(&t))))
            .collect())
    }

    fn estimate_smart_fee(&self, target: u32) -> RpcResult<(Option<Amount>, u32)> {
        let pool = self.mempool()?;
        let mut pool = pool.lock();
        let (rate, blocks) = pool.fees().estimate_smart(target);
        // Core raises the estimate to the mempool and relay minimums.
        let floor = pool
            .min_fee_rate(crate::util::unix_time())
            .max(pool.config().min_relay_feerate);
        Ok((rate.map(|r| fee_amount(r.max(floor))), blocks))
    }

    fn estimate_raw_fee(
        &self,
        target: u32,
        threshold: f64,
    ) -> RpcResult<crate::mempool::fees::RawEstimate> {
        Ok(self
            .mempool()?
            .lock()
            .fees()
            .estimate_raw(target, threshold))
    }

    fn save_mempool(&self) -> RpcResult<std::path::PathBuf> {
        let dir = self
            .node
            .net_dir()
            .map_err(|e| RpcFailure::new(-28, e.to_string()))?;
        crate::mempool::persist::save_mempool(&self.mempool()?, &dir)
            .map_err(|e| RpcFailure::misc(format!("Unable to dump mempool to disk: {e}")))
    }
}

/// Core's chain names.
fn chain_name(n: crate::Network) -> String {
    match n {
        crate::Network::Mainnet => "main",
        crate::Network::Testnet => "test",
        crate::Network::Signet => "signet",
        crate::Network::Testnet4 => "testnet4",
        crate::Network::Regtest => "regtest",
    }
    .to_string()
}

/// Core's `GetNetworkHashPS`: work done over the last `lookup` blocks
/// divided by the time they took (0 when it cannot tell).
fn network_hash_ps(c: &crate::chain::state::ChainState, lookup: u32) -> f64 {
    let tip_height = c.height();
    let lookup = lookup.min(tip_height);
    if lookup == 0 {
        return 0.0;
    }
    let entry = |h: u32| c.active_hash(h).and_then(|hash| c.entry(&hash));
    let (Some(tip), Some(start)) = (entry(tip_height), entry(tip_height - lookup)) else {
        return 0.0;
    };
    let (mut min_time, mut max_time) = (u32::MAX, 0u32);
    for h in tip_height - lookup..=tip_height {
        if let Some(e) = entry(h) {
            min_time = min_time.min(e.header.time);
            max_time = max_time.max(e.header.time);
        }
    }
    if max_time <= min_time {
        return 0.0;
    }
    let work = (tip.chain_work - start.chain_work).log2().exp2();
    work / f64::from(max_time - min_time)
}
