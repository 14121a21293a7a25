//! What the RETURN options of SEARCH and SORT ask beyond the answer itself: SAVE (RFC 5182
//! SEARCHRES) keeps the result as `$` for later commands; UPDATE (RFC 5267 CONTEXT=SEARCH and
//! CONTEXT=SORT) keeps the search, and after each command the client is told which messages
//! joined its result (ADDTO) and which left it (REMOVEFROM) — looking again only at the
//! messages whose mod-sequence passed the one the result was made at, so that a kept search
//! costs nothing while its mailbox does not change; CANCELUPDATE stops it.

use std::collections::HashSet;

use wasmail_proto::imap::response::string_into;
use wasmail_proto::imap::{sequence, SearchKey, SearchReturn, SortCriterion};

use super::search::{esearch, Found};
use super::session::{Outcome, Selected, Session};

/// A search whose result the client follows.
pub struct SearchContext {
    /// The tag of the SEARCH or SORT that made it: updates name it.
    pub tag: String,
    /// UIDs in the updates, or message numbers.
    pub uid: bool,
    pub key: SearchKey,
    /// A SORT's criteria: updates then give positions in its order.
    pub sort: Option<Vec<SortCriterion>>,
    /// The result, as UIDs in result order.
    pub results: Vec<u32>,
    /// Messages changed after this mod-sequence are looked at again.
    pub modseq: u64,
}

/// Searches one session may keep (RFC 5267 lets a server refuse more with NOUPDATE).
const MAX_CONTEXTS: usize = 16;

/// `"tag"` as a quoted string (tags are atoms: always one).
fn quoted(tag: &str) -> String {
    let mut out = Vec::new();
    string_into(&mut out, tag.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

impl Session {
    /// Answers a SEARCH or SORT that has RETURN options — ESEARCH, unless SAVE is all it
    /// asks — and keeps what SAVE and UPDATE ask to keep. `results` are in result order.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn returned(
        &mut self,
        tag: &str,
        uid: bool,
        options: &[SearchReturn],
        results: &[Found],
        with_modseq: bool,
        key: &SearchKey,
        sort: Option<&[SortCriterion]>,
    ) -> Result<(), Outcome> {
        let selected = self.selected.as_mut().expect("selected");
        if options.contains(&SearchReturn::Update) && selected.contexts.len() >= MAX_CONTEXTS {
            return Err(Outcome::no_code(format!("NOUPDATE {}", quoted(tag)), "Too many searches are kept; cancel one first"));
        }
        if options.contains(&SearchReturn::Save) {
            // RFC 5182 2.1: with MIN or MAX alone, only those are saved.
            let only_ends = !options.iter().any(|o| matches!(o, SearchReturn::All | SearchReturn::Count | SearchReturn::Partial(..)))
                && options.iter().any(|o| matches!(o, SearchReturn::Min | SearchReturn::Max));
            let mut saved: Vec<u32> = if only_ends {
                let first = options.contains(&SearchReturn::Min).then(|| results.first()).flatten();
                let last = options.contains(&SearchReturn::Max).then(|| results.last()).flatten();
                first.into_iter().chain(last).map(|r| r.uid).collect()
            } else {
                results.iter().map(|r| r.uid).collect()
            };
            saved.sort_unstable();
            saved.dedup();
            selected.saved = saved;
        }
        if options.contains(&SearchReturn::Update) {
            let modseq = selected.messages.iter().map(|m| m.modseq).max().unwrap_or(0);
            selected.contexts.push(SearchContext {
                tag: tag.to_string(),
                uid,
                key: key.clone(),
                sort: sort.map(<[SortCriterion]>::to_vec),
                results: results.iter().map(|r| r.uid).collect(),
                modseq,
            });
        }
        if options.iter().any(|o| *o != SearchReturn::Save) {
            let numbers: Vec<(u32, u64)> = results.iter().map(|r| (r.number(uid), r.modseq)).collect();
            self.untagged(&esearch(tag, uid, options, &numbers, with_modseq));
        }
        Ok(())
    }

    /// CANCELUPDATE (RFC 5267 4.3).
    pub(super) fn cancel_update(&mut self, tags: &[String]) -> Outcome {
        let Some(selected) = self.selected.as_mut() else { return Outcome::bad("Select a mailbox first") };
        if let Some(unknown) = tags.iter().find(|t| !selected.contexts.iter().any(|c| &c.tag == *t)) {
            return Outcome::bad(format!("No search is kept with the tag {unknown}"));
        }
        selected.contexts.retain(|c| !tags.contains(&c.tag));
        Outcome::ok("CANCELUPDATE completed")
    }

    /// Brings every kept search up to date with the view (after a refresh) and tells the
    /// client what joined and left each result.
    pub(super) async fn update_contexts(&mut self) {
        let count = self.selected.as_ref().map_or(0, |s| s.contexts.len());
        for index in 0..count {
            let selected = self.selected.as_ref().expect("selected");
            let context = &selected.contexts[index];
            let since = context.modseq;
            let changed: HashSet<u32> =
                selected.messages.iter().filter(|m| m.modseq > since && !selected.gone.contains(&m.uid)).map(|m| m.uid).collect();
            if changed.is_empty() {
                continue;
            }
            let newest = selected.messages.iter().map(|m| m.modseq).max().unwrap_or(since);
            let key = context.key.clone();
            let matched: HashSet<u32> = match self.matching_among(&key, Some(&changed)).await {
                Ok(found) => found.iter().map(|(_, m)| m.uid).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot bring a kept search up to date");
                    continue;
                }
            };
            let lines = self.apply_update(index, &changed, &matched, newest).await;
            for line in lines {
                self.untagged(&line);
            }
        }
    }

    /// Applies what a look at the `changed` messages found (`matched` of them match) to kept
    /// search `index`; the ESEARCH lines that say so.
    async fn apply_update(&mut self, index: usize, changed: &HashSet<u32>, matched: &HashSet<u32>, newest: u64) -> Vec<String> {
        let selected = self.selected.as_mut().expect("selected");
        let context = &mut selected.contexts[index];
        context.modseq = newest;
        let before = context.results.clone();
        let kept: HashSet<u32> = before.iter().copied().collect();
        let removed: Vec<u32> = before.iter().copied().filter(|u| changed.contains(u) && !matched.contains(u)).collect();
        let mut added: Vec<u32> = matched.iter().copied().filter(|u| !kept.contains(u)).collect();
        added.sort_unstable();
        if removed.is_empty() && added.is_empty() {
            return Vec::new();
        }
        let (tag, uid, sort) = (context.tag.clone(), context.uid, context.sort.clone());
        let leaving: HashSet<u32> = removed.iter().copied().collect();
        let mut results: Vec<u32> = before.iter().copied().filter(|u| !leaving.contains(u)).chain(added.iter().copied()).collect();
        if let Some(criteria) = &sort {
            results = self.sort_uids(&results, criteria).await;
        } else {
            results.sort_unstable();
        }
        let selected = self.selected.as_mut().expect("selected");
        let number = |u: u32| if uid { Some(u) } else { selected.messages.iter().position(|m| m.uid == u).map(|i| i as u32 + 1) };
        let head = format!("ESEARCH (TAG {}){}", quoted(&tag), if uid { " UID" } else { "" });
        let mut lines = Vec::new();
        if sort.is_some() {
            // Positions in the sort order: a removal at its old place, the last first; an
            // addition at its new place, the first first.
            let mut gone: Vec<(usize, u32)> = removed.iter().filter_map(|u| Some((before.iter().position(|b| b == u)? + 1, number(*u)?))).collect();
            gone.sort_unstable_by(|a, b| b.cmp(a));
            lines.extend(gone.into_iter().map(|(at, n)| format!("{head} REMOVEFROM ({at} {n})")));
            let mut joined: Vec<(usize, u32)> = added.iter().filter_map(|u| Some((results.iter().position(|r| r == u)? + 1, number(*u)?))).collect();
            joined.sort_unstable();
            lines.extend(joined.into_iter().map(|(at, n)| format!("{head} ADDTO ({at} {n})")));
        } else {
            // Position 0: a SEARCH has no order to place them in (RFC 5267 4.3).
            let mut gone: Vec<u32> = removed.iter().filter_map(|u| number(*u)).collect();
            gone.sort_unstable();
            if !gone.is_empty() {
                lines.push(format!("{head} REMOVEFROM (0 {})", sequence::compact(&gone)));
            }
            let mut joined: Vec<u32> = added.iter().filter_map(|u| number(*u)).collect();
            joined.sort_unstable();
            if !joined.is_empty() {
                lines.push(format!("{head} ADDTO (0 {})", sequence::compact(&joined)));
            }
        }
        selected.contexts[index].results = results;
        lines
    }

    /// UIDs of the view in a SORT's order.
    async fn sort_uids(&mut self, uids: &[u32], criteria: &[SortCriterion]) -> Vec<u32> {
        let selected = self.selected.as_ref().expect("selected");
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let seqs: Vec<u32> = selected.messages.iter().zip(1..).filter(|(m, _)| wanted.contains(&m.uid)).map(|(_, seq)| seq).collect();
        let found = super::search::Matched { messages: std::sync::Arc::clone(&selected.messages), seqs };
        match self.sort_fields(found).await {
            Ok(fielded) => {
                let mut keyed = fielded.keyed();
                super::sort::order(&mut keyed, criteria);
                keyed.iter().map(|k| k.message.uid).collect()
            }
            Err(_) => uids.to_vec(),
        }
    }
}

