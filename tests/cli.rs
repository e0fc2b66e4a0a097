//! The `varsel` command as an operator runs it, on both stores.

mod common;

use std::process::{Command, Output};

use common::{Db, TempDir, TestDb};

struct Cli {
    dir: TempDir,
    db: TestDb,
}

impl Cli {
    async fn new(db: Db) -> Self {
        let dir = TempDir::new();
        let db = TestDb::create(db, dir.path()).await;
        Self { dir, db }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_varsel"))
            .args(args)
            .env_remove("VARSEL_CONFIG")
            .env("VARSEL_DATA_DIR", self.dir.path())
            .env("VARSEL_DATABASE_URL", &self.db.url)
            .env("VARSEL_LOG", "warn")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

async fn tenant_import_and_demo(db: Db) {
    let cli = Cli::new(db).await;
    let created = cli.ok(&[
        "tenant",
        "create",
        "--slug",
        "norrkraft",
        "--name",
        "Norrkraft",
        "--sender-id",
        "Norrkraft",
        "--languages",
        "nb,en",
        "--time-zone",
        "Europe/Oslo",
        "--privacy-contact",
        "personvern@norrkraft.example",
        "--service",
        "electricity,district_heating",
    ]);
    assert!(created.contains("Created tenant Norrkraft"));
    assert!(
        created
            .lines()
            .any(|l| l.starts_with("vst_") && l.len() == 68),
        "{created}"
    );

    let dup = cli.run(&[
        "tenant",
        "create",
        "--slug",
        "norrkraft",
        "--name",
        "X",
        "--sender-id",
        "X",
        "--privacy-contact",
        "x",
        "--service",
        "water",
    ]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let bad_sender = cli.run(&[
        "tenant",
        "create",
        "--slug",
        "other",
        "--name",
        "X",
        "--sender-id",
        "MuchTooLongSender",
        "--privacy-contact",
        "x",
        "--service",
        "water",
    ]);
    assert!(!bad_sender.status.success());
    assert!(String::from_utf8_lossy(&bad_sender.stderr).contains("--sender-id"));

    let csv = cli.dir.path().join("facilities.csv");
    std::fs::write(
        &csv,
        "facility_number;service;customer_number;street;house_number;postcode;town;language\n\
         707057500000000001;el;1001;Storgata;1;0150;Oslo;nb\n\
         707057500000000002;el;1002;Storgata;2;0150;Oslo;\n\
         707057500000000003;el;;Storgata;3;0150;Oslo;nb\n\
         707057500000000004;vann;1004;Storgata;4;0150;Oslo;nb\n\
         FV-1;fjernvarme;1001;Storgata;1;0150;Oslo;nb\n",
    )
    .unwrap();
    let report = cli.ok(&[
        "import",
        "facilities",
        csv.to_str().unwrap(),
        "--tenant",
        "norrkraft",
    ]);
    assert!(
        report.contains("5 rows read: 3 inserted, 0 updated, 0 unchanged, 2 rejected"),
        "{report}"
    );
    assert!(
        report.contains("line 4 (facility 707057500000000003): customer_number is missing"),
        "{report}"
    );
    assert!(report.contains("line 5"), "{report}");
    let again = cli.ok(&[
        "import",
        "facilities",
        csv.to_str().unwrap(),
        "--tenant",
        "norrkraft",
    ]);
    assert!(
        again.contains("0 inserted, 0 updated, 3 unchanged"),
        "{again}"
    );

    let missing = cli.run(&[
        "import",
        "facilities",
        "/nonexistent.csv",
        "--tenant",
        "norrkraft",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent.csv"));
    std::fs::write(&csv, "facility_number,phone\n1,0701234567\n").unwrap();
    let bad_header = cli.run(&[
        "import",
        "facilities",
        csv.to_str().unwrap(),
        "--tenant",
        "norrkraft",
    ]);
    assert!(!bad_header.status.success());
    assert!(String::from_utf8_lossy(&bad_header.stderr).contains("unknown column \"phone\""));

    let demo = cli.ok(&["demo"]);
    assert!(demo.contains("created with 5000 facilities"), "{demo}");
    assert!(demo.contains("/t/alvstad"));
    let demo_again = cli.ok(&["demo"]);
    assert!(
        demo_again.contains("already present with 5000 facilities"),
        "{demo_again}"
    );

    let list = cli.ok(&["tenant", "list"]);
    assert!(list.contains("alvstad") && list.contains("norrkraft"));
    let keys = cli.ok(&["keys", "show"]);
    assert!(keys.contains("current key: 1"));
    let rotated = cli.ok(&["keys", "rotate", "--retire-old"]);
    assert!(rotated.contains("re-sealed 40 contact values"), "{rotated}");
    assert!(cli.ok(&["keys", "show"]).contains("keys held: [2]"));

    cli.db.drop_db().await;
}

#[tokio::test]
async fn sqlite_tenant_import_and_demo() {
    tenant_import_and_demo(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_tenant_import_and_demo() {
    tenant_import_and_demo(Db::Postgres).await;
}

async fn outages_from_the_command_line(db: Db) {
    let cli = Cli::new(db).await;
    cli.ok(&["demo"]);
    let preview = cli.ok(&[
        "outage",
        "declare",
        "--tenant",
        "alvstad",
        "--service",
        "el",
        "--grid-node",
        "ALV-N03",
        "--etr",
        "2030-01-15 18:00",
        "--cause",
        "storm",
        "--text",
        "sv=Vi felsöker.",
        "--preview",
    ]);
    assert!(
        preview.starts_with(
            "280 facilities; 3 SMS recipients (0 from the directory), 1 e-mail recipients"
        ),
        "{preview}"
    );
    assert!(
        preview.contains("1 SMS part(s), gsm7] Älvstad Energi: Strömavbrott"),
        "{preview}"
    );
    assert!(
        preview.contains("Beräknas klart ca 15/1 18:00. Vi felsöker."),
        "{preview}"
    );
    let declared = cli.ok(&[
        "outage",
        "declare",
        "--tenant",
        "alvstad",
        "--service",
        "el",
        "--grid-node",
        "ALV-N03",
        "--etr",
        "2030-01-15 18:00",
        "--cause",
        "fallen_tree",
    ]);
    assert_eq!(
        declared.trim(),
        "outage 1: step 1 (declared) notifies; 4 notices written"
    );
    let small = cli.ok(&[
        "outage",
        "update",
        "--tenant",
        "alvstad",
        "1",
        "--etr",
        "2030-01-15 18:10",
    ]);
    assert!(small.contains("recorded without notifying"), "{small}");
    let restored = cli.ok(&["outage", "restore", "--tenant", "alvstad", "1"]);
    assert!(
        restored.contains("step 3 (restored) notifies; 4 notices written"),
        "{restored}"
    );
    let cancel = cli.run(&["outage", "cancel", "--tenant", "alvstad", "1"]);
    assert!(!cancel.status.success());
    assert!(
        String::from_utf8_lossy(&cancel.stderr)
            .contains("an outage that is restored cannot be cancelled")
    );
    let bad_time = cli.run(&[
        "outage",
        "declare",
        "--tenant",
        "alvstad",
        "--service",
        "el",
        "--postcode",
        "86330",
        "--etr",
        "tomorrow",
    ]);
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("is not a time such as"));
    let bad_cause = cli.run(&[
        "outage",
        "declare",
        "--tenant",
        "alvstad",
        "--service",
        "el",
        "--postcode",
        "86330",
        "--cause",
        "lightning",
    ]);
    assert!(
        String::from_utf8_lossy(&bad_cause.stderr).contains(
            "cause: \"lightning\" is not a cause code of this tenant; use one of equipment_fault"
        ),
        "{bad_cause:?}"
    );
    let causes = cli.ok(&["causes", "list", "--tenant", "alvstad"]);
    assert!(
        causes.contains("fallen_tree (built-in)\n  sv: ett träd har fallit över ledningen\n"),
        "{causes}"
    );
    let show = cli.ok(&["outage", "show", "--tenant", "alvstad", "1"]);
    assert!(
        show.starts_with("outage 1 (electricity) restored: 0 facilities affected now"),
        "{show}"
    );
    assert!(
        show.contains(
            "cause fallen_tree: sv \"ett träd har fallit över ledningen\", nb \"et tre har falt over linjen\", en \"a tree has fallen on the line\""
        ),
        "{show}"
    );
    assert!(
        show.contains("notices: pending 8"),
        "nothing dispatches without `serve`: {show}"
    );
    cli.db.drop_db().await;
}

#[tokio::test]
async fn sqlite_outages_from_the_command_line() {
    outages_from_the_command_line(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_outages_from_the_command_line() {
    outages_from_the_command_line(Db::Postgres).await;
}

#[test]
fn help_describes_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "serve", "demo", "import", "tenant", "token", "keys", "outage", "causes", "openapi",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args(["import", "facilities", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("--tenant"));
}

#[test]
fn a_bad_setting_stops_the_command_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args(["tenant", "list"])
        .env("VARSEL_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn the_storm_benchmark_runs_on_both_stores_and_prints_its_figures() {
    let pg = common::pg_admin_url();
    let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args([
            "bench",
            "storm",
            "--facilities",
            "100",
            "--store",
            "sqlite",
            "--store",
            &pg,
        ])
        .env("VARSEL_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 40 registered phones + 60 directory numbers + 20 verified e-mails.
    for store in ["sqlite", "postgres"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(store))
            .unwrap_or_else(|| panic!("no {store} line in {stdout}"));
        assert!(line.contains("notices      120"), "{line}");
        for figure in ["durable", "first send", "dispatch", "peak RSS"] {
            assert!(line.contains(figure), "{line}");
        }
    }
}
