//! The grid topology through the API: a load replaces the tree whole or changes nothing, and
//! an outage on a node reaches, and previews, everything below it.

mod common;

use axum::body::Bytes;
use common::{TestApp, pieces, streamed};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

on_both_stores!(
    a_grid_loads_whole_or_not_at_all,
    a_grid_streams_in_chunks_and_past_the_limit_changes_nothing,
    outages_on_a_node_preview_and_refuse_by_the_tree
);

fn facility(number: &str, node: Option<&str>) -> Value {
    json!({
        "facility_number": number, "service": "electricity", "customer_number": number,
        "street": "Storgatan", "house_number": "1", "postcode": "123 45", "town": "Älvstad",
        "grid_node": node
    })
}

async fn put(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    app.send_load(
        reqwest::Method::PUT,
        "/api/v1/grid-nodes",
        token,
        content_type,
        body,
    )
    .await
}

async fn tree(app: &TestApp, token: &str) -> Vec<(String, Option<String>, String)> {
    let nodes: Vec<Value> = app.get_json("/api/v1/grid-nodes", token).await;
    nodes
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap().to_string(),
                n["parent_id"].as_str().map(String::from),
                n["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn town(app: &TestApp) -> String {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &token,
        json!([
            facility("A1", Some("N1")),
            facility("A2", Some("N2")),
            facility("A3", Some("N3")),
            facility("A4", None),
        ]),
    )
    .await;
    token
}

