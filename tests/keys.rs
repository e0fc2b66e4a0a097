//! Data keys on both stores: each tenant's values are sealed with its own data key, which
//! the key file wraps; `varsel keys rotate` re-wraps every tenant key and moves every value
//! still on the key file to its tenant's key, continues a rotation cut short, and
//! `--retire-old` drops nothing while a value still uses an old key; `varsel tenant delete
//! --shred` deletes a tenant with its data key, so what is left of its values opens no more.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::crypto::{Keyring, tenant_key_id};
use varsel::domain::recipients::Channel;
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::store::direct::{body_field, recipient_field};
use varsel::store::{DirectKind, NewDirect, SEALED_COLUMNS, SealedValue, Store, Which};

const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,2,12345,070-999 00 02\nStorgatan,2,12345,070-999 00 22\n";

/// The text of the verification mail waiting in the town's outbox.
const WAITING_BODY: &str = r#"{"subject":"Bekräfta","text":"https://example.com/verify/vsv_x"}"#;

/// The tenant keys' column: what the key file wraps.
const TENANT_KEYS: usize = 4;

/// Every kind of sealed value: in tenant 1 (alvstad) registered phones (1001, 1003), a
/// verified and an unverified e-mail (1003, 1001), the two directory numbers at 1002's
/// address (no phone registered there) kept for an outage, and the three holders; in tenant
/// 2 (norrkraft) one holder, and a verification mail of 1001 waiting in the outbox. Each
/// tenant's data key is wrapped with key 1 of the key file.
/// With `legacy`, every value is then re-sealed with key 1 of the key file, as versions
/// before tenant keys left them.
async fn sealed_town(db: Db, legacy: bool) -> TestApp {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, false).await;
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let (_, other) = app
        .tenant("norrkraft", &[Electricity], &[Scope::Admin])
        .await;
    let f = |n: &str, house: &str| {
        json!({"facility_number": n, "service": "electricity", "customer_number": n, "street": "Storgatan",
               "house_number": house, "postcode": "12345", "town": "Älvstad", "holder_name": format!("Holder {n}")})
    };
    app.put_facilities(
        &token,
        json!([f("1001", "1"), f("1002", "2"), f("1003", "3")]),
    )
    .await;
    app.put_facilities(&other, json!([f("2001", "1")])).await;
    for (facility, phone, email) in [
        ("1001", "070-000 00 01", "pending@example.com"),
        ("1003", "070-000 00 03", "same@example.com"),
    ] {
        let session = app
            .sign_in("alvstad", "electricity", facility, facility)
            .await;
        app.register_phone(&session, phone).await;
        if facility == "1003" {
            app.verify_email(&session, email).await;
        } else {
            app.put_email(&session, email).await;
        }
    }
    let r = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "affected": {"postcodes": ["12345"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let step: Value = r.json().await.unwrap();
    let id = step["outage_id"].as_i64().unwrap();
    assert_eq!(
        app.state.store.directory_contacts_kept(id).await.unwrap(),
        2
    );
    // A customer-service case whose note is sealed.
    let r = app
        .client
        .post(app.url("/api/v1/cases"))
        .bearer_auth(&token)
        .json(&json!({"kind": "erasure", "received_via": "letter", "note": "Letter from the holder of 1001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A link still waiting for the mail server (the dispatcher is off here).
    let alvstad = app
        .state
        .store
        .tenant_by_slug("alvstad")
        .await
        .unwrap()
        .unwrap();
    let facility = app
        .state
        .store
        .facility_by_invoice(alvstad.id, Electricity, &"1001".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let ring = &app.state.keyring;
    let id = 77;
    let waiting = NewDirect {
        id,
        tenant_id: alvstad.id,
        facility_id: facility.id,
        kind: DirectKind::Verification,
        channel: Channel::Email,
        session_hash: None,
        sender: "Test".into(),
        recipient: ring
            .seal_for(alvstad.id, recipient_field(id), "held@example.com")
            .unwrap(),
        limit_key: Some(ring.blind_index(alvstad.id, "direct_limit", "held@example.com")),
        body: ring
            .seal_for(alvstad.id, body_field(id), WAITING_BODY)
            .unwrap(),
        expires_at: i64::MAX,
    };
    assert_eq!(
        app.state.store.enqueue_direct(&waiting, 3).await.unwrap(),
        None
    );
    if legacy {
        let ring = &app.state.keyring;
        for col in SEALED_COLUMNS.iter().filter(|c| c.table != "tenant_keys") {
            let values = app
                .state
                .store
                .sealed_values(col, 0, 1000, Which::All)
                .await
                .unwrap();
            let changes: Vec<_> = values
                .into_iter()
                .map(|v| {
                    let file_sealed = ring.seal(v.field, &ring.open(v.field, &v.sealed).unwrap());
                    (v, file_sealed)
                })
                .collect();
            app.state.store.replace_sealed(col, &changes).await.unwrap();
        }
    }
    app
}

/// What every sealed column holds once opened with the key file as it is now on disk and
/// the tenant keys it unwraps, as (key id, clear value) pairs; a tenant key's value (random)
/// shows as "data key".
async fn opened(app: &TestApp) -> BTreeMap<String, Vec<(i64, String)>> {
    let ring = key_file(app);
    let store: &Store = &app.state.store;
    let mut all = BTreeMap::new();
    for col in &SEALED_COLUMNS {
        let mut values = Vec::new();
        for v in store.sealed_values(col, 0, 1000, Which::All).await.unwrap() {
            if let Some(tenant) = v.sealed.tenant() {
                store.ensure_tenant_key(&ring, tenant).await.unwrap();
            }
            let clear = ring
                .open(v.field, &v.sealed)
                .unwrap_or_else(|e| panic!("{} row {}: {e}", col.name(), v.row));
            let clear = if v.tenant_id.is_some() {
                clear
            } else {
                "data key".to_string()
            };
            values.push((v.sealed.key_id, clear));
        }
        values.sort();
        all.insert(col.name(), values);
    }
    all
}

fn key_file(app: &TestApp) -> Keyring {
    Keyring::load(&app.dir.path().join("keys.json"), None).unwrap()
}

/// The town's values: tenant values sealed with key `data` (a key of the key file, or
/// `tenant_key_id` of their tenant), the tenant keys wrapped with `wrap`.
fn expected(data: impl Fn(i64) -> i64, wrap: i64) -> BTreeMap<String, Vec<(i64, String)>> {
    let on = |tenant: i64, values: &[&str]| -> Vec<(i64, String)> {
        values
            .iter()
            .map(|v| (data(tenant), v.to_string()))
            .collect()
    };
    let holder = |n: &str| {
        serde_json::to_string(&varsel::privacy::Holder {
            name: Some(format!("Holder {n}")),
            ..Default::default()
        })
        .unwrap()
    };
    let mut holders = on(1, &[&holder("1001"), &holder("1002"), &holder("1003")]);
    holders.extend(on(2, &[&holder("2001")]));
    holders.sort();
    BTreeMap::from([
        (
            "cases.note".to_string(),
            on(1, &["Letter from the holder of 1001"]),
        ),
        (
            "directory_contacts.phone".to_string(),
            on(1, &["+46709990002", "+46709990022"]),
        ),
        (
            "subscriptions.email".to_string(),
            on(1, &["pending@example.com", "same@example.com"]),
        ),
        (
            "subscriptions.phone".to_string(),
            on(1, &["+46700000001", "+46700000003"]),
        ),
        ("facilities.holder".to_string(), holders),
        (
            "direct_messages.recipient".to_string(),
            on(1, &["held@example.com"]),
        ),
        ("direct_messages.body".to_string(), on(1, &[WAITING_BODY])),
        (
            "tenant_keys.key".to_string(),
            vec![(wrap, "data key".to_string()); 2],
        ),
    ])
}

/// Sealed with the tenant's own data key.
fn own(tenant: i64) -> i64 {
    tenant_key_id(tenant)
}

/// `varsel ARGS` on the service's data directory and database, as an operator runs it.
fn varsel(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args(args)
        .env_remove("VARSEL_CONFIG")
        .env("VARSEL_DATA_DIR", app.dir.path())
        .env("VARSEL_DATABASE_URL", &app.db.url)
        .env("VARSEL_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn rotation_reaches_every_sealed_value(db: Db) {
    let app = sealed_town(db, true).await;
    assert_eq!(opened(&app).await, expected(|_| 1, 1));

    let out = varsel(&app, &["keys", "rotate", "--retire-old", "--chunk", "1"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("new data key 2; re-sealed 15 values."),
        "{stdout}"
    );
    assert!(stdout.contains("retired 1 old key(s)."), "{stdout}");
    for (col, values) in expected(|_| 1, 1) {
        let n = values.len();
        for i in 1..=n {
            let progress = format!("{col}: {i} of {n} re-sealed");
            assert!(stderr.contains(&progress), "{stderr}");
        }
    }
    assert_eq!(key_file(&app).key_ids(), [2]);
    assert_eq!(opened(&app).await, expected(own, 2));

    // A rotation to key 3 killed after its first chunk: one tenant key is wrapped with key
    // 3, the other with key 2. Running the command again continues to key 3 and adds no key;
    // the tenants' values stay as they are.
    let mut ring = key_file(&app);
    assert_eq!(ring.rotate().unwrap(), 3);
    let store: &Store = &app.state.store;
    let col = &SEALED_COLUMNS[TENANT_KEYS];
    let first = store.sealed_values(col, 0, 1, Which::All).await.unwrap();
    let fresh = ring.seal(
        first[0].field,
        &ring.open(first[0].field, &first[0].sealed).unwrap(),
    );
    assert_eq!(
        store
            .replace_sealed(col, &[(first[0].clone(), fresh)])
            .await
            .unwrap(),
        1
    );
    let out = varsel(&app, &["keys", "rotate", "--retire-old"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("an earlier rotation to key 3 did not finish"),
        "{stderr}"
    );
    assert!(
        stdout.contains("continued the rotation to data key 3; re-sealed 1 values."),
        "{stdout}"
    );
    assert_eq!(key_file(&app).key_ids(), [3]);
    assert_eq!(opened(&app).await, expected(own, 3));
    app.finish().await;
}

async fn retiring_waits_for_every_value(db: Db) {
    let app = sealed_town(db, true).await;
    let store: &Store = &app.state.store;

    // A new key, nothing re-sealed yet: every old value keeps key 1 in the file.
    let mut ring = key_file(&app);
    ring.rotate().unwrap();
    let refused = varsel::rotation::retire_old_keys(store, &mut ring)
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "subscriptions.phone: 2",
        "subscriptions.email: 2",
        "directory_contacts.phone: 2",
        "facilities.holder: 4",
        "tenant_keys.key: 2",
        "nothing was dropped",
    ] {
        assert!(refused.contains(part), "{refused}");
    }
    assert_eq!(key_file(&app).key_ids(), [1, 2]);
    assert_eq!(opened(&app).await, expected(|_| 1, 1));

    // One value no key opens (here: tampered with). Everything else moves on (values to
    // their tenant's key, tenant keys to key 2), that one stays on key 1, and key 1 is kept.
    let col = &SEALED_COLUMNS[0];
    let original = store
        .sealed_values(col, 0, 1, Which::All)
        .await
        .unwrap()
        .remove(0);
    let mut broken = original.sealed.clone();
    let last = broken.ciphertext.len() - 1;
    broken.ciphertext[last] ^= 1;
    store
        .replace_sealed(col, &[(original.clone(), broken.clone())])
        .await
        .unwrap();
    let out = varsel(&app, &["keys", "rotate", "--retire-old"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("continued the rotation to data key 2; re-sealed 14 values."),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot re-seal subscriptions.phone row {} (sealed with key 1)",
            original.row
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "not retiring the old keys: values are still sealed with them (subscriptions.phone: 1)"
        ),
        "{stderr}"
    );
    assert!(!stdout.contains("retired"), "{stdout}");
    assert_eq!(key_file(&app).key_ids(), [1, 2]);

    // Put right, the next run finishes the job.
    let tampered = SealedValue {
        sealed: broken,
        ..original.clone()
    };
    store
        .replace_sealed(col, &[(tampered, original.sealed.clone())])
        .await
        .unwrap();
    let out = varsel(&app, &["keys", "rotate", "--retire-old"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("re-sealed 1 values"), "{stdout}");
    assert_eq!(key_file(&app).key_ids(), [2]);
    assert_eq!(opened(&app).await, expected(own, 2));
    app.finish().await;
}

/// Deleting a tenant deletes its data key with its rows; a copy of one of its sealed values
/// (a backup, a replica) then opens only with a copy of the wrapped key taken before, and
/// no more once the key-file key that wrapped it is retired. The other tenant keeps all.
async fn deleting_a_tenant_shreds_its_data(db: Db) {
    let app = sealed_town(db, false).await;
    assert_eq!(opened(&app).await, expected(own, 1));
    let store: &Store = &app.state.store;
    let alvstad = store.tenant_by_slug("alvstad").await.unwrap().unwrap();
    let backup_key = store.wrapped_tenant_key(alvstad.id).await.unwrap().unwrap();
    let holders = store
        .sealed_values(&SEALED_COLUMNS[3], 0, 1000, Which::All)
        .await
        .unwrap();
    let backup_value = holders
        .iter()
        .find(|v| v.tenant_id == Some(alvstad.id))
        .unwrap()
        .clone();

    let out = varsel(&app, &["tenant", "delete", "alvstad"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Nothing was deleted"), "{stdout}");
    assert!(store.tenant_by_slug("alvstad").await.unwrap().is_some());

    let out = varsel(&app, &["tenant", "delete", "alvstad", "--shred"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("Deleted tenant alvstad (alvstad Energi) with its 3 facilities"),
        "{stdout}"
    );
    assert!(store.tenant_by_slug("alvstad").await.unwrap().is_none());
    // The running service may know the tenant a few seconds longer (household lookups are
    // cached, `Store::household_tenant`), but nothing of it signs in any more.
    let resp = app
        .client
        .post(app.url("/api/v1/registration/session"))
        .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": "1001", "facility_number": "1001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(store.wrapped_tenant_key(alvstad.id).await.unwrap(), None);
    // Only the other tenant's holder and data key are left.
    let mut left = expected(own, 1);
    for (col, values) in left.iter_mut() {
        match col.as_str() {
            "facilities.holder" => values.retain(|(key, _)| *key == own(2)),
            "tenant_keys.key" => values.truncate(1),
            _ => values.clear(),
        }
    }
    assert_eq!(opened(&app).await, left);

    // A keyring as a fresh start has it cannot open the copied value, nor get the key back.
    let ring = key_file(&app);
    assert!(store.ensure_tenant_key(&ring, alvstad.id).await.is_err());
    assert!(ring.open(backup_value.field, &backup_value.sealed).is_err());
    // The copied wrapped key still opens it while the key file holds key 1 ...
    ring.install_tenant_key(alvstad.id, &backup_key).unwrap();
    let holder_1001 = expected(own, 1)["facilities.holder"]
        .iter()
        .find(|(key, _)| *key == own(alvstad.id))
        .unwrap()
        .1
        .clone();
    assert_eq!(
        ring.open(backup_value.field, &backup_value.sealed).unwrap(),
        holder_1001
    );
    // ... and not once key 1 is retired.
    let out = varsel(&app, &["keys", "rotate", "--retire-old"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let ring = key_file(&app);
    assert_eq!(ring.key_ids(), [2]);
    assert!(ring.install_tenant_key(alvstad.id, &backup_key).is_err());
    assert!(ring.open(backup_value.field, &backup_value.sealed).is_err());
    let mut rewrapped = left;
    rewrapped.insert("tenant_keys.key".into(), vec![(2, "data key".into())]);
    assert_eq!(opened(&app).await, rewrapped);
    app.finish().await;
}

/// Every `<column>_ct` in the schema is a sealed column rotation knows: a new one left off
/// the list would stay on a key that `--retire-old` then drops.
/// The household lookup keeps tenants briefly; one this instance deletes is gone from it at
/// once, and a new tenant under the same slug is the one found.
async fn household_lookups_forget_a_deleted_tenant(db: Db) {
    let app = TestApp::spawn(db).await;
    let store: &Store = &app.state.store;
    let (first, _) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    assert_eq!(
        store
            .household_tenant("alvstad")
            .await
            .unwrap()
            .map(|t| t.id),
        Some(first.id)
    );
    assert!(store.household_tenant("nowhere").await.unwrap().is_none());
    let actor = varsel::domain::audit::Actor::cli("test");
    assert!(store.delete_tenant(first.id, &actor).await.unwrap());
    assert!(store.household_tenant("alvstad").await.unwrap().is_none());
    let (second, _) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    assert_ne!(second.id, first.id);
    assert_eq!(
        store
            .household_tenant("alvstad")
            .await
            .unwrap()
            .map(|t| t.id),
        Some(second.id)
    );
    app.finish().await;
}

async fn rotation_knows_every_sealed_column(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut in_schema: Vec<String> = match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            let names = sqlx::query_scalar(
                "SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND p.name LIKE '%\\_ct' ESCAPE '\\'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            pool.close().await;
            names
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            let names = sqlx::query_scalar(
                "SELECT table_name || '.' || column_name FROM information_schema.columns
                 WHERE table_schema = 'public' AND column_name LIKE '%\\_ct' ESCAPE '\\'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            pool.close().await;
            names
        }
    };
    in_schema.sort();
    let mut known: Vec<String> = SEALED_COLUMNS
        .iter()
        .map(|c| format!("{}_ct", c.name()))
        .collect();
    known.sort();
    assert_eq!(in_schema, known);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation_reaches_every_sealed_value() {
    rotation_reaches_every_sealed_value(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_reaches_every_sealed_value() {
    rotation_reaches_every_sealed_value(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_retiring_waits_for_every_value() {
    retiring_waits_for_every_value(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retiring_waits_for_every_value() {
    retiring_waits_for_every_value(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_deleting_a_tenant_shreds_its_data() {
    deleting_a_tenant_shreds_its_data(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_deleting_a_tenant_shreds_its_data() {
    deleting_a_tenant_shreds_its_data(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_household_lookups_forget_a_deleted_tenant() {
    household_lookups_forget_a_deleted_tenant(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_household_lookups_forget_a_deleted_tenant() {
    household_lookups_forget_a_deleted_tenant(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation_knows_every_sealed_column() {
    rotation_knows_every_sealed_column(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_knows_every_sealed_column() {
    rotation_knows_every_sealed_column(Db::Postgres).await;
}
