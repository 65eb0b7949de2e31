//! `strand cli -getinfo` and `-netinfo`: bitcoin-cli's two dashboards
//! (`GetinfoRequestHandler` + `ParseGetInfoResult`, and
//! `NetinfoRequestHandler`), built from the JSON of `getnetworkinfo`,
//! `getblockchaininfo` and `getpeerinfo` in Core's shapes. Pure functions
//! of those replies and the current time, so they are tested without a
//! node; run on the `strand cli` caller's thread.

use serde_json::Value;

/// Core's `NETINFO_MAX_LEVEL`.
pub const NETINFO_MAX_LEVEL: u8 = 4;

/// Core's `NETWORKS` (bitcoin-cli.cpp), index = network id.
const NETWORKS: [&str; 7] = [
    "not_publicly_routable",
    "ipv4",
    "ipv6",
    "onion",
    "i2p",
    "cjdns",
    "internal",
];
/// Core's `NETWORK_SHORT_NAMES`.
const NETWORK_SHORT_NAMES: [&str; 7] = ["npr", "ipv4", "ipv6", "onion", "i2p", "cjdns", "int"];
/// Core's `UNREACHABLE_NETWORK_IDS`: not publicly routable and internal.
const UNREACHABLE_NETWORK_IDS: [usize; 2] = [0, 6];

/// A JSON value as UniValue's `getValStr` prints it: strings raw, numbers
/// and booleans as their JSON text, null as nothing.
fn val_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

/// Core's `GetProgressBar`: 5 % steps of ▒ then ░.
fn progress_bar(progress: f64) -> String {
    let mut s = String::new();
    if !(0.0..=1.0).contains(&progress) {
        return s;
    }
    const INCREMENT: f64 = 0.05;
    let mut i = 0.0;
    while i < progress / INCREMENT {
        s.push('\u{2592}');
        i += 1.0;
    }
    let mut i = 0.0;
    while i < (1.0 - progress) / INCREMENT {
        s.push('\u{2591}');
        i += 1.0;
    }
    s
}

/// bitcoin-cli's `-getinfo` text (no colours: strand cli never colours),
/// from `getnetworkinfo` and `getblockchaininfo` (strand has no wallet, so
/// the wallet and balance lines are absent, as with a wallet-less Core).
pub fn format_getinfo(network: &Value, chain: &Value) -> String {
    let mut r = format!("Chain: {}\n", val_str(&chain["chain"]));
    r += &format!("Blocks: {}\n", val_str(&chain["blocks"]));
    r += &format!("Headers: {}\n", val_str(&chain["headers"]));
    let progress = chain["verificationprogress"].as_f64().unwrap_or(0.0);
    let mut bar = String::new();
    // Core shows the bar only below 99 %.
    if progress < 0.99 {
        bar = progress_bar(progress);
        bar.push(' ');
    }
    r += &format!("Verification progress: {bar}{:.4}%\n", progress * 100.0);
    r += &format!("Difficulty: {}\n\n", val_str(&chain["difficulty"]));
    r += &format!(
        "Network: in {}, out {}, total {}\n",
        val_str(&network["connections_in"]),
        val_str(&network["connections_out"]),
        val_str(&network["connections"])
    );
    r += &format!("Version: {}\n", val_str(&network["version"]));
    r += &format!("Time offset (s): {}\n", val_str(&network["timeoffset"]));
    // Proxies in first-seen order with the networks using each.
    let mut proxies: Vec<(String, Vec<String>)> = Vec::new();
    for n in network["networks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let proxy = val_str(&n["proxy"]);
        if proxy.is_empty() {
            continue;
        }
        let name = val_str(&n["name"]);
        match proxies.iter_mut().find(|(p, _)| *p == proxy) {
            Some((_, names)) => names.push(name),
            None => proxies.push((proxy, vec![name])),
        }
    }
    let proxies: Vec<String> = proxies
        .iter()
        .map(|(p, n)| format!("{p} ({})", n.join(", ")))
        .collect();
    r += &format!(
        "Proxies: {}\n",
        if proxies.is_empty() {
            "n/a".to_string()
        } else {
            proxies.join(", ")
        }
    );
    r += &format!(
        "Min tx relay fee rate (BTC/kvB): {}\n\n",
        val_str(&network["relayfee"])
    );
    let warnings = match &network["warnings"] {
        Value::Array(a) => a.iter().map(val_str).collect::<Vec<_>>().join("\n"),
        other => val_str(other),
    };
    r += &format!(
        "Warnings: {}",
        if warnings.is_empty() {
            "(none)".to_string()
        } else {
            warnings
        }
    );
    r
}

