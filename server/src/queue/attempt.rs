//! One delivery attempt of a queue entry: the message is read, the delivery hooks route the
//! recipients, local mailboxes are written, remote recipients are relayed, and the outcomes
//! are recorded on the envelope.

use std::sync::Arc;

use wasmail_proto::reply::codes;

use super::spool::{self, Envelope, Recipient, State};
use super::{client, dane, notices, route, sts, tlsrpt, Queue};
use crate::plugin::delivery::MessageInfo;
use crate::plugin::{Hook, SessionPlugins};
use crate::store::DeliveryKey;

impl Queue {
    /// One delivery attempt: the message is read, the delivery hooks route the recipients
    /// not routed yet, local mailboxes are written on the blocking pool, remote recipients go
    /// through the relay client, the hooks hear the results, and the entry is updated.
    /// Returns the envelope if the entry stays queued.
    pub(super) async fn attempt(self: Arc<Self>, mut envelope: Envelope, check: bool) -> Option<Envelope> {
        let before: Vec<State> = envelope.recipients.iter().map(|r| r.state).collect();
        // Slots before the message is read, so that entries waiting for one hold no message
        // in memory. Relay slots first and local ones second; a local slot is never held
        // while waiting for a relay slot, so the two cannot wait for each other.
        let mut relay_slot = match has_remote_work(&envelope) {
            true => Some(Arc::clone(&self.relay_slots).acquire_owned().await.ok()?),
            false => None,
        };
        let local_slot = Arc::clone(&self.slots).acquire_owned().await.ok()?;
        let queue = Arc::clone(&self);
        let id = envelope.id.clone();
        let content = match tokio::task::spawn_blocking(move || queue.spool.message(&id)).await.ok()? {
            Ok(content) => Arc::new(content),
            Err(e) => {
                // Never a reason to drop the entry: an operator removes entries through the
                // server, so a missing message file is damage to report, and the envelope is
                // kept for whoever repairs it.
                tracing::error!(queue_id = envelope.id, error = %e, "cannot read the queued message; the entry is kept and retried");
                let queue = Arc::clone(&self);
                let error = format!("cannot read the queued message: {e}");
                return tokio::task::spawn_blocking(move || queue.hold(envelope, &error)).await.ok()?;
            }
        };
        let settings = self.settings();
        let hooks = settings.plugins.plugins_with(Hook::Route) || settings.plugins.plugins_with(Hook::DeliveryResult);
        let mut plugins = hooks.then(|| SessionPlugins::new(Arc::clone(&settings.plugins), &envelope.id));
        let room = settings.plugins.argument_room(Hook::Route).min(settings.plugins.argument_room(Hook::DeliveryResult));
        let message = message_info(&envelope, &content, &settings.header_limits, room);
        match plugins.as_mut() {
            Some(p) if p.wants(Hook::Route) => self.route_recipients(p, &mut envelope, &message).await,
            _ => envelope.recipients.iter_mut().for_each(|r| r.routed = true),
        }
        let held = settle_mailboxes(&mut envelope);
        let queue = Arc::clone(&self);
        let local_content = Arc::clone(&content);
        let (mut envelope, mut errors) =
            tokio::task::spawn_blocking(move || queue.deliver_local(envelope, check, &local_content, &held)).await.ok()?;
        drop(local_slot);
        if has_remote_work(&envelope) {
            // A delivery hook may have sent a local recipient to a relay.
            if relay_slot.is_none() {
                relay_slot = Some(Arc::clone(&self.relay_slots).acquire_owned().await.ok()?);
            }
            errors.extend(self.relay_remote(&mut envelope, &content[..]).await);
        }
        drop(relay_slot);
        envelope.attempts += 1;
        for (i, r) in envelope.recipients.iter().enumerate() {
            // Recipients this attempt tried (a route hook may have added some: pending before).
            if before.get(i).is_none_or(|s| *s == State::Pending) && r.routed && !r.discarded {
                crate::metrics::get().delivery(r.state.outcome(), if r.remote { "relay" } else { "local" });
            }
        }
        if let Some(p) = plugins.as_mut().filter(|p| p.wants(Hook::DeliveryResult)) {
            for (i, r) in envelope.recipients.iter().enumerate() {
                let was_pending = before.get(i).is_none_or(|s| *s == State::Pending);
                if !was_pending || r.discarded || !r.routed {
                    continue;
                }
                p.on_delivery_result(&message, &r.address, r.state.outcome(), r.detail.as_deref().unwrap_or("")).await;
            }
        }
        drop(plugins);
        let queue = Arc::clone(&self);
        tokio::task::spawn_blocking(move || {
            notices::mark_due(&mut envelope, &before);
            // On an error the notice stays owed and the entry stays queued (reschedule).
            let _ = queue.send_due_notices(&mut envelope, &content[..]);
            if envelope.done() {
                return queue.finish(envelope);
            }
            let last = errors.first().cloned().unwrap_or_default();
            queue.reschedule(envelope, &last, &content[..])
        })
        .await
        .ok()?
    }

