//! Bitcoin Core's REST interface (`-rest`, Core's `rest.cpp`): unauthenticated
//! `GET /rest/...` requests on the RPC port, answered from the same
//! [`RpcBackend`](super::RpcBackend) methods and JSON builders as the
//! matching RPCs, so a REST answer equals the RPC's (`chaininfo.json` is
//! `getblockchaininfo`, `block/H.json` is `getblock H 3`, `headers` are
//! `getblockheader`s, ...). It owns no thread: an RPC worker
//! (`rpc-worker-N`) calls [`handle`] for a request whose target starts with
//! `/rest/`, before any authentication, as Core's HTTP server does.
//!
//! Formats are chosen by the suffix (`.bin`, `.hex`, `.json`); errors are
//! Core's: a plain-text body ending in `\r\n` with 400 (bad hash, height or
//! count), 404 (unknown object, unknown format) or 503 (warm-up). Without
//! `--rest` every `/rest/` target is 404 with an empty body, as Core answers
//! a path no handler is registered for.

use std::str::FromStr;

use bitcoin::consensus::serialize;
use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::{BlockHash, Txid};
use serde_json::{json, Value};

use super::blockchain::{block_json, header_json};
use super::http::{Request, Response};
use super::rawtransaction::{script_pubkey_json, tx_json};
use super::util::{amount_json, Dispatcher};

/// Most headers one `/rest/headers` request returns (Core's
/// `MAX_REST_HEADERS_RESULTS`).
pub const MAX_REST_HEADERS_RESULTS: usize = 2000;

/// Most outpoints one `/rest/getutxos` request may ask for (Core's
/// `MAX_GETUTXOS_OUTPOINTS`).
pub const MAX_GETUTXOS_OUTPOINTS: usize = 15;

/// The height Core reports for a coin created in the mempool
/// (`MEMPOOL_HEIGHT`, txmempool.h).
const MEMPOOL_HEIGHT: u32 = 0x7FFF_FFFF;

/// Headers returned when `?count=` is absent (Core's default in
/// `rest_headers`).
const DEFAULT_REST_HEADERS: &str = "5";

/// The output format named by a target's suffix (Core's `RESTResponseFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Undef,
    Binary,
    Hex,
    Json,
}

/// Splits `part` (the target after the handler's prefix) into its parameter
/// (without query string and suffix) and format, as Core's
/// `ParseDataFormat`.
fn parse_format(part: &str) -> (String, Format) {
    let param = match part.rfind('?') {
        Some(q) => &part[..q],
        None => part,
    };
    let Some(dot) = param.rfind('.') else {
        return (param.to_string(), Format::Undef);
    };
    let format = match &param[dot + 1..] {
        "bin" => Format::Binary,
        "hex" => Format::Hex,
        "json" => Format::Json,
        _ => return (param.to_string(), Format::Undef),
    };
    (param[..dot].to_string(), format)
}

/// A query parameter's value (`?count=5&x=y`), without percent-decoding
/// (the values Core reads here are digits and `true`/`false`).
fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Core's `RESTERR`: a plain-text error.
fn error(status: u16, message: &str) -> Response {
    Response {
        status,
        headers: Vec::new(),
        content_type: "text/plain",
        body: format!("{message}\r\n").into_bytes(),
    }
}

fn bad_format(formats: &str) -> Response {
    error(
        404,
        &format!("output format not found (available: {formats})"),
    )
}

const ALL_FORMATS: &str = ".bin, .hex, .json";

fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
    Response {
        status: 200,
        headers: Vec::new(),
        content_type,
        body,
    }
}

fn json_ok(v: &Value) -> Response {
    ok("application/json", format!("{v}\n").into_bytes())
}

