//! The HTTP server's own bounds, on the real daemon over raw TCP: connections past `http.max_connections` get a
//! 503 JSON answer at once, connections that trickle headers are closed after `http.header_read_timeout_ms`
//! (slowloris), and the daemon serves normal requests throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tierd_tests::daemon::{Daemon, TestDir};

/// Opens a connection that sends the start of a request and never finishes its headers.
fn slow_client(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

/// What the server sent before closing or going quiet (empty: nothing yet).
fn read_some(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    match s.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

#[test]
fn slow_and_excess_connections_are_refused_or_closed_and_others_are_served() {
    let dir = TestDir::new("http-limits");
    let d = Daemon::start(&dir.data_dir(), Some("[http]\nmax_connections = 4\nheader_read_timeout_ms = 1500\n"));
    assert_eq!(d.get("/healthz").status, 200);
    let addr = d.url().trim_start_matches("http://").trim_end_matches('/').to_string();
    // Hold connections with unfinished headers until one is refused: at most 4 are open (the test's own client may
    // hold one of them).
    let mut held = Vec::new();
    let mut refused = None;
    for i in 0..6 {
        let mut s = slow_client(&addr);
        let answer = read_some(&mut s);
        if !answer.is_empty() {
            refused = Some((i, answer));
            break;
        }
        held.push(s);
    }
    let (i, answer) = refused.expect("a connection past http.max_connections is refused");
    assert!((3..=4).contains(&i), "refused at connection {i}");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1") && answer.contains("http.max_connections"), "{answer}");
    // The slow clients are closed once their headers are late; then there is room again.
    std::thread::sleep(Duration::from_millis(1800));
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 256];
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408");
        assert!(closed, "a connection with late headers is closed");
    }
    assert_eq!(d.get("/healthz").status, 200);
    assert!(d.metric_sum("tierd_http_connections_refused_total") >= 1.0);
}

/// A process whose open-file limit is below what the configuration may hold open (`hot.max_open_segments` +
/// `http.max_connections` + queries + a reserve; 1,568 with the defaults) and cannot be raised refuses to start,
/// naming the keys, instead of failing `open` under load later.
#[test]
fn an_open_file_limit_below_the_configuration_refuses_to_start() {
    if !std::path::Path::new("/usr/bin/prlimit").is_file() {
        panic!("util-linux's prlimit is needed (it is in Debian's util-linux, installed everywhere)");
    }
    let dir = TestDir::new("fd-limit");
    let out = std::process::Command::new("/usr/bin/prlimit")
        .arg("--nofile=300:300")
        .arg("--")
        .arg(tierd_tests::tierd_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.data_dir())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tierd under prlimit");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "{text}");
    for key in ["open-file limit", "soft 300, hard 300", "hot.max_open_segments", "http.max_connections"] {
        assert!(text.contains(key), "{key:?} in {text}");
    }
}
