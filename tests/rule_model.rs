//! The database does the selection and the recipient rule at storm scale; the pure
//! functions in `domain::selector` and `domain::recipients` are the rules as written. This
//! test builds small random towns (street names in odd case and spacing, house numbers with
//! letters, a grid with a cycle, coordinates, shared phones and e-mails, a directory that
//! lists registered numbers too) and checks that, for random selectors, the preview and the
//! declaration reach exactly what the pure rules say, on both stores.

mod common;

use std::collections::HashMap;

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::domain::email::Email;
use varsel::domain::language::Language;
use varsel::domain::phone::{PhoneNumber, Region};
use varsel::domain::recipients::{AddressKey, AffectedFacility, Channel, Source, recipients};
use varsel::domain::scope::Scope;
use varsel::domain::selector::{FacilityPoint, SelectorSpec, below};
use varsel::domain::service::ServiceKind::Electricity;
use varsel::store::SealedContact;
use varsel::store::registration::{BulkSubscription, email_field, phone_field};

/// A small deterministic generator, so a failing case can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const STREETS: [&str; 4] = ["Storgatan", " storgatan", "Kyrkvägen", "ÄNGSVÄGEN"];
const HOUSES: [&str; 6] = ["1", "2", "2A", "3 B", "4", "15"];
const POSTCODES: [&str; 2] = ["12345", "12346"];
/// A forest of two trees: a load refuses cycles, so the walk never meets one.
const NODES: [(&str, Option<&str>); 5] = [
    ("T1", None),
    ("N1", Some("T1")),
    ("N2", Some("T1")),
    ("N3", None),
    ("N4", Some("N3")),
];

struct Town {
    facilities: Vec<Value>,
    phones: HashMap<usize, String>,
    emails: HashMap<usize, String>,
    directory: String,
}

fn town(rng: &mut Rng, n: usize) -> Town {
    let mut facilities = Vec::new();
    let mut phones = HashMap::new();
    let mut emails = HashMap::new();
    for i in 0..n {
        let mut f = json!({"facility_number": format!("{}", 100 + i), "service": "electricity",
            "customer_number": format!("c{i}"), "street": rng.pick(&STREETS), "house_number": rng.pick(&HOUSES),
            "postcode": rng.pick(&POSTCODES), "town": "Älvstad"});
        if rng.below(4) > 0 {
            f["grid_node"] = json!(rng.pick(&NODES).0);
        }
        if rng.below(3) > 0 {
            f["latitude"] = json!(63.0 + rng.below(100) as f64 / 1000.0);
            f["longitude"] = json!(17.0 + rng.below(100) as f64 / 1000.0);
        }
        facilities.push(f);
        if rng.below(2) == 0 {
            phones.insert(i, format!("+467000000{:02}", rng.below(12)));
        }
        if rng.below(3) == 0 {
            emails.insert(i, format!("p{}@example.com", rng.below(6)));
        }
    }
    let mut directory = String::from("street,house_number,postcode,phone\n");
    for _ in 0..12 {
        directory.push_str(&format!(
            "{},{},{},+467000000{:02}\n",
            rng.pick(&STREETS),
            rng.pick(&HOUSES),
            rng.pick(&POSTCODES),
            rng.below(16)
        ));
    }
    Town {
        facilities,
        phones,
        emails,
        directory,
    }
}

fn selector(rng: &mut Rng, n: usize) -> Value {
    let mut s = json!({});
    // At least one part; each part with a fair chance.
    while s.as_object().unwrap().is_empty() {
        if rng.below(3) == 0 {
            let k = 1 + rng.below(4);
            s["facility_numbers"] = json!(
                (0..k)
                    .map(|_| format!("{}", 100 + rng.below(n as u64)))
                    .collect::<Vec<_>>()
            );
        }
        if rng.below(4) == 0 {
            s["postcodes"] = json!([rng.pick(&POSTCODES)]);
        }
        if rng.below(3) == 0 {
            s["grid_nodes"] = json!([rng.pick(&NODES).0]);
        }
        if rng.below(3) == 0 {
            let from = rng.below(4) as u32;
            let mut range = json!({"street": rng.pick(&STREETS), "from": from, "to": from + rng.below(10) as u32,
                "side": *rng.pick(&["both", "odd", "even"])});
            if rng.below(2) == 0 {
                range["postcode"] = json!(rng.pick(&POSTCODES));
            }
            s["streets"] = json!([range]);
        }
        if rng.below(4) == 0 {
            let (x, y) = (
                17.0 + rng.below(50) as f64 / 1000.0,
                63.0 + rng.below(50) as f64 / 1000.0,
            );
            s["area"] = json!({"type": "Polygon", "coordinates": [[[x, y], [x + 0.05, y], [x + 0.05, y + 0.05], [x, y + 0.05], [x, y]]]});
        }
    }
    s
}

