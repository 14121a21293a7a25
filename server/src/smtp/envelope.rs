//! MAIL and RCPT (RFC 5321 4.1.1.2-3): the envelope, its parameters, and whether each
//! recipient is ours. Wasmail is never an open relay: an address outside the local domains is
//! refused unless the client may relay, and relaying itself arrives with the delivery queue.

use tokio::io::{AsyncRead, AsyncWrite};

use super::proto::params::ExtraParam;
use super::proto::{codes, Address, Body, ForwardPath, MailParams, RcptParams, Reply};
use super::session::{Flow, Recipient, Session, Transaction};
use crate::directory::{Resolution, ResolveError};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) fn handle_mail(&mut self, reverse_path: Option<Address>, params: MailParams) -> Flow {
        if self.greeting.is_none() {
            return self.out_of_sequence("Send HELO or EHLO first");
        }
        if self.transaction.is_some() {
            return self.out_of_sequence("Nested MAIL command");
        }
        if let Some(reply) = unsupported(&params.extra) {
            self.reply(reply);
            return self.bad_command();
        }
        let extended = self.greeting.as_ref().is_some_and(|g| g.extended);
        if !extended && (params.size.is_some() || params.body.is_some() || params.smtputf8 || params.ret.is_some() || params.envid.is_some()) {
            // RFC 1869 6: parameters need EHLO.
            self.reply(Reply::new(555, codes::INVALID_ARGS, "MAIL parameters need EHLO"));
            return self.bad_command();
        }
        let limit = self.ctx.config.smtp.max_message_size.0;
        if params.size.is_some_and(|size| size > limit) {
            self.reply(Reply::new(552, codes::MAILBOX_FULL_SIZE, "Message size exceeds fixed maximum message size"));
            return Flow::Continue;
        }
        if reverse_path.as_ref().is_some_and(Address::is_utf8) && !params.smtputf8 {
            self.reply(Reply::new(553, codes::NON_ASCII_ADDRESS, "Non-ASCII address needs MAIL FROM:<...> SMTPUTF8"));
            return Flow::Continue;
        }
        let queue_id = crate::ids::queue_id();
        tracing::debug!(queue_id, from = %display_path(&reverse_path), "MAIL");
        self.transaction = Some(Transaction { queue_id, reverse_path, params, recipients: Vec::new(), bdat: None });
        self.reply(Reply::new(250, codes::SENDER_OK, "Sender ok"));
        Flow::Continue
    }

    pub(super) fn handle_rcpt(&mut self, forward_path: ForwardPath, params: RcptParams) -> Flow {
        let Some(transaction) = &self.transaction else {
            return self.out_of_sequence("Need MAIL command");
        };
        if let Some(reply) = unsupported(&params.extra) {
            self.reply(reply);
            return self.bad_command();
        }
        if transaction.recipients.len() >= self.ctx.config.smtp.max_recipients {
            // RFC 5321 4.5.3.1.10: 452, and the client sends the rest in another transaction.
            self.reply(Reply::new(452, codes::TOO_MANY_RCPTS, "Too many recipients"));
            return Flow::Continue;
        }
        let smtputf8 = transaction.params.smtputf8;
        let directory = &self.ctx.directory;
        let address = match forward_path {
            ForwardPath::Mailbox(address) => address,
            ForwardPath::Postmaster => {
                Address { local_part: "postmaster".into(), domain: directory.primary_domain().to_string() }
            }
        };
        if address.is_utf8() && !smtputf8 {
            self.reply(Reply::new(553, codes::NON_ASCII_ADDRESS, "Non-ASCII address needs MAIL FROM:<...> SMTPUTF8"));
            return Flow::Continue;
        }
        let reply = match directory.resolve(&address) {
            Ok(Resolution::Local(mailboxes)) => {
                let recipient = Recipient { address: address.to_string(), mailboxes, params };
                self.transaction.as_mut().expect("checked above").recipients.push(recipient);
                Reply::new(250, codes::DEST_OK, "Recipient ok")
            }
            Ok(Resolution::Remote) if self.may_relay() => Reply::new(
                550,
                codes::SYSTEM_INCAPABLE,
                format!("<{address}>: relaying to other domains is not available on this server yet"),
            ),
            Ok(Resolution::Remote) => Reply::new(550, codes::POLICY, format!("<{address}>: Relay access denied")),
            Err(ResolveError::UnknownUser) => {
                Reply::new(550, codes::BAD_DEST_MAILBOX, format!("<{address}>: Recipient address rejected: User unknown"))
            }
            Err(ResolveError::AliasLoop(name)) => {
                tracing::warn!(alias = name, "alias loop");
                Reply::new(550, codes::ROUTING_LOOP, format!("<{address}>: alias loop at {name}"))
            }
            Err(ResolveError::RemoteTarget(target)) => Reply::new(
                550,
                codes::SYSTEM_INCAPABLE,
                format!("<{address}>: forwarding to {target} is not available on this server yet"),
            ),
        };
        if !reply.is_positive() {
            tracing::info!(rcpt = %address, %reply, "recipient refused");
        }
        self.reply(reply);
        Flow::Continue
    }

    /// Whether the client's address is in `relay_networks`.
    pub(super) fn may_relay(&self) -> bool {
        let ip = self.peer.ip();
        self.ctx.config.relay_networks.iter().any(|net| net.contains(&ip))
    }
}

/// 555 5.5.4 for a parameter no extension claimed (RFC 5321 4.1.1.11).
fn unsupported(extra: &[ExtraParam]) -> Option<Reply> {
    extra.first().map(|p| Reply::new(555, codes::INVALID_ARGS, format!("Unsupported parameter {}", p.keyword)))
}

pub(super) fn display_path(path: &Option<Address>) -> String {
    match path {
        Some(a) => a.to_string(),
        None => String::new(),
    }
}

/// BODY=BINARYMIME needs BDAT; DATA cannot carry it (RFC 3030 3).
pub(super) fn is_binary(params: &MailParams) -> bool {
    params.body == Some(Body::BinaryMime)
}
