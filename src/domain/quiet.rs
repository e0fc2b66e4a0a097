//! Quiet hours: a nightly window, in each tenant's local time, during which notices that can
//! wait are held and sent when it ends. What can wait is decided here too, so the rule is in
//! one place: news of planned work that has not started (its start is after the window
//! ends), and an update that only moves the estimated restoration a little. Everything else
//! about an outage in progress (it began, it spread, supply is back, a first estimate) is
//! never held.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::outage::StepKind;
use super::planned::ClockTime;

/// The window from `start` to `end` local time; it may run past midnight (21:00-07:00). A
/// window whose ends are equal holds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: ClockTime,
    pub end: ClockTime,
}

/// What a step is, as far as quiet hours care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUrgency {
    pub kind: StepKind,
    pub planned: bool,
    /// The outage's start as it stands after the step (Unix seconds).
    pub starts_at: i64,
    /// For an update: the estimate before and after.
    pub etr_before: Option<i64>,
    pub etr_after: Option<i64>,
}

impl StepUrgency {
    /// Whether the step's notices may wait until quiet hours end at `window_end`: planned
    /// work not begun by then, and an update that moves an estimate by less than
    /// `urgent_etr_minutes` (a first estimate, or one taken away, is always news).
    pub fn can_wait(&self, now: i64, window_end: i64, urgent_etr_minutes: u32) -> bool {
        if self.planned && self.starts_at > now {
            return self.starts_at > window_end;
        }
        match (self.kind, self.etr_before, self.etr_after) {
            (StepKind::Updated, Some(before), Some(after)) => {
                (after - before).abs() < i64::from(urgent_etr_minutes) * 60
            }
            (StepKind::Updated, None, None) => true,
            _ => false,
        }
    }
}

impl QuietHours {
    /// When the window that `now` falls in ends (the first instant at or after its end
    /// time, local), or None when `now` is outside it. A date the time zone database cannot
    /// place (none between 2000 and 2100) also gives None: sending at once is the safe side.
    pub fn ends_after(&self, now: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let (start, end) = (self.start.time(), self.end.time());
        if start == end {
            return None;
        }
        let local = now.to_zoned(zone.clone());
        let (day, t) = (local.date(), local.time());
        let inside = if start < end {
            t >= start && t < end
        } else {
            t >= start || t < end
        };
        if !inside {
            return None;
        }
        // The end today when it is still ahead (before midnight in a window that wraps, or
        // any time in one that does not), otherwise tomorrow's.
        let end_day = if t < end { day } else { day.tomorrow().ok()? };
        let at = zone
            .to_ambiguous_zoned(DateTime::from_parts(end_day, end))
            .compatible()
            .ok()?
            .timestamp();
        // A switch can put the local end at or before now (the clocks went back over it):
        // nothing is held then.
        (at > now).then_some(at)
    }

