//! The byte stream to a directory server, opened by ecpd itself (TCP with
//! TLS or StartTLS, plain TCP, or a Unix socket) and handed to ldap3 as one
//! end of a socket pair, so that the server's bytes are counted as they
//! arrive. ldap3 buffers a whole LDAP message before it decodes it, and
//! nothing in it bounds how large one may be: a hostile entry of many
//! large values would otherwise be held in memory whole before ecpd could
//! refuse it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::directory::LookupError;

/// The StartTLS extended request (RFC 4511 §4.14) as message 1: an
/// LDAPMessage holding an ExtendedRequest [APPLICATION 23] whose
/// requestName [0] is 1.3.6.1.4.1.1466.20037. ldap3 numbers its own
/// messages afresh on the secured stream, which RFC 4511 allows once this
/// one is answered.
const STARTTLS_REQUEST: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

/// The StartTLS answer is a few dozen bytes; a server that sends more
/// before TLS is refused.
const MAX_STARTTLS_RESPONSE: usize = 4096;

/// How the connection to one server is made.
pub struct Endpoint {
    target: Target,
    security: Security,
}

enum Target {
    Unix(String),
    Tcp { host: String, port: u16 },
}

enum Security {
    None,
    Tls,
    StartTls,
}

impl Endpoint {
    /// The endpoint a directory URI names: `ldapi://` (a percent-encoded
    /// socket path), `ldaps://` (TLS), `ldap://` (StartTLS unless
    /// `plain`).
    pub fn parse(uri: &str, plain: bool) -> Result<Endpoint, String> {
        let url = url::Url::parse(uri).map_err(|e| format!("{uri}: {e}"))?;
        let host = url.host_str().unwrap_or_default();
        let tcp = |default_port| Target::Tcp {
            // An IPv6 literal comes bracketed.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: url.port().unwrap_or(default_port),
        };
        let (target, security) = match url.scheme() {
            "ldapi" => {
                let path = percent_encoding::percent_decode_str(host)
                    .decode_utf8()
                    .map_err(|e| format!("{uri}: {e}"))?
                    .into_owned();
                (Target::Unix(path), Security::None)
            }
            "ldaps" => (tcp(636), Security::Tls),
            "ldap" if plain => (tcp(389), Security::None),
            "ldap" => (tcp(389), Security::StartTls),
            other => return Err(format!("{uri}: no such scheme as {other}")),
        };
        if let Target::Tcp { host, .. } = &target {
            if host.is_empty() {
                return Err(format!("{uri}: no host"));
            }
        }
        Ok(Endpoint { target, security })
    }

    /// Connects (and secures) the stream to the server; gives back the end
    /// ldap3 reads from, as a Unix socket for `ldapi:///`, with the relay
    /// that copies between the two running on the runtime. The server may
    /// send at most `limit` bytes in all: past that the relay cuts both
    /// ends and [`Relay::was_cut`] says so.
    pub async fn open(
        &self,
        tls: Arc<rustls::ClientConfig>,
        limit: usize,
    ) -> Result<(std::os::unix::net::UnixStream, Relay), LookupError> {
        let unreachable = |e: std::io::Error| LookupError::Unreachable(e.to_string());
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(unreachable)?;
        ours.set_nonblocking(true).map_err(unreachable)?;
        let ours = tokio::net::UnixStream::from_std(ours).map_err(unreachable)?;
        let cut = Arc::new(AtomicBool::new(false));
        let task = match &self.target {
            Target::Unix(path) => {
                let server = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                tokio::spawn(relay(server, ours, limit, cut.clone()))
            }
            Target::Tcp { host, port } => {
                let mut server = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(unreachable)?;
                match self.security {
                    Security::None => tokio::spawn(relay(server, ours, limit, cut.clone())),
                    Security::Tls | Security::StartTls => {
                        if matches!(self.security, Security::StartTls) {
                            start_tls(&mut server).await?;
                        }
                        let name = server_name(host)?;
                        let secured = tokio_rustls::TlsConnector::from(tls)
                            .connect(name, server)
                            .await
                            .map_err(|e| LookupError::Unreachable(tls_error(&e)))?;
                        tokio::spawn(relay(secured, ours, limit, cut.clone()))
                    }
                }
            }
        };
        Ok((theirs, Relay { task, cut }))
    }
}

/// The copying between ldap3 and the server; dropping it ends it.
pub struct Relay {
    task: tokio::task::JoinHandle<()>,
    cut: Arc<AtomicBool>,
}

