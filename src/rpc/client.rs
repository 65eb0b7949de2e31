//! The client half of `strand cli`: one JSON-RPC call over HTTP/1.1 with
//! Basic authentication ([`call`]), `bitcoin-cli`'s conversion of command
//! line arguments into JSON parameters ([`convert_args`]), its output
//! format ([`format_result`]) and the whole command ([`cli_main`]). It runs
//! on the caller's thread; each call opens one connection, as `bitcoin-cli`
//! does.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::auth::{base64_encode, read_cookie};
use super::methods::arg_is_string;
pub use super::methods::ParamRef;
use super::protocol::RpcFailure;
use crate::config::{self, Config};

/// Credentials for [`call`].
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// Read `user:password` from this cookie file (for the node's data
    /// directory: `<datadir>/<network subdir>/.cookie`).
    Cookie(PathBuf),
    /// A fixed user and password.
    UserPass(String, String),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::Cookie(p) => f.debug_tuple("Cookie").field(p).finish(),
            ClientAuth::UserPass(u, _) => f.debug_tuple("UserPass").field(u).finish(),
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The cookie file could not be read.
    Cookie(PathBuf, io::Error),
    /// No connection to the server.
    Connect(SocketAddr, io::Error),
    /// The connection failed mid-call.
    Io(io::Error),
    /// HTTP 401.
    Unauthorized,
    /// Another HTTP status without a JSON-RPC reply.
    Http(u16),
    /// The reply could not be understood.
    BadReply(String),
    /// The server answered with an RPC error.
    Rpc(RpcFailure),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Cookie(p, e) => write!(
                f,
                "Could not locate RPC credentials. No authentication cookie could be found at {} ({e}), and RPC password is not set.",
                p.display()
            ),
            ClientError::Connect(a, e) => write!(
                f,
                "Could not connect to the server {a} ({e})\n\nMake sure the strand node is running and that you are connecting to the correct RPC port."
            ),
            ClientError::Io(e) => write!(f, "RPC connection failed: {e}"),
            ClientError::Unauthorized => {
                write!(f, "Authorization failed: Incorrect rpcuser or rpcpassword")
            }
            ClientError::Http(s) => write!(f, "server returned HTTP error {s}"),
            ClientError::BadReply(m) => write!(f, "couldn't parse reply from server: {m}"),
            ClientError::Rpc(e) => write!(f, "error code: {}\nerror message:\n{}", e.code, e.message),
        }
    }
}

impl std::error::Error for ClientError {}

/// How long a call may take (generating many blocks can be slow).
const CALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Calls `method` with positional `params` on the server at `addr`.
pub fn call(
    addr: SocketAddr,
    auth: &ClientAuth,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, ClientError> {
    call_with(
        addr,
        auth,
        &json!({"method": method, "params": params, "id": 1}),
    )
}

/// Calls `method` with named parameters (`-named`).
pub fn call_named(
    addr: SocketAddr,
    auth: &ClientAuth,
    method: &str,
    params: Map<String, Value>,
) -> Result<Value, ClientError> {
    call_with(
        addr,
        auth,
        &json!({"method": method, "params": params, "id": 1}),
    )
}

fn call_with(addr: SocketAddr, auth: &ClientAuth, request: &Value) -> Result<Value, ClientError> {
    let (user, pass) = match auth {
        ClientAuth::Cookie(p) => read_cookie(p).map_err(|e| ClientError::Cookie(p.clone(), e))?,
        ClientAuth::UserPass(u, p) => (u.clone(), p.clone()),
    };
    let body = request.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| ClientError::Connect(addr, e))?;
    let _ = stream.set_read_timeout(Some(CALL_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CALL_TIMEOUT));
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        base64_encode(format!("{user}:{pass}").as_bytes()),
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()))
        .map_err(ClientError::Io)?;
    let (status, reply) = read_response(&mut stream)?;
    if status == 401 {
        return Err(ClientError::Unauthorized);
    }
    if status > 400 && status != 404 && status != 500 {
        return Err(ClientError::Http(status));
    }
    if reply.is_empty() {
        return Err(ClientError::BadReply("no response from server".into()));
    }
    let v: Value = serde_json::from_slice(&reply)
        .map_err(|e| ClientError::BadReply(format!("{e} (HTTP {status})")))?;
    let Some(obj) = v.as_object() else {
        return Err(ClientError::BadReply(
            "expected reply to have result, error and id properties".into(),
        ));
    };
    match obj.get("error") {
        Some(e) if !e.is_null() => {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(-1);
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Err(ClientError::Rpc(RpcFailure::new(code as i32, message)))
        }
        _ => Ok(obj.get("result").cloned().unwrap_or(Value::Null)),
    }
}

