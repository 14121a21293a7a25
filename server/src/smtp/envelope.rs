//! MAIL and RCPT (RFC 5321 4.1.1.2-3): the envelope, its parameters, and whether each
//! recipient is ours. Wasmail is never an open relay: an address outside the local domains is
//! refused unless the client may relay (`relay_networks`); then the queue relays it.

use wasmail_proto::smtp::params::{encode_xtext, ExtraParam, OriginalRecipient, Ret};
use wasmail_proto::smtp::{codes, Address, Body, ForwardPath, MailParams, RcptParams, Reply};

use super::session::{Flow, Port, Recipient, Session, Transaction};
use crate::abuse::Allowance;
use crate::directory::{Resolution, ResolveError};
use crate::plugin::{AddressInfo, Decision, Hook, Param};

impl Session {
    pub(super) async fn handle_mail(&mut self, reverse_path: Option<Address>, params: MailParams) -> Flow {
        if self.greeting.is_none() {
            return self.out_of_sequence("Send HELO or EHLO first");
        }
        if self.transaction.is_some() {
            return self.out_of_sequence("Nested MAIL command");
        }
        if self.port != Port::Mx && self.user.is_none() {
            // RFC 6409 4.3: submission is for authenticated users.
            self.reply(Reply::new(530, codes::AUTH_REQUIRED, "Authentication required"));
            return self.bad_command();
        }
        let mut params = params;
        // RFC 4954 5: AUTH=<mailbox> is understood; the identity it claims is not taken from
        // the client (an authenticated session already knows its user).
        params.extra.retain(|p| p.keyword != "AUTH");
        let registry = &self.ctx.plugins;
        if let Some(reply) = unsupported(&params.extra, |k| registry.claims_mail_param(k)) {
            self.reply(reply);
            return self.bad_command();
        }
        // `[auth] submission_sender_check`: whoever authenticated sends as themselves, on any
        // port — on 25 as on 587 and 465 (where AUTH comes first anyway). An unauthenticated
        // client on 25 is a peer MTA: its senders are not ours to check.
        let authenticated_or_submission = self.user.is_some() || self.port != Port::Mx;
        if authenticated_or_submission && self.ctx.config.auth.submission_sender_check && !self.owns(&reverse_path) {
            let user = self.user.clone().unwrap_or_default();
            tracing::info!(user, from = %Address::path_text(reverse_path.as_ref()), "sender address not owned by the authenticated user");
            self.reply(Reply::new(
                553,
                codes::POLICY,
                format!("<{}>: Sender address not owned by user {user}", Address::path_text(reverse_path.as_ref())),
            ));
            return self.bad_command();
        }
        let extended = self.greeting.as_ref().is_some_and(|g| g.extended);
        if !extended && (params.size.is_some() || params.body.is_some() || params.smtputf8 || params.ret.is_some() || params.envid.is_some()) {
            // RFC 1869 6: parameters need EHLO.
            self.reply(Reply::new(555, codes::INVALID_ARGS, "MAIL parameters need EHLO"));
            return self.bad_command();
        }
        if self.messages >= self.ctx.config.smtp.max_messages_per_connection {
            let text = format!("{} Too many messages in one session, closing", self.hostname());
            self.reply(Reply::new(421, codes::TEMP_ABUSE, text));
            return Flow::Close;
        }
        if let Allowance::Later(wait) = self.ctx.abuse.message(self.peer.ip()) {
            tracing::info!(seconds = wait.as_secs(), "message rate limit");
            self.reply(Reply::new(450, codes::TEMP_ABUSE, format!("Too many messages from your address; try again in {} s", wait.as_secs() + 1)));
            return Flow::Continue;
        }
        let (reply, flow) = self.decide_mail(reverse_path, params).await;
        if self.transaction.is_some() {
            self.messages += 1;
        }
        let reply = self.plugins.on_reply("MAIL", reply).await;
        self.reply(reply);
        flow
    }

    /// The server's checks, then the plugins'; opens the transaction on success.
    async fn decide_mail(&mut self, reverse_path: Option<Address>, params: MailParams) -> (Reply, Flow) {
        let limit = self.ctx.config.smtp.max_message_size.0;
        if params.size.is_some_and(|size| size > limit) {
            return (Reply::too_big(), Flow::Continue);
        }
        if reverse_path.as_ref().is_some_and(Address::is_utf8) && !params.smtputf8 {
            return (needs_smtputf8(), Flow::Continue);
        }
        let spf = self.check_spf(reverse_path.as_ref()).await;
        let mut discard = None;
        if self.plugins.wants(Hook::MailFrom) {
            let info = AddressInfo {
                address: Address::path_text(reverse_path.as_ref()),
                params: mail_param_list(&params),
                client_ip: self.peer.ip().to_string(),
            };
            match self.plugins.on_mail_from(&info).await {
                Decision::Refuse(reply) => return (reply, Flow::Continue),
                Decision::Disconnect(reply) => return (reply, Flow::Close),
                Decision::Discard => discard = Some("a mail-from hook".to_string()),
                Decision::Continue | Decision::Accept => {}
            }
        }
        let queue_id = crate::ids::queue_id();
        tracing::debug!(queue_id, from = %Address::path_text(reverse_path.as_ref()), "MAIL");
        self.transaction = Some(Transaction { queue_id, reverse_path, params, recipients: Vec::new(), bdat: None, discard, spf, authenticity: None });
        (Reply::new(250, codes::SENDER_OK, "Sender ok"), Flow::Continue)
    }

