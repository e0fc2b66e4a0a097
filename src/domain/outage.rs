//! The life cycle of an outage as a state machine: which steps may follow which, and
//! whether an update is material enough to notify households.

use std::fmt;
use std::str::FromStr;

/// Where an outage is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutageState {
    /// Declared and not yet over.
    Active,
    /// Power (heat, fibre, water) is back.
    Restored,
    /// Declared in error.
    Cancelled,
}

/// One recorded step of an outage. Every step is recorded with who did it; some notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Declared,
    /// A planned outage was published ahead of its start: registered contacts hear of it
    /// (holders get a postcard); the directory waits for the reminder.
    Announced,
    /// The day-before reminder of a planned outage: everyone affected, directory numbers too.
    Reminded,
    /// Planned work moved to new times: everyone told hears of it.
    Rescheduled,
    /// New estimated restoration, cause or text.
    Updated,
    /// More facilities are affected.
    Extended,
    /// Some facilities got their supply back before the rest.
    Released,
    Restored,
    Cancelled,
    /// Supply failed again soon after a restore, for the same facilities: the outage goes
    /// on instead of a new one starting (`outages.reopen_within_minutes`).
    Reopened,
}

impl StepKind {
    pub const ALL: [StepKind; 10] = [
        StepKind::Declared,
        StepKind::Announced,
        StepKind::Reminded,
        StepKind::Rescheduled,
        StepKind::Updated,
        StepKind::Extended,
        StepKind::Released,
        StepKind::Restored,
        StepKind::Cancelled,
        StepKind::Reopened,
    ];

    /// Steps that tell households an outage reaches them: everyone affected by the step
    /// hears of it. Every other step goes only to those already told.
    pub fn starts(self) -> bool {
        matches!(
            self,
            StepKind::Declared | StepKind::Extended | StepKind::Announced | StepKind::Reminded
        )
    }

    /// Steps that ask the telecom directory for numbers at the affected addresses: an
    /// unplanned outage at once, a planned one the day before (its announcement is ahead of
    /// time, by postcard and to registered contacts).
    pub fn asks_directory(self) -> bool {
        matches!(
            self,
            StepKind::Declared | StepKind::Extended | StepKind::Reminded
        )
    }

    /// The first step of an outage.
    pub fn opens(self) -> bool {
        matches!(self, StepKind::Declared | StepKind::Announced)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Declared => "declared",
            StepKind::Announced => "announced",
            StepKind::Reminded => "reminded",
            StepKind::Rescheduled => "rescheduled",
            StepKind::Updated => "updated",
            StepKind::Extended => "extended",
            StepKind::Released => "released",
            StepKind::Restored => "restored",
            StepKind::Cancelled => "cancelled",
            StepKind::Reopened => "reopened",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown outage step {s:?}"))
    }
}

impl OutageState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutageState::Active => "active",
            OutageState::Restored => "restored",
            OutageState::Cancelled => "cancelled",
        }
    }

    /// The state after `step`, or why the step cannot follow.
    pub fn after(self, step: StepKind) -> Result<OutageState, TransitionError> {
        match (self, step) {
            (_, StepKind::Declared | StepKind::Announced) => {
                Err(TransitionError { from: self, step })
            }
            (
                OutageState::Active,
                StepKind::Updated
                | StepKind::Extended
                | StepKind::Released
                | StepKind::Reminded
                | StepKind::Rescheduled,
            ) => Ok(OutageState::Active),
            (OutageState::Active, StepKind::Restored) => Ok(OutageState::Restored),
            (OutageState::Active, StepKind::Cancelled) => Ok(OutageState::Cancelled),
            (OutageState::Restored, StepKind::Reopened) => Ok(OutageState::Active),
            (OutageState::Active, StepKind::Reopened)
            | (OutageState::Restored | OutageState::Cancelled, _) => {
                Err(TransitionError { from: self, step })
            }
        }
    }
}

