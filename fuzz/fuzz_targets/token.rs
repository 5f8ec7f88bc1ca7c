#![no_main]
//! Challenge token and signature decoding; a decoded token must re-encode
//! to the same text (one canonical form).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(challenge) = ecp_core::Challenge::from_token(text) {
        assert_eq!(
            challenge.to_token(),
            text,
            "a token decoded from a non-canonical form"
        );
    }
    let _ = ecp_core::challenge::parse_signature(text);
});
