//! Message framing over `bitcoin::p2p` types.
//!
//! Owns the 24-byte P2P header (magic, command, length, checksum) and the
//! size limit. [`read_message`] checks magic, command and length from the
//! header before reading the payload, refuses lengths over [`MAX_PAYLOAD`]
//! (Bitcoin Core's 4,000,000 bytes), and then grows the payload buffer as
//! bytes arrive rather than allocating the announced length up front: a peer
//! that announces 4 MB and trickles a byte a minute holds kilobytes, not
//! megabytes. The checksum and the payload are then checked by the `bitcoin`
//! crate's decoder. Every failure is a typed
//! [`WireError`]; nothing here panics on peer input. Runs on each peer's
//! reader thread (decode) and writer thread (encode).

use std::fmt;
use std::io::{self, Read};

use bitcoin::consensus::encode::{self, Decodable};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;

/// Largest payload accepted: Bitcoin Core's `MAX_PROTOCOL_MESSAGE_LENGTH`
/// (4,000,000 bytes, which also bounds a serialized block). btcd allows 32 MiB;
/// nothing a Core node sends is larger than Core's limit.
pub const MAX_PAYLOAD: usize = 4_000_000;
/// Initial payload buffer: the buffer then doubles as bytes arrive, so what a
/// peer makes us hold is at most about twice what it actually sent.
const INITIAL_PAYLOAD_BUFFER: usize = 4 * 1024;
/// Size of the message header.
pub const HEADER_LEN: usize = 24;

/// Why a frame could not be read. Every variant but [`WireError::Closed`]
/// means the peer sent something it must not have, or the link failed.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed the connection cleanly between two messages.
    Closed,
    /// The connection ended inside a frame.
    Truncated {
        /// Bytes the frame needed.
        expected: usize,
        /// Bytes received before the end.
        got: usize,
    },
    /// The header's magic is not this network's.
    WrongMagic([u8; 4]),
    /// The command field is not NUL-padded printable ASCII.
    BadCommand([u8; 12]),
    /// The length field exceeds [`MAX_PAYLOAD`].
    Oversized(u32),
    /// The payload's checksum does not match the header.
    BadChecksum,
    /// The payload did not decode as the command's message.
    Malformed {
        /// The message's command.
        command: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// A socket error (including read time-outs).
    Io(io::Error),
}

