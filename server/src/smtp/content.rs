//! DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030): receive the content, judge it, and queue it
//! durably before the 250. The reply to the end of data is sent only once the queue has the
//! message and its envelope on disk (files and folder fsync'd); if that fails the client gets
//! 451 4.3.0 and nothing is queued. Delivery runs from the queue after the reply.

use std::sync::Arc;

use wasmail_mime::{self as mime, header};
use wasmail_proto::smtp::{codes, Address, ContentReceiver, ContentReport, Reply, Ret};

use super::session::{Chunks, Flow, Session, Transaction};
use crate::config::{BareLineEnding, OnLimit};
use crate::plugin::{Decision, Envelope, Header, HeaderChange, Hook, MimeLimits, MimeOutcome};
use crate::queue;

impl Session {
    /// Checks that a transaction can take content now.
    fn content_allowed(&self) -> Result<(), Reply> {
        match &self.transaction {
            None => Err(Reply::new(503, codes::INVALID_COMMAND, "Need MAIL command")),
            // RFC 5321 3.3: no valid recipients may be answered 554.
            Some(t) if t.recipients.is_empty() => Err(Reply::new(554, codes::INVALID_COMMAND, "No valid recipients")),
            Some(_) => Ok(()),
        }
    }

    pub(super) async fn handle_data(&mut self) -> std::io::Result<Flow> {
        if let Err(reply) = self.content_allowed() {
            self.reply(reply);
            return Ok(self.bad_command());
        }
        let transaction = self.transaction.as_ref().expect("checked");
        if transaction.bdat.is_some() {
            return Ok(self.out_of_sequence("DATA cannot follow BDAT in one transaction"));
        }
        if transaction.params.is_binary() {
            return Ok(self.out_of_sequence("BODY=BINARYMIME needs BDAT, not DATA"));
        }
        self.reply(Reply::plain(354, "Enter mail, end with \".\" on a line by itself"));
        let smtp = &self.ctx.config.smtp;
        let mut receiver = ContentReceiver::data(smtp.max_message_size.0, smtp.max_line_length);
        let mut content = Vec::new();
        let data_timeout = smtp.data_timeout.0;
        loop {
            if let Some(used) = receiver.receive(self.conn.input(), &mut content) {
                self.conn.consume(used);
                break;
            }
            self.conn.discard_input();
            if self.fill(data_timeout).await?.is_err() {
                let queue_id = self.transaction.take().map(|t| t.queue_id);
                tracing::info!(queue_id, "connection lost or timed out during DATA; nothing stored");
                return Ok(Flow::Close);
            }
        }
        let transaction = self.transaction.take().expect("checked");
        Ok(self.complete("DATA", transaction, content, receiver.report()).await)
    }

    /// Judges, filters and stores a complete message; sends the reply; ends the transaction.
    async fn complete(&mut self, verb: &str, transaction: Transaction, content: Vec<u8>, report: &ContentReport) -> Flow {
        let (reply, flow) = self.finish(transaction, content, report).await;
        let reply = self.plugins.on_reply(verb, reply).await;
        self.reply(reply);
        self.plugins.on_reset().await;
        flow
    }

    pub(super) async fn handle_bdat(&mut self, size: u64, last: bool) -> std::io::Result<Flow> {
        // RFC 3030 2: the chunk's octets follow whatever the verdict; read them before replying.
        if let Err(reply) = self.content_allowed() {
            if !self.skip_octets(size).await? {
                return Ok(Flow::Close);
            }
            self.reply(reply);
            return Ok(self.bad_command());
        }
        let smtp = &self.ctx.config.smtp;
        let (max_size, max_line, data_timeout) = (smtp.max_message_size.0, smtp.max_line_length, smtp.data_timeout.0);
        let transaction = self.transaction.as_mut().expect("checked");
        let binary = transaction.params.is_binary();
        let mut chunks =
            transaction.bdat.take().unwrap_or_else(|| Chunks { receiver: ContentReceiver::chunks(binary, max_size, max_line), content: Vec::new() });
        let mut remaining = size;
        loop {
            let take = remaining.min(self.conn.input().len() as u64) as usize;
            chunks.receiver.receive(&self.conn.input()[..take], &mut chunks.content);
            self.conn.consume(take);
            remaining -= take as u64;
            if remaining == 0 {
                break;
            }
            if self.fill(data_timeout).await?.is_err() {
                tracing::info!("connection lost or timed out during BDAT; nothing stored");
                return Ok(Flow::Close);
            }
        }
        // Past the size limit the transaction ends here (finish answers 552); later chunks find
        // no transaction and get 503.
        if !last && !chunks.receiver.report().too_big {
            self.transaction.as_mut().expect("checked").bdat = Some(chunks);
            self.reply(Reply::new(250, codes::OK, format!("{size} octets received")));
            return Ok(Flow::Continue);
        }
        chunks.receiver.finish();
        let transaction = self.transaction.take().expect("checked");
        Ok(self.complete("BDAT", transaction, chunks.content, chunks.receiver.report()).await)
    }

