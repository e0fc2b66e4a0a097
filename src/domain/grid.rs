//! The grid topology: nodes (substations, feeders, secondary substations, cable cabinets)
//! each hanging from at most one parent. A load is checked whole before anything is stored:
//! every bad row is reported by its line, and a file that does not describe one forest
//! (a parent missing, a node twice, a cycle) is refused, because a tree stored half-way would
//! silently drop facilities out of "everything below this feeder".

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::facility::{Coordinates, clean, number_or_text};

/// A node row before validation, as a CSV line or a JSON object gives it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGridNode {
    /// The id facilities name in their `grid_node` column, e.g. "ALV-F1".
    pub node_id: Option<String>,
    /// The node it hangs from; empty or absent for a root (a primary substation).
    pub parent_id: Option<String>,
    pub name: Option<String>,
    /// substation, feeder, secondary_substation, cable_cabinet or other (the default).
    pub kind: Option<String>,
    /// WGS84 latitude in degrees, number or text.
    #[serde(default, deserialize_with = "number_or_text")]
    #[schema(value_type = Option<f64>)]
    pub latitude: Option<String>,
    /// WGS84 longitude in degrees, number or text.
    #[serde(default, deserialize_with = "number_or_text")]
    #[schema(value_type = Option<f64>)]
    pub longitude: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GridNodeKind {
    Substation,
    Feeder,
    SecondarySubstation,
    CableCabinet,
    /// Anything else: a district-heating branch, a fibre cabinet.
    Other,
}

impl GridNodeKind {
    pub const ALL: [GridNodeKind; 5] = [
        GridNodeKind::Substation,
        GridNodeKind::Feeder,
        GridNodeKind::SecondarySubstation,
        GridNodeKind::CableCabinet,
        GridNodeKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GridNodeKind::Substation => "substation",
            GridNodeKind::Feeder => "feeder",
            GridNodeKind::SecondarySubstation => "secondary_substation",
            GridNodeKind::CableCabinet => "cable_cabinet",
            GridNodeKind::Other => "other",
        }
    }
}

