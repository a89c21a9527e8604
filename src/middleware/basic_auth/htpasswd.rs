//! An htpasswd file, read whole and checked at config load: each line
//! `user:hash` in one of the formats Apache's `htpasswd` writes. A line
//! that is none of them is an error naming the file and the line, so a
//! user who could never log in is found at `troupe -t`, not at 3 a.m.

use std::{collections::HashMap, path::Path};

use base64::Engine as _;
use sha_crypt::PasswordVerifier as _;
use subtle::ConstantTimeEq as _;

use super::apr1;

/// One user's stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    /// `$2y$` (`htpasswd -B`; `$2a$`, `$2b$` too).
    Bcrypt(String),
    /// `$apr1$salt$sum` (`htpasswd -m`, its default).
    Apr1 {
        /// Up to 8 characters.
        salt: String,
        /// 22 characters.
        sum: String,
    },
    /// `{SHA}` + base64 of SHA-1 (`htpasswd -s`): unsalted, kept for old files.
    Sha1([u8; 20]),
    /// `$5$` or `$6$` (`htpasswd -2`, `-5`): SHA-256- or SHA-512-crypt.
    ShaCrypt(String),
}

impl Hash {
    /// Reads a stored hash; the error says which formats are known.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$2y$") || text.starts_with("$2a$") || text.starts_with("$2b$") {
            return text
                .parse::<bcrypt::HashParts>()
                .map(|_| Self::Bcrypt(text.to_owned()))
                .map_err(|e| format!("a malformed bcrypt hash ({e})"));
        }
        if text.starts_with("$apr1$") {
            let (salt, sum) = apr1::split(text).ok_or("a malformed $apr1$ hash")?;
            return Ok(Self::Apr1 {
                salt: salt.into(),
                sum: sum.into(),
            });
        }
        if let Some(b64) = text.strip_prefix("{SHA}") {
            let digest = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|d| <[u8; 20]>::try_from(d).ok())
                .ok_or("a malformed {SHA} hash")?;
            return Ok(Self::Sha1(digest));
        }
        if text.starts_with("$5$") || text.starts_with("$6$") {
            // Checked now by a verification that cannot succeed: a
            // malformed hash fails as malformed, a good one as a mismatch.
            return match sha_crypt::ShaCrypt::default().verify_password(b"", text) {
                Err(sha_crypt::password_hash::Error::PasswordInvalid) | Ok(()) => {
                    Ok(Self::ShaCrypt(text.to_owned()))
                }
                Err(_) => Err("a malformed SHA-crypt hash".into()),
            };
        }
        Err(
            "a hash of no supported format (expected bcrypt `htpasswd -B`, MD5 `-m`, SHA-256/512 `-2`/`-5` or SHA-1 `-s`; \
             crypt `-d` and plain text `-p` are not accepted)"
                .into(),
        )
    }

    /// Whether `password` hashes to this. bcrypt and SHA-crypt are slow
    /// by design: call [`Hash::is_slow`] first and run those off the
    /// request's thread.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Self::Apr1 { salt, sum } => apr1::checksum(password, salt.as_bytes())
                .as_bytes()
                .ct_eq(sum.as_bytes())
                .into(),
            Self::Sha1(digest) => {
                use sha1::Digest as _;
                sha1::Sha1::digest(password).as_slice().ct_eq(digest).into()
            }
            Self::ShaCrypt(h) => sha_crypt::ShaCrypt::default()
                .verify_password(password, h.as_str())
                .is_ok(),
        }
    }

    /// Whether checking it takes milliseconds (bcrypt, SHA-crypt).
    pub fn is_slow(&self) -> bool {
        matches!(self, Self::Bcrypt(_) | Self::ShaCrypt(_))
    }
}

/// The users of one file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, Hash>,
}

impl Htpasswd {
    /// Reads and checks `path`; the error names the file (and the line).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("htpasswd file `{}` cannot be read: {e}", path.display()))?;
        Self::parse(&text)
            .map_err(|(line, why)| format!("htpasswd file `{}` line {line}: {why}", path.display()))
    }

    /// Parses the text of a file: `user:hash` lines; empty lines and `#`
    /// comments are skipped. The error is (1-based line, why).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err((i + 1, "expected `user:hash`".into()));
            };
            if user.is_empty() {
                return Err((i + 1, "the user name is empty".into()));
            }
            let hash =
                Hash::parse(hash.trim()).map_err(|why| (i + 1, format!("user `{user}`: {why}")))?;
            if users.insert(user.to_owned(), hash).is_some() {
                return Err((i + 1, format!("user `{user}` is listed twice")));
            }
        }
        Ok(Self { users })
    }

    /// The stored hash of `user`.
    pub fn get(&self, user: &str) -> Option<&Hash> {
        self.users.get(user)
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_htpasswd_writes() {
        // Written by Apache's htpasswd 2.4 (-m, -B -C 5, -s, -2, -5).
        let f = Htpasswd::parse(
            "# admins\n\
             alice:$apr1$gH62m.SI$mGz4n8ya.Q3MLSg6SyfQi0\n\
             bob:$2y$05$Icau9oyovH2n77f9hpsBHuI9xxId5isLNql62gX0hp.atH7F/5Zim\r\n\
             carol:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\n\
             \n\
             f:$5$byddqD4F1uk26and$fRy3EiPD0CVE7tZmkvjY9sPKX3ht2kEMgrRci6S.M9D\n\
             g:$6$iobDYzwp.HUYXhZ/$lXH66EUSV5y2PUYYCYC92ooXvRCTTzfO4/Hxtt3/Y0TWlxt7Ornwl07O0gQfVS3oQGs6ueXKsLgtz.vhvkmNz0\n",
        )
        .expect("parse");
        for (user, good) in [
            ("alice", "p@ss word"),
            ("bob", "secret"),
            ("carol", "s3cret"),
            ("f", "x"),
            ("g", "y"),
        ] {
            let h = f.get(user).expect(user);
            assert!(h.verify(good.as_bytes()), "{user}");
            assert!(!h.verify(b"wrong"), "{user}");
        }
        assert!(f.get("dave").is_none());
    }

    #[test]
    fn bad_lines_name_their_number() {
        for (text, line, words) in [
            ("a:$apr1$x$short\n", 1, "malformed $apr1$"),
            (
                "ok:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\ndave:Kk14ZrfTEsxok\n",
                2,
                "crypt",
            ),
            ("erin:plain\n", 1, "plain text"),
            ("no colon here\n", 1, "user:hash"),
            ("a:$2y$05$nonsense\n", 1, "bcrypt"),
            (
                "a:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\na:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\n",
                2,
                "twice",
            ),
        ] {
            let (at, why) = Htpasswd::parse(text).expect_err(text);
            assert_eq!(at, line, "{text}");
            assert!(why.contains(words), "{why}");
        }
    }
}