    /// Reads and drops `n` octets. Returns false if the connection ended first.
    async fn skip_octets(&mut self, mut n: u64) -> std::io::Result<bool> {
        loop {
            let take = n.min(self.conn.input().len() as u64) as usize;
            self.conn.consume(take);
            n -= take as u64;
            if n == 0 {
                return Ok(true);
            }
            if self.fill(self.ctx.config.smtp.data_timeout.0).await?.is_err() {
                return Ok(false);
            }
        }
    }

    /// Judges the received content, runs the data hooks and, if all pass, stores it.
    /// Returns the final reply and whether to close.
    async fn finish(&mut self, mut transaction: Transaction, content: Vec<u8>, report: &ContentReport) -> (Reply, Flow) {
        let smtp = &self.ctx.config.smtp;
        let refusal = if report.too_big {
            Some(Reply::too_big())
        } else if (report.bare_lf || report.bare_cr) && smtp.bare_line_ending == BareLineEnding::Reject {
            Some(Reply::new(550, codes::SYNTAX, "Message contains a bare CR or LF; line ends must be CRLF (RFC 5321 2.3.8)"))
        } else if report.line_too_long {
            Some(Reply::new(550, codes::CONTENT, format!("Message contains a line longer than {} octets", smtp.max_line_length)))
        } else {
            None
        };
        let (reply, flow) = match refusal {
            Some(reply) => (reply, Flow::Continue),
            None => match self.filter(&mut transaction, content).await {
                Err((reply, flow)) => (reply, flow),
                Ok(_) if transaction.discard.is_some() => {
                    let why = transaction.discard.as_deref().unwrap_or_default();
                    tracing::info!(queue_id = transaction.queue_id, "message discarded by {why}");
                    (accepted(&transaction), Flow::Continue)
                }
                Ok(content) => (self.store(&transaction, content).await, Flow::Continue),
            },
        };
        self.log_transaction(&transaction, report.size, &reply);
        let result = match reply.code {
            200..=299 if transaction.discard.is_some() => "discarded",
            200..=299 => "accepted",
            400..=499 => "deferred",
            _ => "rejected",
        };
        crate::metrics::get().transaction(result, reply.code, report.size as usize);
        (reply, flow)
    }

    /// Runs the plugins' data hooks, then checks the MIME structure and runs the MIME
    /// handlers: the message passes (with their changes applied), or the reply that refuses
    /// it is returned.
    async fn filter(&mut self, transaction: &mut Transaction, content: Vec<u8>) -> Result<Vec<u8>, (Reply, Flow)> {
        let content = self.check_authenticity(transaction, content).await?;
        let content = self.data_hooks(transaction, content).await?;
        if transaction.discard.is_some() {
            return Ok(content);
        }
        self.mime_handlers(transaction, content).await
    }

    /// The data hooks see the message's header fields, held to the `[mime]` header limits
    /// first: a header beyond them is refused (552 5.3.4) before any plugin sees it, whatever
    /// `on_limit` says, so that a flood of fields can never make a filter fail and be skipped.
    async fn data_hooks(&mut self, transaction: &mut Transaction, content: Vec<u8>) -> Result<Vec<u8>, (Reply, Flow)> {
        if !self.plugins.wants(Hook::Data) {
            return Ok(content);
        }
        let section = match mime::parser::header_section(&content, 0..content.len(), &self.ctx.config.mime.limits()) {
            Ok(section) => section,
            Err(e) => {
                tracing::info!(queue_id = transaction.queue_id, "message refused before the data hooks: {e}");
                return Err((Reply::new(552, codes::MAILBOX_FULL_SIZE, format!("Message refused: {e}")), Flow::Continue));
            }
        };
        let headers: Vec<Header> =
            section.fields.iter().map(|f| Header { name: f.name.clone(), value: header::unfolded_value(&content, f) }).collect();
        let envelope = Envelope {
            sender: Address::path_text(transaction.reverse_path.as_ref()),
            recipients: transaction.recipients.iter().map(|r| r.address.clone()).collect(),
            helo: self.greeting.as_ref().map(|g| g.name.clone()).unwrap_or_default(),
            client_ip: self.peer.ip().to_string(),
            queue_id: transaction.queue_id.clone(),
        };
        let outcome = self.plugins.on_data(&envelope, &headers).await;
        match outcome.decision {
            Decision::Refuse(reply) => Err((reply, Flow::Continue)),
            Decision::Disconnect(reply) => Err((reply, Flow::Close)),
            Decision::Discard => {
                transaction.discard = Some("a data hook".into());
                Ok(content)
            }
            Decision::Continue | Decision::Accept => {
                let changes: Vec<header::Change> = outcome.header_changes.into_iter().map(to_change).collect();
                Ok(header::apply(&content, &changes))
            }
        }
    }

