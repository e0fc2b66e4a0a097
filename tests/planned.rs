//! Planned work through the real API on both stores: announced to registered contacts (the
//! directory waits), reminded once the day before to everyone affected, directory numbers
//! too; a reminder whose work has started is dropped; planned and unplanned outages are
//! listed apart.

mod common;

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::domain::planned::ClockTime;
use varsel::domain::quiet::QuietHours;
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::outages::{Reminded, remind};

/// Lists a number at Storgatan 9, where facility 3002 (nothing registered) is.
const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,9,12345,070-555 00 09\n";

fn facility(number: &str, house: &str) -> Value {
    json!({
        "facility_number": number, "service": "electricity", "customer_number": format!("c{number}"),
        "street": "Storgatan", "house_number": house, "postcode": "123 45", "town": "Älvstad"
    })
}

async fn town(app: &TestApp) -> String {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &token,
        json!([facility("3001", "1"), facility("3002", "9")]),
    )
    .await;
    let own = app.sign_in("alvstad", "electricity", "c3001", "3001").await;
    app.register_phone(&own, "070-300 00 01").await;
    app.verify_email(&own, "planned@example.com").await;
    token
}

fn sms(app: &TestApp) -> Vec<Value> {
    app.sink("sms.jsonl")
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn announce(app: &TestApp, token: &str, start: i64) -> i64 {
    let (status, body) = post(
        app,
        token,
        "/api/v1/outages",
        json!({"service": "electricity", "planned": true, "started_at": start, "etr": start + 6 * 3600,
               "cause": "planned_work", "affected": {"facility_numbers": ["3001", "3002"]}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["outage_id"].as_i64().unwrap();
    common::settle(&app.client, &app.base, token, id).await;
    id
}

/// Waits until the sink holds `n` SMS (the dispatcher runs beside the test), then a moment
/// more, and answers them: a test that expects nothing more sees anything extra.
async fn sms_count(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        if sms(app).len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    sms(app)
}

/// Quiet hours hold what can wait until they end, and nothing else: planned work ahead and
/// a small move of an estimate wait; an unplanned outage, its first estimate, a large move
/// and work starting before the morning go at once. The window is set around the time the
/// test runs.
async fn quiet_hours_hold_what_can_wait(db: Db) {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
    let now = jiff::Timestamp::now();
    let hour = now.to_zoned(zone.clone()).hour();
    let (from, to) = ((hour + 23) % 24, (hour + 2) % 24);
    let window = QuietHours {
        start: ClockTime::at(from, 0),
        end: ClockTime::at(to, 0),
    };
    let toml = format!(
        "[quiet_hours]\nstart = \"{from:02}:00\"\nend = \"{to:02}:00\"\nurgent_etr_minutes = 60\n"
    );
    let app = TestApp::spawn_with_directory_and(db, DIRECTORY, true, &toml).await;
    let token = town(&app).await;
    let end = window
        .ends_after(now, &zone)
        .expect("now is inside")
        .as_second();
    let now = now.as_second();

    // Work an hour long at 3001 from `start`.
    let work = |start: i64| {
        json!({"service": "electricity", "planned": true, "started_at": start, "etr": start + 3600,
               "affected": {"facility_numbers": ["3001"]}})
    };
    // Work next week is announced now, but its notices wait for the window's end.
    let (status, ahead) = post(&app, &token, "/api/v1/outages", work(now + 7 * 86_400)).await;
    assert_eq!(status, 201, "{ahead}");
    assert_eq!(ahead["step"]["held_until"], end, "{ahead}");
    assert_eq!(ahead["step"]["notices"], 2, "phone and e-mail: {ahead}");
    let ahead_id = ahead["outage_id"].as_i64().unwrap();
    // Work starting before the morning cannot wait.
    let (_, tonight) = post(&app, &token, "/api/v1/outages", work(now + 1800)).await;
    assert_eq!(tonight["step"]["held_until"], Value::Null, "{tonight}");
    let sent = sms_count(&app, 1).await;
    assert_eq!(sent.len(), 1, "only tonight's work: {sent:?}");

    // An unplanned outage is never held, nor its first estimate or a large move of it; a
    // small move waits (and is superseded by the larger one when the window ends).
    let (_, fault) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["3002"]}}),
    )
    .await;
    let fault_id = fault["outage_id"].as_i64().unwrap();
    assert_eq!(fault["step"]["held_until"], Value::Null);
    // Each sent step is let out before the next is taken, so none is superseded by the
    // next one before it goes (which would depend on how busy the machine is).
    sms_count(&app, 2).await;
    let updates = format!("/api/v1/outages/{fault_id}/updates");
    let etr = now + 2 * 3600;
    let mut expected = 2;
    for (new_etr, held) in [(etr, false), (etr + 40 * 60, true), (etr + 3 * 3600, false)] {
        let (status, step) = post(&app, &token, &updates, json!({"etr": new_etr})).await;
        assert_eq!(status, 201, "{step}");
        let want = if held { json!(end) } else { Value::Null };
        assert_eq!(step["step"]["held_until"], want, "etr {new_etr}: {step}");
        if !held {
            expected += 1;
            sms_count(&app, expected).await;
        }
    }
    // The directory number at Storgatan 9: the outage, the first estimate, the large move.
    let sent = sms_count(&app, 4).await;
    assert_eq!(sent.len(), 4, "{sent:?}");
    let shown: Value = app
        .get_json(&format!("/api/v1/outages/{ahead_id}"), &token)
        .await;
    assert_eq!(shown["steps"][0]["held_until"], end, "{shown}");

    // The window ends (the clock is moved on): the held notices go, the superseded small
    // move does not.
    app.db
        .execute(&format!(
            "UPDATE notices SET next_attempt_at = {now} WHERE status = 'pending'"
        ))
        .await;
    assert_eq!(
        common::settle(&app.client, &app.base, &token, ahead_id).await,
        json!({"sent": 2})
    );
    let counts = common::settle(&app.client, &app.base, &token, fault_id).await;
    assert_eq!(counts, json!({"sent": 3, "superseded": 1}), "{counts}");
    let sent = sms_count(&app, 5).await;
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert!(
        sent[4]["body"]
            .as_str()
            .unwrap()
            .contains("Planerat strömavbrott"),
        "{sent:?}"
    );
    app.finish().await;
}

