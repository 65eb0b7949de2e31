//! Bitcoin Core's address manager (`AddrMan`, addrman.cpp): every peer
//! address the node has heard of, in a *new* table (gossiped, never
//! connected) and a *tried* table (we completed an outbound handshake).
//!
//! Layout as Core: the new table has 1,024 buckets of 64 slots, the tried
//! table 256 buckets of 64. An entry's bucket and slot are keyed hashes of
//! a per-node 256-bit secret key, the address's network group
//! ([`netaddr::net_group`]) and, for new entries, the group of the peer
//! that told us about it, so that one source can fill at most
//! [`ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP`] new buckets (64 × 64 = 4,096
//! slots) and one address group at most [`ADDRMAN_TRIED_BUCKETS_PER_GROUP`]
//! tried buckets. The keyed hash is Core's: double SHA-256 of the key
//! followed by the data, first 8 bytes little-endian (`HashWriter` +
//! `GetCheapHash`). A new entry may sit in up to
//! [`ADDRMAN_NEW_BUCKETS_PER_ADDRESS`] new buckets; every further
//! reference is accepted with halving probability (`AddSingle`).
//! Entries age out by Core's `IsTerrible` rules and are overwritten when
//! their slot is wanted. Moving a new entry to an occupied tried slot is
//! deferred (test-before-evict): the pair is kept in a small collision set
//! ([`ADDRMAN_SET_TRIED_COLLISION_SIZE`]) and the connection manager tests
//! the old occupant ([`AddrMan::select_tried_collision`]) before
//! [`AddrMan::resolve_collisions`] decides.
//!
//! Only routable addresses are accepted ([`netaddr::is_routable`]); on
//! regtest the node makes loopback addresses routable (`loopback_routable`)
//! so regtest nodes on one machine discover each other through gossip.
//! Every BIP155 network is kept (IPv4, IPv6, Tor v3, I2P, CJDNS).
//!
//! Persistence: [`AddrMan::save`] writes `peers.dat` (Core's name, strand's
//! own format, see [`FILE_MAGIC`]) atomically; [`AddrMan::open`] loads it,
//! and renames a corrupt or truncated file to `peers.dat.bad` and starts
//! empty (never fatal). Tried entries are restored to their tried slots,
//! new entries to the one bucket their source gives them.
//!
//! Thread model: `Send + Sync`, shared by every peer reader (adds), the
//! connection manager (select, good, attempt) and RPC, behind one internal
//! `parking_lot::Mutex` that is a leaf lock: nothing else is locked and no
//! channel is used while it is held.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use bitcoin::consensus::encode::{Decodable, Encodable};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::ServiceFlags;
use parking_lot::Mutex;

use crate::netaddr::{self, NetClass};
use crate::util::{random_nonce, unix_time, SplitMix64};

/// Core's `ADDRMAN_TRIED_BUCKET_COUNT` (1 << 8).
pub const ADDRMAN_TRIED_BUCKET_COUNT: usize = 256;
/// Core's `ADDRMAN_NEW_BUCKET_COUNT` (1 << 10).
pub const ADDRMAN_NEW_BUCKET_COUNT: usize = 1024;
/// Core's `ADDRMAN_BUCKET_SIZE` (1 << 6).
pub const ADDRMAN_BUCKET_SIZE: usize = 64;
/// Core's `ADDRMAN_TRIED_BUCKETS_PER_GROUP`.
pub const ADDRMAN_TRIED_BUCKETS_PER_GROUP: u64 = 8;
/// Core's `ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP`.
pub const ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 64;
/// Core's `ADDRMAN_NEW_BUCKETS_PER_ADDRESS`.
pub const ADDRMAN_NEW_BUCKETS_PER_ADDRESS: u32 = 8;
/// Core's `ADDRMAN_HORIZON`: entries not seen for 30 days are terrible.
pub const ADDRMAN_HORIZON: u32 = 30 * 24 * 60 * 60;
/// Core's `ADDRMAN_RETRIES`: failures before a never-successful entry is terrible.
pub const ADDRMAN_RETRIES: u32 = 3;
/// Core's `ADDRMAN_MAX_FAILURES`: failures within [`ADDRMAN_MIN_FAIL`].
pub const ADDRMAN_MAX_FAILURES: u32 = 10;
/// Core's `ADDRMAN_MIN_FAIL`: 7 days.
pub const ADDRMAN_MIN_FAIL: u32 = 7 * 24 * 60 * 60;
/// Core's `ADDRMAN_REPLACEMENT`: a tried entry that succeeded within 4 hours
/// is not evicted by a collision.
pub const ADDRMAN_REPLACEMENT: u32 = 4 * 60 * 60;
/// Core's `ADDRMAN_SET_TRIED_COLLISION_SIZE`.
pub const ADDRMAN_SET_TRIED_COLLISION_SIZE: usize = 10;
/// Core's `ADDRMAN_TEST_WINDOW`: 40 minutes to test a collision's old entry.
pub const ADDRMAN_TEST_WINDOW: u32 = 40 * 60;
/// The first bytes of `peers.dat`. The file is: this magic, a format
/// version byte, the 32-byte key, the entry count (u32 LE), the entries
/// (each: BIP155 `addrv2` entry, source as BIP155 address, last try, last
/// success, attempts as u32 LE, one byte 1 = tried), then the double
/// SHA-256 of everything before it.
pub const FILE_MAGIC: &[u8; 8] = b"strandam";
/// Format version of `peers.dat`.
const FILE_VERSION: u8 = 1;
/// Core's `peers.dat`.
pub const PEERS_FILE: &str = "peers.dat";

/// One address-manager entry as seen from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// The address.
    pub addr: AddrV2,
    /// Its port.
    pub port: u16,
    /// Services last advertised or seen.
    pub services: ServiceFlags,
    /// Last seen (gossiped) time.
    pub time: u32,
    /// Last connection attempt, 0 if none.
    pub last_try: u32,
    /// Last successful outbound handshake, 0 if none.
    pub last_success: u32,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// In the tried table.
    pub in_tried: bool,
    /// Who told us about it.
    pub source: AddrV2,
}

type Key = (AddrV2, u16);

#[derive(Clone, Debug)]
struct Entry {
    info: AddrInfo,
    /// Core's `nLastCountAttempt`.
    last_count_attempt: u32,
    /// Number of new buckets referencing it (0 when tried).
    ref_count: u32,
    /// Index in `random` (Core's `nRandomPos`).
    random_pos: usize,
}

impl Entry {
    /// Core's `AddrInfo::IsTerrible`.
    fn is_terrible(&self, now: u32) -> bool {
        let i = &self.info;
        // Never remove things tried in the last minute.
        if i.last_try != 0 && now.saturating_sub(i.last_try) <= 60 {
            return false;
        }
        // Came in a flying DeLorean.
        if i.time > now.saturating_add(10 * 60) {
            return true;
        }
        // Not seen in recent history.
        if now.saturating_sub(i.time) > ADDRMAN_HORIZON {
            return true;
        }
        // Tried N times and never a success.
        if i.last_success == 0 && i.attempts >= ADDRMAN_RETRIES {
            return true;
        }
        // N successive failures in the last week.
        now.saturating_sub(i.last_success) > ADDRMAN_MIN_FAIL && i.attempts >= ADDRMAN_MAX_FAILURES
    }

    /// Core's `AddrInfo::GetChance`.
    fn chance(&self, now: u32) -> f64 {
        let mut chance = 1.0;
        // Deprioritise very recent attempts away.
        if now.saturating_sub(self.info.last_try) < 10 * 60 {
            chance *= 0.01;
        }
        // Deprioritise 66% after each failed attempt, at most 1/28th.
        chance * 0.66f64.powi(self.info.attempts.min(8) as i32)
    }
}

