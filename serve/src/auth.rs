//! Bearer-token authentication: tokens from a file (one per line, `#` comments), compared in
//! constant time, never logged.

use std::path::Path;

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The accepted tokens, kept as their BLAKE3 digests: comparing digests of equal length in
/// constant time reveals neither a token's bytes nor its length.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} hidden)", self.digests.len())
    }
}

impl Tokens {
    /// Reads the token file; an empty file is an error (it would lock everyone out).
    pub fn load(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.display().to_string(), message: e.to_string() })?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|t| *blake3::hash(t.as_bytes()).as_bytes())
            .collect();
        if digests.is_empty() {
            return Err(Error::Config { field: path.display().to_string(), message: "no token in the file".into() });
        }
        Ok(Tokens { digests })
    }

    /// Whether `header` (the `authorization` value, `Bearer <token>`) carries an accepted token.
    /// Every accepted digest is compared, whichever matches.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
            return false;
        };
        let d = blake3::hash(token.trim().as_bytes());
        let mut ok = subtle::Choice::from(0);
        for t in &self.digests {
            ok |= t.ct_eq(d.as_bytes());
        }
        ok.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        std::fs::write(&p, "# deployers\nsecret-one\n\n  secret-two  \n").unwrap();
        let t = Tokens::load(&p).unwrap();
        assert!(t.check(Some("Bearer secret-one")));
        assert!(t.check(Some("Bearer secret-two")));
        assert!(!t.check(Some("Bearer secret")));
        assert!(!t.check(Some("secret-one")));
        assert!(!t.check(None));
        assert!(!format!("{t:?}").contains("secret"));
        std::fs::write(&p, "# nothing\n").unwrap();
        assert!(Tokens::load(&p).is_err());
    }
}