impl std::str::FromStr for GridNodeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        GridNodeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == wanted)
            .ok_or_else(|| {
                format!(
                    "kind {s:?} is not one of {}",
                    GridNodeKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

/// A validated node. Ids are at most `MAX_ID` characters without control characters, the
/// same bound the facility's `grid_node` and the outage selector put on them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GridNode {
    pub node_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub kind: GridNodeKind,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

const MAX_ID: usize = 200;
const MAX_NAME: usize = 200;

impl RawGridNode {
    /// Every problem in the row, not just the first.
    pub fn validate(&self) -> Result<GridNode, String> {
        let mut reasons = Vec::new();
        let mut id = |field: &str, value: &Option<String>, required: bool| match clean(value) {
            None if required => {
                reasons.push(format!("{field} is missing"));
                None
            }
            Some(v) if v.chars().count() > MAX_ID => {
                reasons.push(format!("{field} is longer than {MAX_ID} characters"));
                None
            }
            other => other,
        };
        let node_id = id("node_id", &self.node_id, true);
        let parent_id = id("parent_id", &self.parent_id, false);
        let name = match clean(&self.name) {
            None => {
                reasons.push("name is missing".into());
                None
            }
            Some(v) if v.chars().count() > MAX_NAME => {
                reasons.push(format!("name is longer than {MAX_NAME} characters"));
                None
            }
            Some(v) => Some(v),
        };
        let kind = match clean(&self.kind) {
            None => Some(GridNodeKind::Other),
            Some(k) => k.parse().map_err(|e| reasons.push(e)).ok(),
        };
        let coordinates = Coordinates::parse(clean(&self.latitude), clean(&self.longitude))
            .map_err(|e| reasons.push(e))
            .ok();
        match (node_id, name, kind, coordinates) {
            (Some(node_id), Some(name), Some(kind), Some(coordinates)) if reasons.is_empty() => {
                if parent_id.as_deref() == Some(node_id.as_str()) {
                    return Err(format!("node {node_id} names itself as its parent"));
                }
                Ok(GridNode {
                    node_id,
                    parent_id,
                    name,
                    kind,
                    latitude: coordinates.map(|c| c.latitude),
                    longitude: coordinates.map(|c| c.longitude),
                })
            }
            _ => Err(reasons.join("; ")),
        }
    }
}

/// One reason a load was refused, with the line (CSV; the header is line 1) or 1-based array
/// position it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeError {
    pub line: u64,
    pub node_id: Option<String>,
    pub reason: String,
}

/// Checks that the rows describe a forest: every row valid, every id once, every parent
/// present, no cycle. Returns the nodes parents-first (roots, then their children, ...), or
/// every error found, sorted by line.
pub fn forest(rows: Vec<(u64, RawGridNode)>) -> Result<Vec<GridNode>, Vec<NodeError>> {
    let mut errors = Vec::new();
    let mut nodes: Vec<(u64, GridNode)> = Vec::with_capacity(rows.len());
    let mut line_of: HashMap<String, u64> = HashMap::with_capacity(rows.len());
    for (line, raw) in rows {
        match raw.validate() {
            Err(reason) => errors.push(NodeError {
                line,
                node_id: clean(&raw.node_id),
                reason,
            }),
            Ok(node) => {
                if let Some(first) = line_of.get(&node.node_id) {
                    errors.push(NodeError {
                        line,
                        node_id: Some(node.node_id.clone()),
                        reason: format!("node {} is already defined at line {first}", node.node_id),
                    });
                } else {
                    line_of.insert(node.node_id.clone(), line);
                    nodes.push((line, node));
                }
            }
        }
    }
    for (line, node) in &nodes {
        if let Some(parent) = &node.parent_id
            && !line_of.contains_key(parent)
        {
            errors.push(NodeError {
                line: *line,
                node_id: Some(node.node_id.clone()),
                reason: format!("parent {parent} is not in the file"),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }

    // Breadth-first from the roots: whatever is not reached hangs in a cycle.
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (_, n))| (n.node_id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut order: Vec<usize> = Vec::with_capacity(nodes.len());
    for (i, (_, n)) in nodes.iter().enumerate() {
        match &n.parent_id {
            Some(p) => children[index[p.as_str()]].push(i),
            None => order.push(i),
        }
    }
    let mut next = 0;
    while next < order.len() {
        order.extend_from_slice(&children[order[next]]);
        next += 1;
    }
    if order.len() < nodes.len() {
        let mut reached = vec![false; nodes.len()];
        for &i in &order {
            reached[i] = true;
        }
        let cycle_lines: Vec<String> = nodes
            .iter()
            .zip(&reached)
            .filter(|(_, r)| !**r)
            .map(|((line, _), _)| line.to_string())
            .collect();
        let mut errors: Vec<NodeError> = nodes
            .iter()
            .zip(&reached)
            .filter(|(_, r)| !**r)
            .map(|((line, n), _)| NodeError {
                line: *line,
                node_id: Some(n.node_id.clone()),
                reason: format!(
                    "node {} does not lead up to a root: its parents form a cycle (lines {})",
                    n.node_id,
                    cycle_lines.join(", ")
                ),
            })
            .collect();
        errors.truncate(100);
        return Err(errors);
    }
    let mut slots: Vec<Option<GridNode>> = nodes.into_iter().map(|(_, n)| Some(n)).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(id: &str, parent: &str) -> RawGridNode {
        RawGridNode {
            node_id: Some(id.into()),
            parent_id: Some(parent.into()),
            name: Some(format!("Node {id}")),
            kind: Some("feeder".into()),
            ..RawGridNode::default()
        }
    }

    fn rows(pairs: &[(&str, &str)]) -> Vec<(u64, RawGridNode)> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (id, p))| (i as u64 + 2, raw(id, p)))
            .collect()
    }

    #[test]
    fn a_forest_comes_back_parents_first() {
        let nodes = forest(rows(&[("N3", "F1"), ("F1", "S"), ("S", ""), ("F2", "S")])).unwrap();
        let ids: Vec<_> = nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["S", "F1", "F2", "N3"]);
        assert_eq!(nodes[0].parent_id, None);
        assert_eq!(nodes[3].kind, GridNodeKind::Feeder);
    }

    #[test]
    fn unknown_parents_and_repeats_are_reported_by_line() {
        let errors =
            forest(rows(&[("S", ""), ("F1", "S"), ("F1", "S"), ("N1", "F9")])).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 4);
        assert!(errors[0].reason.contains("already defined at line 3"));
        assert_eq!(errors[1].line, 5);
        assert_eq!(errors[1].reason, "parent F9 is not in the file");
    }

    #[test]
    fn a_cycle_is_refused_naming_its_lines() {
        let errors = forest(rows(&[
            ("S", ""),
            ("A", "C"),
            ("B", "A"),
            ("C", "B"),
            ("X", "X"),
        ]))
        .unwrap_err();
        assert_eq!(
            errors.len(),
            1,
            "the self-parent row is caught first: {errors:?}"
        );
        assert!(errors[0].reason.contains("names itself"));
        let errors = forest(rows(&[("S", ""), ("A", "C"), ("B", "A"), ("C", "B")])).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(errors[0].reason.contains("cycle (lines 3, 4, 5)"));
    }

    #[test]
    fn bad_fields_are_all_named() {
        let bad = RawGridNode {
            node_id: Some(" ".into()),
            name: None,
            kind: Some("transformer".into()),
            latitude: Some("63.1".into()),
            ..RawGridNode::default()
        };
        let why = bad.validate().unwrap_err();
        for part in [
            "node_id is missing",
            "name is missing",
            "kind \"transformer\"",
            "both latitude",
        ] {
            assert!(why.contains(part), "{why}");
        }
        let ok = RawGridNode {
            kind: Some("Secondary substation".into()),
            latitude: Some("62.39".into()),
            longitude: Some("17.30".into()),
            ..raw("N1", "")
        }
        .validate()
        .unwrap();
        assert_eq!(ok.kind, GridNodeKind::SecondarySubstation);
        assert_eq!((ok.latitude, ok.longitude), (Some(62.39), Some(17.30)));
        assert_eq!(ok.parent_id, None);
    }

    proptest! {
        /// Random parent links over a few ids: the result is either every node, each after
        /// its parent, or errors only; never a panic and never a partial forest.
        #[test]
        fn any_parent_links_give_a_whole_forest_or_errors(
            links in proptest::collection::vec((0u8..12, proptest::option::of(0u8..12)), 0..30)
        ) {
            let input: Vec<(u64, RawGridNode)> = links
                .iter()
                .enumerate()
                .map(|(i, (id, parent))| {
                    let p = parent.map(|p| format!("n{p}")).unwrap_or_default();
                    (i as u64 + 2, raw(&format!("n{id}"), &p))
                })
                .collect();
            match forest(input.clone()) {
                Ok(nodes) => {
                    prop_assert_eq!(nodes.len(), input.len());
                    let mut seen = std::collections::HashSet::new();
                    for n in &nodes {
                        if let Some(p) = &n.parent_id {
                            prop_assert!(seen.contains(p), "{} before its parent {}", n.node_id, p);
                        }
                        seen.insert(n.node_id.clone());
                    }
                }
                Err(errors) => prop_assert!(!errors.is_empty() && errors.iter().all(|e| !e.reason.is_empty())),
            }
        }

        #[test]
        fn validating_any_text_never_panics(
            id in "\\PC{0,40}", parent in "\\PC{0,10}", kind in "\\PC{0,25}", lat in "\\PC{0,8}", lon in "\\PC{0,8}"
        ) {
            let r = RawGridNode {
                node_id: Some(id), parent_id: Some(parent), name: Some("n".into()),
                kind: Some(kind), latitude: Some(lat), longitude: Some(lon),
            };
            let _ = r.validate();
        }
    }
}