/// Core's keyed hash: double SHA-256 of key ‖ data, first 8 bytes LE.
fn cheap_hash(key: &[u8; 32], parts: &[&[u8]]) -> u64 {
    let mut engine = sha256d::Hash::engine();
    use bitcoin::hashes::HashEngine;
    engine.input(key);
    for p in parts {
        engine.input(p);
    }
    let h = sha256d::Hash::from_engine(engine);
    let b = h.to_byte_array();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Core's `CService::GetKey`: the address bytes and the port.
fn service_key(addr: &AddrV2, port: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    let _ = addr.consensus_encode(&mut v);
    v.extend_from_slice(&port.to_be_bytes());
    v
}

struct Inner {
    key: [u8; 32],
    loopback_routable: bool,
    rng: SplitMix64,
    map: HashMap<Key, Entry>,
    /// Every key once, for uniform sampling (Core's `vRandom`).
    random: Vec<Key>,
    new_table: Vec<Option<Key>>,
    tried_table: Vec<Option<Key>>,
    n_new: usize,
    n_tried: usize,
    /// New and tried counts per [`NetClass`] (indexed by its value), so
    /// [`Inner::select`] knows at once whether a network has entries.
    net_counts: [(usize, usize); 6],
    /// Core's `m_tried_collisions`.
    tried_collisions: Vec<Key>,
    /// Core's `m_last_good`.
    last_good: u32,
}

fn slot(bucket: usize, pos: usize) -> usize {
    bucket * ADDRMAN_BUCKET_SIZE + pos
}

impl Inner {
    fn new(key: [u8; 32], loopback_routable: bool, seed: u64) -> Inner {
        Inner {
            key,
            loopback_routable,
            rng: SplitMix64::new(seed),
            map: HashMap::new(),
            random: Vec::new(),
            new_table: vec![None; ADDRMAN_NEW_BUCKET_COUNT * ADDRMAN_BUCKET_SIZE],
            tried_table: vec![None; ADDRMAN_TRIED_BUCKET_COUNT * ADDRMAN_BUCKET_SIZE],
            n_new: 0,
            n_tried: 0,
            net_counts: [(0, 0); 6],
            tried_collisions: Vec::new(),
            last_good: 1,
        }
    }

    fn rand_below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.rng.next_u64() % n as u64) as usize
    }

    fn group(&self, addr: &AddrV2) -> Vec<u8> {
        netaddr::net_group(addr, self.loopback_routable)
    }

    /// Core's `AddrInfo::GetTriedBucket`.
    fn tried_bucket(&self, addr: &AddrV2, port: u16) -> usize {
        let k = service_key(addr, port);
        let h1 = cheap_hash(&self.key, &[&k]) % ADDRMAN_TRIED_BUCKETS_PER_GROUP;
        let g = self.group(addr);
        let h2 = cheap_hash(&self.key, &[&g, &h1.to_le_bytes()]);
        (h2 % ADDRMAN_TRIED_BUCKET_COUNT as u64) as usize
    }

    /// Core's `AddrInfo::GetNewBucket`.
    fn new_bucket(&self, addr: &AddrV2, source: &AddrV2) -> usize {
        let g = self.group(addr);
        let sg = self.group(source);
        let h1 = cheap_hash(&self.key, &[&g, &sg]) % ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP;
        let h2 = cheap_hash(&self.key, &[&sg, &h1.to_le_bytes()]);
        (h2 % ADDRMAN_NEW_BUCKET_COUNT as u64) as usize
    }

    /// Core's `AddrInfo::GetBucketPosition`.
    fn bucket_position(&self, new: bool, bucket: usize, addr: &AddrV2, port: u16) -> usize {
        let k = service_key(addr, port);
        let tag = [if new { b'N' } else { b'K' }];
        let h = cheap_hash(&self.key, &[&tag, &(bucket as u32).to_le_bytes(), &k]);
        (h % ADDRMAN_BUCKET_SIZE as u64) as usize
    }

    fn is_terrible(&self, key: &Key, now: u32) -> bool {
        self.map.get(key).is_some_and(|e| e.is_terrible(now))
    }

    /// Core's `Create`.
    fn create(&mut self, info: AddrInfo) -> Key {
        let key = (info.addr.clone(), info.port);
        let pos = self.random.len();
        self.random.push(key.clone());
        self.map.insert(
            key.clone(),
            Entry {
                info,
                last_count_attempt: 0,
                ref_count: 0,
                random_pos: pos,
            },
        );
        key
    }

    /// Core's `Delete` (for an entry in no bucket).
    fn delete(&mut self, key: &Key) {
        let Some(e) = self.map.remove(key) else {
            return;
        };
        let pos = e.random_pos;
        if pos < self.random.len() {
            self.random.swap_remove(pos);
            if let Some(moved) = self.random.get(pos).cloned() {
                if let Some(m) = self.map.get_mut(&moved) {
                    m.random_pos = pos;
                }
            }
        }
        self.bump(&e.info.addr, e.info.in_tried, false);
    }

    /// Keeps the table counts, in total and per network, in step: one
    /// entry of `addr` joins (`up`) or leaves the tried or new table.
    fn bump(&mut self, addr: &AddrV2, tried: bool, up: bool) {
        let class = self.class(addr) as usize;
        let (total, per_net) = if tried {
            (
                &mut self.n_tried,
                self.net_counts.get_mut(class).map(|c| &mut c.1),
            )
        } else {
            (
                &mut self.n_new,
                self.net_counts.get_mut(class).map(|c| &mut c.0),
            )
        };
        for n in std::iter::once(total).chain(per_net) {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// Core's `ClearNew`: empties a new slot, deleting its entry if no
    /// other bucket references it.
    fn clear_new(&mut self, s: usize) {
        let Some(Some(key)) = self.new_table.get(s).cloned() else {
            return;
        };
        if let Some(slot) = self.new_table.get_mut(s) {
            *slot = None;
        }
        let gone = match self.map.get_mut(&key) {
            Some(e) => {
                e.ref_count = e.ref_count.saturating_sub(1);
                e.ref_count == 0
            }
            None => false,
        };
        if gone {
            self.delete(&key);
        }
    }

    /// Core's `MakeTried`: moves a new entry to its tried slot; an
    /// occupant is moved back to the new table.
    fn make_tried(&mut self, key: &Key) {
        // Remove from every new bucket.
        for b in 0..ADDRMAN_NEW_BUCKET_COUNT {
            let pos = self.bucket_position(true, b, &key.0, key.1);
            let s = slot(b, pos);
            if self
                .new_table
                .get(s)
                .is_some_and(|k| k.as_ref() == Some(key))
            {
                self.new_table[s] = None;
                if let Some(e) = self.map.get_mut(key) {
                    e.ref_count = e.ref_count.saturating_sub(1);
                    if e.ref_count == 0 {
                        break;
                    }
                }
            }
        }
        self.bump(&key.0, false, false);
        if let Some(e) = self.map.get_mut(key) {
            e.ref_count = 0;
        }
        let tb = self.tried_bucket(&key.0, key.1);
        let tp = self.bucket_position(false, tb, &key.0, key.1);
        let ts = slot(tb, tp);
        if let Some(Some(old)) = self.tried_table.get(ts).cloned() {
            // Evict the old tried entry back into the new table.
            self.tried_table[ts] = None;
            self.bump(&old.0, true, false);
            let source = self.map.get(&old).map(|e| e.info.source.clone());
            if let Some(source) = source {
                if let Some(e) = self.map.get_mut(&old) {
                    e.info.in_tried = false;
                }
                let nb = self.new_bucket(&old.0, &source);
                let np = self.bucket_position(true, nb, &old.0, old.1);
                self.clear_new(slot(nb, np));
                if let Some(e) = self.map.get_mut(&old) {
                    e.ref_count = 1;
                }
                self.bump(&old.0, false, true);
                self.new_table[slot(nb, np)] = Some(old);
            }
        }
        self.tried_table[ts] = Some(key.clone());
        self.bump(&key.0, true, true);
        if let Some(e) = self.map.get_mut(key) {
            e.info.in_tried = true;
        }
    }

    /// Core's `AddSingle`.
    fn add_single(&mut self, msg: &AddrV2Message, source: &AddrV2, penalty: u32, now: u32) -> bool {
        if !netaddr::is_routable(&msg.addr, self.loopback_routable) || msg.port == 0 {
            return false;
        }
        // No time penalty for an address its own owner advertises.
        let penalty = if &msg.addr == source { 0 } else { penalty };
        let key = (msg.addr.clone(), msg.port);
        if let Some(e) = self.map.get_mut(&key) {
            // Refresh the time, more eagerly for addresses seen in the
            // last day (Core: 1 hour, else 24 hours).
            let online = now.saturating_sub(msg.time) < 24 * 60 * 60;
            let update_interval: u32 = if online { 60 * 60 } else { 24 * 60 * 60 };
            if u64::from(e.info.time) + u64::from(update_interval) + u64::from(penalty)
                < u64::from(msg.time)
            {
                e.info.time = msg.time.saturating_sub(penalty);
            }
            e.info.services |= msg.services;
            // Do not update if no new information is present, if the entry
            // is tried, or if it has enough references.
            if msg.time <= e.info.time
                || e.info.in_tried
                || e.ref_count >= ADDRMAN_NEW_BUCKETS_PER_ADDRESS
            {
                return false;
            }
            // Stochastic test: each further reference halves the chance.
            let factor = 1u64 << e.ref_count;
            if factor > 1 && !self.rng.next_u64().is_multiple_of(factor) {
                return false;
            }
        } else {
            self.create(AddrInfo {
                addr: msg.addr.clone(),
                port: msg.port,
                services: msg.services,
                time: msg.time.saturating_sub(penalty),
                last_try: 0,
                last_success: 0,
                attempts: 0,
                in_tried: false,
                source: source.clone(),
            });
            self.bump(&msg.addr, false, true);
        }
        let fresh = self.map.get(&key).is_some_and(|e| e.ref_count == 0);
        let b = self.new_bucket(&key.0, source);
        let p = self.bucket_position(true, b, &key.0, key.1);
        let s = slot(b, p);
        let mut inserted = false;
        match self.new_table.get(s).cloned().flatten() {
            Some(existing) if existing == key => {}
            Some(existing) => {
                // Overwrite a terrible entry, or one with other references
                // when ours has none.
                let ex_refs = self.map.get(&existing).map_or(0, |e| e.ref_count);
                let ours = self.map.get(&key).map_or(0, |e| e.ref_count);
                if self.is_terrible(&existing, now) || (ex_refs > 1 && ours == 0) {
                    self.clear_new(s);
                    inserted = true;
                }
            }
            None => inserted = true,
        }
        if inserted {
            if let Some(e) = self.map.get_mut(&key) {
                e.ref_count += 1;
            }
            self.new_table[s] = Some(key.clone());
        } else if self.map.get(&key).is_some_and(|e| e.ref_count == 0) {
            self.delete(&key);
        }
        fresh && inserted
    }

    /// Core's `Good_`.
    fn good(&mut self, key: &Key, test_before_evict: bool, now: u32) -> bool {
        self.last_good = now;
        let Some(e) = self.map.get_mut(key) else {
            return false;
        };
        e.info.last_success = now;
        e.info.last_try = now;
        e.info.attempts = 0;
        if e.info.in_tried || e.ref_count == 0 {
            return false;
        }
        let tb = self.tried_bucket(&key.0, key.1);
        let tp = self.bucket_position(false, tb, &key.0, key.1);
        if test_before_evict && self.tried_table[slot(tb, tp)].is_some() {
            if self.tried_collisions.len() < ADDRMAN_SET_TRIED_COLLISION_SIZE
                && !self.tried_collisions.contains(key)
            {
                self.tried_collisions.push(key.clone());
            }
            return false;
        }
        self.make_tried(key);
        true
    }

    /// Core's `ResolveCollisions_`.
    fn resolve_collisions(&mut self, now: u32) {
        let pending = std::mem::take(&mut self.tried_collisions);
        for key in pending {
            let Some(new) = self.map.get(&key).map(|e| e.info.clone()) else {
                continue;
            };
            let tb = self.tried_bucket(&key.0, key.1);
            let tp = self.bucket_position(false, tb, &key.0, key.1);
            let erase = match self.tried_table[slot(tb, tp)].clone() {
                Some(old_key) => match self.map.get(&old_key).map(|e| e.info.clone()) {
                    Some(old) => {
                        if now.saturating_sub(old.last_success) < ADDRMAN_REPLACEMENT {
                            // The old one is good: keep it.
                            true
                        } else if now.saturating_sub(old.last_try) < ADDRMAN_REPLACEMENT {
                            // Attempted recently without success: replace it
                            // once the attempt is over a minute old.
                            if now.saturating_sub(old.last_try) > 60 {
                                self.good(&key, false, now);
                                true
                            } else {
                                false
                            }
                        } else if now.saturating_sub(new.last_success) > ADDRMAN_TEST_WINDOW {
                            // Not tested in time: evict the old one.
                            self.good(&key, false, now);
                            true
                        } else {
                            false
                        }
                    }
                    None => {
                        self.good(&key, false, now);
                        true
                    }
                },
                None => {
                    self.good(&key, false, now);
                    true
                }
            };
            if !erase {
                self.tried_collisions.push(key);
            }
        }
    }

    /// Core's `SelectTriedCollision_`.
    fn select_tried_collision(&mut self) -> Option<AddrInfo> {
        if self.tried_collisions.is_empty() {
            return None;
        }
        let i = self.rand_below(self.tried_collisions.len());
        let key = self.tried_collisions.get(i)?.clone();
        if !self.map.contains_key(&key) {
            self.tried_collisions.swap_remove(i);
            return None;
        }
        let tb = self.tried_bucket(&key.0, key.1);
        let tp = self.bucket_position(false, tb, &key.0, key.1);
        let old = self.tried_table.get(slot(tb, tp))?.clone()?;
        self.map.get(&old).map(|e| e.info.clone())
    }

    fn class(&self, addr: &AddrV2) -> NetClass {
        netaddr::net_class(addr, self.loopback_routable)
    }

    fn matches(&self, key: &Key, networks: &[NetClass]) -> bool {
        networks.is_empty() || networks.contains(&self.class(&key.0))
    }

    /// Core's `Select_`.
    fn select(&mut self, new_only: bool, networks: &[NetClass], now: u32) -> Option<AddrInfo> {
        if self.random.is_empty() {
            return None;
        }
        // What each table holds in the wanted networks, so the loop below
        // cannot spin on tables with nothing to give.
        let (new_count, tried_count) = if networks.is_empty() {
            (self.n_new, self.n_tried)
        } else {
            let mut wanted = networks.to_vec();
            wanted.sort_unstable();
            wanted.dedup();
            wanted.iter().fold((0, 0), |(n, t), net| {
                let c = self
                    .net_counts
                    .get(*net as usize)
                    .copied()
                    .unwrap_or((0, 0));
                (n + c.0, t + c.1)
            })
        };
        if new_only && new_count == 0 {
            return None;
        }
        if new_count + tried_count == 0 {
            return None;
        }
        let search_tried =
            !new_only && tried_count > 0 && (new_count == 0 || self.rng.next_u64() & 1 == 1);
        let (bucket_count, new) = if search_tried {
            (ADDRMAN_TRIED_BUCKET_COUNT, false)
        } else {
            (ADDRMAN_NEW_BUCKET_COUNT, true)
        };
        let mut chance_factor = 1.0f64;
        // Bounded: the chance factor grows 1.2× per candidate found, so a
        // candidate is taken after at most a few hundred found.
        for _ in 0..1_000_000 {
            let bucket = self.rand_below(bucket_count);
            let start = self.rand_below(ADDRMAN_BUCKET_SIZE);
            let mut found = None;
            for i in 0..ADDRMAN_BUCKET_SIZE {
                let pos = (start + i) % ADDRMAN_BUCKET_SIZE;
                let cell = if new {
                    &self.new_table[slot(bucket, pos)]
                } else {
                    &self.tried_table[slot(bucket, pos)]
                };
                if let Some(k) = cell {
                    if self.matches(k, networks) {
                        found = Some(k.clone());
                        break;
                    }
                }
            }
            let Some(k) = found else {
                continue;
            };
            let Some(e) = self.map.get(&k) else {
                continue;
            };
            let chance = chance_factor * e.chance(now);
            let roll = (self.rng.next_u64() >> 34) as f64; // 30 bits
            if roll < chance * (1u64 << 30) as f64 {
                return Some(e.info.clone());
            }
            chance_factor *= 1.2;
        }
        None
    }

    /// Core's `GetAddr_`.
    fn get_addr(
        &mut self,
        max_addresses: usize,
        max_pct: usize,
        network: Option<NetClass>,
        now: u32,
    ) -> Vec<AddrV2Message> {
        let mut n = self.random.len();
        if max_pct != 0 {
            n = max_pct * n / 100;
        }
        if max_addresses != 0 {
            n = n.min(max_addresses);
        }
        let mut out = Vec::with_capacity(n.min(1_000));
        let len = self.random.len();
        for i in 0..len {
            if out.len() >= n {
                break;
            }
            let j = i + self.rand_below(len - i);
            self.random.swap(i, j);
            for p in [i, j] {
                if let Some(k) = self.random.get(p).cloned() {
                    if let Some(e) = self.map.get_mut(&k) {
                        e.random_pos = p;
                    }
                }
            }
            let Some(k) = self.random.get(i) else { break };
            let Some(e) = self.map.get(k) else { continue };
            if network.is_some_and(|net| self.class(&k.0) != net) {
                continue;
            }
            if e.is_terrible(now) {
                continue;
            }
            out.push(AddrV2Message {
                time: e.info.time,
                services: e.info.services,
                addr: e.info.addr.clone(),
                port: e.info.port,
            });
        }
        out
    }
}

/// Core's AddrMan: `Send + Sync`, one internal `parking_lot::Mutex` (a leaf lock).
pub struct AddrMan {
    inner: Mutex<Inner>,
}

fn now_u32() -> u32 {
    u32::try_from(unix_time()).unwrap_or(u32::MAX)
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&random_nonce().to_le_bytes());
    }
    key
}

