//! The per-peer lifecycle thread: the one sender of a peer's `Add` and `Done`.
//!
//! This is the heart of strand's design (see `docs/DESIGN.md`, "the bug this
//! design exists to make impossible"). Each connection gets a lifecycle
//! thread running [`run_lifecycle`]. It waits for the peer's *verack* signal
//! or its *quit* signal, checking verack first without blocking and then
//! with a biased select, so a peer whose verack and quit are both already
//! signalled is always added; it sends [`LifecycleEvent::Add`] if verack
//! came, then waits for quit and sends [`LifecycleEvent::Done`]. Both go into
//! the single lifecycle channel consumed only by the peer-handler thread
//! (`server.rs`), so for any peer `Add` can never follow `Done`.
//!
//! The verack and quit flags are [`super::signal::Signal`]s.

use std::sync::Arc;

use crossbeam_channel::{select_biased, Sender};

use super::Peer;

/// A peer's lifecycle events, in the only order they can be sent:
/// optionally `Add`, then exactly one `Done`.
#[derive(Debug, Clone)]
pub enum LifecycleEvent {
    /// The peer completed the version handshake.
    Add(Arc<Peer>),
    /// The peer's connection is closed; no more events for it follow.
    Done(Arc<Peer>),
}

impl LifecycleEvent {
    /// The peer the event is about.
    pub fn peer(&self) -> &Arc<Peer> {
        match self {
            LifecycleEvent::Add(p) | LifecycleEvent::Done(p) => p,
        }
    }
}

/// Runs one peer's lifecycle: `Add` if verack came first, then `Done` once
/// the peer has quit. Returns whether `Add` was sent.
///
/// Verack has priority: it is checked without blocking before the select,
/// and the select is biased towards it, so a peer that completed the
/// handshake and quit before this thread ran is still added (then done),
/// deterministically. Sends block only while the peer handler is busy; the
/// channel is sized so that never lasts (see `server::lifecycle_capacity`).
/// If the peer handler is gone (shutdown) the events are dropped.
pub fn run_lifecycle(peer: Arc<Peer>, events: &Sender<LifecycleEvent>) -> bool {
    let verack = peer.verack.receiver();
    let quit = peer.quit.receiver();
    let added = if peer.verack.is_set() {
        true
    } else {
        select_biased! {
            recv(verack) -> _ => true,
            recv(quit) -> _ => false,
        }
    };
    if added && events.send(LifecycleEvent::Add(Arc::clone(&peer))).is_err() {
        log::debug!("peer handler gone; dropping Add for {}", peer);
    }
    peer.quit.wait();
    if events
        .send(LifecycleEvent::Done(Arc::clone(&peer)))
        .is_err()
    {
        log::debug!("peer handler gone; dropping Done for {}", peer);
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Direction;
    use crossbeam_channel::unbounded;
    use std::time::Duration;

    fn test_peer(id: u64) -> Arc<Peer> {
        Arc::new(Peer::detached(id, Direction::Inbound))
    }

    #[test]
    fn verack_twice_does_not_panic_and_stays_set() {
        let peer = test_peer(1);
        assert!(!peer.verack.is_set());
        assert!(peer.verack.set(&peer));
        assert!(!peer.verack.set(&peer), "second set reports the misuse");
        assert!(peer.verack.is_set());
        assert!(peer.verack.receiver().try_recv().is_err());
        assert!(!peer.quit.is_set());
    }

    #[test]
    fn verack_then_quit_emits_add_then_done() {
        let peer = test_peer(7);
        let (tx, rx) = unbounded();
        let p = Arc::clone(&peer);
        let t = std::thread::spawn(move || run_lifecycle(p, &tx));
        // Nothing is sent before either signal.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        peer.verack.set(&peer);
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            LifecycleEvent::Add(p) => assert_eq!(p.id, peer.id),
            other => panic!("expected Add, got {other:?}"),
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "Done before quit"
        );
        peer.quit.set(&peer);
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            LifecycleEvent::Done(p) => assert_eq!(p.id, peer.id),
            other => panic!("expected Done, got {other:?}"),
        }
        assert!(t.join().unwrap());
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err());
    }

    #[test]
    fn both_signalled_before_start_is_always_add_then_done() {
        for i in 0..2_000 {
            let peer = test_peer(i);
            peer.verack.set(&peer);
            peer.quit.set(&peer);
            let (tx, rx) = unbounded();
            assert!(run_lifecycle(Arc::clone(&peer), &tx), "iteration {i}");
            drop(tx);
            let events: Vec<_> = rx.iter().collect();
            assert_eq!(events.len(), 2, "iteration {i}");
            assert!(matches!(&events[0], LifecycleEvent::Add(p) if p.id == i));
            assert!(matches!(&events[1], LifecycleEvent::Done(p) if p.id == i));
        }
    }

    #[test]
    fn quit_before_verack_emits_only_done() {
        let peer = test_peer(3);
        let (tx, rx) = unbounded();
        let p = Arc::clone(&peer);
        let t = std::thread::spawn(move || run_lifecycle(p, &tx));
        peer.quit.set(&peer);
        assert!(!t.join().unwrap());
        // A verack arriving after quit changes nothing.
        peer.verack.set(&peer);
        let events: Vec<_> = rx.iter().collect();
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], LifecycleEvent::Done(p) if p.id == 3));
    }
}
