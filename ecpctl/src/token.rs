//! Keys on a hardware token, reached through PKCS#11 (a smart card, a
//! YubiKey's PIV applet through OpenSC, a TPM, SoftHSM2): the private key
//! never leaves the token and never exists in a file.
//!
//! A key is named by an RFC 7512 URI (`pkcs11:token=…;object=…`). The
//! module comes from the URI's `module-path`, `--pkcs11-module`,
//! `$ECP_PKCS11_MODULE`, or p11-kit's proxy, in that order. The PIN comes
//! from `--pin-file`, the URI's `pin-source=file:…`, or the terminal; it
//! is zeroized after the login. Tokens sign with CKM_ECDSA over a SHA-256
//! digest made here and answer raw r‖s, which becomes the DER that ecpd
//! expects; each signature is checked against the token's public key
//! before it is used.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::pkcs8::spki;
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// The environment variable naming the PKCS#11 module.
pub const MODULE_ENV: &str = "ECP_PKCS11_MODULE";

/// The most of a PIN file that is read.
const MAX_PIN_FILE_LEN: u64 = 256;

/// The DER of the P-256 curve's OID, as CKA_EC_PARAMS holds it.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// p11-kit's proxy, which loads the modules the system has registered.
pub fn default_module() -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/p11-kit-proxy.so",
        std::env::consts::ARCH
    ))
}

/// Why a token could not be used. Each has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("PKCS#11 token unavailable: {0}")]
    Unavailable(String),
    #[error("the token refused the PIN: {0}")]
    PinRefused(String),
    #[error("no usable key on the token: {0}")]
    KeyNotFound(String),
    #[error("the token failed: {0}")]
    Failed(String),
}

/// The parts of an RFC 7512 URI ecpctl uses. Values are percent-decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenUri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub module_path: Option<PathBuf>,
    pub pin_file: Option<PathBuf>,
}

fn decode(value: &str) -> Result<Vec<u8>, Failure> {
    // Every % must start a two-digit escape.
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        let escape_ok = bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if *b == b'%' && !escape_ok {
            return Err(Failure::Usage(format!(
                "bad %-escape in PKCS#11 URI value {value:?}"
            )));
        }
    }
    Ok(percent_encoding::percent_decode_str(value).collect())
}

fn decode_text(value: &str) -> Result<String, Failure> {
    String::from_utf8(decode(value)?)
        .map_err(|_| Failure::Usage(format!("PKCS#11 URI value {value:?} is not UTF-8")))
}

impl TokenUri {
    /// Parses `pkcs11:path-attributes[?query-attributes]`.
    pub fn parse<'a>(text: &'a str) -> Result<TokenUri, Failure> {
        let bad = |why: String| Failure::Usage(format!("PKCS#11 URI {text:?}: {why}"));
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("it must start with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        // NAME=VALUE pairs of one part, each name once in the whole URI.
        let mut seen = std::collections::HashSet::new();
        let mut pairs =
            |part: &'a str, separator: char| -> Result<Vec<(&'a str, &'a str)>, Failure> {
                part.split(separator)
                    .filter(|a| !a.is_empty())
                    .map(|attribute| {
                        let (name, value) = attribute
                            .split_once('=')
                            .ok_or_else(|| bad(format!("{attribute:?} is not NAME=VALUE")))?;
                        if !seen.insert(name) {
                            return Err(bad(format!("{name} is given twice")));
                        }
                        Ok((name, value))
                    })
                    .collect()
            };
        let (path_pairs, query_pairs) = (pairs(path, ';')?, pairs(query, '&')?);
        let mut uri = TokenUri::default();
        for (name, value) in path_pairs {
            match name {
                "token" => uri.token = Some(decode_text(value)?),
                "manufacturer" => uri.manufacturer = Some(decode_text(value)?),
                "serial" => uri.serial = Some(decode_text(value)?),
                "model" => uri.model = Some(decode_text(value)?),
                "object" => uri.object = Some(decode_text(value)?),
                "id" => uri.id = Some(decode(value)?),
                "slot-id" => {
                    uri.slot_id = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("slot-id {value:?} is not a number")))?,
                    )
                }
                "type" => {
                    if value != "private" {
                        return Err(bad(format!("type={value}: ecpctl signs with type=private")));
                    }
                }
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                other if other.starts_with("x-") => {}
                other => return Err(bad(format!("unknown attribute {other:?}"))),
            }
        }
        for (name, value) in query_pairs {
            match name {
                "module-path" => uri.module_path = Some(PathBuf::from(decode_text(value)?)),
                "pin-source" => {
                    let source = decode_text(value)?;
                    let file = source.strip_prefix("file:").unwrap_or(&source);
                    uri.pin_file = Some(PathBuf::from(file));
                }
                "pin-value" => {
                    return Err(bad(
                        "pin-value puts the PIN in the command line; use --pin-file or pin-source"
                            .into(),
                    ))
                }
                "module-name" => {}
                other if other.starts_with("x-") => {}
                other => return Err(bad(format!("unknown query attribute {other:?}"))),
            }
        }
        Ok(uri)
    }
}

