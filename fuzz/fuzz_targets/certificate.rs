#![no_main]
//! Certificate PEM and DER parsing and the validation rule.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let user = ecp_core::UserName::parse("alice").unwrap();
    let _ = ecp_core::validate_certificate(
        data,
        &user,
        1_800_000_000,
        std::time::Duration::from_secs(300),
    );
    let _ = ecp_core::certificate::parse_certificate_der(data);
});