/// Why `peers.dat` could not be read.
#[derive(Debug)]
pub enum AddrManFileError {
    /// Reading failed.
    Io(std::io::Error),
    /// Wrong magic or version.
    BadHeader,
    /// The checksum does not match (corrupt or truncated).
    Checksum,
    /// An entry does not parse.
    Malformed(String),
}

impl std::fmt::Display for AddrManFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrManFileError::Io(e) => write!(f, "{e}"),
            AddrManFileError::BadHeader => {
                write!(f, "not a strand peers.dat (bad magic or version)")
            }
            AddrManFileError::Checksum => write!(f, "checksum mismatch (corrupt or truncated)"),
            AddrManFileError::Malformed(s) => write!(f, "malformed entry: {s}"),
        }
    }
}

impl std::error::Error for AddrManFileError {}

impl AddrMan {
    /// An empty manager with a random secret key.
    pub fn new(loopback_routable: bool) -> AddrMan {
        AddrMan::with_key(random_key(), loopback_routable, random_nonce())
    }

    /// An empty manager with a fixed key and random seed (deterministic
    /// buckets and choices; tests).
    pub fn with_key(key: [u8; 32], loopback_routable: bool, seed: u64) -> AddrMan {
        AddrMan {
            inner: Mutex::new(Inner::new(key, loopback_routable, seed)),
        }
    }

