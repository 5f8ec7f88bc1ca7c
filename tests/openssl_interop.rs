//! OpenSSL reads what ecp writes, and ecp reads what OpenSSL writes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ecp_tests::{challenge_for, ecpctl, keygen, openssl, openssl_run, Workdir};

#[test]
fn openssl_decrypts_our_key_file_and_it_matches_the_certificate() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "alice", "s3cret pass");
    let key = dir.join("private_key.pem");
    let cert = dir.join("certificate.pem");
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

    let structure = openssl(&["asn1parse", "-in", key.to_str().unwrap()]);
    assert!(structure.contains(":PBES2"), "{structure}");
    assert!(structure.contains(":scrypt"), "{structure}");
    assert!(structure.contains(":aes-256-cbc"), "{structure}");

    let pub_from_key = openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-passin",
        &format!("file:{}", work.arg("alice.pass")),
        "-pubout",
    ]);
    let pub_from_cert = openssl(&["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout"]);
    assert_eq!(pub_from_key, pub_from_cert);

    let wrong = work.write("wrong.pass", b"not it\n", 0o600);
    let refused = openssl_run(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-passin",
        &format!("file:{}", wrong.display()),
        "-noout",
    ]);
    assert_ne!(refused.code, 0, "OpenSSL accepted a wrong passphrase");
}

#[test]
fn our_certificate_passes_openssl_strict_verification() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "alice", "pw");
    let cert = dir.join("certificate.pem");
    let cert = cert.to_str().unwrap();
    let out = openssl(&["verify", "-x509_strict", "-CAfile", cert, cert]);
    assert!(out.contains(": OK"), "{out}");

    let text = openssl(&["x509", "-in", cert, "-noout", "-text"]);
    assert!(text.contains("Version: 3"), "{text}");
    assert!(text.contains("Subject: CN = alice"), "{text}");
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    assert!(text.contains("prime256v1"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
}

#[test]
fn openssl_verifies_our_signature_over_the_signed_bytes() {
    let work = Workdir::new();
    let dir = keygen(&work, "alice", "alice", "pw");
    let challenge = challenge_for("alice");
    let signature = ecpctl(&[
        "sign",
        "--key",
        dir.join("private_key.pem").to_str().unwrap(),
        "--passphrase-file",
        &work.arg("alice.pass"),
        &challenge.to_token(),
    ])
    .ok();
    let der = STANDARD.decode(signature.trim()).unwrap();
    let sig = work.write("sig.der", &der, 0o644);
    let signed = work.write("signed.bin", &challenge.signed_bytes(), 0o644);
    let pubkey = openssl(&[
        "x509",
        "-in",
        dir.join("certificate.pem").to_str().unwrap(),
        "-pubkey",
        "-noout",
    ]);
    let pubkey = work.write("pub.pem", pubkey.as_bytes(), 0o644);
    let out = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        pubkey.to_str().unwrap(),
        "-signature",
        sig.to_str().unwrap(),
        signed.to_str().unwrap(),
    ]);
    assert!(out.contains("Verified OK"), "{out}");

    // The bare token bytes (without the domain prefix) must not verify.
    let bare = work.write("bare.bin", &challenge.payload(), 0o644);
    let out = openssl_run(&[
        "dgst",
        "-sha256",
        "-verify",
        pubkey.to_str().unwrap(),
        "-signature",
        sig.to_str().unwrap(),
        bare.to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0);
}

/// Makes an OpenSSL P-256 key encrypted as `openssl genpkey -aes-256-cbc`
/// does by default (PBES2, PBKDF2-SHA256 with 2,048 iterations).
fn openssl_p256_key(work: &Workdir, name: &str, passphrase: &str) {
    work.write(&format!("{name}.pass"), passphrase.as_bytes(), 0o600);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes-256-cbc",
        "-pass",
        &format!("file:{}", work.arg(&format!("{name}.pass"))),
        "-out",
        &work.arg(name),
    ]);
}