/// Where the module and the PIN come from, besides the URI.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    pub module: Option<PathBuf>,
    pub pin_file: Option<PathBuf>,
}

/// A logged-in session on the token holding the key.
pub struct TokenKey {
    // Kept so that the module stays loaded while the session lives.
    _context: Pkcs11,
    session: Session,
    private: ObjectHandle,
    public: VerifyingKey,
    /// The token's label, for messages.
    pub token_label: String,
}

fn failed(e: cryptoki::error::Error) -> Failure {
    Failure::Token(TokenError::Failed(e.to_string()))
}

/// The module to load: --pkcs11-module, else the URI's module-path, else
/// $ECP_PKCS11_MODULE, else p11-kit's proxy. It must be an absolute path;
/// run as root, ecpctl ignores the environment and loads only a module
/// that root owns and no one else may write (an inherited environment
/// must not put a user's library into a root process).
fn module_path(uri: &TokenUri, options: &TokenOptions) -> Result<PathBuf, Failure> {
    let as_root = nix::unistd::geteuid().is_root();
    let from_env = || {
        (!as_root)
            .then(|| std::env::var_os(MODULE_ENV).map(PathBuf::from))
            .flatten()
    };
    let module = options
        .module
        .clone()
        .or_else(|| uri.module_path.clone())
        .or_else(from_env)
        .unwrap_or_else(default_module);
    if !module.is_absolute() {
        return Err(Failure::Usage(format!(
            "the PKCS#11 module must be an absolute path, not {}",
            module.display()
        )));
    }
    Ok(module)
}

/// Variables through which a library root's ecpctl loads (p11-kit's
/// proxy, OpenSC) would take its configuration, and with it more modules
/// to load, from wherever the caller points: not for root.
fn steers_modules(name: &str) -> bool {
    name.starts_with("P11_KIT")
        || matches!(
            name,
            "XDG_CONFIG_HOME" | "XDG_DATA_HOME" | "OPENSC_CONF" | "OPENSC_DRIVER"
        )
}

/// Run first thing, while ecpctl has a single thread: as root, drops the
/// variables that would let an inherited environment (`su` without `-`,
/// `sudo -E`) choose the configuration of a PKCS#11 library root loads,
/// and a HOME in a directory root does not own (p11-kit reads
/// ~/.config/pkcs11 for more modules to load).
pub fn scrub_environment_for_root() {
    use std::os::unix::fs::MetadataExt as _;
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let names: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_str().is_some_and(steers_modules))
        .collect();
    for name in names {
        std::env::remove_var(name);
    }
    // The home, or where it would be made: its first existing directory
    // must be root's alone to write, or someone else could fill it.
    let home_is_roots = std::env::var_os("HOME").is_some_and(|home| {
        Path::new(&home)
            .ancestors()
            .find_map(|dir| std::fs::metadata(dir).ok())
            .is_some_and(|meta| meta.uid() == 0 && meta.mode() & 0o022 == 0)
    });
    if !home_is_roots {
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0)) {
            Ok(Some(root)) => std::env::set_var("HOME", root.dir),
            _ => std::env::remove_var("HOME"),
        }
    }
}

