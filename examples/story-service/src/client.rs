//! A minimal HTTP/1.1 client for the load driver: one request per
//! connection (`Connection: close`), JSON in and out (text for `/metrics`).
//! Enough for talking to this service on 127.0.0.1, and much quicker to
//! build than a full client.

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

/// An answer whose body is text, not JSON: `GET /metrics`.
#[derive(Debug)]
pub struct TextReply {
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    pub body: String,
}

/// Sends `method path` with an optional JSON body and reads the whole reply.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> io::Result<Reply> {
    let raw = exchange(addr, method, path, body).await?;
    let reply = Split::new(&raw).ok_or_else(malformed)?;
    Ok(Reply {
        status: reply.status,
        retry_after: reply.header("retry-after"),
        body: serde_json::from_slice(reply.body).unwrap_or(Value::Null),
    })
}

/// `GET path`, its body read as UTF-8 text.
pub async fn get_text(addr: SocketAddr, path: &str) -> io::Result<TextReply> {
    let raw = exchange(addr, "GET", path, None).await?;
    let reply = Split::new(&raw).ok_or_else(malformed)?;
    Ok(TextReply {
        status: reply.status,
        content_type: reply.header("content-type"),
        body: String::from_utf8(reply.body.to_vec()).map_err(|_| malformed())?,
    })
}

/// Sends the request and reads the raw reply, head and body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> io::Result<Vec<u8>> {
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
    Ok(raw)
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP reply")
}

/// A raw reply, split: its status, its head and its body.
struct Split<'a> {
    status: u16,
    head: &'a str,
    body: &'a [u8],
}

impl<'a> Split<'a> {
    fn new(raw: &'a [u8]) -> Option<Self> {
        let split = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        // "HTTP/1.1 503 Service Unavailable"
        let status = head.split("\r\n").next()?.split(' ').nth(1)?.parse().ok()?;
        Some(Split {
            status,
            head,
            body: &raw[split + 4..],
        })
    }

    /// The value of the header `name`, if the reply has it.
    fn header(&self, name: &str) -> Option<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
    }
}
