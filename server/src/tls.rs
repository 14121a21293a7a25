//! TLS with rustls: the server's certificate and key (PEM files named by `[tls]`), the
//! acceptor, a self-signed pair for local use (`wasmail cert self-signed`), and [`Stream`], the
//! connection every session reads and writes — plain until STARTTLS (SMTP, IMAP) or STLS
//! (POP3) upgrades it, or TLS from the first byte on an implicit-TLS listener.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The server side of TLS: certificate chain and key, ready to accept.
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the certificate chain and the private key. Errors name the file and what is
    /// wrong with it.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("{}: cannot read the certificate", cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("{}: no certificate in the file", cert.display());
        }
        let key_der = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{}: not a PEM private key", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .with_context(|| format!("{} and {}: the key does not fit the certificate", cert.display(), key.display()))?;
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// A handshake on a fresh connection (implicit TLS), within the handshake timeout.
    pub async fn accept(&self, socket: TcpStream) -> io::Result<Stream> {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// The client side where a certificate is checked (an MTA-STS policy host, a mail exchanger
/// under an `enforce` policy): the system's roots (`/etc/ssl/certs`, as rustls-native-certs
/// finds them) and the PEM certificates of `extra` (`[queue] tls_ca_files`). Errors name the
/// file. A system store that cannot be read leaves only `extra`, with a warning.
pub fn verifying_client(extra: &[std::path::PathBuf]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if let Some(e) = native.errors.first() {
        tracing::warn!(error = %e, "cannot read all of the system's root certificates");
    }
    roots.add_parsable_certificates(native.certs);
    for file in extra {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .with_context(|| format!("{}: cannot read the certificates", file.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: not PEM certificates", file.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{}: no certificate in the file", file.display());
        for cert in certs {
            roots.add(cert).with_context(|| format!("{}: a certificate that cannot be a trust anchor", file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Writes a self-signed certificate for `names` (host names or IP addresses) and its key as
/// PEM files; the key file is readable by its owner only.
pub fn write_self_signed(names: &[String], cert: &Path, key: &Path) -> anyhow::Result<()> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec()).context("cannot make the certificate")?;
    for (path, text) in [(cert, certified.cert.pem()), (key, certified.key_pair.serialize_pem())] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, if path == key { 0o600 } else { 0o644 });
        let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
        io::Write::write_all(&mut file, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A session's connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while an upgrade is in progress, or after it failed.
    Gone,
}

impl Stream {
    /// STARTTLS/STLS: the handshake on the plain connection. The caller has already thrown
    /// away whatever the client sent before it (CVE-2011-0411).
    pub async fn start_tls(&mut self, tls: &Tls) -> io::Result<()> {
        let Stream::Plain(socket) = std::mem::replace(self, Stream::Gone) else {
            return Err(io::Error::other("TLS is already on"));
        };
        *self = tls.accept(socket).await?;
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The protocol version and cipher suite, as Received headers record them:
    /// (`TLS1.3`, `TLS13_AES_256_GCM_SHA384`).
    pub fn tls_description(&self) -> Option<(String, String)> {
        let Stream::Tls(stream) = self else { return None };
        describe(stream.get_ref().1)
    }
}

/// The TLS version and cipher suite a connection (server's or client's) runs under, as
/// trace headers and logs name them: `("TLS1.3", "TLS13_AES_256_GCM_SHA384")`.
pub fn describe(connection: &rustls::CommonState) -> Option<(String, String)> {
    let version = match connection.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => "TLS1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS1.2".to_string(),
        other => format!("{other:?}"),
    };
    let suite = connection.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    Some((version, suite))
}

/// A fresh connection as a session's stream: TLS from the first byte on an implicit-TLS
/// listener (the server checked at start that it then has a certificate), else plain.
pub async fn open(socket: TcpStream, tls: Option<&Tls>, implicit: bool) -> io::Result<Stream> {
    match (tls, implicit) {
        (Some(tls), true) => tls.accept(socket).await,
        _ => Ok(Stream::Plain(socket)),
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection was lost in a TLS upgrade")
}

impl Stream {
    /// Waits until a plain connection has octets to read, holding no buffer meanwhile. A TLS
    /// connection answers at once: rustls may hold decrypted octets the socket no longer
    /// shows, so only a read can tell.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.readable().await,
            Stream::Tls(_) | Stream::Gone => Ok(()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_loads_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        write_self_signed(&["mx.test".into(), "127.0.0.1".into()], &cert, &key).unwrap();
        Tls::load(&cert, &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad.pem"), "not pem").unwrap();
        let error = format!("{:#}", Tls::load(&dir.path().join("bad.pem"), &key).err().unwrap());
        assert!(error.contains("bad.pem"), "{error}");
        let error = format!("{:#}", Tls::load(&cert, &dir.path().join("missing.pem")).err().unwrap());
        assert!(error.contains("missing.pem"), "{error}");
        // A key of another pair does not fit.
        let (cert2, key2) = (dir.path().join("c2.pem"), dir.path().join("k2.pem"));
        write_self_signed(&["other.test".into()], &cert2, &key2).unwrap();
        let error = format!("{:#}", Tls::load(&cert, &key2).err().unwrap());
        assert!(error.contains("does not fit"), "{error}");
    }
}