    /// Loads `path`, or starts empty when it does not exist; a corrupt file
    /// is renamed to `path` + `.bad`, logged, and an empty manager returned.
    pub fn open(path: &Path, loopback_routable: bool) -> AddrMan {
        match AddrMan::load(path, loopback_routable) {
            Ok(Some(am)) => {
                let (n, t) = am.size_new_tried();
                log::info!(
                    "loaded {} addresses ({n} new, {t} tried) from {}",
                    n + t,
                    path.display()
                );
                am
            }
            Ok(None) => AddrMan::new(loopback_routable),
            Err(e) => {
                let mut bad = path.as_os_str().to_owned();
                bad.push(".bad");
                let renamed = std::fs::rename(path, &bad);
                log::warn!(
                    "{}: {e}; {} and starting with an empty address manager",
                    path.display(),
                    match renamed {
                        Ok(()) => format!("renamed to {}", Path::new(&bad).display()),
                        Err(re) => format!("could not rename it ({re})"),
                    }
                );
                AddrMan::new(loopback_routable)
            }
        }
    }

    /// Reads `path`: `Ok(None)` when it does not exist.
    pub fn load(path: &Path, loopback_routable: bool) -> Result<Option<AddrMan>, AddrManFileError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => f.read_to_end(&mut bytes).map_err(AddrManFileError::Io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AddrManFileError::Io(e)),
        };
        AddrMan::from_bytes(&bytes, loopback_routable).map(Some)
    }

    /// Parses the file format (see [`FILE_MAGIC`]).
    pub fn from_bytes(bytes: &[u8], loopback_routable: bool) -> Result<AddrMan, AddrManFileError> {
        if bytes.len() < 32 + FILE_MAGIC.len() + 1 + 32 + 4 {
            return Err(AddrManFileError::Checksum);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if sha256d::Hash::hash(body).to_byte_array().as_slice() != sum {
            return Err(AddrManFileError::Checksum);
        }
        let mut r = body;
        let mut header = [0u8; 9];
        r.read_exact(&mut header).map_err(AddrManFileError::Io)?;
        if &header[..8] != FILE_MAGIC || header[8] != FILE_VERSION {
            return Err(AddrManFileError::BadHeader);
        }
        let mut key = [0u8; 32];
        r.read_exact(&mut key).map_err(AddrManFileError::Io)?;
        let count = read_u32(&mut r)?;
        let am = AddrMan::with_key(key, loopback_routable, random_nonce());
        {
            let mut inner = am.inner.lock();
            let now = now_u32();
            for _ in 0..count {
                let msg = AddrV2Message::consensus_decode(&mut r)
                    .map_err(|e| AddrManFileError::Malformed(e.to_string()))?;
                let source = AddrV2::consensus_decode(&mut r)
                    .map_err(|e| AddrManFileError::Malformed(e.to_string()))?;
                let last_try = read_u32(&mut r)?;
                let last_success = read_u32(&mut r)?;
                let attempts = read_u32(&mut r)?;
                let mut tried = [0u8; 1];
                r.read_exact(&mut tried).map_err(AddrManFileError::Io)?;
                inner.restore(
                    msg,
                    source,
                    last_try,
                    last_success,
                    attempts,
                    tried[0] == 1,
                    now,
                );
            }
            if !r.is_empty() {
                return Err(AddrManFileError::Malformed("trailing bytes".into()));
            }
        }
        Ok(am)
    }

    /// Serialises the manager (see [`FILE_MAGIC`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let inner = self.inner.lock();
        let mut v = Vec::with_capacity(64 + inner.random.len() * 64);
        v.extend_from_slice(FILE_MAGIC);
        v.push(FILE_VERSION);
        v.extend_from_slice(&inner.key);
        v.extend_from_slice(&(inner.random.len() as u32).to_le_bytes());
        for k in &inner.random {
            let Some(e) = inner.map.get(k) else { continue };
            let i = &e.info;
            let msg = AddrV2Message {
                time: i.time,
                services: i.services,
                addr: i.addr.clone(),
                port: i.port,
            };
            let _ = msg.consensus_encode(&mut v);
            let _ = i.source.consensus_encode(&mut v);
            v.extend_from_slice(&i.last_try.to_le_bytes());
            v.extend_from_slice(&i.last_success.to_le_bytes());
            v.extend_from_slice(&i.attempts.to_le_bytes());
            v.push(u8::from(i.in_tried));
        }
        drop(inner);
        let sum = sha256d::Hash::hash(&v).to_byte_array();
        v.extend_from_slice(&sum);
        v
    }

    /// Writes `path` atomically: a temporary file beside it, fsync, rename.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self.to_bytes();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = std::path::PathBuf::from(tmp);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Adds gossiped addresses told by `source`, their times moved back by
    /// `time_penalty` seconds (Core gives 2 hours to addresses relayed by
    /// others). Returns the number of addresses newly added.
    pub fn add(&self, addrs: &[AddrV2Message], source: &AddrV2, time_penalty: u32) -> usize {
        self.add_at(addrs, source, time_penalty, now_u32())
    }

    /// [`AddrMan::add`] at a given clock (tests).
    pub fn add_at(
        &self,
        addrs: &[AddrV2Message],
        source: &AddrV2,
        time_penalty: u32,
        now: u32,
    ) -> usize {
        let mut inner = self.inner.lock();
        addrs
            .iter()
            .filter(|m| inner.add_single(m, source, time_penalty, now))
            .count()
    }

    /// An outbound handshake with the address completed: move it to tried
    /// (or record a collision for test-before-evict).
    pub fn good(&self, addr: &AddrV2, port: u16, now: u32) {
        self.inner.lock().good(&(addr.clone(), port), true, now);
    }

    /// [`AddrMan::good`], returning whether the entry moved to the tried
    /// table (false: unknown, already tried, or a collision was recorded).
    pub fn good_checked(&self, addr: &AddrV2, port: u16, now: u32) -> bool {
        self.inner.lock().good(&(addr.clone(), port), true, now)
    }

    /// New and tried counts per network (Core's `Size(network, in_new)`).
    pub fn size_by_network(&self) -> HashMap<NetClass, (usize, usize)> {
        let inner = self.inner.lock();
        [
            NetClass::Unroutable,
            NetClass::Ipv4,
            NetClass::Ipv6,
            NetClass::Onion,
            NetClass::I2p,
            NetClass::Cjdns,
        ]
        .into_iter()
        .filter_map(|c| {
            let n = inner.net_counts.get(c as usize).copied()?;
            (n != (0, 0)).then_some((c, n))
        })
        .collect()
    }

    /// We tried to connect; `count_failure` counts it against the address
    /// (once per success of any address, Core's `nLastCountAttempt` rule).
    pub fn attempt(&self, addr: &AddrV2, port: u16, count_failure: bool, now: u32) {
        let mut inner = self.inner.lock();
        let last_good = inner.last_good;
        if let Some(e) = inner.map.get_mut(&(addr.clone(), port)) {
            e.info.last_try = now;
            if count_failure && e.last_count_attempt < last_good {
                e.last_count_attempt = now;
                e.info.attempts += 1;
            }
        }
    }

    /// A connection to the address ended after being up: refresh its time
    /// if it is over 20 minutes old (Core's `Connected_`).
    pub fn connected(&self, addr: &AddrV2, port: u16, now: u32) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner.map.get_mut(&(addr.clone(), port)) {
            if now.saturating_sub(e.info.time) > 20 * 60 {
                e.info.time = now;
            }
        }
    }

    /// Records the services the address's node advertised in `version`.
    pub fn set_services(&self, addr: &AddrV2, port: u16, services: ServiceFlags) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner.map.get_mut(&(addr.clone(), port)) {
            e.info.services = services;
        }
    }

    /// An address to connect to, Core's way: tried or new at even odds (only
    /// new with `new_only`), entries weighted by their chance. `networks`
    /// limits the choice; empty means any.
    pub fn select(&self, new_only: bool, networks: &[NetClass]) -> Option<AddrInfo> {
        self.inner.lock().select(new_only, networks, now_u32())
    }

    /// [`AddrMan::select`] at a given clock (tests).
    pub fn select_at(&self, new_only: bool, networks: &[NetClass], now: u32) -> Option<AddrInfo> {
        self.inner.lock().select(new_only, networks, now)
    }

    /// The tried entry a pending collision would evict, to be tested by a
    /// feeler connection.
    pub fn select_tried_collision(&self) -> Option<AddrInfo> {
        self.inner.lock().select_tried_collision()
    }

    /// Decides the pending collisions (Core's `ResolveCollisions`).
    pub fn resolve_collisions(&self) {
        self.inner.lock().resolve_collisions(now_u32());
    }

    /// [`AddrMan::resolve_collisions`] at a given clock (tests).
    pub fn resolve_collisions_at(&self, now: u32) {
        self.inner.lock().resolve_collisions(now);
    }

    /// A random sample of non-terrible entries: at most `max_addresses`
    /// (0: no limit) and `max_pct` percent (0: no limit) of the table,
    /// only `network` if given.
    pub fn get_addr(
        &self,
        max_addresses: usize,
        max_pct: usize,
        network: Option<NetClass>,
    ) -> Vec<AddrV2Message> {
        self.inner
            .lock()
            .get_addr(max_addresses, max_pct, network, now_u32())
    }

    /// [`AddrMan::get_addr`] at a given clock (tests).
    pub fn get_addr_at(
        &self,
        max_addresses: usize,
        max_pct: usize,
        network: Option<NetClass>,
        now: u32,
    ) -> Vec<AddrV2Message> {
        self.inner
            .lock()
            .get_addr(max_addresses, max_pct, network, now)
    }

    /// Entries known.
    pub fn size(&self) -> usize {
        self.inner.lock().random.len()
    }

    /// Entries in the new and the tried table.
    pub fn size_new_tried(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.n_new, inner.n_tried)
    }

    /// The entry for an address, if known.
    pub fn find(&self, addr: &AddrV2, port: u16) -> Option<AddrInfo> {
        self.inner
            .lock()
            .map
            .get(&(addr.clone(), port))
            .map(|e| e.info.clone())
    }

    /// Whether addresses count as routable on loopback (regtest).
    pub fn loopback_routable(&self) -> bool {
        self.inner.lock().loopback_routable
    }
}