impl Relay {
    /// Whether the server sent more than the limit (and was cut off).
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies requests to the server as they come, and the server's bytes
/// back while they stay within `limit`; ends both ways when either side
/// closes or the limit is passed.
async fn relay<S>(server: S, ours: tokio::net::UnixStream, limit: usize, cut: Arc<AtomicBool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_server, mut to_server) = tokio::io::split(server);
    let (mut from_ldap3, mut to_ldap3) = ours.into_split();
    let requests = tokio::io::copy(&mut from_ldap3, &mut to_server);
    let answers = async {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        loop {
            let n = from_server.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            total = total.saturating_add(n);
            if total > limit {
                cut.store(true, Ordering::SeqCst);
                return Ok(());
            }
            to_ldap3.write_all(&buffer[..n]).await?;
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}

/// Asks the server to start TLS on `stream` and reads its answer: only a
/// success lets the TLS handshake begin; anything else means no
/// connection (there is no falling back to plain text).
async fn start_tls(stream: &mut tokio::net::TcpStream) -> Result<(), LookupError> {
    let failed = |why: String| LookupError::Unreachable(format!("StartTLS: {why}"));
    stream
        .write_all(STARTTLS_REQUEST)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match lber::parse::parse_tag(&answer) {
            Ok(([], tag)) => {
                return match starttls_result_code(tag) {
                    Some(0) => Ok(()),
                    Some(code) => Err(failed(format!("the server answered result code {code}"))),
                    None => Err(failed(
                        "the server's answer is not an extended response".into(),
                    )),
                };
            }
            Ok(_) => return Err(failed("the server sent more than its answer".into())),
            Err(lber::Err::Incomplete(_)) => {}
            Err(_) => return Err(failed("the server's answer does not parse".into())),
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            return Err(failed("the server closed the connection".into()));
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.len() > MAX_STARTTLS_RESPONSE {
            return Err(failed("the server's answer is too long".into()));
        }
    }
}

/// The resultCode of an LDAPMessage carrying an ExtendedResponse
/// [APPLICATION 24] for message 1.
fn starttls_result_code(message: lber::structure::StructureTag) -> Option<u64> {
    use lber::common::TagClass;
    let mut parts = message.match_id(16)?.expect_constructed()?.into_iter();
    let id = parts.next()?.match_id(2)?.expect_primitive()?;
    if id != [1] {
        return None;
    }
    let response = parts
        .next()?
        .match_class(TagClass::Application)?
        .match_id(24)?
        .expect_constructed()?;
    let code = response
        .into_iter()
        .next()?
        .match_id(10)?
        .expect_primitive()?;
    lber::parse::parse_uint(&code).ok().map(|(_, code)| code)
}

/// The name the server's certificate must carry: the URI's host (a DNS
/// name or an address).
fn server_name(host: &str) -> Result<ServerName<'static>, LookupError> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(address.into()));
    }
    ServerName::try_from(host.to_owned())
        .map_err(|e| LookupError::Unreachable(format!("{host} is not a usable server name: {e}")))
}

/// A TLS failure as an admin needs it: a certificate that does not verify
/// is named as such.
fn tls_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("certificate") || text.contains("Certificate") {
        format!("the server's TLS certificate was refused ({text}); check tls_ca_file and the server's name")
    } else {
        format!("TLS: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_their_endpoint() {
        let unix = Endpoint::parse("ldapi://%2Frun%2Fslapd%2Fldapi", false).unwrap();
        assert!(matches!(unix.target, Target::Unix(ref p) if p == "/run/slapd/ldapi"));
        let tls = Endpoint::parse("ldaps://ldap.example.org", false).unwrap();
        assert!(
            matches!(tls.target, Target::Tcp { ref host, port: 636 } if host == "ldap.example.org")
        );
        let start = Endpoint::parse("ldap://[::1]:3389", false).unwrap();
        assert!(matches!(start.target, Target::Tcp { ref host, port: 3389 } if host == "::1"));
        assert!(matches!(start.security, Security::StartTls));
        let plain = Endpoint::parse("ldap://10.0.0.1", true).unwrap();
        assert!(matches!(plain.security, Security::None));
        assert!(Endpoint::parse("http://example.org", false).is_err());
        assert!(Endpoint::parse("ldap://", false).is_err());
    }

    #[test]
    fn the_starttls_request_is_a_well_formed_extended_request() {
        let (rest, tag) = lber::parse::parse_tag(STARTTLS_REQUEST).unwrap();
        assert!(rest.is_empty());
        let parts = tag.match_id(16).unwrap().expect_constructed().unwrap();
        assert_eq!(parts.len(), 2);
        let request = parts[1]
            .clone()
            .match_id(23)
            .unwrap()
            .expect_constructed()
            .unwrap();
        assert_eq!(
            request[0].clone().expect_primitive().unwrap(),
            b"1.3.6.1.4.1.1466.20037"
        );
        // success, and protocolError (2), as a server answers them
        for (code, expected) in [(0u8, Some(0)), (2, Some(2))] {
            let answer = [
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, code, 0x04, 0x00, 0x04, 0x00,
            ];
            let (_, tag) = lber::parse::parse_tag(&answer).unwrap();
            assert_eq!(starttls_result_code(tag), expected);
        }
    }
}