/// A planned outage's whole life, the scheduler driven by a controllable clock: published
/// (registered contacts told, the print job produced and the PDF rendered by pdftoppm),
/// nothing the day before 18:00, the reminder at 18:00 local on the evening before in each
/// household's language, nothing more when the work starts, and "back" at the end to
/// everyone told.
async fn a_planned_outage_from_publication_to_end(db: Db) {
    use varsel::scheduler::Scheduler;
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let mut english = facility("3001", "1");
    english["language"] = json!("en");
    english["holder_name"] = json!("Åsa Öberg");
    english["postal_street"] = json!("Box 7");
    english["postal_postcode"] = json!("123 99");
    english["postal_town"] = json!("Älvstad");
    app.put_facilities(&token, json!([english])).await;
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
    let day = jiff::Zoned::now()
        .with_time_zone(zone.clone())
        .date()
        .checked_add(jiff::Span::new().days(12))
        .unwrap();
    let start = zone
        .to_ambiguous_zoned(day.at(9, 0, 0, 0))
        .compatible()
        .unwrap()
        .timestamp()
        .as_second();

    // Published: the registered phone hears of it, in English.
    let id = announce(&app, &token, start).await;
    let sent = sms(&app);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0]["body"]
            .as_str()
            .unwrap()
            .contains("Planned power cut"),
        "{sent:?}"
    );
    let summary: Value = app
        .get_json(&format!("/api/v1/outages/{id}/postcards"), &token)
        .await;
    assert_eq!(summary["cards"], 1, "{summary}");
    assert_eq!(summary["lead_time"]["enough"], true, "{summary}");
    let pdf = app
        .client
        .get(app.url(&format!("/api/v1/outages/{id}/postcards.pdf")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = app.dir.path().join("cards.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let rendered = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "40", "-f", "1", "-l", "1"])
        .arg(&file)
        .arg(app.dir.path().join("card"))
        .status()
        .expect("pdftoppm (poppler-utils, which .ci/run installs)");
    assert!(rendered.success());
    assert!(
        std::fs::read_dir(app.dir.path()).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "png"))
    );

    // The scheduler at chosen instants: not at 17:59 the day before, at 18:00 once, and
    // never again (at the start, or after a restart at the same instant).
    let eve = zone
        .to_ambiguous_zoned(day.yesterday().unwrap().at(18, 0, 0, 0))
        .compatible()
        .unwrap()
        .timestamp()
        .as_second();
    let scheduler = Scheduler::with_outages(app.state.clone());
    let reminders = |r: Vec<varsel::scheduler::RunReport>| {
        r.into_iter()
            .filter(|r| r.kind == "planned.reminder")
            .count()
    };
    assert_eq!(reminders(scheduler.run_due(eve - 60).await.unwrap()), 0);
    assert_eq!(reminders(scheduler.run_due(eve).await.unwrap()), 1);
    common::settle(&app.client, &app.base, &token, id).await;
    let restarted = Scheduler::with_outages(app.state.clone());
    assert_eq!(reminders(restarted.run_due(eve + 1).await.unwrap()), 0);
    assert_eq!(reminders(restarted.run_due(start + 60).await.unwrap()), 0);
    let sent = sms(&app);
    assert_eq!(
        sent.len(),
        3,
        "the phone and the directory number: {sent:?}"
    );
    let by = |to: &str| {
        sent.iter()
            .filter(|m| m["to"] == to)
            .map(|m| m["body"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        by("+46703000001")[1].starts_with("alvstad Energi: Reminder: planned"),
        "{sent:?}"
    );
    assert!(by("+46705550009")[0].contains("Påminnelse"), "{sent:?}");

    // The work ends (the OMS reports when): everyone told hears it is back, the directory
    // number too.
    let (status, end) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/restore"),
        json!({"at": start + 5 * 3600}),
    )
    .await;
    assert_eq!(status, 201, "{end}");
    common::settle(&app.client, &app.base, &token, id).await;
    let sent = sms(&app);
    assert_eq!(sent.len(), 5, "{sent:?}");
    let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    let kinds: Vec<&str> = outage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["announced", "reminded", "restored"]);
    assert_eq!(outage["planned"], true);
    app.finish().await;
}

