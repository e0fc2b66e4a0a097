//! The postcard print job as a print house gets it: the CSV read back by a CSV reader, the
//! PDF opened by poppler (`pdftoppm`, `pdffonts`, `pdftotext`, `pdfinfo` from
//! poppler-utils, which `.ci/run` installs), and the sample command an operator runs.

mod common;

use std::path::Path;
use std::process::Command;

use common::TempDir;
use jiff::Zoned;
use proptest::prelude::*;
use varsel::domain::language::Language;
use varsel::domain::service::ServiceKind;
use varsel::postcards::{AffectedFacility, CSV_COLUMNS, Postcard, PrintJob, Recipient};

fn at(day: i8, hour: i8) -> Zoned {
    jiff::civil::date(2027, 4, day)
        .at(hour, 0, 0, 0)
        .in_tz("Europe/Oslo")
        .expect("valid time")
}

fn card(language: Language, name: &str, street: &str, postcode: &str, town: &str) -> Postcard {
    Postcard {
        language,
        recipient: Recipient {
            name: name.into(),
            street: street.into(),
            postcode: postcode.into(),
            town: town.into(),
            country: None,
        },
        facilities: vec![AffectedFacility {
            number: "707057500012345678".into(),
            address: format!("{street}, {town}"),
        }],
        service: ServiceKind::Electricity,
        starts_at: at(13, 9),
        ends_at: at(13, 14),
        reason: match language {
            Language::Nb => "Vi bytter kabler i Æsøy-gata.".into(),
            _ => "Vi byter kablar på Ödegårdsvägen.".into(),
        },
        tenant: "Fjordkraft Nett Ærø".into(),
        contact: "22 33 44 55".into(),
    }
}

fn nordic_cards() -> Vec<Postcard> {
    vec![
        card(
            Language::Nb,
            "Bjørn Ødegård Æsøy",
            "Øvre Ærøvei 7",
            "0150",
            "Oslo",
        ),
        card(
            Language::Nb,
            "ÆRLIG ØSTBY-ÅSEN",
            "Storgata 1",
            "9008",
            "Tromsø",
        ),
        card(
            Language::Sv,
            "Åsa Öberg-Ängström",
            "Älvgatan 4",
            "0560",
            "Oslo",
        ),
    ]
}

/// Runs a poppler tool; a missing tool fails the test, since CI installs it.
fn poppler(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} did not start ({e}): install poppler-utils, as .ci/run does")
    });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks a PDF as a print house would: A6 pages that render, every font embedded as a
/// subset with a Unicode map, and the given names in its text.
fn check_pdf(pdf: &Path, pages: usize, names: &[&str]) {
    let info = poppler("pdfinfo", &[pdf.to_str().unwrap()]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("pdfinfo shows no {name}: {info}"))
    };
    assert_eq!(field("Pages:"), pages.to_string());
    // 148 x 105 mm in points.
    assert_eq!(field("Page size:"), "419.528 x 297.638 pts");

    let dir = pdf.parent().unwrap();
    let prefix = dir.join("page");
    poppler(
        "pdftoppm",
        &[
            "-png",
            "-r",
            "50",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    let mut pngs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), pages, "{pngs:?}");
    for png in &pngs {
        let bytes = std::fs::read(png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
        // A blank A6 page at 50 dpi compresses to a few hundred bytes; text makes thousands.
        assert!(bytes.len() > 2_000, "{} looks blank", png.display());
    }

    let fonts = poppler("pdffonts", &[pdf.to_str().unwrap()]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{fonts}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // name, type (two words), encoding, emb, sub, uni, object, id
        assert!(
            cols[0].ends_with("+DejaVuSans") || cols[0].ends_with("+DejaVuSans-Bold"),
            "{row}"
        );
        assert_eq!(cols[0].find('+'), Some(6), "{row}");
        assert_eq!(&cols[1..4], ["CID", "TrueType", "Identity-H"], "{row}");
        assert_eq!(&cols[4..7], ["yes", "yes", "yes"], "emb sub uni: {row}");
    }

    let text = poppler("pdftotext", &["-enc", "UTF-8", pdf.to_str().unwrap(), "-"]);
    for name in names {
        assert!(text.contains(name), "{name} not in the PDF's text:\n{text}");
    }
}

