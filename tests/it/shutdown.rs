//! P1.6: graceful shutdown of the real binary on SIGTERM/SIGINT: in-flight
//! downloads finish, new connections are refused, exit code 0; a second
//! signal stops at once; the drain timeout bounds the wait.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::support::{
    daemon::Daemon,
    downloads::{SIZE, setup, start_download},
};

fn bytes_until_close(s: &mut TcpStream, already: usize) -> usize {
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.read_to_end(&mut rest).unwrap();
    already + rest.len()
}

#[test]
fn sigterm_drains_in_flight_downloads_and_refuses_new_connections() {
    let (_dir, cfg) = setup("30s");
    let mut d = Daemon::start(&cfg);
    let mut s = start_download(&d);
    d.signal(libc::SIGTERM);
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(d.addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => assert!(Instant::now() < deadline, "still accepting after SIGTERM"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The download started before the signal completes, whole.
    // Head plus body: the head is a few hundred bytes, the body all of it.
    let total = bytes_until_close(&mut s, 1024);
    assert!(
        total > SIZE && total < SIZE + 1024,
        "download was cut: {total} bytes"
    );
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    assert_eq!(status.code(), Some(0), "{}", d.logs());
    assert!(d.logs().contains("graceful shutdown"), "{}", d.logs());
}

#[test]
fn sigint_is_graceful_too() {
    let (_dir, cfg) = setup("30s");
    let mut d = Daemon::start(&cfg);
    d.signal(libc::SIGINT);
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_second_signal_stops_at_once() {
    let (_dir, cfg) = setup("60s");
    let mut d = Daemon::start(&cfg);
    let _stalled = start_download(&d);
    d.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(d.logs().contains("fast shutdown"), "{}", d.logs());
}

#[test]
fn the_drain_timeout_bounds_a_stalled_client() {
    let (_dir, cfg) = setup("1s");
    let mut d = Daemon::start(&cfg);
    let _stalled = start_download(&d);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(status.code(), Some(0));
    assert!(d.logs().contains("connections cut"), "{}", d.logs());
}

#[test]
fn idle_keepalive_connections_do_not_hold_up_the_drain() {
    let (_dir, cfg) = setup("30s");
    let mut d = Daemon::start(&cfg);
    // A client that made a request and keeps its connection open, idle.
    let mut idle = TcpStream::connect(d.addr).unwrap();
    idle.write_all(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).unwrap() > 0);
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait(Duration::from_secs(10))
        .expect("troupe did not exit");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    // The idle connection was closed, not left hanging.
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0);
}
