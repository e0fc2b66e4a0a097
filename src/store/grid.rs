//! The grid topology: replaced whole by a load, walked downwards by the selector (see
//! `selection`), and counted for the operator before an outage is declared on a node.

use std::collections::HashSet;

use sqlx::Row;

use super::selection::json_text;
use super::{Store, on_pool};
use crate::domain::grid::{GridNode, GridNodeKind};

/// What replacing the tree changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct GridLoad {
    /// Nodes in the tree now.
    pub nodes: u64,
    /// Node ids that were not in the previous tree.
    pub added: u64,
    /// Node ids of the previous tree that this load does not have.
    pub removed: u64,
    /// Facilities whose `grid_node` is not in the tree: an outage on a node cannot reach
    /// them until the CIS or the tree is corrected.
    pub facilities_outside_tree: u64,
    /// The grid nodes those facilities name, most facilities first (at most ten).
    pub missing_nodes: Vec<MissingNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MissingNode {
    pub grid_node: String,
    pub facilities: u64,
}

/// A node named by an outage and how many facilities of the outage's service hang at or
/// below it. A node the tree lacks has no name or kind: it reaches only the facilities that
/// name it themselves.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct NodeReach {
    pub node_id: String,
    pub name: Option<String>,
    pub kind: Option<GridNodeKind>,
    pub facilities_below: u64,
}

/// Nodes inserted per statement: each is one JSON array element, so the statement has two
/// parameters whatever its size.
const NODES_PER_STATEMENT: usize = 5_000;

impl Store {
    /// Replaces the tenant's tree with `nodes` (a checked forest) in one transaction.
    pub async fn replace_grid(
        &self,
        tenant_id: i64,
        nodes: &[GridNode],
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<GridLoad> {
        let insert = if self.is_postgres() {
            "INSERT INTO grid_nodes (tenant_id, node_id, parent_id, name, kind, latitude, longitude)
             SELECT $1, n->>0, n->>1, n->>2, n->>3, (n->>4)::double precision, (n->>5)::double precision
             FROM jsonb_array_elements($2::jsonb) AS n"
        } else {
            "INSERT INTO grid_nodes (tenant_id, node_id, parent_id, name, kind, latitude, longitude)
             SELECT $1, n.value->>0, n.value->>1, n.value->>2, n.value->>3, n.value->>4, n.value->>5
             FROM json_each($2) AS n"
        };
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let (before, missing) = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let before: Vec<String> = sqlx::query_scalar("SELECT node_id FROM grid_nodes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM grid_nodes WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            for chunk in nodes.chunks(NODES_PER_STATEMENT) {
                let rows: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|n| serde_json::json!([n.node_id, n.parent_id, n.name, n.kind.as_str(), n.latitude, n.longitude]))
                    .collect();
                sqlx::query(insert)
                    .bind(tenant_id)
                    .bind(json_text(&rows))
                    .execute(&mut *tx)
                    .await?;
                progress(chunk.len() as u64);
            }
            let missing = sqlx::query(
                "SELECT f.grid_node, COUNT(*) AS n FROM facilities f
                 WHERE f.tenant_id = $1 AND f.grid_node IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM grid_nodes g WHERE g.tenant_id = $1 AND g.node_id = f.grid_node)
                 GROUP BY f.grid_node ORDER BY n DESC, f.grid_node",
            )
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| Ok(MissingNode { grid_node: r.try_get("grid_node")?, facilities: r.try_get::<i64, _>("n")? as u64 }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            tx.commit().await?;
            (before, missing)
        });
        let before: HashSet<String> = before.into_iter().collect();
        let now: HashSet<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
        Ok(GridLoad {
            nodes: nodes.len() as u64,
            added: now.iter().filter(|n| !before.contains(**n)).count() as u64,
            removed: before.iter().filter(|n| !now.contains(n.as_str())).count() as u64,
            facilities_outside_tree: missing.iter().map(|m| m.facilities).sum(),
            missing_nodes: missing.into_iter().take(10).collect(),
        })
    }

    /// The tenant's tree, parents before children where the ids sort so; for consoles.
    pub async fn grid_nodes(&self, tenant_id: i64) -> anyhow::Result<Vec<GridNode>> {
        let rows = on_pool!(self, pool => {
            sqlx::query("SELECT node_id, parent_id, name, kind, latitude, longitude FROM grid_nodes WHERE tenant_id = $1 ORDER BY node_id")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(GridNode {
                        node_id: r.try_get("node_id")?,
                        parent_id: r.try_get("parent_id")?,
                        name: r.try_get("name")?,
                        kind: r.try_get::<String, _>("kind")?.parse().map_err(anyhow::Error::msg)?,
                        latitude: r.try_get("latitude")?,
                        longitude: r.try_get("longitude")?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        });
        Ok(rows)
    }

    /// For each node id, the node (if the tree has it) and the facilities of `service` at
    /// or below it.
    pub async fn grid_reach(
        &self,
        tenant_id: i64,
        service: &str,
        node_ids: &[String],
    ) -> anyhow::Result<Vec<NodeReach>> {
        let mut out = Vec::with_capacity(node_ids.len());
        for id in node_ids {
            let reach = on_pool!(self, pool => {
                let node = sqlx::query("SELECT name, kind FROM grid_nodes WHERE tenant_id = $1 AND node_id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                let below: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM facilities f WHERE f.tenant_id = $1 AND f.service = $2 AND f.grid_node IN
                       (WITH RECURSIVE below(id) AS (SELECT $3 UNION SELECT g.node_id FROM grid_nodes g JOIN below b ON g.parent_id = b.id WHERE g.tenant_id = $1)
                        SELECT id FROM below)",
                )
                .bind(tenant_id)
                .bind(service)
                .bind(id)
                .fetch_one(pool)
                .await?;
                NodeReach {
                    node_id: id.clone(),
                    name: node.as_ref().map(|r| r.try_get("name")).transpose()?,
                    kind: node
                        .as_ref()
                        .map(|r| r.try_get::<String, _>("kind"))
                        .transpose()?
                        .map(|k| k.parse().map_err(anyhow::Error::msg))
                        .transpose()?,
                    facilities_below: below as u64,
                }
            });
            out.push(reach);
        }
        Ok(out)
    }
}
