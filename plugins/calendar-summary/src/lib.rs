//! For a calendar invitation (text/calendar), adds `X-Calendar-Summary: SUMMARY; starts
//! DTSTART` to the message, so that filters and mail lists show what the invitation is
//! about. The part itself is kept. See README.md.

use std::collections::HashSet;

use wasmail_plugin_sdk::{export_plugin, Hook, Manifest, PartInfo, PartResult, Plugin};

#[derive(Default)]
struct CalendarSummary {
    /// Summaries already added to the current message (an invitation often comes twice: in
    /// multipart/alternative and as an .ics attachment).
    added: HashSet<String>,
}

/// Unfolds iCalendar content lines (RFC 5545 3.1: a line end followed by a space or tab
/// continues the line).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match raw.as_bytes().first() {
            Some(b' ' | b'\t') if !lines.is_empty() => lines.last_mut().expect("checked").push_str(&raw[1..]),
            _ => lines.push(raw.to_string()),
        }
    }
    lines
}

/// RFC 5545 3.3.11 text escapes.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push(' '),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The first event's SUMMARY and DTSTART (with its TZID, if any).
fn summary_of(calendar: &str) -> Option<(String, Option<String>)> {
    let mut in_event = false;
    let mut summary = None;
    let mut start = None;
    for line in unfold(calendar) {
        let Some((name_params, value)) = line.split_once(':') else { continue };
        let mut pieces = name_params.split(';');
        let name = pieces.next().unwrap_or("").to_ascii_uppercase();
        match name.as_str() {
            "BEGIN" if value.eq_ignore_ascii_case("VEVENT") => in_event = true,
            "END" if value.eq_ignore_ascii_case("VEVENT") => break,
            "SUMMARY" if in_event && summary.is_none() => summary = Some(unescape(value)),
            "DTSTART" if in_event && start.is_none() => {
                let tzid = pieces
                    .find_map(|p| p.split_once('=').filter(|(k, _)| k.eq_ignore_ascii_case("TZID")).map(|(_, v)| v.trim_matches('"').to_string()));
                start = Some(match tzid {
                    Some(tz) => format!("{value} ({tz})"),
                    None => value.to_string(),
                });
            }
            _ => {}
        }
    }
    summary.map(|s| (s, start))
}

/// A header value: control characters out, at most 200 characters of summary, and RFC 2047
/// encoded (UTF-8, base64) when it is not ASCII, so that a 7-bit message stays 7-bit.
fn header_value(summary: &str, start: Option<&str>) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let summary: String = clean(summary).chars().take(200).collect();
    let summary = if summary.is_ascii() { summary } else { encoded_word(&summary) };
    match start {
        Some(start) => format!("{summary}; starts {}", clean(start)),
        None => summary,
    }
}

fn encoded_word(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut words = Vec::new();
    // At most 45 octets per word keeps each under 75 characters (RFC 2047 2); split on
    // character boundaries.
    let mut chunk = String::new();
    let mut chunks = Vec::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            chunks.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    chunks.push(chunk);
    for chunk in chunks {
        let mut b64 = String::new();
        for group in chunk.as_bytes().chunks(3) {
            let v = u32::from(group[0]) << 16 | u32::from(*group.get(1).unwrap_or(&0)) << 8 | u32::from(*group.get(2).unwrap_or(&0));
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                b64.push(if i <= group.len() { ALPHABET[(v >> shift) as usize & 63] as char } else { '=' });
            }
        }
        words.push(format!("=?UTF-8?B?{b64}?="));
    }
    words.join(" ")
}

impl Plugin for CalendarSummary {
    fn manifest() -> Manifest {
        Manifest::new("calendar-summary", env!("CARGO_PKG_VERSION")).mime_type("text/calendar").hook(Hook::Reset)
    }

    fn on_part(&mut self, part: PartInfo) -> PartResult {
        let Some(body) = part.body.as_deref() else { return PartResult::keep() };
        // RFC 5545 6: iCalendar is UTF-8 by default.
        let text = String::from_utf8_lossy(body);
        let Some((summary, start)) = summary_of(&text) else { return PartResult::keep() };
        let value = header_value(&summary, start.as_deref());
        if !self.added.insert(value.clone()) {
            return PartResult::keep();
        }
        PartResult::keep().with_header("X-Calendar-Summary", value)
    }

    fn on_reset(&mut self) {
        self.added.clear();
    }
}

export_plugin!(CalendarSummary);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_event() {
        let ics = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:20261201T100000\r\nSUMMARY;LANGUAGE=en:Quarterly review\\, part\r\n  two\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (summary, start) = summary_of(ics).unwrap();
        assert_eq!(summary, "Quarterly review, part two");
        assert_eq!(start.as_deref(), Some("20261201T100000 (Europe/Berlin)"));
        assert_eq!(header_value("Réunion", None), "=?UTF-8?B?UsOpdW5pb24=?=");
    }
}
