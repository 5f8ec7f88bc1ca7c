//! Lowercase hex, as fingerprints, serials and nonce ids are shown.

use std::fmt::Write as _;

/// Lowercase hex without separators.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_lowercase_with_leading_zeros() {
        assert_eq!(super::encode(&[0x00, 0x0a, 0xff]), "000aff");
        assert_eq!(super::encode(&[]), "");
    }
}
