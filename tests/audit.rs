//! The audit trail through the HTTP API and the `varsel audit` command, on both stores: reads
//! and changes of personal data leave entries without contact data, the chain verifies, and
//! altering or deleting one row is found and named.

mod common;

use std::process::{Command, Output};

use common::TestApp;
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

const PHONE: &str = "070-123 45 67";
const PHONE_DIGITS: &str = "701234567";
const EMAIL: &str = "anna.andersson@example.com";

fn facility(number: &str, customer: &str) -> Value {
    json!({
        "facility_number": number, "service": "electricity", "customer_number": customer,
        "street": "Källgränd", "house_number": "7", "postcode": "123 45", "town": "Älvstad",
        "holder_name": "Anna Andersson"
    })
}

/// Runs the real binary against the app's database.
fn varsel(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args(args)
        .env_remove("VARSEL_CONFIG")
        .env("VARSEL_DATA_DIR", app.dir.path())
        .env("VARSEL_DATABASE_URL", &app.db.url)
        .env("VARSEL_LOG", "warn")
        .env("USER", "auditor")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs one statement on the app's database, as someone with direct access to it would.
async fn sql(app: &TestApp, statement: &str) -> Result<u64, sqlx::Error> {
    let q = sqlx::AssertSqlSafe(statement.to_string());
    match app.state.store.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await?;
            let n = sqlx::query(q)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected());
            pool.close().await;
            n
        }
        _ => {
            let pool = sqlx::PgPool::connect(&app.db.url).await?;
            let n = sqlx::query(q)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected());
            pool.close().await;
            n
        }
    }
}

/// Every audit_log row as one line of text, for "nothing in clear" checks.
async fn audit_rows(app: &TestApp) -> Vec<String> {
    let q = "SELECT id, tenant_id, at, actor, action, subject, details FROM audit_log ORDER BY id";
    type Row = (
        i64,
        Option<i64>,
        i64,
        String,
        String,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = match app.state.store.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            let r = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
            pool.close().await;
            r
        }
        _ => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            let r = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
            pool.close().await;
            r
        }
    };
    rows.into_iter().map(|r| format!("{r:?}")).collect()
}

async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    let resp = req.send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "{}: {:?}",
        resp.url().clone(),
        resp.text().await
    );
    resp
}

