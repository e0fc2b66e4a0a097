//! Data-subject request cases through the staff API, the scheduler (driven by a chosen
//! clock) and the CLI, on both stores: deadlines, reminders, an extension that moves them,
//! refused changes that change nothing, the sealed note, the audit chain, and retention.

mod common;

use std::process::Command;

use common::TestApp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use varsel::domain::case::{add_months, end_of_day, start_of_day};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::scheduler::Scheduler;

on_both_stores!(
    a_case_keeps_its_deadline_through_reminders_and_an_extension,
    refused_changes_change_nothing_and_closed_cases_stay_closed,
    the_note_is_sealed_and_its_reads_audited,
    closed_cases_go_after_the_retention_period,
    staff_without_the_privacy_scope_are_refused,
);

const NOTE: &str =
    "Letter from Anna Andersson, Källgränd 7: erase everything; call back on 070-123 45 67";
const NOTE_DIGITS: &str = "701234567";

fn zone() -> TimeZone {
    TimeZone::get("Europe/Stockholm").unwrap()
}

fn today() -> Date {
    jiff::Timestamp::now().to_zoned(zone()).date()
}

fn day(v: &Value) -> Date {
    v.as_str()
        .unwrap_or_else(|| panic!("not a date: {v}"))
        .parse()
        .unwrap()
}

async fn setup(app: &TestApp) -> (varsel::store::Tenant, String) {
    let (tenant, admin) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &admin,
        json!([{"facility_number": "1001", "service": "electricity", "customer_number": "c1001",
                "street": "Källgränd", "house_number": "7", "postcode": "123 45", "town": "Älvstad",
                "holder_name": "Anna Andersson"}]),
    )
    .await;
    let staff = app.token(&tenant, &[Scope::Privacy]).await;
    (tenant, staff)
}

/// Sends `body` with `method` to `path`; returns the status and the JSON answer.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn open_case(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, case) = call(
        app,
        reqwest::Method::POST,
        "/api/v1/cases",
        token,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    case
}

async fn patch(app: &TestApp, token: &str, id: i64, body: Value) -> (u16, Value) {
    call(
        app,
        reqwest::Method::PATCH,
        &format!("/api/v1/cases/{id}"),
        token,
        Some(body),
    )
    .await
}

async fn list(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let page: Value = app.get_json(&format!("/api/v1/cases{query}"), token).await;
    page["cases"].as_array().unwrap().clone()
}

fn scheduler(app: &TestApp) -> Scheduler {
    Scheduler::new(app.state.store.clone(), app.state.config.clone())
}

async fn job(app: &TestApp, kind: &str, id: i64) -> varsel::store::JobRow {
    app.state
        .store
        .one_off_job(kind, &id.to_string())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no {kind} job for case {id}"))
}

async fn stored(app: &TestApp, tenant: i64, id: i64) -> varsel::store::cases::CaseRow {
    app.state.store.case(tenant, id).await.unwrap().unwrap()
}

/// The audit entries about case `id`, as (action, details).
async fn case_entries(app: &TestApp, tenant: i64, id: i64) -> Vec<(String, Value)> {
    app.state
        .store
        .audit_after(Some(tenant), 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some(&format!("case:{id}")))
        .map(|e| (e.action, serde_json::from_str(&e.details).unwrap()))
        .collect()
}

fn secs(t: jiff::Timestamp) -> i64 {
    t.as_second()
}

