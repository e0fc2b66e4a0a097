//! A moment in a notice text, written so that a household reads the right day: the clock
//! time alone when it is today in the tenant's time zone, otherwise with the day. An outage
//! that lasts past midnight must not leave anyone guessing which 05:00 is meant.
//!
//! | when (calendar days from today) | sv | nb | en |
//! | --- | --- | --- | --- |
//! | today | `05:00` | `05:00` | `05:00` |
//! | tomorrow | `i morgon 05:00` | `i morgen 05:00` | `tomorrow 05:00` |
//! | yesterday | `i går 22:10` | `i går 22:10` | `yesterday 22:10` |
//! | 2 to 6 days either side, same year | `tors 14/1 05:00` | `tor. 14.1. 05:00` | `Thu 14 Jan 05:00` |
//! | further, or another year | `tors 14/1 2027 05:00` | `tor. 14.1.2027 05:00` | `Thu 14 Jan 2027 05:00` |
//!
//! Days are calendar days in the zone, not 24-hour steps: at 23:50, 00:30 is tomorrow, and on
//! the 23- and 25-hour days of a DST switch "tomorrow" is still the next date. Six days is
//! where a weekday stops naming one day: a week ahead has the same weekday as today. The
//! clock is 24-hour in every language, as Nordic readers expect; the hour repeated when DST
//! ends reads as its wall-clock time, which is what the household's clocks show.
//!
//! Every character is in the GSM-7 basic table (å, ö, ø included), so a day word never
//! turns an SMS into UCS-2.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

use crate::domain::language::Language;

/// Days either side of today for which the weekday and date say enough without the year.
const NEAR_DAYS: i64 = 6;

/// `at` as the household in `zone` reads it at `now`, in `lang`.
pub fn local_time(at: Timestamp, now: Timestamp, zone: &TimeZone, lang: Language) -> String {
    let at = at.to_zoned(zone.clone());
    let today = now.to_zoned(zone.clone()).date();
    let day = at.date();
    // Civil dates have no DST, so every day between them is 24 hours long.
    let days = today.duration_until(day).as_hours() / 24;
    let clock = format!("{:02}:{:02}", at.hour(), at.minute());
    match days {
        0 => clock,
        1 => format!("{} {clock}", tomorrow(lang)),
        -1 => format!("{} {clock}", yesterday(lang)),
        _ => {
            let with_year = days.abs() > NEAR_DAYS || day.year() != today.year();
            format!("{} {clock}", date(day, lang, with_year))
        }
    }
}

fn tomorrow(lang: Language) -> &'static str {
    match lang {
        Language::Sv => "i morgon",
        Language::Nb => "i morgen",
        Language::En => "tomorrow",
    }
}

fn yesterday(lang: Language) -> &'static str {
    match lang {
        Language::Sv | Language::Nb => "i går",
        Language::En => "yesterday",
    }
}

/// A day with its weekday and year, for text read on another day than it was written (a
/// postcard kept on the fridge has no "today" to be near): `tors 14/1 2027`, `tor. 14.1.2027`,
/// `Thu 14 Jan 2027`.
pub fn calendar_day(day: Date, lang: Language) -> String {
    date(day, lang, true)
}

/// Swedish writes "tors 14/1 2027", Norwegian "tor. 14.1.2027" (the day and month alone
/// "14.1."), English "Thu 14 Jan 2027".
fn date(day: Date, lang: Language, with_year: bool) -> String {
    let (d, m, y) = (day.day(), day.month(), day.year());
    let weekday = weekday(day.weekday(), lang);
    match (lang, with_year) {
        (Language::Sv, false) => format!("{weekday} {d}/{m}"),
        (Language::Sv, true) => format!("{weekday} {d}/{m} {y}"),
        (Language::Nb, false) => format!("{weekday} {d}.{m}."),
        (Language::Nb, true) => format!("{weekday} {d}.{m}.{y}"),
        (Language::En, false) => format!("{weekday} {d} {}", month_en(m)),
        (Language::En, true) => format!("{weekday} {d} {} {y}", month_en(m)),
    }
}

