//! The README's Quick start, run as written against the real binary. The section is read from
//! README.md when the test runs, so the README and what it promises cannot drift apart:
//! - the service starts with the arguments of the section's `cargo run --release -- ...`
//!   line, in an empty directory (so `varsel-data` is where the section says it is), on a
//!   free port;
//! - a household registers the number the section suggests and an e-mail for the first
//!   printed invoice pair through the pages, as a browser posts their forms;
//! - every `sh` block that calls the service at `http://127.0.0.1:8080` runs with `sh -e`,
//!   that address replaced by the test's and `TOKEN` set from the printed `export TOKEN=`
//!   line; after each block the test waits until the notices are sent, as a reader waits
//!   for the SMS before the next step;
//! - the registered number gets the outage SMS and then the "back" SMS, once each.
//!
//! It needs `sh` and `curl`, nothing else (no PostgreSQL: the demo runs on SQLite).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{CSRF_COOKIE, CSRF_TOKEN, TempDir, find_link};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Where the README's commands find the service.
const README_BASE: &str = "http://127.0.0.1:8080";
/// The number the Quick start suggests registering, and how the sink writes it.
const PHONE: &str = "070-174 06 99";
const PHONE_E164: &str = "+46701740699";
const EMAIL: &str = "anna@example.com";

fn quick_start() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let start = readme
        .find("\n## Quick start\n")
        .expect("README.md has a Quick start section")
        + 1;
    let rest = &readme[start..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_string()
}

