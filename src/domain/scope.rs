//! What an API token may do.

use std::str::FromStr;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Feeds facilities and move-outs from the customer information system.
    Cis,
    /// Declares and updates outages (console, OMS, SCADA).
    Operator,
    /// Customer service and the data-protection officer: data-subject request cases.
    Privacy,
    /// Manages the tenant: tokens, settings. Implies the other scopes.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Cis => "cis",
            Scope::Operator => "operator",
            Scope::Privacy => "privacy",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token holding `held` may act where `self` is required.
    pub fn granted_by(self, held: &[Scope]) -> bool {
        held.iter().any(|h| *h == self || *h == Scope::Admin)
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cis" => Ok(Scope::Cis),
            "operator" => Ok(Scope::Operator),
            "privacy" => Ok(Scope::Privacy),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?}: use cis, operator, privacy or admin"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope_and_others_only_themselves() {
        assert!(Scope::Cis.granted_by(&[Scope::Admin]));
        assert!(Scope::Operator.granted_by(&[Scope::Cis, Scope::Operator]));
        assert!(!Scope::Admin.granted_by(&[Scope::Cis, Scope::Operator]));
        assert!(Scope::Privacy.granted_by(&[Scope::Admin]));
        assert!(Scope::Privacy.granted_by(&[Scope::Privacy]));
        assert!(!Scope::Privacy.granted_by(&[Scope::Operator, Scope::Cis]));
        assert!(!Scope::Operator.granted_by(&[Scope::Privacy]));
        assert_eq!("privacy".parse::<Scope>(), Ok(Scope::Privacy));
        assert!(!Scope::Cis.granted_by(&[]));
        assert_eq!("OPERATOR".parse::<Scope>(), Ok(Scope::Operator));
        assert!(
            "root"
                .parse::<Scope>()
                .unwrap_err()
                .contains("cis, operator, privacy or admin")
        );
    }
}