/// The abbreviations of the Swedish and Norwegian language councils (and CLDR).
fn weekday(w: Weekday, lang: Language) -> &'static str {
    let names = match lang {
        Language::Sv => ["mån", "tis", "ons", "tors", "fre", "lör", "sön"],
        Language::Nb => ["man.", "tir.", "ons.", "tor.", "fre.", "lør.", "søn."],
        Language::En => ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    };
    names[usize::from(w.to_monday_zero_offset().unsigned_abs())]
}

fn month_en(m: i8) -> &'static str {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS[usize::from(m.unsigned_abs()) - 1]
}

/// A time as an operator writes it: Unix seconds, or a local date and time such as
/// `2026-01-15T16:30` (or with a space) in `time_zone`.
pub fn parse_local(text: &str, time_zone: &str) -> Result<i64, String> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(secs);
    }
    let bad = || format!("{text:?} is not a time such as 2026-01-15T16:30 or Unix seconds");
    let civil: jiff::civil::DateTime = text.trim().replace(' ', "T").parse().map_err(|_| bad())?;
    let zone = jiff::tz::TimeZone::get(time_zone).map_err(|e| e.to_string())?;
    Ok(civil
        .to_zoned(zone)
        .map_err(|_| bad())?
        .timestamp()
        .as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sms_text::{Encoding, analyze};
    use proptest::prelude::*;

    const LANGS: [Language; 3] = [Language::Sv, Language::Nb, Language::En];

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap_or_else(|e| panic!("the tz database lacks {name}: {e}"))
    }

    /// The instant a wall-clock time (the earlier one, when DST ends) names in `tz`.
    fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(zone(tz))
            .expect("a valid wall-clock time")
            .timestamp()
    }

    fn sv(t: Timestamp, now: Timestamp) -> String {
        local_time(t, now, &zone("Europe/Stockholm"), Language::Sv)
    }

    fn all(t: Timestamp, now: Timestamp, tz: &str) -> [String; 3] {
        LANGS.map(|l| local_time(t, now, &zone(tz), l))
    }

    #[test]
    fn each_language_writes_each_distance_its_own_way() {
        let tz = "Europe/Stockholm";
        // Wednesday 13 January 2027, noon.
        let now = at(tz, 2027, 1, 13, 12, 0);
        let cases = [
            (at(tz, 2027, 1, 13, 5, 0), ["05:00", "05:00", "05:00"]),
            (
                at(tz, 2027, 1, 14, 5, 0),
                ["i morgon 05:00", "i morgen 05:00", "tomorrow 05:00"],
            ),
            (
                at(tz, 2027, 1, 12, 22, 10),
                ["i går 22:10", "i går 22:10", "yesterday 22:10"],
            ),
            (
                at(tz, 2027, 1, 15, 5, 0),
                ["fre 15/1 05:00", "fre. 15.1. 05:00", "Fri 15 Jan 05:00"],
            ),
            (
                at(tz, 2027, 1, 19, 5, 0),
                ["tis 19/1 05:00", "tir. 19.1. 05:00", "Tue 19 Jan 05:00"],
            ),
            (
                at(tz, 2027, 1, 7, 8, 15),
                ["tors 7/1 08:15", "tor. 7.1. 08:15", "Thu 7 Jan 08:15"],
            ),
            (
                at(tz, 2027, 1, 20, 5, 0),
                [
                    "ons 20/1 2027 05:00",
                    "ons. 20.1.2027 05:00",
                    "Wed 20 Jan 2027 05:00",
                ],
            ),
            (
                at(tz, 2027, 1, 6, 23, 59),
                [
                    "ons 6/1 2027 23:59",
                    "ons. 6.1.2027 23:59",
                    "Wed 6 Jan 2027 23:59",
                ],
            ),
            (
                at(tz, 2027, 3, 1, 5, 0),
                [
                    "mån 1/3 2027 05:00",
                    "man. 1.3.2027 05:00",
                    "Mon 1 Mar 2027 05:00",
                ],
            ),
        ];
        for (t, want) in cases {
            assert_eq!(all(t, now, tz), want.map(String::from));
        }
        // The remaining weekdays and months, spelled once each.
        let sunday = at(tz, 2027, 1, 17, 9, 0);
        assert_eq!(
            all(sunday, now, tz),
            ["sön 17/1 09:00", "søn. 17.1. 09:00", "Sun 17 Jan 09:00"].map(String::from)
        );
        let saturday = at(tz, 2027, 1, 16, 9, 0);
        assert_eq!(
            all(saturday, now, tz),
            ["lör 16/1 09:00", "lør. 16.1. 09:00", "Sat 16 Jan 09:00"].map(String::from)
        );
        let months: Vec<String> = (1..=12)
            .map(|m| local_time(at(tz, 2028, m, 1, 0, 0), now, &zone(tz), Language::En))
            .map(|s| s.split(' ').nth(2).unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            months.join(" "),
            "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
        );
    }

    #[test]
    fn midnight_is_decided_by_the_calendar_not_by_24_hours() {
        let tz = "Europe/Stockholm";
        let almost = at(tz, 2026, 11, 24, 23, 59);
        let midnight = at(tz, 2026, 11, 25, 0, 0);
        let after = at(tz, 2026, 11, 25, 0, 1);
        assert_eq!(sv(almost, almost), "23:59");
        assert_eq!(sv(midnight, almost), "i morgon 00:00");
        assert_eq!(sv(after, almost), "i morgon 00:01");
        assert_eq!(sv(almost, midnight), "i går 23:59");
        assert_eq!(sv(midnight, midnight), "00:00");
        assert_eq!(sv(after, midnight), "00:01");
        assert_eq!(sv(almost, after), "i går 23:59");
        // Ten minutes later but another day; almost 24 hours later but the same day.
        let now = at(tz, 2026, 11, 24, 23, 50);
        assert_eq!(sv(at(tz, 2026, 11, 25, 0, 0), now), "i morgon 00:00");
        let early = at(tz, 2026, 11, 24, 0, 5);
        assert_eq!(sv(at(tz, 2026, 11, 24, 23, 55), early), "23:55");
    }

    #[test]
    fn new_year_is_tomorrow_and_a_week_into_it_has_the_year() {
        let tz = "Europe/Stockholm";
        let now = at(tz, 2026, 12, 31, 23, 30);
        assert_eq!(
            all(at(tz, 2027, 1, 1, 1, 0), now, tz),
            ["i morgon 01:00", "i morgen 01:00", "tomorrow 01:00"].map(String::from)
        );
        // Near, but in another year: the year keeps "2/1" from reading as this January.
        assert_eq!(
            all(at(tz, 2027, 1, 2, 1, 0), now, tz),
            [
                "lör 2/1 2027 01:00",
                "lør. 2.1.2027 01:00",
                "Sat 2 Jan 2027 01:00"
            ]
            .map(String::from)
        );
        assert_eq!(
            all(at(tz, 2027, 1, 7, 1, 0), now, tz),
            [
                "tors 7/1 2027 01:00",
                "tor. 7.1.2027 01:00",
                "Thu 7 Jan 2027 01:00"
            ]
            .map(String::from)
        );
        let new_year = at(tz, 2027, 1, 1, 0, 10);
        assert_eq!(sv(at(tz, 2026, 12, 31, 22, 10), new_year), "i går 22:10");
        assert_eq!(
            sv(at(tz, 2026, 12, 29, 22, 10), new_year),
            "tis 29/12 2026 22:10"
        );
    }

    #[test]
    fn dst_switches_of_2026_in_stockholm_and_oslo() {
        for tz in ["Europe/Stockholm", "Europe/Oslo"] {
            // Spring: 29 March has 23 hours; 02:00 to 03:00 does not exist.
            let eve = at(tz, 2026, 3, 28, 22, 0);
            let spring = at(tz, 2026, 3, 29, 0, 30);
            assert_eq!(all(spring, eve, tz)[0], "i morgon 00:30");
            // 03:00 CEST is one hour after 01:59 CET.
            let after_gap = at(tz, 2026, 3, 29, 1, 59)
                .checked_add(jiff::SignedDuration::from_mins(1))
                .expect("in range");
            assert_eq!(all(after_gap, eve, tz)[1], "i morgen 03:00");
            // 23 hours after 00:30 on the short day is already the next day.
            let next = spring
                .checked_add(jiff::SignedDuration::from_hours(23))
                .expect("in range");
            assert_eq!(
                all(next, spring, tz),
                ["i morgon 00:30", "i morgen 00:30", "tomorrow 00:30"].map(String::from)
            );

            // Autumn: 25 October has 25 hours; 02:00 to 03:00 comes twice.
            let eve = at(tz, 2026, 10, 24, 22, 0);
            let first = at(tz, 2026, 10, 25, 2, 30);
            let second = first
                .checked_add(jiff::SignedDuration::from_hours(1))
                .expect("in range");
            for t in [first, second] {
                assert_eq!(
                    all(t, eve, tz),
                    ["i morgon 02:30", "i morgen 02:30", "tomorrow 02:30"].map(String::from)
                );
            }
            assert_eq!(all(second, first, tz)[2], "02:30");
            // 24 hours after 00:30 on the long day is still that day.
            let long_day = at(tz, 2026, 10, 25, 0, 30);
            let late = long_day
                .checked_add(jiff::SignedDuration::from_hours(24))
                .expect("in range");
            assert_eq!(all(late, long_day, tz)[0], "23:30");
            assert_eq!(
                all(at(tz, 2026, 10, 26, 0, 10), long_day, tz)[0],
                "i morgon 00:10"
            );
        }
    }

    #[test]
    fn the_zone_decides_the_day() {
        // 23:30 UTC on 14 January is already 15 January in Stockholm.
        let t = at("UTC", 2027, 1, 14, 23, 30);
        let now = at("UTC", 2027, 1, 14, 12, 0);
        assert_eq!(local_time(t, now, &TimeZone::UTC, Language::En), "23:30");
        assert_eq!(sv(t, now), "i morgon 00:30");
    }

    const ZONES: [&str; 7] = [
        "Europe/Stockholm",
        "Europe/Oslo",
        "UTC",
        "America/St_Johns",
        "Asia/Kathmandu",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    ];

    fn instant() -> impl Strategy<Value = Timestamp> {
        prop_oneof![
            Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
            // Around now, where distances of days are common.
            1_700_000_000i64..1_900_000_000,
        ]
        .prop_map(|s| Timestamp::from_second(s).expect("in range"))
    }

    proptest! {
        #[test]
        fn every_time_reads_with_its_day_and_stays_gsm7(
            t in instant(),
            offset in -10i64 * 86_400..10 * 86_400,
            far_now in instant(),
            near in any::<bool>(),
            zone_index in 0..ZONES.len(),
            lang_index in 0..LANGS.len(),
        ) {
            let tz = zone(ZONES[zone_index]);
            let lang = LANGS[lang_index];
            let now = if near {
                t.checked_add(jiff::SignedDuration::from_secs(offset)).unwrap_or(far_now)
            } else {
                far_now
            };
            let text = local_time(t, now, &tz, lang);
            let local = t.to_zoned(tz.clone());
            let clock = format!("{:02}:{:02}", local.hour(), local.minute());
            prop_assert!(text.ends_with(&clock), "{text}");
            prop_assert_eq!(analyze(&text).encoding, Encoding::Gsm7, "{}", text);
            if local.date() == now.to_zoned(tz).date() {
                prop_assert_eq!(&text, &clock);
            } else {
                let (d, m) = (local.date().day(), local.date().month());
                let dated = match lang {
                    Language::Sv => format!(" {d}/{m}"),
                    Language::Nb => format!(" {d}.{m}."),
                    Language::En => format!(" {d} {} ", month_en(m)),
                };
                let day_word = [tomorrow(lang), yesterday(lang)]
                    .into_iter()
                    .any(|w| text == format!("{w} {clock}"));
                prop_assert!(day_word || text.contains(&dated), "{text}");
            }
        }
    }
}
