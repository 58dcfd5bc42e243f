//! Bearer tokens: 256 random bits, shown to their owner once, stored only
//! as a SHA-256 digest (SPEC §6).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Every token starts with this, so a leaked one is easy to recognise
/// (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "spt_";

/// A bearer token in clear. Its `Debug` is redacted and its memory is
/// zeroized on drop; only [`BearerToken::expose`] reveals it, to print it
/// once or send it in a request header.
#[derive(Clone)]
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_PREFIX.len() + 43));
        text.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut text);
        BearerToken(text)
    }

    /// Wraps a token presented by a client.
    pub fn presented(text: &str) -> Self {
        BearerToken(Zeroizing::new(text.to_owned()))
    }

    /// The token in clear.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the log keeps.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// Whether it has the shape of a token this server issues (prefix and
    /// 32 bytes of base64url); checked before any lookup.
    pub fn is_well_formed(&self) -> bool {
        self.0
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .is_some_and(|bytes| bytes.len() == 32)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

/// SHA-256 of a token: what the events and the read model hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// Lower-case hex, as stored in `TokenIssued`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the stored hex form.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(TokenDigest(out))
    }
}

/// Written as its hex form (a JSON map key in the read-model snapshot).
impl serde::Serialize for TokenDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for TokenDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        TokenDigest::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a token digest is 64 hex digits"))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_256_bits() {
        let a = BearerToken::generate();
        let b = BearerToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("spt_"));
        assert_eq!(a.expose().len(), 4 + 43);
        assert!(a.is_well_formed());
        let raw = URL_SAFE_NO_PAD.decode(&a.expose()[4..]).unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = BearerToken::generate();
        let shown = format!("{t:?} {:?}", Some(&t));
        assert!(!shown.contains(&t.expose()[4..]), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn the_digest_is_sha256_of_the_text_and_round_trips_as_hex() {
        // The FIPS 180-2 test vector for "abc".
        let t = BearerToken::presented("abc");
        assert_eq!(
            t.digest().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = t.digest();
        assert_eq!(TokenDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(TokenDigest::from_hex("zz"), None);
    }

    #[test]
    fn malformed_tokens_are_recognised_before_lookup() {
        for bad in [
            "",
            "spt_",
            "spt_short",
            "Bearer spt_x",
            "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!BearerToken::presented(bad).is_well_formed(), "{bad}");
        }
    }
}