/// REMOVEFROM for the kept searches that hold messages about to be reported expunged — given
/// as (message number before the expunge, UID) — sent before the EXPUNGE responses, with the
/// numbers the client still has.
pub(super) fn expunged(selected: &mut Selected, gone: &[(u32, u32)]) -> Vec<String> {
    let mut lines = Vec::new();
    let gone_uids: HashSet<u32> = gone.iter().map(|(_, u)| *u).collect();
    for context in &mut selected.contexts {
        let held: HashSet<u32> = context.results.iter().copied().collect();
        let head = format!("ESEARCH (TAG {}){}", quoted(&context.tag), if context.uid { " UID" } else { "" });
        if context.sort.is_some() {
            let mut at: Vec<(usize, u32)> = gone
                .iter()
                .filter_map(|(seq, u)| Some((context.results.iter().position(|r| r == u)? + 1, if context.uid { *u } else { *seq })))
                .collect();
            at.sort_unstable_by(|a, b| b.cmp(a));
            lines.extend(at.into_iter().map(|(at, n)| format!("{head} REMOVEFROM ({at} {n})")));
        } else {
            let mut numbers: Vec<u32> = gone.iter().filter(|(_, u)| held.contains(u)).map(|(seq, u)| if context.uid { *u } else { *seq }).collect();
            numbers.sort_unstable();
            if !numbers.is_empty() {
                lines.push(format!("{head} REMOVEFROM (0 {})", sequence::compact(&numbers)));
            }
        }
        context.results.retain(|u| !gone_uids.contains(u));
    }
    lines
}
