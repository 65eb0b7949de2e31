//! The method table: for each RPC its category, arguments, help and
//! handler, grouped by category as Bitcoin Core does (handlers in
//! [`super::blockchain`], [`super::rawtransaction`], [`super::mempool`],
//! [`super::mining`], [`super::net`], [`super::control`]; the argument model
//! and parsers in [`super::util`]), the `help` method, and
//! [`Dispatcher::execute`]: parameter checking with Core's errors (arity →
//! `-1` with the help text, wrong JSON type → `-3 Wrong type passed`, named
//! parameters → positions) and the call of the handler. It owns no thread:
//! the RPC worker threads call [`Dispatcher::execute`].

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::backend::RpcResult;
use super::blockchain::*;
use super::control::*;
use super::fees::*;
use super::mempool::*;
use super::mining::*;
pub use super::net::service_names;
use super::net::*;
use super::protocol::{codes, RpcFailure};
use super::rawtransaction::*;
pub use super::rawtransaction::{
    descriptor_checksum, script_asm, script_from_descriptor, script_pubkey_json, script_type,
};
pub use super::util::Dispatcher;
use super::util::*;
pub use super::util::{amount_json, parse_amount};

const HASH: &str = "The block hash";

static METHODS: &[Method] = &[
    // == Blockchain ==
    Method {
        name: "getbestblockhash",
        category: "blockchain",
        args: &[],
        desc: "Returns the hash of the best (tip) block in the most-work fully-validated chain.",
        result: "\"hex\"    (string) the block hash, hex-encoded",
        handler: h_getbestblockhash,
    },
    Method {
        name: "getblock",
        category: "blockchain",
        args: &[
            req("blockhash", Ty::Hex, HASH),
            opt("verbosity", Ty::NumOrBool, "1", "0 for hex-encoded data, 1 for a JSON object, 2 for JSON object with transaction data, and 3 for JSON object with transaction data including prevout information for inputs"),
        ],
        desc: "If verbosity is 0, returns a string that is serialized, hex-encoded data for block 'hash'.\nIf verbosity is 1, returns an Object with information about block <hash>.\nIf verbosity is 2, returns an Object with information about block <hash> and information about each transaction.\nIf verbosity is 3, returns an Object with information about block <hash> and information about each transaction, including prevout information for inputs (only for unpruned blocks in the current best chain).",
        result: "(string or json object) the block",
        handler: h_getblock,
    },
    Method {
        name: "getblockchaininfo",
        category: "blockchain",
        args: &[],
        desc: "Returns an object containing various state info regarding blockchain processing.",
        result: "{ \"chain\", \"blocks\", \"headers\", \"bestblockhash\", \"difficulty\", \"time\", \"mediantime\", \"verificationprogress\", \"initialblockdownload\", \"chainwork\", \"size_on_disk\", \"pruned\", \"warnings\" }",
        handler: h_getblockchaininfo,
    },
    Method {
        name: "getblockcount",
        category: "blockchain",
        args: &[],
        desc: "Returns the height of the most-work fully-validated chain.\nThe genesis block has height 0.",
        result: "n    (numeric) The current block count",
        handler: h_getblockcount,
    },
    Method {
        name: "getblockhash",
        category: "blockchain",
        args: &[req("height", Ty::Num, "The height index")],
        desc: "Returns hash of block in best-block-chain at height provided.",
        result: "\"hex\"    (string) The block hash",
        handler: h_getblockhash,
    },
    Method {
        name: "getblockheader",
        category: "blockchain",
        args: &[
            req("blockhash", Ty::Hex, HASH),
            opt("verbose", Ty::Bool, "true", "true for a json object, false for the hex-encoded data"),
        ],
        desc: "If verbose is false, returns a string that is serialized, hex-encoded data for blockheader 'hash'.\nIf verbose is true, returns an Object with information about blockheader <hash>.",
        result: "(json object or string) the header",
        handler: h_getblockheader,
    },
    Method {
        name: "getchaintips",
        category: "blockchain",
        args: &[],
        desc: "Return information about all known tips in the block tree, including the main chain as well as orphaned branches.",
        result: "[ { \"height\", \"hash\", \"branchlen\", \"status\" }, ... ]",
        handler: h_getchaintips,
    },
    Method {
        name: "getdifficulty",
        category: "blockchain",
        args: &[],
        desc: "Returns the proof-of-work difficulty as a multiple of the minimum difficulty.",
        result: "n    (numeric) the proof-of-work difficulty as a multiple of the minimum difficulty.",
        handler: h_getdifficulty,
    },
    Method {
        name: "getmempoolentry",
        category: "blockchain",
        args: &[req("txid", Ty::Hex, "The transaction id (must be in mempool)")],
        desc: "Returns mempool data for given transaction",
        result: "{ \"vsize\", \"weight\", \"time\", \"height\", \"descendantcount\", ..., \"fees\": {...}, \"depends\", \"spentby\", \"bip125-replaceable\", \"unbroadcast\" }",
        handler: h_getmempoolentry,
    },
    Method {
        name: "getmempoolinfo",
        category: "blockchain",
        args: &[],
        desc: "Returns details on the active state of the TX memory pool.",
        result: "{ \"loaded\", \"size\", \"bytes\", \"usage\", \"total_fee\", \"maxmempool\", \"mempoolminfee\", \"minrelaytxfee\", \"incrementalrelayfee\", \"unbroadcastcount\", \"fullrbf\" }",
        handler: h_getmempoolinfo,
    },
    Method {
        name: "getrawmempool",
        category: "blockchain",
        args: &[opt("verbose", Ty::Bool, "false", "True for a json object, false for array of transaction ids")],
        desc: "Returns all transaction ids in memory pool as a json array of string transaction ids.",
        result: "[\"hex\", ...] or { \"txid\": {...}, ... }",
        handler: h_getrawmempool,
    },
    Method {
        name: "gettxout",
        category: "blockchain",
        args: &[
            req("txid", Ty::Hex, "The transaction id"),
            req("n", Ty::Num, "vout number"),
            opt("include_mempool", Ty::Bool, "true", "Whether to include the mempool. Note that an unspent output that is spent in the mempool won't appear."),
        ],
        desc: "Returns details about an unspent transaction output.",
        result: "null or { \"bestblock\", \"confirmations\", \"value\", \"scriptPubKey\": {...}, \"coinbase\" }",
        handler: h_gettxout,
    },
    Method {
        name: "invalidateblock",
        category: "blockchain",
        args: &[req("blockhash", Ty::Hex, "the hash of the block to mark as invalid")],
        desc: "Permanently marks a block as invalid, as if it violated a consensus rule.",
        result: "null",
        handler: h_invalidateblock,
    },
    Method {
        name: "reconsiderblock",
        category: "blockchain",
        args: &[req("blockhash", Ty::Hex, "the hash of the block to reconsider")],
        desc: "Removes invalidity status of a block, its ancestors and its descendants, reconsider them for activation.\nThis can be used to undo the effects of invalidateblock.",
        result: "null",
        handler: h_reconsiderblock,
    },
    // == Control ==
    Method {
        name: "help",
        category: "control",
        args: &[opt("command", Ty::Str, "all commands", "The command to get help on")],
        desc: "List all commands, or get help for a specified command.",
        result: "\"str\"    (string) The help text",
        handler: h_help,
    },
    Method {
        name: "stop",
        category: "control",
        args: &[],
        desc: "Request a graceful shutdown of strand.",
        result: "\"str\"    (string) A string with the content 'strand stopping'",
        handler: h_stop,
    },
    Method {
        name: "uptime",
        category: "control",
        args: &[],
        desc: "Returns the total uptime of the server.",
        result: "ttt    (numeric) The number of seconds that the server has been running",
        handler: h_uptime,
    },
    // == Generating ==
    Method {
        name: "generateblock",
        category: "generating",
        args: &[
            req("output", Ty::Str, "The address or descriptor to send the newly generated bitcoin to."),
            req("transactions", Ty::Arr, "An array of hex strings which are either txids or raw transactions.\nTxids must reference transactions currently in the mempool.\nAll transactions must be valid and in valid order, otherwise the block will be rejected."),
            opt("submit", Ty::Bool, "true", "Whether to submit the block before the RPC call returns or to return it as hex."),
        ],
        desc: "Mine a set of ordered transactions to a specified address or descriptor and return the block hash.",
        result: "{ \"hash\", \"hex\" (if submit=false) }",
        handler: h_generateblock,
    },
    Method {
        name: "generatetoaddress",
        category: "generating",
        args: &[
            req("nblocks", Ty::Num, "How many blocks are generated."),
            req("address", Ty::Str, "The address to send the newly generated bitcoin to."),
            opt("maxtries", Ty::Num, "1000000", "How many iterations to try."),
        ],
        desc: "Mine to a specified address and return the block hashes.",
        result: "[\"hex\", ...]    hashes of blocks generated",
        handler: h_generatetoaddress,
    },
    Method {
        name: "generatetodescriptor",
        category: "generating",
        args: &[
            req("num_blocks", Ty::Num, "How many blocks are generated."),
            req("descriptor", Ty::Str, "The descriptor to send the newly generated bitcoin to (strand: addr(...) or raw(...))."),
            opt("maxtries", Ty::Num, "1000000", "How many iterations to try."),
        ],
        desc: "Mine to a specified descriptor and return the block hashes.",
        result: "[\"hex\", ...]    hashes of blocks generated",
        handler: h_generatetodescriptor,
    },
    // == Mining ==
    Method {
        name: "submitblock",
        category: "mining",
        args: &[
            req("hexdata", Ty::Hex, "the hex-encoded block data to submit"),
            opt("dummy", Ty::Str, "ignored", "dummy value, for compatibility with BIP22. This value is ignored."),
        ],
        desc: "Attempts to submit new block to network.",
        result: "null or \"str\" (the reject reason)",
        handler: h_submitblock,
    },
    // == Network ==
    Method {
        name: "addpeeraddress",
        category: "hidden",
        args: &[
            req("address", Ty::Str, "The IP address of the peer"),
            req("port", Ty::Num, "The port of the peer"),
            opt("tried", Ty::Bool, "false", "If true, attempt to add the peer to the tried addresses table"),
        ],
        desc: "Add the address of a potential peer to an address manager table. This RPC is for testing only.",
        result: "{ \"success\": bool, \"error\": \"str\" (optional) }",
        handler: h_addpeeraddress,
    },
    Method {
        name: "addnode",
        category: "network",
        args: &[
            req("node", Ty::Str, "The address of the peer to connect to"),
            req("command", Ty::Str, "'add' to add a node to the list, 'remove' to remove a node from the list, 'onetry' to try a connection to the node once"),
        ],
        desc: "Attempts to add or remove a node from the addnode list.\nOr try a connection to a node once.",
        result: "null",
        handler: h_addnode,
    },
    Method {
        name: "disconnectnode",
        category: "network",
        args: &[
            opt("address", Ty::Str, "fallback to nodeid", "The IP address/port of the node"),
            opt("nodeid", Ty::Num, "fallback to address", "The node ID (see getpeerinfo for node IDs)"),
        ],
        desc: "Immediately disconnects from the specified peer node.\n\nStrictly one out of 'address' and 'nodeid' can be provided to identify the node.",
        result: "null",
        handler: h_disconnectnode,
    },
    Method {
        name: "getaddednodeinfo",
        category: "network",
        args: &[
            opt("node", Ty::Str, "all nodes", "If provided, return information about this specific node, otherwise all nodes are returned."),
        ],
        desc: "Returns information about the given added node, or all added nodes\n(note that onetry addnodes are not listed here)",
        result: "[ { \"addednode\", \"connected\", \"addresses\": [ { \"address\", \"connected\" }, ... ] }, ... ]",
        handler: h_getaddednodeinfo,
    },
    Method {
        name: "getconnectioncount",
        category: "network",
        args: &[],
        desc: "Returns the number of connections to other nodes.",
        result: "n    (numeric) The connection count",
        handler: h_getconnectioncount,
    },
    Method {
        name: "getnettotals",
        category: "network",
        args: &[],
        desc: "Returns information about network traffic, including bytes in, bytes out,\nand current system time.",
        result: "{ \"totalbytesrecv\", \"totalbytessent\", \"timemillis\", \"uploadtarget\": { \"timeframe\", \"target\", \"target_reached\", \"serve_historical_blocks\", \"bytes_left_in_cycle\", \"time_left_in_cycle\" } }",
        handler: h_getnettotals,
    },
    Method {
        name: "getaddrmaninfo",
        category: "network",
        args: &[],
        desc: "Provides information about the node's address manager by returning the number of addresses in the `new` and `tried` tables and their sum for all networks.",
        result: "{ \"ipv4\": { \"new\", \"tried\", \"total\" }, \"ipv6\", \"onion\", \"i2p\", \"cjdns\", \"all_networks\" }",
        handler: h_getaddrmaninfo,
    },
    Method {
        name: "getnodeaddresses",
        category: "network",
        args: &[
            opt("count", Ty::Num, "1", "The maximum number of addresses to return. Specify 0 to return all known addresses."),
            opt("network", Ty::Str, "all networks", "Return only addresses of the specified network. Can be one of: ipv4, ipv6, onion, i2p, cjdns."),
        ],
        desc: "Return known addresses, after filtering for quality and recency.\nThese can potentially be used to find new peers in the network.\nThe total number of addresses known to the node may be higher.",
        result: "[ { \"time\", \"services\", \"address\", \"port\", \"network\" }, ... ]",
        handler: h_getnodeaddresses,
    },
    Method {
        name: "getnetworkinfo",
        category: "network",
        args: &[],
        desc: "Returns an object containing various state info regarding P2P networking.",
        result: "{ \"version\", \"subversion\", \"protocolversion\", \"localservices\", \"localservicesnames\", \"localrelay\", \"timeoffset\", \"networkactive\", \"connections\", \"connections_in\", \"connections_out\", \"networks\", \"relayfee\", \"incrementalfee\", \"localaddresses\", \"warnings\" }",
        handler: h_getnetworkinfo,
    },
    Method {
        name: "getpeerinfo",
        category: "network",
        args: &[],
        desc: "Returns data about each connected network peer as a json array of objects.",
        result: "[ { \"id\", \"addr\", ... }, ... ]",
        handler: h_getpeerinfo,
    },
    Method {
        name: "listbanned",
        category: "network",
        args: &[],
        desc: "List all manually banned IPs/Subnets.",
        result: "[ { \"address\", \"ban_created\", \"banned_until\", \"ban_duration\", \"time_remaining\" }, ... ]",
        handler: h_listbanned,
    },
    Method {
        name: "ping",
        category: "network",
        args: &[],
        desc: "Requests that a ping be sent to all other nodes, to measure ping time.\nResults are provided in getpeerinfo, pingtime and pingwait fields are decimal seconds.\nPing command is handled in queue with all other commands, so it measures processing backlog, not just network ping.",
        result: "null",
        handler: h_ping,
    },
    Method {
        name: "setban",
        category: "network",
        args: &[
            req("subnet", Ty::Str, "The IP/Subnet (see getpeerinfo for nodes IP) with an optional netmask (default is /32 = single IP)"),
            req("command", Ty::Str, "'add' to add an IP/Subnet to the list, 'remove' to remove an IP/Subnet from the list"),
            opt("bantime", Ty::Num, "0", "time in seconds how long (or until when if [absolute] is set) the IP is banned (0 or empty means using the default time of 24h which can also be overwritten by the -bantime startup argument)"),
            opt("absolute", Ty::Bool, "false", "If set, the bantime must be an absolute timestamp expressed in UNIX epoch time"),
        ],
        desc: "Attempts to add or remove an IP/Subnet from the banned list.",
        result: "null",
        handler: h_setban,
    },
    // == Rawtransactions ==
    Method {
        name: "getrawtransaction",
        category: "rawtransactions",
        args: &[
            req("txid", Ty::Hex, "The transaction id"),
            opt("verbosity", Ty::NumOrBool, "0", "0 for hex-encoded data, 1 for a JSON object, and 2 for JSON object with fee and prevout"),
            opt("blockhash", Ty::Hex, "", "The block in which to look for the transaction"),
        ],
        desc: "By default, this call only returns a transaction if it is in the mempool. strand looks in the chain when it can.\nIf verbosity is 0 returns a string that is serialized, hex-encoded data for 'txid'.\nIf verbosity is 1 returns a JSON Object with information about 'txid'.",
        result: "\"str\" or { \"in_active_chain\", \"txid\", \"hash\", ..., \"hex\", \"blockhash\", \"confirmations\", \"time\", \"blocktime\" }",
        handler: h_getrawtransaction,
    },
    Method {
        name: "sendrawtransaction",
        category: "rawtransactions",
        args: &[
            req("hexstring", Ty::Hex, "The hex string of the raw transaction"),
            opt("maxfeerate", Ty::Amount, "0.10", "Reject transactions whose fee rate is higher than the specified value, expressed in BTC/kvB.\nSet to 0 to accept any fee rate."),
        ],
        desc: "Submit a raw transaction (serialized, hex-encoded) to local node and network.",
        result: "\"hex\"    (string) The transaction hash in hex",
        handler: h_sendrawtransaction,
    },
    Method {
        name: "testmempoolaccept",
        category: "rawtransactions",
        args: &[
            req("rawtxs", Ty::Arr, "An array of hex strings of raw transactions."),
            opt("maxfeerate", Ty::Amount, "0.10", "Reject transactions whose fee rate is higher than the specified value, expressed in BTC/kvB"),
        ],
        desc: "Returns result of mempool acceptance tests indicating if raw transaction(s) (serialized, hex-encoded) would be accepted by mempool.",
        result: "[ { \"txid\", \"wtxid\", \"allowed\", \"vsize\", \"fees\": { \"base\" }, \"reject-reason\" }, ... ]",
        handler: h_testmempoolaccept,
    },
    // == Strand ==
    Method {
        name: "getsyncstate",
        category: "strand",
        args: &[],
        desc: "Returns strand's sync-manager view: sync peer, candidates, anomaly counters.",
        result: "{ ... }",
        handler: h_getsyncstate,
    },
    // == Transactions, chain data and node (issue 13) ==
    Method {
        name: "createrawtransaction",
        category: "rawtransactions",
        args: &[
            req("inputs", Ty::Arr, "The inputs: [{\"txid\": \"hex\", \"vout\": n, \"sequence\": n}, ...]"),
            req("outputs", Ty::ObjOrArr, "The outputs specified as key-value pairs: {\"address\": amount, \"data\": \"hex\"} or an array of one-key objects."),
            opt("locktime", Ty::Num, "0", "Raw locktime. Non-0 value also locktime-activates inputs"),
            opt("replaceable", Ty::Bool, "true", "Marks this transaction as BIP125-replaceable.\nAllows this transaction to be replaced by a transaction with higher fees. If provided, it is an error if explicit sequence numbers are incompatible."),
            opt("version", Ty::Num, "2", "Transaction version"),
        ],
        desc: "Create a transaction spending the given inputs and creating new outputs.\nOutputs can be addresses or data.\nReturns hex-encoded raw transaction.\nNote that the transaction's inputs are not signed, and\nit is not stored in the wallet or transmitted to the network.",
        result: "\"hex\"    (string) hex string of the transaction",
        handler: h_createrawtransaction,
    },
    Method {
        name: "decoderawtransaction",
        category: "rawtransactions",
        args: &[
            req("hexstring", Ty::Hex, "The transaction hex string"),
            opt("iswitness", Ty::Bool, "depends on heuristic tests", "Whether the transaction hex is a serialized witness transaction.\nIf iswitness is not present, heuristic tests will be used in decoding.\nIf true, only witness deserialization will be tried.\nIf false, only non-witness deserialization will be tried.\nThis boolean should reflect whether the transaction has inputs\n(e.g. fully valid, or on-chain transactions), if known by the caller."),
        ],
        desc: "Return a JSON object representing the serialized, hex-encoded transaction.",
        result: "{ \"txid\", \"hash\", \"size\", \"vsize\", \"weight\", \"version\", \"locktime\", \"vin\": [...], \"vout\": [...] }",
        handler: h_decoderawtransaction,
    },
    Method {
        name: "decodescript",
        category: "rawtransactions",
        args: &[req("hexstring", Ty::Hex, "the hex-encoded script")],
        desc: "Decode a hex-encoded script.",
        result: "{ \"asm\", \"desc\", \"type\", \"address\", \"p2sh\", \"segwit\": { \"asm\", \"desc\", \"hex\", \"address\", \"type\", \"p2sh-segwit\" } }",
        handler: h_decodescript,
    },
    Method {
        name: "gettxoutsetinfo",
        category: "blockchain",
        args: &[
            opt("hash_type", Ty::Str, "hash_serialized_3", "Which UTXO set hash should be calculated. Options: 'hash_serialized_3' (the legacy algorithm), 'muhash', 'none'."),
            opt("hash_or_height", Ty::NumOrStr, "", "The block hash or height of the target height (only available with coinstatsindex)."),
            opt("use_index", Ty::Bool, "true", "Use coinstatsindex, if available."),
        ],
        desc: "Returns statistics about the unspent transaction output set.\nNote this call may take some time.",
        result: "{ \"height\", \"bestblock\", \"txouts\", \"bogosize\", \"hash_serialized_3\" or \"muhash\", \"transactions\", \"disk_size\", \"total_amount\" }",
        handler: h_gettxoutsetinfo,
    },
    Method {
        name: "scantxoutset",
        category: "blockchain",
        args: &[
            req("action", Ty::Str, "The action to execute\n\"start\" for starting a scan\n\"abort\" for aborting the current scan (returns true when abort was successful)\n\"status\" for progress report (in %) of the current scan"),
            opt("scanobjects", Ty::Arr, "", "Array of scan objects. Required for \"start\" action\nEvery scan object is either a string descriptor or an object {\"desc\": ...}.\nstrand supports addr(), raw(), pkh(KEY), wpkh(KEY) and tr(KEY) with plain hex keys."),
        ],
        desc: "Scans the unspent transaction output set for entries that match certain output descriptors.",
        result: "{ \"success\", \"txouts\", \"height\", \"bestblock\", \"unspents\": [ { \"txid\", \"vout\", \"scriptPubKey\", \"desc\", \"amount\", \"coinbase\", \"height\", \"blockhash\", \"confirmations\" }, ... ], \"total_amount\" }",
        handler: h_scantxoutset,
    },
    Method {
        name: "gettxoutproof",
        category: "blockchain",
        args: &[
            req("txids", Ty::Arr, "The txids to filter"),
            opt("blockhash", Ty::Hex, "", "If specified, looks for txid in the block with this hash"),
        ],
        desc: "Returns a hex-encoded proof that \"txid\" was included in a block.\n\nNOTE: By default this function only works sometimes. This is when there is an\nunspent output in the utxo for this transaction. To make it always work,\nyou need to maintain a transaction index, using the -txindex command line option or\nspecify the block in which the transaction is included manually (by blockhash).",
        result: "\"str\"    (string) A string that is a serialized, hex-encoded data for the proof.",
        handler: h_gettxoutproof,
    },
    Method {
        name: "verifytxoutproof",
        category: "blockchain",
        args: &[req("proof", Ty::Hex, "The hex-encoded proof generated by gettxoutproof")],
        desc: "Verifies that a proof points to a transaction in a block, returning the transaction it commits to\nand throwing an RPC error if the block is not in our best chain",
        result: "[\"hex\", ...]    The txid(s) which the proof commits to, or empty array if the proof cannot be validated.",
        handler: h_verifytxoutproof,
    },
    Method {
        name: "getchaintxstats",
        category: "blockchain",
        args: &[
            opt("nblocks", Ty::Num, "one month", "Size of the window in number of blocks"),
            opt("blockhash", Ty::Hex, "chain tip", "The hash of the block that ends the window."),
        ],
        desc: "Compute statistics about the total number and rate of transactions in the chain.",
        result: "{ \"time\", \"txcount\", \"window_final_block_hash\", \"window_final_block_height\", \"window_block_count\", \"window_interval\", \"window_tx_count\", \"txrate\" }",
        handler: h_getchaintxstats,
    },
    Method {
        name: "getblockstats",
        category: "blockchain",
        args: &[
            req("hash_or_height", Ty::NumOrStr, "The block hash or height of the target block"),
            opt("stats", Ty::Arr, "all values", "Values to plot (see result below)"),
        ],
        desc: "Compute per block statistics for a given window. All amounts are in satoshis.\nIt won't work for some heights with pruning.",
        result: "{ \"avgfee\", \"avgfeerate\", \"avgtxsize\", \"blockhash\", \"feerate_percentiles\", \"height\", \"ins\", \"maxfee\", \"maxfeerate\", \"maxtxsize\", \"medianfee\", \"mediantime\", \"mediantxsize\", \"minfee\", \"minfeerate\", \"mintxsize\", \"outs\", \"subsidy\", \"swtotal_size\", \"swtotal_weight\", \"swtxs\", \"time\", \"total_out\", \"total_size\", \"total_weight\", \"totalfee\", \"txs\", \"utxo_increase\", \"utxo_size_inc\", \"utxo_increase_actual\", \"utxo_size_inc_actual\" }",
        handler: h_getblockstats,
    },
    Method {
        name: "logging",
        category: "control",
        args: &[
            opt("include", Ty::Arr, "", "The categories to add to debug logging"),
            opt("exclude", Ty::Arr, "", "The categories to remove from debug logging"),
        ],
        desc: "Gets and sets the logging configuration.\nWhen called without an argument, returns the list of categories with status that are currently being debug logged or not.\nWhen called with arguments, adds or removes categories from debug logging and return the lists above.\nThe arguments are evaluated in order \"include\", \"exclude\".\nIf an item is both included and excluded, it will thus end up being excluded.\nIn addition, the following are available as category names with special meanings:\n  - \"all\",  \"1\" : represent all logging categories.",
        result: "{ \"category\": bool, ... }",
        handler: h_logging,
    },
    Method {
        name: "getrpcinfo",
        category: "control",
        args: &[],
        desc: "Returns details of the RPC server.",
        result: "{ \"active_commands\": [ { \"method\", \"duration\" }, ... ], \"logpath\" }",
        handler: h_getrpcinfo,
    },
    Method {
        name: "getmemoryinfo",
        category: "control",
        args: &[opt("mode", Ty::Str, "\"stats\"", "determines what kind of information is returned.\n  - \"stats\" returns general statistics about memory usage in the daemon.\n  - \"mallocinfo\" is not available in strand.")],
        desc: "Returns an object containing information about memory usage.",
        result: "{ \"locked\": { \"used\", \"free\", \"total\", \"locked\", \"chunks_used\", \"chunks_free\" } }",
        handler: h_getmemoryinfo,
    },
    Method {
        name: "getindexinfo",
        category: "util",
        args: &[opt("index_name", Ty::Str, "", "Filter results for an index with a specific name.")],
        desc: "Returns the status of one or all available indices currently running in the node.",
        result: "{ \"name\": { \"synced\", \"best_block_height\" }, ... }",
        handler: h_getindexinfo,
    },
    // == Mining, fees, mempool persistence (issue 13) ==
    Method {
        name: "getblocktemplate",
        category: "mining",
        args: &[opt("template_request", Ty::Obj, "{}", "Format of the template: {\"mode\": \"template\", \"rules\": [\"segwit\"], ...}; \"segwit\" is required")],
        desc: "If the request parameters include a 'mode' key, that is used to explicitly select between the default 'template' request or a 'proposal'.\nIt returns data needed to construct a block to work on.\nFor full specification, see BIPs 22, 23, 9, and 145. Only 'template' mode is supported; long polling is not (the call answers at once).",
        result: "{ \"capabilities\", \"version\", \"rules\", \"vbavailable\", \"vbrequired\", \"previousblockhash\", \"transactions\", \"coinbaseaux\", \"coinbasevalue\", \"longpollid\", \"target\", \"mintime\", \"mutable\", \"noncerange\", \"sigoplimit\", \"sizelimit\", \"weightlimit\", \"curtime\", \"bits\", \"height\", \"default_witness_commitment\" }",
        handler: h_getblocktemplate,
    },
    Method {
        name: "getmininginfo",
        category: "mining",
        args: &[],
        desc: "Returns a json object containing mining-related information.",
        result: "{ \"blocks\", \"bits\", \"difficulty\", \"target\", \"networkhashps\", \"pooledtx\", \"blockmintxfee\", \"chain\", \"next\": { \"height\", \"bits\", \"difficulty\", \"target\" }, \"warnings\" }",
        handler: h_getmininginfo,
    },
    Method {
        name: "submitheader",
        category: "mining",
        args: &[req("hexdata", Ty::Hex, "the hex-encoded block header data")],
        desc: "Decode the given hexdata as a header and submit it as a candidate chain tip if valid.\nThrows when the header is invalid.",
        result: "null    (json null) None",
        handler: h_submitheader,
    },
    Method {
        name: "prioritisetransaction",
        category: "mining",
        args: &[
            req("txid", Ty::Str, "The transaction id."),
            opt("dummy", Ty::Num, "null", "API-Compatibility for previous API. Must be zero or null."),
            req("fee_delta", Ty::Num, "The fee value (in satoshis) to add (or subtract, if negative)."),
        ],
        desc: "Accepts the transaction into mined blocks at a higher (or lower) priority",
        result: "true|false    (boolean) Returns true",
        handler: h_prioritisetransaction,
    },
    Method {
        name: "getprioritisedtransactions",
        category: "mining",
        args: &[],
        desc: "Returns a map of all user-created (see prioritisetransaction) fee deltas by txid, and whether the tx is present in mempool.",
        result: "{ \"<transactionid>\": { \"fee_delta\", \"in_mempool\", \"modified_fee\" } }",
        handler: h_getprioritisedtransactions,
    },
    Method {
        name: "estimatesmartfee",
        category: "util",
        args: &[
            req("conf_target", Ty::Num, "Confirmation target in blocks (1 - 1008)"),
            opt("estimate_mode", Ty::Str, "economical", "The fee estimate mode: unset, economical, conservative"),
        ],
        desc: "Estimates the approximate fee per kilobyte needed for a transaction to begin\nconfirmation within conf_target blocks if possible and return the number of blocks\nfor which the estimate is valid.",
        result: "{ \"feerate\", \"errors\", \"blocks\" }",
        handler: h_estimatesmartfee,
    },
    Method {
        name: "estimaterawfee",
        category: "hidden",
        args: &[
            req("conf_target", Ty::Num, "Confirmation target in blocks (1 - 1008)"),
            opt("threshold", Ty::Num, "0.95", "The proportion of transactions in a given feerate range that must have been\nconfirmed within conf_target in order to consider those feerates as high enough and proceed to check\nlower buckets."),
        ],
        desc: "WARNING: This interface is unstable and may disappear or change!\nEstimates the approximate fee per kilobyte needed for a transaction to begin\nconfirmation within conf_target blocks if possible. strand keeps one horizon (\"medium\", up to 48 blocks).",
        result: "{ \"medium\": { \"feerate\", \"decay\", \"scale\", \"pass\", \"fail\", \"errors\" } }",
        handler: h_estimaterawfee,
    },
    Method {
        name: "savemempool",
        category: "blockchain",
        args: &[],
        desc: "Dumps the mempool to disk.",
        result: "{ \"filename\" }",
        handler: h_savemempool,
    },
    Method {
        name: "pruneblockchain",
        category: "blockchain",
        args: &[req("height", Ty::Num, "The block height to prune up to. May be set to a discrete height, or to a UNIX epoch time\nto prune blocks whose block time is at least 2 hours older than the provided timestamp.")],
        desc: "Attempts to delete block and undo data up to a specified height or timestamp, if eligible for pruning.\nRequires `-prune` to be enabled at startup.",
        result: "n    (numeric) Height of the last block pruned",
        handler: h_pruneblockchain,
    },
];