fn read_u32(r: &mut &[u8]) -> Result<u32, AddrManFileError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(AddrManFileError::Io)?;
    Ok(u32::from_le_bytes(b))
}

impl Inner {
    /// Puts a loaded entry back: tried entries into their tried slot (into
    /// the new table if it is taken), new entries into their source's
    /// bucket (dropped if the slot is taken).
    #[allow(clippy::too_many_arguments)]
    fn restore(
        &mut self,
        msg: AddrV2Message,
        source: AddrV2,
        last_try: u32,
        last_success: u32,
        attempts: u32,
        tried: bool,
        now: u32,
    ) {
        let key = (msg.addr.clone(), msg.port);
        if self.map.contains_key(&key) || !netaddr::is_routable(&msg.addr, self.loopback_routable) {
            return;
        }
        if tried {
            let tb = self.tried_bucket(&key.0, key.1);
            let tp = self.bucket_position(false, tb, &key.0, key.1);
            let s = slot(tb, tp);
            if self.tried_table[s].is_none() {
                self.create(AddrInfo {
                    addr: msg.addr,
                    port: msg.port,
                    services: msg.services,
                    time: msg.time,
                    last_try,
                    last_success,
                    attempts,
                    in_tried: true,
                    source,
                });
                self.bump(&key.0, true, true);
                self.tried_table[s] = Some(key);
                return;
            }
        }
        let b = self.new_bucket(&key.0, &source);
        let p = self.bucket_position(true, b, &key.0, key.1);
        let s = slot(b, p);
        if self.new_table[s].is_some() {
            return;
        }
        let _ = now;
        self.create(AddrInfo {
            addr: msg.addr,
            port: msg.port,
            services: msg.services,
            time: msg.time,
            last_try,
            last_success,
            attempts,
            in_tried: false,
            source,
        });
        if let Some(e) = self.map.get_mut(&key) {
            e.ref_count = 1;
        }
        self.bump(&key.0, false, true);
        self.new_table[s] = Some(key);
    }
}

/// How often `peers.dat` is written (Core's `DUMP_PEERS_INTERVAL`).
pub const DUMP_PEERS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The thread (`addrman-dump`) that writes `peers.dat` every
/// [`DUMP_PEERS_INTERVAL`]; [`Dumper::stop`] joins it and writes once more.
pub struct Dumper {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    addrman: std::sync::Arc<AddrMan>,
    path: std::path::PathBuf,
}

