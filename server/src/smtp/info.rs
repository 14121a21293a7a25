//! The commands that answer questions: VRFY and EXPN (RFC 5321 3.5, off by default as
//! careful sites run them), HELP (4.1.1.8) and ETRN (RFC 1985).

use wasmail_proto::smtp::{codes, Reply};

use super::session::{Flow, Session};
use crate::directory::ResolveError;

/// HELP topics: the verb and what to say about it.
const HELP_TOPICS: &[(&str, &str)] = &[
    ("HELO", "HELO <hostname> -- introduce yourself (plain SMTP)"),
    ("EHLO", "EHLO <hostname> -- introduce yourself and list the extensions"),
    ("MAIL", "MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id] -- start a transaction"),
    ("RCPT", "RCPT TO:<recipient> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=rfc822;addr] -- add a recipient"),
    ("DATA", "DATA -- send the message, ended by a line with a single dot"),
    ("BDAT", "BDAT <size> [LAST] -- send the next <size> octets of the message (RFC 3030)"),
    ("RSET", "RSET -- abort the current transaction; the connection stays open"),
    ("NOOP", "NOOP -- do nothing and answer 250"),
    ("QUIT", "QUIT -- close the connection"),
    ("VRFY", "VRFY <name> -- verify a user name or address"),
    ("EXPN", "EXPN <list> -- expand an alias into its members"),
    ("HELP", "HELP [command] -- this help"),
    ("ETRN", "ETRN <domain> -- start delivery of mail queued for a domain (RFC 1985)"),
];

impl Session {
    pub(super) fn handle_help(&mut self, topic: Option<&str>) -> Flow {
        let reply = match topic {
            None => {
                let verbs: Vec<&str> = HELP_TOPICS.iter().map(|(verb, _)| *verb).collect();
                Reply::multiline(
                    214,
                    Some(codes::OK),
                    vec![
                        "Wasmail SMTP server. Commands:".into(),
                        verbs.join(" "),
                        "HELP <command> describes one. Mail for the postmaster: RCPT TO:<postmaster>".into(),
                    ],
                )
            }
            Some(topic) => match HELP_TOPICS.iter().find(|(verb, _)| verb.eq_ignore_ascii_case(topic.trim())) {
                Some((_, text)) => Reply::new(214, codes::OK, *text),
                None => Reply::new(504, codes::INVALID_ARGS, format!("HELP topic {topic:?} unknown")),
            },
        };
        self.reply(reply);
        Flow::Continue
    }

    /// Turns `name`, `<name@domain>` or `name@domain` into a local part, if the domain is
    /// ours (or absent).
    fn local_name<'a>(&self, arg: &'a str) -> Option<&'a str> {
        let arg = arg.trim().trim_start_matches('<').trim_end_matches('>');
        match arg.rsplit_once('@') {
            Some((local, domain)) if self.ctx.directory.is_local_domain(domain) => Some(local),
            Some(_) => None,
            None => Some(arg),
        }
    }

    pub(super) fn handle_vrfy(&mut self, arg: &str) -> Flow {
        if !self.ctx.config.smtp.vrfy {
            // RFC 5321 3.5.3: 252 when the server will not verify but will accept the mail.
            let reply = Reply::new(252, codes::CANNOT_VERIFY, "Cannot VRFY user, but will accept message and attempt delivery");
            self.reply(reply);
            return Flow::Continue;
        }
        let domain = self.ctx.directory.primary_domain().to_string();
        let reply = match self.local_name(arg) {
            None => Reply::new(252, codes::CANNOT_VERIFY, "Not a local address; cannot verify"),
            Some(name) => match self.ctx.directory.resolve_local_part(name) {
                Ok(mailboxes) if mailboxes.len() == 1 => {
                    let user = &mailboxes[0].user;
                    Reply::new(250, codes::DEST_OK, format!("{user} <{user}@{domain}>"))
                }
                Ok(_) => Reply::new(553, codes::AMBIGUOUS, format!("{name} is a list; use EXPN")),
                Err(ResolveError::UnknownUser) => Reply::new(550, codes::BAD_DEST_MAILBOX, format!("{name}: User unknown")),
                Err(ResolveError::AliasLoop(_)) => Reply::new(550, codes::ROUTING_LOOP, format!("{name}: alias loop")),
                Err(ResolveError::RemoteTarget(target)) => Reply::new(252, codes::CANNOT_VERIFY, format!("{name} forwards to <{target}>")),
            },
        };
        self.reply(reply);
        Flow::Continue
    }

    pub(super) fn handle_expn(&mut self, arg: &str) -> Flow {
        if !self.ctx.config.smtp.expn {
            self.reply(Reply::new(502, codes::INVALID_COMMAND, "EXPN is not available"));
            return Flow::Continue;
        }
        let domain = self.ctx.directory.primary_domain().to_string();
        let qualify = |target: &str| {
            if target.contains('@') {
                format!("<{target}>")
            } else {
                format!("<{target}@{domain}>")
            }
        };
        let reply = match self.local_name(arg) {
            None => Reply::new(550, codes::BAD_DEST_MAILBOX, "Not a local list"),
            Some(name) => match self.ctx.directory.alias_targets(name) {
                // RFC 5321 3.5.2: one member per line of a multi-line 250.
                Some(targets) => Reply::multiline(250, Some(codes::DEST_OK), targets.iter().map(|t| qualify(t)).collect()),
                None => match self.ctx.directory.resolve_local_part(name) {
                    Ok(mailboxes) => Reply::new(250, codes::DEST_OK, qualify(&mailboxes[0].user)),
                    Err(_) => Reply::new(550, codes::BAD_DEST_MAILBOX, format!("{name}: no such list or user")),
                },
            },
        };
        self.reply(reply);
        Flow::Continue
    }

    /// RFC 1985: a permitted client asks for the queued mail of a domain (`@domain`: and its
    /// subdomains). The entries with pending recipients there are counted and flushed: 251 when
    /// there are none, 253 with their number. `#queue` names are not kept here: 458.
    pub(super) async fn handle_etrn(&mut self, node: &str) -> Flow {
        let reply = if !self.may_relay() {
            Reply::new(459, codes::TEMP_POLICY, format!("{node}: client not authorized to run the queue"))
        } else if node.starts_with('#') {
            Reply::new(458, codes::TEMP_SYSTEM, format!("Unable to queue messages for node {node}"))
        } else {
            let (domain, subdomains) = match node.strip_prefix('@') {
                Some(d) => (d.to_ascii_lowercase(), true),
                None => (node.to_ascii_lowercase(), false),
            };
            // Counted from what the scheduler holds in memory: ETRN reads no files.
            match self.ctx.queue.pending_for(&domain, subdomains) {
                0 => Reply::new(251, codes::OK, format!("OK, no messages waiting for node {node}")),
                n => {
                    self.ctx.queue.flush_matching(domain, subdomains);
                    Reply::new(253, codes::OK, format!("OK, {n} pending messages for node {node} started"))
                }
            }
        };
        self.reply(reply);
        Flow::Continue
    }
}