/// Answers `bytes` as `.bin`, `.hex` or with `json` for `.json`.
fn encoded(format: Format, bytes: Vec<u8>, json: impl FnOnce() -> Value) -> Response {
    match format {
        Format::Binary => ok("application/octet-stream", bytes),
        Format::Hex => ok(
            "text/plain",
            format!("{}\n", bytes.to_lower_hex_string()).into_bytes(),
        ),
        Format::Json => json_ok(&json()),
        Format::Undef => bad_format(ALL_FORMATS),
    }
}

/// Core's `uint256::FromHex`: exactly 64 hex digits.
fn parse_hash<T: FromStr>(s: &str) -> Option<T> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    s.parse().ok()
}

/// Answers one `/rest/` request; `enabled` is `--rest`.
pub fn handle(enabled: bool, d: &Dispatcher, req: &Request) -> Response {
    if !enabled {
        return Response {
            status: 404,
            headers: Vec::new(),
            content_type: "text/html; charset=ISO-8859-1",
            body: Vec::new(),
        };
    }
    if req.method != "GET" && req.method != "POST" {
        return error(405, "REST answers GET requests");
    }
    if let Some(status) = d.backend.warmup_status() {
        return error(503, &format!("Service temporarily unavailable: {status}"));
    }
    let target = req.target.as_str();
    // Core's `uri_prefixes`, longest match first where prefixes overlap.
    let routes: [(&str, Handler); 8] = [
        ("/rest/tx/", rest_tx),
        ("/rest/block/notxdetails/", rest_block_notxdetails),
        ("/rest/block/", rest_block),
        ("/rest/chaininfo", rest_chaininfo),
        ("/rest/mempool/", rest_mempool),
        ("/rest/headers/", rest_headers),
        ("/rest/blockhashbyheight/", rest_blockhash_by_height),
        ("/rest/getutxos", rest_getutxos),
    ];
    for (prefix, handler) in routes {
        if let Some(part) = target.strip_prefix(prefix) {
            return handler(d, req, part);
        }
    }
    Response {
        status: 404,
        headers: Vec::new(),
        content_type: "text/html; charset=ISO-8859-1",
        body: Vec::new(),
    }
}

/// One endpoint: the dispatcher, the request, the target after the prefix.
type Handler = fn(&Dispatcher, &Request, &str) -> Response;

fn rest_chaininfo(d: &Dispatcher, _: &Request, part: &str) -> Response {
    match parse_format(part) {
        (_, Format::Json) => match d.execute("getblockchaininfo", &json!([])) {
            Ok(v) => json_ok(&v),
            Err(e) => error(500, &e.message),
        },
        _ => bad_format("json"),
    }
}

fn rest_block(d: &Dispatcher, _: &Request, part: &str) -> Response {
    block_with(d, part, 3)
}

fn rest_block_notxdetails(d: &Dispatcher, _: &Request, part: &str) -> Response {
    block_with(d, part, 1)
}

/// `/rest/block/`: JSON at `verbosity` (Core: `SHOW_DETAILS_AND_PREVOUT`,
/// `getblock`'s 3; `notxdetails`: `SHOW_TXID`, 1).
fn block_with(d: &Dispatcher, part: &str, verbosity: i64) -> Response {
    let (hash_str, format) = parse_format(part);
    let Some(hash) = parse_hash::<BlockHash>(&hash_str) else {
        return error(400, &format!("Invalid hash: {hash_str}"));
    };
    let data = match d.backend.block(hash) {
        Ok(Some(data)) => data,
        Ok(None) => return error(404, &format!("{hash_str} not found")),
        Err(e) => return error(404, &format!("{hash_str} not available ({})", e.message)),
    };
    let network = d.backend.network();
    encoded(format, serialize(&data.block), || {
        block_json(&data, verbosity, network)
    })
}

