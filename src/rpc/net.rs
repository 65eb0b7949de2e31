//! Network methods (Core's `rpc/net.cpp`): peers (`getpeerinfo` with
//! Core's service names and network classes), `getnettotals`, `ping`,
//! connection count, network info, `addnode`, `getaddednodeinfo`,
//! `disconnectnode`, bans, the address manager's `getnodeaddresses`,
//! `getaddrmaninfo` and `addpeeraddress`. Runs on the RPC worker threads.

use bitcoin::Amount;
use serde_json::{json, Map, Value};

use super::backend::*;
use super::protocol::{codes, RpcFailure};
use super::util::*;
use crate::netaddr::SubNet;

/// The `version` `getnetworkinfo` reports: Bitcoin Core's `CLIENT_VERSION`
/// numbering for the Core release whose RPC and P2P behaviour strand
/// follows (v31.0.0 = 310000), not strand's own 0.1.0 (README, Decisions:
/// clients such as `bitcoin-cli -netinfo` compare it against Core's
/// numbers). strand's own version is in `subversion` (`/strand:0.1.0/`).
pub const CLIENT_VERSION: u32 = 310_000;

/// Core's service flag names.
pub fn service_names(flags: bitcoin::p2p::ServiceFlags) -> Vec<String> {
    let bits = flags.to_u64();
    (0..64)
        .filter(|i| bits & (1u64 << i) != 0)
        .map(|i| match 1u64 << i {
            1 => "NETWORK".to_string(),
            4 => "BLOOM".to_string(),
            8 => "WITNESS".to_string(),
            64 => "COMPACT_FILTERS".to_string(),
            1024 => "NETWORK_LIMITED".to_string(),
            2048 => "P2P_V2".to_string(),
            _ => format!("UNKNOWN[2^{i}]"),
        })
        .collect()
}

/// Core's `GetNetworkName(GetNetClass())` for a peer's address.
pub(super) fn net_class(addr: &std::net::SocketAddr) -> &'static str {
    let a = crate::netaddr::addr_v2(addr.ip());
    crate::addrtext::network_name(crate::netaddr::net_class(&a, false))
}

pub(super) fn peer_json(p: &PeerInfo) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("addr".into(), json!(p.addr.to_string()));
    if let Some(l) = p.addrlocal {
        m.insert("addrlocal".into(), json!(l.to_string()));
    }
    m.insert("network".into(), json!(net_class(&p.addr)));
    m.insert(
        "services".into(),
        json!(format!("{:016x}", p.services.to_u64())),
    );
    m.insert("servicesnames".into(), json!(service_names(p.services)));
    m.insert("relaytxes".into(), json!(p.relaytxes));
    m.insert("lastsend".into(), json!(p.lastsend));
    m.insert("lastrecv".into(), json!(p.lastrecv));
    m.insert("last_transaction".into(), json!(p.last_transaction));
    m.insert("last_block".into(), json!(p.last_block));
    m.insert("bytessent".into(), json!(p.bytessent));
    m.insert("bytesrecv".into(), json!(p.bytesrecv));
    m.insert("conntime".into(), json!(p.conntime));
    m.insert("timeoffset".into(), json!(0));
    if let Some(t) = p.pingtime {
        m.insert("pingtime".into(), float_json(t));
    }
    if let Some(t) = p.minping {
        m.insert("minping".into(), float_json(t));
    }
    m.insert("version".into(), json!(p.version));
    m.insert("subver".into(), json!(p.subver));
    m.insert("inbound".into(), json!(p.inbound));
    m.insert("bip152_hb_to".into(), json!(false));
    m.insert("bip152_hb_from".into(), json!(false));
    m.insert("startingheight".into(), json!(p.startingheight));
    m.insert("presynced_headers".into(), json!(p.presynced_headers));
    m.insert("synced_headers".into(), json!(p.synced_headers));
    m.insert("synced_blocks".into(), json!(p.synced_blocks));
    m.insert("inflight".into(), json!(p.inflight));
    // Core's `m_addr_relay_enabled`: set up for peers that relay addresses
    // (never block-relay-only ones): outbound full-relay peers get our
    // `getaddr`; inbound ones once they sent addresses.
    let block_only = p.connection_type.as_str() == "block-relay-only";
    m.insert(
        "addr_relay_enabled".into(),
        json!(!block_only && (!p.inbound || p.addr_processed > 0)),
    );
    m.insert("addr_processed".into(), json!(p.addr_processed));
    m.insert("addr_rate_limited".into(), json!(p.addr_rate_limited));
    m.insert("permissions".into(), json!([]));
    m.insert("minfeefilter".into(), amount_json(Amount::ZERO));
    m.insert("bytessent_per_msg".into(), json!({}));
    m.insert("bytesrecv_per_msg".into(), json!({}));
    m.insert("connection_type".into(), json!(p.connection_type.as_str()));
    m.insert("transport_protocol_type".into(), json!("v1"));
    m.insert("session_id".into(), json!(""));
    Value::Object(m)
}

