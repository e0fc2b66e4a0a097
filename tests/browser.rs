//! The subscriber pages in a real headless browser (Debian chromium + chromedriver), with
//! JavaScript off: a household signs in, registers a number and an e-mail, and confirms it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Db, TempDir, TestApp, find_link};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::{DistrictHeating, Electricity};

struct Browser {
    client: Client,
    driver: tokio::process::Child,
    _profile: TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{driver_bin} is needed for the browser tests (apt-get install chromium chromium-driver): {e}"));
        let profile = TempDir::new();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--disable-quic", format!("--user-data-dir={}", profile.path().display())],
                "prefs": {"profile.managed_default_content_settings.javascript": 2}
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let mut last_err = None;
        for _ in 0..100 {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        panic!("could not start a browser session: {last_err:?}");
    }

    /// Waits (up to 15 s) until the element's text contains `want`: a click that submits a
    /// form returns before the next page has loaded.
    async fn expect(&self, css: &str, want: &str) {
        let mut last = String::new();
        for _ in 0..150 {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if text.contains(want) {
                    return;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self.client.current_url().await.map(|u| u.to_string());
        let page = match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        panic!("{css} never showed {want:?}; last seen {last:?} at {url:?}, page: {page}");
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

async fn household_registers_in_the_browser(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, token) = app
        .tenant("alvstad", &[Electricity, DistrictHeating], &[Scope::Cis])
        .await;
    app.put_facilities(
        &token,
        json!([{"facility_number": "FV-000042", "service": "district_heating", "customer_number": "100042",
                "street": "Kyrkogatan", "house_number": "4", "entrance": "B", "postcode": "86330", "town": "Älvstad"}]),
    )
    .await;
    let b = Browser::start().await;

    b.client.goto(&app.url("/t/alvstad?lang=sv")).await.unwrap();
    b.expect("h2", "Få besked om avbrott").await;
    // A wrong pair: the page says so and keeps what was typed.
    b.client
        .find(Locator::Css("#service option[value=district_heating]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.fill("#customer_number", "999999").await;
    b.fill("#facility_number", "FV-000042").await;
    b.click("#signin").await;
    b.expect("#error", "Vi hittade ingen anläggning").await;
    b.fill("#customer_number", "100042").await;
    b.click("#signin").await;
    b.expect("h2", "Avisering för din anläggning").await;
    b.expect("#facility", "Kyrkogatan 4 B, 863 30 Älvstad")
        .await;
    b.expect("#current-phone", "Inte anmält").await;

    b.fill("#phone", "08-123 456 78").await;
    b.click("#save-phone").await;
    b.expect("#error", "Det är inte ett mobilnummer").await;
    b.expect("#current-phone", "Inte anmält").await;
    b.fill("#phone", "070-123 45 67").await;
    b.click("#save-phone").await;
    b.expect("#message", "Mobilnumret är sparat.").await;
    b.expect("#current-phone", "+46 70*** **67").await;

    // A refused address comes back in the form with the error, as a refused number does.
    b.fill("#email", "anna@example").await;
    b.click("#save-email").await;
    b.expect("#error", "inte en giltig e-postadress").await;
    let typed = b
        .client
        .find(Locator::Css("#email"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(typed.as_deref(), Some("anna@example"));
    b.fill("#email", "anna@example.com").await;
    b.click("#save-email").await;
    // Like the phone form, the e-mail form redirects to the facility page, so reloading
    // that page sends no second verification mail.
    b.expect("#message", "a***@example.com").await;
    b.expect("#current-email", "väntar på bekräftelse").await;
    let at = b.client.current_url().await.unwrap();
    assert_eq!(
        (at.path(), at.query()),
        ("/t/alvstad/facility", Some("m=email_sent"))
    );
    b.client.refresh().await.unwrap();
    b.expect("#message", "a***@example.com").await;

    // The verification mail went to the sink; open its link in the browser and confirm.
    app.settle_direct().await;
    let sink = std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
    assert_eq!(sink.lines().count(), 1, "{sink}");
    let mail: Value = serde_json::from_str(sink.lines().last().unwrap()).unwrap();
    assert_eq!(mail["to"], "anna@example.com");
    let link = find_link(mail["body"].as_str().unwrap(), &app.base);
    b.client.goto(&link).await.unwrap();
    b.click("#confirm").await;
    b.expect("#message", "Tack.").await;

    // Saving the confirmed address again sends nothing and says why.
    b.client
        .goto(&app.url("/t/alvstad/facility"))
        .await
        .unwrap();
    b.fill("#email", "anna@example.com").await;
    b.click("#save-email").await;
    b.expect("#message", "E-postadressen är redan bekräftad.")
        .await;
    let sink = std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
    assert_eq!(sink.lines().count(), 1, "{sink}");

    // Switch to English on the facility page: the session holds, the texts change.
    b.click("#lang-en").await;
    b.expect("h2", "Notices for your facility").await;
    b.expect("#current-email", "confirmed").await;
    b.click("#remove-phone").await;
    b.expect("#message", "The mobile number is removed.").await;
    b.click("#signout").await;
    b.expect("h2", "Get notified about outages").await;

    // The privacy notice is one click from the footer, in the language chosen, and leads
    // back to the registration page.
    b.click("#privacy-link").await;
    b.expect("h2", "Privacy notice for outage notices").await;
    b.expect("#controller", "privacy@example.com").await;
    b.expect("#notice-version", "Version ").await;
    b.click("#lang-nb").await;
    b.expect("h2", "Personvernerklæring for avbruddsvarsling")
        .await;
    b.expect("#retention", "90 dager").await;
    b.click("#registration-link").await;
    b.expect("h2", "Få varsel om avbrudd").await;

    b.stop().await;
    app.finish().await;
}

/// The last six-digit code the SMS sink received, once the outbox has sent it.
async fn last_sms_code(app: &TestApp) -> String {
    app.settle_direct().await;
    let sink = std::fs::read_to_string(app.dir.path().join("sink/sms.jsonl")).unwrap();
    let sms: Value = serde_json::from_str(sink.lines().last().unwrap()).unwrap();
    let body = sms["body"].as_str().unwrap().to_string();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {body:?}"))
        .to_string()
}

/// In one sitting and in Norwegian: ask for a code, see everything held, correct the number,
/// restrict, lift, and erase; the erasure signs the household out.
async fn household_uses_its_rights_in_the_browser(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    app.put_facilities(
        &token,
        json!([{"facility_number": "735999100000000042", "service": "electricity", "customer_number": "200042",
                "street": "Storgata", "house_number": "1", "postcode": "0150", "town": "Oslo"}]),
    )
    .await;
    let b = Browser::start().await;
    b.client.goto(&app.url("/t/alvstad?lang=nb")).await.unwrap();
    b.fill("#customer_number", "200042").await;
    b.fill("#facility_number", "735999100000000042").await;
    b.click("#signin").await;
    b.expect("#rights-no-channel", "registrert mobilnummer")
        .await;
    b.fill("#phone", "070-123 45 67").await;
    b.click("#save-phone").await;
    b.expect("#current-phone", "+46 70*** **67").await;

    b.click("#send-code").await;
    b.expect("#message", "Vi har sendt en kode").await;
    let code = last_sms_code(&app).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    b.fill("#code", wrong).await;
    b.click("#confirm-code").await;
    b.expect("#error", "Feil kode").await;
    b.fill("#code", &code).await;
    b.click("#confirm-code").await;
    b.expect("#held-phone", "+46701234567").await;
    b.expect("#notices, #no-notices", "").await;
    let href = b
        .client
        .find(Locator::Css("#download"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(href.as_deref(), Some("/t/alvstad/my-data.json"));

    // Rectification is the facility page's forms; the old number is told it was replaced.
    b.click("#back").await;
    b.fill("#phone", "070-765 43 21").await;
    b.click("#save-phone").await;
    b.expect("#current-phone", "+46 70*** **21").await;
    app.settle_direct().await;
    let sink = std::fs::read_to_string(app.dir.path().join("sink/sms.jsonl")).unwrap();
    let told: Value = serde_json::from_str(sink.lines().last().unwrap()).unwrap();
    assert_eq!(told["to"], "+46701234567");

    b.client.goto(&app.url("/t/alvstad/my-data")).await.unwrap();
    b.expect("#held-phone", "+46707654321").await;
    b.click("#restrict").await;
    b.expect("#message", "Bruken er begrenset").await;
    b.expect("#restricted", "begrenset siden").await;
    b.click("#lift").await;
    b.expect("#message", "opphevet").await;
    b.client
        .find(Locator::Css("#request-kind option[value=objection]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.fill("#request-message", "Jeg vil ikke ha SMS om natten")
        .await;
    b.click("#send-request").await;
    b.expect("#message", "Forespørselen din er registrert")
        .await;
    b.click("#erase").await;
    b.expect("#error", "Kryss av").await;
    b.expect("#held-phone", "+46707654321").await;
    b.click("#erase-confirm").await;
    b.click("#erase").await;
    b.expect("#message", "Opplysningene dine er slettet").await;
    b.client.goto(&app.url("/t/alvstad/my-data")).await.unwrap();
    b.expect("#error", "").await;
    let at = b.client.current_url().await.unwrap();
    assert_eq!(at.path(), "/t/alvstad", "the erasure ended the session");
    assert!(
        app.state.store.subscription(1).await.unwrap().is_none(),
        "nothing registered is left"
    );

    b.stop().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_household_uses_its_rights_in_the_browser() {
    household_uses_its_rights_in_the_browser(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_household_uses_its_rights_in_the_browser() {
    household_uses_its_rights_in_the_browser(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_household_registers_in_the_browser() {
    household_registers_in_the_browser(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_household_registers_in_the_browser() {
    household_registers_in_the_browser(Db::Postgres).await;
}
