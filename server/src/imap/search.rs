//! SEARCH and UID SEARCH (RFC 3501 6.4.4): every key, over flags and dates from the index and,
//! when a key needs it, the message itself (header fields with RFC 2047 words decoded; text
//! parts decoded from their transfer encoding and charset). Matching is case-insensitive
//! substring matching, as the RFC asks.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDate;
use wasmail_mime::{Kind, Part};
use wasmail_proto::imap::response::string_into;
use wasmail_proto::imap::{sequence, Flag, SearchKey, SearchReturn, SequenceSet};

use super::session::{blocking, Outcome, Session};
use super::structure::{addresses_text, Parsed};
use crate::store::{Flags, MessageInfo};

/// The fields whose addresses SEARCH also compares without comments.
const ADDRESS_FIELDS: [&str; 6] = ["from", "to", "cc", "bcc", "sender", "reply-to"];

impl Session {
    /// SEARCH and UID SEARCH; with RETURN options (RFC 4731), answered with ESEARCH.
    pub(super) async fn search(&mut self, uid: bool, ret: Option<&[SearchReturn]>, tag: &str, key: &SearchKey) -> Outcome {
        let with_modseq = uses_modseq(key);
        if with_modseq {
            self.use_condstore();
        }
        let found = match self.matching(key).await {
            Ok(found) => found,
            Err(e) => {
                // RFC 5182 2.1: a failed SEARCH ... SAVE leaves `$` empty.
                if ret.is_some_and(|r| r.contains(&SearchReturn::Save)) {
                    self.selected.as_mut().expect("selected").saved.clear();
                }
                return super::session::store_error(&e, "SEARCH");
            }
        };
        let results: Vec<Found> = found.iter().map(|(seq, m)| Found { uid: m.uid, seq, modseq: m.modseq }).collect();
        match ret {
            // IMAP4rev2 has no SEARCH response: ESEARCH with ALL (RFC 9051 6.4.4).
            None if self.rev2 => {
                if let Err(refused) = self.returned(tag, uid, &[SearchReturn::All], &results, with_modseq, key, None) {
                    return refused;
                }
            }
            None => {
                let mut list: String = results.iter().map(|r| format!(" {}", r.number(uid))).collect();
                // RFC 7162 3.1.5: a search by MODSEQ gives the highest of the matches.
                if let (true, Some(highest)) = (with_modseq, results.iter().map(|r| r.modseq).max()) {
                    list.push_str(&format!(" (MODSEQ {highest})"));
                }
                self.untagged(&format!("SEARCH{list}"));
            }
            Some(options) => {
                if let Err(refused) = self.returned(tag, uid, options, &results, with_modseq, key, None) {
                    return refused;
                }
            }
        }
        Outcome::ok("SEARCH completed")
    }

    /// The messages of the view that match `key`, with their message numbers, in order
    /// (what SEARCH, SORT and THREAD start from). Messages gone meanwhile do not match.
    pub(super) async fn matching(&mut self, key: &SearchKey) -> std::io::Result<Matched> {
        self.matching_among(key, None).await
    }

    /// [`Session::matching`] among the messages with these UIDs only (all if None).
    pub(super) async fn matching_among(&mut self, key: &SearchKey, only: Option<&HashSet<u32>>) -> std::io::Result<Matched> {
        let selected = self.selected.as_ref().expect("selected");
        // `$` (RFC 5182) is the saved result: its UIDs.
        let key = &with_saved(key, &selected.saved);
        // The view goes to the blocking pool shared, not copied: candidates by number.
        let candidates: Vec<(u32, bool)> = selected
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !selected.gone.contains(&m.uid) && only.is_none_or(|only| only.contains(&m.uid)))
            .map(|(i, m)| (i as u32 + 1, selected.recent.contains(&m.uid)))
            .collect();
        let messages = Arc::clone(&selected.messages);
        let count = selected.messages.len() as u32;
        let largest_uid = selected.messages.last().map(|m| m.uid).unwrap_or(0);
        let (store, user, name, key) = (Arc::clone(&self.ctx.store), self.user(), selected.name.clone(), key.clone());
        blocking(move || {
            let mut seqs = Vec::new();
            let needs_content = needs_content(&key);
            for (seq, recent) in candidates {
                let message = &messages[seq as usize - 1];
                let content = if needs_content {
                    match store.fetch(&user, &name, message) {
                        Ok(content) => Some(content),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                } else {
                    None
                };
                let parsed = content.as_deref().map(Parsed::new);
                let context = Candidate { seq, message, recent, parsed: parsed.as_ref(), count, largest_uid };
                if context.matches(&key) {
                    seqs.push(seq);
                }
            }
            Ok(Matched { messages, seqs })
        })
        .await
    }
}

