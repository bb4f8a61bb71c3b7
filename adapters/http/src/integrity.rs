//! What a download must turn out to be: its size and its SHA-256, checked
//! as the bytes arrive (across resumes and preemptions; a restart from zero
//! starts the hash over) and before the download is reported complete.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use weir::NetError;

/// Expectations of one download's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Its SHA-256.
    pub sha256: Option<[u8; 32]>,
}

impl Expect {
    /// Parse a SHA-256 given as 64 hex digits.
    ///
    /// # Errors
    /// Anything but 64 hex digits.
    pub fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{hex:?} is not a SHA-256 (64 hex digits)"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// Whether anything is expected at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.size.is_none() && self.sha256.is_none()
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The running check of one download's bytes.
#[derive(Debug, Clone)]
pub struct Verifier {
    expect: Expect,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl Verifier {
    /// A check of `expect`.
    #[must_use]
    pub fn new(expect: Expect) -> Self {
        let hasher = expect.sha256.map(|_| Sha256::new());
        Verifier { expect, hasher, bytes: 0 }
    }

    /// More bytes, in order.
    pub fn update(&mut self, buf: &[u8]) {
        if let Some(h) = &mut self.hasher {
            h.update(buf);
        }
        self.bytes += buf.len() as u64;
    }

    /// The sink starts over from zero.
    pub fn reset(&mut self) {
        *self = Verifier::new(self.expect.clone());
    }

    /// An answer announced the size the download will have: refuse a
    /// mismatch before a byte is fetched.
    ///
    /// # Errors
    /// [`NetError::Integrity`] when it is not the expected size.
    pub fn announced(&self, size: Option<u64>) -> Result<(), NetError> {
        match (self.expect.size, size) {
            (Some(want), Some(got)) if want != got => {
                Err(NetError::Integrity(format!("expected {want} bytes, the server announces {got}")))
            }
            _ => Ok(()),
        }
    }

    /// Every byte is in: compare.
    ///
    /// # Errors
    /// [`NetError::Integrity`] naming what differs.
    pub fn finish(&self) -> Result<(), NetError> {
        if let Some(want) = self.expect.size.filter(|&w| w != self.bytes) {
            return Err(NetError::Integrity(format!("expected {want} bytes, got {}", self.bytes)));
        }
        if let (Some(want), Some(h)) = (self.expect.sha256, &self.hasher) {
            let got: [u8; 32] = h.clone().finalize().into();
            if got != want {
                return Err(NetError::Integrity(format!("SHA-256 {} is not the expected {}", hex(&got), hex(&want))));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn checks_size_and_digest_across_chunks_and_restarts() {
        let expect = Expect { size: Some(3), sha256: Some(Expect::parse_sha256(ABC).unwrap()) };
        let mut v = Verifier::new(expect);
        v.update(b"x");
        v.reset();
        v.update(b"a");
        v.update(b"bc");
        assert_eq!(v.finish(), Ok(()));
        v.update(b"d");
        assert!(matches!(v.finish(), Err(NetError::Integrity(m)) if m.contains("expected 3 bytes, got 4")));
        let mut wrong = Verifier::new(Expect { size: None, sha256: Some([0; 32]) });
        wrong.update(b"abc");
        assert!(matches!(wrong.finish(), Err(NetError::Integrity(m)) if m.contains(ABC)));
        assert!(v.announced(Some(4)).is_err() && v.announced(Some(3)).is_ok() && v.announced(None).is_ok());
        assert!(Expect::parse_sha256("abc").is_err() && Expect::parse_sha256(&"g".repeat(64)).is_err());
    }
}
