//! Outbound connections (btcd's `connmgr`), run by the `connmgr` thread.
//!
//! Keeps one connection open to every `--connect` and `--addnode` target,
//! dialled with `proxy::dial` (directly, or through `--proxy`/`--onion`;
//! host names are resolved at each attempt, so a name that does not
//! resolve yet is retried like a refused connection).
//! A failed dial or a closed connection is retried after
//! `retry_base × attempts`, capped at `retry_max` (btcd: 5 s steps, 5 min
//! cap); the attempt counter resets once a connection completes its
//! handshake. The thread checks its targets every 250 ms and stops when the
//! stop channel's sender is dropped.

use crate::proxy::{dial, ConnectTarget};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::peer::{start_peer, ConnectionType, NetContext, Peer};

/// How long a TCP connect may take (Core's `DEFAULT_CONNECT_TIMEOUT`, 5 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often targets are checked.
const TICK: Duration = Duration::from_millis(250);

/// Requests to the connection manager (`addnode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnCmd {
    /// Keep a connection to this target.
    Add(ConnectTarget),
    /// Stop keeping (and retrying) a connection to it.
    Remove(ConnectTarget),
    /// Try one connection, no retries.
    OneTry(ConnectTarget),
}

struct Target {
    addr: ConnectTarget,
    once: bool,
    attempts: u32,
    next_try: Instant,
    peer: Option<Arc<Peer>>,
}

/// Back-off before the next attempt after `attempts` consecutive failures.
pub fn retry_delay(base: Duration, max: Duration, attempts: u32) -> Duration {
    base.saturating_mul(attempts.max(1)).min(max)
}

/// Body of the `connmgr` thread.
pub(crate) fn run_connmgr(
    ctx: Arc<NetContext>,
    addrs: Vec<ConnectTarget>,
    stop: Receiver<()>,
    commands: Receiver<ConnCmd>,
) {
    let mut targets: Vec<Target> = addrs
        .into_iter()
        .map(|addr| Target {
            addr,
            once: false,
            attempts: 0,
            next_try: Instant::now(),
            peer: None,
        })
        .collect();
    let (base, max) = (ctx.config.retry_base, ctx.config.retry_max);
    loop {
        while let Ok(cmd) = commands.try_recv() {
            let once = matches!(cmd, ConnCmd::OneTry(_));
            match cmd {
                ConnCmd::Add(addr) | ConnCmd::OneTry(addr) => {
                    if !targets.iter().any(|t| t.addr == addr) {
                        targets.push(Target {
                            addr,
                            once,
                            attempts: 0,
                            next_try: Instant::now(),
                            peer: None,
                        });
                    }
                }
                ConnCmd::Remove(addr) => targets.retain(|t| t.addr != addr),
            }
        }
        for t in targets.iter_mut() {
            if let Some(p) = &t.peer {
                if !p.is_closed() {
                    if p.handshake_done() {
                        t.attempts = 0;
                    }
                    continue;
                }
                let reason = p.disconnect_reason();
                t.peer = None;
                t.attempts += 1;
                t.next_try = Instant::now() + retry_delay(base, max, t.attempts);
                log::info!(
                    "connection to {} ended ({}); retrying in {:?}",
                    t.addr,
                    reason.map_or_else(|| "unknown".to_string(), |r| r.to_string()),
                    retry_delay(base, max, t.attempts)
                );
            }
            if Instant::now() < t.next_try {
                continue;
            }
            if t.once && t.attempts > 0 {
                continue;
            }
            match dial(&t.addr, ctx.config.proxy_for(&t.addr), CONNECT_TIMEOUT) {
                Ok(stream) => match start_peer(&ctx, stream, ConnectionType::Manual) {
                    Ok(peer) => {
                        log::info!("connected to {peer}");
                        t.peer = Some(peer);
                    }
                    Err(e) => {
                        t.attempts += 1;
                        t.next_try = Instant::now() + retry_delay(base, max, t.attempts);
                        log::info!("cannot start peer {}: {e}", t.addr);
                    }
                },
                Err(e) => {
                    t.attempts += 1;
                    let delay = retry_delay(base, max, t.attempts);
                    t.next_try = Instant::now() + delay;
                    log::info!("cannot connect to {}: {e}; retrying in {delay:?}", t.addr);
                }
            }
        }
        match stop.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    log::debug!("connmgr stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_linearly_and_is_capped() {
        let (b, m) = (Duration::from_secs(5), Duration::from_secs(300));
        assert_eq!(retry_delay(b, m, 1), Duration::from_secs(5));
        assert_eq!(retry_delay(b, m, 3), Duration::from_secs(15));
        assert_eq!(retry_delay(b, m, 1000), Duration::from_secs(300));
    }
}
