//! A long download for the shutdown and control tests: a file larger than
//! any socket buffer, so a client that stops reading keeps it in flight.

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use super::daemon::Daemon;

pub const SIZE: usize = 32 * 1024 * 1024;

/// A config serving one 32 MiB file, larger than any socket buffer, so a
/// client that stops reading keeps the download in flight.
pub fn setup(drain: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("www/big.bin"), data).unwrap();
    let cfg = dir.path().join("config.ron");
    std::fs::write(
        &cfg,
        format!(
            r#"Config(listen: ["127.0.0.1:0"], limits: (drain_timeout: "{drain}"), log: (access: Off),
                 servers: [(routes: [(path: "/{{*p}}", handler: Static(root: "www"))])])"#
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// Starts a download and reads only its first bytes.
pub fn start_download(d: &Daemon) -> TcpStream {
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    s
}