#[test]
fn we_sign_with_openssl_key_files_of_every_pbes2_flavour() {
    let work = Workdir::new();
    openssl_p256_key(&work, "pbkdf2.pem", "pw1");
    let pbkdf2 = openssl(&["asn1parse", "-in", &work.arg("pbkdf2.pem")]);
    assert!(pbkdf2.contains(":PBKDF2"), "{pbkdf2}");

    // Re-encrypt the same key with scrypt, and with AES-128 + HMAC-SHA512.
    let flavours: [(&str, &[&str]); 2] = [
        ("scrypt.pem", &["-v2", "aes-256-cbc", "-scrypt"]),
        (
            "aes128.pem",
            &["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"],
        ),
    ];
    for (name, opts) in flavours {
        let mut args = vec![
            "pkcs8", "-topk8", "-in", "", "-passin", "", "-passout", "", "-out", "",
        ];
        let input = work.arg("pbkdf2.pem");
        let passin = format!("file:{}", work.arg("pbkdf2.pem.pass"));
        let output = work.arg(name);
        args[3] = &input;
        args[5] = &passin;
        // OpenSSL reads two lines when -passin and -passout name one file.
        args[7] = "pass:pw1";
        args[9] = &output;
        args.extend_from_slice(opts);
        openssl(&args);
    }

    let pubkey = openssl(&[
        "pkey",
        "-in",
        &work.arg("pbkdf2.pem"),
        "-passin",
        &format!("file:{}", work.arg("pbkdf2.pem.pass")),
        "-pubout",
    ]);
    let pubkey =
        <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_pem(&pubkey)
            .unwrap();

    for name in ["pbkdf2.pem", "scrypt.pem", "aes128.pem"] {
        let challenge = challenge_for("alice");
        let sig = ecpctl(&[
            "sign",
            "--key",
            &work.arg(name),
            "--passphrase-file",
            &work.arg("pbkdf2.pem.pass"),
            &challenge.to_token(),
        ])
        .ok();
        challenge
            .verify(&pubkey, sig.trim())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn we_verify_openssl_signatures_including_high_s() {
    let work = Workdir::new();
    ecp_tests::ca::genpkey(ecp_tests::ca::CaKeyKind::P256, &work.path("k.pem"));
    let pubkey = openssl(&["pkey", "-in", &work.arg("k.pem"), "-pubout"]);
    let pubkey =
        <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_pem(&pubkey)
            .unwrap();

    let mut high_s_seen = 0;
    for i in 0..32 {
        let challenge = challenge_for("alice");
        let signed = work.write(&format!("m{i}"), &challenge.signed_bytes(), 0o644);
        openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            &work.arg("k.pem"),
            "-out",
            &work.arg(&format!("s{i}")),
            signed.to_str().unwrap(),
        ]);
        let der = work.read(&format!("s{i}"));
        let parsed = p256::ecdsa::Signature::from_der(&der).unwrap();
        if parsed.normalize_s() != parsed {
            high_s_seen += 1;
        }
        challenge
            .verify(&pubkey, &STANDARD.encode(&der))
            .unwrap_or_else(|e| panic!("signature {i}: {e}"));
    }
    // OpenSSL does not normalise S: over 32 signatures, some are high-S
    // (the chance of none is 2^-32), so the high-S path was exercised.
    assert!(high_s_seen > 0);
}

#[test]
fn openssl_req_certificate_is_accepted() {
    let work = Workdir::new();
    openssl_p256_key(&work, "k.pem", "pw");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", work.arg("k.pem.pass")),
        "-subj",
        "/CN=alice",
        "-days",
        "30",
        "-out",
        &work.arg("c.pem"),
    ]);
    let out = ecpctl(&["cert", "check", "--user", "alice", &work.arg("c.pem")]).ok();
    assert!(out.starts_with("OK:"), "{out}");
    let shown = ecpctl(&["cert", "show", &work.arg("c.pem")]).ok();
    let fingerprint = openssl(&[
        "x509",
        "-in",
        &work.arg("c.pem"),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let expected = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert!(shown.contains(&expected), "{shown} lacks {expected}");

    let wrong_user = ecpctl(&["cert", "check", "--user", "bob", &work.arg("c.pem")]);
    assert_eq!(wrong_user.code, 1);
    assert!(
        wrong_user.stderr.contains("not for user \"bob\""),
        "{}",
        wrong_user.stderr
    );
}

#[test]
fn foreign_certificates_are_refused_with_the_reason() {
    let work = Workdir::new();
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "P-384",
        ),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "RSA",
        ),
        ("ed25519", &["-algorithm", "ED25519"], "Ed25519"),
        (
            "k1",
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:secp256k1",
            ],
            "secp256k1",
        ),
    ];
    for (name, keyopts, expected) in cases {
        let key = work.arg(&format!("{name}.key"));
        let mut args = vec!["genpkey", "-out", &key];
        args.extend_from_slice(keyopts);
        openssl(&args);
        let cert = work.arg(&format!("{name}.crt"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=alice",
            "-days",
            "3",
            "-out",
            &cert,
        ]);
        let run = ecpctl(&["cert", "check", "--user", "alice", &cert]);
        assert_eq!(run.code, 1, "{name}");
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }

    // Two CNs in the subject.
    openssl_p256_key(&work, "k.pem", "pw");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", work.arg("k.pem.pass")),
        "-subj",
        "/CN=alice/CN=bob",
        "-days",
        "3",
        "-out",
        &work.arg("two.crt"),
    ]);
    let run = ecpctl(&["cert", "check", "--user", "alice", &work.arg("two.crt")]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("2 common names"), "{}", run.stderr);

    // A certificate for alice's name signed by someone else's key.
    openssl_p256_key(&work, "other.pem", "pw");
    openssl(&[
        "req",
        "-new",
        "-key",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", work.arg("k.pem.pass")),
        "-subj",
        "/CN=alice",
        "-out",
        &work.arg("csr"),
    ]);
    // Alice's key and name, but issued (signed) by another key.
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &work.arg("other.pem"),
        "-passin",
        &format!("file:{}", work.arg("other.pem.pass")),
        "-subj",
        "/CN=alice",
        "-days",
        "3",
        "-out",
        &work.arg("ca.crt"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &work.arg("csr"),
        "-CA",
        &work.arg("ca.crt"),
        "-CAkey",
        &work.arg("other.pem"),
        "-passin",
        &format!("file:{}", work.arg("other.pem.pass")),
        "-days",
        "3",
        "-out",
        &work.arg("issued.crt"),
    ]);
    let run = ecpctl(&["cert", "check", "--user", "alice", &work.arg("issued.crt")]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("not validly self-signed"),
        "{}",
        run.stderr
    );
}