/// Reads a whole HTTP response: status and body (by Content-Length, or up
/// to the end of the connection).
fn read_response(stream: &mut TcpStream) -> Result<(u16, Vec<u8>), ClientError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut chunk).map_err(ClientError::Io)?;
        if n == 0 {
            return Err(ClientError::BadReply("no response from server".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::BadReply("malformed status line".into()))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let mut body = buf[head_end + 4..].to_vec();
    loop {
        if length.is_some_and(|l| body.len() >= l) {
            body.truncate(length.unwrap_or(0));
            break;
        }
        let n = stream.read(&mut chunk).map_err(ClientError::Io)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, body))
}

/// `bitcoin-cli`'s conversion of one argument: string-typed parameters of
/// known methods are passed as strings; anything else is parsed as JSON
/// if it parses (numbers, `true`/`false`, `null`, objects, arrays) and
/// passed as a string otherwise.
pub fn convert_arg(method: &str, param: ParamRef<'_>, arg: &str) -> Value {
    if arg_is_string(method, param) {
        return Value::String(arg.to_string());
    }
    serde_json::from_str(arg).unwrap_or_else(|_| Value::String(arg.to_string()))
}

/// Converts positional command line arguments.
pub fn convert_args(method: &str, args: &[String]) -> Vec<Value> {
    args.iter()
        .enumerate()
        .map(|(i, a)| convert_arg(method, ParamRef::Index(i), a))
        .collect()
}

/// Converts `name=value` arguments (`-named`); an argument without `=` is
/// an error, as in `bitcoin-cli`.
pub fn convert_named_args(method: &str, args: &[String]) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(format!("No '=' in named argument '{a}', this needs to be present for every argument (even if it is empty)"));
        };
        m.insert(k.to_string(), convert_arg(method, ParamRef::Name(k), v));
    }
    Ok(m)
}