/// What a search found: message numbers, ascending, in the view it searched.
pub(super) struct Matched {
    pub messages: Arc<Vec<MessageInfo>>,
    pub seqs: Vec<u32>,
}

impl Matched {
    /// The messages found, with their numbers.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &MessageInfo)> {
        self.seqs.iter().map(|&seq| (seq, &self.messages[seq as usize - 1]))
    }
}

/// One message a SEARCH or SORT found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub uid: u32,
    pub seq: u32,
    pub modseq: u64,
}

impl Found {
    /// Its UID for a UID command, else its message number.
    pub fn number(&self, uid: bool) -> u32 {
        if uid {
            self.uid
        } else {
            self.seq
        }
    }
}

/// `ESEARCH (TAG "a1") UID MIN 2 MAX 9 COUNT 4 ALL 2:3,9` for the numbers found, in result
/// order, with their mod-sequences (RFC 4731 3.1): MIN, MAX and ALL are left out when nothing
/// matched, COUNT is not; PARTIAL gives the results from one position to another (RFC 5267
/// 4.4). `with_modseq` (a search by MODSEQ) adds the highest mod-sequence of the messages the
/// answer names: all of them with ALL or COUNT, else the MIN and MAX ones (RFC 7162 3.1.5).
pub(super) fn esearch(tag: &str, uid: bool, options: &[SearchReturn], found: &[(u32, u64)], with_modseq: bool) -> String {
    // A tag is an atom: its quoted string is always a quoted string, never a literal.
    let mut quoted = Vec::new();
    string_into(&mut quoted, tag.as_bytes());
    let mut out = format!("ESEARCH (TAG {})", String::from_utf8_lossy(&quoted));
    if uid {
        out.push_str(" UID");
    }
    for option in options {
        match option {
            SearchReturn::Min => found.first().iter().for_each(|(n, _)| out.push_str(&format!(" MIN {n}"))),
            SearchReturn::Max => found.last().iter().for_each(|(n, _)| out.push_str(&format!(" MAX {n}"))),
            SearchReturn::Count => out.push_str(&format!(" COUNT {}", found.len())),
            SearchReturn::All if !found.is_empty() => {
                let numbers: Vec<u32> = found.iter().map(|(n, _)| *n).collect();
                out.push_str(&format!(" ALL {}", sequence::compact(&numbers)));
            }
            SearchReturn::All => {}
            SearchReturn::Partial(first, last) => {
                let (first, last) = (*first as usize, *last as usize);
                let numbers: Vec<u32> = found.iter().skip(first - 1).take(last + 1 - first).map(|(n, _)| *n).collect();
                let set = if numbers.is_empty() { "NIL".to_string() } else { sequence::compact(&numbers) };
                out.push_str(&format!(" PARTIAL ({first}:{last} {set})"));
            }
            SearchReturn::Save | SearchReturn::Update | SearchReturn::Context => {}
        }
    }
    if with_modseq {
        let named: Vec<u64> = if options.iter().any(|o| matches!(o, SearchReturn::All | SearchReturn::Count)) {
            found.iter().map(|(_, m)| *m).collect()
        } else {
            let min = options.contains(&SearchReturn::Min).then(|| found.first()).flatten();
            let max = options.contains(&SearchReturn::Max).then(|| found.last()).flatten();
            min.into_iter().chain(max).map(|(_, m)| *m).collect()
        };
        if let Some(highest) = named.into_iter().max() {
            out.push_str(&format!(" MODSEQ {highest}"));
        }
    }
    out
}

fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(inner) => uses_modseq(inner),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        _ => false,
    }
}

/// The key with every `$` set made the saved UIDs.
fn with_saved(key: &SearchKey, saved: &[u32]) -> SearchKey {
    match key {
        SearchKey::Uid(set) | SearchKey::Sequence(set) if set.is_saved() => SearchKey::Uid(SequenceSet::of(saved)),
        SearchKey::Not(inner) => SearchKey::Not(Box::new(with_saved(inner, saved))),
        SearchKey::Or(a, b) => SearchKey::Or(Box::new(with_saved(a, saved)), Box::new(with_saved(b, saved))),
        SearchKey::And(keys) => SearchKey::And(keys.iter().map(|k| with_saved(k, saved)).collect()),
        other => other.clone(),
    }
}

fn needs_content(key: &SearchKey) -> bool {
    match key {
        SearchKey::Header { .. }
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        SearchKey::Not(inner) => needs_content(inner),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::And(keys) => keys.iter().any(needs_content),
        _ => false,
    }
}

/// One message being searched.
struct Candidate<'a> {
    seq: u32,
    message: &'a MessageInfo,
    recent: bool,
    parsed: Option<&'a Parsed<'a>>,
    /// Messages in the mailbox and the largest UID, for `*` in sets.
    count: u32,
    largest_uid: u32,
}

impl Candidate<'_> {
    fn matches(&self, key: &SearchKey) -> bool {
        let flags = &self.message.flags;
        match key {
            SearchKey::All => true,
            SearchKey::Flag { flag, set } => self.has(flag) == *set,
            SearchKey::New => self.recent && !flags.has(Flags::SEEN),
            SearchKey::Old => !self.recent,
            SearchKey::Header { name, value } => self.header_contains(name, value),
            SearchKey::Body(text) => self.body_contains(text),
            SearchKey::Text(text) => self.header_contains("", text) || self.body_contains(text),
            SearchKey::Before(date) => internal_day(self.message.internal_date) < *date,
            SearchKey::On(date) => internal_day(self.message.internal_date) == *date,
            SearchKey::Since(date) => internal_day(self.message.internal_date) >= *date,
            SearchKey::SentBefore(date) => self.sent_day().is_some_and(|d| d < *date),
            SearchKey::SentOn(date) => self.sent_day().is_some_and(|d| d == *date),
            SearchKey::SentSince(date) => self.sent_day().is_some_and(|d| d >= *date),
            SearchKey::Larger(n) => self.message.size > *n,
            SearchKey::Smaller(n) => self.message.size < *n,
            SearchKey::Uid(set) => set.contains(self.message.uid, self.largest_uid),
            SearchKey::Sequence(set) => set.contains(self.seq, self.count),
            SearchKey::ModSeq(at_least) => self.message.modseq >= *at_least,
            SearchKey::Not(inner) => !self.matches(inner),
            SearchKey::Or(a, b) => self.matches(a) || self.matches(b),
            SearchKey::And(keys) => keys.iter().all(|k| self.matches(k)),
        }
    }

    fn has(&self, flag: &Flag) -> bool {
        let flags = &self.message.flags;
        match flag {
            Flag::Seen => flags.has(Flags::SEEN),
            Flag::Answered => flags.has(Flags::ANSWERED),
            Flag::Flagged => flags.has(Flags::FLAGGED),
            Flag::Deleted => flags.has(Flags::DELETED),
            Flag::Draft => flags.has(Flags::DRAFT),
            Flag::Recent => self.recent,
            Flag::Keyword(k) => flags.has_keyword(k),
        }
    }

    /// Whether a field called `name` (any field, for "") contains `text`, RFC 2047 decoded;
    /// an address field also as its addresses, without comments (see [`addresses_text`]).
    /// An empty `text` matches any message that has the field (RFC 3501 6.4.4 HEADER).
    fn header_contains(&self, name: &str, text: &str) -> bool {
        let Some(parsed) = self.parsed else { return false };
        let needle = text.to_lowercase();
        parsed.root.fields.iter().filter(|f| name.is_empty() || f.name.eq_ignore_ascii_case(name)).any(|f| {
            let value = wasmail_mime::words::decode(&wasmail_mime::header::unfolded_value(parsed.content, f));
            value.to_lowercase().contains(&needle)
                || (ADDRESS_FIELDS.iter().any(|a| f.name.eq_ignore_ascii_case(a)) && addresses_text(&value).to_lowercase().contains(&needle))
        })
    }

    /// Whether a text part of the body contains `text`, decoded.
    fn body_contains(&self, text: &str) -> bool {
        let Some(parsed) = self.parsed else { return false };
        let needle = text.to_lowercase();
        let mut seen = HashSet::new();
        body_texts(parsed.content, &parsed.root, &mut seen).iter().any(|t| t.to_lowercase().contains(&needle))
    }

    fn sent_day(&self) -> Option<NaiveDate> {
        let date = self.parsed?.field("date")?;
        // RFC 3501: the date, disregarding time and time zone.
        chrono::DateTime::parse_from_rfc2822(date.trim()).ok().map(|d| d.date_naive())
    }
}