fn rest_headers(d: &Dispatcher, req: &Request, part: &str) -> Response {
    let target = req.target.as_str();
    let (param, format) = parse_format(part);
    let path: Vec<&str> = param.split('/').collect();
    let (raw_count, hash_str) = match path.as_slice() {
        // Deprecated form: /rest/headers/<count>/<hash>.<ext>
        [count, hash] => (count.to_string(), hash.to_string()),
        // Core 31's form: /rest/headers/<hash>.<ext>?count=<count>
        [hash] => (
            query_param(target, "count")
                .unwrap_or(DEFAULT_REST_HEADERS)
                .to_string(),
            hash.to_string(),
        ),
        _ => {
            return error(
                400,
                "Invalid URI format. Expected /rest/headers/<hash>.<ext>?count=<count>",
            )
        }
    };
    let count = match raw_count.parse::<usize>() {
        Ok(n) if (1..=MAX_REST_HEADERS_RESULTS).contains(&n) && raw_count.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return error(
                400,
                &format!(
                    "Header count is invalid or out of acceptable range (1-{MAX_REST_HEADERS_RESULTS}): {raw_count}"
                ),
            )
        }
    };
    let Some(hash) = parse_hash::<BlockHash>(&hash_str) else {
        return error(400, &format!("Invalid hash: {hash_str}"));
    };
    // Walk the active chain from `hash` (an unknown or stale block gives an
    // empty list, as in Core).
    let mut infos = Vec::new();
    let mut next = Some(hash);
    while let Some(h) = next {
        if infos.len() == count {
            break;
        }
        match d.backend.block_header(h) {
            Ok(Some(info)) if info.confirmations >= 0 => {
                next = info.next_block_hash;
                infos.push(info);
            }
            Ok(_) => break,
            Err(e) => return error(500, &e.message),
        }
    }
    let bytes: Vec<u8> = infos.iter().flat_map(|i| serialize(&i.header)).collect();
    encoded(format, bytes, || {
        Value::Array(
            infos
                .iter()
                .map(|i| Value::Object(header_json(i)))
                .collect(),
        )
    })
}

fn rest_tx(d: &Dispatcher, _: &Request, part: &str) -> Response {
    let (hash_str, format) = parse_format(part);
    let Some(txid) = parse_hash::<Txid>(&hash_str) else {
        return error(400, &format!("Invalid hash: {hash_str}"));
    };
    let found = match d.backend.raw_transaction(txid, None) {
        Ok(f) => f,
        Err(_) => return error(404, &format!("{hash_str} not found")),
    };
    let network = d.backend.network();
    encoded(format, serialize(&found.tx), || {
        // Core's `TxToUniv` with the block hash: `getrawtransaction`'s
        // verbose answer without confirmations and times.
        let mut m = tx_json(&found.tx, network, None, None, true, false);
        if let Some(l) = &found.location {
            m.insert("blockhash".into(), json!(l.blockhash.to_string()));
        }
        Value::Object(m)
    })
}

fn rest_mempool(d: &Dispatcher, req: &Request, part: &str) -> Response {
    let target = req.target.as_str();
    let (param, format) = parse_format(part);
    if param != "contents" && param != "info" {
        return error(
            400,
            "Invalid URI format. Expected /rest/mempool/<info|contents>.json",
        );
    }
    if format != Format::Json {
        return bad_format("json");
    }
    let result = if param == "info" {
        d.execute("getmempoolinfo", &json!([]))
    } else {
        let verbose = query_param(target, "verbose").unwrap_or("true");
        if verbose != "true" && verbose != "false" {
            return error(
                400,
                "The \"verbose\" query parameter must be either \"true\" or \"false\".",
            );
        }
        let sequence = query_param(target, "mempool_sequence").unwrap_or("false");
        if sequence != "true" && sequence != "false" {
            return error(
                400,
                "The \"mempool_sequence\" query parameter must be either \"true\" or \"false\".",
            );
        }
        if sequence == "true" {
            if verbose == "true" {
                return error(400, "Verbose results cannot contain mempool sequence values. (hint: set \"verbose=false\")");
            }
            return error(400, "mempool_sequence is not supported by this node");
        }
        d.execute("getrawmempool", &json!([verbose == "true"]))
    };
    match result {
        Ok(v) => json_ok(&v),
        Err(e) => error(404, &e.message),
    }
}

