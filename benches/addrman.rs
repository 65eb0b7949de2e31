//! Address-manager benchmark (not a test): the cost of Core's `AddrMan`
//! operations on a well-filled table.
//!
//!     cargo bench --bench addrman
//!
//! Adds 100,000 gossiped addresses (one /16 each) from 1,000 source groups,
//! moves 2,000 to tried, then times `select` (any and new-only), `get_addr`
//! (a `getaddr` answer: 1,000 and 23 %), `good`, and writing and reading
//! `peers.dat`. Prints the table size reached and each figure.

use std::time::Instant;

use bitcoin::p2p::address::{AddrV2, AddrV2Message};
use bitcoin::p2p::ServiceFlags;
use strand::peer::addrman::AddrMan;

fn addr(i: u32) -> AddrV2 {
    // Routable first octets only (11..=99, 101..=126).
    let firsts: Vec<u8> = (11u8..=126).filter(|a| *a != 100).collect();
    let a = firsts[(i / 256) as usize % firsts.len()];
    AddrV2::Ipv4([a, i as u8, (i >> 16) as u8, 1].into())
}

fn main() {
    let now = strand::unix_time() as u32;
    let am = AddrMan::with_key([3; 32], false, 1);
    let t = Instant::now();
    for chunk in 0..1_000u32 {
        let source = AddrV2::Ipv4([5, (chunk % 250) as u8, (chunk / 250) as u8, 1].into());
        let list: Vec<AddrV2Message> = (0..100u32)
            .map(|j| AddrV2Message {
                time: now - 60,
                services: ServiceFlags::NETWORK,
                addr: addr(chunk * 100 + j),
                port: 8333,
            })
            .collect();
        am.add(&list, &source, 7_200);
    }
    let add = t.elapsed();
    let t = Instant::now();
    let mut moved = 0;
    for i in 0..100_000u32 {
        if moved == 2_000 {
            break;
        }
        if am.find(&addr(i), 8333).is_some() {
            am.good(&addr(i), 8333, now);
            moved += 1;
        }
    }
    let good = t.elapsed();
    let (n, tr) = am.size_new_tried();
    println!("table: {n} new, {tr} tried (of 100,000 added from 1,000 source groups)");
    println!(
        "add 100,000: {:.1} ms ({:.2} µs each)",
        add.as_secs_f64() * 1e3,
        add.as_secs_f64() * 1e6 / 1e5
    );
    println!(
        "good 2,000: {:.1} ms ({:.0} µs each)",
        good.as_secs_f64() * 1e3,
        good.as_secs_f64() * 1e6 / 2e3
    );
    for (what, new_only) in [("select", false), ("select new-only", true)] {
        let t = Instant::now();
        let mut found = 0;
        for _ in 0..10_000 {
            found += usize::from(am.select(new_only, &[]).is_some());
        }
        let e = t.elapsed();
        println!(
            "{what} ×10,000: {:.1} ms ({:.1} µs each, {found} found)",
            e.as_secs_f64() * 1e3,
            e.as_secs_f64() * 1e6 / 1e4
        );
    }
    let t = Instant::now();
    let mut len = 0;
    for _ in 0..100 {
        len = am.get_addr(1_000, 23, None).len();
    }
    let e = t.elapsed();
    println!(
        "get_addr(1,000, 23 %) ×100: {:.1} ms ({:.2} ms each, {len} addresses)",
        e.as_secs_f64() * 1e3,
        e.as_secs_f64() * 10.0
    );
    let dir = std::env::temp_dir().join(format!("strand-addrman-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("peers.dat");
    let t = Instant::now();
    am.save(&path).expect("save");
    let save = t.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let back = AddrMan::open(&path, false);
    let load = t.elapsed();
    println!(
        "peers.dat: {} KiB, save {:.1} ms, load {:.1} ms ({} entries back)",
        size / 1024,
        save.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        back.size()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
