//! The SMTP client that relays queued mail to the next hop: EHLO (HELO if refused),
//! STARTTLS (RFC 3207) as `[queue] tls` says, PIPELINING, SIZE, 8BITMIME (an 8-bit body is
//! converted to quoted-printable/base64 for a peer without it), DSN parameters passed on when
//! the peer has DSN, SMTPUTF8 required when the message needs it.
//!
//! TLS with `may` and `encrypt` is opportunistic encryption (RFC 7435), as Postfix's levels
//! of those names: the next hop's certificate is not checked (most MX hosts' certificates
//! would fail a check against their MX name), the handshake's signatures are.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::spool::Envelope;
pub use crate::config::TlsLevel;
use wasmail_proto::smtp::params::encode_xtext;
pub use wasmail_proto::smtp::peer::PeerReply;
use wasmail_proto::smtp::peer::ReplyReader;

/// What became of one recipient in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken; `dsn` says whether the peer has DSN (and so took over the notices, RFC 3461 5.2).
    Accepted { reply: PeerReply, dsn: bool },
    /// 4xx, or the session broke: try again later.
    Deferred(String),
    /// 5xx: bounce, with the peer's reply.
    Rejected(PeerReply),
}

/// A session-level failure before any recipient was answered: try the next hop, or later.
#[derive(Debug)]
pub struct SessionError(pub String);

/// The TCP connection's own deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 4.5.3.2.2: the wait for DATA's 354.
const DATA_INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// RFC 5321 4.5.3.2.5: the wait for one block of the message to be taken.
const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// The message is written in blocks of this size, each within its own deadline.
const BLOCK: usize = 64 * 1024;

/// What TLS a relay session ran under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secured {
    /// TLS: its version and cipher suite, `TLS1.3 TLS13_AES_256_GCM_SHA384`.
    Tls(String),
    /// In the clear: not offered, refused, or `[queue] tls = "none"`.
    Clear,
    /// In the clear after a failed handshake (`"may"`).
    ClearAfterFailure,
}

impl Secured {
    /// The metrics label: `tls`, `clear`, `clear_after_failure`.
    pub fn label(&self) -> &'static str {
        match self {
            Secured::Tls(_) => "tls",
            Secured::Clear => "clear",
            Secured::ClearAfterFailure => "clear_after_failure",
        }
    }
}

impl std::fmt::Display for Secured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secured::Tls(used) => f.write_str(used),
            Secured::Clear => f.write_str("no TLS"),
            Secured::ClearAfterFailure => f.write_str("no TLS, the handshake failed"),
        }
    }
}

/// How long each stage of a session may take: `[queue] relay_command_timeout` and
/// `relay_data_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub command: Duration,
    pub data: Duration,
}

/// The connection: TCP, or TLS over it after STARTTLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    reader: BufReader<ReadHalf<Box<dyn Stream>>>,
    writer: WriteHalf<Box<dyn Stream>>,
    timeouts: Timeouts,
}

impl Conn {
    fn new(stream: Box<dyn Stream>, timeouts: Timeouts) -> Conn {
        let (read, writer) = tokio::io::split(stream);
        Conn { reader: BufReader::new(read), writer, timeouts }
    }

    /// STARTTLS was answered 220: the handshake, within the command timeout. Octets the
    /// peer sent after its 220 came in the clear and are not part of the TLS session: a
    /// peer that sends any is not talked to further (as CVE-2011-0411 is for servers).
    async fn start_tls(self, name: &str, addr: SocketAddr, connector: &tokio_rustls::TlsConnector) -> Result<(Conn, String), Opening> {
        if !self.reader.buffer().is_empty() {
            return Err(Opening::TlsFailed("the next hop sent more after its reply to STARTTLS".into(), "validation-failure"));
        }
        let timeouts = self.timeouts;
        let stream = self.reader.into_inner().unsplit(self.writer);
        let server_name = rustls::pki_types::ServerName::try_from(name.trim_end_matches('.').to_string())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
        let tls = tokio::time::timeout(timeouts.command, connector.connect(server_name, stream))
            .await
            .map_err(|_| Opening::TlsFailed(format!("TLS handshake: no answer within {} s", timeouts.command.as_secs()), "validation-failure"))?
            .map_err(|e| Opening::TlsFailed(format!("TLS handshake: {e}"), result_type(&e)))?;
        let used = crate::tls::describe(tls.get_ref().1).map_or_else(|| "TLS".to_string(), |(version, suite)| format!("{version} {suite}"));
        Ok((Conn::new(Box::new(tls), timeouts), used))
    }

