//! The utility services an outage can affect.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceKindError {
    #[error("no service was given: use electricity, district_heating, city_fibre or water")]
    Empty,
    // The input is deliberately not echoed: it may be arbitrarily long and
    // these messages end up in logs and API responses.
    #[error(
        "the service is not recognised: use electricity, district_heating, city_fibre or water"
    )]
    Unknown,
}

impl ServiceKindError {
    pub fn code(&self) -> &'static str {
        match self {
            ServiceKindError::Empty => "empty",
            ServiceKindError::Unknown => "unknown_service",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ServiceKind {
    Electricity,
    DistrictHeating,
    CityFibre,
    Water,
}

impl ServiceKind {
    pub fn all() -> [ServiceKind; 4] {
        [
            ServiceKind::Electricity,
            ServiceKind::DistrictHeating,
            ServiceKind::CityFibre,
            ServiceKind::Water,
        ]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Electricity => "electricity",
            ServiceKind::DistrictHeating => "district_heating",
            ServiceKind::CityFibre => "city_fibre",
            ServiceKind::Water => "water",
        }
    }

    /// Accepts the canonical names plus the Swedish, Norwegian and English
    /// words utilities use in their own systems and CSV exports, with and
    /// without the Nordic letters that get lost in some exports.
    pub fn parse(input: &str) -> Result<Self, ServiceKindError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ServiceKindError::Empty);
        }
        match input.to_lowercase().as_str() {
            "electricity" | "el" | "elnät" | "elnat" | "power" | "strøm" | "strom" => {
                Ok(ServiceKind::Electricity)
            }
            "district_heating" | "district-heating" | "fjärrvärme" | "fjarrvarme"
            | "fjernvarme" | "heating" => Ok(ServiceKind::DistrictHeating),
            "city_fibre" | "city-fibre" | "fibre" | "fiber" | "stadsnät" | "stadsnat"
            | "bredband" => Ok(ServiceKind::CityFibre),
            "water" | "vatten" | "vann" => Ok(ServiceKind::Water),
            _ => Err(ServiceKindError::Unknown),
        }
    }
}

/// In the API description: the canonical names (the parser also takes the Nordic words).
impl utoipa::PartialSchema for ServiceKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ServiceKind::all().map(ServiceKind::as_str)))
            .into()
    }
}

impl utoipa::ToSchema for ServiceKind {}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceKind {
    type Err = ServiceKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ServiceKind {
    type Error = ServiceKindError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ServiceKind> for String {
    fn from(value: ServiceKind) -> Self {
        value.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    #[test]
    fn accepts_canonical_names_and_aliases() {
        let cases = [
            (ServiceKind::Electricity, "electricity"),
            (ServiceKind::Electricity, "El"),
            (ServiceKind::Electricity, "ELNÄT"),
            (ServiceKind::Electricity, "elnat"),
            (ServiceKind::Electricity, " power "),
            (ServiceKind::Electricity, "Strøm"),
            (ServiceKind::Electricity, "STRØM"),
            (ServiceKind::Electricity, "strom"),
            (ServiceKind::DistrictHeating, "district_heating"),
            (ServiceKind::DistrictHeating, "District-Heating"),
            (ServiceKind::DistrictHeating, "Fjärrvärme"),
            (ServiceKind::DistrictHeating, "fjarrvarme"),
            (ServiceKind::DistrictHeating, "fjernvarme"),
            (ServiceKind::DistrictHeating, "heating"),
            (ServiceKind::CityFibre, "city_fibre"),
            (ServiceKind::CityFibre, "city-fibre"),
            (ServiceKind::CityFibre, "Fibre"),
            (ServiceKind::CityFibre, "fiber"),
            (ServiceKind::CityFibre, "Stadsnät"),
            (ServiceKind::CityFibre, "stadsnat"),
            (ServiceKind::CityFibre, "bredband"),
            (ServiceKind::Water, "WATER"),
            (ServiceKind::Water, "vatten"),
            (ServiceKind::Water, "\tvann\n"),
        ];
        for (expected, input) in cases {
            assert_eq!(ServiceKind::parse(input), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn canonical_strings() {
        let names: Vec<String> = ServiceKind::all().into_iter().map(String::from).collect();
        assert_eq!(
            names,
            ["electricity", "district_heating", "city_fibre", "water"]
        );
        assert_eq!(ServiceKind::DistrictHeating.to_string(), "district_heating");
    }

    #[test]
    fn rejects_with_stable_codes() {
        let cases = [
            ("", "empty"),
            ("  ", "empty"),
            ("gas", "unknown_service"),
            ("district heating", "unknown_service"),
            ("elnät!", "unknown_service"),
        ];
        for (input, code) in cases {
            assert_eq!(
                ServiceKind::parse(input).unwrap_err().code(),
                code,
                "{input:?}"
            );
        }
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let de: StringDeserializer<DeError> = "Fjärrvärme".to_owned().into_deserializer();
        assert_eq!(
            ServiceKind::deserialize(de),
            Ok(ServiceKind::DistrictHeating)
        );
        let bad: StringDeserializer<DeError> = "gas".to_owned().into_deserializer();
        assert!(ServiceKind::deserialize(bad).is_err());
    }

    fn check(input: &str) {
        if let Err(err) = ServiceKind::parse(input) {
            assert!(!err.to_string().is_empty());
            assert!(!err.code().is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(input in any::<String>()) {
            check(&input);
        }

        #[test]
        fn never_panics_on_printable(input in "\\PC*") {
            check(&input);
        }

        #[test]
        fn never_panics_on_dot_star(input in ".*") {
            check(&input);
        }

        #[test]
        fn display_round_trips(index in 0usize..4) {
            let kind = ServiceKind::all()[index];
            prop_assert_eq!(ServiceKind::parse(&kind.to_string()), Ok(kind));
        }

        #[test]
        fn case_and_padding_do_not_matter(index in 0usize..4, upper in any::<bool>(), pad in "[ \t]{0,3}") {
            let kind = ServiceKind::all()[index];
            let name = if upper { kind.as_str().to_uppercase() } else { kind.as_str().to_owned() };
            prop_assert_eq!(ServiceKind::parse(&format!("{pad}{name}{pad}")), Ok(kind));
        }
    }
}
