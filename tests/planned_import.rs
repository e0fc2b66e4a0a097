//! Planned work from an OMS over the API, on both stores: a work-order file posted to
//! `POST /api/v1/outages/planned-import` announces row by row with the report of `varsel
//! import planned --json`, and the same file again announces nothing; postcards of work
//! that was rescheduled print the new times and tell the operator to send them again.

mod common;

use common::TestApp;
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

const HEADER: &str = "reference;service;start;end;grid_nodes;facility_numbers;reason;text_sv\n";

/// Two facilities with a holder at a postal address, one of them with a registered phone;
/// answers an operator token and an admin token.
async fn town(app: &TestApp) -> (String, String) {
    let (tenant, admin) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let facility = |number: &str, name: &str| {
        json!({
            "facility_number": number, "service": "electricity", "customer_number": format!("c{number}"),
            "street": "Storgatan", "house_number": "1", "postcode": "123 45", "town": "Älvstad",
            "holder_name": name, "postal_street": "Box 7", "postal_postcode": "123 99",
            "postal_town": "Älvstad"
        })
    };
    app.put_facilities(
        &admin,
        json!([facility("4001", "Åsa Öberg"), facility("4002", "Per Ek")]),
    )
    .await;
    let own = app.sign_in("alvstad", "electricity", "c4001", "4001").await;
    app.register_phone(&own, "070-400 00 01").await;
    let operator = app.token(&tenant, &[Scope::Operator]).await;
    (operator, admin)
}

async fn post_file(app: &TestApp, token: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let path = "/api/v1/outages/planned-import";
    app.send_load(reqwest::Method::POST, path, token, content_type, body)
        .await
}