    /// A reply to a command (or the greeting), within the command timeout.
    async fn read_reply(&mut self) -> Result<PeerReply, SessionError> {
        self.read_reply_within(self.timeouts.command).await
    }

    /// A whole reply within `limit`: the deadline is for the reply, not for each line, so a
    /// peer that drips a byte at a time cannot hold the session for longer. Lines and the
    /// whole reply are bounded as the bytes arrive.
    async fn read_reply_within(&mut self, limit: Duration) -> Result<PeerReply, SessionError> {
        tokio::time::timeout(limit, self.read_reply_unbounded_in_time())
            .await
            .map_err(|_| SessionError(format!("no whole reply within {} s", limit.as_secs())))?
    }

    /// The reply, the bounds of `ReplyReader` checked on what the buffer holds before
    /// anything is copied.
    async fn read_reply_unbounded_in_time(&mut self) -> Result<PeerReply, SessionError> {
        let mut reader = ReplyReader::default();
        loop {
            let available = self.reader.fill_buf().await.map_err(|e| SessionError(format!("reading a reply: {e}")))?;
            if available.is_empty() {
                return Err(SessionError("the connection closed".into()));
            }
            let (used, reply) = reader.push(available).map_err(SessionError)?;
            self.reader.consume(used);
            if let Some(reply) = reply {
                return Ok(reply);
            }
        }
    }

    /// A command, within the command timeout.
    async fn send(&mut self, data: &[u8]) -> Result<(), SessionError> {
        tokio::time::timeout(self.timeouts.command, self.writer.write_all(data))
            .await
            .map_err(|_| SessionError("timeout sending".into()))?
            .map_err(|e| SessionError(format!("sending: {e}")))
    }

    /// The message, block by block, each within RFC 5321's 3 minutes (or the data timeout
    /// if shorter).
    async fn send_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
        let limit = DATA_BLOCK_TIMEOUT.min(self.timeouts.data);
        for block in data.chunks(BLOCK) {
            tokio::time::timeout(limit, self.writer.write_all(block))
                .await
                .map_err(|_| SessionError(format!("the peer took no data for {} s", limit.as_secs())))?
                .map_err(|e| SessionError(format!("sending: {e}")))?;
        }
        Ok(())
    }
}

/// The next hop: its name (an MX host's, or a route's) and one of its addresses.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub name: &'a str,
    pub addr: SocketAddr,
}

/// Relays `content` for the recipients `targets` (indexes into `envelope.recipients`) over
/// one SMTP session with the peer, with TLS as `tls` says. Returns one outcome per target,
/// in order, and the TLS the session ran under.
pub async fn relay(
    peer: Peer<'_>,
    helo: &str,
    security: Security<'_>,
    timeouts: Timeouts,
    envelope: &Envelope,
    targets: &[usize],
    content: &[u8],
) -> Result<(Vec<Outcome>, Secured), Failure> {
    let (tls, connector) = match security {
        Security::Level(level) => (level, opportunistic()),
        Security::Verified(connector) => (TlsLevel::Encrypt, connector),
    };
    let (mut c, ehlo, used) = match open(peer, helo, tls, connector, timeouts).await {
        // `may`: a handshake that failed (or a peer that broke off after it) is not a
        // reason to keep the mail; the same address again, in the clear.
        Err(Opening::TlsFailed(e, _)) if tls == TlsLevel::May => {
            tracing::info!(hop = peer.name, addr = %peer.addr, error = e, "TLS with the next hop failed; relaying in the clear");
            let (c, ehlo, _) = open(peer, helo, TlsLevel::None, connector, timeouts).await.map_err(Opening::into_failure)?;
            (c, ehlo, Secured::ClearAfterFailure)
        }
        opened => opened.map_err(Opening::into_failure)?,
    };
    let outcomes = transfer(&mut c, &ehlo, envelope, targets, content).await.map_err(|error| Failure { error, tls: None })?;
    Ok((outcomes, used))
}

