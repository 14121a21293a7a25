//! FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2). Messages are read and rendered on the blocking
//! pool a piece at a time — a trip ends once its output passes [`PIECE`], between messages or
//! between two items of one message — and each piece is written out before the next is
//! rendered, so that neither `FETCH 1:* BODY[]` on a large mailbox nor `FETCH 1 (BODY[]
//! BODY[] ...)` holds more than a piece and one item in memory. A body fetched without .PEEK
//! sets \Seen first, and the new flags follow the data. With CONDSTORE (RFC 7162 3.1.4-6),
//! MODSEQ is an item, CHANGEDSINCE keeps only messages changed since, and UID FETCH's
//! VANISHED modifier first names the UIDs of the set expunged since.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use wasmail_proto::imap::response::{literal_into, nstring_into};
use wasmail_proto::imap::{FetchAttr, SequenceSet};

use super::cache::{Lookup, Rendered};
use super::session::{blocking, flags_text, Outcome, Session};
use super::structure::Parsed;
use crate::store::{FlagChange, Flags, MailStore, MessageInfo};

/// Output rendered per trip to the blocking pool, before it is written out.
const PIECE: usize = 256 * 1024;

/// Where the next trip starts: a message of the targets, and an item of it.
#[derive(Debug, Clone, Copy, Default)]
struct Resume {
    target: usize,
    item: usize,
}

/// What one message's response needs.
struct Target {
    seq: usize,
    message: MessageInfo,
    recent: bool,
}