async fn announced_then_reminded_once(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let now = varsel::store::now();
    let start = now + 3 * 86_400;

    // Planned work needs its start (ahead) and its end.
    for bad in [
        json!({"service": "electricity", "planned": true, "etr": start, "affected": {"facility_numbers": ["3001"]}}),
        json!({"service": "electricity", "planned": true, "started_at": start, "affected": {"facility_numbers": ["3001"]}}),
        json!({"service": "electricity", "planned": true, "started_at": now - 60, "etr": now + 3600, "affected": {"facility_numbers": ["3001"]}}),
    ] {
        let (status, body) = post(&app, &token, "/api/v1/outages", bad).await;
        assert_eq!(
            status, 422,
            "well formed, refused by the rules of planned work: {body}"
        );
    }

    let id = announce(&app, &token, start).await;
    let announced = sms(&app);
    assert_eq!(
        announced.len(),
        1,
        "the registered phone only: {announced:?}"
    );
    assert_eq!(announced[0]["to"], "+46703000001");
    let body = announced[0]["body"].as_str().unwrap();
    assert!(body.contains("Planerat strömavbrott"), "{body}");
    let mail = std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
    assert!(mail.contains("Planerat str"), "{mail}");

    // The reminder is a durable job due on the local evening before the start.
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
    let due = ClockTime::at(18, 0)
        .before(jiff::Timestamp::from_second(start).unwrap(), &zone)
        .as_second();
    let jobs = app.state.store.jobs().await.unwrap();
    let job = jobs
        .iter()
        .find(|j| j.kind == "planned.reminder")
        .expect("a reminder job");
    assert_eq!(job.due_at, due);

    let sent = remind(&app.state, id, due).await.unwrap();
    assert!(
        matches!(sent, Reminded::Sent { notices: 3, .. }),
        "phone, e-mail and the directory number: {sent:?}"
    );
    common::settle(&app.client, &app.base, &token, id).await;
    let reminded: Vec<Value> = sms(&app).into_iter().skip(1).collect();
    let mut to: Vec<&str> = reminded.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        ["+46703000001", "+46705550009"],
        "registered and directory"
    );
    assert!(reminded.iter().all(|m| {
        m["body"]
            .as_str()
            .unwrap()
            .contains("Påminnelse om planerat")
    }));
    // Never twice.
    assert_eq!(
        remind(&app.state, id, due + 60).await.unwrap(),
        Reminded::AlreadySent
    );
    assert_eq!(sms(&app).len(), 3);

    // The work ends: the "back" message reaches everyone told, the directory number too.
    let (status, _) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/restore"),
        json!({"at": start + 5 * 3600}),
    )
    .await;
    assert_eq!(status, 201);
    common::settle(&app.client, &app.base, &token, id).await;
    assert_eq!(sms(&app).len(), 5);

    // Planned and unplanned are listed apart.
    let (status, unplanned) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["3001"]}}),
    )
    .await;
    assert_eq!(status, 201);
    let planned: Vec<Value> = app.get_json("/api/v1/outages?planned=true", &token).await;
    let unplanned_list: Vec<Value> = app.get_json("/api/v1/outages?planned=false", &token).await;
    assert_eq!(
        planned
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [id]
    );
    assert_eq!(
        unplanned_list
            .iter()
            .map(|o| o["id"].clone())
            .collect::<Vec<_>>(),
        [unplanned["outage_id"].clone()]
    );
    assert_eq!(planned[0]["planned"], true);
    app.finish().await;
}

