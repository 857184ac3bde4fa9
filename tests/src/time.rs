//! Instants and calendar dates, without a date library.
//!
//! The simulator keeps every instant as [`Millis`] (milliseconds since the Unix epoch, UTC) and
//! every calendar date as [`Days`] (days since 1970-01-01). This module turns them into the text
//! GitLab emits (`2024-03-05T10:12:13.123Z`, `2024-03-05T12:12:13.123+02:00`, `2024-03-05`) and
//! parses the ISO 8601 values clients send in query parameters (`updated_after=...`) into
//! microseconds, so filters can compare exactly, including the millisecond part.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;
/// Days since 1970-01-01.
pub type Days = i64;

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// Days since the epoch of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> Days {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: Days) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Midnight UTC of a calendar date, in milliseconds.
pub(crate) fn ymd_ms(year: i64, month: u32, day: u32) -> Millis {
    days_from_civil(year, month, day) * MS_PER_DAY
}

/// An instant rendered as GitLab does: `2024-03-05T10:12:13.123Z`, or in local time with an
/// offset (`2024-03-05T12:12:13.123+02:00`) when `offset_minutes` is not zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// The instant (UTC).
    pub millis: Millis,
    /// The offset of the local time the instant is written in; 0 writes `Z`.
    pub offset_minutes: i32,
}

impl DateTime {
    pub(crate) fn utc(millis: Millis) -> Self {
        Self { millis, offset_minutes: 0 }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl DateTime {
    /// Writes the instant; `explicit_utc` writes a zero offset as `+00:00` instead of `Z`.
    fn write(&self, f: &mut fmt::Formatter<'_>, explicit_utc: bool) -> fmt::Result {
        let local = self.millis + i64::from(self.offset_minutes) * 60_000;
        let days = local.div_euclid(MS_PER_DAY);
        let in_day = local.rem_euclid(MS_PER_DAY);
        let (y, mo, d) = civil_from_days(days);
        let (h, mi, s, ms) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}")?;
        if self.offset_minutes == 0 && !explicit_utc {
            f.write_str("Z")
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let off = self.offset_minutes.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", off / 60, off % 60)
        }
    }
}

impl serde::Serialize for DateTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A git date as GitLab renders commit dates: the committer's (or author's) local time with its
/// offset, always written out (`2012-09-20T09:06:12.000+03:00`, `...+00:00`), to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GitTime(pub DateTime);

impl GitTime {
    /// The instant `millis`, truncated to the second, in a zone `offset_minutes` east of UTC.
    pub(crate) fn at(millis: Millis, offset_minutes: i32) -> Self {
        GitTime(DateTime { millis: millis - millis.rem_euclid(1000), offset_minutes })
    }
}

impl fmt::Display for GitTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

