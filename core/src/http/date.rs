//! HTTP dates (RFC 9110 §5.6.7): formatting IMF-fixdate, parsing all three forms.
//!
//! The core reads no clock: callers pass seconds since the Unix epoch. Calendar arithmetic uses
//! Howard Hinnant's `days_from_civil` / `civil_from_days` ("chrono-Compatible Low-Level Date
//! Algorithms"), restricted to years 1970..=9999, which is every date a `u64` of seconds and a
//! four-digit year can both express.
//!
//! ```text
//! HTTP-date    = IMF-fixdate / obs-date
//! IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT
//!              ; Sun, 06 Nov 1994 08:49:37 GMT
//! rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT
//!              ; Sunday, 06-Nov-94 08:49:37 GMT
//! asctime-date = day-name SP date3 SP time-of-day SP year
//!              ; Sun Nov  6 08:49:37 1994
//! ```

use super::trim_ows;

/// The length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// The last second [`format_http_date`] can express: 9999-12-31T23:59:59Z.
pub const MAX_HTTP_DATE: u64 = 253_402_300_799;

const SECS_PER_DAY: u64 = 86_400;
const DAY_NAMES: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const DAY_NAMES_LONG: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Formats `secs` (seconds since the Unix epoch) as an IMF-fixdate, the only form a sender may
/// generate (RFC 9110 §5.6.7).
///
/// Times past [`MAX_HTTP_DATE`] have no four-digit year and are clamped to it.
pub fn format_http_date(secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    let secs = secs.min(MAX_HTTP_DATE);
    let days = secs / SECS_PER_DAY;
    let tod = secs % SECS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let weekday = weekday(days);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAY_NAMES[weekday]);
    put_2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    put_2(&mut out[12..14], year / 100);
    put_2(&mut out[14..16], year % 100);
    put_2(&mut out[17..19], tod / 3600);
    put_2(&mut out[20..22], tod / 60 % 60);
    put_2(&mut out[23..25], tod % 60);
    out
}

/// Parses an HTTP-date in any of its three forms into seconds since the Unix epoch.
///
/// Accepts IMF-fixdate, and the obsolete RFC 850 and asctime forms that recipients must still
/// accept (RFC 9110 §5.6.7). Surrounding spaces and tabs are ignored. The day name must be the
/// right one for the date, the date must exist and the time of day be in range (a leap second
/// `:60` is accepted and counts as the next second). An RFC 850 two-digit year `70..=99` means
/// 19xx and `00..=69` 20xx (the core has no clock to apply the "50 years in the future" rule).
///
/// Returns `None` for anything else, including dates before 1970.
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = trim_ows(s);
    let first = *s.first()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    // The day name's length tells the forms apart: "Sun," is IMF-fixdate, "Sun " asctime,
    // "Sunday," RFC 850.
    let name_len = s.iter().position(|b| !b.is_ascii_alphabetic())?;
    let (name, rest) = s.split_at(name_len);
    let (wday, fields) = if name_len == 3 && rest.first() == Some(&b',') {
        (day_index(name, false)?, parse_imf_fixdate(rest)?)
    } else if name_len == 3 {
        (day_index(name, false)?, parse_asctime(rest)?)
    } else {
        (day_index(name, true)?, parse_rfc850(rest)?)
    };
    let days = fields.days()?;
    if weekday(days) != wday {
        return None;
    }
    Some(days * SECS_PER_DAY + fields.hour * 3600 + fields.minute * 60 + fields.second)
}

