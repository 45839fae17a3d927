//! Timestamps as JSON text, byte for byte what chrono's `Serialize` writes (RFC 3339,
//! `SecondsFormat::AutoSi`, `Z`) without its `fmt` machinery: every commit, command and
//! outcome carries a few, and chrono's writer showed at ~3 % of a fast-path process (issue 15).
//! Fields use it with `#[serde(serialize_with = "crate::timestamp_json::write")]` (or
//! `write_opt` for an optional one); reading stays chrono's (or `fast_decode`'s). The proptest
//! in `outcome::tests` compares [`TsOut`] with chrono over every instant, leap seconds and
//! years outside 0000..=9999 included.

use crate::Timestamp;
use chrono::{Datelike, Timelike};
use serde::{Serialize, Serializer};

/// `t` as chrono writes it.
pub(crate) fn write<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    TsOut(t).serialize(s)
}

/// An optional timestamp as serde writes `Option<Timestamp>` (`null` for none, where a field
/// does not skip it).
pub(crate) fn write_opt<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&TsOut(t)),
        None => s.serialize_none(),
    }
}

/// A timestamp as chrono's `Serialize` writes it (RFC 3339, fraction of 0, 3, 6 or 9 digits,
/// `Z`); years outside 0000..=9999 by chrono itself.
pub(crate) struct TsOut<'a>(pub(crate) &'a Timestamp);

impl Serialize for TsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        match write_rfc3339_utc(self.0, &mut buf) {
            // Only ASCII digits and separators are written.
            Some(n) => match std::str::from_utf8(&buf[..n]) {
                Ok(text) => s.serialize_str(text),
                Err(_) => self.0.serialize(s),
            },
            None => self.0.serialize(s),
        }
    }
}

/// chrono's `write_rfc3339(.., SecondsFormat::AutoSi, use_z: true)` for a UTC instant whose
/// year has four digits; the length written, or `None` for another year.
pub(crate) fn write_rfc3339_utc(t: &Timestamp, buf: &mut [u8; 30]) -> Option<usize> {
    let dt = t.naive_utc();
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (hour, min, mut sec) = (dt.hour(), dt.minute(), dt.second());
    let mut nano = dt.nanosecond();
    // A leap second is kept in the nanoseconds; chrono writes it as second 60.
    if nano >= 1_000_000_000 {
        sec += 1;
        nano -= 1_000_000_000;
    }
    let mut n = 0;
    put(buf, &mut n, year as u32, 4);
    push(buf, &mut n, b'-');
    put(buf, &mut n, dt.month(), 2);
    push(buf, &mut n, b'-');
    put(buf, &mut n, dt.day(), 2);
    push(buf, &mut n, b'T');
    put(buf, &mut n, hour, 2);
    push(buf, &mut n, b':');
    put(buf, &mut n, min, 2);
    push(buf, &mut n, b':');
    put(buf, &mut n, sec, 2);
    if nano != 0 {
        push(buf, &mut n, b'.');
        if nano.is_multiple_of(1_000_000) {
            put(buf, &mut n, nano / 1_000_000, 3);
        } else if nano.is_multiple_of(1_000) {
            put(buf, &mut n, nano / 1_000, 6);
        } else {
            put(buf, &mut n, nano, 9);
        }
    }
    buf[n] = b'Z';
    Some(n + 1)
}

/// `value`'s last `width` decimal digits, zero-padded (every value here fits its width).
fn put(buf: &mut [u8; 30], n: &mut usize, value: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    for _ in 0..width {
        buf[*n] = b'0' + (value / div % 10) as u8;
        div /= 10;
        *n += 1;
    }
}

fn push(buf: &mut [u8; 30], n: &mut usize, byte: u8) {
    buf[*n] = byte;
    *n += 1;
}
