//! The `strand` binary: a thin command line over the library.
//!
//! Reads the config file and parses options (`config::parse_args_with_conf`;
//! exit code 2 with a one-line message on any bad option,
//! address or data directory), sets up logging ([`strand::logging`]:
//! debug.log, the console, `-debug=CATEGORY`, `RUST_LOG`), starts a
//! [`strand::Node`] (and the `-blocknotify` thread, [`strand::notify`])
//! and waits for SIGINT or SIGTERM to shut it down cleanly. A chain store
//! that cannot be opened is reported with Core's remedy (`--reindex`,
//! `--reindex-chainstate`). A second signal during shutdown exits at once. A fatal
//! node error (Core's `AbortNode`: a failed store write, a corrupt entry)
//! shuts it down the same way and exits with status 1, the reason on
//! stderr. `--pid FILE` is written once the node started and removed when
//! `run` returns. Before anything else it applies the process-wide
//! allocator settings of [`strand::memory::configure_process`] (at most two
//! malloc arenas, free heap pages returned after store commits).

use std::process::ExitCode;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::net::SocketAddr;
use std::sync::Arc;

use strand::config::{parse_args_with_conf, Command, USAGE};
use strand::rpc::auth::Auth;
use strand::rpc::node::NodeBackend;
use strand::rpc::{RpcConfig, RpcServer};
use strand::Node;