impl FromStr for OutageState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(OutageState::Active),
            "restored" => Ok(OutageState::Restored),
            "cancelled" => Ok(OutageState::Cancelled),
            _ => Err(format!("unknown outage state {s:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an outage that is {} cannot be {}", from.as_str(), step.as_str())]
pub struct TransitionError {
    pub from: OutageState,
    pub step: StepKind,
}

/// What an update changes, for deciding whether households hear about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateDelta {
    /// Estimated restoration before and after (Unix seconds).
    pub etr_before: Option<i64>,
    pub etr_after: Option<i64>,
    pub cause_changed: bool,
    pub text_changed: bool,
}

/// An update notifies when the restoration estimate appears, disappears or moves by at
/// least `threshold_minutes`, or when the cause or the free text changes. Small ETR
/// adjustments are recorded but not sent, so households are not flooded during a storm.
pub fn update_is_material(delta: &UpdateDelta, threshold_minutes: u32) -> bool {
    let etr_moved = match (delta.etr_before, delta.etr_after) {
        (Some(a), Some(b)) => (a - b).unsigned_abs() >= u64::from(threshold_minutes) * 60,
        (None, None) => false,
        _ => true,
    };
    etr_moved || delta.cause_changed || delta.text_changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn active_outages_take_updates_and_end_once() {
        let active = OutageState::Active;
        assert_eq!(active.after(StepKind::Updated), Ok(OutageState::Active));
        assert_eq!(active.after(StepKind::Extended), Ok(OutageState::Active));
        assert_eq!(active.after(StepKind::Released), Ok(OutageState::Active));
        assert_eq!(active.after(StepKind::Restored), Ok(OutageState::Restored));
        assert_eq!(
            active.after(StepKind::Cancelled),
            Ok(OutageState::Cancelled)
        );
        assert!(active.after(StepKind::Reopened).is_err());
        assert_eq!(
            OutageState::Restored.after(StepKind::Reopened),
            Ok(OutageState::Active)
        );
        for end in [OutageState::Restored, OutageState::Cancelled] {
            for step in StepKind::ALL {
                if (end, step) == (OutageState::Restored, StepKind::Reopened) {
                    continue;
                }
                let err = end.after(step).unwrap_err();
                assert!(
                    err.to_string()
                        .starts_with(&format!("an outage that is {}", end.as_str()))
                );
            }
        }
        assert_eq!(
            active.after(StepKind::Declared).unwrap_err().to_string(),
            "an outage that is active cannot be declared"
        );
    }

    #[test]
    fn materiality_follows_the_threshold() {
        let d = |a: Option<i64>, b: Option<i64>| UpdateDelta {
            etr_before: a,
            etr_after: b,
            ..Default::default()
        };
        assert!(!update_is_material(&d(Some(0), Some(29 * 60)), 30));
        assert!(update_is_material(&d(Some(0), Some(30 * 60)), 30));
        assert!(update_is_material(&d(Some(3600), Some(0)), 30));
        assert!(update_is_material(&d(None, Some(0)), 30));
        assert!(update_is_material(&d(Some(0), None), 30));
        assert!(!update_is_material(&d(None, None), 30));
        assert!(update_is_material(
            &UpdateDelta {
                cause_changed: true,
                ..Default::default()
            },
            30
        ));
    }

    proptest! {
        #[test]
        fn step_names_round_trip(i in 0usize..StepKind::ALL.len()) {
            let k = StepKind::ALL[i];
            prop_assert_eq!(k.as_str().parse::<StepKind>(), Ok(k));
        }

        #[test]
        /// Only a reopening follows a restore; nothing follows a cancellation.
        fn a_finished_outage_never_changes(step in 0usize..StepKind::ALL.len(), end in proptest::bool::ANY) {
            let state = if end { OutageState::Restored } else { OutageState::Cancelled };
            let kind = StepKind::ALL[step];
            prop_assert_eq!(state.after(kind).is_ok(), end && kind == StepKind::Reopened);
        }
    }
}
