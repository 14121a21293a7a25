//! Identifiers for queue entries and sessions: short, sortable by time, unique in the process
//! and practically unique across restarts (they start from the clock in microseconds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

const ALPHABET: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";

fn next(tag: u8) -> String {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // 44 bits of time (microseconds, about 200 days before wrapping) above 20 bits of counter.
    let mut value = ((micros & ((1 << 44) - 1)) << 20) | (n & ((1 << 20) - 1));
    let mut out = vec![tag];
    let base = ALPHABET.len() as u64;
    let mut digits = Vec::new();
    while value > 0 {
        digits.push(ALPHABET[(value % base) as usize]);
        value /= base;
    }
    digits.reverse();
    out.extend(digits);
    String::from_utf8(out).expect("ASCII alphabet")
}

/// A queue id for a mail transaction, as shown in the 250 reply and the logs.
pub fn queue_id() -> String {
    next(b'Q')
}

/// A session id for log lines.
pub fn session_id() -> String {
    next(b'S')
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::queue_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
