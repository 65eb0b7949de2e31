//! `-blocknotify=CMD` (Bitcoin Core's `BlockNotifyCallback`/`runCommand`):
//! a command run through `sh -c` for each new tip, `%s` replaced by the
//! tip's hash.
//!
//! It runs on a thread of its own, fed by an event subscription
//! ([`NodeHandle::subscribe`]), so the sync manager never waits for it: a
//! full subscription drops events, never blocks. A burst of connected
//! blocks is coalesced into one notification for the last one (Core
//! notifies once per tip update, not per block), and nothing is run during
//! initial block download, as Core. Each command runs as a child process
//! that is reaped by a short-lived thread, so a slow command does not
//! delay the next notification (Core detaches a thread per command).

use std::process::{Command, Stdio};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use bitcoin::BlockHash;

use crate::events::NodeEvent;
use crate::{NodeError, NodeHandle};

/// Undelivered events the notifier may hold before the node drops some.
const QUEUE: usize = 1024;

/// The command line for `hash`: every `%s` replaced (Core's
/// `ReplaceAll(strCmd, "%s", hash)`).
pub fn command_for(template: &str, hash: &BlockHash) -> String {
    template.replace("%s", &hash.to_string())
}

/// Starts the notifier thread for `template`. It ends when the node stops
/// (its subscription closes). It holds the node weakly, so the owner can
/// still shut it down.
pub fn spawn_block_notify(
    node: &Arc<NodeHandle>,
    template: String,
) -> Result<JoinHandle<()>, NodeError> {
    let sub = node.subscribe(QUEUE)?;
    let node: Weak<NodeHandle> = Arc::downgrade(node);
    std::thread::Builder::new()
        .name("blocknotify".into())
        .spawn(move || {
            while let Ok(first) = sub.events.recv() {
                let mut tip = tip_of(&first);
                while let Ok(more) = sub.events.try_recv() {
                    tip = tip_of(&more).or(tip);
                }
                let Some(hash) = tip else { continue };
                // Core: `if (sync_state == SynchronizationState::IN_IBD) return;`
                let ibd = match node.upgrade().map(|n| n.sync_snapshot()) {
                    Some(Ok(s)) => s.initial_block_download,
                    _ => return,
                };
                if ibd {
                    continue;
                }
                run(&command_for(&template, &hash));
            }
        })
        .map_err(|_| NodeError::Stopped)
}

fn tip_of(e: &NodeEvent) -> Option<BlockHash> {
    match e {
        NodeEvent::BlockConnected { hash, .. } => Some(*hash),
        _ => None,
    }
}

/// Core's `runCommand`: `sh -c CMD`; a failure is logged, never fatal.
fn run(cmd: &str) {
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            let cmd = cmd.to_string();
            let _ = std::thread::Builder::new()
                .name("blocknotify-wait".into())
                .spawn(move || match child.wait() {
                    Ok(s) if !s.success() => {
                        log::warn!("runCommand error: system({cmd}) returned {s}")
                    }
                    Err(e) => log::warn!("runCommand error: {cmd}: {e}"),
                    Ok(_) => {}
                });
        }
        Err(e) => log::warn!("runCommand error: cannot run sh -c {cmd}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_s_is_the_hash() {
        let h: BlockHash = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
            .parse()
            .unwrap();
        assert_eq!(
            command_for("echo %s >> f; echo %s", &h),
            format!("echo {h} >> f; echo {h}")
        );
    }
}
