//! Identifiers and contact details, each parsed once at the edge into a type that is
//! valid by construction.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A contact email address (syntax check only: one `@`, a dotted domain, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);
string_newtype!(EmailAddress);

impl EmailAddress {
    /// # Errors
    /// When the text is not a plausible email address.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let t = text.trim();
        let bad = || InvalidValue(format!("invalid email address '{t}'"));
        let (local, domain) = t.split_once('@').ok_or_else(bad)?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && t.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !t.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
            });
        if ok {
            Ok(EmailAddress(t.to_string()))
        } else {
            Err(bad())
        }
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<EmailAddress> for String {
    fn from(v: EmailAddress) -> String {
        v.0
    }
}

/// A phone number in E.164 form: `+` then 8 to 15 digits. Spaces, dots, dashes and
/// parentheses are accepted on input and removed; a number without the country code
/// is rejected because relance cannot know which country it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);
string_newtype!(PhoneNumber);

impl PhoneNumber {
    /// # Errors
    /// When the number is not in international E.164 form.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let compact: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\u{a0}'))
            .collect();
        let compact = match compact.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => compact,
        };
        let digits = compact.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0')
        {
            Ok(PhoneNumber(compact))
        } else {
            Err(InvalidValue(format!(
                "invalid phone number '{}' (expected E.164, e.g. +33612345678)",
                text.trim()
            )))
        }
    }

    /// Whether this looks like a mobile number that can receive SMS. Known mobile ranges
    /// are checked for France (+336, +337); other countries are assumed to be mobile.
    pub fn is_probably_mobile(&self) -> bool {
        match self.0.strip_prefix("+33") {
            Some(rest) => rest.starts_with('6') || rest.starts_with('7'),
            None => true,
        }
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<PhoneNumber> for String {
    fn from(v: PhoneNumber) -> String {
        v.0
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub const FR: CountryCode = CountryCode(*b"FR");

    /// A code assigned by ISO 3166-1 (the 249 officially assigned alpha-2 codes), as
    /// imports and the HTTP API require: `ZZ` or `XX` are refused.
    ///
    /// # Errors
    /// When the text is not two letters, or not an assigned code.
    pub fn parse_assigned(text: &str) -> Result<Self, InvalidValue> {
        let code = Self::parse(text)?;
        if ISO_3166_ALPHA2.binary_search(&code.as_str()).is_ok() {
            Ok(code)
        } else {
            Err(InvalidValue(format!(
                "'{}' is not an assigned ISO 3166-1 alpha-2 country code (e.g. FR, DE, GB)",
                text.trim()
            )))
        }
    }

    /// Two ASCII letters, upper-cased: the syntax only (values already stored are read
    /// with it); input is checked with [`Self::parse_assigned`].
    ///
    /// # Errors
    /// When the text is not two ASCII letters.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let t = text.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        if b.len() == 2 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(CountryCode([b[0], b[1]]))
        } else {
            Err(InvalidValue(format!(
                "invalid country code '{}' (expected ISO 3166 alpha-2, e.g. FR)",
                text.trim()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl TryFrom<String> for CountryCode {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<CountryCode> for String {
    fn from(v: CountryCode) -> String {
        v.as_str().to_string()
    }
}

/// The officially assigned ISO 3166-1 alpha-2 codes, sorted.
const ISO_3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Most characters in an identifier: a customer's external id, an invoice number, a
/// payment id, and every reference to them.
pub const MAX_ID_CHARS: usize = 64;
/// Most characters in a name or a short value: names, address lines, segment,
/// collector, tags, insurer references.
pub const MAX_NAME_CHARS: usize = 200;
/// Most characters in free text: payment references, reasons, notes.
pub const MAX_TEXT_CHARS: usize = 2000;

/// What a text value is, for its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// An identifier: at most [`MAX_ID_CHARS`].
    Id,
    /// A name or short value: at most [`MAX_NAME_CHARS`].
    Name,
    /// Free text: at most [`MAX_TEXT_CHARS`].
    Text,
}

impl TextKind {
    pub fn max_chars(self) -> usize {
        match self {
            TextKind::Id => MAX_ID_CHARS,
            TextKind::Name => MAX_NAME_CHARS,
            TextKind::Text => MAX_TEXT_CHARS,
        }
    }
}

/// Free text a person typed (a reason, a note): trimmed, not empty, and as
/// [`check_text`] allows.
///
/// # Errors
/// Empty, or what [`check_text`] refuses.
pub fn free_text(text: &str) -> Result<String, InvalidValue> {
    let v = text.trim();
    if v.is_empty() {
        return Err(InvalidValue("must not be empty".into()));
    }
    check_text(v, TextKind::Text)?;
    Ok(v.to_string())
}

/// Checks a text value received from outside (imports, the HTTP API): no control
/// characters (C0, DEL, C1: NUL, ESC, line breaks, tabs...) and at most the kind's
/// length in characters.
///
/// # Errors
/// Naming the first control character, or the length and the bound.
pub fn check_text(text: &str, kind: TextKind) -> Result<(), InvalidValue> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(InvalidValue(format!(
            "contains the control character U+{:04X}; control characters are not allowed",
            u32::from(c)
        )));
    }
    let max = kind.max_chars();
    // Counting stops early: a value of megabytes is not walked to its end.
    let n = text.chars().take(max + 1).count();
    if n > max {
        let total = text.chars().count();
        return Err(InvalidValue(format!(
            "is {total} characters long; at most {max} are allowed"
        )));
    }
    Ok(())
}

/// The language customers are written to in. Templates exist per locale.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    Fr,
    En,
}

impl Locale {
    /// # Errors
    /// When the locale is not one relance ships templates for.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let t = text.trim().to_ascii_lowercase();
        let lang = t.split(['-', '_']).next().unwrap_or("");
        match lang {
            "fr" => Ok(Locale::Fr),
            "en" => Ok(Locale::En),
            _ => Err(InvalidValue(format!(
                "unsupported locale '{}' (expected fr or en)",
                text.trim()
            ))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Locale::Fr => "fr",
            Locale::En => "en",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn compact_digits(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '.' && *c != '-')
        .collect()
}

/// A French company identifier (SIREN, 9 digits with a Luhn check digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Siren(String);
string_newtype!(Siren);

impl Siren {
    /// # Errors
    /// When the text is not 9 digits or its check digit is wrong.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let c = compact_digits(text);
        if c.len() == 9 && c.bytes().all(|b| b.is_ascii_digit()) && luhn_ok(&c) {
            Ok(Siren(c))
        } else {
            Err(InvalidValue(format!(
                "invalid SIREN '{}' (9 digits with a valid check digit)",
                text.trim()
            )))
        }
    }
}
impl TryFrom<String> for Siren {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<Siren> for String {
    fn from(v: Siren) -> String {
        v.0
    }
}

/// A French establishment identifier (SIRET, 14 digits: SIREN + NIC, Luhn-checked;
/// La Poste's establishments use a different rule and are accepted on their SIREN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Siret(String);
string_newtype!(Siret);

impl Siret {
    /// # Errors
    /// When the text is not 14 digits or fails the check.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let c = compact_digits(text);
        let la_poste = c.starts_with("356000000");
        if c.len() == 14 && c.bytes().all(|b| b.is_ascii_digit()) && (luhn_ok(&c) || la_poste) {
            Ok(Siret(c))
        } else {
            Err(InvalidValue(format!(
                "invalid SIRET '{}' (14 digits with a valid check digit)",
                text.trim()
            )))
        }
    }

    pub fn siren(&self) -> &str {
        &self.0[..9]
    }
}
impl TryFrom<String> for Siret {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<Siret> for String {
    fn from(v: Siret) -> String {
        v.0
    }
}

/// An intra-EU VAT number: a two-letter country prefix and 2 to 13 letters or digits.
/// French numbers (FR + 2-character key + SIREN) are checked against their key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VatNumber(String);
string_newtype!(VatNumber);

impl VatNumber {
    /// # Errors
    /// When the number is malformed, or a French key does not match its SIREN.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let c: String = compact_digits(text).to_ascii_uppercase();
        let bad = |why: &str| InvalidValue(format!("invalid VAT number '{}' ({why})", text.trim()));
        if c.len() < 4 || c.len() > 15 || !c[..2].bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad("expected a country prefix such as FR then the number"));
        }
        if !c[2..].bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("only letters and digits after the country prefix"));
        }
        if let Some(rest) = c.strip_prefix("FR") {
            if rest.len() != 11 {
                return Err(bad(
                    "French numbers are FR, a 2-character key and the 9-digit SIREN",
                ));
            }
            let (key, siren) = rest.split_at(2);
            if key.bytes().all(|b| b.is_ascii_digit()) && siren.bytes().all(|b| b.is_ascii_digit())
            {
                let s: u64 = siren.parse().map_err(|_| bad("SIREN part"))?;
                let expected = (12 + 3 * (s % 97)) % 97;
                if key.parse::<u64>().ok() != Some(expected) {
                    return Err(bad("the key does not match the SIREN"));
                }
            }
        }
        Ok(VatNumber(c))
    }
}
impl TryFrom<String> for VatNumber {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<VatNumber> for String {
    fn from(v: VatNumber) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(EmailAddress::parse("compta@client.fr").is_ok());
        assert_eq!(
            EmailAddress::parse(" a.b@c.co ").unwrap().as_str(),
            "a.b@c.co"
        );
        for bad in [
            "", "nobody", "a@b", "a@@b.fr", "a b@c.fr", "a@.fr", "a@b..fr", "<a@b.fr>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(
            PhoneNumber::parse("+33 6 12 34 56 78").unwrap().as_str(),
            "+33612345678"
        );
        assert_eq!(
            PhoneNumber::parse("0033.6.12.34.56.78").unwrap().as_str(),
            "+33612345678"
        );
        assert!(
            PhoneNumber::parse("06 12 34 56 78").is_err(),
            "no country code"
        );
        assert!(PhoneNumber::parse("+33 abc").is_err());
        assert!(PhoneNumber::parse("+33612345678")
            .unwrap()
            .is_probably_mobile());
        assert!(!PhoneNumber::parse("+33144556677")
            .unwrap()
            .is_probably_mobile());
    }