    pub(super) async fn handle_rcpt(&mut self, forward_path: ForwardPath, params: RcptParams) -> Flow {
        if self.transaction.is_none() {
            return self.out_of_sequence("Need MAIL command");
        }
        let registry = &self.ctx.plugins;
        if let Some(reply) = unsupported(&params.extra, |k| registry.claims_rcpt_param(k)) {
            self.reply(reply);
            return self.bad_command();
        }
        if let Allowance::Later(wait) = self.ctx.abuse.recipient(self.peer.ip()) {
            tracing::info!(seconds = wait.as_secs(), "recipient rate limit");
            self.reply(Reply::new(452, codes::TEMP_ABUSE, format!("Too many recipients from your address; try again in {} s", wait.as_secs() + 1)));
            return Flow::Continue;
        }
        let (reply, flow) = self.decide_rcpt(forward_path, params).await;
        if reply.code == 550 && reply.enhanced == Some(codes::BAD_DEST_MAILBOX) {
            // Directory harvesting: past the limit the session ends and the address waits.
            self.unknown_recipients += 1;
            let smtp = &self.ctx.config.smtp;
            if self.unknown_recipients > smtp.max_unknown_recipients {
                let block = smtp.probe_block.0;
                self.ctx.abuse.block(self.peer.ip(), block);
                tracing::warn!(unknown = self.unknown_recipients, block_seconds = block.as_secs(), "recipient probing, blocking the address");
                let text = format!("{} Too many unknown recipients, closing", self.hostname());
                self.reply(Reply::new(421, codes::TEMP_ABUSE, text));
                return Flow::Close;
            }
        }
        let reply = self.plugins.on_reply("RCPT", reply).await;
        self.reply(reply);
        flow
    }

    /// The server's checks (limit, address, directory), then the plugins'.
    async fn decide_rcpt(&mut self, forward_path: ForwardPath, params: RcptParams) -> (Reply, Flow) {
        let transaction = self.transaction.as_ref().expect("checked by the caller");
        if transaction.recipients.len() >= self.ctx.config.smtp.max_recipients {
            // RFC 5321 4.5.3.1.10: 452, and the client sends the rest in another transaction.
            return (Reply::new(452, codes::TOO_MANY_RCPTS, "Too many recipients"), Flow::Continue);
        }
        let smtputf8 = transaction.params.smtputf8;
        let directory = &self.ctx.directory;
        let address = match forward_path {
            ForwardPath::Mailbox(address) => address,
            ForwardPath::Postmaster => Address { local_part: "postmaster".into(), domain: directory.primary_domain().to_string() },
        };
        if address.is_utf8() && !smtputf8 {
            return (needs_smtputf8(), Flow::Continue);
        }
        // A bounce to an address this server's SRS wrote goes on to the sender it stands for,
        // whoever sends it: the hash proves the address came from here.
        let srs_original = self.srs_original(&address);
        let (mailboxes, forwards) = match directory.resolve_forwarding(&address) {
            _ if srs_original.is_some() => (Vec::new(), Vec::new()),
            Some(Ok(forwarding)) => (forwarding.mailboxes, forwarding.forwards),
            // Relayed by the queue to the domain's next hop.
            None if self.may_relay() => (Vec::new(), Vec::new()),
            None => return refused(Reply::new(550, codes::POLICY, format!("<{address}>: Relay access denied"))),
            Some(Err(ResolveError::UnknownUser)) => {
                return refused(Reply::new(550, codes::BAD_DEST_MAILBOX, format!("<{address}>: Recipient address rejected: User unknown")))
            }
            Some(Err(ResolveError::AliasLoop(name))) => {
                tracing::warn!(alias = name, "alias loop");
                return refused(Reply::new(550, codes::ROUTING_LOOP, format!("<{address}>: alias loop at {name}")));
            }
            // Not from resolve_forwarding, which follows forwards.
            Some(Err(ResolveError::RemoteTarget(target))) => {
                return refused(Reply::new(550, codes::SYSTEM_INCAPABLE, format!("<{address}>: cannot forward to {target}")))
            }
        };
        if self.plugins.wants(Hook::RcptTo) {
            let info = AddressInfo { address: address.to_string(), params: rcpt_param_list(&params), client_ip: self.peer.ip().to_string() };
            match self.plugins.on_rcpt_to(&info).await {
                Decision::Refuse(reply) => return refused(reply),
                Decision::Disconnect(reply) => return (reply, Flow::Close),
                Decision::Discard => {
                    self.transaction.as_mut().expect("checked").discard = Some(format!("a rcpt-to hook for <{address}>"));
                }
                Decision::Continue | Decision::Accept => {}
            }
        }
        let mut params = params;
        let address = match srs_original {
            Some(original) => {
                tracing::info!(to = %address, original, "bounce to an SRS address, sent on to the original sender");
                params.orcpt.get_or_insert_with(|| OriginalRecipient { addr_type: "rfc822".into(), address: address.to_string() });
                original
            }
            None => address.to_string(),
        };
        let recipient = Recipient { address, mailboxes, forwards, params };
        self.transaction.as_mut().expect("checked").recipients.push(recipient);
        (Reply::new(250, codes::DEST_OK, "Recipient ok"), Flow::Continue)
    }