impl Session {
    pub(super) async fn fetch(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mut items: Vec<FetchAttr>,
        changed_since: Option<u64>,
        vanished: bool,
    ) -> std::io::Result<Outcome> {
        if vanished && !self.qresync {
            return Ok(Outcome::bad("VANISHED needs ENABLE QRESYNC first (RFC 7162 3.2.6)"));
        }
        if changed_since.is_some() || items.contains(&FetchAttr::ModSeq) {
            self.use_condstore();
        }
        let selected = self.selected.as_ref().expect("selected");
        let indexes = match selected.resolve(set, uid) {
            Ok(indexes) => indexes,
            Err(e) => return Ok(Outcome::bad(e)),
        };
        // UID FETCH always answers with the UID (RFC 3501 6.4.8), and every FETCH does once
        // QRESYNC is on (RFC 7162 3.2.4).
        if (uid || self.qresync) && !items.contains(&FetchAttr::Uid) {
            items.insert(0, FetchAttr::Uid);
        }
        // With CONDSTORE on, flags come with their mod-sequence; CHANGEDSINCE implies it
        // (RFC 7162 3.1.4).
        if !items.contains(&FetchAttr::ModSeq) && (changed_since.is_some() || (self.condstore && items.contains(&FetchAttr::Flags))) {
            items.push(FetchAttr::ModSeq);
        }
        let indexes: Vec<usize> = match changed_since {
            Some(since) => indexes.into_iter().filter(|&i| selected.messages[i].modseq > since).collect(),
            None => indexes,
        };
        if let (true, Some(since)) = (vanished, changed_since) {
            self.vanished_earlier(Some(set), since).await;
        }
        let selected = self.selected.as_ref().expect("selected");
        let sets_seen = !selected.read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchAttr::Rfc822 | FetchAttr::Rfc822Text | FetchAttr::Section { peek: false, .. } | FetchAttr::Binary { peek: false, .. }
                )
            });
        let wants_flags = items.contains(&FetchAttr::Flags);
        let (user, name, uid_validity) = (self.user(), selected.name.clone(), selected.uid_validity);
        // Messages expunged elsewhere but not yet reported are skipped: their files are gone.
        let indexes: Vec<usize> = indexes.into_iter().filter(|&i| !selected.gone.contains(&selected.messages[i].uid)).collect();
        let mut newly_seen = Vec::new();
        if sets_seen {
            let unseen: Vec<u32> = indexes.iter().map(|&i| &selected.messages[i]).filter(|m| !m.flags.has(Flags::SEEN)).map(|m| m.uid).collect();
            if !unseen.is_empty() {
                let (store, user, name) = (Arc::clone(&self.ctx.store), user.clone(), name.clone());
                let seen = Flags { system: Flags::SEEN, keywords: Vec::new() };
                match blocking(move || store.change_flags(&user, &name, &unseen, FlagChange::Add, &seen, None)).await {
                    Ok(changed) => {
                        let changed: HashMap<u32, (Flags, u64)> = changed.stored.into_iter().map(|(uid, f, m)| (uid, (f, m))).collect();
                        let selected = self.selected.as_mut().expect("selected");
                        for &i in &indexes {
                            if let Some((flags, modseq)) = changed.get(&selected.messages[i].uid) {
                                Arc::make_mut(&mut selected.messages)[i].flags = flags.clone();
                                Arc::make_mut(&mut selected.messages)[i].modseq = *modseq;
                                newly_seen.push(i);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot set \\Seen"),
                }
            }
        }
        let selected = self.selected.as_ref().expect("selected");
        let targets: Vec<Target> = indexes
            .iter()
            .map(|&i| Target {
                seq: i + 1,
                message: selected.messages[i].clone(),
                recent: !selected.rev2 && selected.recent.contains(&selected.messages[i].uid),
            })
            .collect();
        let (items, targets) = (Arc::new(items), Arc::new(targets));
        let (mut failed, mut unknown_cte) = (0, 0);
        let mut next = Some(Resume::default());
        // A few small messages whose pages are in memory (a synchronising client such as
        // mbsync fetches one message per command) are rendered on the session's own task:
        // the trip to the blocking pool and back cost more than reading them.
        if let Some(contents) = read_cached(self.ctx.store.as_ref(), &user, &name, &targets, &items) {
            let read = |index: usize| contents.get(index).map(|c| Cow::Borrowed(c.as_slice())).ok_or_else(|| std::io::ErrorKind::NotFound.into());
            let out = std::mem::take(self.conn.output());
            let (out, trouble, resume) =
                render_piece(&read, &mut self.cache.lookup(&user, &name, uid_validity), &targets, Resume::default(), &items, out);
            *self.conn.output() = out;
            failed += trouble.missing;
            unknown_cte += trouble.unknown_cte;
            next = resume;
            self.flush_if_large().await?;
        }
        while let Some(resume) = next {
            let (store, cache, user, name, items, targets) =
                (Arc::clone(&self.ctx.store), Arc::clone(&self.cache), user.clone(), name.clone(), Arc::clone(&items), Arc::clone(&targets));
            // Rendered straight into the connection's output buffer, which goes to the blocking
            // pool and back: no piece-sized buffer made, copied and freed per piece.
            let out = std::mem::take(self.conn.output());
            let (out, trouble, resume) = blocking(move || {
                let read = |index: usize| store.fetch(&user, &name, &targets[index].message).map(Cow::Owned);
                Ok(render_piece(&read, &mut cache.lookup(&user, &name, uid_validity), &targets, resume, &items, out))
            })
            .await?;
            *self.conn.output() = out;
            failed += trouble.missing;
            unknown_cte += trouble.unknown_cte;
            next = resume;
            self.flush_if_large().await?;
        }
        if !wants_flags {
            let (selected, condstore) = (self.selected.as_ref().expect("selected"), self.condstore);
            let lines: Vec<String> = newly_seen.iter().map(|&i| selected.flags_response(i, uid || self.qresync, condstore)).collect();
            for line in lines {
                self.untagged(&line);
            }
        }
        if unknown_cte > 0 {
            // RFC 3516 4.3.
            return Ok(Outcome::no_code("UNKNOWN-CTE", "A part's Content-Transfer-Encoding cannot be decoded"));
        }
        if failed > 0 {
            // RFC 3501 7.4.1 allows NO when some messages could not be fetched (gone meanwhile),
            // (with RFC 5530's code, as Dovecot answers).
            return Ok(Outcome::no_code("EXPUNGEISSUED", format!("Some of the requested messages no longer exist ({failed})")));
        }
        Ok(Outcome::ok("FETCH completed"))
    }
}

/// The most messages a FETCH renders on the session's task (see [`read_cached`]).
const INLINE_TARGETS: usize = 8;

/// The content of each target, when there are at most [`INLINE_TARGETS`] and the store can
/// give each without waiting for the disk (none read when the items need no content); None:
/// render on the blocking pool.
fn read_cached(store: &dyn MailStore, user: &str, mailbox: &str, targets: &[Target], items: &[FetchAttr]) -> Option<Vec<Vec<u8>>> {
    if targets.len() > INLINE_TARGETS {
        return None;
    }
    let needs_content = items.iter().any(|i| {
        matches!(
            i,
            FetchAttr::Envelope
                | FetchAttr::Body
                | FetchAttr::BodyStructure
                | FetchAttr::Rfc822
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
                | FetchAttr::Section { .. }
                | FetchAttr::Binary { .. }
                | FetchAttr::BinarySize { .. }
        )
    });
    if !needs_content {
        return Some(Vec::new());
    }
    targets.iter().map(|t| store.fetch_cached(user, mailbox, &t.message)).collect()
}

/// Renders `* n FETCH (...)` for the targets from `resume` on after what `out` holds, until
/// it passes [`PIECE`]; returns it, how many messages could not be read (removed meanwhile), and
/// where the next piece starts (None: done). ENVELOPE, BODY and BODYSTRUCTURE come from the
/// cache when it has them; the message is read (and parsed) only for what is left.
/// `read` gives a target's content by its index.
#[allow(clippy::too_many_arguments)]
fn render_piece<'a>(
    read: &dyn Fn(usize) -> std::io::Result<Cow<'a, [u8]>>,
    cache: &mut Lookup<'_>,
    targets: &[Target],
    resume: Resume,
    items: &[FetchAttr],
    mut out: Vec<u8>,
) -> (Vec<u8>, Trouble, Option<Resume>) {
    let wants_structure = items.iter().any(|i| matches!(i, FetchAttr::Envelope | FetchAttr::Body | FetchAttr::BodyStructure));
    let others_need_content = items.iter().any(|i| {
        matches!(
            i,
            FetchAttr::Rfc822
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
                | FetchAttr::Section { .. }
                | FetchAttr::Binary { .. }
                | FetchAttr::BinarySize { .. }
        )
    });
    // The whole message (BODY[], RFC822) is the content itself; the rest needs the structure.
    let others_need_parse = items.iter().any(|i| match i {
        FetchAttr::Section { section, .. } => !section.part.is_empty() || section.text.is_some(),
        FetchAttr::Binary { part, .. } | FetchAttr::BinarySize { part } => !part.is_empty(),
        FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => true,
        _ => false,
    });
    let (mut missing, mut unknown_cte) = (0, 0);
    for (index, target) in targets.iter().enumerate().skip(resume.target) {
        let first_item = if index == resume.target { resume.item } else { 0 };
        let cached = if wants_structure { cache.get(target.message.uid) } else { None };
        let must_parse = others_need_parse || (wants_structure && cached.is_none());
        let content = if others_need_content || must_parse {
            match read(index) {
                Ok(content) => Some(content),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(uid = target.message.uid, error = %e, "cannot read a message");
                    }
                    if first_item > 0 {
                        // Gone between two pieces: its response, begun, is closed.
                        out.extend_from_slice(b")\r\n");
                    }
                    missing += 1;
                    continue;
                }
            }
        } else {
            None
        };
        let parsed = if must_parse { content.as_deref().map(Parsed::new) } else { None };
        let rendered = match (wants_structure, cached, &parsed) {
            (false, _, _) => None,
            (true, Some(cached), _) => Some(cached),
            (true, None, parsed) => {
                let parsed = parsed.as_ref().expect("parsed when not cached");
                let rendered = Arc::new(Rendered::of(parsed));
                cache.put(target.message.uid, Arc::clone(&rendered));
                Some(rendered)
            }
        };
        if first_item == 0 {
            out.extend_from_slice(format!("* {} FETCH (", target.seq).as_bytes());
        }
        for (n, item) in items.iter().enumerate().skip(first_item) {
            if n > 0 {
                out.push(b' ');
            }
            let parts = Parts { content: content.as_deref(), parsed: parsed.as_ref(), rendered: rendered.as_deref() };
            unknown_cte += usize::from(!render_item(&mut out, target, &parts, item));
            if out.len() >= PIECE && n + 1 < items.len() {
                // The rest of this message's items in the next piece (the message is read again).
                return (out, Trouble { missing, unknown_cte }, Some(Resume { target: index, item: n + 1 }));
            }
        }
        out.extend_from_slice(b")\r\n");
        if out.len() >= PIECE && index + 1 < targets.len() {
            return (out, Trouble { missing, unknown_cte }, Some(Resume { target: index + 1, item: 0 }));
        }
    }
    (out, Trouble { missing, unknown_cte }, None)
}

