//! Amounts and dates as a reader of each locale expects them: `1 234,56 €` and
//! `02/11/2026` in French, `€1,234.56` and `2 Nov 2026` in English.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Currency, Locale};

/// The no-break space French typography puts between groups of digits and before the
/// currency sign: a line never breaks inside an amount.
pub const NBSP: char = '\u{a0}';

fn symbol(code: &str) -> Option<&'static str> {
    match code {
        "EUR" => Some("€"),
        "USD" => Some("$"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    }
}

/// Digits with `group` between thousands and `decimal` before the minor units.
fn digits(amount: Decimal, exponent: u32, group: char, decimal: char) -> String {
    let rounded = amount.round_dp(exponent).abs();
    let text = format!("{:.*}", exponent as usize, rounded);
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(group);
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(decimal);
        out.push_str(frac);
    }
    if amount.is_sign_negative() && !amount.is_zero() {
        format!("-{out}")
    } else {
        out
    }
}

/// An amount in `currency` for `locale`.
pub fn money(amount: Decimal, currency: &Currency, locale: Locale) -> String {
    let code = currency.code();
    let exp = currency.exponent();
    match locale {
        Locale::Fr => {
            let n = digits(amount, exp, NBSP, ',');
            format!("{n}{NBSP}{}", symbol(code).unwrap_or(code))
        }
        Locale::En => {
            let n = digits(amount, exp, ',', '.');
            match symbol(code) {
                Some(s) => match n.strip_prefix('-') {
                    Some(pos) => format!("-{s}{pos}"),
                    None => format!("{s}{n}"),
                },
                None => format!("{code}{NBSP}{n}"),
            }
        }
    }
}

/// A date for `locale`.
pub fn date(d: NaiveDate, locale: Locale) -> String {
    match locale {
        Locale::Fr => d.format("%d/%m/%Y").to_string(),
        Locale::En => d.format("%-d %b %Y").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn french_amounts_group_thousands_with_no_break_spaces() {
        let d = Decimal::from_str("1234.56").unwrap();
        assert_eq!(money(d, &eur(), Locale::Fr), "1\u{a0}234,56\u{a0}€");
        assert_eq!(
            money(Decimal::from_str("1234567").unwrap(), &eur(), Locale::Fr),
            "1\u{a0}234\u{a0}567,00\u{a0}€"
        );
        assert_eq!(
            money(Decimal::from_str("40").unwrap(), &eur(), Locale::Fr),
            "40,00\u{a0}€"
        );
    }

    #[test]
    fn english_amounts_put_the_symbol_first() {
        let d = Decimal::from_str("1234.5").unwrap();
        assert_eq!(money(d, &eur(), Locale::En), "€1,234.50");
        assert_eq!(money(-d, &eur(), Locale::En), "-€1,234.50");
        let chf = Currency::parse("CHF").unwrap();
        assert_eq!(money(d, &chf, Locale::En), "CHF\u{a0}1,234.50");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            money(Decimal::from(1500), &jpy, Locale::Fr),
            "1\u{a0}500\u{a0}¥"
        );
    }

    #[test]
    fn dates_follow_the_locale() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(date(d, Locale::Fr), "02/11/2026");
        assert_eq!(date(d, Locale::En), "2 Nov 2026");
    }
}
