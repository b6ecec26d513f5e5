//! What a payer needs to pay by SEPA credit transfer without typing mistakes: the
//! creditor's IBAN checked (ISO 13616), a structured creditor reference (ISO 11649, `RF`
//! and two check digits) the bank statement brings back, and the payload of the EPC QR
//! code (EPC069-12, version 002) a banking app scans.

use rust_decimal::Decimal;

/// ISO 7064 MOD 97-10 over letters as numbers (A = 10 … Z = 35) and digits: the check
/// of IBANs and of creditor references. `None` for another character.
fn mod97(s: &str) -> Option<u32> {
    let mut rem: u32 = 0;
    for c in s.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return None,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    Some(rem)
}

/// `s` without spaces, in upper case.
fn compact(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Why a text is not an IBAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IbanError {
    /// Not 15 to 34 letters and digits starting with a country code and two digits.
    Format,
    /// The check digits do not match the rest.
    CheckDigits,
}

/// The IBAN, compact and upper case, when its format and check digits are right.
///
/// # Errors
/// [`IbanError`]: its format, or its check digits.
pub fn check_iban(s: &str) -> Result<String, IbanError> {
    let s = compact(s);
    let ok_shape = (15..=34).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s[..2].chars().all(|c| c.is_ascii_uppercase())
        && s[2..4].chars().all(|c| c.is_ascii_digit());
    if !ok_shape {
        return Err(IbanError::Format);
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    if mod97(&rearranged) == Some(1) {
        Ok(s)
    } else {
        Err(IbanError::CheckDigits)
    }
}

/// The IBAN, compact and upper case, when its format and check digits are right.
pub fn iban(s: &str) -> Option<String> {
    check_iban(s).ok()
}

/// The ISO 11649 creditor reference of `reference` (letters and digits, up to 21 of
/// them once other characters are left out): `RF`, two check digits, the reference.
/// `None` when nothing or too much is left.
pub fn creditor_reference(reference: &str) -> Option<String> {
    let r: String = compact(reference)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if r.is_empty() || r.len() > 21 {
        return None;
    }
    let check = 98 - mod97(&format!("{r}RF00"))?;
    Some(format!("RF{check:02}{r}"))
}

/// Whether `s` is a valid ISO 11649 creditor reference (spaces allowed).
pub fn is_creditor_reference(s: &str) -> bool {
    let s = compact(s);
    s.len() >= 5
        && s.len() <= 25
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.starts_with("RF")
        && s[2..4].chars().all(|c| c.is_ascii_digit())
        && s[4..].chars().all(|c| c.is_ascii_alphanumeric())
        && mod97(&format!("{}{}", &s[4..], &s[..4])) == Some(1)
}

/// A SEPA credit transfer for an EPC QR code.
#[derive(Debug, Clone)]
pub struct CreditTransfer<'a> {
    /// The beneficiary (up to 70 characters).
    pub name: &'a str,
    pub iban: &'a str,
    /// The beneficiary's bank (8 or 11 characters); optional within the EEA.
    pub bic: Option<&'a str>,
    /// In euros, 0.01 to 999,999,999.99.
    pub amount: Option<Decimal>,
    /// A structured creditor reference (RF…), or else…
    pub reference: Option<&'a str>,
    /// …a remittance text (up to 140 characters).
    pub text: Option<&'a str>,
}

/// Why a transfer cannot be put in an EPC QR code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpcError {
    #[error("the beneficiary's name must have 1 to 70 characters")]
    Name,
    #[error("'{0}' is not a valid IBAN")]
    Iban(String),
    #[error("'{0}' is not a BIC (8 or 11 letters and digits)")]
    Bic(String),
    #[error("the amount must be from 0.01 to 999999999.99 euros with at most 2 decimals")]
    Amount,
    #[error("'{0}' is not an ISO 11649 creditor reference")]
    Reference(String),
    #[error("the remittance text must have at most 140 characters")]
    Text,
    #[error("a transfer carries a creditor reference or a remittance text, not both")]
    Both,
}

