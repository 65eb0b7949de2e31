//! The binary's logger (Bitcoin Core's `BCLog::Logger`): `debug.log` in the
//! network's data directory, the console (stderr) too unless
//! `-printtoconsole=0`, Core's line format (`2026-11-30T15:04:16Z [net] …`),
//! Core's `-debug=CATEGORY` names mapped to strand's module log targets,
//! `ShrinkDebugFile` at start, and lines buffered until debug.log opens
//! (Core's `StartLogging`, after the data directory is locked).
//!
//! Only `main` installs it ([`init`]), on the main thread, before the node
//! starts; records are then written by whichever thread logs, under one
//! mutex (Core's `m_cs`). The library itself only uses the `log` facade, so
//! an embedder installs a logger of its own (or none).
//!
//! Filtering: info, warnings and errors are always logged, as in Core
//! (`WillLogCategoryLevel`); debug lines only for the enabled categories.
//! `-debug=LEVEL` (error, warn, info, debug, trace, off) keeps strand's
//! older meaning, a global level; `RUST_LOG` (env_logger's syntax) is
//! applied last and wins over both.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::Mutex;

/// Core's `DEFAULT_DEBUGLOGFILE`.
pub const DEFAULT_DEBUGLOGFILE: &str = "debug.log";

/// Core's `RECENT_DEBUG_HISTORY_SIZE` (logging.cpp, 10 MB): what
/// `ShrinkDebugFile` keeps of a file that grew more than 10 % beyond it.
pub const RECENT_DEBUG_HISTORY_SIZE: u64 = 10 * 1_000_000;

/// Core's logging categories (`LOG_CATEGORIES_BY_STR`) and the strand
/// module paths (log targets) each covers. Categories for subsystems
/// strand does not have (wallet, zmq, qt, …) are accepted and log nothing,
/// so Core's configurations still start. A target belongs to the category
/// of its longest matching path.
pub const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "net",
        &[
            "strand::peer",
            "strand::server",
            "strand::connmgr",
            "strand::wire",
            "strand::netaddr",
        ],
    ),
    ("tor", &[]),
    ("mempool", &["strand::mempool"]),
    ("http", &["strand::rpc::http"]),
    ("bench", &[]),
    ("zmq", &[]),
    ("walletdb", &[]),
    ("rpc", &["strand::rpc"]),
    ("estimatefee", &[]),
    (
        "addrman",
        &["strand::peer::addrman", "strand::peer::addrbook"],
    ),
    ("selectcoins", &[]),
    ("reindex", &[]),
    ("cmpctblock", &[]),
    ("rand", &[]),
    ("prune", &[]),
    ("proxy", &["strand::proxy"]),
    ("mempoolrej", &[]),
    ("coindb", &[]),
    ("qt", &[]),
    ("leveldb", &["strand::store"]),
    (
        "validation",
        &["strand::chain", "strand::sync", "strand::mining"],
    ),
    ("i2p", &[]),
    ("ipc", &[]),
    ("blockstorage", &[]),
    ("txreconciliation", &[]),
    ("scan", &[]),
    ("txpackages", &[]),
    ("kernel", &[]),
    ("privatebroadcast", &[]),
];

/// A `-debug`/`-debugexclude`/`-loglevel` value that is not a category or
/// level (Core: "Unsupported logging category -debug=…").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptionError(pub String);

impl std::fmt::Display for LogOptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogOptionError {}

/// Where `debug.log` goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DebugLogFile {
    /// `debug.log` in the network's data directory.
    #[default]
    Default,
    /// `-debuglogfile=PATH`, relative to the network's data directory.
    Path(PathBuf),
    /// `-nodebuglogfile`: no file.
    Disabled,
}

/// The logging options of the command line and config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `-debug=LEVEL`: strand's older global level (error … trace, off).
    pub level: Option<LevelFilter>,
    /// `-debug=CATEGORY` (Core's names); `all`/`1` enables every one.
    pub categories: Vec<String>,
    /// `-debugexclude=CATEGORY`.
    pub exclude: Vec<String>,
    /// `-loglevel=LEVEL` or `-loglevel=CATEGORY:LEVEL` (debug or trace) for
    /// enabled categories; default debug, as Core's `DEFAULT_LOG_LEVEL`.
    pub category_level: Vec<(Option<String>, LevelFilter)>,
    /// `-printtoconsole` (Core's default: on without `-daemon`, which
    /// strand never is).
    pub print_to_console: Option<bool>,
    /// `-debuglogfile` / `-nodebuglogfile`.
    pub file: DebugLogFile,
    /// `-shrinkdebugfile` (Core's default: on unless `-debug` categories).
    pub shrink: Option<bool>,
    /// `-logtimemicros` (Core's `DEFAULT_LOGTIMEMICROS` false).
    pub time_micros: bool,
}

