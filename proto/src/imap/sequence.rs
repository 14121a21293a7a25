//! sequence-set (RFC 3501 9): `1,3:5,7:*`, for message numbers and UIDs alike.

use super::parse::Parser;
use super::Error;

/// One end of a range: a number, or `*` (the largest number in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    Value(u32),
    Largest,
}

/// A set of numbers, as ranges whose ends may come in either order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNumber, SeqNumber)>);

impl SequenceSet {
    pub fn parse(p: &mut Parser<'_>) -> Result<SequenceSet, Error> {
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
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (resolve(a, largest), resolve(b, largest));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            (low..=high).contains(&n)
        })
    }

    /// Whether every number is at most `largest` (for message numbers, which must exist).
    pub fn within(&self, largest: u32) -> bool {
        self.0.iter().all(|&(a, b)| resolve(a, largest) <= largest && resolve(b, largest) <= largest)
    }
}

fn resolve(n: SeqNumber, largest: u32) -> u32 {
    match n {
        SeqNumber::Value(v) => v,
        SeqNumber::Largest => largest,
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
}