    /// Until when a step's notices are held, if they are.
    pub fn hold(
        &self,
        step: &StepUrgency,
        now: Timestamp,
        zone: &TimeZone,
        urgent_etr_minutes: u32,
    ) -> Option<i64> {
        let end = self.ends_after(now, zone)?.as_second();
        step.can_wait(now.as_second(), end, urgent_etr_minutes)
            .then_some(end)
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::super::planned::tests::{at, local};
    use super::*;
    use proptest::prelude::*;

    const NIGHT: QuietHours = QuietHours {
        start: ClockTime::at(21, 0),
        end: ClockTime::at(7, 0),
    };

    fn ends(zone: &str, now: &str) -> Option<String> {
        NIGHT
            .ends_after(at(zone, now), &TimeZone::get(zone).unwrap())
            .map(|t| local(zone, t))
    }

    #[test]
    fn the_window_wraps_midnight_and_ends_at_seven() {
        for zone in ["Europe/Stockholm", "Europe/Oslo"] {
            assert_eq!(ends(zone, "2026-12-06T20:59"), None);
            assert_eq!(
                ends(zone, "2026-12-06T21:00").as_deref(),
                Some("2026-12-07 07:00 +01:00")
            );
            assert_eq!(
                ends(zone, "2026-12-06T23:59").as_deref(),
                Some("2026-12-07 07:00 +01:00")
            );
            assert_eq!(
                ends(zone, "2026-12-07T03:00").as_deref(),
                Some("2026-12-07 07:00 +01:00")
            );
            assert_eq!(ends(zone, "2026-12-07T07:00"), None);
            assert_eq!(ends(zone, "2026-12-07T12:00"), None);
        }
    }

    #[test]
    fn nights_with_a_switch_end_at_seven_local() {
        let zone = "Europe/Stockholm";
        // The spring night is an hour shorter, the autumn one an hour longer; both end at
        // 07:00 on the wall clock.
        assert_eq!(
            ends(zone, "2026-03-28T22:00").as_deref(),
            Some("2026-03-29 07:00 +02:00")
        );
        assert_eq!(
            ends(zone, "2026-10-24T22:00").as_deref(),
            Some("2026-10-25 07:00 +01:00")
        );
        assert_eq!(
            ends("Europe/Oslo", "2027-10-31T02:30").as_deref(),
            Some("2027-10-31 07:00 +01:00")
        );
    }

    #[test]
    fn a_window_inside_one_day_and_an_empty_one() {
        let tz = TimeZone::get("Europe/Oslo").unwrap();
        let lunch = QuietHours {
            start: ClockTime::at(12, 0),
            end: ClockTime::at(13, 0),
        };
        let noon = at("Europe/Oslo", "2026-12-07T12:30");
        assert_eq!(
            lunch.ends_after(noon, &tz).map(|t| local("Europe/Oslo", t)),
            Some("2026-12-07 13:00 +01:00".into())
        );
        assert_eq!(
            lunch.ends_after(at("Europe/Oslo", "2026-12-07T13:30"), &tz),
            None
        );
        let none = QuietHours {
            start: ClockTime::at(7, 0),
            end: ClockTime::at(7, 0),
        };
        assert_eq!(none.ends_after(noon, &tz), None);
    }

    #[test]
    fn what_waits_and_what_does_not() {
        let now = 1_000_000;
        let end = now + 8 * 3600;
        let step = |kind, planned, starts_at, before, after| StepUrgency {
            kind,
            planned,
            starts_at,
            etr_before: before,
            etr_after: after,
        };
        // Planned work next week waits; work starting before the window ends does not.
        assert!(
            step(
                StepKind::Announced,
                true,
                end + 86_400,
                None,
                Some(end + 90_000)
            )
            .can_wait(now, end, 60)
        );
        assert!(!step(StepKind::Announced, true, end - 60, None, Some(end)).can_wait(now, end, 60));
        assert!(step(StepKind::Cancelled, true, end + 86_400, None, None).can_wait(now, end, 60));
        // Planned work under way is an outage in progress.
        assert!(!step(StepKind::Restored, true, now - 60, None, None).can_wait(now, end, 60));
        // An unplanned outage: only small estimate moves (and cause or text alone) wait.
        for kind in [
            StepKind::Declared,
            StepKind::Extended,
            StepKind::Released,
            StepKind::Restored,
            StepKind::Cancelled,
            StepKind::Reopened,
        ] {
            assert!(
                !step(kind, false, now - 60, None, None).can_wait(now, end, 60),
                "{kind}"
            );
        }
        let etr = Some(now + 3600);
        assert!(step(StepKind::Updated, false, now, etr, Some(now + 5400)).can_wait(now, end, 60));
        assert!(!step(StepKind::Updated, false, now, etr, Some(now + 7200)).can_wait(now, end, 60));
        assert!(!step(StepKind::Updated, false, now, etr, Some(now)).can_wait(now, end, 60));
        assert!(!step(StepKind::Updated, false, now, None, etr).can_wait(now, end, 60));
        assert!(!step(StepKind::Updated, false, now, etr, None).can_wait(now, end, 60));
        assert!(step(StepKind::Updated, false, now, None, None).can_wait(now, end, 60));
    }

    proptest! {
        /// A hold always ends after now, within a day and an hour, at the window's end on
        /// the wall clock (or the first instant after a gap).
        #[test]
        fn holds_end_at_the_window_end(secs in 946_684_800i64..4_102_444_800, sh in 0i8..24, eh in 0i8..24, oslo: bool) {
            let zone = if oslo { "Europe/Oslo" } else { "Europe/Stockholm" };
            let tz = TimeZone::get(zone).unwrap();
            let q = QuietHours { start: ClockTime::at(sh, 0), end: ClockTime::at(eh, 0) };
            let now = Timestamp::from_second(secs).unwrap();
            if let Some(end) = q.ends_after(now, &tz) {
                prop_assert!(end > now);
                prop_assert!(end.as_second() - secs <= 25 * 3600);
                let h = end.to_zoned(tz).time().hour();
                prop_assert!(h == eh || h == eh + 1);
            } else if sh != eh {
                let h = now.to_zoned(tz).time().hour();
                let inside = if sh < eh { h >= sh && h < eh } else { h >= sh || h < eh };
                // Outside the window, or at its very end on a night the clocks went back.
                prop_assert!(!inside || h == eh || h + 1 == eh);
            }
        }
    }
}
