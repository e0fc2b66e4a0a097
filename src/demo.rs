//! Demo data: a fictional town, Älvstad, with about 5,000 facilities over electricity and
//! district heating, a small grid, and a few households already registered. Generated from a
//! fixed seed so every demo shows the same town. Phone numbers are from the range the Swedish
//! regulator reserves for fiction (070-174 06 05 to 070-174 06 99); e-mails use example.com.

use crate::crypto::{new_secret, secret_hash};
use crate::domain::audit::Actor;
use crate::domain::email::Email;
use crate::domain::facility::RawFacility;
use crate::domain::grid::GridNode;
use crate::domain::language::Language;
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::scope::Scope;
use crate::domain::sender_id::SenderId;
use crate::domain::service::ServiceKind;
use crate::registration::{self, Session};
use crate::state::AppState;
use crate::store::registration::email_field;
use crate::store::{NewTenant, SealedContact};

pub const DEMO_SLUG: &str = "alvstad";

const STREETS: [&str; 25] = [
    "Storgatan",
    "Kyrkogatan",
    "Älvvägen",
    "Skolgatan",
    "Björkvägen",
    "Granvägen",
    "Tallstigen",
    "Forsgatan",
    "Stationsvägen",
    "Hamngatan",
    "Ängsvägen",
    "Bruksgatan",
    "Lärkvägen",
    "Sågverksvägen",
    "Norra Esplanaden",
    "Södra Esplanaden",
    "Kvarnbacken",
    "Myrvägen",
    "Fjällgatan",
    "Rönnvägen",
    "Åsgatan",
    "Strandvägen",
    "Tjärnvägen",
    "Mossvägen",
    "Högbacken",
];

/// What `varsel demo` made, for the operator to try things with.
pub struct DemoInfo {
    pub token: String,
    pub created: bool,
    pub facilities: i64,
    /// A few facilities to sign in with, those below the README's feeder first.
    pub examples: Vec<Example>,
}

/// An invoice pair to sign in with, and where the facility hangs in the grid, so whoever
/// tries the demo can tell which declared outage reaches it.
pub struct Example {
    pub service: ServiceKind,
    pub customer_number: String,
    pub facility_number: String,
    pub address: String,
    /// The facility's grid node and the node above it, e.g. ("ALV-N01", "ALV-F1").
    pub grid: (String, String),
}

/// The feeder the README's quick start takes down.
pub const QUICK_START_FEEDER: &str = "ALV-F1";

/// Indices into `facilities()` of the examples: two electricity connections below
/// `QUICK_START_FEEDER` that no demo household has registered (so the number registered
/// there is the only one), then a district-heating one.
const EXAMPLE_ROWS: [usize; 3] = [45, 2000, 3_500 + 42];

/// A tiny deterministic generator: the demo must look the same every time, and a crate for
/// this would be more code than the generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn electricity_number(i: usize) -> String {
    format!("7359991{:011}", i + 1)
}

fn heating_number(i: usize) -> String {
    format!("FV-{:06}", i + 1)
}

fn customer_number(i: usize) -> String {
    format!("{}", 100_001 + i)
}