impl Dumper {
    /// Starts the thread.
    pub fn start(
        addrman: std::sync::Arc<AddrMan>,
        path: std::path::PathBuf,
    ) -> std::io::Result<Dumper> {
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let (am, p) = (std::sync::Arc::clone(&addrman), path.clone());
        let thread = std::thread::Builder::new()
            .name("addrman-dump".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(DUMP_PEERS_INTERVAL)
                {
                    if let Err(e) = am.save(&p) {
                        log::warn!("writing {}: {e}", p.display());
                    }
                }
            })?;
        Ok(Dumper {
            stop: Some(tx),
            thread: Some(thread),
            addrman,
            path,
        })
    }

    /// Stops the thread and writes the file a last time (shutdown).
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            match self.addrman.save(&self.path) {
                Ok(()) => log::debug!(
                    "wrote {} addresses to {}",
                    self.addrman.size(),
                    self.path.display()
                ),
                Err(e) => log::warn!("writing {}: {e}", self.path.display()),
            }
        }
    }
}

impl Drop for Dumper {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    const NOW: u32 = 1_800_000_000;
    const KEY: [u8; 32] = [7; 32];

    fn am() -> AddrMan {
        AddrMan::with_key(KEY, false, 42)
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> AddrV2 {
        AddrV2::Ipv4(Ipv4Addr::new(a, b, c, d))
    }

    fn msg(addr: AddrV2, time: u32) -> AddrV2Message {
        AddrV2Message {
            time,
            services: ServiceFlags::NETWORK,
            addr,
            port: 8333,
        }
    }

    /// Routable IPv4 address number `i` (below 52,736), one /16 group per `i`.
    fn spread(i: u32) -> AddrV2 {
        let firsts: Vec<u8> = (11u8..=223)
            .filter(|a| ![100, 127, 169, 172, 192, 198, 203].contains(a))
            .collect();
        let a = firsts[(i / 256) as usize % firsts.len()];
        v4(a, i as u8, (i % 13) as u8, 1 + (i % 7) as u8)
    }

    fn new_buckets_used(am: &AddrMan) -> usize {
        let inner = am.inner.lock();
        (0..ADDRMAN_NEW_BUCKET_COUNT)
            .filter(|b| (0..ADDRMAN_BUCKET_SIZE).any(|p| inner.new_table[slot(*b, p)].is_some()))
            .count()
    }

    /// Checks the tables and the counters agree.
    fn check_consistent(am: &AddrMan) {
        let inner = am.inner.lock();
        let new_refs = inner.new_table.iter().flatten().count();
        let tried = inner.tried_table.iter().flatten().count();
        assert_eq!(tried, inner.n_tried);
        let mut per_net = [(0usize, 0usize); 6];
        for e in inner.map.values() {
            let c = &mut per_net[inner.class(&e.info.addr) as usize];
            if e.info.in_tried {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
        }
        assert_eq!(per_net, inner.net_counts);
        assert_eq!(inner.n_new + inner.n_tried, inner.map.len());
        assert_eq!(inner.random.len(), inner.map.len());
        let ref_sum: u32 = inner.map.values().map(|e| e.ref_count).sum();
        assert_eq!(ref_sum as usize, new_refs);
        for (i, k) in inner.random.iter().enumerate() {
            assert_eq!(inner.map[k].random_pos, i);
        }
        for e in inner.map.values() {
            assert_eq!(e.info.in_tried, e.ref_count == 0, "{:?}", e.info);
        }
    }

    #[test]
    fn one_source_group_fills_at_most_its_64_buckets() {
        // Core's bound: a source group maps to at most
        // ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP (64) new buckets of 64
        // slots, so 10,000 addresses from many groups told by one source
        // occupy at most 64 buckets and 4,096 entries.
        let am = am();
        let source = v4(5, 5, 5, 5);
        let list: Vec<_> = (0..10_000).map(|i| msg(spread(i), NOW)).collect();
        let added = am.add_at(&list, &source, 0, NOW);
        let buckets = new_buckets_used(&am);
        assert!(buckets <= 64, "{buckets} buckets");
        assert!(am.size() <= 64 * 64, "{} entries", am.size());
        assert_eq!(added, am.size());
        // It does fill them: most of the 4,096 slots are taken.
        assert!(am.size() > 2_000, "{}", am.size());
        // Another source in the same /16 is the same source group.
        let more: Vec<_> = (10_000..20_000).map(|i| msg(spread(i), NOW)).collect();
        am.add_at(&more, &v4(5, 5, 9, 9), 0, NOW);
        assert!(new_buckets_used(&am) <= 64);
        // Addresses of one group from one source share one bucket: 64 slots.
        let one = AddrMan::with_key(KEY, false, 1);
        let same_group: Vec<_> = (0..1_000u32)
            .map(|i| msg(v4(20, 1, (i / 250) as u8, 1 + (i % 250) as u8), NOW))
            .collect();
        one.add_at(&same_group, &source, 0, NOW);
        assert!(one.size() <= 64, "{}", one.size());
        assert_eq!(new_buckets_used(&one), 1);
        check_consistent(&am);
    }

    #[test]
    fn addresses_from_many_groups_spread_over_the_table() {
        let am = am();
        for i in 0..10_000u32 {
            let source = v4(30 + (i % 50) as u8, (i / 50) as u8, 0, 1);
            am.add_at(&[msg(spread(i), NOW)], &source, 0, NOW);
        }
        // 10,000 entries in 65,536 slots: few collisions, nearly every
        // bucket used.
        assert!(am.size() > 9_000, "{}", am.size());
        assert!(new_buckets_used(&am) > 1_000, "{}", new_buckets_used(&am));
        check_consistent(&am);
    }

    #[test]
    fn only_routable_addresses_and_the_regtest_loopback_rule() {
        let am = am();
        let src = v4(5, 5, 5, 5);
        let bad = [
            v4(10, 0, 0, 1),
            v4(127, 0, 0, 1),
            v4(192, 168, 1, 1),
            v4(0, 0, 0, 0),
        ];
        let list: Vec<_> = bad.iter().map(|a| msg(a.clone(), NOW)).collect();
        assert_eq!(am.add_at(&list, &src, 0, NOW), 0);
        let mut port0 = msg(v4(1, 2, 3, 4), NOW);
        port0.port = 0;
        assert_eq!(am.add_at(&[port0], &src, 0, NOW), 0);
        assert_eq!(am.size(), 0);
        // Every BIP155 network is kept.
        let others = [
            AddrV2::TorV3([3; 32]),
            AddrV2::I2p([4; 32]),
            AddrV2::Cjdns("fc00::1".parse().unwrap()),
            AddrV2::Ipv6("2a01:4f8::1".parse().unwrap()),
        ];
        let list: Vec<_> = others.iter().map(|a| msg(a.clone(), NOW)).collect();
        assert_eq!(am.add_at(&list, &src, 0, NOW), 4);
        // Regtest: loopback is routable.
        let reg = AddrMan::with_key(KEY, true, 1);
        let lo = [msg(v4(127, 0, 0, 1), NOW)];
        assert_eq!(reg.add_at(&lo, &v4(127, 0, 0, 1), 0, NOW), 1);
        assert_eq!(
            reg.select_at(false, &[NetClass::Ipv4], NOW).map(|i| i.addr),
            Some(v4(127, 0, 0, 1))
        );
    }

    #[test]
    fn time_penalty_and_refresh_follow_core() {
        let am = am();
        let a = v4(1, 2, 3, 4);
        am.add_at(&[msg(a.clone(), NOW)], &v4(5, 5, 5, 5), 7_200, NOW);
        assert_eq!(am.find(&a, 8333).unwrap().time, NOW - 7_200);
        // An address its owner tells us has no penalty.
        let b = v4(1, 9, 3, 4);
        am.add_at(&[msg(b.clone(), NOW)], &b, 7_200, NOW);
        assert_eq!(am.find(&b, 8333).unwrap().time, NOW);
        // Seen again 3 hours later: newer than time + 1 h + penalty.
        am.add_at(
            &[msg(a.clone(), NOW + 3 * 3600)],
            &v4(5, 5, 5, 5),
            0,
            NOW + 3 * 3600,
        );
        assert_eq!(am.find(&a, 8333).unwrap().time, NOW + 3 * 3600);
        // Re-adding is not "newly added".
        assert_eq!(am.add_at(&[msg(a, NOW)], &v4(5, 5, 5, 5), 0, NOW), 0);
        assert_eq!(am.size(), 2);
    }

    #[test]
    fn good_moves_to_tried_and_attempts_make_entries_terrible() {
        let am = am();
        let a = v4(1, 2, 3, 4);
        am.add_at(&[msg(a.clone(), NOW)], &v4(5, 5, 5, 5), 0, NOW);
        assert_eq!(am.size_new_tried(), (1, 0));
        am.good(&a, 8333, NOW);
        assert_eq!(am.size_new_tried(), (0, 1));
        let info = am.find(&a, 8333).unwrap();
        assert!(info.in_tried);
        assert_eq!(
            (info.last_success, info.last_try, info.attempts),
            (NOW, NOW, 0)
        );
        // Unknown addresses and other ports are ignored.
        am.good(&v4(1, 1, 1, 1), 8333, NOW);
        am.good(&a, 8334, NOW);
        assert_eq!(am.size_new_tried(), (0, 1));
        // A tried entry is not added to the new table again.
        am.add_at(&[msg(a.clone(), NOW + 600)], &v4(6, 6, 6, 6), 0, NOW + 600);
        assert_eq!(am.size_new_tried(), (0, 1));
        check_consistent(&am);

        // Never-successful: ADDRMAN_RETRIES counted failures make it
        // terrible; a failure counts once per Good of any address.
        let b = v4(2, 3, 4, 5);
        am.add_at(&[msg(b.clone(), NOW)], &v4(5, 5, 5, 5), 0, NOW);
        let later = NOW + 100;
        am.attempt(&b, 8333, true, later);
        am.attempt(&b, 8333, true, later);
        assert_eq!(
            am.find(&b, 8333).unwrap().attempts,
            1,
            "counted once per success"
        );
        for i in 0..2 {
            am.good(&a, 8333, later + 10 + 30 * i);
            am.attempt(&b, 8333, true, later + 20 + 30 * i);
        }
        assert_eq!(am.find(&b, 8333).unwrap().attempts, ADDRMAN_RETRIES);
        // Tried within the last minute: still fine; after it, terrible.
        let after = later + 200;
        assert_eq!(am.get_addr_at(0, 0, None, later + 80).len(), 2);
        let left = am.get_addr_at(0, 0, None, after);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].addr, a);
        // Older than ADDRMAN_HORIZON: terrible too.
        assert!(am
            .get_addr_at(0, 0, None, NOW + ADDRMAN_HORIZON + 200)
            .is_empty());
    }