fn find_method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Names of every method, sorted.
pub fn method_names() -> Vec<&'static str> {
    let mut v: Vec<_> = METHODS.iter().map(|m| m.name).collect();
    v.sort_unstable();
    v
}

/// Which parameter a command-line argument is for (`strand cli`).
#[derive(Debug, Clone, Copy)]
pub enum ParamRef<'a> {
    /// By position (0-based).
    Index(usize),
    /// By name (`-named`).
    Name(&'a str),
}

/// Whether parameter `param` of `method` is string-typed (the CLI then
/// passes the argument as a string without trying JSON).
pub fn arg_is_string(method: &str, param: ParamRef<'_>) -> bool {
    let Some(m) = find_method(method) else {
        return false;
    };
    let arg = match param {
        ParamRef::Index(i) => m.args.get(i),
        ParamRef::Name(n) => m.args.iter().find(|a| a.name == n),
    };
    arg.is_some_and(|a| matches!(a.ty, Ty::Str | Ty::Hex))
}

/// Core's `help` without a command: first lines grouped by category.
fn help_all() -> String {
    // Core leaves the "hidden" test helpers out of the list.
    let mut ms: Vec<&Method> = METHODS.iter().filter(|m| m.category != "hidden").collect();
    ms.sort_by_key(|m| (m.category, m.name));
    let mut s = String::new();
    let mut category = "";
    for m in ms {
        if m.category != category {
            if !category.is_empty() {
                s.push('\n');
            }
            category = m.category;
            let mut c = category.chars();
            let title: String = c
                .next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default();
            let _ = writeln!(s, "== {title} ==");
        }
        let _ = writeln!(s, "{}", usage(m));
    }
    s.pop();
    s
}

