//! SORT and UID SORT (RFC 5256 3), with SORT=DISPLAY's keys (RFC 5957) and ESORT's RETURN
//! options answered with ESEARCH (RFC 5267). Every key is compared as RFC 5256 says
//! (`i;ascii-casemap` for subjects and addresses, the sent date in UTC falling back to
//! INTERNALDATE), and the message number breaks every tie.

use std::cmp::Ordering;
use std::sync::Arc;

use wasmail_proto::imap::{SearchKey, SearchReturn, SortCriterion, SortKey};

use super::cache::Rendered;
use super::search::Found;
use super::session::{blocking, store_error, Outcome, Session};
use super::structure::Parsed;
use crate::store::MessageInfo;

/// A message with its number and its sort keys.
pub(super) type Keyed = (u32, MessageInfo, Arc<Rendered>);

impl Session {
    /// SORT, UID SORT, and with RETURN options ESORT.
    pub(super) async fn sort(&mut self, uid: bool, ret: Option<&[SearchReturn]>, tag: &str, criteria: &[SortCriterion], key: &SearchKey) -> Outcome {
        let found = match self.matching(key).await {
            Ok(found) => found,
            Err(e) => return store_error(&e, "SORT"),
        };
        let mut keyed = match self.sort_fields(found).await {
            Ok(keyed) => keyed,
            Err(e) => return store_error(&e, "SORT"),
        };
        order(&mut keyed, criteria);
        let results: Vec<Found> = keyed.iter().map(|(seq, m, _)| Found { uid: m.uid, seq: *seq, modseq: m.modseq }).collect();
        match ret {
            None => {
                let list: String = results.iter().map(|r| format!(" {}", r.number(uid))).collect();
                self.untagged(&format!("SORT{list}"));
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
    pub(super) async fn sort_fields(&mut self, found: Vec<(u32, MessageInfo)>) -> std::io::Result<Vec<Keyed>> {
        let selected = self.selected.as_ref().expect("selected");
        let (store, cache, user, name) = (Arc::clone(&self.ctx.store), Arc::clone(&self.cache), self.user(), selected.name.clone());
        blocking(move || {
            let mut out = Vec::with_capacity(found.len());
            for (seq, message) in found {
                let rendered = match cache.get(&user, &name, &message.id) {
                    Some(rendered) => rendered,
                    None => {
                        let content = match store.fetch(&user, &name, &message) {
                            Ok(content) => content,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        let rendered = Arc::new(Rendered::of(&Parsed::new(&content)));
                        cache.put(&user, &name, &message.id, Arc::clone(&rendered));
                        rendered
                    }
                };
                out.push((seq, message, rendered));
            }
            Ok(out)
        })
        .await
    }
}

/// Puts messages in the order `criteria` give.
pub(super) fn order(keyed: &mut [Keyed], criteria: &[SortCriterion]) {
    keyed.sort_by(|a, b| compare(a, b, criteria));
}

fn compare(a: &Keyed, b: &Keyed, criteria: &[SortCriterion]) -> Ordering {
    let ((a_seq, a_message, a_rendered), (b_seq, b_message, b_rendered)) = (a, b);
    let (af, bf) = (&a_rendered.fields, &b_rendered.fields);
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
    a_seq.cmp(b_seq)
}
