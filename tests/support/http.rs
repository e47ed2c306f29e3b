//! A plain HTTP/1.1 GET (`Connection: close`) against a loopback server (the web view, Prometheus, Chromium's
//! DevTools endpoint): enough for tests, no client library to keep.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::time::Duration;

/// `GET url` (`http://HOST:PORT/path?query`): the status code and the body.
pub fn get(url: &str) -> Result<(u16, String)> {
    get_as(url, None)
}

/// `GET url` with another `Host` header than the URL's (what a page reached through a
/// rebound DNS name sends).
pub fn get_as(url: &str, host_header: Option<&str>) -> Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("not an http:// URL: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = std::net::TcpStream::connect(host).with_context(|| format!("connect {host}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // HTTP/1.1: Chromium's DevTools endpoint does not answer HTTP/1.0
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        host_header.unwrap_or(host)
    )?;
    // Read until the body is complete by its Content-Length or final chunk: Chromium's
    // DevTools server keeps the connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf).with_context(|| format!("read {url}"))?;
        raw.extend_from_slice(&buf[..n]);
        if n == 0 || complete(&raw) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no HTTP header in the answer of {url}: {text}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {head}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)?
        } else {
            body.to_string()
        },
    ))
}

/// Whether `raw` holds a whole answer: headers and all of the body they announce.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

/// The body of a chunked transfer encoding (RFC 9112 §7.1).
fn dechunk(mut rest: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").context("truncated chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(tail.get(..size).context("truncated chunk")?);
        rest = tail.get(size + 2..).context("truncated chunk")?;
    }
}

/// `GET url` that must answer 200 with JSON.
pub fn get_json(url: &str) -> Result<serde_json::Value> {
    let (status, body) = get(url)?;
    if status != 200 {
        bail!("GET {url}: status {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}