async fn planned_ids(app: &TestApp, token: &str) -> Vec<i64> {
    let list: Vec<Value> = app.get_json("/api/v1/outages?planned=true", token).await;
    let mut ids: Vec<i64> = list.iter().map(|o| o["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

/// Notices written so far for `ids`, all statuses together.
async fn notices(app: &TestApp, token: &str, ids: &[i64]) -> i64 {
    let mut n = 0;
    for id in ids {
        let counts: Value = app
            .get_json(&format!("/api/v1/outages/{id}/notices"), token)
            .await;
        n += counts
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>();
    }
    n
}

async fn work_orders_over_the_api(app: &TestApp) {
    let (operator, _) = town(app).await;
    let good = format!(
        "{HEADER}AO-1;electricity;2030-01-10T09:00;2030-01-10T15:00;;4001;planned_work;Byte av brytare\n\
         AO-2;electricity;2030-01-11 09:00;2030-01-11 12:00;;4001|4002;;\n"
    );
    let (status, report) = post_file(app, &operator, "text/csv", good.clone().into()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["received"], 2);
    assert_eq!(report["rejected"], json!([]));
    let announced = report["announced"].as_array().unwrap();
    assert_eq!(
        announced
            .iter()
            .map(|a| (
                a["line"].as_i64().unwrap(),
                a["reference"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [(2, "AO-1"), (3, "AO-2")]
    );
    assert!(
        announced
            .iter()
            .all(|a| a["already"] == false && a["notices"] == 1),
        "the registered phone of 4001 hears of each: {report}"
    );
    let ids = planned_ids(app, &operator).await;
    assert_eq!(ids.len(), 2);
    let record: Value = app
        .get_json(&format!("/api/v1/outages/{}", ids[0]), &operator)
        .await;
    let start = jiff::civil::date(2030, 1, 10)
        .at(9, 0, 0, 0)
        .in_tz("Europe/Stockholm")
        .unwrap()
        .timestamp()
        .as_second();
    assert_eq!(
        (record["started_at"].as_i64(), record["etr"].as_i64()),
        (Some(start), Some(start + 6 * 3600)),
        "local times in the tenant's zone"
    );
    let written = notices(app, &operator, &ids).await;

    // The same file again, with a charset: every row was announced before, nothing is sent.
    let (status, again) =
        post_file(app, &operator, "text/csv; charset=utf-8", good.into_bytes()).await;
    assert_eq!(status, 200, "{again}");
    assert!(
        again["announced"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["already"] == true),
        "{again}"
    );
    assert_eq!(planned_ids(app, &operator).await, ids);
    assert_eq!(notices(app, &operator, &ids).await, written);

    // One bad row among good ones: the good one goes in, the bad one is named by line.
    let (status, partial) = post_file(
        app,
        &operator,
        "text/csv",
        format!(
            "{HEADER}AO-3;electricity;2030-02-01T09:00;2030-02-01T15:00;;4002;;\n\
             AO-4;electricity;2030-02-02T09:00;2030-02-02T08:00;;4002;;\n"
        )
        .into(),
    )
    .await;
    assert_eq!(status, 422, "{partial}");
    assert_eq!(partial["status"], "partial");
    assert_eq!(partial["announced"][0]["reference"], "AO-3");
    assert_eq!(
        partial["rejected"],
        json!([{"line": 3, "reference": "AO-4", "reason": "etr is before the outage started"}])
    );
    assert_eq!(planned_ids(app, &operator).await.len(), 3);

    // Refused whole, with the API's error shape and nothing announced.
    let (status, body) = post_file(
        app,
        &operator,
        "application/json",
        br#"[{"reference": "AO-5"}]"#.to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    assert!(body["message"].as_str().unwrap().contains("text/csv"));

    let mut huge =
        format!("{HEADER}AO-6;electricity;2030-03-01T09:00;2030-03-01T15:00;;4002;;").into_bytes();
    huge.resize(4 * 1024 * 1024 + 1, b' ');
    let (status, body) = post_file(app, &operator, "text/csv", huge).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("4 MiB"),
        "{body}"
    );

    // A file without its columns gets the report, its line 1 saying why (422).
    let (status, body) =
        post_file(app, &operator, "text/csv", b"reference,service\n".to_vec()).await;
    assert_eq!((status, body["status"].as_str()), (422, Some("failed")));
    assert_eq!(body["announced"], json!([]), "{body}");
    assert_eq!(body["rejected"][0]["line"], 1, "{body}");
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("lacks required columns: start, end"),
        "{body}"
    );
    assert_eq!(planned_ids(app, &operator).await.len(), 3);

    // Announcing is an operator's step: a CIS token may not.
    let tenant = app
        .state
        .store
        .tenant_by_slug("alvstad")
        .await
        .unwrap()
        .unwrap();
    let cis = app.token(&tenant, &[Scope::Cis]).await;
    let (status, body) = post_file(app, &cis, "text/csv", HEADER.into()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
}

/// Rescheduled work: the summary, the CSV and the lead time follow the new times, and the
/// operator is told that the cards printed before are wrong.
async fn postcards_after_a_reschedule(app: &TestApp) {
    let (operator, admin) = town(app).await;
    let start = varsel::store::now() + 30 * 86_400;
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&operator)
        .json(
            &json!({"service": "electricity", "planned": true, "started_at": start,
            "etr": start + 3600, "affected": {"facility_numbers": ["4001", "4002"]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["outage_id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/outages/{id}/postcards");
    let before: Value = app.get_json(&path, &admin).await;
    assert_eq!(before["cards"], 2, "{before}");
    assert_eq!(
        (&before["starts_at"], &before["ends_at"]),
        (&json!(start), &json!(start + 3600))
    );
    assert_eq!(before["rescheduled_at"], Value::Null);
    assert_eq!(before["reprint_warning"], Value::Null);
    assert_eq!(before["lead_time"]["enough"], true, "{before}");

    // Three days ahead leaves the post at most two working days of the five it needs.
    let new_start = varsel::store::now() + 3 * 86_400;
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/outages/{id}/reschedule")))
        .bearer_auth(&operator)
        .json(&json!({"started_at": new_start, "etr": new_start + 2 * 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("<{path}>; rel=\"related\"")),
        "{link}"
    );
    let step = resp.json::<Value>().await.unwrap()["step"].clone();
    assert_eq!(step["kind"], "rescheduled");

    let after: Value = app.get_json(&path, &admin).await;
    assert_eq!(
        (&after["starts_at"], &after["ends_at"]),
        (&json!(new_start), &json!(new_start + 2 * 3600))
    );
    assert_eq!(after["rescheduled_at"], step["at"], "{after}");
    let warning = after["reprint_warning"].as_str().unwrap();
    assert!(
        warning.contains("cards printed before then show the old times")
            && warning.contains("send this print job to the print house again"),
        "{warning}"
    );
    assert_eq!(after["lead_time"]["enough"], false, "{after}");
    assert!(after["lead_time"]["working_days"].as_i64().unwrap() <= 2);

    let csv = app
        .client
        .get(app.url(&format!("{path}.csv")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let local = |t: i64| {
        jiff::Timestamp::from_second(t)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Europe/Stockholm").unwrap())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row[column("starts_at")], local(new_start));
        assert_eq!(row[column("ends_at")], local(new_start + 2 * 3600));
    }
    assert!(!csv.contains(&local(start)), "no card keeps the old start");
}

on_both_stores!(work_orders_over_the_api, postcards_after_a_reschedule);