fn main() -> ExitCode {
    // Allocator settings before any thread starts (strand::memory).
    strand::memory::configure_process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "cli") {
        let code = strand::rpc::client::cli_main(&args[1..]);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let command = match parse_args_with_conf(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strand: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("strand {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run {
            config,
            pid_file,
            log,
            blocknotify,
            ..
        } => run(*config, &log, pid_file, blocknotify),
        Command::Generate {
            config,
            count,
            address,
        } => match strand::generate_offline(&config, count, &address) {
            Ok(hashes) => {
                for h in hashes {
                    println!("{h}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("strand: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(
    config: strand::Config,
    log: &strand::logging::LogOptions,
    pid_file: Option<std::path::PathBuf>,
    blocknotify: Option<String>,
) -> ExitCode {
    if let Err(e) = strand::logging::init(log, &config.net_dir()) {
        eprintln!("strand: {e}");
        return ExitCode::from(2);
    }

    let signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("strand: cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
    };
    let network = config.network;
    let rpc_opts = config.rpc.clone();
    // Relative `-rpccookiefile` paths are in the network's directory (Core).
    let cookie = config.net_dir().join(
        config
            .rpc
            .cookie_file
            .clone()
            .unwrap_or_else(|| ".cookie".into()),
    );
    // Relative `--pid` paths are in the network's data directory (Core's
    // AbsPathForConfigVal); written once the node holds that directory.
    let pid_file = pid_file.map(|p| config.net_dir().join(p));
    let node = match Node::start(config) {
        Ok(n) => Arc::new(n),
        Err(e) => {
            eprintln!("strand: {e}{}", remedy(&e));
            return ExitCode::from(2);
        }
    };
    // debug.log once the node holds its data directory (Core's
    // StartLogging after the lock).
    match strand::logging::start_file() {
        Ok(Some(path)) => log::info!("Log file: {}", path.display()),
        Ok(None) => {}
        Err(e) => {
            eprintln!("strand: {e}");
            drop(node);
            return ExitCode::from(2);
        }
    }
    let _notifier = match blocknotify {
        None => None,
        Some(cmd) => match strand::notify::spawn_block_notify(&node, cmd) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("strand: cannot start -blocknotify: {e}");
                drop(node);
                return ExitCode::from(2);
            }
        },
    };

    if let Some(p) = &pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("strand: cannot write the PID file {}: {e}", p.display());
            drop(node);
            return ExitCode::from(2);
        }
    }
    // Removes the PID file on every return from here on.
    let _pid_guard = PidGuard(pid_file);

    // `stop` over RPC and SIGINT/SIGTERM both end up on this channel.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<&'static str>(4);
    let rpc = if rpc_opts.disabled {
        None
    } else {
        let (rpc_stop_tx, rpc_stop_rx) = crossbeam_channel::bounded::<()>(1);
        let forward = stop_tx.clone();
        std::thread::spawn(move || {
            if rpc_stop_rx.recv().is_ok() {
                let _ = forward.send("RPC stop");
            }
        });
        let port = rpc_opts.port.unwrap_or(network.default_rpc_port());
        let mut cfg = RpcConfig::new(port, cookie);
        if !rpc_opts.bind.is_empty() {
            cfg.bind = rpc_opts
                .bind
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
        }
        for a in &rpc_opts.allow_ip {
            if let Ok(a) = a.parse() {
                cfg.allow_ip.push(a);
            }
        }
        if let Some((u, p)) = rpc_opts.user_pass {
            cfg.auth = Auth::UserPass(u, p);
        }
        cfg.rest = rpc_opts.rest;
        let backend = NodeBackend::new(Arc::clone(&node), network, rpc_stop_tx);
        match RpcServer::start(cfg, Arc::new(backend)) {
            Ok(server) => {
                for a in server.local_addrs() {
                    log::info!("JSON-RPC listening on {a}");
                }
                Some(server)
            }
            Err(e) => {
                eprintln!("strand: cannot start the JSON-RPC server: {e}");
                drop(node);
                return ExitCode::from(2);
            }
        }
    };

    let metrics = match rpc_opts.metrics {
        None => None,
        Some(addr) => {
            let calls = rpc.as_ref().map(|s| s.call_counts());
            match strand::metrics::MetricsServer::start(addr, Arc::clone(&node), calls) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("strand: cannot serve metrics on {addr}: {e}");
                    drop(rpc);
                    drop(node);
                    return ExitCode::from(2);
                }
            }
        }
    };

    // AbortNode: a fatal error stops the node like a signal would.
    if let Some(fatal) = node.fatal_signal() {
        let forward = stop_tx.clone();
        std::thread::spawn(move || {
            // Never sent to: returns when the node aborts or is gone.
            let _ = fatal.recv();
            let _ = forward.send("fatal error");
        });
    }

    let handle = signals.handle();
    let mut signals = signals;
    let first = stop_tx.clone();
    std::thread::spawn(move || {
        let mut seen = 0;
        for _ in signals.forever() {
            seen += 1;
            if seen == 1 {
                let _ = first.send("signal");
            } else {
                eprintln!("strand: second signal, exiting without clean shutdown");
                std::process::exit(1);
            }
        }
    });
    let why = stop_rx.recv().unwrap_or("channel closed");
    log::info!("stopping ({why})");
    if let Some(server) = rpc {
        server.stop();
    }
    if let Some(m) = metrics {
        m.stop();
    }
    let fatal = node.fatal_error();
    match Arc::try_unwrap(node) {
        Ok(node) => node.shutdown(),
        Err(node) => {
            log::warn!("node still referenced at shutdown; stopping through drop");
            drop(node);
        }
    }
    handle.close();
    match fatal {
        Some(reason) => {
            eprintln!("strand: fatal error: {reason}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

/// Core's advice for a chain store that cannot be read ("Please restart
/// with -reindex or -reindex-chainstate to recover."), for the errors a
/// rebuild can fix: not for a store of another network or version.
fn remedy(e: &strand::StartError) -> &'static str {
    use strand::chain::state::ChainError;
    use strand::store::StoreError;
    match e {
        strand::StartError::Chain(
            ChainError::Inconsistent(_)
            | ChainError::Store(
                StoreError::NotAStore { .. }
                | StoreError::Corrupt { .. }
                | StoreError::MissingKey { .. },
            ),
        ) => {
            "; restart with --reindex-chainstate to rebuild the chain state from the stored \
             blocks, or --reindex to rebuild everything from the block data"
        }
        _ => "",
    }
}

/// Removes the `--pid` file when dropped (at the end of [`run`]).
struct PidGuard(Option<std::path::PathBuf>);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