fn is_category(name: &str) -> bool {
    CATEGORIES.iter().any(|(c, _)| *c == name)
}

/// Parses a level word (Core's and `log`'s names).
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

impl LogOptions {
    /// Adds one `-debug` value: a level (strand's older meaning), `1`,
    /// `all` or empty (every category), `0`/`none` (none, as Core), or a
    /// category name.
    pub fn add_debug(&mut self, v: &str) -> Result<(), LogOptionError> {
        let v = v.to_ascii_lowercase();
        if let Some(l) = parse_level(&v) {
            self.level = Some(l);
        } else if matches!(v.as_str(), "0" | "none") {
            self.categories.clear();
            self.level = None;
        } else if matches!(v.as_str(), "" | "1" | "all") {
            self.categories.push("all".into());
        } else if is_category(&v) {
            self.categories.push(v);
        } else {
            return Err(LogOptionError(format!(
                "Unsupported logging category -debug={v}."
            )));
        }
        Ok(())
    }

    /// Adds one `-debugexclude` value.
    pub fn add_exclude(&mut self, v: &str) -> Result<(), LogOptionError> {
        let v = v.to_ascii_lowercase();
        if matches!(v.as_str(), "" | "1" | "all") {
            self.exclude.push("all".into());
        } else if matches!(v.as_str(), "0" | "none") {
        } else if is_category(&v) {
            self.exclude.push(v);
        } else {
            return Err(LogOptionError(format!(
                "Unsupported logging category -debugexclude={v}."
            )));
        }
        Ok(())
    }

    /// Adds one `-loglevel` value: `LEVEL` or `CATEGORY:LEVEL`, where
    /// LEVEL is `debug` or `trace` (Core's `-loglevel` levels below info;
    /// info and above are always logged).
    pub fn add_loglevel(&mut self, v: &str) -> Result<(), LogOptionError> {
        let v = v.to_ascii_lowercase();
        let (cat, lvl) = match v.split_once(':') {
            Some((c, l)) => (Some(c), l),
            None => (None, v.as_str()),
        };
        let level = match lvl {
            "debug" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            "info" => LevelFilter::Info,
            _ => {
                return Err(LogOptionError(format!(
                "Unsupported global logging level -loglevel={v}. Valid values: info, debug, trace."
            )))
            }
        };
        if let Some(c) = cat {
            if !is_category(c) {
                return Err(LogOptionError(format!(
                    "Unsupported category-specific logging level -loglevel={v}."
                )));
            }
        }
        self.category_level.push((cat.map(str::to_string), level));
        Ok(())
    }

    /// The enabled categories after `-debugexclude` (Core's
    /// `EnableCategory`/`DisableCategory` order: all enables, then each
    /// exclusion removes).
    pub fn enabled_categories(&self) -> Vec<&'static str> {
        let all = self.categories.iter().any(|c| c == "all");
        let excluded_all = self.exclude.iter().any(|c| c == "all");
        CATEGORIES
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| all || self.categories.iter().any(|x| x == c))
            .filter(|c| !excluded_all && !self.exclude.iter().any(|x| x == c))
            .collect()
    }

    /// The debug.log path for the network directory `net_dir`, if any
    /// (Core's `AbsPathForConfigVal`: relative paths are in it).
    pub fn file_path(&self, net_dir: &Path) -> Option<PathBuf> {
        match &self.file {
            DebugLogFile::Default => Some(net_dir.join(DEFAULT_DEBUGLOGFILE)),
            DebugLogFile::Path(p) => Some(net_dir.join(p)),
            DebugLogFile::Disabled => None,
        }
    }

    fn level_for(&self, category: &str) -> LevelFilter {
        let mut level = LevelFilter::Debug;
        for (c, l) in &self.category_level {
            match c {
                None => level = *l,
                Some(c) if c == category => level = *l,
                _ => {}
            }
        }
        level
    }

    /// The target filter: env_logger's directives (info by default, each
    /// category's modules at its level, `RUST_LOG` last).
    fn filter(&self, rust_log: Option<&str>) -> env_logger::Logger {
        let mut b = env_logger::Builder::new();
        b.filter_level(self.level.unwrap_or(LevelFilter::Info));
        let enabled = self.enabled_categories();
        if !enabled.is_empty() || !self.exclude.is_empty() {
            // `-debug=all`: strand's unmapped modules too.
            if self.categories.iter().any(|c| c == "all") {
                b.filter_module("strand", self.level_for("all"));
            }
            // Every mapped module gets a directive, so a category nested in
            // an enabled one (addrman in net) keeps its own setting.
            for (cat, modules) in CATEGORIES {
                let level = if enabled.contains(cat) {
                    self.level_for(cat)
                } else {
                    self.level
                        .unwrap_or(LevelFilter::Info)
                        .min(LevelFilter::Info)
                };
                for m in *modules {
                    b.filter_module(m, level);
                }
            }
        }
        if let Some(r) = rust_log {
            b.parse_filters(r);
        }
        b.build()
    }
}