/// The module as root may load it. Every step of the path as given and of
/// the path it resolves to must be root's and changeable by root alone:
/// each directory root-owned and not writable by group or others, each
/// symbolic link root-owned (Debian's p11-kit proxy is one), so no one
/// else can swap the file or anything on the way to it. The resolved file
/// is then opened without following a link, checked (a regular file root
/// owns that no one else may write) and loaded through that descriptor,
/// so the file loaded is the file checked. The file must stay open until
/// the module is loaded.
fn module_for_root(module: &Path) -> Result<(std::fs::File, PathBuf), Failure> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    use std::os::unix::io::AsRawFd as _;
    let refuse = |why: String| Failure::Token(TokenError::Unavailable(why));
    let others_may_change = |meta: &std::fs::Metadata| meta.uid() != 0 || meta.mode() & 0o022 != 0;
    let missing = || {
        refuse(format!(
            "PKCS#11 module {} does not exist (install it, or name it with --pkcs11-module)",
            module.display()
        ))
    };
    let check_steps = |path: &Path| -> Result<(), Failure> {
        let mut steps: Vec<&Path> = path.ancestors().collect();
        steps.reverse();
        for step in steps {
            let meta = std::fs::symlink_metadata(step).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    missing()
                } else {
                    refuse(format!("{}: {e}", step.display()))
                }
            })?;
            let unsafe_step = if meta.file_type().is_symlink() {
                meta.uid() != 0
            } else if meta.is_dir() {
                others_may_change(&meta)
            } else {
                step != path
            };
            if unsafe_step {
                return Err(refuse(format!(
                    "{} (on the way to {}) is not root's alone to change: root loads no PKCS#11 module from there",
                    step.display(),
                    module.display()
                )));
            }
        }
        Ok(())
    };
    check_steps(module)?;
    let resolved = module.canonicalize().map_err(|_| missing())?;
    check_steps(&resolved)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&resolved)
        .map_err(|e| {
            refuse(format!(
                "cannot open PKCS#11 module {}: {e}",
                resolved.display()
            ))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("{}: {e}", resolved.display())))?;
    if !meta.is_file() || others_may_change(&meta) {
        return Err(refuse(format!(
            "{} is not a regular file that root owns and only root may write: root loads no such module",
            resolved.display()
        )));
    }
    let by_descriptor = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    Ok((file, by_descriptor))
}

/// Loads the module and finds the token the URI names (exactly one).
fn open_token(
    uri: &TokenUri,
    options: &TokenOptions,
) -> Result<(Pkcs11, cryptoki::slot::Slot, String), Failure> {
    let module = module_path(uri, options)?;
    let (_checked, load_from) = if nix::unistd::geteuid().is_root() {
        let (file, path) = module_for_root(&module)?;
        (Some(file), path)
    } else {
        if !module.exists() {
            return Err(Failure::Token(TokenError::Unavailable(format!(
                "PKCS#11 module {} does not exist (install it, or name it with --pkcs11-module or ${MODULE_ENV})",
                module.display()
            ))));
        }
        (None, module.clone())
    };
    let context = Pkcs11::new(&load_from).map_err(|e| {
        Failure::Token(TokenError::Unavailable(format!(
            "cannot load PKCS#11 module {}: {e}",
            module.display()
        )))
    })?;
    context
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| {
            Failure::Token(TokenError::Unavailable(format!(
                "{}: {e}",
                module.display()
            )))
        })?;
    let slots = context.get_slots_with_token().map_err(failed)?;
    let mut matching = Vec::new();
    for slot in slots {
        let info = context.get_token_info(slot).map_err(failed)?;
        let fits =
            |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have.trim());
        if fits(&uri.token, info.label())
            && fits(&uri.manufacturer, info.manufacturer_id())
            && fits(&uri.serial, info.serial_number())
            && fits(&uri.model, info.model())
            && uri.slot_id.is_none_or(|id| id == slot.id())
        {
            matching.push((slot, info.label().trim().to_owned()));
        }
    }
    match matching.len() {
        1 => {
            let (slot, label) = matching.remove(0);
            Ok((context, slot, label))
        }
        0 => Err(Failure::Token(TokenError::Unavailable(format!(
            "no token matching the URI is present in {}",
            module.display()
        )))),
        n => Err(Failure::Usage(format!(
            "{n} tokens match the URI: add token= or serial= to pick one"
        ))),
    }
}

/// The PIN: from a file, or asked on the terminal without echo.
fn read_pin(uri: &TokenUri, options: &TokenOptions, label: &str) -> Result<AuthPin, Failure> {
    let file = options.pin_file.clone().or_else(|| uri.pin_file.clone());
    let pin = match file {
        Some(path) => {
            let bytes = crate::secrets::read_secret_file(&path, MAX_PIN_FILE_LEN)
                .map_err(|e| Failure::Usage(format!("PIN file {}: {e}", path.display())))?;
            let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Zeroizing::new(
                std::str::from_utf8(line)
                    .map_err(|_| Failure::Usage(format!("PIN file {}: not text", path.display())))?
                    .to_owned(),
            )
        }
        None => Zeroizing::new(
            rpassword::prompt_password(format!("PIN for token {label}: "))
                .map_err(|e| Failure::Terminal(format!("cannot read the PIN: {e}")))?,
        ),
    };
    // AuthPin is a SecretString: zeroized when dropped.
    Ok(AuthPin::new(pin.as_str().into()))
}