    #[test]
    fn french_company_identifiers_are_checked() {
        assert!(Siren::parse("732 829 320").is_ok());
        assert!(Siren::parse("732829321").is_err());
        assert!(Siret::parse("73282932000074").is_ok());
        assert!(Siret::parse("73282932000075").is_err());
        assert_eq!(
            VatNumber::parse("FR 44 732829320").unwrap().as_str(),
            "FR44732829320"
        );
        assert!(VatNumber::parse("FR45732829320").is_err());
        assert!(VatNumber::parse("DE123456789").is_ok());
        assert!(VatNumber::parse("123").is_err());
    }

    #[test]
    fn locales_and_countries() {
        assert_eq!(Locale::parse("fr-FR").unwrap(), Locale::Fr);
        assert_eq!(Locale::parse("EN").unwrap(), Locale::En);
        assert!(Locale::parse("de").is_err());
        assert_eq!(CountryCode::parse("fr").unwrap(), CountryCode::FR);
        assert!(CountryCode::parse("FRA").is_err());
        for ok in ["FR", "de", "GB", "AX", "ZW"] {
            assert!(CountryCode::parse_assigned(ok).is_ok(), "{ok}");
        }
        for bad in ["ZZ", "XX", "UK", "EU", "AA", "F1"] {
            assert!(CountryCode::parse_assigned(bad).is_err(), "{bad}");
        }
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
    }

    #[test]
    fn text_is_bounded_and_free_of_control_characters() {
        assert!(check_text("F-2026-001", TextKind::Id).is_ok());
        assert!(check_text("Société Générale", TextKind::Name).is_ok());
        for bad in ["a\0b", "a\u{1b}[2J", "a\nb", "a\tb", "a\u{7f}", "a\u{85}"] {
            let e = check_text(bad, TextKind::Text).unwrap_err();
            assert!(e.0.contains("control character"), "{bad}: {e}");
        }
        assert!(check_text(&"é".repeat(64), TextKind::Id).is_ok());
        let e = check_text(&"x".repeat(100_000), TextKind::Id).unwrap_err();
        assert!(e.0.contains("100000 characters long; at most 64"), "{e}");
        assert!(check_text(&"x".repeat(2000), TextKind::Text).is_ok());
        assert!(check_text(&"x".repeat(201), TextKind::Name).is_err());
    }
}
