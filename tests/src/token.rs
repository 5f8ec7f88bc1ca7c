//! A throwaway PKCS#11 token for tests: SoftHSM2 with its store in a
//! temporary directory (SOFTHSM2_CONF points there), never the machine's.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{binary, Run};

/// Debian's SoftHSM2 module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every test token.
pub const PIN: &str = "123456";

/// An initialised token labelled `label`; its files go on drop.
pub struct TestToken {
    dir: tempfile::TempDir,
    pub label: String,
}

impl TestToken {
    pub fn new(label: &str) -> TestToken {
        let dir = tempfile::Builder::new()
            .prefix("ecp-token-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}/tokens\nobjectstore.backend = file\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).unwrap();
        std::fs::write(dir.path().join("wrong-pin"), "000000\n").unwrap();
        let token = TestToken {
            dir,
            label: label.to_owned(),
        };
        let out = token
            .command("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", "12345678"])
            .output()
            .expect("softhsm2-util (apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        token
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    pub fn wrong_pin_file(&self) -> PathBuf {
        self.dir.path().join("wrong-pin")
    }

    /// The RFC 7512 URI of the key labelled `object` on this token.
    pub fn uri(&self, object: &str) -> String {
        format!("pkcs11:token={};object={object}", self.label)
    }

    /// `program` with this token's store and SoftHSM2 as the module.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("SOFTHSM2_CONF", self.conf())
            .env("ECP_PKCS11_MODULE", SOFTHSM_MODULE);
        command
    }

    /// ecpctl with this token's environment, and no terminal.
    pub fn ecpctl(&self, args: &[&str]) -> Run {
        let ecpctl = binary("ecpctl");
        let out = self
            .command("setsid")
            .arg("--wait")
            .arg(&ecpctl)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run::from_output(&format!("ecpctl {}", args.join(" ")), out)
    }

    /// pkcs11-tool (OpenSC) on this token, logged in.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Run {
        let out = self
            .command("pkcs11-tool")
            .args(["--module", SOFTHSM_MODULE, "--login", "--pin", PIN])
            .args(["--token-label", &self.label])
            .args(args)
            .output()
            .expect("pkcs11-tool (apt-get install opensc)");
        Run::from_output(&format!("pkcs11-tool {}", args.join(" ")), out)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