fn login(session: &Session, pin: &AuthPin) -> Result<(), Failure> {
    use cryptoki::error::{Error, RvError};
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => {
            let why = match &e {
                Error::Pkcs11(rv, _) => pin_problem(*rv),
                _ => None,
            };
            Err(match why {
                Some(why) => Failure::Token(TokenError::PinRefused(why.into())),
                None => failed(e),
            })
        }
    }
}

/// What a PIN-related answer of the token means, in a few words.
fn pin_problem(rv: cryptoki::error::RvError) -> Option<&'static str> {
    use cryptoki::error::RvError;
    match rv {
        RvError::PinIncorrect => Some("wrong PIN"),
        RvError::PinLocked => Some("the PIN is locked (too many wrong tries)"),
        RvError::PinExpired => Some("the PIN has expired"),
        RvError::PinLenRange | RvError::PinInvalid => Some("not a valid PIN for this token"),
        _ => None,
    }
}

/// The template that finds the URI's key objects of `class`.
fn template(uri: &TokenUri, class: ObjectClass) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class), Attribute::KeyType(KeyType::EC)];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    template
}

/// The P-256 public key of an EC public-key object.
fn public_key_of(session: &Session, object: ObjectHandle) -> Result<VerifyingKey, Failure> {
    let not_p256 = || Failure::Token(TokenError::KeyNotFound("the key is not a P-256 key".into()));
    let attributes = session
        .get_attributes(object, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(failed)?;
    let mut point = None;
    for attribute in attributes {
        match attribute {
            Attribute::EcParams(params) if params != P256_PARAMS => return Err(not_p256()),
            Attribute::EcPoint(raw) => point = Some(raw),
            _ => {}
        }
    }
    let raw = point.ok_or_else(not_p256)?;
    // CKA_EC_POINT is a DER OCTET STRING around the SEC1 point (some
    // modules give the bare point).
    let sec1 = match raw.as_slice() {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        other => other,
    };
    VerifyingKey::from_sec1_bytes(sec1).map_err(|_| not_p256())
}

impl TokenKey {
    /// Logs in to the token the URI names and finds its P-256 key.
    pub fn open(uri_text: &str, options: &TokenOptions) -> Result<TokenKey, Failure> {
        let uri = TokenUri::parse(uri_text)?;
        if uri.object.is_none() && uri.id.is_none() {
            return Err(Failure::Usage(
                "the PKCS#11 URI must name the key: object=LABEL or id=…".into(),
            ));
        }
        let (context, slot, token_label) = open_token(&uri, options)?;
        let session = context.open_ro_session(slot).map_err(failed)?;
        login(&session, &read_pin(&uri, options, &token_label)?)?;
        let (private, public) = find_pair(&session, &uri)?;
        Ok(TokenKey {
            _context: context,
            session,
            private,
            public,
            token_label,
        })
    }

    /// Makes a P-256 key pair on the token, labelled and identified as the
    /// URI says (object= is required), and logs in to use it.
    pub fn generate(uri_text: &str, options: &TokenOptions) -> Result<TokenKey, Failure> {
        let uri = TokenUri::parse(uri_text)?;
        let Some(label) = uri.object.clone() else {
            return Err(Failure::Usage(
                "name the new key with object=LABEL in the PKCS#11 URI".into(),
            ));
        };
        let (context, slot, token_label) = open_token(&uri, options)?;
        let session = context.open_rw_session(slot).map_err(failed)?;
        login(&session, &read_pin(&uri, options, &token_label)?)?;
        let label_taken = !session
            .find_objects(&template(&uri, ObjectClass::PRIVATE_KEY))
            .map_err(failed)?
            .is_empty();
        let id_taken = match &uri.id {
            Some(id) => !session
                .find_objects(&[Attribute::Id(id.clone())])
                .map_err(failed)?
                .is_empty(),
            None => false,
        };
        if label_taken || id_taken {
            return Err(Failure::Usage(format!(
                "token {token_label} already holds a key {label:?}: use --existing, or another object="
            )));
        }
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 8];
                getrandom::fill(&mut id).map_err(|e| Failure::Usage(e.to_string()))?;
                id
            }
        };
        let common = [
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id),
        ];
        let mut public_template = vec![
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Verify(true),
        ];
        public_template.extend_from_slice(&common);
        let mut private_template = vec![
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ];
        private_template.extend_from_slice(&common);
        let (public_handle, private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(failed)?;
        let public = public_key_of(&session, public_handle)?;
        Ok(TokenKey {
            _context: context,
            session,
            private,
            public,
            token_label,
        })
    }

    /// Signs `message` (hashed here with SHA-256) on the token; the raw
    /// r‖s answer is checked against the public key.
    pub fn sign_message(&self, message: &[u8]) -> Result<Signature, Failure> {
        let digest = sha2::Sha256::digest(message);
        let raw = self
            .session
            .sign(&Mechanism::Ecdsa, self.private, &digest)
            .map_err(failed)?;
        let signature = Signature::from_slice(&raw).map_err(|_| {
            Failure::Token(TokenError::Failed(format!(
                "the token answered {} bytes, not a P-256 r‖s signature",
                raw.len()
            )))
        })?;
        ecp_core::verify::p256_sha256(&self.public, message, &signature).map_err(|_| {
            Failure::Token(TokenError::Failed(
                "the token's signature does not verify with its public key".into(),
            ))
        })?;
        Ok(signature)
    }
}

