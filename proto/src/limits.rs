//! Limits both sides of a process boundary must agree on, defined once.
//! The control plane enforces them; `sealctl` and the reactor stay within
//! them (and say so clearly) instead of relying on a refusal.

use chrono::Duration;

/// The default largest secret value (the sum of its keys' and values'
/// bytes) a deployment accepts; the control plane's `limits.max_secret_bytes`
/// can change it.
pub const DEFAULT_MAX_SECRET_BYTES: usize = 256 * 1024;

/// Bytes a crypto_box sealed box adds to its plaintext (an ephemeral
/// X25519 public key and a Poly1305 tag): what the control plane allows on
/// top of the secret size for a ciphertext.
pub const SEALED_BOX_OVERHEAD: usize = 48;

/// Longest failure reason a reactor may report, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// Longest lifetime of a one-time upload key.
pub const MAX_KEY_TTL: Duration = Duration::hours(1);

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate_to(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = truncate_to(long, MAX_REASON_BYTES);
        assert!(cut.len() <= MAX_REASON_BYTES);
        assert_eq!(cut.chars().count(), 512);
        assert_eq!(truncate_to("short".into(), 10), "short");
    }

    #[cfg(feature = "sealed")]
    #[test]
    fn the_overhead_is_crypto_box_s() {
        assert_eq!(SEALED_BOX_OVERHEAD, crypto_box::SEALBYTES);
    }
}
