//! SORT and UID SORT (RFC 5256 3), with SORT=DISPLAY's keys (RFC 5957) and ESORT's RETURN
//! options answered with ESEARCH (RFC 5267). Every key is compared as RFC 5256 says
//! (`i;ascii-casemap` for subjects and addresses, the sent date in UTC falling back to
//! INTERNALDATE), and the message number breaks every tie.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use wasmail_proto::imap::{SearchKey, SearchReturn, SortCriterion, SortKey};

use super::cache::Rendered;
use super::search::{Found, Matched};
use super::session::{blocking, store_error, Outcome, Session};
use super::structure::Parsed;
use crate::store::MessageInfo;

/// A message with its number and its sort keys.
#[derive(Clone, Copy)]
pub(super) struct Keyed<'a> {
    pub seq: u32,
    pub message: &'a MessageInfo,
    pub rendered: &'a Rendered,
}

/// Messages a search found, with their sort keys: what SORT and THREAD work on.
pub(super) struct WithFields {
    messages: Arc<Vec<MessageInfo>>,
    rendered: Vec<(u32, Arc<Rendered>)>,
}

impl WithFields {
    /// The messages in number order, each with its keys.
    pub fn keyed(&self) -> Vec<Keyed<'_>> {
        self.rendered.iter().map(|(seq, rendered)| Keyed { seq: *seq, message: &self.messages[*seq as usize - 1], rendered }).collect()
    }
}

impl Session {
    /// SORT, UID SORT, and with RETURN options ESORT.
    pub(super) async fn sort(&mut self, uid: bool, ret: Option<&[SearchReturn]>, tag: &str, criteria: &[SortCriterion], key: &SearchKey) -> Outcome {
        let found = match self.matching(key).await {
            Ok(found) => found,
            Err(e) => return store_error(&e, "SORT"),
        };
        let fielded = match self.sort_fields(found).await {
            Ok(fielded) => fielded,
            Err(e) => return store_error(&e, "SORT"),
        };
        let mut keyed = fielded.keyed();
        order(&mut keyed, criteria);
        let results: Vec<Found> = keyed.iter().map(|k| Found { uid: k.message.uid, seq: k.seq, modseq: k.message.modseq }).collect();
        match ret {
            None => {
                let mut line = String::with_capacity(5 + 7 * results.len());
                line.push_str("SORT");
                for r in &results {
                    let _ = write!(line, " {}", r.number(uid));
                }
                self.untagged(&line);
            }
            // ESORT (RFC 5267 3.2): MIN and MAX are the first and last in the sort order, ALL
            // the numbers as a set, PARTIAL positions in it. (ESEARCH's writer takes them in
            // the order given.)
            Some(options) => {
                if let Err(refused) = self.returned(tag, uid, options, &results, false, key, Some(criteria)) {
                    return refused;
                }
            }
        }
        Outcome::ok("SORT completed")
    }

