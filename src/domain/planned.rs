//! When planned work is reminded: on the calendar day before its start, at a local clock
//! time, in the tenant's zone. Computed from the civil date, not by subtracting 24 hours, so
//! a daylight-saving switch between the reminder and the start moves nothing: work at 09:00
//! on the Monday after the spring switch is reminded at 18:00 on the Sunday, 14 hours ahead,
//! not at 19:00 or 17:00.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

/// A local clock time such as "18:00".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockTime(Time);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a clock time such as 18:00")]
pub struct ClockTimeError(String);

impl ClockTime {
    /// A clock time from constants (a literal in the code; other values are parsed).
    pub const fn at(hour: i8, minute: i8) -> Self {
        Self(Time::constant(hour, minute, 0, 0))
    }

    pub fn time(self) -> Time {
        self.0
    }

    pub fn parse(s: &str) -> Result<Self, ClockTimeError> {
        let bad = || ClockTimeError(s.chars().take(20).collect());
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        Time::new(h, m, 0, 0).map(Self).map_err(|_| bad())
    }

    /// The reminder of work starting at `start`: this time on the local day before. A time
    /// a switch skips (02:30 on the spring night) is taken as the first instant after the
    /// gap, one that occurs twice (02:30 on the autumn night) as the first of the two.
    pub fn before(self, start: Timestamp, zone: &TimeZone) -> Timestamp {
        let day = start.to_zoned(zone.clone()).date();
        // The day before any representable date is representable except at the minimum,
        // which no stored time (2000-2100) comes near.
        let eve = day.yesterday().unwrap_or(day);
        zone.to_ambiguous_zoned(eve.to_datetime(self.0))
            .compatible()
            .map_or(start, |z| z.timestamp())
    }
}

impl<'de> serde::Deserialize<'de> for ClockTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A local wall-clock time in `zone` ("2026-03-29T02:30"), as an instant.
    pub(in crate::domain) fn at(zone: &str, local: &str) -> Timestamp {
        let tz = TimeZone::get(zone).unwrap();
        tz.to_ambiguous_zoned(local.parse().unwrap())
            .compatible()
            .unwrap()
            .timestamp()
    }

    /// An instant as the wall clock in `zone` shows it, with its offset.
    pub(in crate::domain) fn local(zone: &str, t: Timestamp) -> String {
        t.to_zoned(TimeZone::get(zone).unwrap())
            .strftime("%Y-%m-%d %H:%M %:z")
            .to_string()
    }

    #[test]
    fn the_evening_before_across_every_switch_of_2026_and_2027() {
        let six = ClockTime::at(18, 0);
        // (start, reminder) in local time; the switches are the last Sundays of March and
        // October in both zones.
        let cases = [
            // Work on the Monday after the spring switch, reminded on the switch day itself.
            ("2026-03-30T09:00", "2026-03-29 18:00 +02:00"),
            // Work starting just after midnight on the switch day: the Saturday evening.
            ("2026-03-29T00:30", "2026-03-28 18:00 +01:00"),
            // Work starting in the hour the clocks skip lands after it; still the eve.
            ("2026-03-29T02:30", "2026-03-28 18:00 +01:00"),
            ("2026-10-26T07:00", "2026-10-25 18:00 +01:00"),
            ("2026-10-25T00:15", "2026-10-24 18:00 +02:00"),
            ("2027-03-29T09:00", "2027-03-28 18:00 +02:00"),
            ("2027-03-28T06:00", "2027-03-27 18:00 +01:00"),
            ("2027-11-01T08:00", "2027-10-31 18:00 +01:00"),
            ("2027-10-31T02:30", "2027-10-30 18:00 +02:00"),
            // New Year and a month end.
            ("2027-01-01T00:01", "2026-12-31 18:00 +01:00"),
            ("2026-03-01T10:00", "2026-02-28 18:00 +01:00"),
        ];
        for zone in ["Europe/Stockholm", "Europe/Oslo"] {
            let tz = TimeZone::get(zone).unwrap();
            for (start, want) in cases {
                let got = six.before(at(zone, start), &tz);
                assert_eq!(local(zone, got), want, "{zone}, work at {start}");
            }
        }
    }

    #[test]
    fn a_reminder_time_inside_a_switch_gap_or_fold() {
        let tz = TimeZone::get("Europe/Stockholm").unwrap();
        let half_past_two = ClockTime::parse("02:30").unwrap();
        // 2026-03-29 02:30 does not exist: the first instant after the gap is 03:30 CEST
        // (compatible disambiguation).
        let spring = half_past_two.before(at("Europe/Stockholm", "2026-03-30T09:00"), &tz);
        assert_eq!(local("Europe/Stockholm", spring), "2026-03-29 03:30 +02:00");
        // 2026-10-25 02:30 happens twice: the first (summer time).
        let autumn = half_past_two.before(at("Europe/Stockholm", "2026-10-26T09:00"), &tz);
        assert_eq!(local("Europe/Stockholm", autumn), "2026-10-25 02:30 +02:00");
    }

    #[test]
    fn clock_times_parse_strictly() {
        assert_eq!(ClockTime::parse("18:00").unwrap().to_string(), "18:00");
        assert_eq!(ClockTime::parse(" 7:05 ").unwrap().to_string(), "07:05");
        for bad in [
            "", "18", "24:00", "18:60", "-1:00", "18:00:00", "sex", "18.00",
        ] {
            assert!(ClockTime::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Always on the local day before the start, at the configured time (or just after
        /// a gap), and so always before the start.
        #[test]
        fn always_the_local_day_before(secs in 946_684_800i64..4_102_444_800, h in 0i8..24, m in 0i8..60, oslo: bool) {
            let zone = if oslo { "Europe/Oslo" } else { "Europe/Stockholm" };
            let tz = TimeZone::get(zone).unwrap();
            let start = Timestamp::from_second(secs).unwrap();
            let rt = ClockTime(Time::new(h, m, 0, 0).unwrap());
            let r = rt.before(start, &tz).to_zoned(tz.clone());
            let s = start.to_zoned(tz);
            prop_assert_eq!(r.date(), s.date().yesterday().unwrap());
            prop_assert!(r.timestamp() < start);
            prop_assert!(r.time() >= rt.0 && r.time().hour() - rt.0.hour() <= 1);
        }
    }
}
