//! The records of processing and the public privacy notice come from the configuration:
//! the page a household reads names the configured processors, countries and periods in
//! each language, with a version and a date that hold until the content changes.

mod common;

use common::{Db, TestApp};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

const CONFIG: &str = r#"
smtp_url = "smtp://varsel:pw@smtp.posten.example:587"
[smtp]
processor = "Postverket Mail AB"
processor_country = "SE"
[sms]
provider = "twilio"
username = "AC123"
password = "token"
[sms.secondary]
provider = "46elks"
username = "u"
password = "p"
[directory]
kind = "http"
url = "https://katalog.example.no/lookup"
processor = "Katalogtjenesten AS"
processor_country = "NO"
[retention]
notice_days = 45
[outages]
directory_days = 5
[registration]
verification_ttl_hours = 12
"#;

/// The page's status and its text with the template's HTML escapes undone, to compare
/// with what a reader sees.
async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app.client.get(app.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let text = [
        ("&#x2f;", "/"),
        ("&#x27;", "'"),
        ("&quot;", "\""),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text, |t, (from, to)| t.replace(from, to));
    (status, text)
}

/// The text between `<p id="notice-version">` and its end.
fn version_line(html: &str) -> &str {
    let start = html.find("id=\"notice-version\">").expect("a version line") + 20;
    &html[start..start + html[start..].find('<').unwrap()]
}

async fn notice_names_the_configured_processors_and_periods(db: Db) {
    let app = TestApp::spawn_full(db, &[], CONFIG).await;
    let (tenant, _) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let record = varsel::privacy::record::build(&app.state.config, &tenant);
    let version = record.version();

    let expect = [
        (
            "sv",
            [
                "Integritetsmeddelande för avbrottsavisering",
                "US, utanför EU/EES",
                "EU-kommissionens standardavtalsklausuler",
                "SE, inom EU/EES",
                "avidentifieras efter 45 dagar",
                "raderas 5 dagar efter",
                "efter 12 timmar",
            ],
        ),
        (
            "nb",
            [
                "Personvernerklæring for avbruddsvarsling",
                "US, utenfor EU/EØS",
                "EU-kommisjonens standardavtaler",
                "NO, innenfor EU/EØS",
                "anonymiseres etter 45 dager",
                "slettes 5 dager etter",
                "etter 12 timer",
            ],
        ),
        (
            "en",
            [
                "Privacy notice for outage notices",
                "US, outside the EU/EEA",
                "the EU-US Data Privacy Framework",
                "SE, inside the EU/EEA",
                "made anonymous after 45 days",
                "erased 5 days after",
                "after 12 hours",
            ],
        ),
    ];
    let mut lines = Vec::new();
    for (lang, wants) in expect {
        let (status, html) = page(&app, &format!("/t/alvstad/privacy?lang={lang}")).await;
        assert_eq!(status, 200, "{lang}: {html}");
        assert!(html.contains(&format!("<html lang=\"{lang}\">")), "{lang}");
        for want in wants.iter().chain(&[
            "Twilio Inc.",
            "46elks AB",
            "Postverket Mail AB",
            "Katalogtjenesten AS",
            "privacy@example.com",
            "alvstad Energi",
        ]) {
            assert!(html.contains(want), "{lang}: {want:?} missing from\n{html}");
        }
        // Nothing of the SMTP URL's credentials, and no untranslated key, reaches the page.
        assert!(!html.contains("varsel:pw"), "{lang}");
        assert!(!html.contains("pn_"), "{lang}");
        let line = version_line(&html).to_string();
        assert!(line.contains(&version), "{lang}: {line}");
        lines.push(line);
    }
    // The date is the one the version was first produced on, whichever language asks.
    let date = |l: &str| {
        l.rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_string()
    };
    assert!(
        lines.iter().all(|l| date(l) == date(&lines[0])),
        "{lines:?}"
    );

    // Reading again does not move the date: it is stored with the version.
    let first = app
        .state
        .store
        .privacy_version_date(tenant.id, &version, varsel::store::now() + 86_400 * 30)
        .await
        .unwrap();
    assert!(first <= varsel::store::now());
    let (_, again) = page(&app, "/t/alvstad/privacy?lang=en").await;
    assert_eq!(version_line(&again), lines[2]);

    // Every tenant page links to it.
    let (_, signin) = page(&app, "/t/alvstad?lang=en").await;
    assert!(signin.contains("href=\"/t/alvstad/privacy\""), "{signin}");
    let (status, _) = page(&app, "/t/nobody/privacy").await;
    assert_eq!(status, 404);
    app.finish().await;
}

/// A different configuration is a different version with its own date; going back to the
/// first configuration finds the first date again.
async fn a_new_configuration_is_a_new_version(db: Db) {
    let app = TestApp::spawn_full(db, &[], CONFIG).await;
    let (tenant, _) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let store = &app.state.store;
    let mut config = (*app.state.config).clone();
    let before = varsel::privacy::published(store, &config, &tenant)
        .await
        .unwrap();
    config.retention.notice_days = 30;
    let after = varsel::privacy::published(store, &config, &tenant)
        .await
        .unwrap();
    assert_ne!(before.version, after.version);
    let kept = |p: &varsel::privacy::record::Published| {
        p.record
            .retention
            .iter()
            .find(|r| r.code == "notice_history")
            .and_then(|r| r.period)
            .map(|p| p.amount)
    };
    assert_eq!((kept(&before), kept(&after)), (Some(45), Some(30)));
    let later = varsel::store::now() + 86_400;
    assert_eq!(
        store
            .privacy_version_date(tenant.id, &before.version, later)
            .await
            .unwrap(),
        before.first_produced_at
    );
    // Versions are per tenant: another tenant's first view dates its own.
    let (other, _) = app
        .tenant("norrkraft", &[Electricity], &[Scope::Admin])
        .await;
    assert_eq!(
        store
            .privacy_version_date(other.id, &before.version, later)
            .await
            .unwrap(),
        later
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_notice_names_the_configured_processors_and_periods() {
    notice_names_the_configured_processors_and_periods(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notice_names_the_configured_processors_and_periods() {
    notice_names_the_configured_processors_and_periods(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_new_configuration_is_a_new_version() {
    a_new_configuration_is_a_new_version(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_new_configuration_is_a_new_version() {
    a_new_configuration_is_a_new_version(Db::Postgres).await;
}
