//! The `strand` binary: a thin command line over the library.
//!
//! Parses options (exit code 2 with a one-line message on any bad option,
//! address or data directory), sets up logging (`RUST_LOG`, `--debug`),
//! starts a [`strand::Node`] and waits for SIGINT or SIGTERM to shut it
//! down cleanly. A second signal during shutdown exits at once.

use std::process::ExitCode;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use strand::config::{parse_args, Command, USAGE};
use strand::Node;

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
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
        Command::Run { config, log_level } => run(*config, log_level),
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

fn run(config: strand::Config, log_level: Option<String>) -> ExitCode {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let Some(level) = log_level {
        logger.parse_filters(&level);
    }
    logger.format_timestamp_millis().init();

    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("strand: cannot install signal handlers: {e}");
            return ExitCode::from(2);
        }
    };
    let node = match Node::start(config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("strand: {e}");
            return ExitCode::from(2);
        }
    };
    let signal = signals.forever().next();
    log::info!("received signal {}", signal.unwrap_or(0));
    let handle = signals.handle();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("strand: second signal, exiting without clean shutdown");
            std::process::exit(1);
        }
    });
    node.shutdown();
    handle.close();
    ExitCode::SUCCESS
}