impl WireError {
    /// True when this is a read time-out rather than bad data.
    pub fn is_timeout(&self) -> bool {
        matches!(self, WireError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Closed => write!(f, "connection closed by peer"),
            WireError::Truncated { expected, got } => {
                write!(
                    f,
                    "truncated frame: connection ended after {got} of {expected} bytes"
                )
            }
            WireError::WrongMagic(m) => write!(f, "wrong network magic {:02x?}", m),
            WireError::BadCommand(c) => write!(f, "malformed command field {:02x?}", c),
            WireError::Oversized(n) => {
                write!(f, "payload length {n} exceeds the {MAX_PAYLOAD}-byte limit")
            }
            WireError::BadChecksum => write!(f, "bad payload checksum"),
            WireError::Malformed { command, reason } => {
                write!(f, "malformed '{command}' message: {reason}")
            }
            WireError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<usize, io::Error> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Appends at most `len` bytes from `r` to `buf` (std's `read_to_end`
/// retries interrupted reads and grows `buf` by doubling as data arrives);
/// returns how many were appended (fewer if the stream ended).
fn read_payload<R: Read + ?Sized>(r: &mut R, len: u64, buf: &mut Vec<u8>) -> io::Result<usize> {
    (&mut *r).take(len).read_to_end(buf)
}

/// Checks the header's command field: printable ASCII, then only NULs.
fn valid_command(cmd: &[u8; 12]) -> bool {
    let len = cmd.iter().position(|&b| b == 0).unwrap_or(12);
    cmd[..len].iter().all(|b| b.is_ascii_graphic()) && cmd[len..].iter().all(|&b| b == 0)
}

/// Command name of a header's command field, for messages.
fn command_name(cmd: &[u8]) -> String {
    let len = cmd.iter().position(|&b| b == 0).unwrap_or(cmd.len());
    String::from_utf8_lossy(&cmd[..len]).into_owned()
}

/// Reads one message. Returns the message and its size on the wire.
///
/// The header is validated before the payload buffer is allocated. Unknown
/// commands decode to [`NetworkMessage::Unknown`]; the caller ignores them.
pub fn read_message<R: Read + ?Sized>(
    r: &mut R,
    magic: Magic,
) -> Result<(NetworkMessage, usize), WireError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header).map_err(WireError::Io)?;
    if got == 0 {
        return Err(WireError::Closed);
    }
    if got >= 4 && header[..4] != magic.to_bytes() {
        // Reject a foreign magic as soon as it is seen, even in a short frame.
        return Err(WireError::WrongMagic([
            header[0], header[1], header[2], header[3],
        ]));
    }
    if got < HEADER_LEN {
        return Err(WireError::Truncated {
            expected: HEADER_LEN,
            got,
        });
    }
    let mut cmd = [0u8; 12];
    cmd.copy_from_slice(&header[4..16]);
    if !valid_command(&cmd) {
        return Err(WireError::BadCommand(cmd));
    }
    let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if len as usize > MAX_PAYLOAD {
        return Err(WireError::Oversized(len));
    }
    let total = HEADER_LEN + len as usize;
    let mut frame = Vec::with_capacity(total.min(HEADER_LEN + INITIAL_PAYLOAD_BUFFER));
    frame.extend_from_slice(&header);
    // `read_to_end` grows the buffer with what arrives, never to the
    // announced length before the bytes are there.
    let got = read_payload(r, u64::from(len), &mut frame).map_err(WireError::Io)?;
    if got < len as usize {
        return Err(WireError::Truncated {
            expected: total,
            got: HEADER_LEN + got,
        });
    }
    let mut slice = frame.as_slice();
    match RawNetworkMessage::consensus_decode_from_finite_reader(&mut slice) {
        Ok(raw) => Ok((raw.into_payload(), total)),
        Err(encode::Error::InvalidChecksum { .. }) => Err(WireError::BadChecksum),
        Err(e) => Err(WireError::Malformed {
            command: command_name(&cmd),
            reason: e.to_string(),
        }),
    }
}

/// Encodes `msg` as a complete frame for `magic`.
pub fn encode_message(magic: Magic, msg: NetworkMessage) -> Vec<u8> {
    encode::serialize(&RawNetworkMessage::new(magic, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGTEST: Magic = Magic::REGTEST;

    fn read(bytes: &[u8]) -> Result<(NetworkMessage, usize), WireError> {
        read_message(&mut &bytes[..], REGTEST)
    }

    #[test]
    fn round_trip() {
        let bytes = encode_message(REGTEST, NetworkMessage::Ping(42));
        let (msg, n) = read(&bytes).unwrap();
        assert_eq!(msg, NetworkMessage::Ping(42));
        assert_eq!(n, bytes.len());
    }

    #[test]
    fn clean_close_and_truncation() {
        assert!(matches!(read(&[]), Err(WireError::Closed)));
        let bytes = encode_message(REGTEST, NetworkMessage::Ping(42));
        assert!(matches!(
            read(&bytes[..10]),
            Err(WireError::Truncated {
                expected: 24,
                got: 10
            })
        ));
        assert!(matches!(
            read(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated {
                expected: 32,
                got: 31
            })
        ));
    }

    #[test]
    fn wrong_magic_bad_checksum_oversize() {
        let mut bytes = encode_message(Magic::BITCOIN, NetworkMessage::Ping(1));
        assert!(matches!(read(&bytes), Err(WireError::WrongMagic(_))));
        bytes = encode_message(REGTEST, NetworkMessage::Ping(1));
        bytes[20] ^= 0xff;
        assert!(matches!(read(&bytes), Err(WireError::BadChecksum)));
        bytes = encode_message(REGTEST, NetworkMessage::Ping(1));
        bytes[16..20].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert!(matches!(read(&bytes), Err(WireError::Oversized(_))));
    }

    #[test]
    fn bad_command_and_malformed_payload() {
        let mut bytes = encode_message(REGTEST, NetworkMessage::Ping(1));
        bytes[4] = 0x01;
        assert!(matches!(read(&bytes), Err(WireError::BadCommand(_))));
        // A ping whose payload is 3 bytes instead of 8, with a correct checksum.
        let payload = [1u8, 2, 3];
        let mut frame = REGTEST.to_bytes().to_vec();
        frame.extend_from_slice(b"ping\0\0\0\0\0\0\0\0");
        frame.extend_from_slice(&3u32.to_le_bytes());
        let sum = <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::hash(&payload);
        frame.extend_from_slice(&sum[..4]);
        frame.extend_from_slice(&payload);
        assert!(matches!(read(&frame), Err(WireError::Malformed { .. })));
    }

    #[test]
    fn payload_buffer_grows_with_the_bytes_that_arrive() {
        // A header announcing the maximum, then 10 bytes and the end: the
        // buffer never reached the announced size.
        let mut frame = REGTEST.to_bytes().to_vec();
        frame.extend_from_slice(b"block\0\0\0\0\0\0\0");
        frame.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&[7; 10]);
        let mut buf = frame[..HEADER_LEN].to_vec();
        let got = read_payload(&mut &frame[HEADER_LEN..], MAX_PAYLOAD as u64, &mut buf).unwrap();
        assert_eq!(got, 10);
        assert!(buf.capacity() < 64 * 1024, "capacity {}", buf.capacity());
        assert!(matches!(
            read(&frame),
            Err(WireError::Truncated { expected, got: 34 }) if expected == HEADER_LEN + MAX_PAYLOAD
        ));
        // Exactly at the limit is read; one over is refused from the header.
        frame[16..20].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert!(matches!(read(&frame), Err(WireError::Oversized(_))));
    }

    #[test]
    fn unknown_command_decodes_as_unknown() {
        let mut frame = REGTEST.to_bytes().to_vec();
        frame.extend_from_slice(b"strandtest\0\0");
        frame.extend_from_slice(&0u32.to_le_bytes());
        let sum = <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::hash(&[]);
        frame.extend_from_slice(&sum[..4]);
        assert!(matches!(
            read(&frame),
            Ok((NetworkMessage::Unknown { .. }, 24))
        ));
    }
}
