//! Abuse limits the SMTP sessions share: messages and recipients per client address per
//! minute, and temporary blocks for addresses caught probing for recipients. Addresses in
//! `[smtp] rate_exempt` (loopback by default: local tools and the benchmarks) are not rated.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::config::SmtpConfig;

const MINUTE: Duration = Duration::from_secs(60);

/// One address's counts in its current minute.
#[derive(Debug, Clone, Copy)]
struct Rate {
    since: Instant,
    messages: u32,
    recipients: u32,
}

pub struct Abuse {
    max_messages_per_minute: u32,
    max_recipients_per_minute: u32,
    exempt: Vec<IpNet>,
    /// Kept across reloads.
    records: Arc<Records>,
}

#[derive(Default)]
struct Records {
    rates: Mutex<HashMap<IpAddr, Rate>>,
    /// Blocked addresses and when their block ends.
    blocks: Mutex<HashMap<IpAddr, Instant>>,
}

/// What a rate says about one more message or recipient.
#[derive(Debug, PartialEq, Eq)]
pub enum Allowance {
    Yes,
    /// Over the per-minute limit; try again after this long.
    Later(Duration),
}

impl Abuse {
    pub fn new(config: &SmtpConfig) -> Abuse {
        Abuse {
            max_messages_per_minute: config.max_messages_per_minute,
            max_recipients_per_minute: config.max_recipients_per_minute,
            exempt: config.rate_exempt.clone(),
            records: Arc::default(),
        }
    }

    /// The same records under new settings (a reload).
    pub fn reconfigured(&self, config: &SmtpConfig) -> Abuse {
        Abuse { records: Arc::clone(&self.records), ..Abuse::new(config) }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|net| net.contains(&ip) || net.contains(&ip.to_canonical()))
    }

    /// The time left on a block of `ip`, if there is one.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let mut blocks = self.records.blocks.lock().expect("abuse lock");
        match blocks.get(&ip) {
            Some(until) if *until > Instant::now() => Some(*until - Instant::now()),
            Some(_) => {
                blocks.remove(&ip);
                None
            }
            None => None,
        }
    }

    /// Blocks `ip` for `duration`: its new sessions are refused at once.
    pub fn block(&self, ip: IpAddr, duration: Duration) {
        let mut blocks = self.records.blocks.lock().expect("abuse lock");
        if blocks.len() > 10_000 {
            let now = Instant::now();
            blocks.retain(|_, until| *until > now);
        }
        blocks.insert(ip, Instant::now() + duration);
    }

    /// Counts one message from `ip` (at MAIL).
    pub fn message(&self, ip: IpAddr) -> Allowance {
        self.take(ip, |rate| &mut rate.messages, self.max_messages_per_minute)
    }

    /// Counts one recipient from `ip` (at RCPT).
    pub fn recipient(&self, ip: IpAddr) -> Allowance {
        self.take(ip, |rate| &mut rate.recipients, self.max_recipients_per_minute)
    }

    fn take(&self, ip: IpAddr, count: impl Fn(&mut Rate) -> &mut u32, max: u32) -> Allowance {
        if max == 0 || self.exempt(ip) {
            return Allowance::Yes;
        }
        let mut rates = self.records.rates.lock().expect("abuse lock");
        if rates.len() > 10_000 {
            rates.retain(|_, r| r.since.elapsed() < MINUTE);
        }
        let rate = rates.entry(ip).or_insert(Rate { since: Instant::now(), messages: 0, recipients: 0 });
        if rate.since.elapsed() >= MINUTE {
            *rate = Rate { since: Instant::now(), messages: 0, recipients: 0 };
        }
        let since = rate.since;
        let counter = count(rate);
        if *counter >= max {
            return Allowance::Later(MINUTE.saturating_sub(since.elapsed()));
        }
        *counter += 1;
        Allowance::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_blocks_and_exemptions() {
        let config = SmtpConfig {
            max_messages_per_minute: 2,
            max_recipients_per_minute: 3,
            rate_exempt: vec!["127.0.0.0/8".parse().unwrap()],
            ..SmtpConfig::default()
        };
        let abuse = Abuse::new(&config);
        let (a, local): (IpAddr, IpAddr) = ("192.0.2.7".parse().unwrap(), "127.0.0.1".parse().unwrap());
        assert_eq!(abuse.message(a), Allowance::Yes);
        assert_eq!(abuse.message(a), Allowance::Yes);
        assert!(matches!(abuse.message(a), Allowance::Later(d) if d <= MINUTE));
        assert_eq!((0..3).map(|_| abuse.recipient(a)).filter(|x| *x == Allowance::Yes).count(), 3);
        assert!(matches!(abuse.recipient(a), Allowance::Later(_)));
        assert!((0..100).all(|_| abuse.message(local) == Allowance::Yes), "loopback is exempt");
        assert_eq!(abuse.blocked(a), None);
        abuse.block(a, Duration::from_secs(600));
        assert!(abuse.blocked(a).is_some_and(|d| d > Duration::from_secs(590)));
        abuse.block(local, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(abuse.blocked(local), None, "blocks end");
    }
}
