//! A facility as the CIS reports it, and the validation that turns a raw row (CSV line, JSON
//! object) into one. Every problem in a row is reported, not just the first, so the utility's
//! IT can fix a file in one pass.

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::ids::{CustomerNumber, FacilityNumber};
use crate::domain::language::Language;
use crate::domain::service::ServiceKind;

/// A row before validation: every field as text, exactly as it arrived.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFacility {
    /// Facility number from the invoice (anläggningsnummer / målepunkt).
    pub facility_number: Option<String>,
    /// electricity, district_heating, city_fibre or water.
    pub service: Option<String>,
    /// The holder's customer number from the invoice.
    pub customer_number: Option<String>,
    pub street: Option<String>,
    pub house_number: Option<String>,
    /// Entrance, staircase or apartment, e.g. "B" or "lgh 1102".
    pub entrance: Option<String>,
    /// Four (Norway) or five (Sweden) digits; spaces allowed.
    pub postcode: Option<String>,
    pub town: Option<String>,
    /// WGS84 latitude in degrees, number or text.
    #[serde(default, deserialize_with = "number_or_text")]
    #[schema(value_type = Option<f64>)]
    pub latitude: Option<String>,
    /// WGS84 longitude in degrees, number or text.
    #[serde(default, deserialize_with = "number_or_text")]
    #[schema(value_type = Option<f64>)]
    pub longitude: Option<String>,
    /// Id of the grid node (secondary substation, feeder) the facility hangs from.
    pub grid_node: Option<String>,
    pub holder_name: Option<String>,
    pub postal_street: Option<String>,
    pub postal_postcode: Option<String>,
    pub postal_town: Option<String>,
    pub postal_country: Option<String>,
    /// sv, nb or en; the tenant's first language when empty.
    pub language: Option<String>,
}

pub(crate) fn number_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(f64),
        Text(String),
    }
    Ok(match Option::<NumOrText>::deserialize(d)? {
        None => None,
        Some(NumOrText::Num(n)) => Some(n.to_string()),
        Some(NumOrText::Text(t)) => Some(t),
    })
}

/// A postcode as digits only: Swedish ones have five, Norwegian four.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Postcode(String);

