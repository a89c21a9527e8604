//! Apache's `$apr1$` hash: MD5-crypt (Poul-Henning Kamp's, FreeBSD's
//! `$1$`) with `$apr1$` mixed in instead of `$1$`; what `htpasswd` writes
//! by default. No well-kept crate has it (pwhash stops at `$1$` and pulls
//! in old RustCrypto releases), so it is written here over `md-5`, and
//! checked against hashes from the real `htpasswd`.

use md5::{Digest, Md5};

const MAGIC: &[u8] = b"$apr1$";
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 22-character checksum of `password` with `salt` (up to 8 bytes).
pub fn checksum(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC);
    ctx.update(salt);
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut left = password.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = password.len();
    while i != 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    // 1000 rounds, as the algorithm fixes them.
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let f = fin;
    let mut out = String::with_capacity(22);
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let triple = |a: u8, b: u8, c: u8| (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
    put(triple(f[0], f[6], f[12]), 4);
    put(triple(f[1], f[7], f[13]), 4);
    put(triple(f[2], f[8], f[14]), 4);
    put(triple(f[3], f[9], f[15]), 4);
    put(triple(f[4], f[10], f[5]), 4);
    put(u32::from(f[11]), 2);
    out
}

/// Splits `$apr1$salt$checksum` into salt and checksum.
pub fn split(hash: &str) -> Option<(&str, &str)> {
    let rest = hash.strip_prefix("$apr1$")?;
    let (salt, sum) = rest.split_once('$')?;
    let ok = salt.len() <= 8
        && sum.len() == 22
        && (salt.bytes().chain(sum.bytes())).all(|b| ITOA64.contains(&b));
    ok.then_some((salt, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        // From `htpasswd -nbm` (Apache 2.4) and the apr1 literature.
        for (hash, password) in [
            ("$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00", "password"),
            ("$apr1$RandSalt$PgCXHRrkpSt4cbyC2C6bm/", "password"),
        ] {
            let (salt, sum) = split(hash).expect("apr1");
            assert_eq!(checksum(password.as_bytes(), salt.as_bytes()), sum);
            assert_ne!(checksum(b"passwore", salt.as_bytes()), sum);
        }
        assert!(split("$apr1$toolongsalt$PgCXHRrkpSt4cbyC2C6bm/").is_none());
        assert!(split("$1$abc$PgCXHRrkpSt4cbyC2C6bm/").is_none());
    }
}
