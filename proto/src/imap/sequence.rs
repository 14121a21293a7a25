//! sequence-set (RFC 3501 9): `1,3:5,7:*`, for message numbers and UIDs alike.

use super::parse::Parser;
use super::Error;

/// One end of a range: a number, or `*` (the largest number in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    Value(u32),
    Largest,
    /// `$`: the saved search result (RFC 5182), which the session puts in its place; a set
    /// that still holds it names nothing.
    Saved,
}

/// A set of numbers, as ranges whose ends may come in either order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNumber, SeqNumber)>);

impl SequenceSet {
    pub fn parse(p: &mut Parser<'_>) -> Result<SequenceSet, Error> {
        // RFC 5182: `$` stands alone.
        if p.eat(b'$') {
            return Ok(SequenceSet(vec![(SeqNumber::Saved, SeqNumber::Saved)]));
        }
        let mut ranges = Vec::new();
        loop {
            let first = seq_number(p)?;
            let last = if p.eat(b':') { seq_number(p)? } else { first };
            ranges.push((first, last));
            if ranges.len() > 10_000 {
                return Err(Error::Syntax("sequence set too long".into()));
            }
            if !p.eat(b',') {
                return Ok(SequenceSet(ranges));
            }
        }
    }

    /// Whether `n` is in the set, `*` standing for `largest`. RFC 3501 9: a range's ends may
    /// come in either order, and `*` is the largest number in use even for an empty mailbox.
    #[inline]
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.ranges(largest).any(|(low, high)| (low..=high).contains(&n))
    }

    /// The ranges as `(low, high)`, low first, with `*` standing for `largest`; they may
    /// overlap and come in any order, as the client wrote them.
    #[inline]
    pub fn ranges(&self, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().map(move |&(a, b)| {
            let (a, b) = (resolve(a, largest), resolve(b, largest));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        })
    }

    /// The positions, ascending and each once, of the set's numbers in a list of `len`
    /// ascending numbers that `number(i)` gives (a mailbox's UIDs, or its message numbers):
    /// found by binary search per range, so a command naming one message of a large mailbox
    /// does not look at all the others.
    pub fn positions(&self, len: usize, number: impl Fn(usize) -> u32, largest: u32) -> Vec<usize> {
        let first_at_least = |n: u32| {
            let (mut low, mut high) = (0, len);
            while low < high {
                let mid = low + (high - low) / 2;
                if number(mid) < n {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            low
        };
        let mut spans: Vec<(usize, usize)> = self
            .ranges(largest)
            .map(|(low, high)| (first_at_least(low), high.checked_add(1).map_or(len, first_at_least)))
            .filter(|(start, end)| start < end)
            .collect();
        spans.sort_unstable();
        let mut out = Vec::new();
        let mut next = 0;
        for (start, end) in spans {
            out.extend(start.max(next)..end);
            next = next.max(end);
        }
        out
    }

    /// Whether this is `$`, the saved search result.
    pub fn is_saved(&self) -> bool {
        self.0 == [(SeqNumber::Saved, SeqNumber::Saved)]
    }

    /// The set of exactly these ascending numbers.
    pub fn of(numbers: &[u32]) -> SequenceSet {
        let mut ranges: Vec<(SeqNumber, SeqNumber)> = Vec::new();
        for &n in numbers {
            match ranges.last_mut() {
                Some((_, SeqNumber::Value(high))) if high.checked_add(1) == Some(n) => *high = n,
                _ => ranges.push((SeqNumber::Value(n), SeqNumber::Value(n))),
            }
        }
        SequenceSet(ranges)
    }

    /// Whether every number is at most `largest` (for message numbers, which must exist).
    pub fn within(&self, largest: u32) -> bool {
        self.0.iter().all(|&(a, b)| resolve(a, largest) <= largest && resolve(b, largest) <= largest)
    }
}

/// Ascending numbers written as a sequence set, runs as ranges (`2:4,9,11:12`): how ESEARCH's
/// ALL and APPENDUID give a set of messages.
pub fn compact(numbers: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some(run) if run.1.checked_add(1) == Some(n) => run.1 = n,
            _ => runs.push((n, n)),
        }
    }
    write(&runs)
}

/// Ranges `(low, high)` written as a sequence set (`3:5,9`), in the order given.
pub fn write(ranges: &[(u32, u32)]) -> String {
    let mut out = String::new();
    for &(low, high) in ranges {
        if !out.is_empty() {
            out.push(',');
        }
        if low == high {
            out.push_str(&low.to_string());
        } else {
            out.push_str(&format!("{low}:{high}"));
        }
    }
    out
}

