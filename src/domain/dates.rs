//! Calendar dates as they appear in exports, and the business calendar.

use std::collections::BTreeSet;
use std::ops::Bound;

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

/// Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher), for the years
/// the calendar computes with ([`CALENDAR_YEARS`]); `None` outside them.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    if !CALENDAR_YEARS.contains(&year) {
        return None;
    }
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
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The years business-day arithmetic works in: the Gregorian calendar's, with four
/// digits. Dates outside are refused rather than computed wrong.
pub const CALENDAR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Why a business-day computation has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A date, or the result, outside years 1 to 9999.
    #[error("{0} is outside the calendar (years 1 to 9999)")]
    OutOfRange(String),
    /// The caller's time ran out (a rule's budget).
    #[error("time budget exceeded")]
    Interrupted,
}

fn in_calendar(date: NaiveDate) -> Result<NaiveDate, CalendarError> {
    if CALENDAR_YEARS.contains(&date.year()) {
        Ok(date)
    } else {
        Err(CalendarError::OutOfRange(format!("the date {date}")))
    }
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
        // Outside the calendar's years there are no public holidays to compute.
        let Some(easter) = easter_sunday(year) else {
            return out;
        };
        if self.holidays != HolidaySet::None {
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

    /// The first business day on or after `date` (`date` itself when it is one).
    pub fn next_business_day(&self, date: NaiveDate) -> NaiveDate {
        self.try_next_business_day(date).unwrap_or(date)
    }

    /// The first business day on or after `date`, within the calendar's years.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] when `date` or the answer is outside years 1–9999.
    pub fn try_next_business_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        let mut d = in_calendar(date)?;
        // A calendar with every weekday off would loop forever; config validation refuses it.
        for _ in 0..3660 {
            if self.is_business_day(d) {
                return Ok(d);
            }
            d = d
                .succ_opt()
                .and_then(|n| in_calendar(n).ok())
                .ok_or_else(|| {
                    CalendarError::OutOfRange(format!("the business day after {date}"))
                })?;
        }
        Ok(d)
    }

    /// `date` moved by `n` business days (negative goes back).
    ///
    /// Whole years are skipped by counting their business days, so the cost grows with
    /// the number of years crossed, not of days. `check` is called between years and
    /// may stop the computation.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] when `date` or the answer is outside years 1–9999;
    /// [`CalendarError::Interrupted`] when `check` says so.
    pub fn add_business_days(
        &self,
        date: NaiveDate,
        n: i64,
        check: &mut dyn FnMut() -> bool,
    ) -> Result<NaiveDate, CalendarError> {
        let mut d = in_calendar(date)?;
        let mut left = n.unsigned_abs();
        let forward = n >= 0;
        let out_of_range = || {
            CalendarError::OutOfRange(format!(
                "{date} {} {} business days",
                if forward { "+" } else { "-" },
                n.unsigned_abs()
            ))
        };
        while left > 0 {
            if !check() {
                return Err(CalendarError::Interrupted);
            }
            // The business days from `d` to the end (or start) of the year of the next
            // day walked, and where the walk stands once it has crossed them.
            let next = if forward { d.succ_opt() } else { d.pred_opt() }
                .filter(|x| CALENDAR_YEARS.contains(&x.year()))
                .ok_or_else(out_of_range)?;
            let (in_year, edge) = if forward {
                let end = NaiveDate::from_ymd_opt(next.year(), 12, 31).ok_or_else(out_of_range)?;
                (self.count_between(d, end), end)
            } else {
                let start = NaiveDate::from_ymd_opt(next.year(), 1, 1).ok_or_else(out_of_range)?;
                let before = start.pred_opt().ok_or_else(out_of_range)?;
                (self.count_between(before, next), start)
            };
            let in_year = in_year.unsigned_abs();
            if in_year < left {
                left -= in_year;
                d = edge;
                continue;
            }
            // The answer is within this year: walk to it.
            while left > 0 {
                d = if forward { d.succ_opt() } else { d.pred_opt() }.ok_or_else(out_of_range)?;
                if self.is_business_day(d) {
                    left -= 1;
                }
            }
        }
        Ok(d)
    }

    /// Business days after `from` up to and including `to` (negative when `to` is
    /// earlier), counted by whole weeks and the holidays of each year crossed.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] when a date is outside years 1–9999;
    /// [`CalendarError::Interrupted`] when `check` (called between years) says so.
    pub fn business_days_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        check: &mut dyn FnMut() -> bool,
    ) -> Result<i64, CalendarError> {
        in_calendar(from)?;
        in_calendar(to)?;
        let (a, b, sign) = if from <= to {
            (from, to, 1)
        } else {
            (to, from, -1)
        };
        let years = i64::from(b.year() - a.year());
        // The count is cheap per year, but a rule may call this in a loop.
        if years > 50 && !check() {
            return Err(CalendarError::Interrupted);
        }
        Ok(self.count_between(a, b) * sign)
    }

    /// Business days in `(a, b]`, `a <= b`, both within the calendar's years.
    fn count_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        if b <= a {
            return 0;
        }
        let total = (b - a).num_days();
        let weekend = |d: NaiveDate| self.weekend.contains(&d.weekday());
        let worked_per_week = (0..7).filter(|i| !weekend(a + Duration::days(*i))).count() as i64;
        let (weeks, rest) = (total / 7, total % 7);
        let mut n = weeks * worked_per_week;
        let mut d = a + Duration::days(weeks * 7);
        for _ in 0..rest {
            d += Duration::days(1);
            if !weekend(d) {
                n += 1;
            }
        }
        // Holidays on worked weekdays in (a, b], each date once: listed extra dates, and
        // public holidays not also listed.
        let holiday = |d: &NaiveDate| *d > a && *d <= b && !weekend(*d);
        n -= self
            .extra_holidays
            .range((Bound::Excluded(a), Bound::Included(b)))
            .filter(|d| holiday(d))
            .count() as i64;
        if self.holidays != HolidaySet::None {
            for year in a.year()..=b.year() {
                let mut days: Vec<NaiveDate> = self
                    .public_holidays(year)
                    .into_iter()
                    .map(|(d, _)| d)
                    .filter(|d| holiday(d) && !self.extra_holidays.contains(d))
                    .collect();
                days.dedup();
                n -= days.len() as i64;
            }
        }
        n
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
        assert_eq!(easter_sunday(2024), Some(date("2024-03-31")));
        assert_eq!(easter_sunday(2025), Some(date("2025-04-20")));
        assert_eq!(easter_sunday(2026), Some(date("2026-04-05")));
        assert_eq!(easter_sunday(2027), Some(date("2027-03-28")));
        assert_eq!(easter_sunday(-40_000), None);
        assert_eq!(easter_sunday(10_000), None);
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
            cal.add_business_days(date("2026-12-24"), 1, &mut || true),
            Ok(date("2026-12-28"))
        );
        assert_eq!(
            cal.next_business_day(date("2026-11-21")),
            date("2026-11-23")
        );
        assert_eq!(
            cal.business_days_between(date("2026-11-20"), date("2026-11-27"), &mut || true),
            Ok(5)
        );
        assert_eq!(
            cal.business_days_between(date("2026-11-27"), date("2026-11-20"), &mut || true),
            Ok(-5)
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

    /// Day-by-day counts, as the calendar computed before it skipped whole years.
    fn walk_between(cal: &BusinessCalendar, a: NaiveDate, b: NaiveDate) -> i64 {
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        let mut n = 0;
        let mut d = lo;
        while d < hi {
            d += Duration::days(1);
            n += i64::from(cal.is_business_day(d));
        }
        n * sign
    }

    fn walk_add(cal: &BusinessCalendar, d: NaiveDate, n: i64) -> NaiveDate {
        let step = Duration::days(n.signum());
        let (mut d, mut left) = (d, n.abs());
        while left > 0 {
            d += step;
            left -= i64::from(cal.is_business_day(d));
        }
        d
    }

    #[test]
    fn business_day_arithmetic_by_whole_years_agrees_with_walking_day_by_day() {
        let extra: BTreeSet<NaiveDate> =
            [date("2026-12-24"), date("2027-05-01"), date("2028-07-14")]
                .into_iter()
                .collect();
        let calendars = [
            BusinessCalendar::default(),
            BusinessCalendar::new(
                vec![Weekday::Sat, Weekday::Sun],
                HolidaySet::AlsaceMoselle,
                extra,
            ),
            BusinessCalendar::new(vec![Weekday::Fri], HolidaySet::None, BTreeSet::new()),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as i64
        };
        for cal in &calendars {
            for _ in 0..300 {
                let a = date("2024-01-01") + Duration::days(next(2000));
                let b = date("2024-01-01") + Duration::days(next(2000));
                assert_eq!(
                    cal.business_days_between(a, b, &mut || true),
                    Ok(walk_between(cal, a, b)),
                    "{a}..{b}"
                );
                let n = next(1500) - 750;
                assert_eq!(
                    cal.add_business_days(a, n, &mut || true),
                    Ok(walk_add(cal, a, n)),
                    "{a} + {n}"
                );
            }
        }
    }

    #[test]
    fn business_days_out_of_the_calendar_are_errors_not_panics_or_endless_loops() {
        let cal = BusinessCalendar::default();
        let today = date("2026-12-02");
        let started = std::time::Instant::now();
        assert!(matches!(
            cal.add_business_days(today, 100_000_000, &mut || true),
            Err(CalendarError::OutOfRange(_))
        ));
        assert!(matches!(
            cal.add_business_days(today, -100_000_000, &mut || true),
            Err(CalendarError::OutOfRange(_))
        ));
        assert!(matches!(
            cal.add_business_days(today, i64::MIN, &mut || true),
            Err(CalendarError::OutOfRange(_))
        ));
        let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        let all = cal
            .business_days_between(first, last, &mut || true)
            .unwrap();
        assert!(all > 2_500_000 && all < 2_700_000, "{all}");
        let end = cal.add_business_days(first, all, &mut || true).unwrap();
        assert!(end <= last && end > last - Duration::days(7), "{end}");
        assert_eq!(cal.business_days_between(first, end, &mut || true), Ok(all));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let beyond = NaiveDate::from_ymd_opt(10_000, 1, 3).unwrap();
        assert!(matches!(
            cal.try_next_business_day(beyond),
            Err(CalendarError::OutOfRange(_))
        ));
        assert_eq!(
            cal.add_business_days(today, 5, &mut || false),
            Err(CalendarError::Interrupted)
        );
        let before = NaiveDate::from_ymd_opt(0, 6, 1).unwrap();
        assert!(matches!(
            cal.business_days_between(before, today, &mut || true),
            Err(CalendarError::OutOfRange(_))
        ));
    }
}