    /// The sender an SRS0 address of this server's SRS domain stands for, if it is one.
    fn srs_original(&self, address: &Address) -> Option<String> {
        let srs = self.ctx.srs.as_ref()?;
        if !address.domain.eq_ignore_ascii_case(srs.domain()) {
            return None;
        }
        srs.reverse(&address.local_part, crate::authenticity::srs::today())
    }

    /// Authenticated users, and clients in `relay_networks`, may send mail elsewhere.
    pub(super) fn may_relay(&self) -> bool {
        let ip = self.peer.ip();
        self.user.is_some() || self.ctx.config.relay_networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether the authenticated user owns a sender address: it is in a local domain and is
    /// delivered to the user's mailbox (the user's name, a +tag of it, or an alias of it).
    /// The null sender is allowed (notifications a client sends).
    fn owns(&self, reverse_path: &Option<Address>) -> bool {
        let (Some(user), Some(address)) = (self.user.as_deref(), reverse_path) else { return reverse_path.is_none() };
        match self.ctx.directory.resolve(address) {
            Ok(Resolution::Local(mailboxes)) => mailboxes.iter().any(|m| m.user == user),
            _ => false,
        }
    }
}

/// 553 5.6.7 for a non-ASCII address in a transaction without SMTPUTF8 (RFC 6531 3.5).
fn needs_smtputf8() -> Reply {
    Reply::new(553, codes::NON_ASCII_ADDRESS, "Non-ASCII address needs MAIL FROM:<...> SMTPUTF8")
}

fn refused(reply: Reply) -> (Reply, Flow) {
    tracing::info!(%reply, "recipient refused");
    (reply, Flow::Continue)
}

/// MAIL's parameters as plugins see them: every one given, in a canonical spelling.
fn mail_param_list(params: &MailParams) -> Vec<Param> {
    let mut out = Vec::new();
    let mut push = |keyword: &str, value: Option<String>| out.push(Param { keyword: keyword.to_string(), value });
    if let Some(size) = params.size {
        push("SIZE", Some(size.to_string()));
    }
    if let Some(body) = params.body {
        let value = match body {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        };
        push("BODY", Some(value.to_string()));
    }
    if params.smtputf8 {
        push("SMTPUTF8", None);
    }
    if let Some(ret) = params.ret {
        push("RET", Some(if ret == Ret::Full { "FULL" } else { "HDRS" }.to_string()));
    }
    if let Some(envid) = &params.envid {
        push("ENVID", Some(encode_xtext(envid)));
    }
    for extra in &params.extra {
        push(&extra.keyword, extra.value.clone());
    }
    out
}

/// RCPT's parameters as plugins see them.
fn rcpt_param_list(params: &RcptParams) -> Vec<Param> {
    let mut out = Vec::new();
    if let Some(notify) = params.notify {
        let mut words = Vec::new();
        for (on, word) in [(notify.never, "NEVER"), (notify.success, "SUCCESS"), (notify.failure, "FAILURE"), (notify.delay, "DELAY")] {
            if on {
                words.push(word);
            }
        }
        out.push(Param { keyword: "NOTIFY".into(), value: Some(words.join(",")) });
    }
    if let Some(orcpt) = &params.orcpt {
        out.push(Param { keyword: "ORCPT".into(), value: Some(format!("{};{}", orcpt.addr_type, encode_xtext(&orcpt.address))) });
    }
    for extra in &params.extra {
        out.push(Param { keyword: extra.keyword.clone(), value: extra.value.clone() });
    }
    out
}

/// 555 5.5.4 for a parameter neither the server nor a plugin claims (RFC 5321 4.1.1.11).
fn unsupported(extra: &[ExtraParam], claimed: impl Fn(&str) -> bool) -> Option<Reply> {
    extra.iter().find(|p| !claimed(&p.keyword)).map(|p| Reply::new(555, codes::INVALID_ARGS, format!("Unsupported parameter {}", p.keyword)))
}