async fn a_grid_loads_whole_or_not_at_all(app: &TestApp) {
    let token = town(app).await;
    let first = json!([
        {"node_id": "N1", "parent_id": "F1", "name": "Nätstation 1", "kind": "secondary_substation", "latitude": 62.4, "longitude": "17.3"},
        {"node_id": "T1", "name": "Fördelningsstation", "kind": "substation"},
        {"node_id": "F1", "parent_id": "T1", "name": "Linje 1", "kind": "feeder"},
        {"node_id": "N2", "parent_id": "T1", "name": "Nätstation 2"}
    ]);
    let (status, report) = put(app, &token, "application/json", first.to_string()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["loaded"]["nodes"], 4);
    assert_eq!(report["loaded"]["added"], 4);
    assert_eq!(report["loaded"]["facilities_outside_tree"], 1);
    assert_eq!(
        report["loaded"]["missing_nodes"],
        json!([{"grid_node": "N3", "facilities": 1}])
    );
    let loaded = tree(app, &token).await;
    assert_eq!(
        loaded,
        [
            ("F1".into(), Some("T1".into()), "feeder".into()),
            (
                "N1".into(),
                Some("F1".into()),
                "secondary_substation".into()
            ),
            ("N2".into(), Some("T1".into()), "other".into()),
            ("T1".into(), None, "substation".into()),
        ]
    );

    // Not a tree: every problem by position, and the previous tree stays as it was.
    let bad = json!([
        {"node_id": "T1", "name": "T"},
        {"node_id": "F1", "parent_id": "T1", "name": "F", "kind": "transformer"},
        {"node_id": "T1", "name": "again"},
        {"node_id": "N5", "parent_id": "F9", "name": "N"},
        {"node_id": "X", "name": "x", "latitude": 91, "longitude": 17}
    ]);
    let (status, report) = put(app, &token, "application/json", bad.to_string()).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["status"], "failed");
    assert!(report["loaded"].is_null());
    let reasons: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 3, 4, 5],
        "{reasons:?}"
    );
    assert!(reasons[0].1.contains("kind \"transformer\" is not one of"));
    assert!(reasons[1].1.contains("already defined at line 1"));
    assert_eq!(reasons[2].1, "parent F9 is not in the file");
    assert!(reasons[3].1.contains("WGS84"));
    let (status, report) = put(app, &token, "application/json", "[]").await;
    assert_eq!(status, 422);
    assert!(
        report["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("remove the whole tree")
    );
    let (status, _) = put(app, &token, "application/json", "{\"node_id\": \"T1\"}").await;
    assert_eq!(status, 400);
    let (status, _) = put(app, &token, "text/plain", "T1").await;
    assert_eq!(status, 415);
    assert_eq!(
        tree(app, &token).await,
        loaded,
        "a refused load changed the tree"
    );

    // A full load from the CSV the CLI reads: N2 goes, N3 comes, F1 moves.
    let csv = "node_id;parent_id;name;kind\nT1;;Station;substation\nF1;T1;Linje 1;feeder\nN1;F1;N1;secondary_substation\nN3;T1;N3;secondary_substation\n";
    let (status, report) = put(app, &token, "text/csv", csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"]["added"], 1);
    assert_eq!(report["loaded"]["removed"], 1);
    assert_eq!(
        report["loaded"]["missing_nodes"],
        json!([{"grid_node": "N2", "facilities": 1}])
    );
    let ids: Vec<String> = tree(app, &token).await.into_iter().map(|n| n.0).collect();
    assert_eq!(ids, ["F1", "N1", "N3", "T1"]);
    let ndjson = "{\"node_id\":\"T1\",\"name\":\"T\"}\n\n{\"node_id\":\"N1\",\"parent_id\":\"T1\",\"name\":\"N\"}\n";
    let (status, report) = put(app, &token, "application/x-ndjson", ndjson).await;
    assert_eq!((status, report["loaded"]["nodes"].as_u64()), (200, Some(2)));

    // Only a CIS (or admin) token may load the tree.
    let tenant = app
        .state
        .store
        .tenant_by_slug("alvstad")
        .await
        .unwrap()
        .unwrap();
    let operator = app.token(&tenant, &[Scope::Operator]).await;
    let (status, _) = put(app, &operator, "application/json", first.to_string()).await;
    assert_eq!(status, 403);
    assert_eq!(tree(app, &operator).await.len(), 2);
}

/// A NIS streams its file: the tree loads from small chunks with no length announced as it
/// does whole; a bad element in the middle of a JSON array is named by its position and a
/// body past 64 MiB is refused with 413, the tree as it was either way.
async fn a_grid_streams_in_chunks_and_past_the_limit_changes_nothing(app: &TestApp) {
    let token = town(app).await;
    let mut csv = "node_id;parent_id;name;kind\nT1;;Station;substation\n".to_string();
    for n in 1..=300 {
        csv.push_str(&format!("N{n};T1;Nätstation {n};secondary_substation\n"));
    }
    let (status, report) = put(app, &token, "text/csv", streamed(pieces(csv.as_bytes(), 3))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"]["nodes"], 301);
    let loaded = tree(app, &token).await;
    assert_eq!(loaded.len(), 301);
    assert!(loaded.contains(&(
        "N300".into(),
        Some("T1".into()),
        "secondary_substation".into()
    )));

    let mut nodes: Vec<Value> = (1..=20)
        .map(|n| json!({"node_id": format!("M{n}"), "parent_id": "T1", "name": "M"}))
        .collect();
    nodes.insert(0, json!({"node_id": "T1", "name": "Station"}));
    nodes[10] = json!({"node_id": "M10", "parent": "T1"});
    let body = serde_json::to_vec(&nodes).unwrap();
    let (status, report) = put(app, &token, "application/json", streamed(pieces(&body, 4))).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["rejected"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["rejected"][0]["line"], 11);
    assert!(
        report["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a grid node object: unknown field `parent`"),
        "{report}"
    );

    // A valid file made one byte too long by blank lines (which the reader skips).
    const LIMIT: usize = 64 * 1024 * 1024;
    let mebibyte = Bytes::from(vec![b'\n'; 1024 * 1024]);
    let blank = LIMIT + 1 - csv.len();
    let mut chunks = vec![Bytes::from(csv.clone())];
    chunks.extend(std::iter::repeat_n(mebibyte, blank / (1024 * 1024)));
    chunks.push(Bytes::from(vec![b'\n'; blank % (1024 * 1024)]));
    let (status, report) = put(app, &token, "text/csv", streamed(chunks)).await;
    assert_eq!(status, 413, "{report}");
    assert_eq!(report["error"], "payload_too_large");
    assert_eq!(
        tree(app, &token).await,
        loaded,
        "a refused load changed the tree"
    );
}

async fn preview(app: &TestApp, token: &str, nodes: &[&str]) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url("/api/v1/outages/preview"))
        .bearer_auth(token)
        .json(&json!({"service": "electricity", "affected": {"grid_nodes": nodes}}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn outages_on_a_node_preview_and_refuse_by_the_tree(app: &TestApp) {
    let token = town(app).await;
    app.put_grid(
        &token,
        &[
            ("T1", None),
            ("F1", Some("T1")),
            ("N1", Some("F1")),
            ("N2", Some("T1")),
        ],
    )
    .await;
    let (status, p) = preview(app, &token, &["F1", "T1", "N3"]).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["facilities"], 3);
    assert_eq!(
        p["grid_nodes"],
        json!([
            {"node_id": "F1", "name": "F1", "kind": "other", "facilities_below": 1},
            {"node_id": "T1", "name": "T1", "kind": "other", "facilities_below": 2},
            {"node_id": "N3", "name": null, "kind": null, "facilities_below": 1}
        ])
    );

    // A typo in a node id is refused (422: well formed, but not in the tree), by preview and
    // declaration alike, and writes nothing.
    let (status, p) = preview(app, &token, &["F1", "F9"]).await;
    assert_eq!(status, 422);
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("unknown grid node F9"),
        "{p}"
    );
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "affected": {"grid_nodes": ["F9"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let outages: Value = app.get_json("/api/v1/outages", &token).await;
    assert_eq!(outages.as_array().map(Vec::len), Some(0), "{outages}");

    // Declared on the feeder: the facility below it, not its sibling under the station.
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "affected": {"grid_nodes": ["F1"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let step: Value = resp.json().await.unwrap();
    let outage: Value = app
        .get_json(&format!("/api/v1/outages/{}", step["outage_id"]), &token)
        .await;
    assert_eq!(outage["affected_facilities"], 1, "{outage}");
}