    /// Two addresses whose tried slots coincide (same /16, so they share
    /// ADDRMAN_TRIED_BUCKETS_PER_GROUP buckets): found by search with the
    /// fixed key.
    fn tried_collision_pair(am: &AddrMan) -> (AddrV2, AddrV2) {
        let inner = am.inner.lock();
        let first = v4(40, 1, 0, 1);
        let tb = inner.tried_bucket(&first, 8333);
        let tp = inner.bucket_position(false, tb, &first, 8333);
        for i in 2..60_000u32 {
            let b = v4(40, 1, (i / 250) as u8, 1 + (i % 250) as u8);
            let bb = inner.tried_bucket(&b, 8333);
            if bb == tb && inner.bucket_position(false, bb, &b, 8333) == tp {
                return (first, b);
            }
        }
        unreachable!("no colliding address in 60,000");
    }

    #[test]
    fn tried_collisions_are_tested_before_eviction() {
        let am = am();
        let (a, b) = tried_collision_pair(&am);
        // Different sources so both get new slots.
        am.add_at(&[msg(a.clone(), NOW)], &v4(5, 5, 5, 5), 0, NOW);
        am.add_at(&[msg(b.clone(), NOW)], &v4(6, 6, 6, 6), 0, NOW);
        am.good(&a, 8333, NOW);
        assert_eq!(am.size_new_tried(), (1, 1));
        assert_eq!(am.select_tried_collision(), None);
        // b wants a's tried slot: kept as a collision, a is to be tested.
        am.good(&b, 8333, NOW);
        assert_eq!(am.size_new_tried(), (1, 1));
        assert_eq!(am.select_tried_collision().map(|i| i.addr), Some(a.clone()));
        // a succeeded within ADDRMAN_REPLACEMENT: a stays, collision dropped.
        am.resolve_collisions_at(NOW + 60);
        assert_eq!(am.select_tried_collision(), None);
        assert!(am.find(&a, 8333).unwrap().in_tried);
        assert!(!am.find(&b, 8333).unwrap().in_tried);

        // Five hours on, b succeeds again; a is not tested within
        // ADDRMAN_TEST_WINDOW: b takes the slot, a goes back to new.
        let t = NOW + 5 * 3600;
        am.good(&b, 8333, t);
        assert!(am.select_tried_collision().is_some());
        am.resolve_collisions_at(t + ADDRMAN_TEST_WINDOW - 60);
        assert!(
            !am.find(&b, 8333).unwrap().in_tried,
            "still in the test window"
        );
        am.resolve_collisions_at(t + ADDRMAN_TEST_WINDOW + 60);
        assert!(am.find(&b, 8333).unwrap().in_tried);
        assert!(!am.find(&a, 8333).unwrap().in_tried);
        assert_eq!(am.size_new_tried(), (1, 1));
        assert_eq!(am.select_tried_collision(), None);
        check_consistent(&am);
    }

    #[test]
    fn the_collision_set_is_bounded() {
        let am = am();
        // Fill tried with one address per slot group, then collide more
        // than ADDRMAN_SET_TRIED_COLLISION_SIZE new ones.
        let mut tried_slots = HashSet::new();
        let mut colliders = Vec::new();
        for i in 0..50_000u32 {
            let a = spread(i);
            am.add_at(
                &[msg(a.clone(), NOW)],
                &v4(50, (i % 200) as u8, 0, 1),
                0,
                NOW,
            );
            if am.find(&a, 8333).is_none() {
                continue;
            }
            let s = {
                let inner = am.inner.lock();
                let tb = inner.tried_bucket(&a, 8333);
                slot(tb, inner.bucket_position(false, tb, &a, 8333))
            };
            if tried_slots.insert(s) {
                am.good(&a, 8333, NOW);
            } else {
                colliders.push(a);
                if colliders.len() > 20 {
                    break;
                }
            }
        }
        assert!(colliders.len() > ADDRMAN_SET_TRIED_COLLISION_SIZE);
        for c in &colliders {
            am.good(c, 8333, NOW);
        }
        assert_eq!(
            am.inner.lock().tried_collisions.len(),
            ADDRMAN_SET_TRIED_COLLISION_SIZE
        );
        check_consistent(&am);
    }

    #[test]
    fn terrible_entries_are_overwritten_and_good_ones_kept() {
        let am = am();
        let src = v4(5, 5, 5, 5);
        let first = v4(60, 1, 0, 1);
        let (nb, np) = {
            let inner = am.inner.lock();
            let b = inner.new_bucket(&first, &src);
            (b, inner.bucket_position(true, b, &first, 8333))
        };
        // An address with the same new slot (same group and source).
        let other = {
            let inner = am.inner.lock();
            (2..60_000u32)
                .map(|i| v4(60, 1, (i / 250) as u8, 1 + (i % 250) as u8))
                .find(|b| {
                    inner.new_bucket(b, &src) == nb
                        && inner.bucket_position(true, nb, b, 8333) == np
                })
                .expect("a colliding address")
        };
        am.add_at(&[msg(first.clone(), NOW)], &src, 0, NOW);
        // The slot's entry is good: the newcomer is dropped.
        assert_eq!(am.add_at(&[msg(other.clone(), NOW)], &src, 0, NOW), 0);
        assert!(am.find(&other, 8333).is_none());
        // 31 days later the old entry is terrible: the newcomer evicts it.
        let later = NOW + ADDRMAN_HORIZON + 86_400;
        assert_eq!(am.add_at(&[msg(other.clone(), later)], &src, 0, later), 1);
        assert!(am.find(&first, 8333).is_none());
        assert!(am.find(&other, 8333).is_some());
        assert_eq!(am.size(), 1);
        check_consistent(&am);
    }