/// The category of a log target (longest matching module path), as Core
/// prints it in `[net]`.
pub fn category_of(target: &str) -> Option<&'static str> {
    let mut best: Option<(&'static str, usize)> = None;
    for (cat, modules) in CATEGORIES {
        for m in *modules {
            let under = target == *m
                || target
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.starts_with("::"));
            if under && best.is_none_or(|(_, len)| m.len() > len) {
                best = Some((cat, m.len()));
            }
        }
    }
    best.map(|(c, _)| c)
}

/// Core's `GetLogPrefix`: nothing for info; `[warning] `/`[error] `;
/// `[net] ` for a category's debug lines, `[net:trace] ` for trace.
pub fn prefix(level: Level, category: Option<&str>) -> String {
    match (level, category) {
        (Level::Info, _) => String::new(),
        (Level::Warn, _) => "[warning] ".into(),
        (Level::Error, _) => "[error] ".into(),
        (Level::Debug, Some(c)) => format!("[{c}] "),
        (Level::Trace, Some(c)) => format!("[{c}:trace] "),
        (Level::Debug, None) => "[debug] ".into(),
        (Level::Trace, None) => "[trace] ".into(),
    }
}

/// Core's `LogEscapeMessage`: control characters other than newline are
/// written as `\xNN`, so a peer's string cannot forge log lines or
/// terminal codes.
fn escape_into(out: &mut String, msg: &str) {
    for ch in msg.chars() {
        if (ch.is_control() && ch != '\n') || ch == '\x7f' {
            let _ = write!(out, "\\x{:02x}", ch as u32);
        } else {
            out.push(ch);
        }
    }
}

/// One formatted line (Core's `Format`), with its newline.
pub fn format_line(now: std::time::SystemTime, micros: bool, record: &Record<'_>) -> String {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = crate::util::format_iso8601(i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
    if micros {
        line.pop();
        let _ = write!(line, ".{:06}Z", since.subsec_micros());
    }
    line.push(' ');
    line.push_str(&prefix(record.level(), category_of(record.target())));
    escape_into(&mut line, &record.args().to_string());
    if !line.ends_with('\n') {
        line.push('\n');
    }
    line
}

/// Core's `ShrinkDebugFile`: a file more than 10 % over
/// [`RECENT_DEBUG_HISTORY_SIZE`] is cut to its last that many bytes.
/// Returns whether it was shrunk.
pub fn shrink_debug_file(path: &Path) -> io::Result<bool> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let size = f.metadata()?.len();
    if size <= 11 * (RECENT_DEBUG_HISTORY_SIZE / 10) {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-(RECENT_DEBUG_HISTORY_SIZE as i64)))?;
    let mut keep = Vec::with_capacity(RECENT_DEBUG_HISTORY_SIZE as usize);
    f.take(RECENT_DEBUG_HISTORY_SIZE).read_to_end(&mut keep)?;
    std::fs::write(path, keep)?;
    Ok(true)
}

/// Core's `DEFAULT_MAX_LOG_BUFFER` (logging.h, 1 MB): log text kept in
/// memory before debug.log is opened ([`start_file`]); older lines are
/// dropped beyond it.
pub const DEFAULT_MAX_LOG_BUFFER: usize = 1_000_000;

struct Sinks {
    file: Option<File>,
    /// Lines logged before [`start_file`] (Core's `m_buffering`), for
    /// debug.log; `None` once started or without a file.
    buffer: Option<std::collections::VecDeque<String>>,
    buffered_bytes: usize,
    console: bool,
}