/// The service was down over the reminder's time: sent at once while the work is ahead,
/// dropped once it has started.
async fn a_late_reminder_is_sent_or_dropped(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let now = varsel::store::now();
    let ahead = announce(&app, &token, now + 3600).await;
    let before = sms(&app).len();
    assert!(matches!(
        remind(&app.state, ahead, now).await.unwrap(),
        Reminded::Sent { .. }
    ));
    common::settle(&app.client, &app.base, &token, ahead).await;
    assert_eq!(sms(&app).len(), before + 2);

    let started = announce(&app, &token, now + 7200).await;
    let before = sms(&app).len();
    assert_eq!(
        remind(&app.state, started, now + 7201).await.unwrap(),
        Reminded::Dropped
    );
    let record: Value = app
        .get_json(&format!("/api/v1/outages/{started}"), &token)
        .await;
    assert_eq!(
        record["steps"].as_array().unwrap().len(),
        1,
        "no reminder step"
    );
    assert_eq!(sms(&app).len(), before);
    // An unplanned outage has no reminder.
    let (_, unplanned) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["3001"]}}),
    )
    .await;
    let id = unplanned["outage_id"].as_i64().unwrap();
    assert_eq!(
        remind(&app.state, id, now).await.unwrap(),
        Reminded::NotNeeded
    );
    app.finish().await;
}