impl Postcode {
    pub fn parse(input: &str) -> Result<Self, String> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.is_empty() {
            return Err("the postcode is empty".into());
        }
        if !digits.chars().all(|c| c.is_ascii_digit()) || !(4..=5).contains(&digits.len()) {
            return Err(format!(
                "the postcode {input:?} is not four (Norway) or five (Sweden) digits"
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The national written form: Sweden groups its five digits 3 + 2 (`863 32`), Norway writes
/// its four together (`0150`). Facilities have no country of their own, and the digit count
/// already says which one a postcode is.
impl std::fmt::Display for Postcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_at_checked(3) {
            Some((head, tail)) if self.0.len() == 5 => write!(f, "{head} {tail}"),
            _ => f.write_str(&self.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

impl Coordinates {
    /// WGS84 degrees as a CIS or NIS file gives them: both or neither.
    pub fn parse(
        latitude: Option<String>,
        longitude: Option<String>,
    ) -> Result<Option<Self>, String> {
        match (latitude, longitude) {
            (None, None) => Ok(None),
            (Some(lat), Some(lon)) => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                (Ok(la), Ok(lo))
                    if (-90.0..=90.0).contains(&la) && (-180.0..=180.0).contains(&lo) =>
                {
                    Ok(Some(Coordinates {
                        latitude: la,
                        longitude: lo,
                    }))
                }
                _ => Err(format!(
                    "latitude/longitude {lat:?}/{lon:?} are not WGS84 degrees (latitude -90..90, longitude -180..180, decimal point)"
                )),
            },
            _ => Err("give both latitude and longitude, or neither".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAddress {
    pub street: String,
    pub house_number: String,
    pub entrance: Option<String>,
    pub postcode: Postcode,
    pub town: String,
}

/// The holder's name and where the holder gets paper mail (planned-outage postcards); may
/// differ from the service address (holiday homes). Stored sealed, as this JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PostalAddress {
    pub name: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub town: Option<String>,
    pub country: Option<String>,
}

impl PostalAddress {
    /// Whether the CIS gave nothing of it: then nothing is sealed.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FacilityRecord {
    pub facility_number: FacilityNumber,
    pub service: ServiceKind,
    pub customer_number: CustomerNumber,
    pub address: ServiceAddress,
    pub coordinates: Option<Coordinates>,
    pub grid_node: Option<String>,
    pub postal: PostalAddress,
    pub language: Language,
}

/// Why a row was not taken: one reason per bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub Vec<String>);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

const MAX_TEXT: usize = 200;

impl RawFacility {
    pub fn validate(&self, default_language: Language) -> Result<FacilityRecord, Rejection> {
        let mut reasons = Vec::new();
        let mut required = |name: &str, value: &Option<String>| -> Option<String> {
            match clean(value) {
                None => {
                    reasons.push(format!("{name} is missing"));
                    None
                }
                Some(v) if v.chars().count() > MAX_TEXT => {
                    reasons.push(format!("{name} is longer than {MAX_TEXT} characters"));
                    None
                }
                Some(v) => Some(v),
            }
        };
        let facility_number = required("facility_number", &self.facility_number);
        let service = required("service", &self.service);
        let customer_number = required("customer_number", &self.customer_number);
        let street = required("street", &self.street);
        let house_number = required("house_number", &self.house_number);
        let postcode = required("postcode", &self.postcode);
        let town = required("town", &self.town);

        let facility_number = facility_number.and_then(|v| {
            FacilityNumber::parse(&v)
                .map_err(|e| reasons.push(format!("facility_number: {e}")))
                .ok()
        });
        let service = service.and_then(|v| {
            v.parse::<ServiceKind>()
                .map_err(|e| reasons.push(format!("service: {e}")))
                .ok()
        });
        let customer_number = customer_number.and_then(|v| {
            CustomerNumber::parse(&v)
                .map_err(|e| reasons.push(format!("customer_number: {e}")))
                .ok()
        });
        let postcode = postcode.and_then(|v| {
            Postcode::parse(&v)
                .map_err(|e| reasons.push(format!("postcode: {e}")))
                .ok()
        });
        let language = match clean(&self.language) {
            None => Some(default_language),
            Some(v) => v
                .parse::<Language>()
                .map_err(|e| reasons.push(format!("language: {e}")))
                .ok(),
        };
        let coordinates = Coordinates::parse(clean(&self.latitude), clean(&self.longitude))
            .map_err(|e| reasons.push(e))
            .ok();
        let mut optional = |name: &str, value: &Option<String>| -> Option<String> {
            let v = clean(value)?;
            if v.chars().count() > MAX_TEXT {
                reasons.push(format!("{name} is longer than {MAX_TEXT} characters"));
                return None;
            }
            Some(v)
        };
        let entrance = optional("entrance", &self.entrance);
        let grid_node = optional("grid_node", &self.grid_node);
        let postal = PostalAddress {
            name: optional("holder_name", &self.holder_name),
            street: optional("postal_street", &self.postal_street),
            postcode: optional("postal_postcode", &self.postal_postcode),
            town: optional("postal_town", &self.postal_town),
            country: optional("postal_country", &self.postal_country),
        };

        match (
            facility_number,
            service,
            customer_number,
            street,
            house_number,
            postcode,
            town,
            language,
            coordinates,
        ) {
            (
                Some(facility_number),
                Some(service),
                Some(customer_number),
                Some(street),
                Some(house_number),
                Some(postcode),
                Some(town),
                Some(language),
                Some(coordinates),
            ) if reasons.is_empty() => Ok(FacilityRecord {
                facility_number,
                service,
                customer_number,
                address: ServiceAddress {
                    street,
                    house_number,
                    entrance,
                    postcode,
                    town,
                },
                coordinates,
                grid_node,
                postal,
                language,
            }),
            _ => Err(Rejection(reasons)),
        }
    }
}

/// Trims, and treats blank as absent; control characters are not text anyone meant to send.
pub(crate) fn clean(value: &Option<String>) -> Option<String> {
    let v = value.as_deref()?.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.chars().filter(|c| !c.is_control()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn good() -> RawFacility {
        RawFacility {
            facility_number: Some("735999100000000123".into()),
            service: Some("electricity".into()),
            customer_number: Some("100234".into()),
            street: Some("Storgatan".into()),
            house_number: Some("12".into()),
            entrance: Some("B".into()),
            postcode: Some("123 45".into()),
            town: Some("Älvstad".into()),
            latitude: Some("63.1".into()),
            longitude: Some("17.2".into()),
            grid_node: Some("N-12".into()),
            language: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_row_validates_into_domain_types() {
        let rec = good().validate(Language::Sv).unwrap();
        assert_eq!(rec.facility_number.as_str(), "735999100000000123");
        assert_eq!(rec.service, ServiceKind::Electricity);
        assert_eq!(rec.address.postcode.as_str(), "12345");
        assert_eq!(rec.language, Language::Sv);
        assert_eq!(
            rec.coordinates,
            Some(Coordinates {
                latitude: 63.1,
                longitude: 17.2
            })
        );
    }

    #[test]
    fn every_bad_field_is_reported() {
        let raw = RawFacility {
            facility_number: Some("12#4".into()),
            service: Some("gas".into()),
            customer_number: None,
            postcode: Some("1234567".into()),
            latitude: Some("95".into()),
            longitude: Some("17".into()),
            language: Some("de".into()),
            ..good()
        };
        let Rejection(reasons) = raw.validate(Language::Sv).unwrap_err();
        for needle in [
            "facility_number",
            "service",
            "customer_number is missing",
            "postcode",
            "latitude",
            "language",
        ] {
            assert!(
                reasons.iter().any(|r| r.contains(needle)),
                "{needle} not in {reasons:?}"
            );
        }
    }

    #[test]
    fn half_a_coordinate_is_refused() {
        let raw = RawFacility {
            longitude: None,
            ..good()
        };
        let err = raw.validate(Language::Sv).unwrap_err();
        assert!(err.to_string().contains("both latitude and longitude"));
    }

    #[test]
    fn json_accepts_numbers_or_text_for_coordinates_and_refuses_unknown_fields() {
        let a: RawFacility =
            serde_json::from_str(r#"{"latitude": 63.5, "longitude": "17.25"}"#).unwrap();
        assert_eq!(a.latitude.as_deref(), Some("63.5"));
        assert_eq!(a.longitude.as_deref(), Some("17.25"));
        assert!(serde_json::from_str::<RawFacility>(r#"{"phone": "070"}"#).is_err());
    }

    #[test]
    fn postcodes_show_in_their_national_form() {
        for (input, shown) in [
            ("86332", "863 32"),
            ("863 32", "863 32"),
            ("8 6 3 3 2", "863 32"),
            ("0150", "0150"),
            ("01 50", "0150"),
            ("9990", "9990"),
        ] {
            assert_eq!(
                Postcode::parse(input).unwrap().to_string(),
                shown,
                "{input}"
            );
        }
    }

    proptest! {
        #[test]
        fn validation_never_panics_and_always_says_why(
            fields in proptest::collection::vec(proptest::option::of("\\PC{0,30}"), 17)
        ) {
            let raw = RawFacility {
                facility_number: fields[0].clone(),
                service: fields[1].clone(),
                customer_number: fields[2].clone(),
                street: fields[3].clone(),
                house_number: fields[4].clone(),
                entrance: fields[5].clone(),
                postcode: fields[6].clone(),
                town: fields[7].clone(),
                latitude: fields[8].clone(),
                longitude: fields[9].clone(),
                grid_node: fields[10].clone(),
                holder_name: fields[11].clone(),
                postal_street: fields[12].clone(),
                postal_postcode: fields[13].clone(),
                postal_town: fields[14].clone(),
                postal_country: fields[15].clone(),
                language: fields[16].clone(),
            };
            if let Err(Rejection(reasons)) = raw.validate(Language::Nb) {
                prop_assert!(!reasons.is_empty());
                prop_assert!(reasons.iter().all(|r| !r.is_empty()));
            }
        }

        #[test]
        fn postcodes_of_four_or_five_digits_with_spaces_parse(d in "[0-9]{4,5}", sp in 0usize..3) {
            let spaced = format!("{}{}{}", &d[..2], " ".repeat(sp), &d[2..]);
            let parsed = Postcode::parse(&spaced).unwrap();
            prop_assert_eq!(parsed.as_str(), d.as_str());
        }

        #[test]
        fn a_shown_postcode_parses_back_to_the_same_digits(input in "[0-9 ]{0,9}|\\PC{0,8}") {
            if let Ok(p) = Postcode::parse(&input) {
                let shown = p.to_string();
                prop_assert_eq!(Postcode::parse(&shown).unwrap(), p.clone());
                if p.as_str().len() == 5 {
                    prop_assert_eq!(shown.find(' '), Some(3));
                } else {
                    prop_assert_eq!(shown, p.as_str());
                }
            }
        }
    }
}
