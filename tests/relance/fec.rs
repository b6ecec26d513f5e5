//! The FEC (Fichier des Écritures Comptables) into the ledger: the sample's FEC gives
//! the ledger its CSV files give; a FEC as accounting software writes it (ISO-8859-15,
//! tabs, `Montant`/`Sens`, lettering, a due-date column or none) reads into customers,
//! invoices and lettered payments; a newer FEC of the same year updates without
//! duplicating; an invalid line is named and nothing is written.

use serde_json::Value;

use crate::helpers::{workspace_with_rules_and, Workspace};

fn ledger(w: &Workspace, as_of: &str) -> Value {
    let run = w.relance(&["ledger", "--as-of", as_of, "--format", "json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

/// The aged balance per customer, without what only the customer file knows.
fn balances(w: &Workspace, as_of: &str) -> Value {
    let run = w.relance(&[
        "report", "aging", "--as-of", as_of, "--top", "10000", "--format", "json",
    ]);
    run.expect_code(0);
    let mut v: Value = serde_json::from_str(&run.stdout).unwrap();
    for c in v["customers"].as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        c.remove("segment");
        c.remove("collector");
    }
    v
}

fn three_segments() -> Workspace {
    workspace_with_rules_and(
        &[
            ("smb", "[]"),
            ("key_accounts", "[]"),
            ("public_sector", "[]"),
        ],
        "",
    )
}

#[test]
fn the_samples_fec_gives_the_ledger_its_csv_files_give() {
    for history in ["0", "365"] {
        let from_csv = three_segments();
        let run = from_csv.relance(&[
            "sample",
            "--customers",
            "80",
            "--invoices",
            "1200",
            "--as-of",
            "2026-12-01",
            "--history-days",
            history,
            "--fec",
            "--out",
            "sample",
        ]);
        run.expect_code(0);
        assert!(run.stdout.contains("FEC20261201.txt"), "{}", run.stdout);
        for kind in ["customers", "invoices", "payments"] {
            from_csv
                .relance(&["import", kind, &format!("sample/{kind}.csv")])
                .expect_code(0);
        }
        let fec = from_csv.path("sample/FEC20261201.txt");
        let from_fec = three_segments();
        let run = from_fec.relance(&["import", "fec", fec.to_str().unwrap(), "--segment", "smb"]);
        run.expect_code(0);
        assert!(run.stdout.contains("customers: 80 new"), "{}", run.stdout);
        assert!(
            run.stdout.contains("allocated by their lettering"),
            "{}",
            run.stdout
        );
        let (a, b) = (
            ledger(&from_csv, "2026-12-01"),
            ledger(&from_fec, "2026-12-01"),
        );
        assert_eq!(a["by_currency"], b["by_currency"], "history {history}");
        for k in ["customers", "invoices", "payments"] {
            assert_eq!(a[k], b[k], "{k}, history {history}");
        }
        assert_eq!(
            balances(&from_csv, "2026-12-01"),
            balances(&from_fec, "2026-12-01"),
            "history {history}"
        );
        // The same FEC again: nothing new, nothing changed.
        let run = from_fec.relance(&["import", "fec", fec.to_str().unwrap(), "--format", "json"]);
        run.expect_code(0);
        let r: Value = serde_json::from_str(&run.stdout).unwrap();
        for k in ["customers", "invoices", "payments"] {
            assert_eq!(r[k]["inserted"], 0, "{k}: {r}");
            assert_eq!(r[k]["updated"], 0, "{k}: {r}");
        }
        assert_eq!(
            ledger(&from_fec, "2026-12-01")["by_currency"],
            a["by_currency"]
        );
    }
}

/// An export as accounting software writes one: ISO-8859-15, tab separated, decimal
/// commas, `Montant` and `Sens` instead of `Debit` and `Credit`, an opening entry, a
/// payment lettered with two invoices whose label names none, a partial payment.
const HEADER: &str = "JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\tCompteLib\tCompAuxNum\tCompAuxLib\tPieceRef\tPieceDate\tEcritureLib\tMontant\tSens\tEcritureLet\tDateLet\tValidDate\tMontantdevise\tIdevise";

fn line(fields: [&str; 18]) -> String {
    fields.join("\t")
}

fn latin9(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::ISO_8859_15.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

fn january() -> Vec<String> {
    vec![
        HEADER.to_string(),
        line([
            "AN",
            "A nouveaux",
            "1",
            "20260101",
            "411000",
            "Clients",
            "CLI-ÉTÉ",
            "Société Été",
            "FA-2025-90",
            "20251215",
            "Report à nouveau",
            "1 200,00",
            "D",
            "",
            "",
            "20260101",
            "",
            "",
        ]),
        line([
            "AN",
            "A nouveaux",
            "1",
            "20260101",
            "890000",
            "Bilan d'ouverture",
            "",
            "",
            "FA-2025-90",
            "20251215",
            "Report à nouveau",
            "1 200,00",
            "C",
            "",
            "",
            "20260101",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "2",
            "20260110",
            "411000",
            "Clients",
            "CLI-ÉTÉ",
            "Société Été",
            "FA-2026-01",
            "20260110",
            "Facture FA-2026-01",
            "600,00",
            "D",
            "AB",
            "20260205",
            "20260110",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "2",
            "20260110",
            "706000",
            "Ventes",
            "",
            "",
            "FA-2026-01",
            "20260110",
            "Facture FA-2026-01",
            "500,00",
            "C",
            "",
            "",
            "20260110",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "2",
            "20260110",
            "445710",
            "TVA",
            "",
            "",
            "FA-2026-01",
            "20260110",
            "Facture FA-2026-01",
            "100,00",
            "C",
            "",
            "",
            "20260110",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "3",
            "20260115",
            "411000",
            "Clients",
            "CLI-ÉTÉ",
            "Société Été",
            "FA-2026-02",
            "20260115",
            "Facture FA-2026-02",
            "240,00",
            "D",
            "AB",
            "20260205",
            "20260115",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "3",
            "20260115",
            "706000",
            "Ventes",
            "",
            "",
            "FA-2026-02",
            "20260115",
            "Facture FA-2026-02",
            "240,00",
            "C",
            "",
            "",
            "20260115",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "4",
            "20260120",
            "411000",
            "Clients",
            "CLI-BOIS",
            "Menuiserie du Bois",
            "FA-2026-03",
            "20260120",
            "Facture FA-2026-03",
            "3 000,00",
            "D",
            "",
            "",
            "20260120",
            "",
            "",
        ]),
        line([
            "VE",
            "Ventes",
            "4",
            "20260120",
            "706000",
            "Ventes",
            "",
            "",
            "FA-2026-03",
            "20260120",
            "Facture FA-2026-03",
            "3 000,00",
            "C",
            "",
            "",
            "20260120",
            "",
            "",
        ]),
    ]
}

fn february() -> Vec<String> {
    let mut lines = january();
    lines.extend([
        line([
            "BQ",
            "Banque",
            "5",
            "20260205",
            "512000",
            "Banque",
            "",
            "",
            "REL-0205",
            "20260205",
            "VIR ETE SARL",
            "840,00",
            "D",
            "",
            "",
            "20260205",
            "",
            "",
        ]),
        line([
            "BQ",
            "Banque",
            "5",
            "20260205",
            "411000",
            "Clients",
            "CLI-ÉTÉ",
            "Société Été",
            "REL-0205",
            "20260205",
            "VIR ETE SARL",
            "840,00",
            "C",
            "AB",
            "20260205",
            "20260205",
            "",
            "",
        ]),
        line([
            "BQ",
            "Banque",
            "6",
            "20260210",
            "512000",
            "Banque",
            "",
            "",
            "REL-0210",
            "20260210",
            "VIR BOIS acompte",
            "1 000,00",
            "D",
            "",
            "",
            "20260210",
            "",
            "",
        ]),
        line([
            "BQ",
            "Banque",
            "6",
            "20260210",
            "411000",
            "Clients",
            "CLI-BOIS",
            "Menuiserie du Bois",
            "REL-0210",
            "20260210",
            "VIR BOIS acompte",
            "1 000,00",
            "C",
            "",
            "",
            "20260210",
            "",
            "",
        ]),
    ]);
    lines
}

fn write_fec(w: &Workspace, name: &str, lines: &[String]) -> String {
    let path = w.write(name, latin9(&(lines.join("\r\n") + "\r\n")));
    path.to_str().unwrap().to_string()
}

#[test]
fn a_fec_as_accounting_software_writes_it_is_read_lettered_and_updated_by_a_newer_one() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    let jan = write_fec(&w, "FEC-jan.txt", &january());
    // New customers need a segment.
    let run = w.relance(&["import", "fec", &jan]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("column '--segment'") && run.stderr.contains("CLI-ÉTÉ"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("nothing written"), "{}", run.stdout);
    let run = w.relance(&[
        "import",
        "fec",
        &jan,
        "--segment",
        "smb",
        "--terms-days",
        "45",
    ]);
    run.expect_code(0);
    assert!(run.stdout.contains("customers: 2 new"), "{}", run.stdout);
    assert!(run.stdout.contains("invoices: 4 new"), "{}", run.stdout);
    let run = w.relance(&["customer", "CLI-ÉTÉ"]);
    run.expect_code(0);
    assert!(run.stdout.contains("Société Été"), "{}", run.stdout);
    // No due date in the file: the terms given.
    assert!(
        run.stdout
            .contains("FA-2026-01     issued 2026-01-10 due 2026-02-24"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("FA-2025-90     issued 2025-12-15 due 2026-01-29"),
        "{}",
        run.stdout
    );

    // February's FEC of the same year: January's entries again, and two payments.
    let feb = write_fec(&w, "FEC-feb.txt", &february());
    let run = w.relance(&[
        "import",
        "fec",
        &feb,
        "--terms-days",
        "45",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r["invoices"]["unchanged"], 4, "{r}");
    assert_eq!(r["invoices"]["inserted"], 0, "{r}");
    assert_eq!(r["payments"]["inserted"], 2, "{r}");
    assert_eq!(r["lettered"], 1, "{r}");
    // The lettered payment settles both invoices of its letter, not the oldest one.
    let run = w.relance(&["customer", "CLI-ÉTÉ"]);
    assert!(
        run.stdout
            .contains("BQ5-CLI-ÉTÉ    2026-02-05 payment 840.00 EUR → FA-2026-01 600.00, FA-2026-02 240.00; unapplied 0.00"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("FA-2026-02"), "{}", run.stdout);
    assert!(
        run.stdout.contains("1200.00 open      1200.00"),
        "FA-2025-90 stays open: {}",
        run.stdout
    );
    // The partial payment goes to the only invoice.
    let run = w.relance(&["customer", "CLI-BOIS"]);
    assert!(
        run.stdout.contains("3000.00 open      2000.00"),
        "{}",
        run.stdout
    );
    // Once more: nothing changes.
    let run = w.relance(&[
        "import",
        "fec",
        &feb,
        "--terms-days",
        "45",
        "--format",
        "json",
    ]);
    let r: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (
            r["payments"]["unchanged"].as_u64(),
            r["payments"]["inserted"].as_u64()
        ),
        (Some(2), Some(0)),
        "{r}"
    );
    let l = ledger(&w, "2026-03-01");
    assert_eq!(
        (l["invoices"].as_u64(), l["payments"].as_u64()),
        (Some(4), Some(2)),
        "{l}"
    );
}

#[test]
fn an_invalid_fec_is_named_by_line_and_column_and_nothing_is_written() {
    let w = workspace_with_rules_and(&[("smb", "[]")], "");
    let mut lines = february();
    lines[4] = lines[4].replace("20260110\t706000", "20261310\t706000");
    // Line 7 (the 6th entry line): not a date on a customer account.
    lines[6] = lines[6].replacen("20260115", "2026-13-45", 1);
    lines[8] = lines[8].replace("3 000,00\tD", "3 000,00\tX");
    let bad = write_fec(&w, "FEC-bad.txt", &lines);
    let run = w.relance(&["import", "fec", &bad, "--segment", "smb"]);
    run.expect_code(4);
    assert!(
        run.stdout.contains("rejected, nothing written"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "FEC-bad.txt:7: column 'EcritureDate': '2026-13-45' is not a date (AAAAMMJJ)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("FEC-bad.txt:9: column 'Sens': 'X' is not D or C"),
        "{}",
        run.stderr
    );
    assert_eq!(ledger(&w, "2026-03-01")["customers"], 0);
    // Standard columns missing: named.
    let short = w.write(
        "FEC-short.txt",
        "JournalCode|EcritureNum|CompteNum|Debit|Credit\nVE|1|411000|10,00|0,00\n",
    );
    let run = w.relance(&["import", "fec", short.to_str().unwrap(), "--segment", "smb"]);
    run.expect_code(4);
    assert!(
        run.stderr.contains("EcritureDate") && run.stderr.contains("CompAuxNum"),
        "{}",
        run.stderr
    );
    // A FEC is whole or nothing.
    let run = w.relance(&["import", "fec", &bad, "--skip-invalid"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("--skip-invalid does not apply to a FEC"),
        "{}",
        run.stderr
    );
    // An unknown segment is refused before anything is read.
    let run = w.relance(&["import", "fec", &bad, "--segment", "smbb"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("unknown segment 'smbb'"),
        "{}",
        run.stderr
    );
}