/// The installed logger.
struct Logger {
    /// Rebuilt by [`update_categories`] (the `logging` RPC).
    filter: parking_lot::RwLock<env_logger::Logger>,
    /// The options the filter was built from.
    opts: Mutex<LogOptions>,
    micros: bool,
    path: Option<PathBuf>,
    shrink: bool,
    sinks: Mutex<Sinks>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.read().enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.read().matches(record) {
            return;
        }
        let line = format_line(std::time::SystemTime::now(), self.micros, record);
        let mut sinks = self.sinks.lock();
        if sinks.console {
            let _ = io::stderr().write_all(line.as_bytes());
        }
        if let Some(f) = sinks.file.as_mut() {
            // A failed write (disk full) must not stop the node; Core
            // ignores it too.
            let _ = f.write_all(line.as_bytes());
        } else {
            let Sinks {
                buffer,
                buffered_bytes,
                ..
            } = &mut *sinks;
            if let Some(b) = buffer.as_mut() {
                *buffered_bytes += line.len();
                b.push_back(line);
                while *buffered_bytes > DEFAULT_MAX_LOG_BUFFER {
                    match b.pop_front() {
                        Some(old) => *buffered_bytes -= old.len(),
                        None => break,
                    }
                }
            }
        }
    }

    fn flush(&self) {
        if let Some(f) = self.sinks.lock().file.as_mut() {
            let _ = f.flush();
        }
    }
}

static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();

/// Installs the logger for the network directory `net_dir`: the console
/// at once, debug.log lines buffered in memory until [`start_file`] (Core
/// opens debug.log only once it holds the data directory's lock). Sets the
/// `log` crate's maximum level.
pub fn init(opts: &LogOptions, net_dir: &Path) -> Result<(), String> {
    let path = opts.file_path(net_dir);
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = opts.filter(rust_log.as_deref());
    let logger = Logger {
        micros: opts.time_micros,
        // Core shrinks only when no debug category is on
        // (`DefaultShrinkDebugFile`).
        shrink: opts.shrink.unwrap_or(opts.enabled_categories().is_empty()),
        sinks: Mutex::new(Sinks {
            file: None,
            buffer: path.as_ref().map(|_| Default::default()),
            buffered_bytes: 0,
            console: opts.print_to_console.unwrap_or(true),
        }),
        path,
        filter: parking_lot::RwLock::new(filter),
        opts: Mutex::new(opts.clone()),
    };
    let max = logger.filter.read().filter();
    let logger = match LOGGER.set(logger) {
        Ok(()) => LOGGER.get(),
        Err(_) => return Err("the logger is already installed".into()),
    };
    if let Some(l) = logger {
        log::set_logger(l).map_err(|e| e.to_string())?;
    }
    log::set_max_level(max);
    Ok(())
}

/// The `logging` RPC at run time (Core's `EnableCategory` then
/// `DisableCategory`): switches on `include`, then off `exclude` (Core's
/// category names, `all` for every one), rebuilds the filter and returns
/// the categories now on. `None` when strand's logger is not the installed
/// one (an embedder's own logger decides for itself).
pub fn update_categories(include: &[String], exclude: &[String]) -> Option<Vec<&'static str>> {
    let logger = LOGGER.get()?;
    let mut opts = logger.opts.lock();
    let mut on = opts.enabled_categories();
    let every = |list: &[String]| list.iter().any(|c| c == "all");
    for (cat, _) in CATEGORIES {
        if (every(include) || include.iter().any(|c| c == cat)) && !on.contains(cat) {
            on.push(cat);
        }
    }
    on.retain(|c| !every(exclude) && !exclude.iter().any(|x| x == c));
    opts.categories = on.iter().map(|c| c.to_string()).collect();
    opts.exclude.clear();
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = opts.filter(rust_log.as_deref());
    log::set_max_level(filter.filter());
    *logger.filter.write() = filter;
    Some(opts.enabled_categories())
}

