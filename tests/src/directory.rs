//! A private OpenLDAP directory for tests: Debian's slapd with a
//! throwaway configuration (mdb, the stock schemas) in a temporary
//! directory, listening on its own ldapi:// socket (and a loopback port
//! when asked), never the machine's slapd. Users get `posixAccount`
//! entries with `userCertificate;binary` values, as SSSD expects them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const BASE_DN: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
const ADMIN_PASSWORD: &str = "secret";

/// A running slapd; stopped (and its files removed) on drop.
pub struct TestDirectory {
    dir: tempfile::TempDir,
    /// The ldapi:// URI of its socket.
    pub uri: String,
    /// With TLS: the loopback ports of its ldap:// (StartTLS) and
    /// ldaps:// listeners.
    pub tls_ports: Option<(u16, u16)>,
    pid: u32,
    next_uid: std::cell::Cell<u32>,
}

/// Two distinct loopback ports free right now (both held while the
/// second is picked, so they differ).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (first, second) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    (port(&first), port(&second))
}

/// Makes, in `dir`, a test CA (`ca.pem`), an unrelated CA
/// (`other-ca.pem`), and a server certificate for the name `localhost`
/// only (`server.pem`, `server.key`) issued by the first.
fn make_tls_files(dir: &Path) {
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let new_p256_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let subject = format!("/CN=ecp test directory {ca}");
        let (key, pem) = (file(&format!("{ca}.key")), file(&format!("{ca}.pem")));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
        args.extend(new_p256_key);
        args.extend(["-keyout", &key, "-out", &pem]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        crate::openssl(&args);
    }
    let (key, csr, ext) = (file("server.key"), file("server.csr"), file("server.ext"));
    let mut args = vec![
        "req",
        "-new",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &csr,
    ];
    args.extend(new_p256_key);
    crate::openssl(&args);
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let (ca, ca_key, out) = (file("ca.pem"), file("ca.key"), file("server.pem"));
    crate::openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &ext,
        "-out",
        &out,
    ]);
}

impl TestDirectory {
    /// Starts slapd with an empty tree under [`BASE_DN`].
    pub fn start() -> TestDirectory {
        Self::start_with(false)
    }

    /// As [`start`](Self::start), also listening on loopback with TLS
    /// (a certificate for `localhost` from the test CA in
    /// [`tls_file`](Self::tls_file)`("ca.pem")`).
    pub fn start_tls() -> TestDirectory {
        Self::start_with(true)
    }

