//! Which facilities an outage affects. A selector combines any of: facility numbers, grid
//! nodes (everything below them in the topology), postcodes, street number ranges and a
//! drawn area; a facility is affected when any part selects it.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::domain::facility::Postcode;
use crate::domain::geo::{Area, GeoJsonText};
use crate::domain::ids::FacilityNumber;

/// The selector's texts as the API description shows them; `validate` parses them.
const FACILITY_NUMBER_PATTERN: &str = "^[A-Za-z0-9-]*[0-9][A-Za-z0-9-]*$";
const POSTCODE_PATTERN: &str = "^[0-9]{4,5}$";

fn text(max_length: Option<usize>, pattern: &str) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(max_length)
        .pattern(Some(pattern))
        .build()
}

fn list_of(item: utoipa::openapi::schema::Object) -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(item)
        .min_items(Some(1))
        .build()
}

fn facility_numbers_schema() -> utoipa::openapi::schema::Array {
    list_of(text(Some(32), FACILITY_NUMBER_PATTERN))
}

fn grid_nodes_schema() -> utoipa::openapi::schema::Array {
    list_of(text(Some(200), r"\S"))
}

fn postcodes_schema() -> utoipa::openapi::schema::Array {
    list_of(text(None, POSTCODE_PATTERN))
}

fn street_postcode_schema() -> utoipa::openapi::schema::Object {
    text(None, POSTCODE_PATTERN)
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A text that is not what the API description promises (HTTP 400).
    #[error("{0}")]
    Malformed(String),
    /// Well formed, but nothing can be selected with it: no way to select, numbers from
    /// after to, or an area that cannot be read or used (HTTP 422). An area is a document of
    /// its own, checked while it is read, which no schema of the request describes.
    #[error("{0}")]
    Unusable(String),
}

const SELECTS_NOTHING: &str =
    "the selector selects nothing: give facility_numbers, grid_nodes, postcodes, streets or area";

/// The selector as an operator or OMS sends it: at least one of its ways to select (a
/// selector that selects nothing is refused with 422).
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    /// As on the invoice: letters, digits and hyphens, at least one digit.
    #[serde(default)]
    #[schema(schema_with = facility_numbers_schema)]
    pub facility_numbers: Vec<String>,
    /// Grid node ids; each takes every facility below it.
    #[serde(default)]
    #[schema(schema_with = grid_nodes_schema)]
    pub grid_nodes: Vec<String>,
    /// Four (Norway) or five (Sweden) digits; spaces are also taken ("863 32").
    #[serde(default)]
    #[schema(schema_with = postcodes_schema)]
    pub postcodes: Vec<String>,
    #[serde(default)]
    #[schema(min_items = 1)]
    pub streets: Vec<StreetRange>,
    /// A GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection; WGS84 unless a
    /// `crs` member names EPSG:3006 (SWEREF99 TM) or EPSG:2583x (EUREF89 UTM).
    #[schema(value_type = Object, required = false)]
    pub area: Option<GeoJsonText>,
}

/// Numbers `from..=to` on one street (in one postcode, if given), optionally one side only.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreetRange {
    #[schema(pattern = r"\S")]
    pub street: String,
    #[schema(schema_with = street_postcode_schema, required = false)]
    pub postcode: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    pub from: Option<u32>,
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    pub to: Option<u32>,
    #[serde(default)]
    pub side: Side,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    #[default]
    Both,
    Odd,
    Even,
}

/// A validated selector, ready to match facilities.
#[derive(Debug, Clone)]
pub struct Selector {
    facility_numbers: HashSet<String>,
    grid_nodes: Vec<String>,
    postcodes: HashSet<String>,
    streets: Vec<(String, Option<String>, u32, u32, Side)>,
    area: Option<Area>,
}

/// A scan of candidate facilities for the parts decided row by row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowScan {
    /// Facilities in these postcodes (every street range names one), or all of the service.
    Postcodes(Option<Vec<String>>),
    /// Facilities with coordinates inside (min lon, min lat, max lon, max lat).
    BoundingBox((f64, f64, f64, f64)),
}

/// The facts about a facility a selector looks at.
#[derive(Debug, Clone)]
pub struct FacilityPoint<'a> {
    pub facility_number: &'a str,
    pub street: &'a str,
    pub house_number: &'a str,
    pub postcode: &'a str,
    pub grid_node: Option<&'a str>,
    pub coordinates: Option<(f64, f64)>,
}

fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The leading number of a house number such as "12", "12A" or "12 B".
fn house_number_value(s: &str) -> Option<u32> {
    let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl SelectorSpec {
    /// Checks every part and says which one is wrong.
    /// No way to select is given (all lists empty, no area): well formed, but a step over
    /// nothing.
    fn selects_nothing(&self) -> bool {
        self.facility_numbers.is_empty()
            && self.grid_nodes.is_empty()
            && self.postcodes.is_empty()
            && self.streets.is_empty()
            && self.area.is_none()
    }

    pub fn validate(&self) -> Result<Selector, SpecError> {
        use SpecError::{Malformed, Unusable};
        let mut facility_numbers = HashSet::new();
        for (i, n) in self.facility_numbers.iter().enumerate() {
            let n = FacilityNumber::parse(n)
                .map_err(|e| Malformed(format!("facility_numbers[{i}]: {e}")))?;
            facility_numbers.insert(n.as_str().to_string());
        }
        let mut postcodes = HashSet::new();
        for (i, p) in self.postcodes.iter().enumerate() {
            let p = Postcode::parse(p).map_err(|e| Malformed(format!("postcodes[{i}]: {e}")))?;
            postcodes.insert(p.as_str().to_string());
        }
        let mut grid_nodes = Vec::new();
        for (i, g) in self.grid_nodes.iter().enumerate() {
            let g = g.trim();
            if g.is_empty() || g.chars().count() > 200 {
                return Err(Malformed(format!(
                    "grid_nodes[{i}] must be 1 to 200 characters"
                )));
            }
            grid_nodes.push(g.to_string());
        }
        let mut streets = Vec::new();
        for (i, s) in self.streets.iter().enumerate() {
            let name = fold(&s.street);
            if name.is_empty() {
                return Err(Malformed(format!("streets[{i}].street is empty")));
            }
            let postcode = s
                .postcode
                .as_deref()
                .map(Postcode::parse)
                .transpose()
                .map_err(|e| Malformed(format!("streets[{i}].postcode: {e}")))?
                .map(|p| p.as_str().to_string());
            let from = s.from.unwrap_or(0);
            let to = s.to.unwrap_or(u32::MAX);
            if from > to {
                return Err(Unusable(format!(
                    "streets[{i}]: from ({from}) is after to ({to})"
                )));
            }
            streets.push((name, postcode, from, to, s.side));
        }
        let area = match &self.area {
            None => None,
            Some(text) => Some(text.to_area().map_err(|e| Unusable(format!("area: {e}")))?),
        };
        if self.selects_nothing() {
            return Err(Unusable(SELECTS_NOTHING.into()));
        }
        Ok(Selector {
            facility_numbers,
            grid_nodes,
            postcodes,
            streets,
            area,
        })
    }
}

impl Selector {
    /// The grid node ids named by the selector (callers expand them with `below`).
    pub fn grid_nodes(&self) -> &[String] {
        &self.grid_nodes
    }

    /// Normalised facility numbers named by the selector.
    pub fn facility_numbers(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.facility_numbers.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Normalised postcodes named by the selector.
    pub fn postcodes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.postcodes.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The parts a store cannot decide in SQL (street names fold case and spacing, house
    /// numbers carry letters, areas are polygons): each is a scan of candidate facilities,
    /// narrowed in SQL by a prefilter, then decided by [`Selector::matches_row`].
    pub fn row_scans(&self) -> Vec<RowScan> {
        let mut scans = Vec::new();
        if !self.streets.is_empty() {
            let postcodes: Option<Vec<String>> = self.streets.iter().map(|s| s.1.clone()).collect();
            scans.push(RowScan::Postcodes(postcodes));
        }
        if let Some(b) = self.area.as_ref().and_then(Area::bbox) {
            scans.push(RowScan::BoundingBox(b));
        }
        scans
    }

    /// Whether a street range or the area selects the facility.
    pub fn matches_row(&self, f: &FacilityPoint<'_>) -> bool {
        self.matches_streets(f) || self.matches_area(f)
    }

    /// Whether the facility is selected; `nodes` is the set of grid nodes at or below the
    /// selector's nodes (from `below`).
    pub fn matches(&self, f: &FacilityPoint<'_>, nodes: &HashSet<String>) -> bool {
        if self.facility_numbers.contains(f.facility_number) || self.postcodes.contains(f.postcode)
        {
            return true;
        }
        if f.grid_node.is_some_and(|n| nodes.contains(n)) {
            return true;
        }
        self.matches_row(f)
    }

    fn matches_streets(&self, f: &FacilityPoint<'_>) -> bool {
        if !self.streets.is_empty() {
            let street = fold(f.street);
            let number = house_number_value(f.house_number);
            for (name, postcode, from, to, side) in &self.streets {
                if *name != street || postcode.as_deref().is_some_and(|p| p != f.postcode) {
                    continue;
                }
                let Some(n) = number else { continue };
                let side_ok = match side {
                    Side::Both => true,
                    Side::Odd => n % 2 == 1,
                    Side::Even => n % 2 == 0,
                };
                if side_ok && (*from..=*to).contains(&n) {
                    return true;
                }
            }
        }
        false
    }

    fn matches_area(&self, f: &FacilityPoint<'_>) -> bool {
        match (&self.area, f.coordinates) {
            (Some(area), Some((lat, lon))) => area.contains(lon, lat),
            _ => false,
        }
    }
}

/// Every node at or below `roots` in a topology given as child → parent. Cycles in bad
/// topology data end the walk instead of looping.
pub fn below(roots: &[String], parent_of: &HashMap<String, Option<String>>) -> HashSet<String> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (child, parent) in parent_of {
        if let Some(p) = parent {
            children.entry(p.as_str()).or_default().push(child.as_str());
        }
    }
    let mut out: HashSet<String> = HashSet::new();
    let mut stack: Vec<&str> = roots.iter().map(String::as_str).collect();
    while let Some(n) = stack.pop() {
        if out.insert(n.to_string()) {
            stack.extend(children.get(n).into_iter().flatten());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point<'a>(
        number: &'a str,
        street: &'a str,
        house: &'a str,
        node: Option<&'a str>,
    ) -> FacilityPoint<'a> {
        FacilityPoint {
            facility_number: number,
            street,
            house_number: house,
            postcode: "12345",
            grid_node: node,
            coordinates: Some((63.0, 17.0)),
        }
    }

    #[test]
    fn an_empty_selector_is_refused_and_bad_parts_are_named() {
        assert!(matches!(
            SelectorSpec::default().validate(),
            Err(SpecError::Unusable(m)) if m.contains("selects nothing")
        ));
        let bad = SelectorSpec {
            postcodes: vec!["1".into()],
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("postcodes[0]")
        );
        let range = SelectorSpec {
            streets: vec![StreetRange {
                street: "Storgatan".into(),
                postcode: None,
                from: Some(9),
                to: Some(3),
                side: Side::Both,
            }],
            ..Default::default()
        };
        assert!(range.validate().unwrap_err().to_string().contains("after"));
    }

    #[test]
    fn street_ranges_respect_sides_and_letters() {
        let s = SelectorSpec {
            streets: vec![StreetRange {
                street: "storgatan ".into(),
                postcode: Some("123 45".into()),
                from: Some(2),
                to: Some(10),
                side: Side::Even,
            }],
            ..Default::default()
        }
        .validate()
        .unwrap();
        let none = HashSet::new();
        assert!(s.matches(&point("1", "Storgatan", "4B", None), &none));
        assert!(!s.matches(&point("1", "Storgatan", "5", None), &none));
        assert!(!s.matches(&point("1", "Storgatan", "12", None), &none));
        assert!(!s.matches(&point("1", "Kyrkogatan", "4", None), &none));
        assert!(!s.matches(&point("1", "Storgatan", "", None), &none));
    }

    #[test]
    fn a_grid_node_takes_everything_below_it() {
        let topo: HashMap<String, Option<String>> = [
            ("T1", None),
            ("F1", Some("T1")),
            ("F2", Some("T1")),
            ("N1", Some("F1")),
            ("N2", Some("F2")),
            ("X", Some("Y")),
            ("Y", Some("X")),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.map(String::from)))
        .collect();
        let f1 = below(&["F1".to_string()], &topo);
        assert_eq!(f1, HashSet::from(["F1".to_string(), "N1".to_string()]));
        assert_eq!(below(&["T1".to_string()], &topo).len(), 5);
        assert_eq!(
            below(&["X".to_string()], &topo).len(),
            2,
            "a cycle ends the walk"
        );
        let s = SelectorSpec {
            grid_nodes: vec!["F1".into()],
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(s.matches(&point("1", "S", "1", Some("N1")), &f1));
        assert!(!s.matches(&point("1", "S", "1", Some("N2")), &f1));
        assert!(!s.matches(&point("1", "S", "1", None), &f1));
    }

    proptest! {
        #[test]
        fn matching_never_panics(house in "\\PC{0,8}", street in "\\PC{0,12}", n in "[0-9A-Z]{1,6}") {
            let s = SelectorSpec {
                facility_numbers: vec![n.clone()],
                streets: vec![StreetRange { street: "a".into(), postcode: None, from: None, to: None, side: Side::Odd }],
                ..Default::default()
            };
            if let Ok(sel) = s.validate() {
                let p = point(&n, &street, &house, None);
                prop_assert!(sel.matches(&p, &HashSet::new()));
            }
        }
    }
}
