//! A small hand-written HTTP/1.1 layer for the RPC server: reading one
//! request (request line, headers, a `Content-Length` body) from a blocking
//! socket and writing one response. It owns no thread; the RPC worker
//! threads (`rpc-worker-N`) call it for the connection they are serving.
//!
//! Only what JSON-RPC clients send is supported: `Content-Length` bodies,
//! keep-alive (HTTP/1.1 default, `Connection: keep-alive` on HTTP/1.0) and
//! `Expect: 100-continue` (curl sends it for larger bodies). A chunked body
//! is refused with 411, a body over the limit with 413 before any of it is
//! read, anything malformed with 400.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Longest request line plus headers accepted (libevent's default is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 8192;
/// Most headers accepted in one request.
const MAX_HEADERS: usize = 100;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST`, `GET`, ... as sent.
    pub method: String,
    /// The request target (`/`, `/wallet/x`).
    pub target: String,
    /// The minor HTTP version (`1` for HTTP/1.1, `0` for HTTP/1.0).
    pub minor_version: u8,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read; each maps to a response (or none).
#[derive(Debug)]
pub enum HttpError {
    /// The peer closed the connection before sending anything.
    Closed,
    /// Nothing (more) arrived in time.
    Timeout,
    /// A socket error.
    Io(io::Error),
    /// Malformed request: 400 with this text.
    BadRequest(String),
    /// Headers too long: 431.
    HeadersTooLarge,
    /// No usable `Content-Length` (chunked or missing): 411.
    LengthRequired(String),
    /// Body over the limit: 413.
    PayloadTooLarge(usize),
}

impl HttpError {
    /// The status and body to answer with, if any answer is due.
    pub fn response(&self) -> Option<(u16, String)> {
        match self {
            HttpError::Closed | HttpError::Io(_) => None,
            HttpError::Timeout => None,
            HttpError::BadRequest(m) => Some((400, format!("bad request: {m}\n"))),
            HttpError::HeadersTooLarge => Some((431, "request headers too large\n".into())),
            HttpError::LengthRequired(m) => Some((411, format!("{m}\n"))),
            HttpError::PayloadTooLarge(n) => {
                Some((413, format!("request body too large (limit {n} bytes)\n")))
            }
        }
    }
}

/// A connection's read side with its leftover bytes (pipelined requests).
pub struct Reader {
    buf: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    /// An empty reader.
    pub fn new() -> Reader {
        Reader { buf: Vec::new() }
    }

    /// Whether bytes of a next request are already buffered.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Reads more bytes into the buffer before `deadline`. `Ok(false)` on EOF.
    fn fill(&mut self, stream: &mut TcpStream, deadline: Instant) -> Result<bool, HttpError> {
        let mut chunk = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HttpError::Timeout);
            }
            stream
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .map_err(HttpError::Io)?;
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    continue
                }
                Err(e) => return Err(HttpError::Io(e)),
            }
        }
    }

    /// Reads one request. The whole request must arrive before `deadline`.
    /// `max_body` bounds `Content-Length`; a `100 Continue` is written when
    /// the client asks for it.
    pub fn read_request(
        &mut self,
        stream: &mut TcpStream,
        max_body: usize,
        deadline: Instant,
    ) -> Result<Request, HttpError> {
        // Tolerate empty lines before a request line (RFC 9112 2.2).
        let head_end = loop {
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(HttpError::HeadersTooLarge);
            }
            let had = self.buf.len();
            if !self.fill(stream, deadline)? {
                return Err(if had == 0 {
                    HttpError::Closed
                } else {
                    HttpError::BadRequest("connection closed inside the request head".into())
                });
            }
        };
        if head_end > MAX_HEADER_BYTES {
            return Err(HttpError::HeadersTooLarge);
        }
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| HttpError::BadRequest("request head is not UTF-8".into()))?
            .to_string();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (method, target, version) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
                _ => {
                    return Err(HttpError::BadRequest(format!(
                        "malformed request line '{}'",
                        truncate(request_line, 80)
                    )))
                }
            };
        if !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(HttpError::BadRequest(format!(
                "malformed method '{}'",
                truncate(method, 20)
            )));
        }
        let minor_version = match version {
            "HTTP/1.1" => 1,
            "HTTP/1.0" => 0,
            v => {
                return Err(HttpError::BadRequest(format!(
                    "unsupported HTTP version '{}'",
                    truncate(v, 20)
                )))
            }
        };
        let mut headers = Vec::new();
        for line in lines {
            if headers.len() >= MAX_HEADERS {
                return Err(HttpError::HeadersTooLarge);
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(HttpError::BadRequest(format!(
                    "malformed header line '{}'",
                    truncate(line, 80)
                )));
            };
            if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
                return Err(HttpError::BadRequest(format!(
                    "malformed header name '{}'",
                    truncate(name, 80)
                )));
            }
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut req = Request {
            method: method.to_string(),
            target: target.to_string(),
            minor_version,
            headers,
            body: Vec::new(),
            keep_alive: false,
        };
        let connection = req.header("Connection").map(|v| v.to_ascii_lowercase());
        req.keep_alive = match connection.as_deref() {
            Some(v) if v.split(',').any(|t| t.trim() == "close") => false,
            Some(v) if v.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => minor_version == 1,
        };
        if req.header("Transfer-Encoding").is_some() {
            return Err(HttpError::LengthRequired(
                "chunked (Transfer-Encoding) request bodies are not supported; send Content-Length"
                    .into(),
            ));
        }
        let mut length: Option<usize> = None;
        for (n, v) in &req.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 18 {
                    return Err(HttpError::BadRequest(format!(
                        "invalid Content-Length '{}'",
                        truncate(v, 30)
                    )));
                }
                let n: usize = v
                    .parse()
                    .map_err(|_| HttpError::BadRequest("invalid Content-Length".into()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::BadRequest(
                        "conflicting Content-Length headers".into(),
                    ));
                }
                length = Some(n);
            }
        }
        let length = match length {
            Some(n) => n,
            None if req.method == "POST" => {
                return Err(HttpError::LengthRequired(
                    "a POST request needs a Content-Length header".into(),
                ))
            }
            None => 0,
        };
        if length > max_body {
            return Err(HttpError::PayloadTooLarge(max_body));
        }
        if length > self.buf.len()
            && req
                .header("Expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(HttpError::Io)?;
        }
        while self.buf.len() < length {
            if !self.fill(stream, deadline)? {
                return Err(HttpError::BadRequest(
                    "connection closed inside the request body".into(),
                ));
            }
        }
        req.body = self.buf.drain(..length).collect();
        Ok(req)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// One response to write.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (besides Content-Type/Length and Connection).
    pub headers: Vec<(&'static str, String)>,
    /// `application/json` or `text/plain`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body: body.into_bytes(),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: String) -> Response {
        Response {
            status,
            headers: Vec::new(),
            content_type: "text/html; charset=ISO-8859-1",
            body: body.into_bytes(),
        }
    }

    /// Writes the response; `keep_alive` decides the `Connection` header.
    pub fn write_to(&self, stream: &mut TcpStream, keep_alive: bool) -> io::Result<()> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if self.status != 204 {
            out.push_str(&format!("Content-Type: {}\r\n", self.content_type));
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut bytes = out.into_bytes();
        if self.status != 204 {
            bytes.extend_from_slice(&self.body);
        }
        stream.write_all(&bytes)?;
        stream.flush()
    }
}
