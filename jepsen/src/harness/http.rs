//! A minimal blocking HTTP/1.1 client over `std::net`, written for honest outcomes.
//!
//! The harness must tell "the request never left" from "the request may have arrived", because
//! only the former lets it record a send as `fail`. A general-purpose client hides that split
//! behind retries and connection pools; this one makes exactly one attempt on a fresh
//! connection (`Connection: close`) and reports where it stopped:
//! - [`HttpError::Connect`]: the TCP connection was never established (refused, unreachable, or
//!   the SYN went unanswered), so not one byte of the request was sent;
//! - [`HttpError::AfterSend`]: the connection existed and (some of) the request may have been
//!   sent, but no complete response came back (timeout, reset, truncated reply).
//!
//! Responses are read to EOF; `Content-Length` and chunked bodies are both understood.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body, decoded from chunked encoding if needed.
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON, or `Value::Null` if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No connection was made: nothing was sent.
    Connect(String),
    /// The connection was made; the request may have been (partly) delivered.
    AfterSend(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(m) => write!(f, "connect failed (nothing sent): {m}"),
            HttpError::AfterSend(m) => write!(f, "no complete response: {m}"),
        }
    }
}

/// Timeouts of one request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Bound on establishing the TCP connection.
    pub connect: Duration,
    /// Bound on the whole exchange once connected.
    pub total: Duration,
}

/// Performs one request: `method path` on `addr`, with an optional JSON body.
///
/// # Errors
/// [`HttpError::Connect`] if no connection was established, [`HttpError::AfterSend`] for any
/// failure after that.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeouts: Timeouts,
) -> Result<Response, HttpError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeouts.connect)
        .map_err(|e| HttpError::Connect(e.to_string()))?;
    let deadline = Instant::now() + timeouts.total;
    let after = |e: std::io::Error| HttpError::AfterSend(e.to_string());
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(timeouts.total))
        .map_err(after)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    stream.write_all(&out).map_err(after)?;
    let mut raw = Vec::with_capacity(1024);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::AfterSend("timed out".into()));
        }
        stream.set_read_timeout(Some(left)).map_err(after)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // Stop early once a Content-Length body is complete (the server may linger).
                if let Some(done) = complete_length(&raw) {
                    raw.truncate(done);
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(after(e)),
        }
    }
    parse(&raw).map_err(HttpError::AfterSend)
}

/// If `raw` holds a complete header with a `Content-Length` and the whole body, its length.
fn complete_length(raw: &[u8]) -> Option<usize> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let len = header(head, "content-length")?.parse::<usize>().ok()?;
    let total = end + 4 + len;
    (raw.len() >= total).then_some(total)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Parses a complete response read to EOF.
fn parse(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("connection closed before the response header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let rest = &raw[end + 4..];
    let body = if header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header(head, "content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length".to_owned())?;
        if rest.len() < len {
            return Err(format!("body truncated: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("truncated chunk header")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply);
        });
        addr
    }

    const T: Timeouts = Timeouts {
        connect: Duration::from_secs(1),
        total: Duration::from_secs(2),
    };

    #[test]
    fn reads_a_content_length_body() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{\"a\":1}");
        let r = request(addr, "GET", "/x", None, T).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["a"], 1);
    }

    #[test]
    fn reads_a_chunked_body() {
        let addr = serve_once(
            b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":2}\r\n0\r\n\r\n",
        );
        let r = request(addr, "POST", "/x", Some(b"{}"), T).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["a"], 2);
    }

    #[test]
    fn truncated_reply_is_after_send() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 70\r\n\r\n{\"a\":1}");
        let e = request(addr, "GET", "/x", None, T).unwrap_err();
        assert!(matches!(e, HttpError::AfterSend(_)), "{e}");
    }

    #[test]
    fn refused_connection_is_connect() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = request(addr, "GET", "/x", None, T).unwrap_err();
        assert!(matches!(e, HttpError::Connect(_)), "{e}");
    }
}