/// Every entry of the tenant the token belongs to, walked page by page.
async fn all_entries(app: &TestApp, token: &str, limit: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = app
            .get_json(&format!("/api/v1/audit?after={after}&limit={limit}"), token)
            .await;
        out.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

async fn reads_and_changes_leave_a_chain_without_contacts(app: &TestApp) {
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let (_, other_token) = app
        .tenant("norrkraft", &[Electricity], &[Scope::Admin])
        .await;
    app.put_facilities(
        &token,
        json!([facility("2001", "c1"), facility("2002", "c2")]),
    )
    .await;
    let f1 = app
        .state
        .store
        .facility_by_invoice(tenant.id, Electricity, &"2001".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let f2 = app
        .state
        .store
        .facility_by_invoice(tenant.id, Electricity, &"2002".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;

    // A household reads, sets both contacts, verifies the e-mail and removes the phone.
    let session = app.sign_in("alvstad", "electricity", "c1", "2001").await;
    send(
        app.client
            .get(app.url("/api/v1/registration"))
            .bearer_auth(&session),
    )
    .await;
    let page = send(
        app.client
            .get(app.url("/t/alvstad/facility"))
            .header("cookie", format!("varsel_session={session}")),
    )
    .await;
    assert_eq!(page.status(), 200);
    app.register_phone(&session, PHONE).await;
    app.verify_email(&session, EMAIL).await;
    send(
        app.client
            .delete(app.url("/api/v1/registration/phone"))
            .bearer_auth(&session),
    )
    .await;
    // Removing what is not there changes nothing, and records nothing.
    send(
        app.client
            .delete(app.url("/api/v1/registration/phone"))
            .bearer_auth(&session),
    )
    .await;

    // The CIS: a move-out, and a new holder at a facility with a subscription.
    send(
        app.client
            .post(app.url("/api/v1/facilities/2001/move-out"))
            .bearer_auth(&token),
    )
    .await;
    let other = app.sign_in("alvstad", "electricity", "c2", "2002").await;
    app.register_phone(&other, "070-765 43 21").await;
    let report = app
        .put_facilities(&token, json!([facility("2002", "c9")]))
        .await;
    assert_eq!(report["holder_changed"], 1, "{report}");

    // Staff: a token created and revoked.
    let created: Value = send(
        app.client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&token)
            .json(&json!({"name": "CIS nightly", "scopes": ["cis"]})),
    )
    .await
    .json()
    .await
    .unwrap();
    let new_id = created["id"].as_i64().unwrap();
    send(
        app.client
            .delete(app.url(&format!("/api/v1/tokens/{new_id}")))
            .bearer_auth(&token),
    )
    .await;
    let retention = app.run_retention(varsel::store::now()).await;
    assert!(retention.iter().all(|r| r.ok), "{retention:?}");

    let entries = all_entries(app, &token, 4).await;
    assert_eq!(
        entries,
        all_entries(app, &token, 1000).await,
        "pages join up"
    );
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.created",
            "token.created",
            "facilities.imported",
            "registration.read",
            "registration.read",
            "phone.set",
            "email.set",
            "email.verified",
            "phone.erased",
            "rights.replaced_contact_told",
            "facility.moved_out",
            "phone.set",
            "facility.holder_changed",
            "facilities.imported",
            "token.created",
            "token.revoked",
        ]
    );
    let by_action = |a: &str| entries.iter().find(|e| e["action"] == a).unwrap();
    let household = format!("household:facility:{f1}");
    for a in [
        "registration.read",
        "email.set",
        "email.verified",
        "phone.erased",
    ] {
        assert_eq!(by_action(a)["actor"], household.as_str(), "{a}");
        assert_eq!(by_action(a)["subject"], format!("facility:{f1}"), "{a}");
    }
    assert_eq!(entries[3]["details"], json!({"via": "api"}));
    assert_eq!(entries[4]["details"], json!({"via": "page"}));
    let moved = by_action("facility.moved_out");
    assert!(
        moved["actor"].as_str().unwrap().starts_with("token:")
            && moved["actor"].as_str().unwrap().ends_with(":test"),
        "{moved}"
    );
    assert_eq!(moved["details"], json!({"subscription_erased": true}));
    let holder = by_action("facility.holder_changed");
    assert_eq!(holder["subject"], format!("facility:{f2}"));
    assert_eq!(holder["details"], json!({"subscription_erased": true}));
    let last_import = entries
        .iter()
        .rev()
        .find(|e| e["action"] == "facilities.imported")
        .unwrap();
    assert_eq!(
        last_import["details"],
        json!({"inserted": 0, "updated": 1, "unchanged": 0, "holder_changed": 1})
    );
    assert_eq!(
        by_action("token.revoked")["subject"],
        format!("token:{new_id}")
    );
    assert!(
        entries
            .iter()
            .all(|e| e["hash"].as_str().unwrap().len() == 64)
    );

    // The other tenant sees its own two entries only.
    let theirs = all_entries(app, &other_token, 100).await;
    assert_eq!(
        theirs
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["tenant.created", "token.created"]
    );

    // The rows hold no contact data, name or address; retention runs are global entries.
    let rows = audit_rows(app).await;
    for row in &rows {
        for needle in [
            PHONE_DIGITS,
            "7654321",
            "anna.andersson",
            "Anna",
            "Källgränd",
        ] {
            assert!(!row.contains(needle), "{needle:?} in the audit row {row}");
        }
    }
    let runs: Vec<&String> = rows
        .iter()
        .filter(|r| r.contains("retention.run"))
        .collect();
    // The service's own scheduler may have run them once at its start too.
    assert!(
        !runs.is_empty()
            && runs
                .len()
                .is_multiple_of(varsel::scheduler::JobKind::RETENTION.len()),
        "one per retention job and run: {rows:#?}"
    );
    assert!(
        runs.iter()
            .all(|r| r.contains("None") && r.contains("system:retention"))
    );

    // Bad pages are refused with a reason; only admin tokens read the trail.
    for bad in ["limit=0", "limit=1001", "after=-1", "limit=many"] {
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/audit?{bad}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_input", "{bad}");
    }
    let operator = app.token(&tenant, &[Scope::Operator]).await;
    let resp = app
        .client
        .get(app.url("/api/v1/audit"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    chain_verifies_and_names_what_was_tampered_with(app, f1).await;
}

async fn chain_verifies_and_names_what_was_tampered_with(app: &TestApp, f1: i64) {
    let total = audit_rows(app).await.len();
    let ok = varsel(app, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains(&format!("audit chain intact: {total} entries verified")),
        "{}",
        stdout(&ok)
    );
    let shown = varsel(
        app,
        &["audit", "show", "--tenant", "alvstad", "--limit", "3"],
    );
    assert!(shown.status.success(), "{}", stderr(&shown));
    let lines: Vec<String> = stdout(&shown).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].contains("token.revoked"), "{lines:?}");
    assert!(lines[2].contains("system:test token.created"), "{lines:?}");
    let missing = varsel(app, &["audit", "show", "--tenant", "nosuch"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no tenant \"nosuch\""));

    // The service cannot change or delete entries...
    let refused = sql(app, "UPDATE audit_log SET details = '{}' WHERE id = 1").await;
    assert!(
        refused.unwrap_err().to_string().contains("append-only"),
        "an UPDATE is refused"
    );
    let refused = sql(app, "DELETE FROM audit_log WHERE id = 1").await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    // ...but whoever owns the database can; the chain shows it.
    let unguard = match app.state.store.backend_name() {
        "sqlite" => vec![
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
        _ => vec!["ALTER TABLE audit_log DISABLE TRIGGER USER"],
    };
    for s in unguard {
        sql(app, s).await.unwrap();
    }
    // The household's first phone.set: its details said it replaced nothing.
    let phone_set = audit_rows(app)
        .await
        .iter()
        .find(|r| r.contains("phone.set") && r.contains(&format!("facility:{f1}")))
        .map(|r| {
            r.trim_start_matches('(')
                .split(',')
                .next()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let altered =
        format!("UPDATE audit_log SET details = '{{\"replaced\":true}}' WHERE id = {phone_set}");
    assert_eq!(sql(app, &altered).await.unwrap(), 1);
    let broken = varsel(app, &["audit", "verify"]);
    assert!(!broken.status.success());
    assert!(
        stderr(&broken).contains(&format!("entry {phone_set} was altered")),
        "{}",
        stderr(&broken)
    );
    // Put back exactly as it was, the chain holds again: verify checks the stored text.
    let restored =
        format!("UPDATE audit_log SET details = '{{\"replaced\":false}}' WHERE id = {phone_set}");
    assert_eq!(sql(app, &restored).await.unwrap(), 1);
    assert!(varsel(app, &["audit", "verify"]).status.success());

    let middle = total as i64 / 2;
    let deleted = format!("DELETE FROM audit_log WHERE id = {middle}");
    assert_eq!(sql(app, &deleted).await.unwrap(), 1);
    let gap = varsel(app, &["audit", "verify"]);
    assert!(!gap.status.success());
    assert!(
        stderr(&gap).contains(&format!(
            "entry {middle} is missing: the entry after {} is {}",
            middle - 1,
            middle + 1
        )),
        "{}",
        stderr(&gap)
    );
}

/// Appends from two stores on one database at once (two instances on PostgreSQL, two pools
/// on one SQLite file) stay one unbroken chain. Each store commits the appends that pile up
/// together; requests that go away meanwhile (some tasks are aborted) take nobody else's
/// entry with them, and every append that answered is in the chain exactly once.
async fn concurrent_writers_keep_one_chain(app: &TestApp) {
    let (tenant, _) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let second = varsel::store::Store::connect(&app.db.url).await.unwrap();
    let tenant_id = tenant.id;
    let read = |store: varsel::store::Store, facility_id: i64| async move {
        let s = varsel::registration::Session::system(facility_id, tenant_id);
        varsel::audit::registration_read(&store, s, "api").await
    };
    const APPENDS: i64 = 400;
    let mut tasks = Vec::new();
    for i in 0..APPENDS {
        let store = if i % 2 == 0 {
            app.state.store.clone()
        } else {
            second.clone()
        };
        tasks.push((i, tokio::spawn(read(store, i))));
    }
    let mut answered = Vec::new();
    for (i, t) in &tasks {
        if i % 7 == 3 {
            t.abort();
        }
    }
    for (i, t) in tasks {
        match t.await {
            Ok(done) => {
                done.unwrap();
                answered.push(i);
            }
            Err(e) => assert!(e.is_cancelled(), "{e}"),
        }
    }
    second.close().await;
    let mut recorded = app
        .state
        .store
        .audit_after(Some(tenant_id), 0, 10 * APPENDS)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "registration.read")
        .map(|e| e.subject.unwrap())
        .collect::<Vec<_>>();
    recorded.sort();
    let unique = recorded.len();
    recorded.dedup();
    assert_eq!(unique, recorded.len(), "an entry went in twice");
    for i in &answered {
        let subject = varsel::domain::audit::facility_subject(*i);
        assert!(
            recorded.contains(&subject),
            "answered but not recorded: {i}"
        );
    }
    assert!(answered.len() as i64 >= APPENDS - APPENDS / 7 - 1);
    // The service's scheduler appends retention runs meanwhile: all of it is one chain.
    let head = app.state.store.audit_head().await.unwrap();
    let verdict = varsel::audit::verify(&app.state.store, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(&verdict, varsel::audit::Verdict::Intact { entries, .. } if *entries >= head.last_id && *entries >= answered.len() as i64),
        "{verdict:?}"
    );
}

/// Saving the number already registered, in any spelling, changes nothing: no write, no
/// entry, the same "last changed" time. A different number is a change again.
async fn saving_the_same_number_again_writes_nothing(app: &TestApp) {
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(&token, json!([facility("2001", "c1")]))
        .await;
    let store = &app.state.store;
    let facility_id = store
        .facility_by_invoice(tenant.id, Electricity, &"2001".parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let stored = || async {
        let sub = store.subscription(facility_id).await.unwrap().unwrap();
        (sub.updated_at, sub.phone.unwrap().sealed.ciphertext)
    };
    let session = app.sign_in("alvstad", "electricity", "c1", "2001").await;
    let phone_sets = |rows: Vec<String>| rows.iter().filter(|r| r.contains("phone.set")).count();
    app.register_phone(&session, "070-123 45 67").await;
    let before = (audit_rows(app).await, stored().await);
    app.register_phone(&session, "+46701234567").await;
    let after = audit_rows(app).await;
    assert_eq!(phone_sets(after.clone()), 1, "{after:#?}");
    assert_eq!(after.len(), before.0.len(), "{after:#?}");
    assert_eq!(
        stored().await,
        before.1,
        "neither sealed again nor marked changed"
    );
    app.register_phone(&session, "070-765 43 21").await;
    let rows = audit_rows(app).await;
    assert_eq!(phone_sets(rows.clone()), 2);
    assert!(
        rows.iter()
            .any(|r| r.contains("phone.set") && r.contains(r#"\"replaced\":true"#)),
        "{rows:#?}"
    );
}

on_both_stores!(
    saving_the_same_number_again_writes_nothing,
    reads_and_changes_leave_a_chain_without_contacts,
    concurrent_writers_keep_one_chain
);