/// Two instances (on PostgreSQL; two runs in one process on SQLite, which one process owns)
/// run the same reminder at once: it goes once.
async fn two_instances_remind_once(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let now = varsel::store::now();
    let id = announce(&app, &token, now + 86_400).await;
    let before = sms(&app).len();
    let other = if app.state.store.backend_name() == "sqlite" {
        app.state.clone()
    } else {
        varsel::state::AppState {
            store: varsel::store::Store::connect(&app.db.url).await.unwrap(),
            ..app.state.clone()
        }
    };
    let (a, b) = tokio::join!(remind(&app.state, id, now), remind(&other, id, now));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Reminded::Sent { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    common::settle(&app.client, &app.base, &token, id).await;
    assert_eq!(sms(&app).len(), before + 2, "one reminder per recipient");
    if app.state.store.backend_name() != "sqlite" {
        other.store.close().await;
    }
    app.finish().await;
}

/// The scheduler runs the reminder job at its time, not before, and once, with two
/// schedulers (two instances on PostgreSQL) racing for it.
async fn the_scheduler_reminds_at_the_time(db: Db) {
    use varsel::scheduler::Scheduler;
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let now = varsel::store::now();
    let start = now + 2 * 86_400;
    let id = announce(&app, &token, start).await;
    let due = app
        .state
        .store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.kind == "planned.reminder")
        .unwrap()
        .due_at;
    let second = if app.state.store.backend_name() == "sqlite" {
        app.state.clone()
    } else {
        varsel::state::AppState {
            store: varsel::store::Store::connect(&app.db.url).await.unwrap(),
            ..app.state.clone()
        }
    };
    let (a, b) = (
        Scheduler::with_outages(app.state.clone()),
        Scheduler::with_outages(second.clone()),
    );
    let ran = |reports: &[varsel::scheduler::RunReport]| {
        reports
            .iter()
            .filter(|r| r.kind == "planned.reminder")
            .count()
    };
    assert_eq!(
        ran(&a.run_due(due - 60).await.unwrap()),
        0,
        "not before its time"
    );
    // A scheduler that cannot send (as in `varsel retention run`) leaves it alone.
    let retention_only = Scheduler::new(app.state.store.clone(), app.state.config.clone());
    assert_eq!(ran(&retention_only.run_due(due).await.unwrap()), 0);
    let before = sms(&app).len();
    let (ra, rb) = tokio::join!(a.run_due(due), b.run_due(due));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ran(&ra) + ran(&rb), 1, "{ra:?} {rb:?}");
    assert!(ra.iter().chain(&rb).all(|r| r.ok), "{ra:?} {rb:?}");
    common::settle(&app.client, &app.base, &token, id).await;
    assert_eq!(sms(&app).len(), before + 2);
    assert_eq!(ran(&a.run_due(due + 3600).await.unwrap()), 0, "done");
    if app.state.store.backend_name() != "sqlite" {
        second.store.close().await;
    }
    app.finish().await;
}

/// The postcards of planned work: one per holder with a postal address, the others named,
/// the lead time judged; CSV and PDF as files; nothing for unplanned outages.
async fn postcards_for_the_holders(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let with_holder = |number: &str, house: &str, name: &str| {
        let mut f = facility(number, house);
        f["holder_name"] = json!(name);
        f["postal_street"] = json!("Box 7");
        f["postal_postcode"] = json!("123 99");
        f["postal_town"] = json!("Älvstad");
        f
    };
    // One holder with two facilities, and 3002 without a postal address.
    app.put_facilities(
        &token,
        json!([
            with_holder("3001", "1", "Åsa Öberg"),
            with_holder("3003", "3", "åsa  öberg")
        ]),
    )
    .await;
    let now = varsel::store::now();
    let (status, body) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "planned": true, "started_at": now + 2 * 86_400, "etr": now + 2 * 86_400 + 3600,
               "cause": "planned_work", "affected": {"facility_numbers": ["3001", "3002", "3003"]}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["outage_id"].as_i64().unwrap();
    let summary: Value = app
        .get_json(&format!("/api/v1/outages/{id}/postcards"), &token)
        .await;
    assert_eq!(summary["cards"], 1, "{summary}");
    assert_eq!(summary["unaddressed"][0]["facility_number"], "3002");
    assert_eq!(
        summary["lead_time"]["enough"], false,
        "two days is too late for post"
    );

    let csv = app
        .client
        .get(app.url(&format!("/api/v1/outages/{id}/postcards.csv")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(
        csv.contains("Åsa Öberg") && csv.contains("3001") && csv.contains("3003"),
        "{csv}"
    );
    let pdf = app
        .client
        .get(app.url(&format!("/api/v1/outages/{id}/postcards.pdf")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));

    let (_, unplanned) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["3001"]}}),
    )
    .await;
    let other = unplanned["outage_id"].as_i64().unwrap();
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/outages/{other}/postcards.csv")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let audit: Value = app.get_json("/api/v1/audit?limit=500", &token).await;
    let produced = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "postcards.produced")
        .count();
    assert_eq!(
        produced, 3,
        "the summary, the CSV and the PDF; not the refusal"
    );
    app.finish().await;
}