#[test]
fn a_pdf_of_nordic_names_renders_with_its_fonts_embedded() {
    let job = PrintJob::new(nordic_cards(), "NO").unwrap();
    let dir = TempDir::new();
    let pdf = dir.path().join("cards.pdf");
    let bytes = job.pdf().unwrap();
    std::fs::write(&pdf, &bytes).unwrap();
    check_pdf(
        &pdf,
        6,
        &[
            "Bjørn Ødegård Æsøy",
            "ÆRLIG ØSTBY-ÅSEN",
            "Åsa Öberg-Ängström",
            "Øvre Ærøvei 7",
            "9008 Tromsø",
            "Planlagt strømbrudd",
            "Planerat strömavbrott",
            "tir. 13.4.2027 09:00–14:00",
            "tis 13/4 2027 09:00–14:00",
            "Fjordkraft Nett Ærø",
            "Vi byter kablar på Ödegårdsvägen.",
        ],
    );
    // Subsets, not whole fonts: DejaVu Sans alone is 740 KiB.
    assert!(bytes.len() < 120_000, "{} bytes", bytes.len());
    // The same job gives the same bytes, so a reprint can be compared with the first.
    assert_eq!(job.pdf().unwrap(), bytes);
}

#[test]
fn a_holder_with_many_facilities_and_long_texts_stays_on_the_card() {
    let mut c = card(
        Language::Sv,
        &"Åsa Öberg-Ängström ".repeat(8),
        &"Älvgatan ".repeat(12),
        "12345",
        "Ö".repeat(80).as_str(),
    );
    c.facilities = (0..9)
        .map(|i| AffectedFacility {
            number: format!("73599910000000{i:04}"),
            address: format!("Sjöstigen {i}, Ödeby"),
        })
        .collect();
    c.reason = "Vi byter kablar och stolpar längs hela Ödegårdsvägen. ".repeat(10);
    let job = PrintJob::new(vec![c], "SE").unwrap();
    let dir = TempDir::new();
    let pdf = dir.path().join("long.pdf");
    std::fs::write(&pdf, job.pdf().unwrap()).unwrap();
    check_pdf(
        &pdf,
        2,
        &["Sjöstigen 2, Ödeby", "och 6 anläggningar till", "…"],
    );
    // No text is drawn outside the 8 mm margins: poppler's bounding boxes say where.
    let html = poppler("pdftotext", &["-bbox", pdf.to_str().unwrap(), "-"]);
    let margin = 8.0 * 72.0 / 25.4 - 1.0;
    let attr = |line: &str, name: &str| -> f32 {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..].split('"').next().unwrap().parse().unwrap()
    };
    let mut words = 0;
    for line in html.lines().filter(|l| l.trim_start().starts_with("<word")) {
        words += 1;
        let (x0, y0, x1, y1) = (
            attr(line, "xMin"),
            attr(line, "yMin"),
            attr(line, "xMax"),
            attr(line, "yMax"),
        );
        assert!(x0 >= margin && y0 >= margin, "{line}");
        assert!(x1 <= 419.53 - margin && y1 <= 297.64 - margin, "{line}");
    }
    assert!(words > 50, "{words} words");
}

fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let body = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .expect("the CSV starts with a UTF-8 byte-order mark");
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').from_reader(body);
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[test]
fn csv_fields_with_commas_quotes_and_nordic_letters_read_back() {
    let mut cards = nordic_cards();
    cards[0].recipient.name = "Ødegård, Bjørn \"Bjønnen\"; Æsøy".into();
    cards[1].recipient.street = "c/o Åström\nÄngsvägen 1".into();
    cards[2].facilities.push(AffectedFacility {
        number: "2".into(),
        address: "Sjöstigen 8, Ödeby".into(),
    });
    let job = PrintJob::new(cards, "NO").unwrap();
    let bytes = job.csv().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains("\"Ødegård, Bjørn \"\"Bjønnen\"\"; Æsøy\""),
        "{text}"
    );
    assert!(text.ends_with("\r\n"));

    let (header, rows) = read_csv(&bytes);
    assert_eq!(header, CSV_COLUMNS);
    assert_eq!(rows.len(), 3);
    let column = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    for (row, (card, text)) in rows.iter().zip(job.cards().zip(job.texts())) {
        assert_eq!(row.len(), CSV_COLUMNS.len());
        assert_eq!(row[column("name")], card.recipient.name);
        assert_eq!(row[column("street")], card.recipient.street);
        assert_eq!(row[column("town")], card.recipient.town);
        assert_eq!(row[column("language")], card.language.as_str());
        assert_eq!(row[column("headline")], text.headline);
        assert_eq!(row[column("facilities")], text.facilities.join("\n"));
        assert_eq!(
            row[column("facility_count")],
            text.facilities.len().to_string()
        );
        assert_eq!(row[column("starts_at")], "2027-04-13T09:00:00+02:00");
    }
    let names: Vec<&str> = rows.iter().map(|r| r[column("name")].as_str()).collect();
    // Print order is by postcode: 0150, 0560, 9008.
    assert_eq!(
        names,
        [
            "Ødegård, Bjørn \"Bjønnen\"; Æsøy",
            "Åsa Öberg-Ängström",
            "ÆRLIG ØSTBY-ÅSEN"
        ]
    );
    assert_eq!(rows[0][column("card")], "1");
    assert_eq!(rows[1][column("facility_count")], "2");
}