impl serde::Serialize for GitTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A calendar date rendered as `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub Days);

impl Date {
    /// The UTC date of an instant.
    pub(crate) fn of(millis: Millis) -> Self {
        Date(millis.div_euclid(MS_PER_DAY))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Today's date (UTC), from the system clock: for GitLab's relative filters (`due_date=overdue`,
/// `milestone_id=Upcoming`).
pub(crate) fn today() -> Days {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    now.div_euclid(MS_PER_DAY)
}

/// Parses an ISO 8601 date or date-time as GitLab's API accepts it in query parameters, into
/// microseconds since the epoch (UTC).
///
/// Accepted: `2024-03-05` (midnight UTC), `2024-03-05T10:12`, `2024-03-05T10:12:13`, any number
/// of fraction digits (`.123`, `.123456`), `T` or a space between date and time, and a zone of
/// `Z`, `+02:00`, `+0200`, `+02` or none (UTC). A space where the `+` of the offset should be is
/// read as `+`, since an unencoded `+` in a query string decodes to a space.
pub(crate) fn parse_datetime_micros(input: &str) -> Option<i64> {
    let s = input.trim_start();
    if !s.is_ascii() || s.len() < 10 {
        return None;
    }
    let b = s.as_bytes();
    let year = digits(&b[0..4])?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = digits(&b[5..7])? as u32;
    let day = digits(&b[8..10])? as u32;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * MS_PER_DAY * 1000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') {
        return None;
    }
    rest = &rest[1..];
    // HH:MM
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let hour = digits(&rest[0..2])?;
    let minute = digits(&rest[3..5])?;
    rest = &rest[5..];
    let mut second = 0;
    let mut fraction_us = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        second = digits(&rest[1..3])?;
        rest = &rest[3..];
        if matches!(rest.first(), Some(b'.' | b',')) {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let frac = &rest[1..1 + n];
            for i in 0..6 {
                fraction_us = fraction_us * 10 + frac.get(i).map_or(0, |c| i64::from(c - b'0'));
            }
            rest = &rest[1 + n..];
        }
    }
    if hour > 24 || minute > 59 || second > 60 || (hour == 24 && (minute, second) != (0, 0)) {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction_us;
    let offset_minutes = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-' | b' '), zone @ ..] => {
            let (h, m) = match zone {
                [a, b] => (digits(&[*a, *b])?, 0),
                [a, b, c, d] => (digits(&[*a, *b])?, digits(&[*c, *d])?),
                [a, b, b':', c, d] => (digits(&[*a, *b])?, digits(&[*c, *d])?),
                _ => return None,
            };
            if h > 18 || m > 59 {
                return None;
            }
            let off = h * 60 + m;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    Some(micros - offset_minutes * 60_000_000)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1000, 0, 1, 59, 365, 10_000, 18_000, 19_723, 20_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2024, 3, 5), 19_787);
    }

    #[test]
    fn formats_like_gitlab() {
        let ms = ymd_ms(2024, 3, 5) + ((10 * 60 + 12) * 60 + 13) * 1000 + 123;
        assert_eq!(DateTime::utc(ms).to_string(), "2024-03-05T10:12:13.123Z");
        let off = DateTime { millis: ms, offset_minutes: 120 };
        assert_eq!(off.to_string(), "2024-03-05T12:12:13.123+02:00");
        let neg = DateTime { millis: ms, offset_minutes: -(11 * 60 + 30) };
        assert_eq!(neg.to_string(), "2024-03-04T22:42:13.123-11:30");
        assert_eq!(Date::of(ms).to_string(), "2024-03-05");
        assert_eq!(GitTime::at(ms, 180).to_string(), "2024-03-05T13:12:13.000+03:00");
        assert_eq!(GitTime::at(ms, 0).to_string(), "2024-03-05T10:12:13.000+00:00");
    }

    #[test]
    fn parses_query_values() {
        let ms = ymd_ms(2024, 3, 5) + ((10 * 60 + 12) * 60 + 13) * 1000 + 123;
        let us = ms * 1000;
        assert_eq!(parse_datetime_micros("2024-03-05T10:12:13.123Z"), Some(us));
        assert_eq!(parse_datetime_micros("2024-03-05T12:12:13.123+02:00"), Some(us));
        assert_eq!(parse_datetime_micros("2024-03-05T12:12:13.123 02:00"), Some(us));
        assert_eq!(parse_datetime_micros("2024-03-05T12:12:13.123+0200"), Some(us));
        assert_eq!(parse_datetime_micros("2024-03-05 10:12:13.123"), Some(us));
        assert_eq!(parse_datetime_micros("2024-03-05T10:12:13.123456Z"), Some(us + 456));
        assert_eq!(parse_datetime_micros("2024-03-05"), Some(ymd_ms(2024, 3, 5) * 1000));
        assert_eq!(
            parse_datetime_micros("2024-03-05T10:12Z"),
            Some((ymd_ms(2024, 3, 5) + (10 * 60 + 12) * 60_000) * 1000)
        );
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            "2024-03-05T25:00:00Z",
            "2024-03-05T10:12:13.Z",
            "2024-03-05X",
            "2024-03-05T10:12:13+2",
            "２０２４-03-05",
        ] {
            assert_eq!(parse_datetime_micros(bad), None, "{bad}");
        }
    }
}