/// Work moved to another day: everyone told hears the new times, and the reminder follows,
/// again for the new day even though it went for the old one.
async fn rescheduled_work_tells_everyone_told_and_is_reminded_again(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let token = town(&app).await;
    let now = varsel::store::now();
    let id = announce(&app, &token, now + 86_400).await;
    assert!(matches!(
        remind(&app.state, id, now).await.unwrap(),
        Reminded::Sent { .. }
    ));
    common::settle(&app.client, &app.base, &token, id).await;
    let before = sms(&app).len();

    let path = format!("/api/v1/outages/{id}/reschedule");
    let new_start = now + 5 * 86_400;
    for (bad, status) in [
        (json!({"started_at": now - 60, "etr": now + 3600}), 422),
        (json!({"started_at": new_start, "etr": new_start - 1}), 422),
        (json!({"started_at": new_start}), 400),
    ] {
        assert_eq!(post(&app, &token, &path, bad).await.0, status);
    }
    let (status, body) = post(
        &app,
        &token,
        &path,
        json!({"started_at": new_start, "etr": new_start + 4 * 3600}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    common::settle(&app.client, &app.base, &token, id).await;
    let moved: Vec<Value> = sms(&app).into_iter().skip(before).collect();
    let mut to: Vec<&str> = moved.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        ["+46703000001", "+46705550009"],
        "everyone told, the directory number too"
    );
    assert!(
        moved
            .iter()
            .all(|m| m["body"].as_str().unwrap().contains("Ny tid")),
        "{moved:?}"
    );
    let record: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    assert_eq!(record["started_at"], new_start);

    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
    let due = ClockTime::at(18, 0)
        .before(jiff::Timestamp::from_second(new_start).unwrap(), &zone)
        .as_second();
    let job = app
        .state
        .store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.kind == "planned.reminder")
        .unwrap();
    assert_eq!((job.due_at, job.done_at), (due, None));
    assert!(matches!(
        remind(&app.state, id, due).await.unwrap(),
        Reminded::Sent { .. }
    ));

    // Unplanned outages are not rescheduled.
    let (_, unplanned) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["3001"]}}),
    )
    .await;
    let other = unplanned["outage_id"].as_i64().unwrap();
    let (status, _) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{other}/reschedule"),
        json!({"started_at": new_start, "etr": new_start + 3600}),
    )
    .await;
    assert_eq!(status, 409);
    app.finish().await;
}

/// In the demo town an operator announces planned work on a feeder and gets a card for every
/// household below it: the demo's holders all have postal addresses.
async fn the_demo_town_prints_postcards(db: Db) {
    let app = TestApp::spawn(db).await;
    let demo = varsel::demo::seed(&app.state).await.unwrap();
    let token = demo.token.clone();
    let now = varsel::store::now();
    let (status, body) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "planned": true, "started_at": now + 10 * 86_400,
               "etr": now + 10 * 86_400 + 6 * 3600, "cause": "planned_work",
               "affected": {"grid_nodes": ["ALV-N03"]}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["outage_id"].as_i64().unwrap();
    let summary: Value = app
        .get_json(&format!("/api/v1/outages/{id}/postcards"), &token)
        .await;
    assert!(summary["cards"].as_u64().unwrap() > 100, "{summary}");
    assert_eq!(summary["unaddressed"], json!([]), "{summary}");
    assert_eq!(summary["lead_time"]["enough"], true);
    app.finish().await;
}

on_both_dbs!(
    announced_then_reminded_once,
    a_late_reminder_is_sent_or_dropped,
    two_instances_remind_once,
    the_scheduler_reminds_at_the_time,
    postcards_for_the_holders,
    rescheduled_work_tells_everyone_told_and_is_reminded_again,
    the_demo_town_prints_postcards,
    quiet_hours_hold_what_can_wait,
    a_planned_outage_from_publication_to_end
);