    /// Every message is held to the MIME limits (`[mime]`), handlers or not: beyond them it is
    /// refused with 552 5.3.4 or, with `on_limit = "pass"`, stored as it is without handlers.
    async fn mime_handlers(&mut self, transaction: &Transaction, content: Vec<u8>) -> Result<Vec<u8>, (Reply, Flow)> {
        let config = &self.ctx.config;
        let limits = MimeLimits {
            parse: config.mime.limits(),
            body: config.mime.handler_body_limit.0 as usize,
            max_message: config.smtp.max_message_size.0 as usize,
        };
        if let Err(e) = mime::parse(&content, &limits.parse) {
            return match config.mime.on_limit {
                OnLimit::Reject => {
                    tracing::info!(queue_id = transaction.queue_id, "message refused: {e}");
                    Err((Reply::new(552, codes::MAILBOX_FULL_SIZE, format!("Message refused: {e}")), Flow::Continue))
                }
                OnLimit::Pass => {
                    tracing::info!(queue_id = transaction.queue_id, "{e}: stored without MIME handlers");
                    Ok(content)
                }
            };
        }
        if !self.plugins.wants_mime() {
            return Ok(content);
        }
        match self.plugins.on_mime(&content, &limits).await {
            MimeOutcome::Pass(Some(rewritten)) => Ok(rewritten),
            MimeOutcome::Pass(None) => Ok(content),
            MimeOutcome::Refuse(reply) => Err((reply, Flow::Continue)),
        }
    }

    fn log_transaction(&self, transaction: &Transaction, size: u64, reply: &Reply) {
        let to: Vec<&str> = transaction.recipients.iter().map(|r| r.address.as_str()).collect();
        // The DSN parameters travel with the transaction; they are logged until the delivery
        // queue (which writes them to the spool) acts on them.
        let notify: Vec<String> = transaction.recipients.iter().map(|r| format!("{:?}", r.params.notify)).collect();
        tracing::info!(
            queue_id = transaction.queue_id,
            from = Address::path_text(transaction.reverse_path.as_ref()),
            to = to.join(","),
            envid = transaction.params.envid.as_deref().unwrap_or(""),
            auth = transaction.authenticity.as_ref().map(|r| r.summary()).unwrap_or_default(),
            notify = notify.join(","),
            size,
            result = if reply.is_positive() { "accepted" } else { "rejected" },
            reply = %reply,
            "transaction"
        );
    }

    /// Writes the message to the queue, durably, on the blocking pool; delivery runs from
    /// there after the reply.
    /// Mail that authenticated users and `relay_networks` send is DKIM-signed there first,
    /// as it is now (after the plugins): the signature covers what is stored and relayed.
    async fn store(&mut self, transaction: &Transaction, content: Vec<u8>) -> Reply {
        let trace = self.trace_headers(transaction);
        let envelope = self.queue_envelope(transaction);
        let queue = Arc::clone(&self.ctx.queue);
        let signers = (self.may_relay() && !self.ctx.dkim.is_empty()).then(|| Arc::clone(&self.ctx.dkim));
        let result = tokio::task::spawn_blocking(move || {
            let signature = match signers.map(|s| s.sign(&content)) {
                Some(Ok(signature)) => signature,
                Some(Err(e)) => {
                    tracing::error!(queue_id = envelope.id, error = e, "DKIM signing failed; the message goes unsigned");
                    None
                }
                None => None,
            };
            let signature = signature.unwrap_or_default();
            let written = queue.enqueue(&envelope, &[trace.as_bytes(), signature.as_bytes(), &content]);
            (written, envelope, queue)
        })
        .await;
        let error = match result {
            Ok((Ok(()), envelope, queue)) => {
                queue.submitted(envelope);
                return accepted(transaction);
            }
            Ok((Err(e), _, _)) => e.to_string(),
            Err(e) => format!("the queueing task failed: {e}"),
        };
        tracing::error!(queue_id = transaction.queue_id, error, "queueing failed");
        Reply::local_error()
    }

