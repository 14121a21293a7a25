//! The connection layer SMTP, POP3 and IMAP sessions share. A session parses and answers; a
//! [`Connection`] owns everything between it and the socket:
//!
//! - the input buffer: octets read and not yet consumed by the protocol's parser, with a
//!   bound on what may wait unconsumed (`max_pending`, the protocol's longest unit plus one
//!   read), checked before each read;
//! - the output buffer, written out when the session waits for the client and, for long
//!   replies (RETR, FETCH), whenever it passes [`FLUSH_AT`]: the write waits for the client
//!   to read, so a client that sends commands and never reads the answers stops its session
//!   instead of growing it (back-pressure);
//! - the deadlines: one read within the idle time, a command line complete within the line
//!   time of its first byte (a client dripping a byte at a time is cut off like an idle one),
//!   the whole session within an optional maximum, and the server's shutdown;
//! - the STARTTLS/STLS upgrade, which throws away whatever the client sent after the command
//!   in the clear (CVE-2011-0411) before the handshake;
//! - IMAP's COMPRESS=DEFLATE (`deflate`): output compressed as it is written, input inflated
//!   a read's worth at a time, so the limits above hold for what the session sees.
//!
//! `accept` is the listener loop that makes the connections.

pub mod accept;
mod deflate;

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::lifecycle::{reached, Stage};
use crate::tls::{Stream, Tls};

/// Output is written out once this much waits, within a long reply.
pub const FLUSH_AT: usize = 256 * 1024;

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Octets arrived: they are in [`Connection::input`].
    Data,
    /// The client closed the connection.
    Closed,
    /// Nothing within the deadline (idle, or the line was not completed in time).
    TimedOut,
    /// The session reached its maximum length.
    SessionOver,
    /// The server is shutting down.
    ShuttingDown,
}

/// One client connection: the stream, its buffers and its deadlines.
pub struct Connection {
    stream: Stream,
    /// Read octets; those before `start` are consumed.
    input: Vec<u8>,
    start: usize,
    /// Replies not yet written.
    output: Vec<u8>,
    /// What one read takes at most: what an idle session holds.
    read_chunk: usize,
    /// Unconsumed input allowed before a read: the protocol's parser consumes everything
    /// past its own limits, so more is a defect, and the session ends rather than grow.
    max_pending: usize,
    /// When the first octet of the incomplete command in `input` arrived.
    partial_since: Option<Instant>,
    started: Instant,
    /// The session ends this long after it began (SMTP's `max_session_time`).
    max_session: Option<Duration>,
    /// The server's shutdown stage: at `Closing` a waiting read returns.
    stage: watch::Receiver<Stage>,
    /// COMPRESS=DEFLATE, once started.
    deflate: Option<Box<deflate::Deflate>>,
    /// Compressed octets just read, before they are inflated into `input`.
    raw: Vec<u8>,
}

impl Connection {
    pub fn new(stream: Stream, stage: watch::Receiver<Stage>, read_chunk: usize, max_pending: usize) -> Connection {
        Connection {
            stream,
            input: Vec::new(),
            start: 0,
            output: Vec::new(),
            read_chunk,
            max_pending,
            partial_since: None,
            started: Instant::now(),
            max_session: None,
            stage,
            deflate: None,
            raw: Vec::new(),
        }
    }

    /// Ends the session `limit` after it began, whatever the client does.
    pub fn with_max_session(mut self, limit: Duration) -> Connection {
        self.max_session = Some(limit);
        self
    }

    /// The octets read and not yet consumed.
    pub fn input(&self) -> &[u8] {
        &self.input[self.start..]
    }