/// Core's `StartLogging`: shrinks and opens debug.log (appending, as
/// Core), writes the buffered lines. Call once the node holds its data
/// directory. Returns the file's path, if there is one.
pub fn start_file() -> Result<Option<PathBuf>, String> {
    let Some(logger) = LOGGER.get() else {
        return Ok(None);
    };
    let Some(p) = &logger.path else {
        return Ok(None);
    };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if logger.shrink {
        shrink_debug_file(p)
            .map_err(|e| format!("cannot shrink the debug log {}: {e}", p.display()))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| format!("Could not open debug log file {}: {e}", p.display()))?;
    let mut sinks = logger.sinks.lock();
    for line in sinks.buffer.take().unwrap_or_default() {
        let _ = f.write_all(line.as_bytes());
    }
    sinks.buffered_bytes = 0;
    sinks.file = Some(f);
    Ok(Some(p.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_matches(opts: &LogOptions, target: &str, level: Level) -> bool {
        let f = opts.filter(None);
        f.matches(
            &Record::builder()
                .target(target)
                .level(level)
                .args(format_args!("x"))
                .build(),
        )
    }

    #[test]
    fn iso_dates() {
        assert_eq!(crate::util::format_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            crate::util::format_iso8601(1_231_006_505),
            "2009-01-03T18:15:05Z"
        );
        assert_eq!(
            crate::util::format_iso8601(951_782_400),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            crate::util::format_iso8601(1_796_051_056),
            "2026-11-30T15:04:16Z"
        );
    }

    #[test]
    fn categories_map_targets_and_prefixes() {
        assert_eq!(category_of("strand::peer::conn"), Some("net"));
        assert_eq!(category_of("strand::peer::addrman"), Some("addrman"));
        assert_eq!(category_of("strand::rpc::http"), Some("http"));
        assert_eq!(category_of("strand::rpcx"), None);
        assert_eq!(category_of("strand"), None);
        assert_eq!(prefix(Level::Debug, Some("net")), "[net] ");
        assert_eq!(prefix(Level::Trace, Some("net")), "[net:trace] ");
        assert_eq!(prefix(Level::Info, Some("net")), "");
        assert_eq!(prefix(Level::Warn, None), "[warning] ");
    }

    #[test]
    fn debug_categories_filter_targets() {
        let mut o = LogOptions::default();
        assert!(!record_matches(&o, "strand::peer::conn", Level::Debug));
        assert!(record_matches(&o, "strand::peer::conn", Level::Info));
        o.add_debug("net").unwrap();
        assert!(record_matches(&o, "strand::peer::conn", Level::Debug));
        assert!(!record_matches(&o, "strand::peer::addrman", Level::Debug));
        assert!(!record_matches(&o, "strand::mempool", Level::Debug));
        assert!(!record_matches(&o, "strand::peer::conn", Level::Trace));

        let mut all = LogOptions::default();
        all.add_debug("all").unwrap();
        all.add_exclude("mempool").unwrap();
        assert!(record_matches(&all, "strand::peer::addrman", Level::Debug));
        assert!(record_matches(&all, "strand::sync", Level::Debug));
        assert!(!record_matches(
            &all,
            "strand::mempool::policy",
            Level::Debug
        ));
        assert!(record_matches(&all, "strand::mempool::policy", Level::Info));

        let mut lvl = LogOptions::default();
        lvl.add_debug("trace").unwrap();
        assert!(record_matches(&lvl, "strand::mempool", Level::Trace));

        let mut t = LogOptions::default();
        t.add_debug("rpc").unwrap();
        t.add_loglevel("rpc:trace").unwrap();
        assert!(record_matches(&t, "strand::rpc::net", Level::Trace));

        assert!(LogOptions::default().add_debug("chatty").is_err());
        assert!(LogOptions::default().add_loglevel("net:loud").is_err());
        assert!(LogOptions::default().add_loglevel("nope:trace").is_err());
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        escape_into(&mut s, "a\x1b[31mb\rc\nd");
        assert_eq!(s, "a\\x1b[31mb\\x0dc\nd");
    }

    #[test]
    fn shrink_keeps_the_last_ten_megabytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("debug.log");
        std::fs::write(&p, vec![b'a'; 1_000]).unwrap();
        assert!(!shrink_debug_file(&p).unwrap());
        let mut big = vec![b'x'; 2_000_000];
        big.extend(vec![b'y'; RECENT_DEBUG_HISTORY_SIZE as usize]);
        std::fs::write(&p, &big).unwrap();
        assert!(shrink_debug_file(&p).unwrap());
        let after = std::fs::read(&p).unwrap();
        assert_eq!(after.len() as u64, RECENT_DEBUG_HISTORY_SIZE);
        assert!(after.iter().all(|&b| b == b'y'));
        assert!(!shrink_debug_file(&dir.path().join("missing.log")).unwrap());
    }
}
