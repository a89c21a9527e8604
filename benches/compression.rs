//! What on-the-fly compression costs per megabyte, for each coding at
//! Troupe's default level (gzip 1, brotli 4, zstd 3) and at the levels
//! the docs compare them with, through the encoders the compression
//! middleware uses (async-compression over tokio).
//!
//! `cargo bench --bench compression`; criterion prints each coding's
//! throughput, and this prints its output ratio. The input is a
//! deterministic 100 KB HTML page of ordinary words, like the bench
//! harness's `page.html` (gzip 1 makes it about 0.28 of its size).

use std::hint::black_box;

use async_compression::{
    Level,
    tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::AsyncReadExt;

/// About 100 KB of HTML: paragraphs of words drawn by a fixed xorshift.
fn page() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "server",
        "request",
        "of",
        "and",
        "a",
        "module",
        "to",
        "cache",
        "in",
        "response",
        "is",
        "with",
        "connection",
        "for",
        "header",
        "on",
        "upstream",
        "that",
        "route",
        "by",
        "actor",
        "config",
        "reload",
        "file",
        "body",
        "from",
        "as",
        "limit",
        "time",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = String::from("<!doctype html><html><head><title>page</title></head><body>\n");
    while out.len() < 100_000 {
        out.push_str("<p>");
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
            out.push(' ');
        }
        out.push_str("</p>\n");
    }
    out.push_str("</body></html>\n");
    out.into_bytes()
}

#[derive(Clone, Copy)]
enum Coding {
    Gzip(i32),
    Brotli(i32),
    Zstd(i32),
}

async fn encode(coding: Coding, input: &[u8]) -> usize {
    let mut out = Vec::with_capacity(input.len() / 2);
    let read = match coding {
        Coding::Gzip(l) => {
            GzipEncoder::with_quality(input, Level::Precise(l))
                .read_to_end(&mut out)
                .await
        }
        Coding::Brotli(l) => {
            BrotliEncoder::with_quality(input, Level::Precise(l))
                .read_to_end(&mut out)
                .await
        }
        Coding::Zstd(l) => {
            ZstdEncoder::with_quality(input, Level::Precise(l))
                .read_to_end(&mut out)
                .await
        }
    };
    read.expect("in-memory encoding");
    out.len()
}

fn compression(c: &mut Criterion) {
    let input = page();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("compress");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for (name, coding) in [
        ("gzip 1 (default)", Coding::Gzip(1)),
        ("gzip 5", Coding::Gzip(5)),
        ("brotli 4 (default)", Coding::Brotli(4)),
        ("zstd 3 (default)", Coding::Zstd(3)),
    ] {
        let size = rt.block_on(encode(coding, &input));
        println!(
            "{name}: output / input = {:.3}",
            size as f64 / input.len() as f64
        );
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(encode(coding, black_box(&input))))
        });
    }
    group.finish();
}

criterion_group!(benches, compression);
criterion_main!(benches);
