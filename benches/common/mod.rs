//! Pieces shared by the benchmark binaries (`net`, `sync`): the fake
//! peer's `version` message and closing sockets without TIME_WAIT.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::ServiceFlags;

/// A fake peer's `version` (protocol 70016, no relay).
pub fn version(start_height: i32, services: ServiceFlags, nonce: u64) -> NetworkMessage {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    NetworkMessage::Version(VersionMessage {
        version: 70016,
        services,
        timestamp: strand::unix_time() as i64,
        receiver: Address::new(&any, ServiceFlags::NONE),
        sender: Address::new(&any, services),
        nonce,
        user_agent: "/bench:0.1/".into(),
        start_height,
        relay: false,
    })
}

/// SO_LINGER 0: the socket resets on close instead of sitting in
/// TIME_WAIT, so tens of thousands of connections do not exhaust ports.
pub fn linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd, a properly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
