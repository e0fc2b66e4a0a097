//! No route and no command hands out the contacts of more than one subscription: a test
//! walks every GET operation of the published OpenAPI document and every reading command of
//! the CLI, with several households registered, and counts whose contacts each answer shows.

mod common;

use std::path::Path;
use std::process::Command;

use common::TestApp;
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

on_both_stores!(no_answer_holds_more_than_one_households_contacts);

/// (facility, phone as written, its digits without the leading 0, e-mail)
const HOUSEHOLDS: [(&str, &str, &str, &str); 3] = [
    (
        "1001",
        "070-111 22 01",
        "701112201",
        "first.household@example.com",
    ),
    (
        "1002",
        "070-111 22 02",
        "701112202",
        "second.household@example.com",
    ),
    (
        "1003",
        "070-111 22 03",
        "701112203",
        "third.household@example.com",
    ),
];

/// The households whose phone or e-mail `text` shows in clear.
fn whose(text: &str) -> Vec<&'static str> {
    let lower = text.to_lowercase();
    HOUSEHOLDS
        .iter()
        .filter(|(_, _, digits, email)| lower.contains(digits) || lower.contains(email))
        .map(|h| h.0)
        .collect()
}

async fn no_answer_holds_more_than_one_households_contacts(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let facilities: Vec<Value> = HOUSEHOLDS
        .iter()
        .map(|(n, ..)| {
            json!({"facility_number": n, "service": "electricity", "customer_number": format!("c{n}"),
                   "street": "Storgatan", "house_number": "1", "postcode": "123 45", "town": "Älvstad"})
        })
        .collect();
    app.put_facilities(&token, Value::Array(facilities)).await;
    let mut sessions = Vec::new();
    for (n, phone, _, email) in HOUSEHOLDS {
        let session = app
            .sign_in("alvstad", "electricity", &format!("c{n}"), n)
            .await;
        app.register_phone(&session, phone).await;
        app.put_email(&session, email).await;
        sessions.push(session);
    }
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "cause": "storm", "affected": {"facility_numbers": ["1001", "1002", "1003"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["outage_id"]
        .as_i64()
        .unwrap();

    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if ops.get("get").is_none() {
            continue;
        }
        let concrete = path
            .replace("{id}", &id.to_string())
            .replace("{number}", "1001")
            .replace("{code}", "storm")
            .replace("{token}", "none");
        assert!(
            !concrete.contains('{'),
            "a path parameter this test does not know: {path}"
        );
        // Staff routes with the admin token, household routes with a household's session.
        for bearer in std::iter::once(&token).chain(&sessions) {
            let resp = app
                .client
                .get(app.url(&concrete))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
            let body = resp.text().await.unwrap();
            let shown = whose(&body);
            assert!(
                shown.len() <= 1,
                "GET {concrete} shows the contacts of {shown:?}: {body}"
            );
            walked += 1;
        }
    }
    assert!(walked >= 20, "the walk covered {walked} answers");

    // Every command that reads, run against the same database.
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
            .args(args)
            .env_remove("VARSEL_CONFIG")
            .env("VARSEL_DATA_DIR", app.dir.path())
            .env("VARSEL_DATABASE_URL", &app.db.url)
            .env("VARSEL_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "varsel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let id = id.to_string();
    // The sample print job is made-up holders, never stored ones; it writes only into `proof`.
    let proof = app.dir.path().join("proof");
    let proof = proof.to_str().unwrap();
    let reading: [&[&str]; 14] = [
        &["tenant", "list"],
        &["outage", "show", "--tenant", "alvstad", &id],
        &["causes", "list", "--tenant", "alvstad"],
        &["keys", "show"],
        &["retention", "status"],
        &["privacy", "record", "--tenant", "alvstad"],
        &[
            "privacy", "record", "--tenant", "alvstad", "--format", "json",
        ],
        &["audit", "show", "--tenant", "alvstad"],
        &["audit", "verify"],
        &["cases", "list", "--tenant", "alvstad"],
        &["cases", "list", "--tenant", "alvstad", "--json"],
        &["openapi"],
        &["postcards", "sample", "--out", proof],
        &["--help"],
    ];
    for args in reading {
        let out = run(args);
        assert!(
            whose(&out).is_empty(),
            "varsel {args:?} shows contacts: {out}"
        );
    }
    // The sample's CSV (the PDF says the same, compressed) holds none of the stored data.
    let sample = std::fs::read_to_string(Path::new(proof).join("postcards-sample.csv")).unwrap();
    assert!(whose(&sample).is_empty(), "the sample holds contacts");
    assert!(
        !sample.contains("Storgatan"),
        "the sample holds a stored address"
    );
    // A new top-level command must be placed here (reading) or be one that writes.
    let help = run(&["--help"]);
    let writing = ["serve", "demo", "import", "token", "bench", "help"];
    for line in help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
    {
        let Some(cmd) = line.split_whitespace().next() else {
            break;
        };
        assert!(
            writing.contains(&cmd) || reading.iter().any(|a| a[0] == cmd),
            "varsel {cmd} is neither checked here nor known to write"
        );
    }
}