/// The bodies of the section's fenced blocks of one language.
fn blocks(section: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match current.as_mut() {
            None if line.trim_end() == fence => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(
        current.is_none(),
        "an unclosed ```{lang} block in the Quick start"
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sink(dir: &Path, file: &str) -> Vec<Value> {
    let path = dir.join("varsel-data/sink").join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Starts the service as the section's launch line does and returns it with what it printed
/// up to "Varsel is running".
async fn launch(args: &[&str], dir: &Path, port: u16) -> (tokio::process::Child, Vec<String>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_varsel"));
    // A newcomer has no settings: none of the test environment's may reach the service.
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("VARSEL_")) {
        cmd.env_remove(name);
    }
    let mut child = cmd
        .args(args)
        .current_dir(dir)
        .env("VARSEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("VARSEL_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let running = line.starts_with("Varsel is running at");
            printed.push(line);
            if running {
                return true;
            }
        }
        false
    };
    let running = tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .unwrap_or(false);
    assert!(running, "the service did not start; it printed {printed:?}");
    // Keep reading, so a later line is not written into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, printed)
}

/// Waits until no outage has a notice pending or in flight.
async fn settle_all(client: &Client, base: &str, token: &str) {
    let outages: Vec<Value> =
        common::get_json(client, &format!("{base}/api/v1/outages"), token).await;
    for o in outages {
        common::settle(client, base, token, o["id"].as_i64().unwrap()).await;
    }
}

/// Posts a page form with the session cookie; expects the redirect of post/redirect/get and
/// returns where it points.
async fn post_form(client: &Client, url: &str, cookie: &str, form: &[(&str, &str)]) -> String {
    let mut form = form.to_vec();
    form.push(("csrf", CSRF_TOKEN));
    let resp = client
        .post(url)
        .header(COOKIE, format!("{cookie}; {CSRF_COOKIE}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{url}");
    resp.headers()[LOCATION].to_str().unwrap().to_string()
}

async fn get_page(client: &Client, url: &str, cookie: &str) -> String {
    let resp = client.get(url).header(COOKIE, cookie).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_works_as_written() {
    let section = quick_start();
    let sh = blocks(&section, "sh");
    let launch_args: Vec<&str> = sh
        .iter()
        .find_map(|b| b.trim().strip_prefix("cargo run --release -- "))
        .expect("the Quick start starts the service with `cargo run --release -- ...`")
        .split_whitespace()
        .collect();
    let steps: Vec<&String> = sh.iter().filter(|b| b.contains(README_BASE)).collect();
    assert!(
        !steps.is_empty(),
        "no block of the Quick start calls {README_BASE}"
    );
    assert!(section.contains(PHONE), "the Quick start suggests {PHONE}");

    let dir = TempDir::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (mut service, printed) = launch(&launch_args, dir.path(), port).await;

    // What the section says the demo prints.
    let page = printed
        .iter()
        .find_map(|l| l.strip_prefix("Registration page: "))
        .expect("the demo prints its registration page");
    assert_eq!(page, format!("{base}/t/alvstad"));
    assert!(section.contains(&format!("`{README_BASE}/t/alvstad`")));
    let token = printed
        .iter()
        .find_map(|l| l.strip_prefix("export TOKEN="))
        .expect("the demo prints a line `export TOKEN=...`");
    assert!(token.starts_with("vst_"), "{token}");
    let pair: Vec<&str> = printed
        .iter()
        .skip_while(|l| !l.starts_with("Sign in there"))
        .find(|l| l.starts_with("  "))
        .expect("the demo prints invoice pairs")
        .split_whitespace()
        .collect();
    let (service_kind, customer, facility) = (pair[0], pair[1], pair[2]);
    for number in [customer, facility] {
        assert!(
            section.contains(&format!("`{number}`")),
            "the Quick start names the first printed pair; {number} is not in it"
        );
    }

    // The household registers through the pages, as a browser posts their forms.
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(page)
        .header(COOKIE, CSRF_COOKIE)
        .form(&[
            ("service", service_kind),
            ("customer_number", customer),
            ("facility_number", facility),
            ("csrf", CSRF_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("varsel_session="))
        .and_then(|v| v.split(';').next())
        .expect("signing in sets the session cookie")
        .to_string();
    let to = post_form(
        &client,
        &format!("{page}/phone"),
        &cookie,
        &[("phone", PHONE), ("action", "save")],
    )
    .await;
    assert_eq!(to, "/t/alvstad/facility?m=phone_saved");
    let html = get_page(&client, &format!("{base}{to}"), &cookie).await;
    assert!(html.contains("+46 70*** **99"), "{html}");

    let to = post_form(
        &client,
        &format!("{page}/email"),
        &cookie,
        &[("email", EMAIL), ("action", "save")],
    )
    .await;
    assert_eq!(to, "/t/alvstad/facility?m=email_sent");
    // The outbox sends it a moment after the answer.
    let mut verification = None;
    for _ in 0..300 {
        let path = dir.path().join("varsel-data/sink/email.jsonl");
        if path.exists() {
            verification = sink(dir.path(), "email.jsonl")
                .into_iter()
                .rfind(|m| m["to"] == EMAIL);
        }
        if verification.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let verification = verification.expect("the verification mail is in the sink");
    let link = find_link(verification["body"].as_str().unwrap(), &base);
    // Opening the link shows the button the section describes; pressing it confirms.
    let confirm_page = get_page(&client, &link, "").await;
    assert!(confirm_page.contains("id=\"confirm\""), "{confirm_page}");
    assert!(section.contains("**Bekräfta**") && confirm_page.contains("Bekräfta"));
    let confirmed = common::confirm_link(&client, &link).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let html = get_page(&client, &format!("{base}/t/alvstad/facility"), &cookie).await;
    assert!(html.contains("(bekräftad)"), "{html}");

    // The section's commands, as written.
    let mut outputs = Vec::new();
    for step in steps {
        let script = step.replace(README_BASE, &base);
        let out = tokio::process::Command::new("sh")
            .arg("-e")
            .arg("-c")
            .arg(&script)
            .env("TOKEN", token)
            .current_dir(dir.path())
            .output()
            .await
            .expect("sh is needed");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{script}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(stdout);
        settle_all(&client, &base, token).await;
    }

    let sms = sink(dir.path(), "sms.jsonl");
    let bodies: Vec<&str> = sms
        .iter()
        .filter(|m| m["to"] == PHONE_E164)
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies.len(),
        2,
        "the registered number gets the outage and its end, once each: {bodies:?}; the commands printed {outputs:?}"
    );
    assert!(bodies[0].contains("Strömavbrott"), "{bodies:?}");
    assert!(bodies[1].contains("Strömmen är tillbaka"), "{bodies:?}");
    let notices_by_mail = sink(dir.path(), "email.jsonl")
        .into_iter()
        .filter(|m| m["to"] == EMAIL)
        .count();
    assert_eq!(
        notices_by_mail, 3,
        "the confirmed address gets the verification, then the outage and its end"
    );

    // The sink line the section shows looks like the real one.
    let shown: Value = serde_json::from_str(
        blocks(&section, "json")
            .first()
            .expect("the Quick start shows an SMS sink line"),
    )
    .unwrap();
    let real = sms.iter().find(|m| m["to"] == PHONE_E164).unwrap();
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&shown), keys(real));
    assert_eq!((&shown["to"], &shown["from"]), (&real["to"], &real["from"]));

    service.kill().await.unwrap();
}