/// The demo town's facilities as CIS rows: 3,500 electricity connections, of which the
/// first 1,500 also take district heating (same holder, same address).
pub fn facilities() -> Vec<RawFacility> {
    let mut rng = Lcg(0x5EED_A1B5);
    let mut out = Vec::with_capacity(5_000);
    let mut heating = Vec::with_capacity(1_500);
    for i in 0..3_500usize {
        let street_ix = i % STREETS.len();
        let number = i / STREETS.len() + 1;
        let lat = 62.39 + (street_ix as f64) * 0.002 + (rng.below(1000) as f64) * 0.000_002;
        let lon = 17.28 + (number as f64) * 0.0007 + (rng.below(1000) as f64) * 0.000_002;
        let postcode = format!("{} {:02}", 863, 30 + street_ix % 5 * 2);
        let node = format!("ALV-N{:02}", street_ix % 20 + 1);
        let entrance = number
            .is_multiple_of(7)
            .then(|| ["A", "B", "C"][rng.below(3) as usize].to_string());
        let language = if rng.below(20) == 0 { "en" } else { "sv" };
        let base = RawFacility {
            facility_number: Some(electricity_number(i)),
            service: Some("electricity".into()),
            customer_number: Some(customer_number(i)),
            street: Some(STREETS[street_ix].into()),
            house_number: Some(number.to_string()),
            entrance,
            postcode: Some(postcode.clone()),
            town: Some("Älvstad".into()),
            latitude: Some(format!("{lat:.6}")),
            longitude: Some(format!("{lon:.6}")),
            grid_node: Some(node),
            holder_name: Some(format!("Hushåll {}", i + 1)),
            postal_street: Some(format!("{} {number}", STREETS[street_ix])),
            postal_postcode: Some(postcode),
            postal_town: Some("Älvstad".into()),
            postal_country: None,
            language: Some(language.into()),
        };
        if i < 1_500 {
            heating.push(RawFacility {
                facility_number: Some(heating_number(i)),
                service: Some("district_heating".into()),
                grid_node: Some(format!("ALV-DH{}", street_ix % 4 + 1)),
                ..base.clone()
            });
        }
        out.push(base);
    }
    out.extend(heating);
    out
}

/// The grid: one primary substation, four feeders, twenty secondary substations; and the
/// district-heating network's plant with four branches. It is the example file of the grid
/// import format, loaded through that import, so the documented example always loads.
pub fn grid_nodes() -> anyhow::Result<Vec<GridNode>> {
    let (rows, bad) = crate::import::grid::read(
        crate::import::Format::Csv,
        &include_bytes!("../docs/examples/grid-nodes.csv")[..],
    )?;
    anyhow::ensure!(bad.is_empty(), "docs/examples/grid-nodes.csv: {bad:?}");
    crate::domain::grid::forest(rows)
        .map_err(|e| anyhow::anyhow!("docs/examples/grid-nodes.csv: {e:?}"))
}

