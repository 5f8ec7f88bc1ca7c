//! The private directory the LDAP tests run against (issue 12, first
//! step): a throwaway slapd holding users' certificates as SSSD and
//! pam_pkcs11 read them, `userCertificate;binary`.

use ecp_core::certificate::parse_certificate_pem;
use ecp_tests::directory::TestDirectory;
use ecp_tests::{keygen, Workdir};

#[test]
fn a_private_slapd_holds_and_gives_back_users_certificates() {
    let directory = TestDirectory::start();
    assert!(directory.uri.starts_with("ldapi://"));
    let work = Workdir::new();
    let der = |dir: &str| {
        parse_certificate_pem(&work.read(&format!("{dir}/certificate.pem")))
            .unwrap()
            .der()
            .to_vec()
    };
    keygen(&work, "alice", "laptop", "pw");
    keygen(&work, "alice", "desk", "pw");
    let (laptop, desk) = (der("laptop"), der("desk"));
    directory.add_user("alice", &[laptop.clone(), desk.clone()]);
    directory.add_user("bob", &[]);

    let mut held = directory.certificates_of("alice");
    held.sort();
    let mut expected = vec![laptop.clone(), desk.clone()];
    expected.sort();
    assert_eq!(held, expected);
    assert!(directory.certificates_of("bob").is_empty());

    // A revocation in the directory: one value deleted.
    directory.remove_certificate("alice", &laptop);
    assert_eq!(directory.certificates_of("alice"), vec![desk]);
}