/// What a relay session must do about TLS.
#[derive(Clone, Copy)]
pub enum Security<'a> {
    /// `[queue] tls`: opportunistic, the certificate not checked.
    Level(TlsLevel),
    /// STARTTLS with a certificate valid for the next hop's name (this connector checks
    /// it), or no delivery: an MTA-STS `enforce` policy.
    Verified(&'a tokio_rustls::TlsConnector),
}

/// Why a session could not be opened.
enum Opening {
    /// No TLS where it was tried or required: the error, and its RFC 8460 result type
    /// (`starttls-not-supported`, `certificate-host-mismatch`, ...).
    TlsFailed(String, &'static str),
    Other(SessionError),
}

impl Opening {
    fn into_failure(self) -> Failure {
        match self {
            Opening::TlsFailed(e, kind) => Failure { error: SessionError(e), tls: Some(kind) },
            Opening::Other(error) => Failure { error, tls: None },
        }
    }
}

/// Why a relay session delivered nothing: the error, and, when TLS was the reason, its
/// RFC 8460 result type (for the TLS reports).
#[derive(Debug)]
pub struct Failure {
    pub error: SessionError,
    pub tls: Option<&'static str>,
}

/// The RFC 8460 4.3 result type of a failed handshake.
fn result_type(e: &std::io::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => "certificate-host-mismatch",
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => "certificate-expired",
            C::UnknownIssuer | C::BadSignature | C::Revoked => "certificate-not-trusted",
            _ => "validation-failure",
        },
        _ => "validation-failure",
    }
}

impl From<SessionError> for Opening {
    fn from(e: SessionError) -> Opening {
        Opening::Other(e)
    }
}

/// Connects, reads the greeting and says EHLO (HELO if refused); with `tls` not `none` and
/// STARTTLS offered, starts TLS and says EHLO again. The connection, the EHLO reply that
/// counts, and the TLS it runs under.
async fn open(
    peer: Peer<'_>,
    helo: &str,
    tls: TlsLevel,
    connector: &tokio_rustls::TlsConnector,
    timeouts: Timeouts,
) -> Result<(Conn, Ehlo, Secured), Opening> {
    let addr = peer.addr;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| SessionError(format!("connecting to {addr}: timeout")))?
        .map_err(|e| SessionError(format!("connecting to {addr}: {e}")))?;
    let mut c = Conn::new(Box::new(stream), timeouts);
    let greeting = c.read_reply().await?;
    if greeting.code / 100 != 2 {
        return Err(SessionError(format!("greeting: {}", greeting.text())).into());
    }
    let ehlo = hello(&mut c, helo).await?;
    if tls == TlsLevel::None {
        return Ok((c, ehlo, Secured::Clear));
    }
    if !ehlo.has("STARTTLS") {
        if tls == TlsLevel::Encrypt {
            let _ = c.send(b"QUIT\r\n").await;
            return Err(SessionError(
                "the next hop does not offer STARTTLS, which is required ([queue] tls = \"encrypt\" or an MTA-STS policy)".into(),
            )
            .into());
        }
        return Ok((c, ehlo, Secured::Clear));
    }
    c.send(b"STARTTLS\r\n").await?;
    let reply = c.read_reply().await?;
    if reply.code != 220 {
        // Refused: no TLS on this connection; `may` goes on in the clear on it.
        if tls == TlsLevel::Encrypt {
            let _ = c.send(b"QUIT\r\n").await;
            return Err(Opening::TlsFailed(format!("STARTTLS refused: {}", reply.text()), "starttls-not-supported"));
        }
        return Ok((c, ehlo, Secured::Clear));
    }
    let (mut c, used) = c.start_tls(peer.name, addr, connector).await?;
    // RFC 3207 4.2: what the peer said before TLS is forgotten; EHLO again.
    let ehlo = hello(&mut c, helo).await.map_err(|SessionError(e)| Opening::TlsFailed(format!("after STARTTLS: {e}"), "validation-failure"))?;
    Ok((c, ehlo, Secured::Tls(used)))
}

/// The reply to EHLO (or to HELO, when EHLO was refused), and whether it was EHLO's.
struct Ehlo {
    reply: PeerReply,
    extended: bool,
}

impl Ehlo {
    /// Whether the peer lists an extension keyword.
    fn has(&self, keyword: &str) -> bool {
        self.extended && self.reply.lines.iter().skip(1).any(|l| l.split_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case(keyword)))
    }
}