/// The private key the URI names, and its public key: exactly one pair.
fn find_pair(session: &Session, uri: &TokenUri) -> Result<(ObjectHandle, VerifyingKey), Failure> {
    let privates = session
        .find_objects(&template(uri, ObjectClass::PRIVATE_KEY))
        .map_err(failed)?;
    let private = exactly_one(&privates, "EC private key", uri)?;
    // The public half shares the private key's id.
    let id = session
        .get_attributes(private, &[AttributeType::Id])
        .map_err(failed)?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id),
            _ => None,
        })
        .unwrap_or_default();
    let mut public_template = template(uri, ObjectClass::PUBLIC_KEY);
    if uri.id.is_none() {
        public_template.push(Attribute::Id(id));
    }
    let publics = session.find_objects(&public_template).map_err(failed)?;
    let public = exactly_one(&publics, "EC public key", uri)?;
    Ok((private, public_key_of(session, public)?))
}

/// The one object found; none, or several, is an error naming `what`.
fn exactly_one(
    found: &[ObjectHandle],
    what: &str,
    uri: &TokenUri,
) -> Result<ObjectHandle, Failure> {
    match found {
        [one] => Ok(*one),
        [] => Err(Failure::Token(TokenError::KeyNotFound(format!(
            "no {what} {} on the token",
            describe(uri)
        )))),
        _ => Err(Failure::Usage(format!(
            "several {what}s {} on the token: add id= to the URI",
            describe(uri)
        ))),
    }
}

fn describe(uri: &TokenUri) -> String {
    match (&uri.object, &uri.id) {
        (Some(label), _) => format!("labelled {label:?}"),
        (None, Some(id)) => format!("with id {}", ecp_core::hex::encode(id)),
        (None, None) => String::new(),
    }
}

/// The token key as the x509 builders want a signer.
impl p256::ecdsa::signature::Keypair for TokenKey {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        self.public
    }
}

impl spki::SignatureAlgorithmIdentifier for TokenKey {
    type Params = spki::der::AnyRef<'static>;

    const SIGNATURE_ALGORITHM_IDENTIFIER: spki::AlgorithmIdentifier<Self::Params> =
        <Signature as spki::AssociatedAlgorithmIdentifier>::ALGORITHM_IDENTIFIER;
}

impl p256::ecdsa::signature::Signer<DerSignature> for TokenKey {
    fn try_sign(&self, message: &[u8]) -> Result<DerSignature, p256::ecdsa::signature::Error> {
        self.sign_message(message)
            .map(|s| s.to_der())
            .map_err(p256::ecdsa::signature::Error::from_source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7512_uris_are_read_and_bad_ones_refused() {
        let uri = TokenUri::parse(
            "pkcs11:token=ecp%20test;object=alice;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("ecp test"));
        assert_eq!(uri.object.as_deref(), Some("alice"));
        assert_eq!(uri.id, Some(vec![1, 2]));
        assert_eq!(
            uri.module_path,
            Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(uri.pin_file, Some(PathBuf::from("/run/pin")));
        for bad in [
            "token=x",
            "pkcs11:token",
            "pkcs11:colour=blue",
            "pkcs11:object=a?pin-value=1234",
            "pkcs11:object=a%2",
            "pkcs11:type=secret-key",
            "pkcs11:object=a;object=b",
            "pkcs11:slot-id=x",
        ] {
            assert!(TokenUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn root_takes_no_module_configuration_from_the_environment() {
        for name in [
            "P11_KIT_SERVER_ADDRESS",
            "XDG_CONFIG_HOME",
            "OPENSC_CONF",
            "OPENSC_DRIVER",
        ] {
            assert!(steers_modules(name), "{name}");
        }
        for name in ["PATH", "SOFTHSM2_CONF", "LANG", "TERM"] {
            assert!(!steers_modules(name), "{name}");
        }
    }
}