/// The numbers of ascending, disjoint `ranges` that are also in `set` (`*` standing for
/// `largest`) and not in the ascending list `except`, as ascending, disjoint ranges: how
/// VANISHED (EARLIER) narrows what a store says was expunged to what the client asked about
/// and what its session no longer shows.
pub fn narrow(ranges: &[(u32, u32)], set: Option<&SequenceSet>, largest: u32, except: &[u32]) -> Vec<(u32, u32)> {
    let mut within: Vec<(u32, u32)> = match set {
        None => ranges.to_vec(),
        Some(set) => {
            let mut asked: Vec<(u32, u32)> = set.ranges(largest).collect();
            asked.sort_unstable();
            let mut out = Vec::new();
            for &(low, high) in ranges {
                for &(a, b) in &asked {
                    let (l, h) = (low.max(a), high.min(b));
                    if l <= h {
                        out.push((l, h));
                    }
                }
            }
            out.sort_unstable();
            out
        }
    };
    // Join what overlaps (the client's ranges may), then cut out the exceptions.
    let mut joined: Vec<(u32, u32)> = Vec::with_capacity(within.len());
    for (low, high) in within.drain(..) {
        match joined.last_mut() {
            Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
            _ => joined.push((low, high)),
        }
    }
    let mut out = Vec::with_capacity(joined.len());
    for (low, high) in joined {
        let (mut next, mut reached_high) = (low, false);
        let start = except.partition_point(|&n| n < low);
        for &n in except[start..].iter().take_while(|&&n| n <= high) {
            if n > next {
                out.push((next, n - 1));
            }
            if n == high {
                reached_high = true;
                break;
            }
            next = n + 1;
        }
        if !reached_high {
            out.push((next, high));
        }
    }
    out
}

fn resolve(n: SeqNumber, largest: u32) -> u32 {
    match n {
        SeqNumber::Value(v) => v,
        SeqNumber::Largest => largest,
        SeqNumber::Saved => 0,
    }
}

fn seq_number(p: &mut Parser<'_>) -> Result<SeqNumber, Error> {
    if p.eat(b'*') {
        return Ok(SeqNumber::Largest);
    }
    p.nz_number().map(SeqNumber::Value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> SequenceSet {
        SequenceSet::parse(&mut Parser::new(text.as_bytes())).unwrap()
    }

    #[test]
    fn ranges_stars_and_reversed_ends() {
        let s = set("1,3:5,9:*");
        let hits: Vec<u32> = (1..=12).filter(|&n| s.contains(n, 12)).collect();
        assert_eq!(hits, [1, 3, 4, 5, 9, 10, 11, 12]);
        let s = set("5:2");
        assert!(s.contains(2, 10) && s.contains(5, 10) && !s.contains(6, 10));
        assert!(set("*:4").contains(7, 7));
        assert!(set("1:*").within(3) && !set("4").within(3));
        assert!(SequenceSet::parse(&mut Parser::new(b"0")).is_err());
        assert!(SequenceSet::parse(&mut Parser::new(b"1:")).is_err());
        assert!(SequenceSet::parse(&mut Parser::new(b",")).is_err());
    }

    #[test]
    fn compact_sets_read_back_as_the_same_numbers() {
        assert_eq!(compact(&[2, 3, 4, 9, 11, 12]), "2:4,9,11:12");
        assert_eq!(compact(&[7]), "7");
        assert_eq!(compact(&[]), "");
        assert_eq!(compact(&[1, u32::MAX]), format!("1,{}", u32::MAX));
    }

    #[test]
    fn narrowing_expunged_ranges() {
        let gone = [(1, 3), (7, 10), (20, 20)];
        assert_eq!(narrow(&gone, None, 0, &[]), gone);
        assert_eq!(narrow(&gone, Some(&set("2:8,9,*")), 20, &[]), [(2, 3), (7, 9), (20, 20)]);
        assert_eq!(narrow(&gone, Some(&set("5:6")), 20, &[]), []);
        assert_eq!(narrow(&gone, None, 0, &[2, 8, 10, 20]), [(1, 1), (3, 3), (7, 7), (9, 9)]);
        assert_eq!(write(&narrow(&[(1, u32::MAX)], Some(&set("4:*")), u32::MAX, &[5, u32::MAX])), format!("4,6:{}", u32::MAX - 1));
        let numbers = [1, 2, 5, 6, 7, 10];
        let back = set(&compact(&numbers));
        assert_eq!((1..=12).filter(|&n| back.contains(n, 12)).collect::<Vec<_>>(), numbers);
    }

    #[test]
    fn positions_are_what_contains_finds() {
        let uids = [2u32, 3, 5, 8, 13, 21, 34, 55];
        for text in ["1", "3", "4", "1:*", "*", "5:13", "13:5", "9:12", "60:70", "2,2,3:8,5", "*:30,1:3", "54:56,2"] {
            let s = set(text);
            let expected: Vec<usize> = (0..uids.len()).filter(|&i| s.contains(uids[i], 55)).collect();
            assert_eq!(s.positions(uids.len(), |i| uids[i], 55), expected, "{text}");
        }
        assert_eq!(set(&format!("{}", u32::MAX)).positions(3, |i| [1, 2, u32::MAX][i], u32::MAX), [2]);
        assert!(set("1:*").positions(0, |_| unreachable!(), 0).is_empty());
    }
}
