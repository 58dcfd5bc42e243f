//! The one encoding every signed statement uses (key offers, store
//! certificates, sealing keys, log checkpoints): each field as its length
//! in bytes (u32, big-endian) followed by the bytes. Length prefixes make
//! it injective, so no field can bleed into the next; each statement
//! starts with its own tag, so a signature over one is valid for no other.

/// `fields`, each length-prefixed, one after the other. A field over
/// 4 GiB (never the case: every field is a name, key or time) saturates
/// its prefix and then simply fails to verify.
pub fn length_prefixed(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| 4 + f.len()).sum());
    for field in fields {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_fields_when_encoded_then_each_has_its_length_first_and_boundaries_cannot_move() {
        assert_eq!(
            length_prefixed(&[b"ab", b""]),
            [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]
        );
        assert_ne!(
            length_prefixed(&[b"ab", b"c"]),
            length_prefixed(&[b"a", b"bc"])
        );
    }
}
