//! A scripted HTTP/1.1 server on an ephemeral loopback port, for testing what the client commands send and how
//! they react to answers, without the real daemon.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;
use tierd_store::clock::Stopwatch;

/// A request as the server received it.
#[derive(Debug)]
pub(crate) struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One scripted answer.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Self { status, headers: vec![("Content-Type", "application/json".to_owned())], body: body.to_owned() }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

pub(crate) struct TestServer {
    pub url: String,
    handle: JoinHandle<Vec<Received>>,
}

impl TestServer {
    /// Answers one connection per reply, in order (every reply closes its connection), for at most 20 s.
    pub fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let waited = Stopwatch::start();
            let mut received = Vec::new();
            for reply in replies {
                let stream = loop {
                    match listener.accept() {
                        Ok((stream, _)) => break stream,
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                && waited.elapsed() < Duration::from_secs(20) =>
                        {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => return received,
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
                let length =
                    headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                received.push(Received { method, target, headers, body });
                let mut stream = reader.into_inner();
                let mut head = format!("HTTP/1.1 {} Scripted\r\nConnection: close\r\n", reply.status);
                for (name, value) in &reply.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(reply.body.as_bytes()).unwrap();
            }
            received
        });
        Self { url, handle }
    }

    /// Waits for the script to finish and returns what was received.
    pub fn received(self) -> Vec<Received> {
        self.handle.join().unwrap()
    }
}