/// What the pure rules say a declaration reaches: (facilities, SMS recipients, e-mail
/// recipients, directory recipients).
/// (facilities, registered mobiles, e-mails, addresses to look up in the directory, notices).
fn expected(t: &Town, spec: &Value) -> (usize, usize, usize, usize, usize) {
    let spec: SelectorSpec = serde_json::from_value(spec.clone()).unwrap();
    let sel = spec.validate().unwrap();
    let topology: HashMap<String, Option<String>> = NODES
        .iter()
        .map(|(a, b)| (a.to_string(), b.map(String::from)))
        .collect();
    let nodes = below(sel.grid_nodes(), &topology);
    let mut affected = Vec::new();
    for (i, f) in t.facilities.iter().enumerate() {
        let coordinates = f["latitude"].as_f64().zip(f["longitude"].as_f64());
        let postcode = f["postcode"].as_str().unwrap();
        let point = FacilityPoint {
            facility_number: f["facility_number"].as_str().unwrap(),
            street: f["street"].as_str().unwrap().trim(),
            house_number: f["house_number"].as_str().unwrap(),
            postcode,
            grid_node: f["grid_node"].as_str(),
            coordinates,
        };
        if sel.matches(&point, &nodes) {
            affected.push(AffectedFacility {
                facility_id: i as i64,
                address: AddressKey::new(point.street, point.house_number, postcode),
                language: Language::Sv,
                phone: t
                    .phones
                    .get(&i)
                    .map(|p| PhoneNumber::parse(p, Region::Se).unwrap()),
                verified_email: t.emails.get(&i).map(|e| Email::parse(e).unwrap()),
            });
        }
    }
    let directory = varsel::directory::FileDirectory::parse(t.directory.as_bytes())
        .unwrap()
        .0;
    let people = recipients(&affected, &directory);
    let lookups: std::collections::HashSet<&AddressKey> = affected
        .iter()
        .filter(|f| f.phone.is_none())
        .map(|f| &f.address)
        .collect();
    (
        affected.len(),
        people
            .iter()
            .filter(|r| r.channel == Channel::Sms && r.source != Source::Directory)
            .count(),
        people
            .iter()
            .filter(|r| r.channel == Channel::Email)
            .count(),
        lookups.len(),
        people.len(),
    )
}

async fn the_database_reaches_what_the_rules_say(db: Db) {
    // (cases compared, of which with directory recipients, with shared phones)
    let mut seen = (0, 0, 0);
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let t = town(&mut rng, 30);
        let dir = common::TempDir::new();
        let path = dir.path().join("directory.csv");
        std::fs::write(&path, &t.directory).unwrap();
        let toml = format!(
            "[dispatch]\nenabled = false\n[directory]\nkind = \"file\"\nfile = \"{}\"\n",
            path.display()
        );
        let app = TestApp::spawn_full(db, &[], &toml).await;
        let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
        app.put_facilities(&token, Value::Array(t.facilities.clone()))
            .await;
        app.put_grid(&token, &NODES).await;
        let ring = &app.state.keyring;
        let mut subs = Vec::new();
        for i in 0..t.facilities.len() {
            let (phone, email) = (t.phones.get(&i), t.emails.get(&i));
            if phone.is_none() && email.is_none() {
                continue;
            }
            let id = app
                .state
                .store
                .facility_by_invoice(
                    tenant.id,
                    Electricity,
                    &format!("{}", 100 + i).parse().unwrap(),
                )
                .await
                .unwrap()
                .unwrap()
                .id;
            subs.push(BulkSubscription {
                facility_id: id,
                phone: phone.map(|p| SealedContact {
                    sealed: ring.seal(phone_field(id), p),
                    bidx: ring.blind_index(tenant.id, "phone", p),
                }),
                verified_email: email.map(|e| SealedContact {
                    sealed: ring.seal(email_field(id), e),
                    bidx: ring.blind_index(tenant.id, "email", e),
                }),
            });
        }
        app.state
            .store
            .insert_subscriptions(tenant.id, &subs)
            .await
            .unwrap();
        for round in 0..4 {
            let spec = selector(&mut rng, t.facilities.len());
            let (facilities, sms, email, lookups, notices) = expected(&t, &spec);
            if facilities > 0 {
                seen.0 += 1;
                seen.1 += usize::from(notices > sms + email);
                seen.2 += usize::from(sms + email < facilities);
            }
            let body = json!({"service": "electricity", "affected": spec});
            let case = format!("seed {seed} round {round}: {spec}");
            let preview = app
                .client
                .post(app.url("/api/v1/outages/preview"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            if facilities == 0 {
                assert_eq!(preview.status(), 422, "{case}");
                continue;
            }
            let preview: Value = preview.json().await.unwrap();
            assert_eq!(
                (
                    &preview["facilities"],
                    &preview["sms_recipients"],
                    &preview["email_recipients"],
                    &preview["directory_addresses"]
                ),
                (
                    &json!(facilities),
                    &json!(sms),
                    &json!(email),
                    &json!(lookups)
                ),
                "{case}"
            );
            let declared: Value = app
                .client
                .post(app.url("/api/v1/outages"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(declared["step"]["notices"], json!(notices), "{case}");
            let id = declared["outage_id"].as_i64().unwrap();
            let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
            assert_eq!(outage["affected_facilities"], json!(facilities), "{case}");
        }
        app.finish().await;
    }
    // The random towns must exercise the rule, not just agree on empty sets.
    assert!(seen.0 >= 25 && seen.1 >= 5 && seen.2 >= 5, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_database_reaches_what_the_rules_say() {
    the_database_reaches_what_the_rules_say(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_database_reaches_what_the_rules_say() {
    the_database_reaches_what_the_rules_say(Db::Postgres).await;
}