/// The EPC QR code's payload (EPC069-12 version 002, UTF-8): lines separated by `\n`,
/// nothing after the last element given.
///
/// # Errors
/// [`EpcError`]: a value the guidelines do not allow.
pub fn epc_qr_payload(t: &CreditTransfer<'_>) -> Result<String, EpcError> {
    let name = t.name.trim();
    if name.is_empty() || name.chars().count() > 70 || name.contains(['\n', '\r']) {
        return Err(EpcError::Name);
    }
    let iban = iban(t.iban).ok_or_else(|| EpcError::Iban(t.iban.to_string()))?;
    let bic = match t.bic.map(compact) {
        Some(b)
            if !(b.len() == 8 || b.len() == 11)
                || !b.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            return Err(EpcError::Bic(b))
        }
        b => b.unwrap_or_default(),
    };
    let amount = match t.amount {
        None => String::new(),
        Some(a) => {
            let max = Decimal::new(99_999_999_999, 2);
            if a < Decimal::new(1, 2) || a > max || a.normalize().scale() > 2 {
                return Err(EpcError::Amount);
            }
            format!("EUR{:.2}", a)
        }
    };
    if t.reference.is_some() && t.text.is_some() {
        return Err(EpcError::Both);
    }
    let reference = match t.reference {
        Some(r) if !is_creditor_reference(r) => return Err(EpcError::Reference(r.to_string())),
        Some(r) => compact(r),
        None => String::new(),
    };
    let text = match t.text.map(str::trim) {
        Some(x) if x.chars().count() > 140 || x.contains(['\n', '\r']) => {
            return Err(EpcError::Text)
        }
        Some(x) => x.to_string(),
        None => String::new(),
    };
    let lines = [
        "BCD", "002", "1", "SCT", &bic, name, &iban, &amount, "", &reference, &text,
    ];
    let last = lines.iter().rposition(|l| !l.is_empty()).unwrap_or(0);
    Ok(lines[..=last].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_checked_by_their_digits() {
        assert_eq!(
            iban("fr76 3000 6000 0112 3456 7890 189").as_deref(),
            Some("FR7630006000011234567890189")
        );
        assert!(iban("GB82WEST12345698765432").is_some());
        assert!(iban("DE33100205000001194700").is_some());
        assert!(
            iban("FR7630006000011234567890188").is_none(),
            "a wrong digit"
        );
        assert!(iban("FR76").is_none());
        assert!(iban("FR76 3000 6000 0112 3456 7890 18é").is_none());
    }

    #[test]
    fn a_creditor_reference_carries_check_digits_that_catch_a_wrong_character() {
        // ISO 11649's example.
        assert_eq!(
            creditor_reference("539007547034").as_deref(),
            Some("RF18539007547034")
        );
        assert!(is_creditor_reference("RF18 5390 0754 7034"));
        assert!(!is_creditor_reference("RF18539007547035"));
        assert!(!is_creditor_reference("RF19539007547034"));
        // Not letters and digits: refused, never a panic.
        for junk in [
            "RFaé1234",
            "RFé",
            "RF18 5390 0754 703é",
            "ＲＦ18539007547034",
        ] {
            assert!(!is_creditor_reference(junk), "{junk}");
        }
        assert!(iban("FRé6 3000 6000 0112 3456 7890 189").is_none());
        assert!(iban("éé").is_none());
        let r = creditor_reference("F-2026-0042").unwrap();
        assert!(r.starts_with("RF") && r.ends_with("F20260042"), "{r}");
        assert!(is_creditor_reference(&r));
        assert_eq!(creditor_reference("---"), None);
        assert_eq!(creditor_reference(&"9".repeat(22)), None);
    }

    #[test]
    fn the_epc_payload_follows_the_guidelines() {
        let t = CreditTransfer {
            name: "Wikimedia Foerdergesellschaft",
            iban: "DE33 1002 0500 0001 1947 00",
            bic: None,
            amount: Some(Decimal::new(20, 0)),
            reference: None,
            text: Some("Spende fuer Wikipedia"),
        };
        assert_eq!(
            epc_qr_payload(&t).unwrap(),
            "BCD\n002\n1\nSCT\n\nWikimedia Foerdergesellschaft\nDE33100205000001194700\nEUR20.00\n\n\nSpende fuer Wikipedia"
        );
        let with_ref = CreditTransfer {
            bic: Some("BNPAFRPP"),
            amount: Some(Decimal::new(123_456, 2)),
            reference: Some("RF18 5390 0754 7034"),
            text: None,
            ..t.clone()
        };
        assert_eq!(
            epc_qr_payload(&with_ref).unwrap(),
            "BCD\n002\n1\nSCT\nBNPAFRPP\nWikimedia Foerdergesellschaft\nDE33100205000001194700\nEUR1234.56\n\nRF18539007547034"
        );
        let bad = |f: &dyn Fn(&mut CreditTransfer<'_>)| {
            let mut x = with_ref.clone();
            f(&mut x);
            epc_qr_payload(&x).unwrap_err()
        };
        assert_eq!(
            bad(&|x| x.amount = Some(Decimal::new(1, 3))),
            EpcError::Amount
        );
        assert_eq!(bad(&|x| x.amount = Some(Decimal::ZERO)), EpcError::Amount);
        assert_eq!(
            bad(&|x| x.amount = Some(Decimal::new(1_000_000_000, 0))),
            EpcError::Amount
        );
        assert_eq!(bad(&|x| x.text = Some("both")), EpcError::Both);
        assert_eq!(bad(&|x| x.name = ""), EpcError::Name);
        assert!(matches!(
            bad(&|x| x.iban = "DE00100205000001194700"),
            EpcError::Iban(_)
        ));
        assert!(matches!(bad(&|x| x.bic = Some("BNP")), EpcError::Bic(_)));
        assert!(matches!(
            bad(&|x| x.reference = Some("RF00123")),
            EpcError::Reference(_)
        ));
    }
}