pub(super) fn h_getpeerinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(Value::Array(
        d.backend.peer_info()?.iter().map(peer_json).collect(),
    ))
}

/// Core's `getnettotals`. strand has no upload target (`-maxuploadtarget`
/// 0 in Core), so `uploadtarget` shows Core's values for "no limit".
pub(super) fn h_getnettotals(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let t = d.backend.net_totals()?;
    Ok(json!({
        "totalbytesrecv": t.totalbytesrecv,
        "totalbytessent": t.totalbytessent,
        "timemillis": t.timemillis,
        "uploadtarget": {
            "timeframe": 86400,
            "target": 0,
            "target_reached": false,
            "serve_historical_blocks": true,
            "bytes_left_in_cycle": 0,
            "time_left_in_cycle": 0,
        },
    }))
}

/// Core's `ping`: a ping to every peer; results show in `getpeerinfo`.
pub(super) fn h_ping(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    d.backend.ping()?;
    Ok(Value::Null)
}

pub(super) fn h_getconnectioncount(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    Ok(json!(d.backend.connection_count()?))
}

pub(super) fn h_getnetworkinfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let i = d.backend.network_info()?;
    let networks: Vec<Value> = ["ipv4", "ipv6", "onion", "i2p", "cjdns"]
        .iter()
        .map(|n| {
            let reachable = matches!(*n, "ipv4" | "ipv6");
            json!({
                "name": n,
                "limited": !reachable,
                "reachable": reachable,
                "proxy": "",
                "proxy_randomize_credentials": false,
            })
        })
        .collect();
    Ok(json!({
        "version": i.version,
        "subversion": i.subversion,
        "protocolversion": i.protocolversion,
        "localservices": format!("{:016x}", i.localservices.to_u64()),
        "localservicesnames": service_names(i.localservices),
        "localrelay": i.localrelay,
        "timeoffset": 0,
        "networkactive": i.networkactive,
        "connections": i.connections_in + i.connections_out,
        "connections_in": i.connections_in,
        "connections_out": i.connections_out,
        "networks": networks,
        "relayfee": amount_json(i.relayfee),
        "incrementalfee": amount_json(i.incrementalfee),
        "localaddresses": i.localaddresses.iter().map(|l| json!({
            "address": l.address, "port": l.port, "score": l.score
        })).collect::<Vec<_>>(),
        "warnings": i.warnings,
    }))
}

pub(super) fn h_addnode(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let node = a.str(0)?.to_string();
    let command = match a.str(1)? {
        "add" => AddNodeCommand::Add,
        "remove" => AddNodeCommand::Remove,
        "onetry" => AddNodeCommand::OneTry,
        _ => return Err(RpcFailure::misc(a.help())),
    };
    d.backend.add_node(node, command)?;
    Ok(Value::Null)
}

/// Core's `getaddednodeinfo`: every added node (or the one asked for),
/// whether it is connected, and the connection's address.
pub(super) fn h_getaddednodeinfo(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let wanted = a.opt_str(0);
    let list = d.backend.added_node_info()?;
    let list: Vec<_> = match wanted {
        Some(node) => {
            let found: Vec<_> = list.into_iter().filter(|n| n.addednode == node).collect();
            if found.is_empty() {
                return Err(RpcFailure::new(
                    codes::RPC_CLIENT_NODE_NOT_ADDED,
                    "Error: Node has not been added.",
                ));
            }
            found
        }
        None => list,
    };
    Ok(Value::Array(
        list.iter()
            .map(|n| {
                let addresses: Vec<Value> = n
                    .connected
                    .iter()
                    .map(|c| json!({"address": c.to_string(), "connected": "outbound"}))
                    .collect();
                json!({
                    "addednode": n.addednode.to_string(),
                    "connected": n.connected.is_some(),
                    "addresses": addresses,
                })
            })
            .collect(),
    ))
}

