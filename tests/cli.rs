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

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_varsel"));
        command
            .args(args)
            .env_remove("VARSEL_CONFIG")
            .env("VARSEL_DATA_DIR", self.dir.path())
            .env("VARSEL_DATABASE_URL", &self.db.url)
            .env("VARSEL_LOG", "warn")
            .envs(env.iter().copied());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// Starts `varsel serve` with extra settings, waits until it listens and stops it;
    /// returns its log.
    fn serve_once(&self, env: &[(&str, &str)]) -> String {
        use std::io::{BufRead, BufReader};
        let mut serve = self
            .command(&["serve"], env)
            .env("VARSEL_LISTEN", "127.0.0.1:0")
            .env("VARSEL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = String::new();
        for line in BufReader::new(serve.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening") {
                break;
            }
        }
        serve.kill().unwrap();
        serve.wait().unwrap();
        assert!(
            log.contains("listening"),
            "the service did not start: {log}"
        );
        log
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
    // A restart reuses the demo's admin token instead of minting another.
    let token = |out: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix("export TOKEN="))
            .unwrap_or_else(|| panic!("no token in {out}"))
            .to_string()
    };
    assert_eq!(token(&demo), token(&demo_again));

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

    let ran = cli.ok(&["retention", "run"]);
    for job in [
        "directory_numbers",
        "notices",
        "unverified_emails",
        "sessions",
        "cases",
    ] {
        assert!(ran.contains(&format!("retention.{job}: ")), "{ran}");
    }
    let status = cli.ok(&["retention", "status"]);
    assert_eq!(
        status.matches("(every 60 min), next ").count(),
        5,
        "{status}"
    );
    assert_eq!(
        status.matches(" ok: ").count(),
        5,
        "one run each so far: {status}"
    );

    let list = cli.ok(&["tenant", "list"]);
    assert!(list.contains("alvstad") && list.contains("norrkraft"));
    let keys = cli.ok(&["keys", "show"]);
    assert!(keys.contains("current key: 1"));
    let rotated = cli.ok(&["keys", "rotate", "--retire-old"]);
    // The demo's phones, e-mails and holders are sealed with the demo tenant's own data key,
    // norrkraft's holders with its own: only those two keys are re-wrapped.
    assert!(rotated.contains("re-sealed 2 values"), "{rotated}");
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

/// `varsel privacy record` prints the art. 30 record from the configuration: JSON with every
/// section, Markdown with the same version, and the configuration's gaps as warnings.
async fn privacy_record_from_the_command_line(db: Db) {
    let cli = Cli::new(db).await;
    cli.ok(&[
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
        "electricity",
    ]);
    let config = cli.dir.path().join("varsel.toml");
    std::fs::write(
        &config,
        "smtp_url = \"smtps://u:pw@smtp.example.com\"\n[sms]\nprovider = \"twilio\"\nusername = \"AC1\"\npassword = \"p\"\n[retention]\nnotice_days = 60\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let record = [
        "--config",
        config,
        "privacy",
        "record",
        "--tenant",
        "norrkraft",
    ];

    let out = cli.run(&[&record[..], &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = json["version"].as_str().unwrap().to_string();
    assert_eq!(version.len(), 12);
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
    assert_eq!(json["date"].as_str().unwrap().len(), 10);
    assert!(json["first_produced_at"].as_i64().unwrap() > 0);
    assert_eq!(json["controller"]["name"], "Norrkraft");
    assert_eq!(
        json["controller"]["privacy_contact"],
        "personvern@norrkraft.example"
    );
    for section in [
        "purposes",
        "never_used_for",
        "legal_bases",
        "data_subjects",
        "data_categories",
        "recipients",
        "retention",
        "security_measures",
    ] {
        assert!(
            !json[section].as_array().unwrap().is_empty(),
            "{section} is empty"
        );
    }
    let sms = &json["recipients"][0];
    assert_eq!(sms["processor"], "Twilio Inc.");
    assert_eq!(sms["country"], "US");
    assert_eq!(sms["outside_eea"], true);
    assert_eq!(sms["transfer_safeguards"], "scc+dpf");
    let notices = json["retention"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "notice_history")
        .unwrap();
    assert_eq!(notices["period"]["amount"], 60);
    assert_eq!(notices["period"]["setting"], "retention.notice_days");
    // The mail server's company and country are not configured: said on stderr and in the
    // record, never guessed.
    let codes: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"country_not_stated"), "{codes:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.processor_country"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("u:pw"));

    let md = cli.ok(&record);
    assert!(
        md.starts_with("# Record of processing activities (GDPR art. 30)"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "Version {version}, first produced {}",
            json["date"].as_str().unwrap()
        )),
        "{md}"
    );
    assert!(md.contains("Twilio Inc."));

    let unknown = cli.run(&[
        "--config", config, "privacy", "record", "--tenant", "nobody",
    ]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no tenant \"nobody\""));

    // A country that is not one is refused at start, naming the setting.
    std::fs::write(config, "[sms]\nprocessor_country = \"Sweden\"\n").unwrap();
    let bad = cli.run(&record);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("processor_country") && err.contains("two letters"),
        "{err}"
    );

    cli.db.drop_db().await;
}

