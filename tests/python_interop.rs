//! Interoperability with Python's `cryptography` library, the other common
//! producer of key files and certificates.

use std::path::Path;

use ecp_core::certificate::parse_certificate_pem;
use ecp_tests::{challenge_for, ecpctl, keygen, run_with_input, Workdir};

/// Runs a Python snippet with `cryptography` (Debian's python3-cryptography,
/// which `.ci/run` installs); the snippet gets the work directory as
/// sys.argv[1].
fn python(work: &Workdir, script: &str) -> String {
    let run = run_with_input(
        Path::new("/usr/bin/python3"),
        &["-c", script, &work.arg("")],
        None,
    );
    assert_eq!(run.code, 0, "python failed: {}", run.stderr);
    run.stdout
}

const MAKE_KEY_AND_CERTS: &str = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
d = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
open(d + "/py_key.pem", "wb").write(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(b"py pass")))
open(d + "/py_pub.pem", "wb").write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
now = datetime.datetime.now(datetime.timezone.utc)
def cert(name, start, end):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .sign(key, hashes.SHA256()))
    open(d + "/" + name, "wb").write(c.public_bytes(serialization.Encoding.PEM))
day = datetime.timedelta(days=1)
cert("good.crt", now - day, now + 30 * day)
cert("expired.crt", now - 30 * day, now - day)
cert("future.crt", now + day, now + 30 * day)
"#;

#[test]
fn cryptography_key_and_certificates_are_read_and_judged() {
    let work = Workdir::new();
    python(&work, MAKE_KEY_AND_CERTS);
    work.write("py.pass", b"py pass", 0o600);

    let challenge = challenge_for("alice");
    let sig = ecpctl(&[
        "sign",
        "--key",
        &work.arg("py_key.pem"),
        "--passphrase-file",
        &work.arg("py.pass"),
        &challenge.to_token(),
    ])
    .ok();
    let cert = parse_certificate_pem(&work.read("good.crt")).unwrap();
    challenge.verify(cert.public_key(), sig.trim()).unwrap();

    let run = ecpctl(&["cert", "check", "--user", "alice", &work.arg("good.crt")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ecpctl(&["cert", "check", "--user", "alice", &work.arg("expired.crt")]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("expired on"), "{}", run.stderr);
    let run = ecpctl(&["cert", "check", "--user", "alice", &work.arg("future.crt")]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not valid before"), "{}", run.stderr);
}

#[test]
fn cryptography_reads_our_key_and_verifies_our_signature() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "k", "our pass");
    let challenge = challenge_for("alice");
    let sig = ecpctl(&[
        "sign",
        "--key",
        dir.join("private_key.pem").to_str().unwrap(),
        "--passphrase-file",
        &work.arg("k.pass"),
        &challenge.to_token(),
    ])
    .ok();
    work.write("sig.b64", sig.trim().as_bytes(), 0o644);
    work.write("signed.bin", &challenge.signed_bytes(), 0o644);
    let out = python(
        &work,
        r#"
import sys, base64
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
d = sys.argv[1]
key = serialization.load_pem_private_key(open(d + "/k/private_key.pem", "rb").read(), b"our pass")
cert = x509.load_pem_x509_certificate(open(d + "/k/certificate.pem", "rb").read())
assert key.public_key().public_numbers() == cert.public_key().public_numbers()
sig = base64.b64decode(open(d + "/sig.b64").read())
cert.public_key().verify(sig, open(d + "/signed.bin", "rb").read(), ec.ECDSA(hashes.SHA256()))
print("verified", cert.subject.rfc4514_string())
"#,
    );
    assert_eq!(out.trim(), "verified CN=alice");
}