async fn hello(c: &mut Conn, helo: &str) -> Result<Ehlo, SessionError> {
    c.send(format!("EHLO {helo}\r\n").as_bytes()).await?;
    let reply = c.read_reply().await?;
    if reply.code / 100 == 2 {
        return Ok(Ehlo { reply, extended: true });
    }
    c.send(format!("HELO {helo}\r\n").as_bytes()).await?;
    let reply = c.read_reply().await?;
    if reply.code / 100 != 2 {
        return Err(SessionError(format!("HELO: {}", reply.text())));
    }
    Ok(Ehlo { reply, extended: false })
}

/// The client's TLS: every protocol version and cipher suite rustls has, any certificate
/// (see the module's text), signatures checked.
fn opportunistic() -> &'static tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("ring offers the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    })
}

/// Takes any certificate (opportunistic TLS, RFC 7435), and checks that the peer holds its
/// key: the handshake's signatures are verified as usual.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One transaction on an open session: MAIL, RCPT, DATA, QUIT.
async fn transfer(c: &mut Conn, ehlo: &Ehlo, envelope: &Envelope, targets: &[usize], content: &[u8]) -> Result<Vec<Outcome>, SessionError> {
    let timeouts = c.timeouts;
    let has = |keyword: &str| ehlo.has(keyword);
    let (pipelining, eight_bit_mime, dsn, smtputf8) = (has("PIPELINING"), has("8BITMIME"), has("DSN"), has("SMTPUTF8"));

    // The trace field Return-Path is added at final delivery (RFC 5321 4.4), not relayed.
    let content = strip_return_path(content);
    let header_end = content.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(content.len());
    let needs_utf8 =
        !content[..header_end].is_ascii() || !envelope.sender.is_ascii() || targets.iter().any(|&i| !envelope.recipients[i].address.is_ascii());
    if needs_utf8 && !smtputf8 {
        let _ = c.send(b"QUIT\r\n").await;
        let reply = PeerReply { code: 553, lines: vec!["5.6.7 the next hop does not support SMTPUTF8, which this message needs".into()] };
        return Ok(targets.iter().map(|_| Outcome::Rejected(reply.clone())).collect());
    }
    let eight_bit = !content.is_ascii();
    let body: std::borrow::Cow<[u8]> = if eight_bit && !eight_bit_mime {
        // RFC 6152 3: convert to 7 bits for a peer without 8BITMIME.
        std::borrow::Cow::Owned(wasmail_mime::rewrite::downgrade_8bit(content))
    } else {
        std::borrow::Cow::Borrowed(content)
    };

    let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
    if has("SIZE") {
        mail.push_str(&format!(" SIZE={}", body.len()));
    }
    if eight_bit && eight_bit_mime {
        mail.push_str(" BODY=8BITMIME");
    }
    if needs_utf8 {
        mail.push_str(" SMTPUTF8");
    }
    if dsn {
        if let Some(ret) = &envelope.ret {
            mail.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = &envelope.envid {
            // Re-encoded: the value is kept decoded (RFC 3461 4.4).
            mail.push_str(&format!(" ENVID={}", encode_xtext(envid)));
        }
    }
    mail.push_str("\r\n");
    let rcpts: Vec<String> = targets
        .iter()
        .map(|&i| {
            let r = &envelope.recipients[i];
            let mut line = format!("RCPT TO:<{}>", r.address);
            if dsn {
                if let Some(notify) = &r.notify {
                    line.push_str(&format!(" NOTIFY={}", notify.join(",")));
                }
                if let Some(orcpt) = &r.orcpt {
                    line.push_str(&format!(" ORCPT={}", encode_xtext(orcpt)));
                }
            }
            line.push_str("\r\n");
            line
        })
        .collect();

    // MAIL, every RCPT and DATA in one write with PIPELINING (RFC 2920), else one at a time.
    let mut rcpt_replies = Vec::new();
    let mail_reply;
    if pipelining {
        let mut batch = mail.clone();
        rcpts.iter().for_each(|r| batch.push_str(r));
        batch.push_str("DATA\r\n");
        c.send(batch.as_bytes()).await?;
        mail_reply = c.read_reply().await?;
        for _ in &rcpts {
            rcpt_replies.push(c.read_reply().await?);
        }
    } else {
        c.send(mail.as_bytes()).await?;
        mail_reply = c.read_reply().await?;
        if mail_reply.code / 100 == 2 {
            for r in &rcpts {
                c.send(r.as_bytes()).await?;
                rcpt_replies.push(c.read_reply().await?);
            }
        }
    }
    if mail_reply.code / 100 != 2 {
        if pipelining {
            // The pipelined DATA is answered too (503 or 554).
            let _ = c.read_reply().await;
        }
        let _ = c.send(b"QUIT\r\n").await;
        return Ok(targets.iter().map(|_| refusal(&mail_reply)).collect());
    }
    let accepted: Vec<bool> = rcpt_replies.iter().map(|r| r.code / 100 == 2).collect();
    let data_init = DATA_INIT_TIMEOUT.min(timeouts.command);
    let data_reply = if pipelining {
        Some(c.read_reply_within(data_init).await?)
    } else if accepted.iter().any(|&a| a) {
        c.send(b"DATA\r\n").await?;
        Some(c.read_reply_within(data_init).await?)
    } else {
        None
    };
    // Until the end of data, an accepted recipient is not delivered: a broken session defers it.
    let mut outcomes: Vec<Outcome> =
        rcpt_replies.iter().map(|r| if r.code / 100 == 2 { Outcome::Deferred("no reply to the end of data".into()) } else { refusal(r) }).collect();
    match data_reply {
        Some(reply) if reply.code == 354 && accepted.iter().any(|&a| a) => {
            c.send_data(&dot_stuff(&body)).await?;
            let final_reply = c.read_reply_within(timeouts.data).await?;
            for (i, ok) in accepted.iter().enumerate() {
                if *ok {
                    outcomes[i] = match final_reply.code / 100 {
                        2 => Outcome::Accepted { reply: final_reply.clone(), dsn },
                        _ => refusal(&final_reply),
                    };
                }
            }
        }
        Some(reply) if reply.code == 354 => {
            // No recipient accepted but the peer wants the data: end it empty.
            c.send(b".\r\n").await?;
            let _ = c.read_reply().await;
        }
        Some(reply) => {
            for (i, ok) in accepted.iter().enumerate() {
                if *ok {
                    outcomes[i] = refusal(&reply);
                }
            }
        }
        None => {}
    }
    let _ = c.send(b"QUIT\r\n").await;
    Ok(outcomes)
}

/// A non-2xx reply as an outcome: 5xx rejects, anything else defers.
fn refusal(reply: &PeerReply) -> Outcome {
    match reply.code / 100 {
        5 => Outcome::Rejected(reply.clone()),
        _ => Outcome::Deferred(reply.text()),
    }
}

pub(super) fn strip_return_path(content: &[u8]) -> &[u8] {
    if content.len() >= 12 && content[..12].eq_ignore_ascii_case(b"Return-Path:") {
        if let Some(end) = content.windows(2).position(|w| w == b"\r\n") {
            return &content[end + 2..];
        }
    }
    content
}

/// The content as DATA sends it: dot-stuffed and ended with CRLF.CRLF.
fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    wasmail_proto::dot::dot_stuff_into(&mut out, content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmail_proto::reply::codes;

    #[test]
    fn replies_carry_their_status() {
        let r = PeerReply { code: 550, lines: vec!["5.1.1 <x@y>: user unknown".into()] };
        assert_eq!((r.status(), r.text()), (codes::BAD_DEST_MAILBOX, "550 5.1.1 <x@y>: user unknown".to_string()));
        assert_eq!(PeerReply { code: 451, lines: vec!["try later".into()] }.status(), codes::TEMP_OTHER);
        assert_eq!(PeerReply { code: 550, lines: vec!["4.1.1 mismatch".into()] }.status(), codes::OTHER);
    }

    #[test]
    fn content_is_dot_stuffed_and_stripped_of_return_path() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n..c"), b"..a\r\nb\r\n...c\r\n.\r\n");
        assert_eq!(strip_return_path(b"Return-Path: <a@b>\r\nReceived: x\r\n"), b"Received: x\r\n");
        assert_eq!(encode_xtext("rfc822;a+b=c@d"), "rfc822;a+2Bb+3Dc@d");
    }
}
