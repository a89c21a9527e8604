//! The header validators: the smuggling sniff (against httparse), Host,
//! hop-by-hop stripping with the forwarding headers, Range, and the
//! compression middleware's Accept-Encoding negotiation.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use troupe::fuzzing;

#[derive(Debug, Arbitrary)]
enum Input {
    Smuggling(Vec<u8>),
    Host {
        values: Vec<Vec<u8>>,
        version: u8,
    },
    Forwarding {
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        peer: IpAddr,
        trusted: bool,
        tls: bool,
    },
    Range {
        value: String,
        len: u64,
    },
    AcceptEncoding {
        value: Vec<u8>,
        offered: u8,
        order: u8,
    },
}

fuzz_target!(|input: Input| match input {
    Input::Smuggling(bytes) => fuzzing::smuggling(&bytes),
    Input::Host { values, version } => {
        let version = match version % 4 {
            0 => http::Version::HTTP_10,
            1 => http::Version::HTTP_11,
            2 => http::Version::HTTP_2,
            _ => http::Version::HTTP_09,
        };
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        fuzzing::host(&values, version);
    }
    Input::Forwarding {
        fields,
        peer,
        trusted,
        tls,
    } => {
        let fields: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        fuzzing::forwarding(&fields, peer, trusted, tls);
    }
    Input::Range { value, len } => fuzzing::range(&value, len),
    Input::AcceptEncoding {
        value,
        offered,
        order,
    } => fuzzing::accept_encoding(&value, offered, order),
});
