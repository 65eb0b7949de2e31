//! A fake peer that holds strand to the rules btcd and Bitcoin Core apply
//! to what they receive, so a test fails the moment strand sends something
//! either node would disconnect it for or silently ignore.
//!
//! The rules are written from btcd's `peer/peer.go` (negotiation,
//! `inHandler`), `server.go` (`OnVersion`, `OnAddr`, `OnAddrV2`) and
//! `netsync/manager.go` (`handleHeadersMsg`, `handleBlockMsg`), and from
//! Core's `net_processing.cpp` (`ProcessMessage`: pre-verack handling,
//! `WTXIDRELAY`, `SENDADDRV2`, `INV`, `GETDATA`, `GETHEADERS`, `ADDR`), with
//! BIP130/133/152/155/339's version gates. Every message strand sends passes
//! through [`RulePeer::recv`], which records each broken rule in
//! [`RulePeer::violations`].

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::ServiceFlags;
use bitcoin::BlockHash;

use super::{version_message, FakePeer};

/// Whose rules the peer applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// btcd (master): protocol 70016, sends `sendaddrv2` but not
    /// `wtxidrelay` (unknown to its wire package, skipped), syncs with
    /// `getblocks` on regtest (no checkpoints: not headers-first).
    Btcd,
    /// Bitcoin Core: sends `wtxidrelay` and `sendaddrv2`, ignores what it
    /// does not expect.
    Core,
}

/// BIP339's and BIP155's version (Core's `WTXID_RELAY_VERSION`).
pub const WTXID_RELAY_VERSION: u32 = 70016;
/// BIP130 (`sendheaders`).
pub const SENDHEADERS_VERSION: u32 = 70012;
/// BIP133 (`feefilter`).
pub const FEEFILTER_VERSION: u32 = 70013;
/// BIP152 (`sendcmpct`).
pub const SHORT_IDS_BLOCKS_VERSION: u32 = 70014;

/// A scripted peer that checks every message it receives; see the module docs.
pub struct RulePeer {
    pub peer: FakePeer,
    pub profile: Profile,
    /// The protocol version we announced.
    pub our_version: u32,
    /// What we sent before our verack.
    pub we_sent_wtxidrelay: bool,
    pub we_sent_sendaddrv2: bool,
    /// What strand sent before its verack.
    pub got_version: bool,
    pub got_verack: bool,
    pub strand_wtxidrelay: bool,
    pub strand_sendaddrv2: bool,
    /// `getheaders` we sent that are not yet answered.
    pub headers_requested: u32,
    /// Blocks we asked for with `getdata`.
    pub requested_blocks: HashSet<BlockHash>,
    /// Every broken rule, in order.
    pub violations: Vec<String>,
    /// Commands received, in order.
    pub received: Vec<String>,
}