    /// Marks the first `n` octets of [`Connection::input`] as consumed.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.input.len() - self.start, "consumed more than was read");
        self.start += n;
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
    }

    /// Drops all unconsumed input; returns how many octets that was.
    pub fn discard_input(&mut self) -> usize {
        let n = self.input.len() - self.start;
        self.consume(n);
        n
    }

    /// Queues octets for the client.
    pub fn send(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// The output buffer, for writers that serialize into a `Vec` (replies, dot-stuffing).
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Writes out what is queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            match &mut self.deflate {
                Some(deflate) => {
                    let compressed = deflate.deflate(&self.output)?;
                    self.stream.write_all(&compressed).await?;
                }
                None => self.stream.write_all(&self.output).await?,
            }
            self.stream.flush().await?;
            self.output.clear();
            // A long reply leaves a large buffer behind; an idle session should not keep it.
            if self.output.capacity() > FLUSH_AT * 2 {
                self.output = Vec::new();
            }
        }
        Ok(())
    }

    /// Writes out what is queued once it passes [`FLUSH_AT`]: within a long reply, and after
    /// each command of a pipelined batch. The write waits until the client takes the octets.
    pub async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.output.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Flushes the output, then reads once within `wait` (and what is left of the session).
    pub async fn read(&mut self, wait: Duration) -> io::Result<Read> {
        self.flush().await?;
        let pending = self.input.len() - self.start;
        if pending > self.max_pending {
            return Err(io::Error::other(format!("{pending} octets of input wait unconsumed, over the bound of {}", self.max_pending)));
        }
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        let session_left = self.max_session.map(|max| max.saturating_sub(self.started.elapsed()));
        let wait = session_left.map_or(wait, |left| wait.min(left));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(deflate) = &mut self.deflate {
                // Compressed input is inflated a read's worth at a time.
                match deflate.inflate_into(&mut self.input, self.read_chunk.max(1))? {
                    deflate::Inflated::Octets => return Ok(Read::Data),
                    deflate::Inflated::Ended => return Ok(Read::Closed),
                    deflate::Inflated::NeedMore => {}
                }
                if deflate.pending() > 4 * self.read_chunk.max(1) {
                    return Err(io::Error::other("compressed input that inflates to nothing"));
                }
            }
            // A session waiting for its client holds no read buffer (10,000 idle sessions
            // held 10,000 of them): the buffer is taken when octets are there to read, and
            // given back while none wait unconsumed.
            let deflating = self.deflate.is_some();
            let target = if deflating { &mut self.raw } else { &mut self.input };
            if target.is_empty() {
                *target = Vec::new();
                let ready = tokio::select! {
                    ready = tokio::time::timeout_at(deadline, self.stream.readable()) => ready,
                    _ = reached(&mut self.stage, Stage::Closing) => return Ok(Read::ShuttingDown),
                };
                match ready {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) if session_left.is_some_and(|left| left <= wait) => return Ok(Read::SessionOver),
                    Err(_) => return Ok(Read::TimedOut),
                }
            }
            // Read into spare capacity: the buffer is not zero-filled on every read. Reading
            // is cancel-safe, so IDLE may wait on it beside other events.
            let target = if deflating { &mut self.raw } else { &mut self.input };
            target.reserve(self.read_chunk);
            let room = target.capacity() - target.len();
            let mut limited = (&mut self.stream).take(room.min(self.read_chunk.max(1)) as u64);
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, limited.read_buf(target)) => read,
                _ = reached(&mut self.stage, Stage::Closing) => return Ok(Read::ShuttingDown),
            };
            match read {
                Ok(Ok(0)) => return Ok(Read::Closed),
                Ok(Ok(_)) => match &mut self.deflate {
                    Some(deflate) => {
                        deflate.take(&self.raw);
                        self.raw.clear();
                    }
                    None => return Ok(Read::Data),
                },
                Ok(Err(e)) => return Err(e),
                Err(_) if session_left.is_some_and(|left| left <= wait) => return Ok(Read::SessionOver),
                Err(_) => return Ok(Read::TimedOut),
            }
        }
    }

    /// COMPRESS=DEFLATE after its OK (RFC 4978): writes the reply uncompressed, throws away
    /// anything the client sent after the command before it saw the OK (it must not have),
    /// and compresses both ways from here on. False if compression is on already.
    pub async fn start_deflate(&mut self) -> io::Result<bool> {
        if self.deflate.is_some() {
            return Ok(false);
        }
        self.flush().await?;
        let octets = self.discard_input();
        if octets > 0 {
            tracing::warn!(octets, "discarding what the client sent after COMPRESS before the reply");
        }
        self.deflate = Some(Box::new(deflate::Deflate::new()));
        Ok(true)
    }

    pub fn is_deflating(&self) -> bool {
        self.deflate.is_some()
    }

    /// Reads for the next command: within `idle` when no command is begun, else within what
    /// is left of `line` since the command's first octet arrived. `partial` says whether the
    /// parser holds an incomplete command.
    pub async fn read_command(&mut self, idle: Duration, line: Duration, partial: bool) -> io::Result<Read> {
        let wait = if partial {
            let since = *self.partial_since.get_or_insert_with(Instant::now);
            line.saturating_sub(since.elapsed()).max(Duration::from_millis(1))
        } else {
            self.partial_since = None;
            idle
        };
        self.read(wait).await
    }

    /// A command is complete: the line deadline starts again with the next one.
    pub fn command_done(&mut self) {
        self.partial_since = None;
    }

    /// STARTTLS/STLS after its positive reply: writes the reply, throws away what the client
    /// sent after the command in the clear (with `framed_ahead`, the commands the session had
    /// already taken from the input: it must throw them away too), and runs the handshake.
    /// False when the handshake failed (logged): the session ends.
    pub async fn start_tls(&mut self, tls: &Tls, framed_ahead: usize) -> io::Result<bool> {
        self.flush().await?;
        let octets = self.discard_input();
        if octets > 0 || framed_ahead > 0 {
            tracing::warn!(octets, commands = framed_ahead, "discarding what the client sent after STARTTLS before the handshake");
        }
        self.partial_since = None;
        if let Err(e) = self.stream.start_tls(tls).await {
            tracing::info!(error = %e, "TLS handshake failed");
            return Ok(false);
        }
        tracing::info!(tls = self.tls_description().map(|(v, c)| format!("{v} {c}")).unwrap_or_default(), "TLS started");
        Ok(true)
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The TLS version and cipher suite, for Received headers.
    pub fn tls_description(&self) -> Option<(String, String)> {
        self.stream.tls_description()
    }

    /// Writes what is queued and closes the connection.
    pub async fn close(&mut self) -> io::Result<()> {
        self.flush().await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair(read_chunk: usize, max_pending: usize) -> (Connection, TcpStream, watch::Sender<Stage>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (tx, rx) = watch::channel(Stage::Running);
        (Connection::new(Stream::Plain(server), rx, read_chunk, max_pending), client, tx)
    }

    #[tokio::test]
    async fn input_is_consumed_in_place_and_bounded() {
        let (mut conn, mut client, _stage) = pair(4, 8).await;
        client.write_all(b"abcdefghij").await.unwrap();
        let mut got = Vec::new();
        while got.len() < 10 {
            assert_eq!(conn.read(Duration::from_secs(30)).await.unwrap(), Read::Data);
            assert!(conn.input().len() <= 4, "one read takes at most read_chunk");
            got.extend_from_slice(conn.input());
            let n = conn.input().len();
            conn.consume(n);
        }
        assert_eq!(got, b"abcdefghij");
        // A parser that stops consuming is caught before the input grows past its bound.
        client.write_all(b"0123456789abcdef").await.unwrap();
        let mut result = Ok(Read::Data);
        for _ in 0..10 {
            result = conn.read(Duration::from_secs(30)).await;
            if result.is_err() {
                break;
            }
        }
        assert!(result.unwrap_err().to_string().contains("over the bound of 8"));
        assert!(conn.input().len() <= 8 + 4);
    }

    #[tokio::test]
    async fn a_line_must_be_complete_within_its_deadline_from_its_first_octet() {
        let (mut conn, mut client, _stage) = pair(1024, 1024).await;
        client.write_all(b"NO").await.unwrap();
        assert_eq!(conn.read_command(Duration::from_secs(30), Duration::from_millis(300), false).await.unwrap(), Read::Data);
        let began = Instant::now();
        // Octets keep arriving, but the line deadline counts from the first one.
        let drip = tokio::spawn(async move {
            for _ in 0..100 {
                if client.write_all(b"O").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client
        });
        loop {
            match conn.read_command(Duration::from_secs(30), Duration::from_millis(300), true).await.unwrap() {
                Read::Data => assert!(began.elapsed() < Duration::from_secs(20), "the deadline never came"),
                Read::TimedOut => break,
                other => panic!("{other:?}"),
            }
        }
        drip.abort();
    }

    #[tokio::test]
    async fn shutdown_and_the_session_limit_end_a_waiting_read() {
        let (mut conn, _client, stage) = pair(1024, 1024).await;
        stage.send(Stage::Closing).unwrap();
        assert_eq!(conn.read(Duration::from_secs(60)).await.unwrap(), Read::ShuttingDown);
        let (conn, _client, _stage) = pair(1024, 1024).await;
        let mut conn = conn.with_max_session(Duration::from_millis(100));
        assert_eq!(conn.read(Duration::from_secs(60)).await.unwrap(), Read::SessionOver);
    }

    #[tokio::test]
    async fn a_full_output_is_written_before_more_is_queued() {
        let (mut conn, mut client, _stage) = pair(1024, 1024).await;
        conn.send(&vec![b'x'; FLUSH_AT - 1]);
        conn.flush_if_full().await.unwrap();
        assert_eq!(conn.output().len(), FLUSH_AT - 1, "below the bound nothing is written");
        conn.send(b"y");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut all).await.unwrap();
            all.len()
        });
        conn.flush_if_full().await.unwrap();
        assert!(conn.output().is_empty());
        conn.close().await.unwrap();
        drop(conn);
        assert_eq!(reader.await.unwrap(), FLUSH_AT);
    }
}