// ---------------------------------------------------------------------------
// Dispatch.

impl Dispatcher {
    /// Executes one call: `params` is the request's array or object.
    pub fn execute(&self, method: &str, params: &Value) -> RpcResult<Value> {
        let Some(m) = find_method(method) else {
            return Err(RpcFailure::new(
                codes::RPC_METHOD_NOT_FOUND,
                "Method not found",
            ));
        };
        if !matches!(m.name, "help" | "stop" | "uptime") {
            if let Some(status) = self.backend.warmup_status() {
                return Err(RpcFailure::new(codes::RPC_IN_WARMUP, status));
            }
        }
        let positional = match params {
            Value::Array(a) => a.clone(),
            Value::Object(o) => named_to_positional(m, o)?,
            Value::Null => Vec::new(),
            _ => {
                return Err(RpcFailure::new(
                    codes::RPC_INVALID_REQUEST,
                    "Params must be an array or object",
                ))
            }
        };
        let required = m.args.iter().filter(|a| a.default.is_none()).count();
        if positional.len() < required || positional.len() > m.args.len() {
            return Err(RpcFailure::misc(help_text(m)));
        }
        let mut mismatches = Vec::new();
        for (i, (a, v)) in m.args.iter().zip(&positional).enumerate() {
            if v.is_null() && a.default.is_some() {
                continue;
            }
            if !a.ty.matches(v) {
                mismatches.push(format!(
                    "    \"Position {} ({})\": \"JSON value of type {} is not of expected type {}\"",
                    i + 1,
                    a.name,
                    type_name(v),
                    a.ty.expected()
                ));
            }
        }
        if !mismatches.is_empty() {
            return Err(RpcFailure::type_error(format!(
                "Wrong type passed:\n{{\n{}\n}}",
                mismatches.join(",\n")
            )));
        }
        let _running = self.active.enter(m.name);
        (m.handler)(
            self,
            &Args {
                v: positional,
                method: m,
            },
        )
    }
}