    #[test]
    fn an_address_takes_at_most_8_new_buckets() {
        let am = am();
        let a = v4(70, 1, 2, 3);
        // Told by 2,000 sources in distinct groups, each time newer.
        for i in 0..2_000u32 {
            let t = NOW + i * 10;
            am.add_at(
                &[msg(a.clone(), t)],
                &v4(80 + (i / 200) as u8, i as u8, 0, 1),
                0,
                t,
            );
        }
        let refs = am.inner.lock().map[&(a.clone(), 8333)].ref_count;
        assert!(
            (2..=ADDRMAN_NEW_BUCKETS_PER_ADDRESS).contains(&refs),
            "{refs}"
        );
        check_consistent(&am);
        // Moving it to tried clears every new reference.
        am.good(&a, 8333, NOW);
        assert_eq!(am.size_new_tried(), (0, 1));
        check_consistent(&am);
    }

    #[test]
    fn select_never_returns_from_an_empty_table() {
        let am = am();
        assert_eq!(am.select_at(false, &[], NOW), None);
        assert_eq!(am.select_at(true, &[], NOW), None);
        let a = v4(1, 2, 3, 4);
        am.add_at(&[msg(a.clone(), NOW)], &v4(5, 5, 5, 5), 0, NOW);
        assert_eq!(
            am.select_at(false, &[], NOW).map(|i| i.addr),
            Some(a.clone())
        );
        assert_eq!(
            am.select_at(true, &[], NOW).map(|i| i.addr),
            Some(a.clone())
        );
        assert_eq!(am.select_at(false, &[NetClass::Onion], NOW), None);
        am.good(&a, 8333, NOW);
        // Only tried entries: new_only finds nothing.
        assert_eq!(am.select_at(true, &[], NOW), None);
        assert_eq!(
            am.select_at(false, &[NetClass::Ipv4], NOW).map(|i| i.addr),
            Some(a)
        );
        // One onion among many IPv4 entries: a network filter finds it.
        for i in 0..2_000u32 {
            am.add_at(
                &[msg(spread(i), NOW)],
                &v4(5, (i % 100) as u8, 0, 1),
                0,
                NOW,
            );
        }
        let onion = AddrV2::TorV3([1; 32]);
        am.add_at(&[msg(onion.clone(), NOW)], &v4(5, 5, 5, 5), 0, NOW);
        for _ in 0..20 {
            assert_eq!(
                am.select_at(true, &[NetClass::Onion, NetClass::I2p], NOW)
                    .map(|i| i.addr),
                Some(onion.clone())
            );
        }
        assert_eq!(am.size_by_network()[&NetClass::Onion], (1, 0));
        check_consistent(&am);
    }

    #[test]
    fn select_prefers_entries_not_tried_recently() {
        let am = am();
        let (a, b) = (v4(1, 2, 3, 4), v4(9, 8, 7, 6));
        am.add_at(
            &[msg(a.clone(), NOW), msg(b.clone(), NOW)],
            &v4(5, 5, 5, 5),
            0,
            NOW,
        );
        // b was attempted a minute ago: chance × 0.01.
        am.attempt(&b, 8333, false, NOW - 60);
        let picks_a = (0..200)
            .filter(|_| am.select_at(false, &[], NOW).map(|i| i.addr) == Some(a.clone()))
            .count();
        assert!(picks_a > 150, "{picks_a} of 200");
    }

    #[test]
    fn deterministic_with_a_fixed_key_and_seed() {
        let run = |key: [u8; 32]| {
            let am = AddrMan::with_key(key, false, 9);
            for i in 0..500u32 {
                am.add_at(&[msg(spread(i), NOW)], &v4(5, (i % 9) as u8, 0, 1), 0, NOW);
            }
            let picks: Vec<_> = (0..20).map(|_| am.select_at(false, &[], NOW)).collect();
            let positions: Vec<_> = am.inner.lock().new_table.clone();
            (picks, positions)
        };
        assert_eq!(run(KEY), run(KEY));
        assert_ne!(run(KEY).1, run([8; 32]).1, "the key decides positions");
    }

    #[test]
    fn get_addr_limits_by_count_percent_and_network() {
        let am = am();
        for i in 0..1_000u32 {
            am.add_at(
                &[msg(spread(i), NOW)],
                &v4(5, (i % 200) as u8, 0, 1),
                0,
                NOW,
            );
        }
        let tor: Vec<_> = (0..50u8)
            .map(|i| msg(AddrV2::TorV3([i; 32]), NOW))
            .collect();
        am.add_at(&tor, &v4(6, 6, 6, 6), 0, NOW);
        let n = am.size();
        assert!(n > 900);
        let got = am.get_addr_at(1_000, 23, None, NOW);
        assert_eq!(got.len(), n * 23 / 100);
        let distinct: HashSet<_> = got.iter().map(|m| (m.addr.clone(), m.port)).collect();
        assert_eq!(distinct.len(), got.len());
        assert_eq!(am.get_addr_at(100, 0, None, NOW).len(), 100);
        let onions = am.get_addr_at(0, 0, Some(NetClass::Onion), NOW);
        assert!(!onions.is_empty() && onions.len() <= 50);
        assert!(onions.iter().all(|m| matches!(m.addr, AddrV2::TorV3(_))));
    }

    #[test]
    fn peers_dat_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEERS_FILE);
        let am = am();
        for i in 0..300u32 {
            am.add_at(&[msg(spread(i), NOW)], &v4(5, (i % 20) as u8, 0, 1), 0, NOW);
        }
        am.add_at(&[msg(AddrV2::TorV3([9; 32]), NOW)], &v4(5, 5, 5, 5), 0, NOW);
        let good = spread(3);
        am.good(&good, 8333, NOW);
        am.attempt(&spread(4), 8333, true, NOW + 5);
        am.save(&path).unwrap();
        let back = AddrMan::open(&path, false);
        assert_eq!(back.size(), am.size());
        assert_eq!(back.size_new_tried(), am.size_new_tried());
        assert_eq!(back.find(&good, 8333), am.find(&good, 8333));
        assert_eq!(back.find(&spread(4), 8333).unwrap().attempts, 1);
        assert!(back.find(&AddrV2::TorV3([9; 32]), 8333).is_some());
        // Same key: same positions.
        assert_eq!(back.inner.lock().key, KEY);
        assert_eq!(back.inner.lock().tried_table, am.inner.lock().tried_table);
        check_consistent(&back);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_corrupt_or_truncated_file_is_renamed_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PEERS_FILE);
        let bad = dir.path().join("peers.dat.bad");
        let am = am();
        for i in 0..50u32 {
            am.add_at(&[msg(spread(i), NOW)], &v4(5, (i % 20) as u8, 0, 1), 0, NOW);
        }
        let bytes = am.to_bytes();
        // Truncated.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            AddrMan::load(&path, false),
            Err(AddrManFileError::Checksum)
        ));
        let fresh = AddrMan::open(&path, false);
        assert_eq!(fresh.size(), 0);
        assert!(!path.exists());
        assert_eq!(std::fs::read(&bad).unwrap().len(), bytes.len() / 2);
        // One flipped byte.
        let mut flipped = bytes.clone();
        flipped[60] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            AddrMan::load(&path, false),
            Err(AddrManFileError::Checksum)
        ));
        assert_eq!(AddrMan::open(&path, false).size(), 0);
        // Valid checksum, wrong magic.
        let mut body = bytes[..bytes.len() - 32].to_vec();
        body[0] = b'X';
        let sum = sha256d::Hash::hash(&body).to_byte_array();
        body.extend_from_slice(&sum);
        assert!(matches!(
            AddrMan::from_bytes(&body, false),
            Err(AddrManFileError::BadHeader)
        ));
        // Valid checksum, an entry count larger than the entries.
        let mut body = bytes[..bytes.len() - 32].to_vec();
        body[41] = body[41].wrapping_add(1);
        let sum = sha256d::Hash::hash(&body).to_byte_array();
        body.extend_from_slice(&sum);
        assert!(AddrMan::from_bytes(&body, false).is_err());
        // Missing file: empty, nothing renamed.
        let none = dir.path().join("nothing.dat");
        assert_eq!(AddrMan::open(&none, false).size(), 0);
        assert!(AddrMan::load(&none, false).unwrap().is_none());
    }
}