    /// Stores the message in every local mailbox not done yet and not `held` (blocking), and
    /// settles the local recipients. Returns the errors.
    pub(super) fn deliver_local(&self, mut envelope: Envelope, check: bool, content: &[u8], held: &[usize]) -> (Envelope, Vec<String>) {
        let id = envelope.id.clone();
        let quota = self.settings().quota.clone();
        // An entry in the spool's log stays there until its copies are synced in a batch.
        let sync = !self.spool.in_log(&id);
        let mut errors: Vec<(usize, String)> = Vec::new();
        let mut full: Vec<usize> = Vec::new();
        for (index, mailbox) in envelope.mailboxes.iter_mut().enumerate().filter(|(i, m)| !m.delivered && !held.contains(i)) {
            let key = DeliveryKey { key: format!("{id}-{index}"), time: envelope.arrived };
            // Over quota: the message waits here until there is room or it expires. (Not on
            // the first attempt after a start: the message may be in the mailbox already.)
            if quota.is_set() && !check {
                match self.store.usage(&mailbox.user) {
                    Ok(usage) if !quota.allows((usage.octets, usage.messages), (content.len() as u64, 1)) => {
                        tracing::info!(
                            queue_id = id,
                            user = mailbox.user,
                            octets = usage.octets,
                            messages = usage.messages,
                            "mailbox over quota; will retry"
                        );
                        errors.push((index, "mailbox full: over the user's quota".to_string()));
                        full.push(index);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(queue_id = id, user = mailbox.user, error = %e, "cannot count the mailbox for its quota"),
                }
            }
            match self.store.deliver(&mailbox.user, mailbox.folder.as_deref(), &key, &[content], check, sync) {
                Ok(stored) => {
                    mailbox.delivered = true;
                    tracing::info!(
                        queue_id = id,
                        user = mailbox.user,
                        folder = mailbox.folder.as_deref().unwrap_or(""),
                        file = stored.id,
                        "delivered"
                    );
                }
                Err(e) => {
                    tracing::warn!(queue_id = id, user = mailbox.user, error = %e, "delivery failed; will retry");
                    errors.push((index, e.to_string()));
                }
            }
        }
        for recipient in envelope.recipients.iter_mut().filter(|r| r.state == State::Pending && !r.remote && r.routed) {
            if recipient.mailboxes.is_empty() {
                recipient.state = State::Failed;
                recipient.detail = Some("no route to this recipient".into());
                recipient.status = Some(codes::NO_ROUTE);
            } else if recipient.mailboxes.iter().all(|&i| envelope.mailboxes.get(i).is_some_and(|m| m.delivered)) {
                recipient.state = State::Delivered;
                recipient.detail = Some("delivered to the mailbox".into());
                recipient.status = Some(codes::OK);
            } else if let Some((index, error)) = errors.iter().find(|(i, _)| recipient.mailboxes.contains(i)) {
                recipient.detail = Some(error.clone());
                recipient.status = Some(if full.contains(index) { codes::MAILBOX_FULL } else { codes::TEMP_MAILBOX });
            }
        }
        (envelope, errors.into_iter().map(|(_, e)| e).collect())
    }

    /// Relays the pending remote recipients, domain by domain, trying each next hop in turn
    /// until one takes a session. Returns the temporary errors.
    pub(super) async fn relay_remote(&self, envelope: &mut Envelope, content: &[u8]) -> Vec<String> {
        // Recipients go out in groups: one per domain, or per next hop a delivery hook chose;
        // forwarded ones apart (their envelope sender is rewritten).
        let group_of = |r: &Recipient| match &r.route {
            Some(hop) => (String::new(), Some(hop.clone()), r.forwarded),
            None => (r.address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default(), None, r.forwarded),
        };
        let mut groups: Vec<(String, Option<String>, bool)> = Vec::new();
        for r in envelope.recipients.iter().filter(|r| r.state == State::Pending && r.remote && r.routed) {
            let group = group_of(r);
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        let mut errors = Vec::new();
        let settings = self.settings();
        let timeouts = client::Timeouts { command: settings.config.relay_command_timeout.0, data: settings.config.relay_data_timeout.0 };
        for group in groups {
            let targets: Vec<usize> = (0..envelope.recipients.len())
                .filter(|&i| {
                    let r = &envelope.recipients[i];
                    r.state == State::Pending && r.remote && r.routed && group_of(r) == group
                })
                .collect();
            let (domain, via, forwarded) = group;
            let rewritten = forwarded.then(|| self.forwarding_sender(envelope, &settings)).flatten();
            let sealed = match forwarded {
                true => self.arc_sealed(envelope, content, &settings).await,
                false => None,
            };
            let content = sealed.as_deref().unwrap_or(content);
            let found = match &via {
                Some(hop) => settings.hops.via(hop).await,
                None => settings.hops.hops(&domain).await,
            };
            let mut hops = match found {
                Ok(hops) => hops,
                Err(route::NoRoute::Permanent { status, text }) => {
                    for &i in &targets {
                        let r = &mut envelope.recipients[i];
                        r.state = State::Failed;
                        r.status = Some(status);
                        r.detail = Some(text.clone());
                    }
                    continue;
                }
                Err(route::NoRoute::Temporary(text)) => {
                    defer(envelope, &targets, codes::TEMP_ROUTING, text, &mut errors);
                    continue;
                }
            };
            // MTA-STS, for a domain reached by its MX records: under `enforce` only the MX
            // hosts the policy names, and only over TLS with a certificate valid for them.
            let policy = match via {
                None if !settings.hops.routed(&domain) => self.sts_policy(&domain, &settings).await,
                _ => None,
            };
            let enforce = policy.as_ref().filter(|p| p.mode == sts::Mode::Enforce);
            if let Some(policy) = &policy {
                let (allowed, refused): (Vec<_>, Vec<_>) = hops.iter().map(|h| h.name.clone()).partition(|name| policy.allows(name));
                if !refused.is_empty() {
                    tracing::info!(queue_id = envelope.id, domain, mode = ?policy.mode, refused = refused.join(","), "MX hosts outside the MTA-STS policy");
                }
                if enforce.is_some() {
                    hops.retain(|h| allowed.contains(&h.name));
                    if hops.is_empty() {
                        let text = format!("no MX host of {domain} is one its MTA-STS policy names ({})", policy.mx.join(", "));
                        defer(envelope, &targets, codes::TEMP_ROUTING, text, &mut errors);
                        continue;
                    }
                }
            }
            // Under a policy the certificate is checked; `testing` relays again without the
            // check when it fails (and the TLS report says so).
            let connector = policy.as_ref().and(settings.verified_tls.clone()).map(tokio_rustls::TlsConnector::from);
            let testing = policy.as_ref().is_some_and(|p| p.mode == sts::Mode::Testing);
            let level = settings.config.tls.opportunistic();
            let group_security = match &connector {
                Some(connector) => client::Security::Verified(connector),
                None => client::Security::Level(level),
            };
            // DANE, for a domain reached through DNSSEC-secure MX records: each host's TLSA
            // records decide (before MTA-STS, RFC 8461 2).
            let dane = match (settings.config.tls, &via) {
                (client::TlsLevel::Dane, None) if !settings.hops.routed(&domain) => match settings.dns.validating() {
                    Ok(resolver) if dane::secure_mx(resolver, &domain).await => Some(resolver),
                    _ => None,
                },
                _ => None,
            };
            // RFC 8460: sessions to a domain reached through its MX records are counted.
            let reported = via.is_none() && !settings.hops.routed(&domain) && settings.config.tls != client::TlsLevel::None;
            let report = |hop: &route::Hop, tlsa: &[dane::Tlsa], addr: std::net::SocketAddr, failure: Option<&str>, detail: &str| {
                if reported {
                    let session = tlsrpt::Session {
                        domain: domain.clone(),
                        policy: if tlsa.is_empty() { policy.clone() } else { None },
                        tlsa: tlsa.iter().map(dane::Tlsa::text).collect(),
                        mx: hop.name.clone(),
                        ip: addr.ip().to_string(),
                        failure: failure.map(str::to_string),
                        detail: detail.to_string(),
                    };
                    tlsrpt::record(&self.tlsrpt_dir, &session);
                }
            };
            let mut last_error = format!("no address for {domain}");
            let mut done = false;
            'hops: for hop in &hops {
                let (tlsa, dane_connector) = match dane {
                    Some(resolver) => match dane::host(resolver, &hop.name, settings.config.mx_port).await {
                        dane::Host::Required(records) => {
                            let connector = dane::connector(records.clone());
                            (records, connector)
                        }
                        dane::Host::Opportunistic => (Vec::new(), None),
                        dane::Host::Unreachable(text) => {
                            tracing::info!(queue_id = envelope.id, hop = hop.name, error = text, "DANE: no usable answer for the host; skipped");
                            last_error = format!("{}: {text}", hop.name);
                            continue;
                        }
                    },
                    None => (Vec::new(), None),
                };
                let security = match &dane_connector {
                    Some(connector) => client::Security::Verified(connector),
                    None => group_security,
                };
                for addr in &hop.addrs {
                    let peer = client::Peer { name: &hop.name, addr: *addr };
                    let sending = match &rewritten {
                        Some(sender) => std::borrow::Cow::Owned(Envelope { sender: sender.clone(), ..envelope.clone() }),
                        None => std::borrow::Cow::Borrowed(&*envelope),
                    };
                    let mut relayed = client::relay(peer, &self.hostname, security, timeouts, &sending, &targets, content).await;
                    // A session counts once in the reports, under the policy's check.
                    let mut counted = false;
                    if let Err(client::Failure { error: client::SessionError(e), tls: Some(kind) }) = &relayed {
                        report(hop, &tlsa, *addr, Some(kind), e);
                        counted = true;
                        if testing && dane_connector.is_none() {
                            tracing::info!(
                                queue_id = envelope.id,
                                hop = hop.name,
                                error = e,
                                "MTA-STS testing: TLS failed the policy's check; relaying without it"
                            );
                            relayed =
                                client::relay(peer, &self.hostname, client::Security::Level(level), timeouts, &sending, &targets, content).await;
                        }
                    }
                    drop(sending);
                    match relayed {
                        Ok((outcomes, secured)) => {
                            match &secured {
                                _ if counted => {}
                                client::Secured::Tls(_) => report(hop, &tlsa, *addr, None, ""),
                                client::Secured::Clear => report(hop, &tlsa, *addr, Some("starttls-not-supported"), "STARTTLS not offered"),
                                client::Secured::ClearAfterFailure => {
                                    report(hop, &tlsa, *addr, Some("validation-failure"), "the TLS handshake failed")
                                }
                            }
                            crate::metrics::get().relay_session(secured.label());
                            for (&i, outcome) in targets.iter().zip(outcomes) {
                                apply_outcome(&envelope.id, &mut envelope.recipients[i], &hop.name, &secured, outcome, &mut errors);
                            }
                            done = true;
                            break 'hops;
                        }
                        Err(client::Failure { error: client::SessionError(e), .. }) => {
                            tracing::info!(queue_id = envelope.id, hop = hop.name, %addr, error = e, "relay attempt failed");
                            last_error = format!("{} ({addr}): {e}", hop.name);
                        }
                    }
                }
            }
            if !done {
                defer(envelope, &targets, codes::TEMP_NO_ANSWER, last_error, &mut errors);
            }
        }
        errors
    }
}

impl Queue {
    /// The envelope sender forwarded mail leaves with: rewritten by SRS (`[srs]`), unless it
    /// is the null sender or in a local domain (whose SPF record names this server anyway).
    fn forwarding_sender(&self, envelope: &Envelope, settings: &super::Settings) -> Option<String> {
        let srs = settings.srs.as_ref()?;
        let (_, domain) = envelope.sender.rsplit_once('@')?;
        if settings.router.is_local(domain) {
            return None;
        }
        let rewritten = srs.forward(&envelope.sender, crate::authenticity::srs::today());
        tracing::info!(queue_id = envelope.id, from = envelope.sender, srs = rewritten, "forwarded mail leaves with an SRS sender");
        Some(rewritten)
    }