    /// A file made for the TLS listeners: `ca.pem` (the CA that issued
    /// the server's certificate) or `other-ca.pem` (one that did not).
    pub fn tls_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_with(tls: bool) -> TestDirectory {
        let dir = tempfile::Builder::new()
            .prefix("ecp-ldap-")
            .tempdir()
            .unwrap();
        let path = dir.path();
        std::fs::create_dir(path.join("db")).unwrap();
        let tls_settings = if tls {
            make_tls_files(path);
            format!(
                "TLSCACertificateFile {0}/ca.pem\nTLSCertificateFile {0}/server.pem\n\
                 TLSCertificateKeyFile {0}/server.key\n",
                path.display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {0}/slapd.pid\n\
             {tls_settings}\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 268435456\n\
             index objectClass,uid eq\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {0}/db\n",
            path.display()
        );
        std::fs::write(path.join("slapd.conf"), config).unwrap();
        let socket = path.join("ldapi");
        let uri = format!("ldapi://{}", socket.to_str().unwrap().replace('/', "%2F"));
        let tls_ports = tls.then(free_ports);
        let mut listeners = uri.clone();
        if let Some((plain, tls)) = tls_ports {
            listeners.push_str(&format!(
                " ldap://127.0.0.1:{plain}/ ldaps://127.0.0.1:{tls}/"
            ));
        }
        let status = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(path.join("slapd.conf"))
            .args(["-h", &listeners])
            .stderr(std::fs::File::create(path.join("slapd.log")).unwrap())
            .status()
            .expect("start slapd (apt-get install slapd)");
        if !status.success() {
            let kept = dir.keep();
            panic!(
                "slapd did not start; its files are kept in {}",
                kept.display()
            );
        }
        assert!(
            status.success(),
            "slapd did not start ({listeners}, {}): {}",
            path.display(),
            std::fs::read_to_string(path.join("slapd.log")).unwrap_or_default()
        );
        let pid_file = path.join("slapd.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(socket.exists() && pid_file.exists()) {
            assert!(Instant::now() < deadline, "slapd did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket can exist a moment before slapd answers on it (seen
        // once under load: the first ldapadd failed); ask until it does.
        while !Command::new("/usr/bin/ldapsearch")
            .args(["-x", "-H", &uri, "-b", "", "-s", "base", "-LLL", "1.1"])
            .output()
            .is_ok_and(|out| out.status.success())
        {
            assert!(Instant::now() < deadline, "slapd does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let directory = TestDirectory {
            dir,
            uri,
            tls_ports,
            pid,
            next_uid: std::cell::Cell::new(20_000),
        };
        directory.modify(&format!(
            "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n"
        ), true);
        directory
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The DN of `user`'s entry.
    pub fn user_dn(user: &str) -> String {
        format!("uid={user},ou=people,{BASE_DN}")
    }

    /// Runs ldapadd (`add`) or ldapmodify with `ldif` as the admin.
    pub fn modify(&self, ldif: &str, add: bool) {
        let tool = if add { "ldapadd" } else { "ldapmodify" };
        // From a file, not a pipe: a big LDIF on stdin would deadlock
        // against the tool's own output filling the other pipe.
        let file = self.dir.path().join("change.ldif");
        std::fs::write(&file, ldif).unwrap();
        let out = Command::new(format!("/usr/bin/{tool}"))
            .args([
                "-x",
                "-H",
                &self.uri,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds a posixAccount entry for `user` with these certificates (DER).
    pub fn add_user(&self, user: &str, certificates: &[Vec<u8>]) {
        self.add_user_with(user, "userCertificate;binary", certificates);
    }

    /// Adds a posixAccount entry for `user` with these values of
    /// `attribute` (slapd checks userCertificate values' syntax; an
    /// attribute of binary syntax such as userPKCS12 takes any bytes).
    pub fn add_user_with(&self, user: &str, attribute: &str, values: &[Vec<u8>]) {
        let uid = self.next_uid.get();
        self.next_uid.set(uid + 1);
        let mut ldif = format!(
            "dn: {}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {user}\n\
             cn: {user}\nsn: {user}\nuidNumber: {uid}\ngidNumber: {uid}\nhomeDirectory: /home/{user}\n",
            Self::user_dn(user)
        );
        for value in values {
            ldif.push_str(&format!(
                "{attribute}:< file://{}\n",
                self.der_file(value).display()
            ));
        }
        self.modify(&ldif, true);
    }

    /// Adds many users at once (one ldapadd), each with one certificate:
    /// how a benchmark fills the directory.
    pub fn add_users(&self, users: &[(String, Vec<u8>)]) {
        use base64::Engine as _;
        let mut ldif = String::new();
        for (user, der) in users {
            let uid = self.next_uid.get();
            self.next_uid.set(uid + 1);
            ldif.push_str(&format!(
                "dn: {}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {user}\n\
                 cn: {user}\nsn: {user}\nuidNumber: {uid}\ngidNumber: {uid}\n\
                 homeDirectory: /home/{user}\nuserCertificate;binary:: {}\n\n",
                Self::user_dn(user),
                base64::engine::general_purpose::STANDARD.encode(der)
            ));
        }
        self.modify(&ldif, true);
    }

    /// Removes one certificate value from `user`'s entry.
    pub fn remove_certificate(&self, user: &str, der: &[u8]) {
        self.modify(
            &format!(
                "dn: {}\nchangetype: modify\ndelete: userCertificate;binary\nuserCertificate;binary:< file://{}\n",
                Self::user_dn(user),
                self.der_file(der).display()
            ),
            false,
        );
    }

    /// A file holding `der`, for ldif `:<` references.
    fn der_file(&self, der: &[u8]) -> PathBuf {
        let name = ecp_core::certificate::fingerprint_of_der(der);
        let path = self.dir.path().join(format!("{name}.der"));
        std::fs::write(&path, der).unwrap();
        path
    }

    /// The DER values of `user`'s certificate attribute, read back with
    /// ldapsearch (what any LDAP client sees).
    pub fn certificates_of(&self, user: &str) -> Vec<Vec<u8>> {
        let out = Command::new("/usr/bin/ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.uri,
                "-b",
                BASE_DN,
            ])
            .arg(format!("(uid={user})"))
            .arg("userCertificate;binary")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        use base64::Engine as _;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("userCertificate;binary:: "))
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            })
            .collect()
    }

    /// Stops answering (SIGSTOP), as a hung server does.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for TestDirectory {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
