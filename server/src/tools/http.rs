//! A minimal HTTP/1.1 GET for the tools that talk to a member's admin port
//! (`backup`, `export ADDR`): one request, `Connection: close`, body read to the
//! end and checked against `Content-Length`. Our own admin server is the only
//! peer, so chunked encoding and redirects are not needed.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// GETs `path` from `addr` (HOST:PORT); the body of a 200 answer, else an error
/// carrying the status line and body.
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<Vec<u8>> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| Error::Tool(format!("cannot resolve {addr}: {e}")))?
        .next()
        .ok_or_else(|| Error::Tool(format!("{addr} does not resolve")))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
        .map_err(|e| Error::Tool(format!("cannot connect to {addr}: {e}")))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::Tool(format!("{addr}: not an HTTP answer")))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let body = raw[end + 4..].to_vec();
    let status = head.lines().next().unwrap_or_default().to_string();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(len) = length {
        if body.len() != len {
            return Err(Error::Tool(format!(
                "{addr}{path}: answer cut short ({} of {len} bytes)",
                body.len()
            )));
        }
    }
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(Error::Tool(format!(
            "{addr}{path}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok(body)
}
