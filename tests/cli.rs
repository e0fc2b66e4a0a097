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
    let import = |file: &str, json: bool| {
        let mut args = vec!["import", "facilities", file, "--tenant", "norrkraft"];
        if json {
            args.push("--json");
        }
        let out = cli.run(&args);
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, report, _) = import(csv.to_str().unwrap(), false);
    assert_eq!(code, Some(3), "some rows refused: {report}");
    assert!(
        report.contains("5 rows read: 3 inserted, 0 updated, 0 unchanged, 2 rejected"),
        "{report}"
    );
    assert!(
        report.contains("line 4 (facility 707057500000000003): customer_number is missing"),
        "{report}"
    );
    assert!(report.contains("line 5"), "{report}");
    let (code, again, _) = import(csv.to_str().unwrap(), true);
    assert_eq!(code, Some(3));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["report"]["status"], "partial");
    assert_eq!(again["report"]["unchanged"], 3);
    assert_eq!(again["report"]["rejected"][0]["line"], 4);

    let clean = cli.dir.path().join("clean.csv");
    std::fs::write(
        &clean,
        "facility_number,service,customer_number,street,house_number,postcode,town\n\
         707057500000000009,el,1009,Storgata,9,0150,Oslo\n",
    )
    .unwrap();
    let (code, report, _) = import(clean.to_str().unwrap(), true);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&report).unwrap()["report"]["status"],
        "complete"
    );

    let (code, _, stderr) = import("/nonexistent.csv", false);
    assert_eq!(code, Some(4));
    assert!(stderr.contains("cannot read /nonexistent.csv"), "{stderr}");
    assert!(stderr.contains("Nothing was loaded"), "{stderr}");
    std::fs::write(&csv, "facility_number,phone\n1,0701234567\n").unwrap();
    let (code, _, stderr) = import(csv.to_str().unwrap(), false);
    assert_eq!(code, Some(4));
    assert!(stderr.contains("unknown column \"phone\""), "{stderr}");
    let (code, out, _) = import(csv.to_str().unwrap(), true);
    assert_eq!(code, Some(4));
    let failed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("unknown column"));
    std::fs::write(
        &csv,
        "facility_number,service,customer_number,street,house_number,postcode,town\n1,gas,1,S,1,0150,Oslo\n",
    )
    .unwrap();
    let (code, report, _) = import(csv.to_str().unwrap(), false);
    assert_eq!(code, Some(4), "every row refused: {report}");
    assert!(report.contains("Nothing was loaded"), "{report}");

    // The operator's work is in the audit trail under their login, and the chain holds.
    let trail = cli.ok(&["audit", "show", "--tenant", "norrkraft"]);
    let actions: Vec<&str> = trail
        .lines()
        .map(|l| l.split_whitespace().nth(7).unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.created",
            "token.created",
            "facilities.imported",
            "facilities.imported"
        ],
        "{trail}"
    );
    assert!(trail.lines().all(|l| l.contains(" cli:")), "{trail}");
    assert!(
        cli.ok(&["audit", "verify"])
            .starts_with("audit chain intact: 4 entries verified"),
    );

    let demo = cli.ok(&["demo"]);
    assert!(demo.contains("created with 5000 facilities"), "{demo}");
    assert!(demo.contains("/t/alvstad"));
    let demo_again = cli.ok(&["demo"]);
    assert!(
        demo_again.contains("already present with 5000 facilities"),
        "{demo_again}"
    );

    // The grid: refused whole when it is not a tree, replaced whole when it is.
    let grid = cli.dir.path().join("grid.csv");
    let import_grid = |json: bool| {
        let mut args = vec![
            "import",
            "grid",
            grid.to_str().unwrap(),
            "--tenant",
            "alvstad",
        ];
        if json {
            args.push("--json");
        }
        let out = cli.run(&args);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    std::fs::write(
        &grid,
        "node_id;parent_id;name;kind\nT1;;Station;substation\nF1;T1;Linje 1;feeder\nA;C;a;other\nB;A;b;other\nC;B;c;other\nN9;F7;n;secondary_substation\n",
    )
    .unwrap();
    let (code, out) = import_grid(false);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("nothing was loaded"), "{out}");
    assert!(
        out.contains("line 7 (node N9): parent F7 is not in the file"),
        "{out}"
    );
    std::fs::write(
        &grid,
        "node_id,parent_id,name\nT1,,Station\nA,C,a\nB,A,b\nC,B,c\n",
    )
    .unwrap();
    let (code, out) = import_grid(true);
    assert_eq!(code, Some(4));
    let refused: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(refused["report"]["status"], "failed");
    assert!(refused["report"]["loaded"].is_null());
    let lines: Vec<_> = refused["report"]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5], "{out}");

    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/grid-nodes.csv"
    ))
    .unwrap();
    let without_n01: String = example
        .lines()
        .filter(|l| !l.starts_with("ALV-N01,"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&grid, &without_n01).unwrap();
    let (code, out) = import_grid(false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("the tree now has 29 nodes (0 new, 1 removed)"),
        "{out}"
    );
    assert!(
        out.contains("facilities name grid nodes the tree does not have"),
        "{out}"
    );
    assert!(out.contains("  ALV-N01 ("), "{out}");
    std::fs::write(&grid, &example).unwrap();
    let (code, out) = import_grid(true);
    assert_eq!(code, Some(0), "{out}");
    let loaded: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loaded["report"]["status"], "complete");
    assert_eq!(loaded["report"]["loaded"]["nodes"], 30);
    assert_eq!(loaded["report"]["loaded"]["added"], 1);
    assert_eq!(loaded["report"]["loaded"]["facilities_outside_tree"], 0);

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
        preview.contains("Beräknas klart ca tis 15/1 2030 18:00. Vi felsöker."),
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
        "serve", "demo", "import", "tenant", "token", "keys", "outage", "causes", "audit",
        "openapi",
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
