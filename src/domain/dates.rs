//! Calendar dates as they appear in exports, and the business calendar.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// Parses a business date: ISO `2026-03-31`, French `31/03/2026` (also `31.03.2026`,
/// `31-03-2026`) or compact `20260331` as in the FEC.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    let parsed = if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(t, "%Y%m%d").ok()
    } else if t.len() >= 4 && t.as_bytes()[4..].first() == Some(&b'-') {
        NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()
    } else {
        ["%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"]
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
    };
    parsed
        .filter(|d| (1900..=2999).contains(&d.year()))
        .ok_or_else(|| format!("invalid date '{t}' (expected YYYY-MM-DD or DD/MM/YYYY)"))
}

/// Which public holidays a calendar includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HolidaySet {
    /// No public holidays (only weekends and the listed extra dates).
    #[serde(rename = "none")]
    None,
    /// The eleven French public holidays (Code du travail L3133-1).
    #[serde(rename = "FR")]
    France,
    /// France plus Good Friday and 26 December (Alsace-Moselle).
    #[serde(rename = "FR-AM")]
    AlsaceMoselle,
}

/// Business days: which weekdays are worked and which dates are holidays.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    weekend: Vec<Weekday>,
    holidays: HolidaySet,
    extra_holidays: BTreeSet<NaiveDate>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        BusinessCalendar::new(
            vec![Weekday::Sat, Weekday::Sun],
            HolidaySet::France,
            BTreeSet::new(),
        )
    }
}

/// Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is a valid date")
}

impl BusinessCalendar {
    pub fn new(
        weekend: Vec<Weekday>,
        holidays: HolidaySet,
        extra_holidays: BTreeSet<NaiveDate>,
    ) -> Self {
        BusinessCalendar {
            weekend,
            holidays,
            extra_holidays,
        }
    }

    /// The public holidays of a year, in date order, with their names.
    pub fn public_holidays(&self, year: i32) -> Vec<(NaiveDate, &'static str)> {
        let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d).expect("fixed holiday");
        let mut out = Vec::new();
        if self.holidays != HolidaySet::None {
            let easter = easter_sunday(year);
            out.extend([
                (ymd(1, 1), "Jour de l'an"),
                (easter + Duration::days(1), "Lundi de Pâques"),
                (ymd(5, 1), "Fête du Travail"),
                (ymd(5, 8), "Victoire 1945"),
                (easter + Duration::days(39), "Ascension"),
                (easter + Duration::days(50), "Lundi de Pentecôte"),
                (ymd(7, 14), "Fête nationale"),
                (ymd(8, 15), "Assomption"),
                (ymd(11, 1), "Toussaint"),
                (ymd(11, 11), "Armistice 1918"),
                (ymd(12, 25), "Noël"),
            ]);
            if self.holidays == HolidaySet::AlsaceMoselle {
                out.push((easter - Duration::days(2), "Vendredi saint"));
                out.push((ymd(12, 26), "Saint-Étienne"));
            }
        }
        out.sort();
        out
    }

    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.extra_holidays.contains(&date)
            || self
                .public_holidays(date.year())
                .iter()
                .any(|(d, _)| *d == date)
    }

    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        !self.weekend.contains(&date.weekday()) && !self.is_holiday(date)
    }

    /// The first business day on or after `date`.
    pub fn next_business_day(&self, date: NaiveDate) -> NaiveDate {
        let mut d = date;
        // A calendar with every weekday off would loop forever; config validation refuses it.
        for _ in 0..3660 {
            if self.is_business_day(d) {
                return d;
            }
            d += Duration::days(1);
        }
        d
    }

    /// `date` moved by `n` business days (negative goes back).
    pub fn add_business_days(&self, date: NaiveDate, n: i64) -> NaiveDate {
        let step = if n >= 0 { 1 } else { -1 };
        let mut d = date;
        let mut left = n.abs();
        while left > 0 {
            d += Duration::days(step);
            if self.is_business_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// Business days after `from` up to and including `to` (negative when `to` is earlier).
    pub fn business_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let (a, b, sign) = if from <= to {
            (from, to, 1)
        } else {
            (to, from, -1)
        };
        let mut n = 0;
        let mut d = a;
        while d < b {
            d += Duration::days(1);
            if self.is_business_day(d) {
                n += 1;
            }
        }
        n * sign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn dates_in_export_formats() {
        let expected = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        for t in [
            "2026-03-31",
            "31/03/2026",
            "31.03.2026",
            "31-03-2026",
            "20260331",
            " 2026-03-31 ",
        ] {
            assert_eq!(parse_date(t).unwrap(), expected, "{t}");
        }
        for t in [
            "2026-02-30",
            "31/13/2026",
            "03/31/2026x",
            "yesterday",
            "",
            "2026/03/31",
        ] {
            assert!(parse_date(t).is_err(), "{t}");
        }
    }

    #[test]
    fn easter_dates_are_right() {
        assert_eq!(easter_sunday(2024), date("2024-03-31"));
        assert_eq!(easter_sunday(2025), date("2025-04-20"));
        assert_eq!(easter_sunday(2026), date("2026-04-05"));
        assert_eq!(easter_sunday(2027), date("2027-03-28"));
    }

    #[test]
    fn french_business_days() {
        let cal = BusinessCalendar::default();
        assert!(!cal.is_business_day(date("2026-05-14")), "Ascension 2026");
        assert!(!cal.is_business_day(date("2026-05-25")), "Whit Monday 2026");
        assert!(!cal.is_business_day(date("2026-11-21")), "Saturday");
        assert!(cal.is_business_day(date("2026-11-23")));
        assert!(!cal.is_business_day(date("2026-11-11")));
        // Friday 24 December 2027 + 1 business day skips the weekend and Christmas? 25th is Saturday.
        assert_eq!(
            cal.add_business_days(date("2026-12-24"), 1),
            date("2026-12-28")
        );
        assert_eq!(
            cal.next_business_day(date("2026-11-21")),
            date("2026-11-23")
        );
        assert_eq!(
            cal.business_days_between(date("2026-11-20"), date("2026-11-27")),
            5
        );
        assert_eq!(
            cal.business_days_between(date("2026-11-27"), date("2026-11-20")),
            -5
        );
        let am = BusinessCalendar::new(
            vec![Weekday::Sat, Weekday::Sun],
            HolidaySet::AlsaceMoselle,
            BTreeSet::new(),
        );
        assert!(
            !am.is_business_day(date("2026-04-03")),
            "Good Friday in Alsace-Moselle"
        );
        assert!(cal.is_business_day(date("2026-04-03")));
    }
}