/// Parses `-netinfo`'s arguments: `[level [outonly]]` or `help`.
/// Returns `None` for help.
pub fn parse_netinfo_args(args: &[String]) -> Result<Option<(u8, bool)>, String> {
    let Some(first) = args.first() else {
        return Ok(Some((0, false)));
    };
    if first == "help" || first == "h" {
        return Ok(None);
    }
    let n: u8 = first.parse().map_err(|_| {
        format!(
            "invalid -netinfo level argument: {first}\nFor more information, run: strand cli -netinfo help"
        )
    })?;
    let level = n.min(NETINFO_MAX_LEVEL);
    let outonly = match args.get(1).map(String::as_str) {
        None => false,
        Some("o" | "outonly") if n > 0 => true,
        Some(s) if n > 0 => {
            return Err(format!(
                "invalid -netinfo outonly argument: {s}\nFor more information, run: strand cli -netinfo help"
            ))
        }
        Some(s) => {
            return Err(format!(
                "invalid -netinfo outonly argument: {s}\nThe outonly argument is only valid for a level greater than 0 (the first argument). For more information, run: strand cli -netinfo help"
            ))
        }
    };
    Ok(Some((level, outonly)))
}

/// `-netinfo help`.
pub const NETINFO_HELP: &str = "\
-netinfo (level [outonly]) | help

Returns a network peer connections dashboard with information from the remote server,
as bitcoin-cli -netinfo does, from getpeerinfo and getnetworkinfo.
1. level (integer 0-4, optional)  0 - peer counts by reachable network, block relay and
                                      manual peers, and the local addresses
                                  1 - like 0, preceded by a peers listing
                                  2 - like 1 with an address column
                                  3 - like 1 with a version column
                                  4 - like 1 with both
2. outonly (\"outonly\" or \"o\", optional)  outbound peers only (with a level above 0)
";

struct Peer {
    addr: String,
    sub_version: String,
    conn_type: String,
    network: &'static str,
    age: String,
    services: String,
    transport: String,
    min_ping: f64,
    ping: f64,
    addr_processed: i64,
    addr_rate_limited: i64,
    last_blck: i64,
    last_recv: i64,
    last_send: i64,
    last_trxn: i64,
    id: i64,
    mapped_as: i64,
    version: i64,
    addr_relay: bool,
    hb_from: bool,
    hb_to: bool,
    outbound: bool,
    tx_relay: bool,
}

fn network_id(name: &str) -> Option<usize> {
    NETWORKS.iter().position(|n| *n == name)
}

/// Core's `FormatServices`: one letter per service (`l` for
/// NETWORK_LIMITED, `2` for P2P_V2, else the name's first letter).
fn format_services(names: &Value) -> String {
    names
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|s| match s.as_str().unwrap_or("") {
            "NETWORK_LIMITED" => 'l',
            "P2P_V2" => '2',
            s => s.chars().next().unwrap_or(' ').to_ascii_lowercase(),
        })
        .collect()
}

/// Core's `ServicesList`: "network, witness, network limited".
fn services_list(names: &Value) -> String {
    names
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|s| s.as_str().unwrap_or("").replace('_', " ").to_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

fn conn_type_short(t: &str) -> &'static str {
    match t {
        "outbound-full-relay" => "full",
        "block-relay-only" => "block",
        "manual" => "manual",
        "feeler" => "feeler",
        "addr-fetch" => "addr",
        "private-broadcast" => "priv",
        _ => "",
    }
}

/// Core's `PingTimeToString`: milliseconds, "" for none, "-" above 999999.
fn ping_ms(seconds: f64) -> String {
    if seconds < 0.0 {
        return String::new();
    }
    let ms = (1000.0 * seconds).round();
    if ms > 999_999.0 {
        "-".into()
    } else {
        format!("{ms}")
    }
}