/// The calendar fields of a parsed date, before validation.
struct Fields {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Fields {
    /// Days since 1970-01-01, or `None` when the date does not exist or is out of range.
    fn days(&self) -> Option<u64> {
        if !(1970..=9999).contains(&self.year)
            || !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        Some(days_from_civil(self.year, self.month, self.day))
    }
}

/// `", 06 Nov 1994 08:49:37 GMT"` (after the day name).
fn parse_imf_fixdate(s: &[u8]) -> Option<Fields> {
    let s: &[u8; 26] = s.try_into().ok()?;
    if s[0..2] != *b", " || s[4] != b' ' || s[8] != b' ' || s[13] != b' ' || s[22..] != *b" GMT" {
        return None;
    }
    let (hour, minute, second) = time_of_day(&s[14..22])?;
    Some(Fields {
        day: digits(&s[2..4])?,
        month: month_number(&s[5..8])?,
        year: digits(&s[9..13])?,
        hour,
        minute,
        second,
    })
}

/// `", 06-Nov-94 08:49:37 GMT"` (after the long day name).
fn parse_rfc850(s: &[u8]) -> Option<Fields> {
    let s: &[u8; 24] = s.try_into().ok()?;
    if s[0..2] != *b", " || s[4] != b'-' || s[8] != b'-' || s[11] != b' ' || s[20..] != *b" GMT" {
        return None;
    }
    let (hour, minute, second) = time_of_day(&s[12..20])?;
    let yy = digits(&s[9..11])?;
    Some(Fields {
        day: digits(&s[2..4])?,
        month: month_number(&s[5..8])?,
        year: if yy >= 70 { 1900 + yy } else { 2000 + yy },
        hour,
        minute,
        second,
    })
}

/// `" Nov  6 08:49:37 1994"` (after the day name).
fn parse_asctime(s: &[u8]) -> Option<Fields> {
    let s: &[u8; 21] = s.try_into().ok()?;
    if s[0] != b' ' || s[4] != b' ' || s[7] != b' ' || s[16] != b' ' {
        return None;
    }
    // date3 = month SP ( 2DIGIT / ( SP DIGIT ) )
    let day = if s[5] == b' ' {
        digits(&s[6..7])?
    } else {
        digits(&s[5..7])?
    };
    let (hour, minute, second) = time_of_day(&s[8..16])?;
    Some(Fields {
        day,
        month: month_number(&s[1..4])?,
        year: digits(&s[17..21])?,
        hour,
        minute,
        second,
    })
}

/// `HH:MM:SS`, unvalidated beyond being digits.
fn time_of_day(s: &[u8]) -> Option<(u64, u64, u64)> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    Some((digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?))
}

/// The value of a short, non-empty run of ASCII digits (at most 4 here, so no overflow).
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// The month number `1..=12` of a case-sensitive three-letter name (`month` is case-sensitive in
/// RFC 9110 §5.6.7).
fn month_number(s: &[u8]) -> Option<u64> {
    MONTHS
        .iter()
        .position(|m| m.as_slice() == s)
        .map(|i| i as u64 + 1)
}

/// The weekday index (0 = Sunday) of a case-sensitive day name.
fn day_index(s: &[u8], long: bool) -> Option<usize> {
    if long {
        DAY_NAMES_LONG.iter().position(|d| *d == s)
    } else {
        DAY_NAMES.iter().position(|d| d.as_slice() == s)
    }
}