    /// The MTA-STS policy in force for `domain` (mode `none` counts as none), when MTA-STS is
    /// on and a resolver works.
    async fn sts_policy(&self, domain: &str, settings: &super::Settings) -> Option<sts::Policy> {
        let tls = settings.verified_tls.clone()?;
        let resolver = settings.dns.resolver().ok()?;
        let fetcher = sts::Fetcher { resolver, port: settings.config.mta_sts_port, tls };
        self.sts.policy(domain, &fetcher).await.filter(|p| p.mode != sts::Mode::None)
    }

    /// Forwarded mail with an ARC set on top (the Return-Path left out, as the relay client
    /// leaves it out), when a signer covers the hostname's domain.
    async fn arc_sealed(&self, envelope: &Envelope, content: &[u8], settings: &super::Settings) -> Option<Vec<u8>> {
        let auth = settings.dns.authenticator().ok()?;
        let ip = envelope.client_ip.parse().ok()?;
        let client = crate::authenticity::verify::Client { ip, helo: &envelope.helo, sender: &envelope.sender, hostname: &self.hostname };
        let content = client::strip_return_path(content);
        match crate::authenticity::arc::seal(auth, &settings.dkim, &client, content).await {
            Ok(Some(set)) => {
                tracing::info!(queue_id = envelope.id, "forwarded mail ARC-sealed");
                Some([set.as_bytes(), content].concat())
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(queue_id = envelope.id, error = e, "ARC sealing failed; forwarded without a seal");
                None
            }
        }
    }
}

/// The `targets` wait for a later attempt, with this status and reason.
fn defer(envelope: &mut Envelope, targets: &[usize], status: wasmail_proto::smtp::EnhancedCode, text: String, errors: &mut Vec<String>) {
    for &i in targets {
        let r = &mut envelope.recipients[i];
        r.status = Some(status);
        r.detail = Some(text.clone());
    }
    errors.push(text);
}

/// Whether a recipient waits for the relay.
fn has_remote_work(envelope: &Envelope) -> bool {
    envelope.recipients.iter().any(|r| r.state == State::Pending && r.remote && r.routed)
}

/// After routing: mailboxes that no pending recipient needs any more (a hook moved the copy
/// into a folder, redirected or discarded it) are settled without a copy; the mailboxes of
/// recipients whose route is not decided yet are held for a later attempt (returned).
fn settle_mailboxes(envelope: &mut Envelope) -> Vec<usize> {
    let pending: Vec<&Recipient> = envelope.recipients.iter().filter(|r| r.state == State::Pending).collect();
    let needed: Vec<usize> = pending.iter().filter(|r| r.routed).flat_map(|r| r.mailboxes.clone()).collect();
    let waiting: Vec<usize> = pending.iter().filter(|r| !r.routed).flat_map(|r| r.mailboxes.clone()).filter(|m| !needed.contains(m)).collect();
    for (i, mailbox) in envelope.mailboxes.iter_mut().enumerate() {
        if !mailbox.delivered && !needed.contains(&i) && !waiting.contains(&i) {
            mailbox.delivered = true;
        }
    }
    waiting
}

/// The message as the delivery hooks see it.
fn message_info(envelope: &Envelope, content: &[u8], limits: &wasmail_mime::Limits, room: usize) -> MessageInfo {
    let headers = header_view(content, limits, room);
    MessageInfo { queue_id: envelope.id.clone(), sender: envelope.sender.clone(), headers, size: content.len() as u64 }
}

/// The header fields the delivery hooks see: those within the `[mime]` header limits and
/// within `room` octets (what the plugins' memory takes). A queued message is past refusing,
/// so a longer header (one accepted with `on_limit = "pass"` and no data hook) is cut to its
/// first fields rather than skipping the hooks: they always run, on at most
/// `max_header_fields` fields and `max_header_size` octets.
fn header_view(content: &[u8], limits: &wasmail_mime::Limits, room: usize) -> Vec<crate::plugin::Header> {
    use wasmail_mime::header;
    let section = header::section(content, 0..content.len(), limits.max_header_fields);
    let mut used = 0;
    section
        .fields
        .iter()
        .take_while(|f| {
            used += f.end - f.start + crate::plugin::HEADER_OVERHEAD;
            f.end <= limits.max_header_size && used <= room
        })
        .map(|f| crate::plugin::Header { name: f.name.clone(), value: header::unfolded_value(content, f) })
        .collect()
}

/// Records what the next hop said about one recipient.
/// What a relay session's reply means for a recipient. The detail (`wasmail queue list`)
/// and the log name the hop and the TLS the session ran under.
fn apply_outcome(id: &str, r: &mut Recipient, hop: &str, secured: &client::Secured, outcome: client::Outcome, errors: &mut Vec<String>) {
    let tls = secured.to_string();
    match outcome {
        client::Outcome::Accepted { reply, dsn } => {
            r.state = State::Delivered;
            r.relayed = Some(if dsn { spool::RelayedTo::Dsn } else { spool::RelayedTo::Plain });
            r.status = Some(reply.status());
            r.detail = Some(format!("relayed to {hop} ({tls}): {}", reply.text()));
            tracing::info!(queue_id = id, to = r.address, hop, tls, reply = reply.text(), "relayed");
        }
        client::Outcome::Rejected(reply) => {
            r.state = State::Failed;
            r.status = Some(reply.status());
            r.diagnostic = Some(format!("smtp; {}", reply.text()));
            r.detail = Some(format!("{hop} ({tls}) said: {}", reply.text()));
            tracing::info!(queue_id = id, to = r.address, hop, tls, reply = reply.text(), "relay refused");
        }
        client::Outcome::Deferred(text) => {
            r.status = Some(codes::TEMP_OTHER);
            r.detail = Some(format!("{hop} ({tls}) said: {text}"));
            errors.push(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_hooks_see_the_header_within_the_limits() {
        let content: String = (0..3000).map(|i| format!("X-{i:04}: {}\r\n", "v".repeat(40))).collect::<String>() + "\r\nbody\r\n";
        let limits = wasmail_mime::Limits::default();
        let all = header_view(content.as_bytes(), &limits, usize::MAX);
        assert_eq!(all.len(), 1000, "max_header_fields");
        assert_eq!((all[0].name.as_str(), all[999].name.as_str()), ("X-0000", "X-0999"));
        let small = wasmail_mime::Limits { max_header_size: 5000, ..limits };
        assert_eq!(header_view(content.as_bytes(), &small, usize::MAX).len(), 100, "max_header_size: 100 fields of 50 octets");
        assert_eq!(header_view(content.as_bytes(), &limits, 660).len(), 10, "room: 10 fields of 50 + 16 octets");
    }
}