#[tokio::test]
async fn sqlite_privacy_record_from_the_command_line() {
    privacy_record_from_the_command_line(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_privacy_record_from_the_command_line() {
    privacy_record_from_the_command_line(Db::Postgres).await;
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
            "280 facilities; 3 registered mobiles, 1 e-mail recipients; 277 addresses to look up in the directory"
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

/// Files an older version left readable (data directory 0755, database 0644) are tightened
/// when the service starts, and a key file others can read stops it with the fix to run.
#[cfg(unix)]
async fn private_files(db: Db) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let cli = Cli::new(db).await;
    let data = cli.dir.path();
    let db_file = data.join("varsel.db");
    cli.ok(&["tenant", "list"]);
    if db == Db::Sqlite {
        assert_eq!(mode(&db_file), 0o600, "a new database is private");
        set(&db_file, 0o644);
    }
    set(data, 0o755);

    let log = cli.serve_once(&[]);
    assert_eq!(mode(data), 0o700);
    assert!(
        log.contains(&format!("path={} from=0755 to=0700", data.display())),
        "{log}"
    );
    let key_file = data.join("keys.json");
    assert_eq!(mode(&key_file), 0o600);
    if db == Db::Sqlite {
        for suffix in ["", "-wal", "-shm"] {
            let f = data.join(format!("varsel.db{suffix}"));
            if f.exists() {
                assert_eq!(mode(&f), 0o600, "{}", f.display());
            }
        }
        assert!(
            log.contains(&format!("path={} from=0644 to=0600", db_file.display())),
            "{log}"
        );
    }

    for wide in [0o644, 0o620] {
        set(&key_file, wide);
        for args in [&["serve"][..], &["keys", "show"]] {
            let refused = cli.run(args);
            assert!(!refused.status.success(), "{args:?} started with {wide:o}");
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert!(
                stderr.contains(&format!("`chmod 600 {}`", key_file.display())),
                "{stderr}"
            );
        }
        assert_eq!(
            mode(&key_file),
            wide,
            "the key file is the operator's to fix"
        );
    }
    set(&key_file, 0o600);
    assert!(cli.ok(&["keys", "show"]).contains("current key: 1"));
    cli.db.drop_db().await;
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_private_files() {
    private_files(Db::Sqlite).await;
}

#[cfg(unix)]
#[tokio::test]
async fn postgres_private_files() {
    private_files(Db::Postgres).await;
}

/// A master key from the environment wraps the key file on the next start; from then on
/// nothing opens it without that key, and `keys show` says which it is.
async fn master_key(db: Db) {
    let cli = Cli::new(db).await;
    cli.serve_once(&[]);
    let key_file = cli.dir.path().join("keys.json");
    let plain = cli.ok(&["keys", "show"]);
    assert!(plain.contains("wrapped with a master key: no"), "{plain}");

    let secrets = TempDir::new();
    let master_file = secrets.path().join("master.key");
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    std::fs::write(&master_file, format!("{master}\n")).unwrap();
    let from_file = [("VARSEL_MASTER_KEY_FILE", master_file.to_str().unwrap())];
    let log = cli.serve_once(&from_file);
    assert!(
        log.contains("wrapped the data key file with the master key"),
        "{log}"
    );
    let on_disk = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        on_disk.contains("\"wrapped\"") && !on_disk.contains("index_key"),
        "{on_disk}"
    );
    assert!(
        !cli.serve_once(&from_file)
            .contains("wrapped the data key file"),
        "wrapped once"
    );

    let without = cli.run(&["keys", "show"]);
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stdout).contains("wrapped with a master key: yes"));
    for args in [&["keys", "show"][..], &["serve"]] {
        let out = cli.run_with(args, &[("VARSEL_LISTEN", "127.0.0.1:0")]);
        assert!(!out.status.success(), "{args:?} without the master key");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "the data key file {} is wrapped with a master key: set VARSEL_MASTER_KEY or VARSEL_MASTER_KEY_FILE",
                key_file.display()
            )),
            "{stderr}"
        );
    }
    let wrong = cli.run_with(
        &["serve"],
        &[
            (
                "VARSEL_MASTER_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("VARSEL_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("the master key does not open"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    let from_env = [("VARSEL_MASTER_KEY", master)];
    let rotated = cli.run_with(&["keys", "rotate", "--retire-old"], &from_env);
    assert!(rotated.status.success(), "{rotated:?}");
    let shown = String::from_utf8(cli.run_with(&["keys", "show"], &from_env).stdout).unwrap();
    assert!(
        shown.contains("wrapped with a master key: yes") && shown.contains("keys held: [2]"),
        "{shown}"
    );

    let short = cli.run_with(&["keys", "show"], &[("VARSEL_MASTER_KEY", "c2hvcnQ=")]);
    assert_eq!(short.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&short.stderr)
            .contains("VARSEL_MASTER_KEY must be 32 bytes of base64, not 5"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let both = cli.run_with(&["keys", "show"], &[from_env[0], from_file[0]]);
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    cli.db.drop_db().await;
}

#[tokio::test]
async fn sqlite_master_key() {
    master_key(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_master_key() {
    master_key(Db::Postgres).await;
}

/// A work-order file announces planned work row by row: good rows go in, bad ones are named
/// by line, and loading the file again announces nothing twice.
async fn planned_work_from_a_file(db: Db) {
    let cli = Cli::new(db).await;
    cli.ok(&["demo"]);
    let file = cli.dir.path().join("work-orders.csv");
    std::fs::write(
        &file,
        "reference;service;start;end;grid_nodes;facility_numbers;reason;text_sv\n\
         AO-4711;electricity;2030-01-10T09:00;2030-01-10T15:00;ALV-N03;;planned_work;Byte av brytare\n\
         AO-4712;electricity;2030-01-11T09:00;2030-01-11T08:00;ALV-N03;;;\n\
         AO-4713;electricity;2030-01-12T09:00;2030-01-12T15:00;;;;\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = cli.run(&["import", "planned", path, "--tenant", "alvstad"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("3 work orders read, 1 announced, 2 refused"),
        "{text}"
    );
    assert!(text.contains("line 2: AO-4711 -> outage 1"), "{text}");
    assert!(
        text.contains("line 3 (AO-4712): etr is before the outage started"),
        "{text}"
    );
    assert!(
        text.contains("line 4 (AO-4713): the row names neither"),
        "{text}"
    );

    let again = cli.run(&["import", "planned", path, "--tenant", "alvstad", "--json"]);
    assert_eq!(again.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        report["report"]["announced"][0]["already"], true,
        "{report}"
    );
    assert_eq!(report["report"]["announced"][0]["outage_id"], 1);
    let shown = cli.ok(&["outage", "show", "--tenant", "alvstad", "1"]);
    assert!(shown.contains("announced"), "{shown}");

    let bad_header = cli.dir.path().join("bad.csv");
    std::fs::write(&bad_header, "reference,service,start\n").unwrap();
    let out = cli.run(&[
        "import",
        "planned",
        bad_header.to_str().unwrap(),
        "--tenant",
        "alvstad",
    ]);
    assert_eq!(out.status.code(), Some(4));
    cli.db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_planned_work_from_a_file() {
    planned_work_from_a_file(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_planned_work_from_a_file() {
    planned_work_from_a_file(Db::Postgres).await;
}

/// Planned work announced from the command line moves to new times with `outage
/// reschedule`, shown by `outage show`; what cannot be rescheduled is refused with its reason
/// and exit status 1, and nothing changes.
async fn rescheduled_from_the_command_line(db: Db) {
    let cli = Cli::new(db).await;
    cli.ok(&["demo"]);
    let announced = cli.ok(&[
        "outage",
        "declare",
        "--tenant",
        "alvstad",
        "--service",
        "electricity",
        "--grid-node",
        "ALV-N03",
        "--planned-start",
        "2030-01-10T09:00",
        "--etr",
        "2030-01-10T15:00",
    ]);
    assert!(
        announced.starts_with("outage 1: step 1 (announced) notifies"),
        "{announced}"
    );
    let reschedule = |args: &[&str]| {
        let mut all = vec!["outage", "reschedule", "--tenant", "alvstad"];
        all.extend_from_slice(args);
        cli.run(&all)
    };
    let moved = reschedule(&[
        "1",
        "--start",
        "2030-01-17 08:00",
        "--end",
        "2030-01-17 16:30",
    ]);
    let text = String::from_utf8_lossy(&moved.stdout);
    assert!(moved.status.success(), "{moved:?}");
    assert!(
        text.starts_with("outage 1: step 2 (rescheduled) notifies"),
        "{text}"
    );
    assert!(text.contains("Postcards printed before now show the old times"));
    let shown = cli.ok(&["outage", "show", "--tenant", "alvstad", "1"]);
    assert!(
        shown.contains("  planned from 2030-01-17 08:00 to 2030-01-17 16:30 (Europe/Stockholm)\n"),
        "{shown}"
    );

    let declared = cli.ok(&[
        "outage",
        "declare",
        "--tenant",
        "alvstad",
        "--service",
        "electricity",
        "--grid-node",
        "ALV-N03",
    ]);
    assert!(declared.starts_with("outage 2: "), "{declared}");
    for (args, says) in [
        (
            [
                "1",
                "--start",
                "2030-01-17 08:00",
                "--end",
                "2030-01-17 16:30",
            ],
            "those are the times the work already has",
        ),
        (
            [
                "1",
                "--start",
                "2030-01-18 08:00",
                "--end",
                "2030-01-18 07:00",
            ],
            "--end \"2030-01-18 07:00\" is not after --start \"2030-01-18 08:00\"",
        ),
        (
            [
                "1",
                "--start",
                "2020-01-18 08:00",
                "--end",
                "2020-01-18 09:00",
            ],
            "started_at must be in the future",
        ),
        (
            ["1", "--start", "next week", "--end", "2030-01-18 09:00"],
            "--start: \"next week\" is not a time such as",
        ),
        (
            [
                "2",
                "--start",
                "2030-01-18 08:00",
                "--end",
                "2030-01-18 09:00",
            ],
            "only planned work is rescheduled",
        ),
        (
            [
                "9",
                "--start",
                "2030-01-18 08:00",
                "--end",
                "2030-01-18 09:00",
            ],
            "no outage 9",
        ),
    ] {
        let out = reschedule(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let still = cli.ok(&["outage", "show", "--tenant", "alvstad", "1"]);
    assert!(
        still.contains("planned from 2030-01-17 08:00 to 2030-01-17 16:30"),
        "refusals change nothing: {still}"
    );
    assert_eq!(
        reschedule(&["1", "--start", "2030-01-18 08:00"])
            .status
            .code(),
        Some(2),
        "--end is required"
    );

    // The clock reaches the start: the work has begun and keeps its times.
    cli.db
        .execute(&format!(
            "UPDATE outages SET started_at = {} WHERE id = 1",
            varsel::store::now() - 3600
        ))
        .await;
    let late = reschedule(&[
        "1",
        "--start",
        "2030-01-18 08:00",
        "--end",
        "2030-01-18 09:00",
    ]);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("the work has started"),
        "{late:?}"
    );
    cli.db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rescheduled_from_the_command_line() {
    rescheduled_from_the_command_line(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rescheduled_from_the_command_line() {
    rescheduled_from_the_command_line(Db::Postgres).await;
}

#[test]
fn help_describes_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "serve",
        "demo",
        "import",
        "tenant",
        "token",
        "keys",
        "outage",
        "causes",
        "privacy",
        "audit",
        "openapi",
        "postcards",
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

#[test]
fn the_grid_benchmark_loads_a_whole_tree_on_both_stores() {
    let pg = common::pg_admin_url();
    let out = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args([
            "bench", "grid", "--nodes", "3000", "--store", "sqlite", "--store", &pg,
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
    // Two substations' worth of 2,511 nodes each.
    for store in ["sqlite", "postgres"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(store))
            .unwrap_or_else(|| panic!("no {store} line in {stdout}"));
        assert!(line.contains("grid nodes     5022"), "{line}");
        for figure in ["read CSV", "first load", "replace"] {
            assert!(line.contains(figure), "{line}");
        }
    }
}

#[test]
fn the_load_benchmark_runs_on_both_stores_and_prints_its_figures() {
    for store in ["sqlite".to_string(), common::pg_admin_url()] {
        let out = Command::new("bench/load.sh")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--bin", env!("CARGO_BIN_EXE_varsel"), "--store", &store])
            .args(["--duration", "1s", "--connections", "4", "--threads", "1"])
            .args(["--sessions", "20", "--clients", "50"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{store}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for figure in [
            "rps=",
            "p50_ms=",
            "p99_ms=",
            "peak (VmHWM)",
            "ms per request",
        ] {
            assert!(stdout.contains(figure), "{store}: {figure} in {stdout}");
        }
        // Right pairs signed in through the API (201) and the page (303); wrong ones were
        // refused as no match (404), not throttled away or failed.
        let status = stdout
            .lines()
            .find(|l| l.starts_with("status "))
            .unwrap_or_else(|| panic!("{store}: no status line in {stdout}"));
        for code in ["200=", "201=", "303=", "404="] {
            assert!(status.contains(code), "{store}: {code} in {status}");
        }
        assert!(!status.contains("500="), "{store}: {status}");
    }
}
