//! An organisation CA made and run with the openssl command line, as an
//! admin would: keys, CA certificates (root or intermediate), user
//! certificates signed from requests, revocations and CRLs.

use std::path::{Path, PathBuf};

use crate::openssl;

/// `openssl` with owned arguments.
fn run(args: &[String]) {
    openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(String::from($a)),*] };
}

/// The kind of key a CA signs with.
#[derive(Debug, Clone, Copy)]
pub enum CaKeyKind {
    P256,
    P384,
    Rsa(u32),
}

/// A CA in its own directory: `ca.key`, `ca.pem` and an `openssl ca`
/// database for revocations and CRLs.
pub struct TestCa {
    pub dir: PathBuf,
    pub name: String,
}

/// A new private key of `kind` in PEM at `out`, made by openssl.
pub fn genpkey(kind: CaKeyKind, out: &Path) {
    let (algorithm, option) = match kind {
        CaKeyKind::P256 => ("EC", "ec_paramgen_curve:P-256".to_owned()),
        CaKeyKind::P384 => ("EC", "ec_paramgen_curve:P-384".to_owned()),
        CaKeyKind::Rsa(bits) => ("RSA", format!("rsa_keygen_bits:{bits}")),
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        algorithm,
        "-pkeyopt",
        &option,
        "-out",
        out.to_str().unwrap(),
    ]);
}

impl TestCa {
    /// A self-signed root CA named `name` under `parent`/`name`.
    pub fn root(parent: &Path, name: &str, kind: CaKeyKind) -> TestCa {
        Self::root_with(parent, name, kind, "basicConstraints=critical,CA:TRUE")
    }

    /// A root "CA" whose certificate carries `constraints` (to make broken
    /// ones: CA:FALSE).
    pub fn root_with(parent: &Path, name: &str, kind: CaKeyKind, constraints: &str) -> TestCa {
        let ca = Self::empty(parent, name);
        genpkey(kind, &ca.path("ca.key"));
        run(args![
            "req",
            "-x509",
            "-new",
            "-key",
            ca.arg("ca.key"),
            "-subj",
            &format!("/O=ecp tests/CN={name}"),
            "-days",
            "30",
            "-addext",
            constraints,
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            ca.arg("ca.pem"),
        ]);
        ca
    }

    /// An intermediate CA named `name`, its certificate issued by `self`.
    pub fn intermediate(&self, name: &str, kind: CaKeyKind) -> TestCa {
        let ca = Self::empty(self.dir.parent().unwrap(), name);
        genpkey(kind, &ca.path("ca.key"));
        run(args![
            "req",
            "-new",
            "-key",
            ca.arg("ca.key"),
            "-subj",
            &format!("/O=ecp tests/CN={name}"),
            "-out",
            ca.arg("ca.csr"),
        ]);
        std::fs::write(
            ca.path("ext.cnf"),
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        self.sign_with(
            &ca.path("ca.csr"),
            &ca.path("ca.pem"),
            &ca.path("ext.cnf"),
            30,
        );
        ca
    }

    fn empty(parent: &Path, name: &str) -> TestCa {
        let dir = parent.join(name.replace(' ', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = ecp_test\n[ecp_test]\ndatabase = {0}/index.txt\n\
                 crlnumber = {0}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\n",
                dir.display()
            ),
        )
        .unwrap();
        TestCa {
            dir,
            name: name.to_owned(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn arg(&self, file: &str) -> String {
        self.path(file).to_str().unwrap().to_owned()
    }

    pub fn certificate_pem(&self) -> String {
        std::fs::read_to_string(self.path("ca.pem")).unwrap()
    }

    fn sign_with(&self, request: &Path, out: &Path, extensions: &Path, days: i64) {
        run(args![
            "x509",
            "-req",
            "-in",
            request.to_str().unwrap(),
            "-CA",
            self.arg("ca.pem"),
            "-CAkey",
            self.arg("ca.key"),
            "-CAcreateserial",
            "-CAserial",
            self.arg("ca.srl"),
            "-days",
            &days.to_string(),
            "-extfile",
            extensions.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ]);
    }

    /// Signs the PKCS#10 `request` as a user certificate (CA:FALSE,
    /// digitalSignature) valid for `days`, written to `out`.
    pub fn sign_user(&self, request: &Path, out: &Path, days: i64) {
        self.sign_user_with(
            request,
            out,
            days,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );
    }

    /// As `sign_user`, with `extensions` (an openssl extfile's text).
    pub fn sign_user_with(&self, request: &Path, out: &Path, days: i64, extensions: &str) {
        let ext = self.path("user-ext.cnf");
        std::fs::write(&ext, extensions).unwrap();
        self.sign_with(request, out, &ext, days);
    }

    /// `openssl ca` with the configuration `config` (in this CA's
    /// directory) on this CA's database, with `extra` arguments.
    fn ca_command(&self, config: &str, extra: &[&str]) {
        let mut args: Vec<String> = [
            "ca",
            "-config",
            &self.arg(config),
            "-keyfile",
            &self.arg("ca.key"),
            "-cert",
            &self.arg("ca.pem"),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        run(&args);
    }

    /// Revokes the certificate in `cert`.
    pub fn revoke(&self, cert: &Path) {
        self.ca_command("ca.cnf", &["-revoke", cert.to_str().unwrap()]);
    }

    /// A CRL made with `config`, valid for `hours`, as PEM (written to `out`).
    fn gencrl(&self, config: &str, out: &str, hours: u32) -> String {
        let out = self.path(out);
        self.ca_command(
            config,
            &[
                "-gencrl",
                "-crlhours",
                &hours.to_string(),
                "-out",
                out.to_str().unwrap(),
            ],
        );
        std::fs::read_to_string(out).unwrap()
    }

    /// As `crl`, with CRL extensions: `sections` is openssl config text
    /// defining a `[crl_ext]` section (and any it refers to).
    pub fn crl_with_extensions(&self, hours: u32, sections: &str) -> String {
        let base = std::fs::read_to_string(self.path("ca.cnf")).unwrap();
        std::fs::write(
            self.path("ca-ext.cnf"),
            format!("{base}crl_extensions = crl_ext\n{sections}"),
        )
        .unwrap();
        self.gencrl("ca-ext.cnf", "crl-ext.pem", hours)
    }

    /// A CRL of the revocations so far, valid for `hours`, as PEM.
    pub fn crl(&self, hours: u32) -> String {
        self.gencrl("ca.cnf", "crl.pem", hours)
    }
}

/// A P-256 key and PKCS#10 request for CN=`common_name` made by openssl
/// in `dir`; returns the request's path.
pub fn openssl_user_request(dir: &Path, common_name: &str) -> PathBuf {
    let key = dir.join(format!("{common_name}.key"));
    let csr = dir.join(format!("{common_name}.csr"));
    genpkey(CaKeyKind::P256, &key);
    openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        &format!("/CN={common_name}"),
        "-out",
        csr.to_str().unwrap(),
    ]);
    csr
}