pub(super) fn h_disconnectnode(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let address = a.opt_str(0);
    let target = match (address, a.get(1)) {
        (Some(addr), None) => DisconnectTarget::Address(addr.to_string()),
        (None | Some(""), Some(_)) => {
            let id = a.int(1)?.unwrap_or(-1);
            DisconnectTarget::Id(u64::try_from(id).map_err(|_| {
                RpcFailure::new(
                    codes::RPC_CLIENT_NODE_NOT_CONNECTED,
                    "Node not found in connected nodes",
                )
            })?)
        }
        _ => {
            return Err(RpcFailure::new(
                codes::RPC_INVALID_PARAMS,
                "Only one of address and nodeid should be provided.",
            ))
        }
    };
    d.backend.disconnect_node(target)?;
    Ok(Value::Null)
}

pub(super) fn h_setban(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let command = a.str(1)?;
    if command != "add" && command != "remove" {
        return Err(RpcFailure::misc(a.help()));
    }
    let subnet: SubNet = a.str(0)?.parse().map_err(|_| {
        RpcFailure::new(
            codes::RPC_CLIENT_INVALID_IP_OR_SUBNET,
            "Error: Invalid IP/Subnet",
        )
    })?;
    let cmd = if command == "add" {
        let bantime = a.int(2)?.unwrap_or(0);
        let absolute = a.bool_or(3, false);
        if absolute {
            let until = u64::try_from(bantime).unwrap_or(0);
            if until < now_secs() {
                return Err(RpcFailure::invalid_parameter(
                    "Error: Absolute timestamp is in the past",
                ));
            }
            BanCommand::Add {
                duration: None,
                until: Some(until),
            }
        } else {
            BanCommand::Add {
                duration: u64::try_from(bantime).ok().filter(|&t| t > 0),
                until: None,
            }
        }
    } else {
        BanCommand::Remove
    };
    d.backend.set_ban(subnet, cmd)?;
    Ok(Value::Null)
}

pub(super) fn h_listbanned(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let now = now_secs() as i64;
    Ok(Value::Array(
        d.backend
            .list_banned()?
            .iter()
            .map(|b| {
                json!({
                    "address": b.subnet.to_string(),
                    "ban_created": b.ban_created,
                    "banned_until": b.banned_until,
                    "ban_duration": b.banned_until as i64 - b.ban_created as i64,
                    "time_remaining": b.banned_until as i64 - now,
                })
            })
            .collect(),
    ))
}

/// Core's `getnodeaddresses ( count "network" )`.
pub(super) fn h_getnodeaddresses(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let count = a.int(0)?.unwrap_or(1);
    let count = usize::try_from(count)
        .map_err(|_| RpcFailure::new(codes::RPC_INVALID_PARAMETER, "Address count out of range"))?;
    let network = match a.opt_str(1) {
        None => None,
        Some(name) => Some(crate::addrtext::parse_network(name).ok_or_else(|| {
            RpcFailure::new(
                codes::RPC_INVALID_PARAMETER,
                format!("Network not recognized: {name}"),
            )
        })?),
    };
    Ok(Value::Array(
        d.backend
            .node_addresses(count, network)?
            .into_iter()
            .map(|n| {
                json!({
                    "time": n.time,
                    "services": n.services.to_u64(),
                    "address": n.address,
                    "port": n.port,
                    "network": n.network,
                })
            })
            .collect(),
    ))
}

/// Core's `getaddrmaninfo`.
pub(super) fn h_getaddrmaninfo(d: &Dispatcher, _: &Args) -> RpcResult<Value> {
    let mut m = Map::new();
    for c in d.backend.addrman_info()? {
        m.insert(
            c.network.into(),
            json!({"new": c.new, "tried": c.tried, "total": c.new + c.tried}),
        );
    }
    Ok(Value::Object(m))
}

/// Core's `addpeeraddress "address" port ( tried )` (a test helper).
pub(super) fn h_addpeeraddress(d: &Dispatcher, a: &Args) -> RpcResult<Value> {
    let addr = crate::addrtext::parse_addr(a.str(0)?, false).ok_or_else(|| {
        RpcFailure::new(codes::RPC_CLIENT_INVALID_IP_OR_SUBNET, "Invalid IP address")
    })?;
    let port = a.int(1)?.unwrap_or(0);
    let port = u16::try_from(port)
        .map_err(|_| RpcFailure::new(codes::RPC_TYPE_ERROR, "JSON integer out of range"))?;
    let tried = a.bool_or(2, false);
    Ok(match d.backend.add_peer_address(addr, port, tried)? {
        None => json!({"success": true}),
        Some(error) => json!({"error": error, "success": false}),
    })
}