async fn a_case_keeps_its_deadline_through_reminders_and_an_extension(app: &TestApp) {
    let (tenant, staff) = setup(app).await;
    let received = today();
    let case = open_case(
        app,
        &staff,
        json!({"kind": "erasure", "received_via": "letter", "facility": {"service": "electricity", "facility_number": "1001"}}),
    )
    .await;
    let id = case["id"].as_i64().unwrap();
    let deadline = add_months(received, 1).unwrap();
    assert_eq!(day(&case["received_on"]), received);
    assert_eq!(day(&case["deadline_on"]), deadline);
    assert_eq!(day(&case["due_on"]), deadline);
    assert_eq!(case["state"], "received");
    assert_eq!(case["identity_check"], "not_checked");
    assert_eq!(case["facility_number"], "1001");
    assert_eq!(case["overdue"], false);
    assert_eq!(
        case["days_left"].as_i64().unwrap(),
        received.until(deadline).unwrap().get_days() as i64
    );

    // The reminder five days before the deadline day, the alarm when that day ends.
    let remind_at = secs(
        start_of_day(
            deadline.checked_sub(jiff::Span::new().days(5)).unwrap(),
            &zone(),
        )
        .unwrap(),
    );
    let due_at = secs(end_of_day(deadline, &zone()).unwrap());
    assert_eq!(job(app, "case.reminder", id).await.due_at, remind_at);
    assert_eq!(job(app, "case.overdue", id).await.due_at, due_at);

    // Just before the reminder nothing happens; at it, customer service is reminded.
    scheduler(app).run_due(remind_at - 1).await.unwrap();
    assert_eq!(stored(app, tenant.id, id).await.reminded_at, None);
    let ran = scheduler(app).run_due(remind_at).await.unwrap();
    let reminder = ran.iter().find(|r| r.kind == "case.reminder").unwrap();
    assert!(reminder.ok, "{reminder:?}");
    assert_eq!(reminder.counts[&tenant.id]["reminded"], 1);
    assert_eq!(
        stored(app, tenant.id, id).await.reminded_at,
        Some(remind_at)
    );
    let entries = case_entries(app, tenant.id, id).await;
    let reminded = entries.iter().find(|(a, _)| a == "case.reminded").unwrap();
    assert_eq!(reminded.1["days_left"], 5, "{entries:?}");
    assert_eq!(reminded.1["kind"], "erasure");
    assert!(job(app, "case.reminder", id).await.done_at.is_some());

    // The case is open and in time: listed as open, not as overdue.
    let open = list(app, &staff, "?state=open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], id);
    assert!(list(app, &staff, "?overdue=true").await.is_empty());
    assert!(list(app, &staff, "?state=closed").await.is_empty());
    assert_eq!(list(app, &staff, "?kind=erasure").await.len(), 1);
    assert!(list(app, &staff, "?kind=access").await.is_empty());

    // Extended to the longest allowed: three months from receipt.
    let latest = add_months(received, 3).unwrap();
    let (status, extended) = patch(
        app,
        &staff,
        id,
        json!({"extend": {"to": latest.to_string(), "reason": "Records in three systems to go through"}}),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(
        day(&extended["deadline_on"]),
        deadline,
        "the original stays on record"
    );
    assert_eq!(day(&extended["extended_to"]), latest);
    assert_eq!(day(&extended["due_on"]), latest);
    assert_eq!(
        extended["extension_reason"],
        "Records in three systems to go through"
    );
    let new_remind = secs(
        start_of_day(
            latest.checked_sub(jiff::Span::new().days(5)).unwrap(),
            &zone(),
        )
        .unwrap(),
    );
    let new_due = secs(end_of_day(latest, &zone()).unwrap());
    let reminder_job = job(app, "case.reminder", id).await;
    assert_eq!(reminder_job.due_at, new_remind);
    assert_eq!(reminder_job.done_at, None, "the reminder is due again");
    assert_eq!(job(app, "case.overdue", id).await.due_at, new_due);

    // The old deadline's end passes without an alarm.
    scheduler(app).run_due(due_at + 60).await.unwrap();
    assert_eq!(
        stored(app, tenant.id, id).await.reminded_at,
        Some(remind_at)
    );
    assert!(
        !case_entries(app, tenant.id, id)
            .await
            .iter()
            .any(|(a, _)| a == "case.overdue")
    );

    // The new reminder, then the alarm once the extended deadline's day is over.
    scheduler(app).run_due(new_remind).await.unwrap();
    assert_eq!(
        stored(app, tenant.id, id).await.reminded_at,
        Some(new_remind)
    );
    scheduler(app).run_due(new_due - 1).await.unwrap();
    assert!(
        !case_entries(app, tenant.id, id)
            .await
            .iter()
            .any(|(a, _)| a == "case.overdue")
    );
    let ran = scheduler(app).run_due(new_due).await.unwrap();
    let alarm = ran.iter().find(|r| r.kind == "case.overdue").unwrap();
    assert_eq!(alarm.counts[&tenant.id]["overdue"], 1);
    let entries = case_entries(app, tenant.id, id).await;
    let overdue = entries.iter().find(|(a, _)| a == "case.overdue").unwrap();
    assert_eq!(
        overdue.1["days_left"], -1,
        "the day after the deadline: {entries:?}"
    );
    assert_eq!(stored(app, tenant.id, id).await.reminded_at, Some(new_due));

    // A request that came by letter 40 days ago is overdue now.
    let old = received.checked_sub(jiff::Span::new().days(40)).unwrap();
    let late = open_case(
        app,
        &staff,
        json!({"kind": "access", "received_via": "letter", "received_on": old.to_string()}),
    )
    .await;
    assert_eq!(late["overdue"], true);
    assert!(late["days_left"].as_i64().unwrap() < 0);
    let overdue = list(app, &staff, "?overdue=true").await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["id"], late["id"]);
    assert_eq!(overdue[0]["kind"], "access");
    // Earliest deadline first.
    let all = list(app, &staff, "").await;
    assert_eq!(
        all.iter().map(|c| c["id"].clone()).collect::<Vec<_>>(),
        vec![late["id"].clone(), json!(id)]
    );

    // The CLI lists the same, without notes.
    let out = varsel(
        app,
        &[
            "cases",
            "list",
            "--tenant",
            "alvstad",
            "--overdue",
            "--json",
        ],
    );
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], late["id"]);
    let table = varsel(app, &["cases", "list", "--tenant", "alvstad", "--open"]);
    assert!(
        table.contains("OVERDUE") && table.contains("(extended)"),
        "{table}"
    );

    let verdict = varsel::audit::verify(&app.state.store, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(verdict, varsel::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}

/// Runs the real binary against the app's database; returns stdout.
fn varsel(app: &TestApp, args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn refused_changes_change_nothing_and_closed_cases_stay_closed(app: &TestApp) {
    let (tenant, staff) = setup(app).await;
    let case = open_case(
        app,
        &staff,
        json!({"kind": "restriction", "received_via": "email", "note": "Wants the SMS paused"}),
    )
    .await;
    let id = case["id"].as_i64().unwrap();
    let received = day(&case["received_on"]);
    let before = stored(app, tenant.id, id).await;
    let entries_before = case_entries(app, tenant.id, id).await.len();

    let too_long = add_months(received, 3).unwrap().tomorrow().unwrap();
    let refusals: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"state": "done"}),
            422,
            "rule_violated",
            "needs a resolution",
        ),
        (
            json!({"state": "done", "resolution": "Paused"}),
            422,
            "rule_violated",
            "identity checked first",
        ),
        (
            json!({"state": "received"}),
            422,
            "rule_violated",
            "back to received",
        ),
        (
            json!({"resolution": "Paused"}),
            422,
            "rule_violated",
            "only when closing",
        ),
        (
            json!({"extend": {"to": too_long.to_string(), "reason": "Complex"}}),
            422,
            "rule_violated",
            "at most",
        ),
        (
            json!({"extend": {"to": received.to_string(), "reason": "Complex"}}),
            422,
            "rule_violated",
            "after the deadline",
        ),
        (
            json!({"state": "refused", "resolution": "Told anna@example.com"}),
            422,
            "rule_violated",
            "e-mail address or a phone number",
        ),
        (
            json!({"state": "closed"}),
            400,
            "invalid_input",
            "unknown case state",
        ),
        (
            json!({"identity_check": "passport"}),
            400,
            "invalid_input",
            "identity_document",
        ),
        (
            json!({"extend": {"to": "soon", "reason": "x"}}),
            400,
            "invalid_input",
            "not a date",
        ),
        (
            json!({"colour": "red"}),
            400,
            "invalid_input",
            "unknown field",
        ),
        (json!({}), 422, "rule_violated", "sets nothing"),
    ];
    for (body, status, code, message) in &refusals {
        let (got, answer) = patch(app, &staff, id, body.clone()).await;
        assert_eq!(got, *status, "{body}: {answer}");
        assert_eq!(answer["error"], *code, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    assert_eq!(stored(app, tenant.id, id).await, before, "nothing changed");
    assert_eq!(case_entries(app, tenant.id, id).await.len(), entries_before);

    // Bad requests to open a case name what is wrong.
    for (body, status, message) in [
        (
            json!({"kind": "delete", "received_via": "letter"}),
            400,
            "use access, portability",
        ),
        (
            json!({"kind": "access", "received_via": "fax"}),
            400,
            "in_person",
        ),
        (json!({"kind": "access"}), 400, "received_via"),
        (
            json!({"kind": "access", "received_via": "web", "received_on": today().tomorrow().unwrap().to_string()}),
            422,
            "in the future",
        ),
        (
            json!({"kind": "access", "received_via": "web", "facility": {"service": "electricity", "facility_number": "9999"}}),
            422,
            "no electricity facility 9999",
        ),
    ] {
        let (got, answer) = call(
            app,
            reqwest::Method::POST,
            "/api/v1/cases",
            &staff,
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    assert_eq!(list(app, &staff, "").await.len(), 1);

    // Moving on, extending once, then closing with the identity checked.
    let (status, moved) = patch(app, &staff, id, json!({"state": "waiting_for_subject"})).await;
    assert_eq!(status, 200, "{moved}");
    let to = add_months(received, 2).unwrap();
    let (status, _) = patch(
        app,
        &staff,
        id,
        json!({"extend": {"to": to.to_string(), "reason": "Waiting for the signed letter"}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, again) = patch(
        app,
        &staff,
        id,
        json!({"extend": {"to": to.to_string(), "reason": "Still waiting"}}),
    )
    .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("already_extended")),
        "{again}"
    );
    let (status, closed) = patch(
        app,
        &staff,
        id,
        json!({"state": "done", "identity_check": "signed_letter", "resolution": "Subscription restricted on 2026-01-20"}),
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "done");
    assert_eq!(closed["days_left"], Value::Null);
    assert_eq!(closed["overdue"], false);
    assert!(closed["closed_at"].as_i64().is_some());
    assert_eq!(
        closed["resolution"],
        "Subscription restricted on 2026-01-20"
    );
    let after_close = stored(app, tenant.id, id).await;
    for body in [
        json!({"state": "in_progress"}),
        json!({"note": "more"}),
        json!({"state": "refused", "resolution": "No"}),
    ] {
        let (status, answer) = patch(app, &staff, id, body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (409, Some("case_closed")),
            "{body}: {answer}"
        );
    }
    assert_eq!(stored(app, tenant.id, id).await, after_close);

    // A closed case's reminders do nothing when they come.
    let remind = job(app, "case.reminder", id).await.due_at;
    scheduler(app).run_due(remind).await.unwrap();
    assert!(job(app, "case.reminder", id).await.done_at.is_some());
    assert_eq!(stored(app, tenant.id, id).await.reminded_at, None);
    assert_eq!(list(app, &staff, "?state=closed").await.len(), 1);
    assert!(list(app, &staff, "?state=open").await.is_empty());
    assert_eq!(list(app, &staff, "?state=done").await.len(), 1);
    let (status, bad) = call(
        app,
        reqwest::Method::GET,
        "/api/v1/cases?state=shut",
        &staff,
        None,
    )
    .await;
    assert_eq!(status, 400, "{bad}");

    let actions: Vec<String> = case_entries(app, tenant.id, id)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        actions,
        [
            "case.opened",
            "case.updated",
            "case.updated",
            "case.updated"
        ]
    );
    let verdict = varsel::audit::verify(&app.state.store, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(verdict, varsel::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}

async fn the_note_is_sealed_and_its_reads_audited(app: &TestApp) {
    let (tenant, staff) = setup(app).await;
    let case = open_case(
        app,
        &staff,
        json!({"kind": "rectification", "received_via": "phone", "identity_check": "known_customer", "note": NOTE}),
    )
    .await;
    let id = case["id"].as_i64().unwrap();
    assert_eq!(case["has_note"], true);
    assert_eq!(
        case["note"],
        Value::Null,
        "the answer to a create opens nothing"
    );
    for c in list(app, &staff, "").await {
        assert_eq!(c.get("note"), None, "a list never shows notes: {c}");
    }

    // Nowhere in the database in clear: raw files / rows, and column by column.
    let dump = app.dump_database().await;
    let lower = String::from_utf8_lossy(&dump).to_lowercase();
    for needle in ["anna andersson, källgränd", "070-123 45 67", "call back"] {
        assert!(!lower.contains(needle), "{needle:?} is in the database");
    }
    for (column, value) in app.every_column().await {
        let text = String::from_utf8_lossy(&value);
        assert!(
            !text.contains("call back") && !text.contains("070-123"),
            "{column} holds the note in clear"
        );
    }

    let read: Value = app.get_json(&format!("/api/v1/cases/{id}"), &staff).await;
    assert_eq!(read["note"], NOTE);
    let entries = case_entries(app, tenant.id, id).await;
    assert_eq!(
        entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["case.opened", "case.read"]
    );
    assert_eq!(entries[0].1["kind"], "rectification");
    assert_eq!(entries[0].1["has_note"], true);
    for (_, details) in &entries {
        let text = details.to_string();
        assert!(
            !text.contains("Anna") && !text.contains(NOTE_DIGITS),
            "{text}"
        );
    }

    // Replacing and removing the note; the new one is sealed too.
    let (status, _) = patch(
        app,
        &staff,
        id,
        json!({"note": "Second call: address change sent to the CIS team"}),
    )
    .await;
    assert_eq!(status, 200);
    let read: Value = app.get_json(&format!("/api/v1/cases/{id}"), &staff).await;
    assert_eq!(
        read["note"],
        "Second call: address change sent to the CIS team"
    );
    assert!(!String::from_utf8_lossy(&app.dump_database().await).contains("CIS team"));
    let (status, cleared) = patch(app, &staff, id, json!({"note": ""})).await;
    assert_eq!(status, 200);
    assert_eq!(cleared["has_note"], false);
    let read: Value = app.get_json(&format!("/api/v1/cases/{id}"), &staff).await;
    assert_eq!(read["note"], Value::Null);

    // Another tenant's staff see nothing of it.
    let (_, other) = app
        .tenant("norrkraft", &[Electricity], &[Scope::Privacy])
        .await;
    let (status, _) = call(
        app,
        reqwest::Method::GET,
        &format!("/api/v1/cases/{id}"),
        &other,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(list(app, &other, "").await.is_empty());
    let (status, _) = patch(app, &other, id, json!({"state": "in_progress"})).await;
    assert_eq!(status, 404);

    let verdict = varsel::audit::verify(&app.state.store, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(verdict, varsel::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}

async fn closed_cases_go_after_the_retention_period(app: &TestApp) {
    let (tenant, staff) = setup(app).await;
    let closed = open_case(
        app,
        &staff,
        json!({"kind": "objection", "received_via": "web", "note": NOTE}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = patch(
        app,
        &staff,
        closed,
        json!({"state": "refused", "resolution": "Not the holder of the facility"}),
    )
    .await;
    assert_eq!(status, 200);
    let open = open_case(
        app,
        &staff,
        json!({"kind": "portability", "received_via": "in_person"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let now = varsel::store::now();
    let total = |reports: &[varsel::scheduler::RunReport]| -> u64 {
        reports
            .iter()
            .filter(|r| r.kind == "retention.cases")
            .flat_map(|r| r.counts.get(&tenant.id))
            .flat_map(|c| c.get("cases"))
            .sum()
    };

    let soon = app.run_retention(now + 1094 * 86_400).await;
    assert!(
        soon.iter().any(|r| r.kind == "retention.cases" && r.ok),
        "{soon:?}"
    );
    assert_eq!(total(&soon), 0);
    assert!(
        app.state
            .store
            .case(tenant.id, closed)
            .await
            .unwrap()
            .is_some()
    );

    let later = app.run_retention(now + 1096 * 86_400).await;
    assert_eq!(total(&later), 1, "{later:?}");
    assert!(
        app.state
            .store
            .case(tenant.id, closed)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .store
            .case(tenant.id, open)
            .await
            .unwrap()
            .is_some(),
        "an open case stays"
    );
    for kind in ["case.reminder", "case.overdue"] {
        assert!(
            app.state
                .store
                .one_off_job(kind, &closed.to_string())
                .await
                .unwrap()
                .is_none()
        );
    }
    let (status, _) = call(
        app,
        reqwest::Method::GET,
        &format!("/api/v1/cases/{closed}"),
        &staff,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // What it deleted shows in the staff API and the CLI, as for the other retention jobs.
    let admin = app.token(&tenant, &[Scope::Admin]).await;
    let status: Vec<Value> = app.get_json("/api/v1/retention", &admin).await;
    let job = status
        .iter()
        .find(|j| j["kind"] == "retention.cases")
        .unwrap();
    assert!(
        job["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["erased"]["cases"] == 1),
        "{job}"
    );
    let cli = varsel(app, &["retention", "status"]);
    assert!(
        cli.contains("retention.cases") && cli.contains("alvstad: 1 cases"),
        "{cli}"
    );
    assert!(
        !cli.contains("case.reminder"),
        "one-off case jobs are not retention: {cli}"
    );

    let verdict = varsel::audit::verify(&app.state.store, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(verdict, varsel::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}

async fn staff_without_the_privacy_scope_are_refused(app: &TestApp) {
    let (tenant, staff) = setup(app).await;
    let id = open_case(
        app,
        &staff,
        json!({"kind": "other", "received_via": "email"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    for scopes in [&[Scope::Operator][..], &[Scope::Cis]] {
        let token = app.token(&tenant, scopes).await;
        for (method, path, body) in [
            (
                reqwest::Method::POST,
                "/api/v1/cases".to_string(),
                Some(json!({"kind": "other", "received_via": "email"})),
            ),
            (reqwest::Method::GET, "/api/v1/cases".to_string(), None),
            (reqwest::Method::GET, format!("/api/v1/cases/{id}"), None),
            (
                reqwest::Method::PATCH,
                format!("/api/v1/cases/{id}"),
                Some(json!({"state": "in_progress"})),
            ),
        ] {
            let (status, answer) = call(app, method.clone(), &path, &token, body).await;
            assert_eq!(status, 403, "{method} {path} with {scopes:?}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("privacy scope")
            );
        }
    }
    let (status, _) = call(
        app,
        reqwest::Method::GET,
        "/api/v1/cases",
        "vst_nonsense",
        None,
    )
    .await;
    assert_eq!(status, 401);
    // Nothing the refused tokens sent took effect.
    assert_eq!(list(app, &staff, "").await.len(), 1);
    assert_eq!(stored(app, tenant.id, id).await.state.as_str(), "received");
    // A case of kind other may close as done without an identity check.
    let (status, done) = patch(
        app,
        &staff,
        id,
        json!({"state": "done", "resolution": "Answered the question by e-mail"}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
}