    /// The envelope the queue keeps: DSN parameters, and the local mailboxes (one copy each,
    /// however many recipients lead to one).
    fn queue_envelope(&self, transaction: &Transaction) -> queue::Envelope {
        let mut mailboxes: Vec<queue::Mailbox> = Vec::new();
        let recipients = transaction
            .recipients
            .iter()
            .flat_map(|r| {
                let indexes: Vec<usize> = r
                    .mailboxes
                    .iter()
                    .map(|m| match mailboxes.iter().position(|q| q.user == m.user) {
                        Some(i) => i,
                        None => {
                            mailboxes.push(queue::Mailbox { user: m.user.clone(), folder: None, tag: m.tag.clone(), delivered: false });
                            mailboxes.len() - 1
                        }
                    })
                    .collect();
                let notify: Option<Vec<String>> = r.params.notify.as_ref().map(|n| {
                    let flags = [(n.never, "NEVER"), (n.success, "SUCCESS"), (n.failure, "FAILURE"), (n.delay, "DELAY")];
                    flags.iter().filter(|(on, _)| *on).map(|(_, name)| name.to_string()).collect()
                });
                let orcpt = r.params.orcpt.as_ref().map(|o| format!("{};{}", o.addr_type, o.address));
                // An alias that forwards elsewhere: each address it names is relayed as
                // forwarded mail, under the original recipient (ORCPT) and its NOTIFY; the
                // alias itself is a recipient only when it has mailboxes here too.
                let forwards = r.forwards.iter().map(|target| queue::Recipient {
                    orcpt: orcpt.clone().or_else(|| Some(format!("rfc822;{}", r.address))),
                    notify: notify.clone(),
                    remote: true,
                    forwarded: true,
                    ..queue::Recipient::new(target.clone())
                });
                let own = (!r.mailboxes.is_empty() || r.forwards.is_empty()).then(|| queue::Recipient {
                    orcpt: orcpt.clone(),
                    notify: notify.clone(),
                    remote: r.mailboxes.is_empty(),
                    mailboxes: indexes,
                    ..queue::Recipient::new(r.address.clone())
                });
                own.into_iter().chain(forwards).collect::<Vec<_>>()
            })
            .collect();
        queue::Envelope {
            id: transaction.queue_id.clone(),
            arrived: queue::now(),
            sender: Address::path_text(transaction.reverse_path.as_ref()),
            envid: transaction.params.envid.clone(),
            ret: transaction.params.ret.map(|r| match r {
                Ret::Full => "FULL".to_string(),
                Ret::Hdrs => "HDRS".to_string(),
            }),
            client_ip: self.peer.ip().to_string(),
            helo: self.greeting.as_ref().map(|g| g.name.clone()).unwrap_or_default(),
            recipients,
            mailboxes,
            attempts: 0,
            next_attempt: 0,
            delay_warned: false,
        }
    }

    /// `Return-Path:` and `Received:` (RFC 5321 4.4), in CRLF form. The protocol is named as
    /// RFC 3848 and RFC 6531 register it (`ESMTPSA`: ESMTP over TLS, authenticated); the TLS
    /// version and cipher and the authenticated user are recorded in comments.
    fn trace_headers(&self, transaction: &Transaction) -> String {
        let greeting = self.greeting.as_ref().expect("MAIL needs a greeting");
        let mut protocol = match (greeting.extended, transaction.params.smtputf8) {
            (true, true) => "UTF8SMTP",
            (true, false) => "ESMTP",
            (false, _) => "SMTP",
        }
        .to_string();
        if greeting.extended {
            if self.conn.is_tls() {
                protocol.push('S');
            }
            if self.user.is_some() {
                protocol.push('A');
            }
        }
        let tls = match self.conn.tls_description() {
            Some((version, cipher)) => format!("\r\n\t(using {version} with cipher {cipher})"),
            None => String::new(),
        };
        let auth = match self.authenticated() {
            Some(user) => format!("\r\n\t(Authenticated sender: {user})"),
            None => String::new(),
        };
        // RFC 5321 4.4: name the recipient only when there is one, so as not to disclose
        // the others.
        let for_clause = match transaction.recipients.as_slice() {
            [only] => format!("\r\n\tfor <{}>", only.address),
            _ => String::new(),
        };
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000");
        format!(
            "Return-Path: <{}>\r\nReceived: from {} ([{}]){tls}{auth}\r\n\tby {} (Wasmail) with {} id {}{}; {}\r\n",
            Address::path_text(transaction.reverse_path.as_ref()),
            greeting.name,
            self.peer.ip(),
            self.hostname(),
            protocol,
            transaction.queue_id,
            for_clause,
            date
        )
    }
}

/// The 250 that ends a transaction, with its queue id.
fn accepted(transaction: &Transaction) -> Reply {
    Reply::new(250, codes::OK, format!("{} Message accepted for delivery", transaction.queue_id))
}

/// A plugin's header change in the terms of the header module.
fn to_change(change: HeaderChange) -> header::Change {
    match change {
        HeaderChange::Add(h) => header::Change::Add { name: h.name, value: h.value },
        HeaderChange::Insert((index, h)) => header::Change::Insert { index: index as usize, name: h.name, value: h.value },
        HeaderChange::Change((r, value)) => header::Change::Change { name: r.name, index: r.index as usize, value },
        HeaderChange::Remove(r) => header::Change::Remove { name: r.name, index: r.index as usize },
    }
}