#[test]
fn foreign_and_unsafe_key_files_are_refused_with_the_reason() {
    let work = Workdir::new();
    let pass = work.write("pass", b"pw\n", 0o600);
    let pass = pass.to_str().unwrap();
    let passarg = format!("file:{pass}");
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "p384.pem",
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-aes-256-cbc",
            ],
            "P-384",
        ),
        (
            "rsa.pem",
            &[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-aes-256-cbc",
            ],
            "RSA",
        ),
        (
            "ed.pem",
            &["-algorithm", "ED25519", "-aes-256-cbc"],
            "Ed25519",
        ),
    ];
    let token = challenge_for("alice").to_token();
    for (name, opts, expected) in cases {
        let out = work.arg(name);
        let mut args = vec!["genpkey", "-pass", &passarg, "-out", &out];
        args.extend_from_slice(opts);
        openssl(&args);
        let run = ecpctl(&["sign", "--key", &out, "--passphrase-file", pass, &token]);
        assert_eq!(run.code, 3, "{name}");
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }

    // Unencrypted PKCS#8 and legacy encrypted SEC1 name the conversion.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &work.arg("plain.pem"),
    ]);
    openssl(&[
        "ec",
        "-in",
        &work.arg("plain.pem"),
        "-aes256",
        "-passout",
        &passarg,
        "-out",
        &work.arg("legacy.pem"),
    ]);
    assert!(String::from_utf8(work.read("legacy.pem"))
        .unwrap()
        .contains("Proc-Type: 4,ENCRYPTED"));
    for (name, expected) in [("plain.pem", "unencrypted"), ("legacy.pem", "legacy")] {
        let run = ecpctl(&[
            "sign",
            "--key",
            &work.arg(name),
            "--passphrase-file",
            pass,
            &token,
        ]);
        assert_eq!(run.code, 3, "{name}");
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("openssl pkcs8 -topk8"),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn passwd_upgrades_an_openssl_key_to_scrypt_in_place() {
    let work = Workdir::new();
    openssl_p256_key(&work, "k.pem", "old pass");
    std::fs::set_permissions(
        work.path("k.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let before_pub = openssl(&[
        "pkey",
        "-in",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", work.arg("k.pem.pass")),
        "-pubout",
    ]);
    let new_pass = work.write("new.pass", b"new pass\n", 0o600);

    // Wrong current passphrase: refused, file untouched.
    let wrong = work.write("wrong.pass", b"nope\n", 0o600);
    let original = work.read("k.pem");
    let run = ecpctl(&[
        "passwd",
        "--key",
        &work.arg("k.pem"),
        "--old-passphrase-file",
        wrong.to_str().unwrap(),
        "--new-passphrase-file",
        new_pass.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    assert_eq!(work.read("k.pem"), original);

    ecpctl(&[
        "passwd",
        "--key",
        &work.arg("k.pem"),
        "--old-passphrase-file",
        &work.arg("k.pem.pass"),
        "--new-passphrase-file",
        new_pass.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(work.mode("k.pem"), 0o640);
    let structure = openssl(&["asn1parse", "-in", &work.arg("k.pem")]);
    assert!(structure.contains(":scrypt"), "{structure}");
    let after_pub = openssl(&[
        "pkey",
        "-in",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", new_pass.display()),
        "-pubout",
    ]);
    assert_eq!(before_pub, after_pub);
    let old = openssl_run(&[
        "pkey",
        "-in",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", work.arg("k.pem.pass")),
        "-noout",
    ]);
    assert_ne!(old.code, 0, "the old passphrase still opens the key");
    // No temporary files left beside the key.
    let leftovers: Vec<_> = std::fs::read_dir(work.path(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn the_readme_reference_signer_produces_signatures_we_accept() {
    let work = Workdir::new();
    openssl_p256_key(&work, "k.pem", "pw");
    let pubkey = openssl(&[
        "pkey",
        "-in",
        &work.arg("k.pem"),
        "-passin",
        &format!("file:{}", work.arg("k.pem.pass")),
        "-pubout",
    ]);
    let pubkey =
        <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_pem(&pubkey)
            .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sign-with-openssl.sh");
    // Several tokens, so that every base64 padding length occurs.
    for user in ["al", "ali", "alic", "alice"] {
        let challenge = challenge_for(user);
        let sig = ecp_tests::run(
            &script,
            &[
                &challenge.to_token(),
                &work.arg("k.pem"),
                &format!("file:{}", work.arg("k.pem.pass")),
            ],
        )
        .ok();
        challenge
            .verify(&pubkey, sig.trim())
            .unwrap_or_else(|e| panic!("{user}: {e}"));
    }
}
