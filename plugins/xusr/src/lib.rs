//! XUSR, sendmail's "initial user submission" (sendmail -U): after `XUSR` a message is treated
//! as submitted by a user agent, so a missing Date or Message-ID header is added (RFC 6409
//! section 8.2 and 8.3).

use wasmail_plugin_sdk::{
    export_plugin, header_value, host, switch_on, CommandResult, DataResult, Envelope, Header, HeaderChange, Hook, Manifest, Plugin,
};

#[derive(Default)]
struct Xusr {
    /// Set by the XUSR command.
    submission: bool,
    /// Messages given a Message-ID in this session, to keep ids unique within a millisecond.
    counter: u32,
}

impl Plugin for Xusr {
    fn manifest() -> Manifest {
        Manifest::new("xusr", env!("CARGO_PKG_VERSION")).keyword("XUSR", None).verb("XUSR").hook(Hook::Data).activated_by_verb()
    }

    fn on_command(&mut self, verb: String, args: String) -> CommandResult {
        switch_on(&verb, &args, &mut self.submission, "Initial submission")
    }

    fn on_data(&mut self, envelope: Envelope, headers: Vec<Header>) -> DataResult {
        if !self.submission {
            return DataResult::changes(Vec::new());
        }
        let now = host::now_ms();
        let mut changes = Vec::new();
        if header_value(&headers, "Date").is_none() {
            changes.push(HeaderChange::Add(Header::new("Date", rfc5322_date(now / 1000))));
        }
        if header_value(&headers, "Message-ID").is_none() {
            self.counter += 1;
            let id = format!("<{}.{}.{}@{}>", now, envelope.queue_id, self.counter, host::hostname());
            changes.push(HeaderChange::Add(Header::new("Message-ID", id)));
        }
        DataResult::changes(changes)
    }
}

/// `Sun, 29 Nov 2026 19:06:26 +0000` for a Unix time (UTC), RFC 5322 3.3.
fn rfc5322_date(unix: u64) -> String {
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

export_plugin!(Xusr);