/// What went wrong while rendering a piece.
#[derive(Default)]
struct Trouble {
    /// Messages that could not be read (expunged meanwhile).
    missing: usize,
    /// BINARY items of parts in a transfer encoding this server cannot decode (NIL sent).
    unknown_cte: usize,
}

/// What a message's items are rendered from; each is there when an item needs it.
struct Parts<'a> {
    content: Option<&'a [u8]>,
    parsed: Option<&'a Parsed<'a>>,
    rendered: Option<&'a Rendered>,
}

/// Writes one item; false for a BINARY item whose part could not be decoded (written NIL).
fn render_item(out: &mut Vec<u8>, target: &Target, parts: &Parts<'_>, item: &FetchAttr) -> bool {
    let message = &target.message;
    match item {
        FetchAttr::Uid => out.extend_from_slice(format!("UID {}", message.uid).as_bytes()),
        FetchAttr::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", message.modseq).as_bytes()),
        FetchAttr::Flags => out.extend_from_slice(format!("FLAGS {}", flags_text(&message.flags, target.recent)).as_bytes()),
        FetchAttr::InternalDate => out.extend_from_slice(format!("INTERNALDATE \"{}\"", internal_date(message.internal_date)).as_bytes()),
        FetchAttr::Rfc822Size => out.extend_from_slice(format!("RFC822.SIZE {}", message.size).as_bytes()),
        FetchAttr::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            out.extend_from_slice(&parts.rendered.expect("rendered").envelope);
        }
        FetchAttr::Body => {
            out.extend_from_slice(b"BODY ");
            out.extend_from_slice(&parts.rendered.expect("rendered").body);
        }
        FetchAttr::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            out.extend_from_slice(&parts.rendered.expect("rendered").bodystructure);
        }
        FetchAttr::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            literal_into(out, parts.content.expect("content read"));
        }
        FetchAttr::Rfc822Header => {
            let parsed = parts.parsed.expect("parsed");
            out.extend_from_slice(b"RFC822.HEADER ");
            let header = parsed
                .section(&wasmail_proto::imap::Section { part: vec![], text: Some(wasmail_proto::imap::SectionText::Header) })
                .unwrap_or_default();
            literal_into(out, &header);
        }
        FetchAttr::Rfc822Text => {
            let parsed = parts.parsed.expect("parsed");
            out.extend_from_slice(b"RFC822.TEXT ");
            literal_into(out, &parsed.content[parsed.root.body.clone()]);
        }
        FetchAttr::Section { section, partial, .. } => {
            let data: Option<Cow<'_, [u8]>> = match parts.parsed {
                Some(parsed) => parsed.section(section).map(Cow::Owned),
                None => Some(Cow::Borrowed(parts.content.expect("content read"))),
            };
            out.extend_from_slice(format!("BODY[{}]", section.spec()).as_bytes());
            match partial {
                Some((start, length)) => {
                    out.extend_from_slice(format!("<{start}> ").as_bytes());
                    let data = data.unwrap_or_default();
                    let start = (*start as usize).min(data.len());
                    let end = start.saturating_add(*length as usize).min(data.len());
                    literal_into(out, &data[start..end]);
                }
                None => {
                    out.push(b' ');
                    match data {
                        Some(data) => literal_into(out, &data),
                        None => nstring_into(out, None),
                    }
                }
            }
        }
        FetchAttr::Binary { part, partial, .. } => {
            let path = part.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            out.extend_from_slice(format!("BINARY[{path}]").as_bytes());
            if let Some((start, _)) = partial {
                out.extend_from_slice(format!("<{start}>").as_bytes());
            }
            out.push(b' ');
            let data = match binary(parts, part) {
                Ok(Some(data)) => data,
                Ok(None) => {
                    nstring_into(out, None);
                    return true;
                }
                Err(()) => {
                    nstring_into(out, None);
                    return false;
                }
            };
            // The choice of literal goes by the whole part, so that every piece of it is sent
            // the same way (as Dovecot does).
            let literal8 = !is_text(&data);
            let data = match partial {
                Some((start, length)) => {
                    let start = (*start as usize).min(data.len());
                    let end = start.saturating_add(*length as usize).min(data.len());
                    Cow::Owned(data[start..end].to_vec())
                }
                None => data,
            };
            if literal8 {
                out.extend_from_slice(format!("~{{{}}}\r\n", data.len()).as_bytes());
                out.extend_from_slice(&data);
            } else {
                literal_into(out, &data);
            }
        }
        FetchAttr::BinarySize { part } => {
            let path = part.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            match binary(parts, part) {
                Ok(Some(data)) => out.extend_from_slice(format!("BINARY.SIZE[{path}] {}", data.len()).as_bytes()),
                Ok(None) => out.extend_from_slice(format!("BINARY.SIZE[{path}] NIL").as_bytes()),
                Err(()) => {
                    out.extend_from_slice(format!("BINARY.SIZE[{path}] NIL").as_bytes());
                    return false;
                }
            }
        }
    }
    true
}

/// The octets BINARY[part] gives: the whole message for an empty path, else the part decoded
/// from its transfer encoding (RFC 3516); None if there is no such part, Err if its encoding
/// is not one this server knows.
fn binary<'a>(parts: &'a Parts<'_>, part: &[u32]) -> Result<Option<Cow<'a, [u8]>>, ()> {
    if part.is_empty() {
        return Ok(Some(Cow::Borrowed(parts.content.expect("content read"))));
    }
    parts.parsed.expect("parsed").binary(part).map(|found| found.map(Cow::Owned))
}

/// Whether octets may go in an ordinary literal: no NUL, and CR and LF only as CRLF (else a
/// literal8, RFC 3516 4.3).
fn is_text(data: &[u8]) -> bool {
    !data.contains(&0)
        && data.iter().enumerate().all(|(i, &b)| match b {
            b'\r' => data.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && data[i - 1] == b'\r',
            _ => true,
        })
}

/// date-time (RFC 3501 9): ` 7-Jul-1996 02:44:25 +0000`.
pub(super) fn internal_date(seconds: i64) -> String {
    let time = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    time.format("%e-%b-%Y %H:%M:%S +0000").to_string()
}