/// Core's `transformNamedArguments`.
fn named_to_positional(m: &Method, o: &Map<String, Value>) -> RpcResult<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for (k, v) in o {
        let Some(pos) = m.args.iter().position(|a| a.name == k) else {
            return Err(RpcFailure::invalid_parameter(format!(
                "Unknown named parameter {k}"
            )));
        };
        if out.len() <= pos {
            out.resize(pos + 1, Value::Null);
        }
        out[pos] = v.clone();
    }
    while out.last().is_some_and(Value::is_null) {
        out.pop();
    }
    Ok(out)
}

fn h_help(_: &Dispatcher, a: &Args) -> RpcResult<Value> {
    match a.opt_str(0) {
        None => Ok(json!(help_all())),
        Some(cmd) => match find_method(cmd) {
            Some(m) => Ok(json!(help_text(m))),
            None => Ok(json!(format!("help: unknown command: {cmd}\n"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, ScriptBuf};

    fn method(name: &str) -> &'static Method {
        find_method(name).unwrap_or(&METHODS[0])
    }

    #[test]
    fn descriptor_checksums() {
        assert_eq!(
            descriptor_checksum("raw(deadbeef)").as_deref(),
            Some("89f8spxm")
        );
        let s = script_from_descriptor("raw(deadbeef)#89f8spxm", bitcoin::Network::Regtest);
        assert_eq!(s.unwrap().as_bytes(), [0xde, 0xad, 0xbe, 0xef]);
        let e = script_from_descriptor("raw(deadbeef)#89f8spxx", bitcoin::Network::Regtest);
        assert_eq!(
            e.unwrap_err(),
            "Provided checksum '89f8spxx' does not match computed checksum '89f8spxm'"
        );
        let e = script_from_descriptor("raw(deadbeef)#89f8", bitcoin::Network::Regtest);
        assert_eq!(
            e.unwrap_err(),
            "Expected 8 character checksum, not 4 characters"
        );
        let e = script_from_descriptor("sh(wpkh(02aa))", bitcoin::Network::Regtest);
        assert!(e.unwrap_err().contains("not supported"));
        let e = script_from_descriptor("wpkh(02aa)", bitcoin::Network::Regtest);
        assert_eq!(e.unwrap_err(), "key '02aa' is not valid");
        let e = script_from_descriptor("raw(zz)", bitcoin::Network::Regtest);
        assert_eq!(e.unwrap_err(), "Raw script is not hex");
        let addr = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
        let s =
            script_from_descriptor(&format!("addr({addr})"), bitcoin::Network::Regtest).unwrap();
        assert!(s.is_p2wpkh());
        let e = script_from_descriptor(&format!("addr({addr})"), bitcoin::Network::Bitcoin);
        assert_eq!(e.unwrap_err(), "Address is not valid");
    }

    #[test]
    fn floats_like_univalue() {
        assert_eq!(format_g16(4.656542373906925e-10), "4.656542373906925e-10");
        assert_eq!(format_g16(1.0), "1");
        assert_eq!(format_g16(0.5), "0.5");
        assert_eq!(format_g16(2456598.4399242126), "2456598.439924213");
        assert_eq!(format_g16(1e20), "1e+20");
        assert_eq!(format_g16(0.0001), "0.0001");
        assert_eq!(float_json(0.999).to_string(), "0.999");
    }

    #[test]
    fn amounts() {
        assert_eq!(
            amount_json(Amount::from_sat(1000)).to_string(),
            "0.00001000"
        );
        assert_eq!(
            amount_json(Amount::from_sat(50 * 100_000_000)).to_string(),
            "50.00000000"
        );
        assert_eq!(signed_amount_json(-1).to_string(), "-0.00000001");
        let p = |s: &str| parse_amount(&serde_json::from_str(s).unwrap());
        assert_eq!(p("0.1").unwrap(), Amount::from_sat(10_000_000));
        assert_eq!(p("\"0.00000001\"").unwrap(), Amount::from_sat(1));
        assert_eq!(p("3").unwrap(), Amount::from_sat(300_000_000));
        assert_eq!(p("0.000000001").unwrap_err().message, "Invalid amount");
        assert_eq!(p("-1").unwrap_err().message, "Amount out of range");
        assert_eq!(p("21000001").unwrap_err().message, "Amount out of range");
        assert_eq!(
            p("true").unwrap_err().message,
            "Amount is not a number or string"
        );
    }

    #[test]
    fn asm_like_core() {
        // P2PKH output.
        let s = ScriptBuf::from_hex("76a91489abcdefabbaabbaabbaabbaabbaabbaabbaabba88ac").unwrap();
        assert_eq!(
            script_asm(&s, false),
            "OP_DUP OP_HASH160 89abcdefabbaabbaabbaabbaabbaabbaabbaabba OP_EQUALVERIFY OP_CHECKSIG"
        );
        assert_eq!(script_type(&s), "pubkeyhash");
        // Coinbase-style small pushes are numbers; OP_1 is "1"; OP_0 is "0".
        let s = ScriptBuf::from_hex("0165005100").unwrap();
        assert_eq!(script_asm(&s, false), "101 0 1 0");
        let s = ScriptBuf::from_hex("02ff00").unwrap();
        assert_eq!(script_asm(&s, false), "255");
        let s = ScriptBuf::from_hex("0181").unwrap();
        assert_eq!(script_asm(&s, false), "-1");
        assert_eq!(
            script_type(&ScriptBuf::from_hex("6a0401020304").unwrap()),
            "nulldata"
        );
        assert_eq!(
            script_type(&ScriptBuf::from_hex("51024e73").unwrap()),
            "anchor"
        );
        assert_eq!(
            script_asm(&ScriptBuf::from_hex("b1b2").unwrap(), false),
            "OP_CHECKLOCKTIMEVERIFY OP_CHECKSEQUENCEVERIFY"
        );
    }

    #[test]
    fn help_lists_every_method_and_usage_matches_core() {
        let all = help_all();
        for name in method_names() {
            // Core's "hidden" test helpers are left out of the list.
            let hidden = find_method(name).is_some_and(|m| m.category == "hidden");
            assert_eq!(all.contains(&format!("\n{name}")), !hidden, "{name}");
        }
        assert_eq!(
            usage(method("addpeeraddress")),
            "addpeeraddress \"address\" port ( tried )"
        );
        assert_eq!(
            usage(method("getnodeaddresses")),
            "getnodeaddresses ( count \"network\" )"
        );
        assert!(all.starts_with("== Blockchain ==\ngetbestblockhash\n"));
        assert_eq!(
            usage(method("getblock")),
            "getblock \"blockhash\" ( verbosity )"
        );
        assert_eq!(
            usage(method("setban")),
            "setban \"subnet\" \"command\" ( bantime absolute )"
        );
        assert_eq!(
            usage(method("testmempoolaccept")),
            "testmempoolaccept [\"rawtxs\",...] ( maxfeerate )"
        );
    }
}