/// The decoded text of every text part (and of the bodies of attached messages).
fn body_texts(content: &[u8], part: &Part, seen: &mut HashSet<usize>) -> Vec<String> {
    if !seen.insert(part.start) && part.start != 0 {
        return Vec::new();
    }
    match &part.kind {
        Kind::Multipart { parts, .. } => parts.iter().flat_map(|p| body_texts(content, p, seen)).collect(),
        Kind::Message(inner) => body_texts(content, inner, seen),
        Kind::Leaf if part.content_type.kind == "text" => {
            let decoded = wasmail_mime::transfer::decode(&part.encoding, &content[part.body.clone()]);
            let charset = part.content_type.param("charset").unwrap_or("us-ascii");
            vec![wasmail_mime::words::decode_charset(charset, &decoded).unwrap_or_else(|| String::from_utf8_lossy(&decoded).into_owned())]
        }
        Kind::Leaf => Vec::new(),
    }
}

fn internal_day(seconds: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default().date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esearch_answers() {
        let all = [SearchReturn::Min, SearchReturn::Max, SearchReturn::Count, SearchReturn::All];
        let found = [(2, 5), (3, 9), (4, 1), (9, 1), (11, 1), (12, 7)];
        assert_eq!(esearch("a1", true, &all, &found, false), "ESEARCH (TAG \"a1\") UID MIN 2 MAX 12 COUNT 6 ALL 2:4,9,11:12");
        assert_eq!(esearch("a2", false, &all, &[], true), "ESEARCH (TAG \"a2\") COUNT 0");
        assert_eq!(esearch("a3", false, &[SearchReturn::All], &[(5, 1)], false), "ESEARCH (TAG \"a3\") ALL 5");
        // RFC 7162 3.1.5: the highest mod-sequence of the messages named.
        assert_eq!(esearch("a4", false, &[SearchReturn::Min], &found, true), "ESEARCH (TAG \"a4\") MIN 2 MODSEQ 5");
        assert_eq!(esearch("a5", false, &[SearchReturn::Min, SearchReturn::Max], &found, true), "ESEARCH (TAG \"a5\") MIN 2 MAX 12 MODSEQ 7");
        assert_eq!(esearch("a6", false, &[SearchReturn::Count], &found, true), "ESEARCH (TAG \"a6\") COUNT 6 MODSEQ 9");
        // RFC 5267 4.4, as imaptest's search-partial asks.
        assert_eq!(esearch("a7", false, &[SearchReturn::Partial(2, 4)], &found, false), "ESEARCH (TAG \"a7\") PARTIAL (2:4 3:4,9)");
        assert_eq!(esearch("a8", false, &[SearchReturn::Partial(7, 9)], &found, false), "ESEARCH (TAG \"a8\") PARTIAL (7:9 NIL)");
    }
}
