//! The debtor portal's links, from the command line: a link opens to its customer and
//! to no other; an altered, expired or revoked link is refused, and so is one sealed
//! with a key taken out of the configuration, while a key rotated in keeps the links of
//! the one before it working.

use crate::helpers::{workspace_with_rules_and, Workspace};

/// Two keys (base64 of 32 bytes), for the tests only.
pub const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn portal_yaml(keys: &[(u8, &str)]) -> String {
    let mut y =
        String::from("portal:\n  public_url: https://pay.example.com/\n  link_days: 30\n  keys:\n");
    for (id, k) in keys {
        y.push_str(&format!("    - {{ id: {id}, secret: \"{k}\" }}\n"));
    }
    y
}

fn with_keys(w: &Workspace, keys: &[(u8, &str)]) {
    let config = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    let base = config.split("portal:\n").next().unwrap().to_string();
    w.write("relance.yaml", format!("{base}{}", portal_yaml(keys)));
}

fn check(w: &Workspace, link: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["portal", "check", link];
    args.extend_from_slice(extra);
    let run = w.relance(&args);
    (run.code, run.stdout.trim().to_string())
}

#[test]
fn a_portal_link_opens_to_its_customer_only_until_it_expires_is_revoked_or_its_key_is_withdrawn() {
    let w = workspace_with_rules_and(&[("smb", "[]")], &portal_yaml(&[(1, KEY_1)]));
    w.import_ledger(
        "external_id,name,segment\nC1,Client Un,smb\nC2,Client Deux,smb\n",
        "number,customer,issue_date,due_date,amount\nF1,C1,2026-10-01,2026-10-31,100.00\n",
    );
    let link = |c: &str| {
        let run = w.relance(&["portal", "link", c, "--as-of", "2026-12-01"]);
        run.expect_code(0);
        run.stdout.trim().to_string()
    };
    let (l1, l2) = (link("C1"), link("C2"));
    assert!(l1.starts_with("https://pay.example.com/p/"), "{l1}");
    // Two links of one customer differ (the customer is sealed, with a random nonce).
    assert_ne!(l1, link("C1"));
    assert_eq!(l1.len(), l2.len());
    let at = ["--as-of", "2026-12-15"];
    assert_eq!(check(&w, &l1, &at).0, 0);
    assert!(
        check(&w, &l1, &at).1.contains("customer C1"),
        "{:?}",
        check(&w, &l1, &at)
    );
    assert!(check(&w, &l2, &at).1.contains("customer C2"));
    // Valid 30 days: on the last day, not the day after.
    assert_eq!(check(&w, &l1, &["--as-of", "2026-12-31"]).0, 0);
    let (code, out) = check(&w, &l1, &["--as-of", "2027-01-01"]);
    assert_eq!((code, out.as_str()), (4, "refused: expired on 2026-12-31"));
    // One character changed anywhere in the token: refused.
    let token = l1.rsplit('/').next().unwrap();
    for i in [0, 5, 20, 40, token.len() - 2] {
        let mut t = token.as_bytes().to_vec();
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        let (code, out) = check(&w, &String::from_utf8(t).unwrap(), &at);
        assert_eq!(code, 4, "{i}: {out}");
        assert!(out.starts_with("refused:"), "{out}");
    }
    for junk in [
        "",
        "https://pay.example.com/p/",
        "not a link",
        &"A".repeat(5000),
    ] {
        assert_eq!(check(&w, junk, &at).0, 4, "{junk:.20}");
    }
    // A key rotated in: new links are sealed with it, the old ones still open.
    with_keys(&w, &[(2, KEY_2), (1, KEY_1)]);
    let newer = link("C1");
    assert_eq!(check(&w, &l1, &at).0, 0);
    assert_eq!(check(&w, &newer, &at).0, 0);
    // The old key withdrawn: its links are refused, the new key's still open.
    with_keys(&w, &[(2, KEY_2)]);
    assert_eq!(
        check(&w, &l1, &at),
        (
            4,
            "refused: sealed with a key that is not configured (any more)".into()
        )
    );
    assert_eq!(check(&w, &newer, &at).0, 0);
    // Revoking C1's links refuses every one of them, not C2's; a new link opens.
    with_keys(&w, &[(2, KEY_2), (1, KEY_1)]);
    w.relance(&["portal", "revoke", "C1"]).expect_code(0);
    assert_eq!(
        check(&w, &newer, &at),
        (
            4,
            "refused: revoked: the customer's links were revoked since".into()
        )
    );
    assert_eq!(check(&w, &l2, &at).0, 0);
    assert_eq!(check(&w, &link("C1"), &at).0, 0);
    // Unknown customers; a configuration without the portal.
    w.relance(&["portal", "link", "C9"]).expect_code(4);
    w.relance(&["portal", "revoke", "C9"]).expect_code(4);
    let config = std::fs::read_to_string(w.path("relance.yaml")).unwrap();
    w.write("relance.yaml", config.split("portal:\n").next().unwrap());
    let run = w.relance(&["portal", "link", "C1"]);
    run.expect_code(3);
    assert!(run.stderr.contains("portal.public_url"), "{}", run.stderr);
}

#[test]
fn a_bad_portal_configuration_is_refused_with_the_field_and_never_shows_the_key() {
    let w = workspace_with_rules_and(
        &[("smb", "[]")],
        "portal:\n  public_url: pay.example.com\n  link_days: 0\n  keys:\n    - { id: 1, secret: \"c2hvcnQ=\" }\n    - { id: 1, secret: \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\" }\n",
    );
    let run = w.relance(&["config", "check"]);
    run.expect_code(3);
    for field in [
        "portal.public_url",
        "portal.link_days",
        "portal.keys[0].secret",
        "portal.keys[1].id",
    ] {
        assert!(run.stderr.contains(field), "{field}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("c2hvcnQ="), "{}", run.stderr);
}
