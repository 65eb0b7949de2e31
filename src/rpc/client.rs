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

Options:
  --regtest | --testnet | --signet | --chain NAME   chain (default: main)
  --datadir DIR          data directory holding <network>/.cookie (default: ~/.strand)
  --conf FILE            the node's config file (default: <datadir>/strand.conf, if
                         present): its network, datadir, rpcport, rpcuser and
                         rpcpassword apply unless given here
  --rpcconnect HOST      server address (default: 127.0.0.1)
  --rpcport N            server port (default: the network's RPC port)
  --rpcuser U --rpcpassword P   credentials instead of the cookie
  --rpccookiefile FILE   cookie file to read
  --named                pass name=value arguments as named parameters
";

/// Runs `strand cli` with the arguments after `cli`, writing to stdout
/// and stderr; returns the process exit code (see [`run_cli`]).
pub fn cli_main(args: &[String]) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_cli(args, &mut stdout.lock(), &mut stderr.lock())
}

/// `strand cli` with explicit output streams. Exit codes: 0 on success;
/// 1 on an RPC error (printed to `err` as bitcoin-cli prints it, with the
/// code) and for connection, authentication and usage errors.
pub fn run_cli(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut datadir: Option<PathBuf> = None;
    let mut host = "127.0.0.1".to_string();
    let mut port: Option<u16> = None;
    let mut user: Option<String> = None;
    let mut password: Option<String> = None;
    let mut cookie: Option<PathBuf> = None;
    let mut named = false;
    let mut i = 0;
    let fail = |err: &mut dyn Write, m: &str| {
        super::write_out(err, &format!("error: {m}\n"));
        1
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
        );
        let value = if takes_value {
            match inline {
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
        match name {
            // The network is decided below, with the config file's.
            "regtest" | "testnet" | "signet" | "chain" | "conf" => {}
            "named" => named = true,
            "h" | "help" | "?" => {
                super::write_out(out, CLI_USAGE);
                return 0;
            }
            "datadir" => datadir = Some(config::expand_tilde(&value)),
            "rpcconnect" => host = value,
            "rpcport" => match value.parse() {
                Ok(p) => port = Some(p),
                Err(_) => return fail(err, &format!("Invalid port provided in -rpcport: {value}")),
            },
            "rpcuser" => user = Some(value),
            "rpcpassword" => password = Some(value),
            "rpccookiefile" => cookie = Some(PathBuf::from(value)),
            _ => return fail(err, &format!("unknown option -{name}")),
        }
        i += 1;
    }
    let Some(method) = args.get(i) else {
        return fail(err, "too few parameters (need at least command)");
    };
    let rest = &args[i + 1..];
    // The node's config file (`-conf`, else `<datadir>/strand.conf`):
    // network, RPC port, credentials and data directory, command line
    // first.
    let opts = &args[..i];
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
            "rpcpassword" if !opts_have(opts, "rpcpassword") => password = Some(v),
            "datadir" if !opts_have(opts, "datadir") => datadir = Some(config::expand_tilde(&v)),
            _ => {}
        }
    }
    let mut config = Config::new(network);
    if let Some(d) = datadir {
        config.datadir = d;
    }
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
        _ => ClientAuth::Cookie(cookie.unwrap_or_else(|| config.net_dir().join(".cookie"))),
    };
    let result = if named {
        match convert_named_args(method, rest) {
            Ok(m) => call_named(addr, &auth, method, m),
            Err(e) => return fail(err, &e),
        }
    } else {
        call(addr, &auth, method, convert_args(method, rest))
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