    /// The sort keys of messages, from the structure cache or read from the message (and
    /// cached). Messages gone meanwhile are left out.
    pub(super) async fn sort_fields(&mut self, found: Matched) -> std::io::Result<WithFields> {
        let selected = self.selected.as_ref().expect("selected");
        let (store, cache, user, name) = (Arc::clone(&self.ctx.store), Arc::clone(&self.cache), self.user(), selected.name.clone());
        let uid_validity = selected.uid_validity;
        blocking(move || {
            let mut rendered = Vec::with_capacity(found.seqs.len());
            let mut cached = cache.lookup(&user, &name, uid_validity);
            for (seq, message) in found.iter() {
                let keys = match cached.get(message.uid) {
                    Some(keys) => keys,
                    None => {
                        let content = match store.fetch(&user, &name, message) {
                            Ok(content) => content,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        let keys = Arc::new(Rendered::of(&Parsed::new(&content)));
                        cached.put(message.uid, Arc::clone(&keys));
                        keys
                    }
                };
                rendered.push((seq, keys));
            }
            Ok(WithFields { messages: found.messages, rendered })
        })
        .await
    }
}

/// Puts messages in the order `criteria` give.
///
/// Sorted unstably: the message number breaks every tie, so the order is total.
/// Each entry carries a prefix of its first key, compared first: most comparisons end
/// there, without following a message's keys through two pointers.
pub(super) fn order(keyed: &mut Vec<Keyed<'_>>, criteria: &[SortCriterion]) {
    let first = criteria.first();
    let mut positions: Vec<(u128, Keyed<'_>)> = keyed.iter().map(|k| (first.map_or(0, |c| prefix(k, c.key)), *k)).collect();
    positions.sort_unstable_by(|(pa, a), (pb, b)| {
        let by_prefix = if first.is_some_and(|c| c.reverse) { pb.cmp(pa) } else { pa.cmp(pb) };
        by_prefix.then_with(|| compare(a, b, criteria))
    });
    keyed.clear();
    keyed.extend(positions.into_iter().map(|(_, k)| k));
}

/// A number whose order agrees with `key`'s order: when two prefixes differ, the keys differ
/// the same way. A text key's first 16 octets, zero-padded (a shorter key that is a prefix of
/// a longer one comes first, as in the full comparison); a number's value, sign-adjusted.
fn prefix(keyed: &Keyed<'_>, key: SortKey) -> u128 {
    let (message, fields) = (keyed.message, &keyed.rendered.fields);
    let text = |s: &str| {
        let mut octets = [0u8; 16];
        let n = s.len().min(16);
        octets[..n].copy_from_slice(&s.as_bytes()[..n]);
        u128::from_be_bytes(octets)
    };
    let number = |n: i64| u128::from((n as u64) ^ (1 << 63));
    match key {
        SortKey::Arrival => number(message.internal_date),
        SortKey::Date => number(fields.sent.unwrap_or(message.internal_date)),
        SortKey::Size => u128::from(message.size),
        SortKey::Subject => text(&fields.subject),
        SortKey::From => text(&fields.from),
        SortKey::To => text(&fields.to),
        SortKey::Cc => text(&fields.cc),
        SortKey::DisplayFrom => text(&fields.display_from),
        SortKey::DisplayTo => text(&fields.display_to),
    }
}

fn compare(a: &Keyed<'_>, b: &Keyed<'_>, criteria: &[SortCriterion]) -> Ordering {
    let (a_message, b_message) = (a.message, b.message);
    let (af, bf) = (&a.rendered.fields, &b.rendered.fields);
    for criterion in criteria {
        let order = match criterion.key {
            SortKey::Arrival => a_message.internal_date.cmp(&b_message.internal_date),
            SortKey::Date => af.sent.unwrap_or(a_message.internal_date).cmp(&bf.sent.unwrap_or(b_message.internal_date)),
            SortKey::Size => a_message.size.cmp(&b_message.size),
            SortKey::Subject => af.subject.cmp(&bf.subject),
            SortKey::From => af.from.cmp(&bf.from),
            SortKey::To => af.to.cmp(&bf.to),
            SortKey::Cc => af.cc.cmp(&bf.cc),
            SortKey::DisplayFrom => af.display_from.cmp(&bf.display_from),
            SortKey::DisplayTo => af.display_to.cmp(&bf.display_to),
        };
        let order = if criterion.reverse { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    // RFC 5256 3: the message number breaks ties, whatever REVERSE said.
    a.seq.cmp(&b.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::fields::Fields;
    use crate::store::Flags;

    fn message(seq: u32, subject: &str, sent: Option<i64>) -> (MessageInfo, Rendered) {
        let message = MessageInfo {
            uid: seq,
            id: seq.to_string(),
            location: String::new(),
            size: 10,
            flags: Flags::default(),
            internal_date: 0,
            modseq: 1,
            unseen_by_any: false,
        };
        let fields = Fields { subject: subject.to_string(), sent, ..Fields::default() };
        (message, Rendered { envelope: vec![], body: vec![], bodystructure: vec![], fields })
    }

    /// The numbers of `all` (numbered from 1) in the order `criteria` give.
    fn sorted(all: &[(MessageInfo, Rendered)], criteria: &[SortCriterion]) -> Vec<u32> {
        let mut keyed: Vec<Keyed<'_>> = all.iter().zip(1..).map(|((message, rendered), seq)| Keyed { seq, message, rendered }).collect();
        order(&mut keyed, criteria);
        keyed.iter().map(|k| k.seq).collect()
    }

    #[test]
    fn the_prefix_agrees_with_the_full_comparison() {
        let subjects = ["SAME SIXTEEN OCTB", "SAME SIXTEEN OCTA", "SAME", "SAME\0", "", "SAME SIXTEEN OCT", "B", "SAME SIXTEEN OCTA"];
        let all: Vec<_> = subjects.iter().enumerate().map(|(i, s)| message(i as u32 + 1, s, None)).collect();
        let by = |key, reverse| [SortCriterion { key, reverse }];
        // Ascending: by the whole subject, then the message number.
        assert_eq!(sorted(&all, &by(SortKey::Subject, false)), [5, 7, 3, 4, 6, 2, 8, 1]);
        // REVERSE reverses the subjects; the number still breaks the tie ascending.
        assert_eq!(sorted(&all, &by(SortKey::Subject, true)), [1, 2, 8, 6, 4, 3, 7, 5]);
        // Dates before 1970 come first.
        let dated: Vec<_> =
            [Some(5), Some(-5), None, Some(-1_000_000_000_000)].iter().enumerate().map(|(i, d)| message(i as u32 + 1, "", *d)).collect();
        assert_eq!(sorted(&dated, &by(SortKey::Date, false)), [4, 2, 3, 1]);
    }
}
