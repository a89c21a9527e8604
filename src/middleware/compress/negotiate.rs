//! Which content coding to answer with: `Accept-Encoding` (RFC 9110
//! §12.5.3) against the codings a route offers, in its order of
//! preference.

use http::HeaderValue;

/// A content coding Troupe can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `zstd` (RFC 8878).
    Zstd,
    /// `br` (RFC 7932).
    Brotli,
    /// `gzip` (RFC 1952).
    Gzip,
}

impl Encoding {
    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The suffix of its precompressed sibling file.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Zstd => "zst",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gz",
        }
    }

    /// Its `Content-Encoding` value.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    fn is(self, token: &str) -> bool {
        token.eq_ignore_ascii_case(self.token())
            || (self == Encoding::Gzip && token.eq_ignore_ascii_case("x-gzip"))
    }
}

/// The client's weights, in thousandths (RFC 9110 §12.4.2 allows three
/// decimals), as found in one `Accept-Encoding` value.
#[derive(Debug, Default)]
struct Weights {
    star: Option<u16>,
    identity: Option<u16>,
}

/// The coding to send: the acceptable one (q > 0) the client weighs
/// highest, ties going to the earliest in `offered`; `None` for identity.
///
/// Without `Accept-Encoding` the answer is identity (every browser sends
/// one; a client that sends none may not decode anything). A coding the
/// client does not name is acceptable only through `*`. When the client
/// names `identity` with a higher weight than every coding, identity wins.
/// When nothing is acceptable, not even identity (`identity;q=0`), the
/// answer is still identity, as nginx does rather than tower-http's 406:
/// RFC 9110 §12.5.3 lets a server send an unencoded body then, and an
/// error page in place of a readable body helps nobody.
pub fn choose(accept: Option<&HeaderValue>, offered: &[Encoding]) -> Option<Encoding> {
    let value = accept?.to_str().ok()?;
    let mut weights = Weights::default();
    for item in value.split(',') {
        let (token, q) = parse_item(item);
        if token == "*" {
            weights.star = Some(q);
        } else if token.eq_ignore_ascii_case("identity") {
            weights.identity = Some(q);
        }
    }
    let mut best: Option<(Encoding, u16)> = None;
    for &enc in offered {
        let named = value
            .split(',')
            .map(parse_item)
            .filter(|(t, _)| enc.is(t))
            .map(|(_, q)| q)
            .max();
        let q = named.or(weights.star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((enc, q));
        }
    }
    let (enc, q) = best?;
    match weights.identity {
        Some(identity) if identity > q => None,
        _ => Some(enc),
    }
}

/// `gzip;q=0.5` → (`gzip`, 500). A weight that does not parse counts as
/// 0 (refused), the safe reading of a malformed value.
fn parse_item(item: &str) -> (&str, u16) {
    let mut parts = item.split(';');
    let token = parts.next().unwrap_or("").trim();
    let mut q = 1000;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_q(value.trim()).unwrap_or(0);
        }
    }
    (token, q)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn parse_q(v: &str) -> Option<u16> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    const ALL: &[Encoding] = &[Zstd, Brotli, Gzip];

    fn pick(v: &str) -> Option<Encoding> {
        choose(Some(&HeaderValue::from_str(v).expect("a header")), ALL)
    }

    #[test]
    fn q_values_then_the_servers_order() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Zstd));
        assert_eq!(pick("gzip, br"), Some(Brotli));
        assert_eq!(pick("gzip;q=1.0, br;q=0.5"), Some(Gzip));
        assert_eq!(pick("*"), Some(Zstd));
        assert_eq!(pick("*;q=0.5, zstd;q=0"), Some(Brotli));
        assert_eq!(pick("br;q=0, gzip;q=0, zstd;q=0"), None);
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("identity;q=0"), None);
        assert_eq!(pick("gzip;q=0.4, identity;q=0.5"), None);
        assert_eq!(pick("X-GZIP"), Some(Gzip));
        assert_eq!(pick("gzip;q=2"), None);
        assert_eq!(pick(""), None);
        assert_eq!(choose(None, ALL), None);
    }
}
