//! Connection settings and the server list.

use std::time::Duration;

use crate::error::Error;

/// How to connect. `Default` gives ZooKeeper-like values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Requested session timeout; the server may negotiate it (default 10 s). Pings go
    /// out after a third of it without traffic; a connection silent for two thirds of it
    /// is deemed dead.
    pub session_timeout: Duration,
    /// Limit for one attempt on one server: TCP connect plus handshake (default 2 s).
    pub connect_timeout: Duration,
    /// A call not answered within this fails with `OperationTimeout` (default 20 s),
    /// including time spent waiting for a reconnect. The connection is kept: the
    /// server still answers in order and the late answer is dropped.
    pub request_timeout: Duration,
    /// Largest frame accepted from the server, and sent to it: a request that would not
    /// fit fails with `BadArguments` without being sent (the server would close the
    /// connection). Keep it equal to the server's `max_frame`.
    pub max_frame: usize,
    /// Resume this session (id, password) instead of creating one.
    pub session: Option<(i64, Vec<u8>)>,
    /// Accept a read-only member when no quorum is reachable.
    pub read_only: bool,
    /// Exactly-once writes (default true): a write whose answer is lost with its
    /// connection is re-sent on the next one with the same request number, and the
    /// server answers it with the original result instead of running it twice. False
    /// gives ZooKeeper's behaviour: such a write fails with `ConnectionLoss`, its
    /// outcome unknown.
    pub exactly_once: bool,
    /// Entries of the client cache of data and children (0, the default, turns it
    /// off); read through `get_data_cached` / `get_children_cached`. See `cache.rs`.
    pub cache_capacity: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(20),
            max_frame: zabkeeper_proto::DEFAULT_MAX_FRAME,
            session: None,
            read_only: false,
            exactly_once: true,
            cache_capacity: 0,
        }
    }
}

/// The native protocol's port, used when a server is given without one (2181 is the
/// server's ZooKeeper-protocol port, which this client does not speak).
pub const DEFAULT_PORT: u16 = 2281;

/// Parses `"host:port,host:port"`. A missing port means [`DEFAULT_PORT`]. Chroot
/// suffixes (`host:port/app`) are not supported and refused.
pub(crate) fn parse_servers(servers: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for part in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part.contains('/') {
            return Err(Error::BadArguments);
        }
        let addr = match part.rsplit_once(':') {
            // "[::1]:2281" or "h:2281"; a bare IPv6 address without brackets is refused.
            Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
                port.parse::<u16>().map_err(|_| Error::BadArguments)?;
                part.to_string()
            }
            Some(_) => return Err(Error::BadArguments),
            None => format!("{part}:{DEFAULT_PORT}"),
        };
        out.push(addr);
    }
    if out.is_empty() {
        return Err(Error::BadArguments);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_lists() {
        assert_eq!(parse_servers("a:1,b:2").unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(parse_servers(" a:1 , b ").unwrap(), vec!["a:1", "b:2281"]);
        assert_eq!(parse_servers("[::1]:5").unwrap(), vec!["[::1]:5"]);
        assert_eq!(parse_servers(""), Err(Error::BadArguments));
        assert_eq!(parse_servers("a:x"), Err(Error::BadArguments));
        assert_eq!(parse_servers("a:1/chroot"), Err(Error::BadArguments));
        assert_eq!(parse_servers(":1"), Err(Error::BadArguments));
    }
}