#[test]
fn the_documented_columns_are_the_written_ones() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/postcards.md")).unwrap();
    let documented: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|c| CSV_COLUMNS.contains(c))
        .collect();
    assert_eq!(documented, CSV_COLUMNS);
}

#[test]
fn the_sample_command_writes_a_proof_in_each_language() {
    let dir = TempDir::new();
    for lang in [None, Some("sv"), Some("nb"), Some("en")] {
        let out = dir.path().join(lang.unwrap_or("mixed"));
        let mut args = vec!["postcards", "sample", "--out", out.to_str().unwrap()];
        args.extend(lang.map(|l| ["--language", l]).into_iter().flatten());
        let run = Command::new(env!("CARGO_BIN_EXE_varsel"))
            .args(&args)
            .env_remove("VARSEL_CONFIG")
            .env("VARSEL_DATA_DIR", dir.path())
            .env("VARSEL_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains("3 sample cards"), "{stdout}");

        let (_, rows) = read_csv(&std::fs::read(out.join("postcards-sample.csv")).unwrap());
        let languages: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
        match lang {
            None => assert_eq!(languages, ["sv", "en", "nb"]),
            Some(l) => assert_eq!(languages, [l, l, l]),
        }
        let headline = match lang {
            Some("nb") => "Planlagt strømbrudd",
            Some("en") => "Planned power cut",
            _ => "Planerat strömavbrott",
        };
        check_pdf(
            &out.join("postcards-sample.pdf"),
            6,
            &[
                "Åsa Öberg-Ängström",
                "Bjørn Ødegård Æsøy",
                "Lindqvist, Per \"Pelle\"",
                "NORWAY",
                headline,
            ],
        );
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args([
            "postcards",
            "sample",
            "--out",
            dir.path().to_str().unwrap(),
            "--language",
            "de",
        ])
        .env_remove("VARSEL_CONFIG")
        .env("VARSEL_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("sv (Swedish), nb"));
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "\\PC{0,60}", "[ÅÄÖÆØåäöæø,;\"\r\n ]{0,20}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_holder_reads_back_from_the_csv_and_prints(
        name in any_text(),
        street in any_text(),
        postcode in any_text(),
        town in any_text(),
        country in proptest::option::of(any_text()),
        lang in prop_oneof![Just(Language::Sv), Just(Language::Nb), Just(Language::En)],
    ) {
        let mut c = card(lang, &name, &street, &postcode, &town);
        c.recipient.country = country;
        c.facilities[0].address = street.clone();
        let job = PrintJob::new(vec![c], "SE").unwrap();
        let (header, rows) = read_csv(&job.csv().unwrap());
        prop_assert_eq!(header, CSV_COLUMNS);
        prop_assert_eq!(rows.len(), 1);
        let text = job.texts().next().unwrap();
        let a = &text.address;
        prop_assert_eq!(&rows[0][2..7], &[
            a.name.clone(),
            a.street.clone(),
            a.postcode.clone(),
            a.town.clone(),
            a.country.clone().unwrap_or_default(),
        ]);
        // The address fields are the holder's, only trimmed.
        prop_assert_eq!(&a.name, name.trim());
        prop_assert_eq!(&a.street, street.trim());
        prop_assert_eq!(&a.town, town.trim());
        let pdf = job.pdf().unwrap();
        prop_assert!(pdf.starts_with(b"%PDF-"));
    }
}