/// The weekday (0 = Sunday) of a day count since 1970-01-01, which was a Thursday.
fn weekday(days: u64) -> usize {
    ((days + 4) % 7) as usize
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a valid date with `year >= 1970` (Hinnant's `days_from_civil`,
/// specialised to non-negative years so it runs in unsigned arithmetic).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01 (Hinnant's
/// `civil_from_days`, unsigned).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes `n % 100` as two ASCII digits into a two-byte slice.
fn put_2(out: &mut [u8], n: u64) {
    if let [tens, ones] = out {
        *tens = b'0' + (n / 10 % 10) as u8;
        *ones = b'0' + (n % 10) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_EXAMPLE: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn fmt(secs: u64) -> std::string::String {
        std::string::String::from_utf8(format_http_date(secs).to_vec()).unwrap_or_default()
    }

    #[test]
    fn formats_known_vectors() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(RFC_EXAMPLE), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(fmt(2_147_483_648), "Tue, 19 Jan 2038 03:14:08 GMT");
        assert_eq!(fmt(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(fmt(MAX_HTTP_DATE), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn format_clamps_past_year_9999() {
        assert_eq!(format_http_date(u64::MAX), format_http_date(MAX_HTTP_DATE));
    }

    #[test]
    fn parses_the_three_forms_of_the_rfc_example() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(RFC_EXAMPLE)
        );
        assert_eq!(
            parse_http_date(b"Sun Nov  6 08:49:37 1994"),
            Some(RFC_EXAMPLE)
        );
    }

    #[test]
    fn parses_leap_days_and_2038() {
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            parse_http_date(b"Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_http_date(b"Tue, 19 Jan 2038 03:14:08 GMT"),
            Some(2_147_483_648)
        );
        assert_eq!(
            parse_http_date(b"Wed Feb 29 00:00:00 2040"),
            Some(2_214_086_400)
        );
        assert_eq!(
            parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            parse_http_date(b"Tuesday, 19-Jan-38 03:14:08 GMT"),
            Some(2_147_483_648)
        );
    }

    #[test]
    fn rejects_impossible_dates() {
        // 1900 and 2100 are not leap years.
        assert_eq!(parse_http_date(b"Mon, 29 Feb 2100 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sat, 31 Apr 2021 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 00 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 24:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:60:00 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:61 GMT"), None);
        // Before the epoch.
        assert_eq!(parse_http_date(b"Wed, 31 Dec 1969 23:59:59 GMT"), None);
    }

    #[test]
    fn leap_second_counts_as_next_second() {
        assert_eq!(
            parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT"),
            parse_http_date(b"Sun, 01 Jan 2017 00:00:00 GMT")
        );
    }

    #[test]
    fn rejects_wrong_day_name() {
        assert_eq!(parse_http_date(b"Mon, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Monday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Mon Nov  6 08:49:37 1994"), None);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"   ",
            b"yesterday",
            b"0",
            b"784111777",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 06 Nov 1994 08:49:37 gmt",
            b"sun, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 nov 1994 08:49:37 GMT",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun,  06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 94 08:49:37 GMT",
            b"Sun, 06 Nov 1994 8:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT garbage",
            b"Sun, 06 Nov 1994 08:49:37",
            b"Sun, 06 Nov +994 08:49:37 GMT",
            b"Sun, 0\xff Nov 1994 08:49:37 GMT",
            b"Sunday, 06-Nov-1994 08:49:37 GMT",
            b"Sund, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov 06 08:49:37 94",
            b"Sun Nov 6 08:49:37 1994",
            b"Sun Nov  6 08:49:37 1994 GMT",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{:?}",
                std::string::String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn asctime_two_digit_day() {
        assert_eq!(
            parse_http_date(b"Wed Nov 16 08:49:37 1994"),
            Some(RFC_EXAMPLE + 10 * SECS_PER_DAY)
        );
    }

    #[test]
    fn tolerates_surrounding_whitespace() {
        assert_eq!(
            parse_http_date(b" \tSun, 06 Nov 1994 08:49:37 GMT "),
            Some(RFC_EXAMPLE)
        );
    }

    #[test]
    fn civil_round_trip_over_four_centuries() {
        let mut days = 0;
        for year in 1970..2400 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), days);
                    assert_eq!(civil_from_days(days), (year, month, day));
                    days += 1;
                }
            }
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..=MAX_HTTP_DATE) {
            prop_assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }

        #[test]
        fn parse_never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_http_date(&s);
        }

        #[test]
        fn parse_never_panics_on_near_dates(
            s in "[A-Za-z]{3,9},? [0-9 ]{1,2}[- ][A-Z][a-z]{2}[- ][0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2}( GMT)?"
        ) {
            if let Some(secs) = parse_http_date(s.as_bytes()) {
                prop_assert!(secs <= MAX_HTTP_DATE + 1); // a leap second on the last day
            }
        }
    }
}