/// `bitcoin-cli`'s output of a result: nothing for null, strings raw,
/// anything else as JSON with 2-space indentation. No trailing newline.
pub fn format_result(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The usage text of `strand cli`.
pub const CLI_USAGE: &str = "\
Usage: strand cli [options] <command> [params]
       strand cli [options] -named <command> [name=value]...
       strand cli [options] help [command]
       strand cli [options] -getinfo
       strand cli [options] -netinfo [level [outonly]] | help

Options:
  --regtest | --testnet | --signet | --testnet4 | --chain NAME   chain (default: main)
  --datadir DIR          data directory holding <network>/.cookie (default: ~/.strand)
  --conf FILE            the node's config file (default: <datadir>/strand.conf, if
                         present): its network, datadir, rpcconnect, rpcport, rpcuser,
                         rpcpassword and rpccookiefile apply unless given here
  --rpcconnect HOST      server address (default: 127.0.0.1)
  --rpcport N            server port (default: the network's RPC port)
  --rpcuser U --rpcpassword P   credentials instead of the cookie
  --rpccookiefile FILE   cookie file to read
  --rpcwait              wait for the server to start (and its cookie to appear)
  --rpcwaittimeout N     with --rpcwait: give up after N seconds (default: 0, never)
  --stdin                read extra arguments from stdin, one per line
  --stdinrpcpass         read the RPC password from the first line of stdin
  --named                pass name=value arguments as named parameters
  --getinfo              general information, as bitcoin-cli -getinfo
  --netinfo [LEVEL]      peer connections dashboard, as bitcoin-cli -netinfo (0-4)
";

/// Runs `strand cli` with the arguments after `cli`, writing to stdout
/// and stderr; returns the process exit code (see [`run_cli`]).
pub fn cli_main(args: &[String]) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let stdin = io::stdin();
    run_cli_with_stdin(
        args,
        &mut stdin.lock(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// `strand cli` with explicit output streams and no stdin. Exit codes: 0
/// on success; 1 on an RPC error (printed to `err` as bitcoin-cli prints
/// it, with the code) and for connection, authentication and usage
/// errors.
pub fn run_cli(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run_cli_with_stdin(args, &mut io::empty(), out, err)
}

/// Core's `-rpcwait` pause between attempts (bitcoin-cli sleeps 1 s).
const RPCWAIT_INTERVAL: Duration = Duration::from_secs(1);

/// Core's `RPC_IN_WARMUP`: retried under `-rpcwait` like a refused
/// connection.
const RPC_IN_WARMUP: i32 = -28;

/// Where and how to call, and `-rpcwait`'s deadline.
struct Target {
    addr: SocketAddr,
    auth: ClientAuth,
    /// `Some(None)`: wait forever; `Some(Some(t))`: until `t`.
    wait: Option<Option<std::time::Instant>>,
}

impl Target {
    /// One call, retried under `-rpcwait` while the server is not up
    /// (no connection, no cookie yet, warming up), as bitcoin-cli's
    /// `ConnectAndCallRPC`.
    fn call(&self, request: &Value) -> Result<Value, ClientError> {
        loop {
            let r = call_with(self.addr, &self.auth, request);
            let transient = matches!(
                &r,
                Err(ClientError::Connect(..) | ClientError::Cookie(..) | ClientError::Io(..))
            ) || matches!(&r, Err(ClientError::Rpc(e)) if e.code == RPC_IN_WARMUP);
            match self.wait {
                Some(deadline) if transient => {
                    if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                        return r.map_err(|e| {
                            ClientError::BadReply(format!("timeout on transient error: {e}"))
                        });
                    }
                    std::thread::sleep(RPCWAIT_INTERVAL);
                }
                _ => return r,
            }
        }
    }

    fn method(&self, method: &str) -> Result<Value, ClientError> {
        self.call(&json!({"method": method, "params": [], "id": 1}))
    }
}

/// What the command line asks `strand cli` for.
enum CliCommand {
    Call(String, Vec<String>),
    GetInfo,
    NetInfo(Vec<String>),
}

/// [`run_cli`] reading `-stdin`/`-stdinrpcpass` input from `stdin`.
pub fn run_cli_with_stdin(
    args: &[String],
    stdin: &mut dyn io::BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut datadir: Option<PathBuf> = None;
    let mut host: Option<String> = None;
    let mut port: Option<u16> = None;
    let mut user: Option<String> = None;
    let mut password: Option<String> = None;
    let mut cookie: Option<PathBuf> = None;
    let mut named = false;
    let mut rpcwait = false;
    let mut rpcwait_timeout: u64 = 0;
    let mut read_stdin = false;
    let mut stdin_pass = false;
    let mut getinfo = false;
    let mut netinfo = false;
    let mut i = 0;
    let fail = |err: &mut dyn Write, m: &str| {
        super::write_out(err, &format!("error: {m}\n"));
        1
    };
    let flag = |name: &str, inline: &Option<String>| -> Result<bool, String> {
        match inline.as_deref() {
            None | Some("1") => Ok(true),
            Some("0") => Ok(false),
            Some(v) => Err(format!("-{name} takes 0 or 1 (got '{v}')")),
        }
    };
    while i < args.len() {
        let a = &args[i];
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let opt = a.trim_start_matches('-');
        let (name, inline) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (opt, None),
        };
        let takes_value = matches!(
            name,
            "datadir"
                | "rpcconnect"
                | "rpcport"
                | "rpcuser"
                | "rpcpassword"
                | "rpccookiefile"
                | "conf"
                | "chain"
                | "rpcwaittimeout"
        );
        let value = if takes_value {
            match inline.clone() {
                Some(v) => v,
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => return fail(err, &format!("option -{name} needs a value")),
                    }
                }
            }
        } else {
            String::new()
        };
        let set = |target: &mut bool, err: &mut dyn Write| match flag(name, &inline) {
            Ok(b) => {
                *target = b;
                None
            }
            Err(m) => Some(fail(err, &m)),
        };
        let early = match name {
            // The network is decided below, with the config file's.
            "regtest" | "testnet" | "signet" | "testnet4" | "chain" | "conf" => None,
            "named" => set(&mut named, err),
            "rpcwait" => set(&mut rpcwait, err),
            "stdin" => set(&mut read_stdin, err),
            "stdinrpcpass" => set(&mut stdin_pass, err),
            "getinfo" => set(&mut getinfo, err),
            "netinfo" => set(&mut netinfo, err),
            "h" | "help" | "?" => {
                super::write_out(out, CLI_USAGE);
                return 0;
            }
            "datadir" => {
                datadir = Some(config::expand_tilde(&value));
                None
            }
            "rpcconnect" => {
                host = Some(value);
                None
            }
            "rpcport" => match value.parse() {
                Ok(p) => {
                    port = Some(p);
                    None
                }
                Err(_) => Some(fail(
                    err,
                    &format!("Invalid port provided in -rpcport: {value}"),
                )),
            },
            "rpcwaittimeout" => match value.parse::<i64>() {
                Ok(t) if t >= 0 => {
                    rpcwait_timeout = t as u64;
                    None
                }
                _ => Some(fail(
                    err,
                    &format!("Invalid value provided for -rpcwaittimeout: '{value}'"),
                )),
            },
            "rpcuser" => {
                user = Some(value);
                None
            }
            "rpcpassword" => {
                password = Some(value);
                None
            }
            "rpccookiefile" => {
                cookie = Some(config::expand_tilde(&value));
                None
            }
            _ => Some(fail(err, &format!("unknown option -{name}"))),
        };
        if let Some(code) = early {
            return code;
        }
        i += 1;
    }
    let opts = &args[..i];
    let mut rest: Vec<String> = args[i..].to_vec();
    // Core reads the password line first, then the arguments.
    if stdin_pass {
        let mut line = String::new();
        if stdin.read_line(&mut line).is_err() || line.is_empty() {
            return fail(
                err,
                "-stdinrpcpass specified but failed to read from standard input",
            );
        }
        password = Some(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if read_stdin {
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => rest.push(line.trim_end_matches(['\r', '\n']).to_string()),
                Err(e) => return fail(err, &format!("cannot read standard input: {e}")),
            }
        }
    }
    let command = if getinfo && netinfo {
        return fail(err, "-getinfo and -netinfo cannot be combined");
    } else if getinfo {
        if !rest.is_empty() {
            return fail(err, "-getinfo takes no arguments");
        }
        CliCommand::GetInfo
    } else if netinfo {
        CliCommand::NetInfo(rest)
    } else {
        let Some((method, params)) = rest.split_first() else {
            return fail(err, "too few parameters (need at least command)");
        };
        CliCommand::Call(method.clone(), params.to_vec())
    };
    // The node's config file (`-conf`, else `<datadir>/strand.conf`):
    // network, RPC address, credentials and data directory, command line
    // first.
    let entries = match config::read_conf(opts) {
        Ok(e) => e,
        Err(e) => return fail(err, &e.to_string()),
    };
    let network = match config::conf_network(opts, &entries) {
        Ok(n) => n,
        Err(e) => return fail(err, &e.to_string()),
    };
    for e in config::entries_for(&entries, network) {
        let v = e.value.clone();
        match e.key.as_str() {
            "rpcport" if !opts_have(opts, "rpcport") => match v.parse() {
                Ok(p) => port = Some(p),
                Err(_) => return fail(err, &format!("Invalid port provided in rpcport: {v}")),
            },
            "rpcuser" if !opts_have(opts, "rpcuser") => user = Some(v),
            "rpcpassword" if !opts_have(opts, "rpcpassword") && !stdin_pass => password = Some(v),
            "rpcconnect" if !opts_have(opts, "rpcconnect") => host = Some(v),
            "rpccookiefile" if !opts_have(opts, "rpccookiefile") => {
                cookie = Some(config::expand_tilde(&v))
            }
            "datadir" if !opts_have(opts, "datadir") => datadir = Some(config::expand_tilde(&v)),
            _ => {}
        }
    }
    let mut config = Config::new(network);
    if let Some(d) = datadir {
        config.datadir = d;
    }
    let host = host.unwrap_or_else(|| "127.0.0.1".to_string());
    let port = port.unwrap_or_else(|| network.default_rpc_port());
    // A host may carry its own port, as in bitcoin-cli's -rpcconnect.
    let addr = match host.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => (host.trim_matches(|c| c == '[' || c == ']'), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next()),
    };
    let Some(addr) = addr else {
        return fail(err, &format!("cannot resolve -rpcconnect address {host}"));
    };
    let auth = match (user, password) {
        (Some(u), Some(p)) => ClientAuth::UserPass(u, p),
        (_, Some(p)) => ClientAuth::UserPass(String::new(), p),
        // A relative cookie path is in the network's directory (Core's
        // AbsPathForConfigVal).
        _ => ClientAuth::Cookie(match cookie {
            Some(c) => config.net_dir().join(c),
            None => config.net_dir().join(".cookie"),
        }),
    };
    let target = Target {
        addr,
        auth,
        wait: rpcwait.then(|| {
            (rpcwait_timeout > 0)
                .then(|| std::time::Instant::now() + Duration::from_secs(rpcwait_timeout))
        }),
    };
    let result = match command {
        CliCommand::Call(method, params) => {
            let request = if named {
                match convert_named_args(&method, &params) {
                    Ok(m) => json!({"method": method, "params": m, "id": 1}),
                    Err(e) => return fail(err, &e),
                }
            } else {
                json!({"method": method, "params": convert_args(&method, &params), "id": 1})
            };
            target.call(&request)
        }
        CliCommand::GetInfo => target.method("getnetworkinfo").and_then(|n| {
            target
                .method("getblockchaininfo")
                .map(|c| Value::String(super::cli_info::format_getinfo(&n, &c)))
        }),
        CliCommand::NetInfo(a) => match super::cli_info::parse_netinfo_args(&a) {
            Err(e) => return fail(err, &e),
            Ok(None) => Ok(Value::String(super::cli_info::NETINFO_HELP.to_string())),
            Ok(Some((level, outonly))) => target.method("getpeerinfo").and_then(|peers| {
                let n = target.method("getnetworkinfo")?;
                // Core's check (bitcoin-cli's NetinfoRequestHandler).
                if n["version"].as_i64().unwrap_or(0) < 209_900 {
                    return Err(ClientError::BadReply(
                        "-netinfo requires bitcoind server to be running v0.21.0 and up".into(),
                    ));
                }
                let chain = match network {
                    config::Network::Mainnet => "",
                    config::Network::Testnet => " testnet",
                    config::Network::Signet => " signet",
                    config::Network::Testnet4 => " testnet4",
                    config::Network::Regtest => " regtest",
                };
                Ok(Value::String(super::cli_info::format_netinfo(
                    &peers,
                    &n,
                    level,
                    outonly,
                    chain,
                    crate::util::unix_time() as i64,
                )))
            }),
        },
    };
    match result {
        Ok(v) => {
            let s = format_result(&v);
            if !s.is_empty() {
                super::write_out(out, &format!("{s}\n"));
            }
            0
        }
        Err(ClientError::Rpc(e)) => {
            super::write_out(
                err,
                &format!("error code: {}\nerror message:\n{}\n", e.code, e.message),
            );
            // The issue asks for exit code 1 on any RPC error (bitcoin-cli
            // itself exits with abs(code)); the code is printed above.
            1
        }
        Err(e) => fail(err, &e.to_string()),
    }
}

/// Whether the option `name` is among the dashed command-line arguments.
fn opts_have(opts: &[String], name: &str) -> bool {
    opts.iter().any(|a| {
        let body = a.trim_start_matches('-');
        a.starts_with('-') && body.split('=').next() == Some(name)
    })
}