/// Creates the demo tenant and town if missing, and a fresh admin token either way.
pub async fn seed(state: &AppState) -> anyhow::Result<DemoInfo> {
    let store = &state.store;
    let (tenant, created) = match store.tenant_by_slug(DEMO_SLUG).await? {
        Some(t) => (t, false),
        None => {
            let tenant = store
                .create_tenant(
                    &NewTenant {
                        slug: DEMO_SLUG.into(),
                        name: "Älvstad Energi".into(),
                        sms_sender_id: SenderId::parse("AlvstadEn")?,
                        languages: vec![Language::Sv, Language::En, Language::Nb],
                        time_zone: "Europe/Stockholm".into(),
                        privacy_contact: "dataskydd@alvstad-energi.example".into(),
                        services: vec![ServiceKind::Electricity, ServiceKind::DistrictHeating],
                    },
                    &Actor::system("demo"),
                )
                .await?;
            store
                .replace_grid(tenant.id, &grid_nodes()?, &|_| {})
                .await?;
            let records = facilities()
                .iter()
                .map(|r| {
                    r.validate(Language::Sv)
                        .map_err(|e| anyhow::anyhow!("demo row invalid: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            store
                .upsert_facilities(
                    &state.keyring,
                    tenant.id,
                    &records,
                    "demo",
                    &Actor::system("demo"),
                    &|_| {},
                )
                .await?;
            register_households(state, tenant.id).await?;
            (tenant, true)
        }
    };
    // The same token every start, derived from this data directory's keys, so a restart
    // neither mints another admin token nor makes the one the operator exported stale. Once
    // revoked, a fresh random one is made instead (the derived one stays dead).
    let derived = format!(
        "vst_demo_{}",
        crate::crypto::hex_encode(&state.keyring.blind_index(tenant.id, "demo-token", "v1"))
    );
    let token = if store.token_by_hash(&secret_hash(&derived)).await?.is_some() {
        derived
    } else {
        let token = if store.token_hash_known(&secret_hash(&derived)).await? {
            new_secret("vst")
        } else {
            derived
        };
        store
            .create_token(
                tenant.id,
                "demo admin",
                &[Scope::Admin],
                &secret_hash(&token),
                None,
                &Actor::system("demo"),
            )
            .await?;
        token
    };
    Ok(DemoInfo {
        token,
        created,
        facilities: store.count_facilities(tenant.id).await?,
        examples: examples()?,
    })
}

fn examples() -> anyhow::Result<Vec<Example>> {
    let rows = facilities();
    let nodes = grid_nodes()?;
    Ok(EXAMPLE_ROWS
        .iter()
        .filter_map(|&i| {
            let r = rows.get(i)?;
            let node = r.grid_node.clone()?;
            let parent = nodes
                .iter()
                .find(|n| n.node_id == node)?
                .parent_id
                .clone()?;
            Some(Example {
                service: r.service.as_deref()?.parse().ok()?,
                customer_number: r.customer_number.clone()?,
                facility_number: r.facility_number.clone()?,
                address: format!("{} {}", r.street.as_deref()?, r.house_number.as_deref()?),
                grid: (node, parent),
            })
        })
        .collect())
}

/// The facility indices `register_households` gives a phone number.
fn registered_rows() -> impl Iterator<Item = usize> {
    (0..30usize).map(|k| k * 97 % 3_500)
}

/// Thirty households with a mobile number, ten of them also with a verified e-mail; they go
/// through the same sealing and verification as real registrations.
async fn register_households(state: &AppState, tenant_id: i64) -> anyhow::Result<()> {
    for (k, i) in registered_rows().enumerate() {
        let Some(f) = state
            .store
            .facility_by_invoice(
                tenant_id,
                ServiceKind::Electricity,
                &crate::domain::ids::FacilityNumber::parse(&electricity_number(i))?,
            )
            .await?
        else {
            anyhow::bail!("demo facility {i} is missing");
        };
        let session = Session::system(f.id, tenant_id);
        let phone = PhoneNumber::parse(&format!("070-174 06 {:02}", 5 + k * 3), Region::Se)?;
        registration::set_phone(state, session, &phone).await?;
        if k < 10 {
            let email = Email::parse(&format!("hushall{}@example.com", i + 1))?;
            state
                .store
                .ensure_tenant_key(&state.keyring, tenant_id)
                .await?;
            let sealed = SealedContact {
                sealed: state
                    .keyring
                    .seal_for(tenant_id, email_field(f.id), email.as_str())?,
                bidx: state
                    .keyring
                    .blind_index(tenant_id, "email", &email.normalized()),
            };
            let link = new_secret("vsv");
            state
                .store
                .set_email_pending(
                    tenant_id,
                    f.id,
                    &sealed,
                    &secret_hash(&link),
                    crate::store::now() + 3600,
                    &Actor::household(f.id),
                    None,
                )
                .await?;
            registration::verify(state, &link).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_town_is_valid_and_has_five_thousand_facilities() {
        let rows = facilities();
        assert_eq!(rows.len(), 5_000);
        for r in &rows {
            r.validate(Language::Sv).unwrap();
        }
        let nodes = grid_nodes().unwrap();
        for r in &rows {
            let node = r.grid_node.as_deref().unwrap();
            assert!(nodes.iter().any(|n| n.node_id == node), "{node}");
        }
    }

    #[test]
    fn the_first_examples_are_unregistered_facilities_below_the_quick_start_feeder() {
        let examples = examples().unwrap();
        assert_eq!(
            examples.len(),
            EXAMPLE_ROWS.len(),
            "every example row is usable"
        );
        let below_feeder: Vec<&Example> = examples
            .iter()
            .take_while(|e| e.grid.1 == QUICK_START_FEEDER)
            .collect();
        assert_eq!(below_feeder.len(), 2);
        let registered: Vec<String> = registered_rows().map(electricity_number).collect();
        for e in below_feeder {
            assert_eq!(e.service, ServiceKind::Electricity);
            assert!(
                !registered.contains(&e.facility_number),
                "{}",
                e.facility_number
            );
        }
        assert_eq!(examples[2].service, ServiceKind::DistrictHeating);
    }
}
