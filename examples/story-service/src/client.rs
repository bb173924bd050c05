//! A minimal HTTP/1.1 client for the load driver: one request per
//! connection (`Connection: close`), JSON in and out. Enough for talking to
//! this service on 127.0.0.1, and much quicker to build than a full client.

use std::io;
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the driver needs of an answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

/// Sends `method path` with an optional JSON body and reads the whole reply.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> io::Result<Reply> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    // The server closes the connection after its answer, and it sends every
    // body whole with a Content-Length, never chunked: what comes until the
    // end of the stream is the head, a blank line and the body.
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse(&raw).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP reply"))
}

fn parse(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    // "HTTP/1.1 503 Service Unavailable"
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let retry_after = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .map(|(_, value)| value.trim().to_owned());
    let body = serde_json::from_slice(&raw[split + 4..]).unwrap_or(Value::Null);
    Some(Reply {
        status,
        retry_after,
        body,
    })
}