fn rest_blockhash_by_height(d: &Dispatcher, _: &Request, part: &str) -> Response {
    let (height_str, format) = parse_format(part);
    let height = match height_str.parse::<i32>() {
        Ok(h) if h >= 0 && height_str.bytes().all(|b| b.is_ascii_digit()) => h as u32,
        _ => {
            // Core's SanitizeString(SAFE_CHARS_URI).
            let safe: String = height_str
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.~:/?#[]@!$&'()*+,;=%".contains(*c))
                .collect();
            return error(400, &format!("Invalid height: {safe}"));
        }
    };
    let hash = match d.backend.block_hash(height) {
        Ok(Some(h)) => h,
        Ok(None) => return error(404, "Block height out of range"),
        Err(e) => return error(500, &e.message),
    };
    match format {
        // Core writes the hash as displayed (`GetHex`), not its bytes in hex.
        Format::Hex => ok("text/plain", format!("{hash}\n").into_bytes()),
        _ => encoded(
            format,
            serialize(&hash),
            || json!({ "blockhash": hash.to_string() }),
        ),
    }
}

/// `/rest/getutxos[/checkmempool]/TXID-N/...` (or, for `.bin`/`.hex`, a
/// body of a bool and a vector of outpoints): which outpoints are unspent,
/// as Core's `rest_getutxos` answers it.
fn rest_getutxos(d: &Dispatcher, req: &Request, part: &str) -> Response {
    let body = req.body.as_slice();
    let (param, format) = parse_format(part);
    let uri_parts: Vec<&str> = match param.strip_prefix('/') {
        Some(p) if !p.is_empty() => p.split('/').collect(),
        _ => Vec::new(),
    };
    if body.is_empty() && uri_parts.is_empty() {
        return error(400, "Error: empty request");
    }
    let mut check_mempool = uri_parts.first() == Some(&"checkmempool");
    let mut outpoints = Vec::new();
    for p in uri_parts.iter().skip(usize::from(check_mempool)) {
        let parsed = p.split_once('-').and_then(|(t, n)| {
            let n_ok = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
            Some(bitcoin::OutPoint {
                txid: parse_hash::<Txid>(t)?,
                vout: if n_ok { n.parse().ok()? } else { return None },
            })
        });
        match parsed {
            Some(o) => outpoints.push(o),
            None => return error(400, "Parse error"),
        }
    }
    let uri_input = !outpoints.is_empty();
    if !uri_parts.is_empty() && !uri_input {
        return error(400, "Error: empty request");
    }
    match format {
        Format::Hex | Format::Binary if !body.is_empty() => {
            if uri_input {
                return error(
                    400,
                    "Combination of URI scheme inputs and raw post data is not allowed",
                );
            }
            let raw = if format == Format::Hex {
                let text = String::from_utf8_lossy(body);
                match Vec::<u8>::from_hex(text.trim()) {
                    Ok(b) => b,
                    Err(_) => return error(400, "Parse error"),
                }
            } else {
                body.to_vec()
            };
            let Some((&flag, rest)) = raw.split_first() else {
                return error(400, "Parse error");
            };
            match decode_outpoints(rest) {
                Some(v) => {
                    check_mempool = flag != 0;
                    outpoints = v;
                }
                None => return error(400, "Parse error"),
            }
        }
        Format::Hex | Format::Binary => {}
        Format::Json if !uri_input => return error(400, "Error: empty request"),
        Format::Json => {}
        Format::Undef => return bad_format(ALL_FORMATS),
    }
    if outpoints.len() > MAX_GETUTXOS_OUTPOINTS {
        return error(
            400,
            &format!(
                "Error: max outpoints exceeded (max: {MAX_GETUTXOS_OUTPOINTS}, tried: {})",
                outpoints.len()
            ),
        );
    }
    let (height, tip) = match (d.backend.block_count(), d.backend.best_block_hash()) {
        (Ok(h), Ok(t)) => (h, t),
        (Err(e), _) | (_, Err(e)) => return error(500, &e.message),
    };
    let mut hits = Vec::new();
    let mut coins = Vec::new();
    for o in &outpoints {
        match d.backend.tx_out(o.txid, o.vout, check_mempool) {
            Ok(Some(info)) => {
                let coin_height = if info.confirmations == 0 {
                    MEMPOOL_HEIGHT
                } else {
                    (height + 1).saturating_sub(info.confirmations)
                };
                hits.push(true);
                coins.push((coin_height, info.txout));
            }
            Ok(None) => hits.push(false),
            Err(e) => return error(500, &e.message),
        }
    }
    let mut bitmap = vec![0u8; hits.len().div_ceil(8)];
    for (i, hit) in hits.iter().enumerate() {
        if let Some(b) = bitmap.get_mut(i / 8) {
            *b |= u8::from(*hit) << (i % 8);
        }
    }
    // Core's `ssGetUTXOResponse << active_height << active_hash << bitmap << outs`,
    // each coin as `CCoin`: a zero version, its height, the output.
    let mut bytes = serialize(&(height as i32));
    bytes.extend(serialize(&tip));
    bytes.extend(serialize(&bitmap));
    bytes.extend(serialize(&bitcoin::VarInt(coins.len() as u64)));
    for (h, out) in &coins {
        bytes.extend(serialize(&0u32));
        bytes.extend(serialize(h));
        bytes.extend(serialize(out));
    }
    let network = d.backend.network();
    encoded(format, bytes, || {
        let bits: String = hits.iter().map(|h| if *h { '1' } else { '0' }).collect();
        let utxos: Vec<Value> = coins
            .iter()
            .map(|(h, out)| {
                json!({
                    "height": h,
                    "value": amount_json(out.value),
                    "scriptPubKey": script_pubkey_json(&out.script_pubkey, network),
                })
            })
            .collect();
        json!({
            "chainHeight": height,
            "chaintipHash": tip.to_string(),
            "bitmap": bits,
            "utxos": utxos,
        })
    })
}