impl RulePeer {
    fn new(peer: FakePeer, profile: Profile, our_version: u32) -> RulePeer {
        RulePeer {
            peer,
            profile,
            our_version,
            we_sent_wtxidrelay: false,
            we_sent_sendaddrv2: false,
            got_version: false,
            got_verack: false,
            strand_wtxidrelay: false,
            strand_sendaddrv2: false,
            headers_requested: 0,
            requested_blocks: HashSet::new(),
            violations: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Connects to strand (strand is the inbound side) and completes the
    /// handshake as `profile` would: version; after strand's version the
    /// profile's negotiation messages; verack; then waits for strand's verack.
    pub fn connect(
        node: SocketAddr,
        profile: Profile,
        version: u32,
        services: ServiceFlags,
        start_height: i32,
    ) -> Result<RulePeer, String> {
        Self::connect_with(node, profile, version, services, start_height, vec![])
    }

    /// [`RulePeer::connect`], sending `extra` just before our verack.
    pub fn connect_with(
        node: SocketAddr,
        profile: Profile,
        version: u32,
        services: ServiceFlags,
        start_height: i32,
        extra: Vec<NetworkMessage>,
    ) -> Result<RulePeer, String> {
        let peer = FakePeer::connect(node).map_err(|e| format!("connect: {e}"))?;
        let mut p = RulePeer::new(peer, profile, version);
        p.send(versioned(version, start_height, services))?;
        p.finish_handshake(extra)?;
        Ok(p)
    }

    /// Takes a connection strand dialled (strand is the outbound side and
    /// speaks first) and completes the handshake as `profile` would.
    pub fn accept(
        stream: TcpStream,
        profile: Profile,
        version: u32,
        services: ServiceFlags,
        start_height: i32,
    ) -> Result<RulePeer, String> {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let reader = std::io::BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let peer = FakePeer::from_parts(stream, reader);
        let mut p = RulePeer::new(peer, profile, version);
        let first = p.recv()?;
        if !matches!(first, NetworkMessage::Version(_)) {
            return Err(format!("strand's first message is '{}'", first.command()));
        }
        p.send(versioned(version, start_height, services))?;
        p.finish_handshake(vec![])?;
        Ok(p)
    }

    /// Our negotiation messages and verack (after strand's version), then
    /// strand's messages up to its verack.
    fn finish_handshake(&mut self, extra: Vec<NetworkMessage>) -> Result<(), String> {
        while !self.got_version {
            self.recv()?;
        }
        if self.our_version >= WTXID_RELAY_VERSION {
            if self.profile == Profile::Core {
                self.send(NetworkMessage::WtxidRelay)?;
            }
            self.send(NetworkMessage::SendAddrV2)?;
        }
        for m in extra {
            self.send(m)?;
        }
        self.send(NetworkMessage::Verack)?;
        while !self.got_verack {
            self.recv()?;
        }
        Ok(())
    }

    /// True if wtxid relay is negotiated on this connection (BIP339: both
    /// sent `wtxidrelay` before verack, common version >= 70016).
    pub fn wtxid_relay(&self) -> bool {
        self.we_sent_wtxidrelay && self.strand_wtxidrelay && self.our_version >= WTXID_RELAY_VERSION
    }

    /// Sends `msg`, remembering what it asks for.
    pub fn send(&mut self, msg: NetworkMessage) -> Result<(), String> {
        match &msg {
            NetworkMessage::WtxidRelay => self.we_sent_wtxidrelay = true,
            NetworkMessage::SendAddrV2 => self.we_sent_sendaddrv2 = true,
            NetworkMessage::GetHeaders(_) => self.headers_requested += 1,
            NetworkMessage::GetData(items) => {
                for i in items {
                    if let Inventory::Block(h) | Inventory::WitnessBlock(h) = i {
                        self.requested_blocks.insert(*h);
                    }
                }
            }
            _ => {}
        }
        let cmd = msg.command().to_string();
        self.peer.send(msg).map_err(|e| format!("send {cmd}: {e}"))
    }

    /// Receives one message, checks it against the profile's rules
    /// (recording violations) and answers pings.
    pub fn recv(&mut self) -> Result<NetworkMessage, String> {
        let msg = self.peer.recv().map_err(|e| format!("recv: {e}"))?;
        self.received.push(msg.command().to_string());
        if let Some(v) = self.check(&msg) {
            self.violations.push(v);
        }
        if let NetworkMessage::Ping(n) = msg {
            self.send(NetworkMessage::Pong(n))?;
        }
        Ok(msg)
    }

    /// Receives until `want` matches, within `timeout`.
    pub fn recv_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut want: impl FnMut(&NetworkMessage) -> bool,
    ) -> Result<NetworkMessage, String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            self.peer
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| e.to_string())?;
            match self.recv() {
                Ok(m) if want(&m) => return Ok(m),
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for {what}: {e}")),
            }
        }
        Err(format!("waiting for {what}: timed out"))
    }

    /// Sends a ping and reads everything up to its pong: a fence that shows
    /// what strand sent before it, and that the connection is alive.
    pub fn fence(&mut self, nonce: u64) -> Result<Vec<NetworkMessage>, String> {
        self.send(NetworkMessage::Ping(nonce))?;
        let mut before = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Instant::now() > deadline {
                return Err("no pong within 10 s".into());
            }
            match self.recv()? {
                NetworkMessage::Pong(n) if n == nonce => return Ok(before),
                m => before.push(m),
            }
        }
    }

    /// Panics with every violation, if any.
    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "{:?} rules broken by strand: {:#?}\nmessages received: {:?}",
            self.profile,
            self.violations,
            self.received
        );
    }

    /// The rule `msg` breaks, if any.
    fn check(&mut self, msg: &NetworkMessage) -> Option<String> {
        let cmd = msg.command().to_string();
        let cmd = cmd.as_str();
        let who = match self.profile {
            Profile::Btcd => "btcd",
            Profile::Core => "Core",
        };
        if !self.got_version {
            return match msg {
                NetworkMessage::Version(_) => {
                    self.got_version = true;
                    None
                }
                // btcd: "a version message must precede all others";
                // Core ignores (and forgets) anything before version.
                _ => Some(format!("'{cmd}' before version")),
            };
        }
        if !self.got_verack {
            return match msg {
                NetworkMessage::Version(_) => Some("duplicate version".into()),
                NetworkMessage::Verack => {
                    self.got_verack = true;
                    None
                }
                NetworkMessage::WtxidRelay => {
                    self.strand_wtxidrelay = true;
                    (self.our_version < WTXID_RELAY_VERSION).then(|| {
                        format!("wtxidrelay sent to a peer at version {}", self.our_version)
                    })
                }
                NetworkMessage::SendAddrV2 => {
                    self.strand_sendaddrv2 = true;
                    (self.our_version < WTXID_RELAY_VERSION).then(|| {
                        format!("sendaddrv2 sent to a peer at version {}", self.our_version)
                    })
                }
                // Both skip messages they do not know.
                NetworkMessage::Unknown { .. } => None,
                // btcd: ErrInvalidHandshake (disconnect); Core: "Unsupported
                // message prior to verack" (ignored, so lost).
                _ => Some(format!("'{cmd}' before verack ({who} refuses it)")),
            };
        }
        match msg {
            NetworkMessage::Version(_) => Some("duplicate version (btcd disconnects)".into()),
            NetworkMessage::Verack => Some("duplicate verack (btcd disconnects)".into()),
            NetworkMessage::WtxidRelay | NetworkMessage::SendAddrV2 => {
                Some(format!("'{cmd}' after verack (both disconnect)"))
            }
            NetworkMessage::Addr(list) => addr_rule(cmd, list.len()),
            NetworkMessage::AddrV2(list) => addr_rule(cmd, list.len()).or_else(|| {
                (!self.we_sent_sendaddrv2)
                    .then(|| "addrv2 to a peer that did not send sendaddrv2 (BIP155)".into())
            }),
            NetworkMessage::Headers(headers) => {
                if headers.len() > 2000 {
                    return Some(format!("{} headers in one message", headers.len()));
                }
                if headers
                    .windows(2)
                    .any(|w| w[1].prev_blockhash != w[0].block_hash())
                {
                    return Some("non-continuous headers".into());
                }
                if self.headers_requested > 0 {
                    self.headers_requested -= 1;
                    None
                } else if self.profile == Profile::Btcd {
                    // netsync: "Got %d unrequested headers -- disconnecting"
                    // (btcd is not in headers-first mode on regtest).
                    Some(format!(
                        "{} unrequested headers (btcd disconnects)",
                        headers.len()
                    ))
                } else {
                    None
                }
            }
            NetworkMessage::Inv(items) => {
                if items.len() > 50_000 {
                    return Some(format!("inv of {} items", items.len()));
                }
                if items.is_empty() {
                    return Some("empty inv".into());
                }
                items.iter().find_map(|i| match i {
                    Inventory::WTx(_) if !self.wtxid_relay() => Some(
                        "MSG_WTX inv on a connection without wtxid relay (Core ignores it)".into(),
                    ),
                    Inventory::Transaction(_) if self.wtxid_relay() => {
                        Some("MSG_TX inv on a wtxid-relay connection (Core ignores it)".into())
                    }
                    Inventory::Block(_) | Inventory::Transaction(_) | Inventory::WTx(_) => None,
                    other => Some(format!("inv item {other:?} is not an announcement type")),
                })
            }
            NetworkMessage::GetData(items) | NetworkMessage::NotFound(items) => {
                (items.len() > 50_000).then(|| format!("{cmd} of {} items", items.len()))
            }
            NetworkMessage::GetHeaders(m) => (m.locator_hashes.len() > 101)
                .then(|| format!("{cmd} locator of {} hashes", m.locator_hashes.len())),
            NetworkMessage::GetBlocks(m) => (m.locator_hashes.len() > 101)
                .then(|| format!("{cmd} locator of {} hashes", m.locator_hashes.len())),
            NetworkMessage::Block(b) => {
                let requested = self.requested_blocks.remove(&b.block_hash());
                (!requested && self.profile == Profile::Btcd)
                    .then(|| "unrequested block (btcd disconnects off regtest)".into())
            }
            NetworkMessage::SendHeaders if self.our_version < SENDHEADERS_VERSION => {
                Some("sendheaders below version 70012".into())
            }
            NetworkMessage::FeeFilter(_) if self.our_version < FEEFILTER_VERSION => {
                Some("feefilter below version 70013".into())
            }
            NetworkMessage::SendCmpct(_) if self.our_version < SHORT_IDS_BLOCKS_VERSION => {
                Some("sendcmpct below version 70014".into())
            }
            NetworkMessage::Reject(_) => Some("reject (BIP61 is gone from Core)".into()),
            _ => None,
        }
    }
}

fn addr_rule(cmd: &str, n: usize) -> Option<String> {
    if n == 0 {
        // btcd server.go OnAddr/OnAddrV2: "does not contain any addresses".
        Some(format!("empty {cmd} (btcd disconnects)"))
    } else if n > 1000 {
        Some(format!("{cmd} of {n} entries (Core: misbehaving)"))
    } else {
        None
    }
}

/// A `version` message at protocol `version`.
pub fn versioned(version: u32, start_height: i32, services: ServiceFlags) -> NetworkMessage {
    let mut msg = version_message(start_height, services, super::rand_nonce() ^ 0x5a5a);
    if let NetworkMessage::Version(v) = &mut msg {
        v.version = version;
    }
    msg
}