/// bitcoin-cli's `-netinfo` dashboard for `level` (0–4) from `getpeerinfo`
/// and `getnetworkinfo`; `chain` is " regtest" etc. (empty on mainnet),
/// `now` the current Unix time.
pub fn format_netinfo(
    peers: &Value,
    network: &Value,
    level: u8,
    outonly: bool,
    chain: &str,
    now: i64,
) -> String {
    let details = level > 0;
    let address_selected = level == 2 || level == 4;
    let version_selected = level == 3 || level == 4;
    let mut counts = [[0u32; NETWORKS.len() + 1]; 3];
    let mut block_relay = 0u32;
    let mut manual = 0u32;
    let mut list: Vec<Peer> = Vec::new();
    let (mut max_addr, mut max_addrp, mut max_addrl, mut max_age, mut max_id, mut max_serv) =
        (0usize, 5usize, 6usize, 5usize, 2usize, 6usize);
    let mut asmap = false;
    for p in peers.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Some(net) = network_id(p["network"].as_str().unwrap_or("")) else {
            continue;
        };
        let outbound = !p["inbound"].as_bool().unwrap_or(false);
        let tx_relay = p["relaytxes"].as_bool().unwrap_or(true);
        let conn_type = val_str(&p["connection_type"]);
        let o = usize::from(outbound);
        counts[o][net] += 1;
        counts[o][NETWORKS.len()] += 1;
        counts[2][net] += 1;
        counts[2][NETWORKS.len()] += 1;
        if conn_type == "block-relay-only" {
            block_relay += 1;
        }
        if conn_type == "manual" {
            manual += 1;
        }
        if (outonly && !outbound) || !details {
            continue;
        }
        let conn_time = int(&p["conntime"]);
        let peer = Peer {
            addr: val_str(&p["addr"]),
            sub_version: val_str(&p["subver"]),
            network: NETWORK_SHORT_NAMES[net],
            age: if conn_time == 0 {
                String::new()
            } else {
                ((now - conn_time) / 60).to_string()
            },
            services: format_services(&p["servicesnames"]),
            transport: p["transport_protocol_type"]
                .as_str()
                .unwrap_or("v1")
                .to_string(),
            min_ping: p["minping"].as_f64().unwrap_or(-1.0),
            ping: p["pingtime"].as_f64().unwrap_or(-1.0),
            addr_processed: int(&p["addr_processed"]),
            addr_rate_limited: int(&p["addr_rate_limited"]),
            last_blck: int(&p["last_block"]),
            last_recv: int(&p["lastrecv"]),
            last_send: int(&p["lastsend"]),
            last_trxn: int(&p["last_transaction"]),
            id: int(&p["id"]),
            mapped_as: int(&p["mapped_as"]),
            version: int(&p["version"]),
            addr_relay: p["addr_relay_enabled"].as_bool().unwrap_or(false),
            hb_from: p["bip152_hb_from"].as_bool().unwrap_or(false),
            hb_to: p["bip152_hb_to"].as_bool().unwrap_or(false),
            outbound,
            tx_relay,
            conn_type,
        };
        max_addr = max_addr.max(peer.addr.len() + 1);
        max_addrp = max_addrp.max(peer.addr_processed.to_string().len());
        max_addrl = max_addrl.max(peer.addr_rate_limited.to_string().len());
        max_age = max_age.max(peer.age.len());
        max_id = max_id.max(peer.id.to_string().len());
        max_serv = max_serv.max(peer.services.len());
        asmap |= peer.mapped_as != 0;
        list.push(peer);
    }

    let services = if details {
        format!(
            " - services {}",
            format_services(&network["localservicesnames"])
        )
    } else {
        String::new()
    };
    let mut r = format!(
        "strand client v{}{chain} - server {}{}{services}\n\n",
        env!("CARGO_PKG_VERSION"),
        int(&network["protocolversion"]),
        val_str(&network["subversion"])
    );

    if details && !list.is_empty() {
        // Core's order: inbound first, then by minimum ping.
        list.sort_by(|a, b| {
            (a.outbound, a.min_ping)
                .partial_cmp(&(b.outbound, b.min_ping))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        r += &format!(
            "<->   type   net {:>max_serv$}  v  mping   ping send recv  txn  blk  hb {:>max_addrp$}{:>max_addrl$}{:>max_age$} ",
            "serv", "addrp", "addrl", "age"
        );
        if asmap {
            r += " asmap ";
        }
        let addr_w = if address_selected { max_addr } else { 0 };
        r += &format!(
            "{:>max_id$} {:<addr_w$}{}\n",
            "id",
            if address_selected { "address" } else { "" },
            if version_selected { "version" } else { "" }
        );
        let since = |t: i64, div: i64| {
            if t != 0 {
                ((now - t) / div).to_string()
            } else {
                String::new()
            }
        };
        for p in &list {
            let version = format!("{}{}", p.version, p.sub_version);
            let v = match p.transport.as_bytes() {
                [b'v', c] => *c as char,
                _ => ' ',
            };
            let txn = if p.last_trxn != 0 {
                since(p.last_trxn, 60)
            } else if p.tx_relay {
                String::new()
            } else {
                "*".into()
            };
            let addrp = if p.addr_processed != 0 {
                p.addr_processed.to_string()
            } else if p.addr_relay {
                String::new()
            } else {
                ".".into()
            };
            let addrl = if p.addr_rate_limited != 0 {
                p.addr_rate_limited.to_string()
            } else {
                String::new()
            };
            let asmap_w = if asmap { 7 } else { 0 };
            let mapped = if asmap && p.mapped_as != 0 {
                p.mapped_as.to_string()
            } else {
                String::new()
            };
            r += &format!(
                "{:>3} {:>6} {:>5} {:>max_serv$} {:>2}{:>7}{:>7}{:>5}{:>5}{:>5}{:>5}  {:>2} {:>max_addrp$}{:>max_addrl$}{:>max_age$}{:>asmap_w$} {:>max_id$} {:<addr_w$}{}\n",
                if p.outbound { "out" } else { "in" },
                conn_type_short(&p.conn_type),
                p.network,
                p.services,
                v,
                ping_ms(p.min_ping),
                ping_ms(p.ping),
                since(p.last_send, 1),
                since(p.last_recv, 1),
                txn,
                since(p.last_blck, 60),
                format!(
                    "{}{}",
                    if p.hb_to { "." } else { " " },
                    if p.hb_from { "*" } else { " " }
                ),
                addrp,
                addrl,
                p.age,
                mapped,
                p.id,
                if address_selected { p.addr.as_str() } else { "" },
                if version_selected && version != "0" {
                    version.as_str()
                } else {
                    ""
                },
            );
        }
        r += &format!(
            "                {:>max_serv$}         ms     ms  sec  sec  min  min                {:>max_age$}\n\n",
            "", "min"
        );
    }

    // Peer counts by reachable network.
    r += "     ";
    let mut columns: Vec<usize> = Vec::new();
    for n in network["networks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if n["reachable"].as_bool().unwrap_or(false) {
            let name = n["name"].as_str().unwrap_or("");
            if let Some(id) = network_id(name) {
                r += &format!("{name:>8}");
                columns.push(id);
            }
        }
    }
    for id in UNREACHABLE_NETWORK_IDS {
        if counts[2][id] == 0 {
            continue;
        }
        r += &format!("{:>8}", NETWORK_SHORT_NAMES[id]);
        columns.push(id);
    }
    r += "   total   block";
    if manual > 0 {
        r += "  manual";
    }
    for (i, row) in ["in", "out", "total"].iter().enumerate() {
        r += &format!("\n{row:<5}");
        for &n in &columns {
            r += &format!("{:>8}", counts[i][n]);
        }
        r += &format!("   {:>5}", counts[i][NETWORKS.len()]);
        if i == 1 {
            r += &format!("   {block_relay:>5}");
            if manual > 0 {
                r += &format!("   {manual:>5}");
            }
        }
    }
    if !details {
        r += &format!(
            "\n\nLocal services: {}",
            services_list(&network["localservicesnames"])
        );
    }
    r += "\n\nLocal addresses";
    let locals = network["localaddresses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if locals.is_empty() {
        r += ": n/a\n";
    } else {
        let w = locals
            .iter()
            .map(|a| val_str(&a["address"]).len() + 1)
            .max()
            .unwrap_or(0);
        for a in locals {
            r += &format!(
                "\n{:<w$}    port {:>6}    score {:>6}",
                val_str(&a["address"]),
                int(&a["port"]),
                int(&a["score"])
            );
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn network() -> Value {
        let mut v = json!({
            "version": 310000, "subversion": "/strand:0.1.0/", "protocolversion": 70016,
            "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
            "timeoffset": 0, "connections": 2, "connections_in": 1, "connections_out": 1,
            "networks": [
                {"name": "ipv4", "reachable": true, "proxy": ""},
                {"name": "ipv6", "reachable": true, "proxy": ""},
                {"name": "onion", "reachable": false, "proxy": "127.0.0.1:9050"},
            ],
            "localaddresses": [], "warnings": [],
        });
        v["relayfee"] = serde_json::from_str("0.00001000").unwrap();
        v
    }

    fn peers() -> Value {
        json!([
            {"id": 0, "addr": "127.0.0.1:5000", "network": "not_publicly_routable",
             "inbound": false, "connection_type": "manual", "relaytxes": true,
             "servicesnames": ["NETWORK", "WITNESS"], "transport_protocol_type": "v1",
             "minping": 0.001, "pingtime": 0.002, "lastsend": 990, "lastrecv": 995,
             "last_transaction": 0, "last_block": 940, "conntime": 880, "version": 70016,
             "subver": "/Satoshi:31.0.0/", "bip152_hb_to": false, "bip152_hb_from": false,
             "addr_processed": 0, "addr_rate_limited": 0, "addr_relay_enabled": false},
            {"id": 1, "addr": "127.0.0.1:6000", "network": "not_publicly_routable",
             "inbound": true, "connection_type": "inbound", "relaytxes": false,
             "servicesnames": [], "lastsend": 0, "lastrecv": 0, "last_transaction": 0,
             "last_block": 0, "conntime": 1000, "version": 0, "subver": "",
             "bip152_hb_to": false, "bip152_hb_from": false, "addr_processed": 3},
        ])
    }

    #[test]
    fn netinfo_level_0_counts_by_network() {
        let out = format_netinfo(&peers(), &network(), 0, false, " regtest", 1000);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "strand client v{} regtest - server 70016/strand:0.1.0/",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            lines[2],
            "         ipv4    ipv6     npr   total   block  manual"
        );
        assert_eq!(lines[3], "in          0       0       1       1");
        assert_eq!(
            lines[4],
            "out         0       0       1       1       0       1"
        );
        assert_eq!(lines[5], "total       0       0       2       2");
        assert_eq!(
            lines[7],
            "Local services: network, witness, network limited"
        );
        assert_eq!(lines[9], "Local addresses: n/a");
    }

    #[test]
    fn netinfo_level_4_lists_peers_inbound_first() {
        let out = format_netinfo(&peers(), &network(), 4, false, "", 1000);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].ends_with(" - services nwl"), "{}", lines[0]);
        assert_eq!(
            lines[2],
            "<->   type   net   serv  v  mping   ping send recv  txn  blk  hb addrp addrl  age id address        version"
        );
        assert!(lines[3].starts_with(" in          npr"), "{}", lines[3]);
        assert!(lines[3].contains("127.0.0.1:6000"), "{}", lines[3]);
        assert!(lines[3].contains("  * "), "no tx relay: {}", lines[3]);
        assert_eq!(
            lines[4],
            "out manual   npr     nw  1      1      2   10    5         1         .          2  0 127.0.0.1:5000 70016/Satoshi:31.0.0/"
        );
        assert!(lines[5]
            .trim_start()
            .starts_with("ms     ms  sec  sec  min  min"));
        let out = format_netinfo(&peers(), &network(), 1, true, "", 1000);
        assert!(!out.contains("127.0.0.1:6000") && !out.contains(" in "));
    }

    #[test]
    fn netinfo_arguments() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_netinfo_args(&s(&[])), Ok(Some((0, false))));
        assert_eq!(parse_netinfo_args(&s(&["9", "o"])), Ok(Some((4, true))));
        assert_eq!(parse_netinfo_args(&s(&["help"])), Ok(None));
        assert!(parse_netinfo_args(&s(&["x"])).is_err());
        assert!(parse_netinfo_args(&s(&["0", "o"])).is_err());
    }

    #[test]
    fn getinfo_matches_bitcoin_cli() {
        let mut chain = json!({"chain": "regtest", "blocks": 3, "headers": 3,
                           "verificationprogress": 1.0});
        chain["difficulty"] = serde_json::from_str("4.656542373906925e-10").unwrap();
        let out = format_getinfo(&network(), &chain);
        assert_eq!(
            out,
            "Chain: regtest\nBlocks: 3\nHeaders: 3\nVerification progress: 100.0000%\n\
             Difficulty: 4.656542373906925e-10\n\nNetwork: in 1, out 1, total 2\n\
             Version: 310000\nTime offset (s): 0\nProxies: 127.0.0.1:9050 (onion)\n\
             Min tx relay fee rate (BTC/kvB): 0.00001000\n\nWarnings: (none)"
        );
        let chain = json!({"chain": "main", "verificationprogress": 0.5});
        let out = format_getinfo(&network(), &chain);
        assert!(out.contains(&format!(
            "Verification progress: {}{} 50.0000%",
            "\u{2592}".repeat(10),
            "\u{2591}".repeat(10)
        )));
    }
}