/// A serialized `std::vector<COutPoint>`: a compact size, then 36 bytes
/// each. Never allocates more than the bytes given can hold.
fn decode_outpoints(mut bytes: &[u8]) -> Option<Vec<bitcoin::OutPoint>> {
    use bitcoin::consensus::Decodable;
    let count = bitcoin::VarInt::consensus_decode(&mut bytes).ok()?.0;
    let mut v = Vec::new();
    for _ in 0..count {
        v.push(bitcoin::OutPoint::consensus_decode(&mut bytes).ok()?);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_queries_parse_like_core() {
        assert_eq!(parse_format("abc.json"), ("abc".into(), Format::Json));
        assert_eq!(parse_format("abc.bin?x=1"), ("abc".into(), Format::Binary));
        assert_eq!(parse_format("abc.hex"), ("abc".into(), Format::Hex));
        assert_eq!(parse_format("abc.xml"), ("abc.xml".into(), Format::Undef));
        assert_eq!(parse_format("abc"), ("abc".into(), Format::Undef));
        let t = "/rest/headers/00.json?count=7&verbose=false";
        assert_eq!(query_param(t, "count"), Some("7"));
        assert_eq!(query_param(t, "verbose"), Some("false"));
        assert_eq!(query_param(t, "other"), None);
        assert!(parse_hash::<BlockHash>(&"0".repeat(63)).is_none());
        assert!(parse_hash::<BlockHash>(&"g".repeat(64)).is_none());
        assert!(parse_hash::<BlockHash>(&"0".repeat(64)).is_some());
    }
}
