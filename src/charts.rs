//! Pictures of the reports: charts drawn with plotters as SVG (rasterised to PNG by
//! resvg with the fonts embedded in the binary), and the monthly management report, a PDF
//! rendered by the engine the letters use, with those charts in it.
//!
//! Chart geometry is in integer minor units (amounts) and tenths (days, percentages):
//! amounts stay exact up to the pixel, and labels are written from the report's decimals.

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::domain::{Currency, Locale};
use crate::reports::{Report, ReportKind, ReportQuery};

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the {0} report has no chart")]
    NoChart(&'static str),
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    #[error("{0}")]
    Report(#[from] crate::reports::ReportError),
    #[error("{0}")]
    Pdf(#[from] crate::documents::pdf::PdfError),
}

const W: u32 = 960;
const H: u32 = 540;
const FONT: &str = "sans-serif";

fn t(locale: Locale, fr: &'static str, en: &'static str) -> &'static str {
    match locale {
        Locale::Fr => fr,
        Locale::En => en,
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// Aging colours: green (not due) to dark red (oldest).
fn bucket_colour(i: usize, n: usize) -> RGBColor {
    const STOPS: [(u8, u8, u8); 6] = [
        (46, 139, 87),
        (154, 205, 50),
        (255, 200, 0),
        (255, 140, 0),
        (220, 60, 40),
        (128, 0, 32),
    ];
    if n <= 1 {
        return RGBColor(STOPS[0].0, STOPS[0].1, STOPS[0].2);
    }
    let pos = i * (STOPS.len() - 1) / (n - 1);
    let (r, g, b) = STOPS[pos.min(STOPS.len() - 1)];
    RGBColor(r, g, b)
}

/// An amount for an axis: `12 k€`, `1,2 M€`, `€12k`.
fn short_money(minor: i64, currency: &Currency, locale: Locale) -> String {
    let units = currency.from_minor(minor);
    let (value, suffix) = if units.abs() >= Decimal::from(1_000_000) {
        ((units / Decimal::from(1_000_000)).round_dp(1), "M")
    } else if units.abs() >= Decimal::from(1000) {
        ((units / Decimal::from(1000)).round_dp(0), "k")
    } else {
        (units.round_dp(0), "")
    };
    let symbol = match currency.code() {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        other => other,
    };
    let number = value.normalize().to_string();
    match locale {
        Locale::Fr => format!("{}\u{a0}{suffix}{symbol}", number.replace('.', ",")),
        Locale::En => format!("{symbol}{number}{suffix}"),
    }
}

fn month_label(d: NaiveDate, locale: Locale) -> String {
    const FR: [&str; 12] = [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
        "déc.",
    ];
    const EN: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = d.month0() as usize;
    let y = d.year() % 100;
    match locale {
        Locale::Fr => format!("{} {y:02}", FR[m]),
        Locale::En => format!("{} {y:02}", EN[m]),
    }
}

fn minor(amount: Decimal, currency: &Currency) -> i64 {
    currency
        .to_minor(amount.round_dp(currency.exponent()))
        .unwrap_or(0)
}

fn tenths(d: Decimal) -> i64 {
    (d * Decimal::from(10)).round().to_i64().unwrap_or(0)
}

/// The chart of a report, as SVG.
///
/// # Errors
/// A report without a chart, or a drawing error.
pub fn svg(report: &Report, kind: ReportKind, locale: Locale) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        match (report, kind) {
            (Report::Aging(r), _) => aging(&root, r, locale)?,
            (Report::Trend(r), ReportKind::Cei) => cei(&root, r, locale)?,
            (Report::Trend(r), _) => dso(&root, r, locale)?,
            (Report::Effectiveness(r), _) => effectiveness(&root, r, locale)?,
            (Report::Risk(_), _) => return Err(ChartError::NoChart("risk")),
            (Report::Collectors(_), _) => return Err(ChartError::NoChart("collectors")),
            (Report::Experiment(r), _) => experiment(&root, r, locale)?,
        }
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// The fonts PNG charts are drawn with: those embedded in the binary.
fn svg_options() -> &'static resvg::usvg::Options<'static> {
    static OPTIONS: OnceLock<resvg::usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut o = resvg::usvg::Options::default();
        let db = o.fontdb_mut();
        for data in typst_assets::fonts() {
            db.load_font_data(data.to_vec());
        }
        db.set_sans_serif_family("DejaVu Sans Mono");
        db.set_serif_family("Libertinus Serif");
        o
    })
}

/// The chart of a report, as PNG.
///
/// # Errors
/// A report without a chart, or a drawing error.
pub fn png(report: &Report, kind: ReportKind, locale: Locale) -> Result<Vec<u8>, ChartError> {
    let svg = svg(report, kind, locale)?;
    let tree = resvg::usvg::Tree::from_str(&svg, svg_options()).map_err(draw_err)?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| ChartError::Draw("empty picture".into()))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(draw_err)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn empty(root: &Area<'_>, title: &str, locale: Locale) -> Result<(), ChartError> {
    root.titled(title, (FONT, 22)).map_err(draw_err)?;
    root.draw(&Text::new(
        t(
            locale,
            "Aucune donnée pour cette période.",
            "No data for this period.",
        ),
        ((W / 2 - 120) as i32, (H / 2) as i32),
        (FONT, 16),
    ))
    .map_err(draw_err)?;
    Ok(())
}

fn aging(
    root: &Area<'_>,
    r: &crate::reports::aging::Aging,
    locale: Locale,
) -> Result<(), ChartError> {
    let title = format!(
        "{} {}",
        t(locale, "Balance âgée au", "Aged balance as of"),
        crate::domain::format::date(r.as_of, locale)
    );
    let Some(total) = r.totals.first() else {
        return empty(root, &title, locale);
    };
    let currency = Currency::parse(&total.balance.currency).unwrap_or(Currency::EUR);
    let title = format!("{title} ({})", currency.code());
    let root = root.titled(&title, (FONT, 22)).map_err(draw_err)?;
    let (top, bottom) = root.split_vertically(H / 2 - 10);
    let n = total.balance.buckets.len();
    let values: Vec<i64> = total
        .balance
        .buckets
        .iter()
        .map(|b| minor(b.amount, &currency))
        .collect();
    let labels: Vec<String> = r
        .buckets
        .iter()
        .map(|l| match l.as_str() {
            "not_due" => t(locale, "non échu", "not due").to_string(),
            other => match other.strip_prefix("over_") {
                Some(d) => format!("> {d} {}", t(locale, "j", "d")),
                None => format!("{other} {}", t(locale, "j", "d")),
            },
        })
        .collect();
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0i64..max + max / 10)
        .map_err(draw_err)?;
    let label_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(*i)
            .ok()
            .and_then(|k| labels.get(k))
            .cloned()
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    let money_label = |v: &i64| short_money(*v, &currency, locale);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label_of)
        .y_label_formatter(&money_label)
        .label_style((FONT, 13))
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(
            values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0)
                .map(|(i, v)| {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i as i32), 0),
                            (SegmentValue::Exact(i as i32 + 1), *v),
                        ],
                        bucket_colour(i, n).filled(),
                    );
                    bar.set_margin(0, 0, 12, 12);
                    bar
                }),
        )
        .map_err(draw_err)?;

    // The customers owing the most overdue, their balances stacked by bucket.
    let customers: Vec<_> = r
        .customers
        .iter()
        .filter(|c| c.balance.currency == currency.code())
        .take(8)
        .collect();
    if customers.is_empty() {
        return Ok(());
    }
    let m = customers.len();
    let widest = customers
        .iter()
        .map(|c| minor(c.balance.open, &currency))
        .max()
        .unwrap_or(1)
        .max(1);
    let names: Vec<String> = customers
        .iter()
        .map(|c| {
            let n: String = c.name.chars().take(22).collect();
            format!("{n} ")
        })
        .collect();
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .caption(
            t(
                locale,
                "Clients les plus en retard, par ancienneté",
                "Customers owing the most overdue, by age",
            ),
            (FONT, 15),
        )
        .x_label_area_size(24)
        .y_label_area_size(180)
        .build_cartesian_2d(
            0i64..widest + widest / 20,
            (0..m as i32 - 1).into_segmented(),
        )
        .map_err(draw_err)?;
    let name_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            // Largest at the top.
            usize::try_from(m as i32 - 1 - *i)
                .ok()
                .and_then(|k| names.get(k))
                .cloned()
                .unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(m)
        .y_label_formatter(&name_of)
        .x_label_formatter(&money_label)
        .label_style((FONT, 12))
        .draw()
        .map_err(draw_err)?;
    for (row, c) in customers.iter().enumerate() {
        let y = (m - 1 - row) as i32;
        let mut x = 0i64;
        let mut bars = Vec::new();
        for (i, b) in c.balance.buckets.iter().enumerate() {
            let v = minor(b.amount, &currency);
            if v <= 0 {
                continue;
            }
            let mut bar = Rectangle::new(
                [
                    (x, SegmentValue::Exact(y)),
                    (x + v, SegmentValue::Exact(y + 1)),
                ],
                bucket_colour(i, n).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bars.push(bar);
            x += v;
        }
        chart.draw_series(bars).map_err(draw_err)?;
    }
    Ok(())
}

fn month_axis<'a>(
    months: &'a [crate::reports::trend::MonthFigures],
    locale: Locale,
) -> impl Fn(&i32) -> String + 'a {
    move |i: &i32| {
        months
            .get(usize::try_from(*i).unwrap_or(usize::MAX))
            .map(|m| month_label(m.start, locale))
            .unwrap_or_default()
    }
}

fn dso(
    root: &Area<'_>,
    r: &crate::reports::trend::Trend,
    locale: Locale,
) -> Result<(), ChartError> {
    let title = t(locale, "DSO par mois (jours)", "DSO by month (days)");
    let Some(c) = r.currencies.first() else {
        return empty(root, title, locale);
    };
    let title = format!("{title} ({})", c.currency);
    let series: [(&str, RGBColor, Vec<Option<i64>>); 3] = [
        (
            t(locale, "DSO (méthode count-back)", "DSO (count-back)"),
            RGBColor(31, 90, 180),
            c.months
                .iter()
                .map(|m| m.dso_count_back.map(tenths))
                .collect(),
        ),
        (
            t(locale, "DSO (méthode simple)", "DSO (simple)"),
            RGBColor(140, 140, 140),
            c.months.iter().map(|m| m.dso_simple.map(tenths)).collect(),
        ),
        (
            t(locale, "Meilleur DSO possible", "Best possible DSO"),
            RGBColor(46, 139, 87),
            c.months
                .iter()
                .map(|m| m.best_dso_count_back.map(tenths))
                .collect(),
        ),
    ];
    trend_lines(
        root,
        &title,
        &c.months,
        &series,
        locale,
        t(locale, "jours", "days"),
    )
}

fn cei(
    root: &Area<'_>,
    r: &crate::reports::trend::Trend,
    locale: Locale,
) -> Result<(), ChartError> {
    let title = t(
        locale,
        "Indice d'efficacité du recouvrement (CEI, %)",
        "Collection effectiveness index (CEI, %)",
    );
    let Some(c) = r.currencies.first() else {
        return empty(root, title, locale);
    };
    let title = format!("{title} ({})", c.currency);
    let series: [(&str, RGBColor, Vec<Option<i64>>); 1] = [(
        "CEI",
        RGBColor(31, 90, 180),
        c.months.iter().map(|m| m.cei.map(tenths)).collect(),
    )];
    trend_lines(root, &title, &c.months, &series, locale, "%")
}

/// Lines over months; values in tenths.
fn trend_lines(
    root: &Area<'_>,
    title: &str,
    months: &[crate::reports::trend::MonthFigures],
    series: &[(&str, RGBColor, Vec<Option<i64>>)],
    locale: Locale,
    unit: &str,
) -> Result<(), ChartError> {
    let n = months.len() as i32;
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().flatten().copied())
        .max()
        .unwrap_or(10)
        .max(10);
    let min = series
        .iter()
        .flat_map(|s| s.2.iter().flatten().copied())
        .min()
        .unwrap_or(0)
        .min(0);
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .caption(title, (FONT, 22))
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(-1i32..n, min..max + max / 8)
        .map_err(draw_err)?;
    let x_label = month_axis(months, locale);
    let y_label = |v: &i64| {
        let d = Decimal::new(*v, 1).round_dp(0);
        format!("{d}{}{unit}", if unit == "%" { "" } else { " " })
    };
    chart
        .configure_mesh()
        .x_labels((n + 1) as usize)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style((FONT, 13))
        .draw()
        .map_err(draw_err)?;
    for (name, colour, values) in series {
        let points: Vec<(i32, i64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i32, v)))
            .collect();
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

fn effectiveness(
    root: &Area<'_>,
    r: &crate::reports::effectiveness::Effectiveness,
    locale: Locale,
) -> Result<(), ChartError> {
    let title = t(
        locale,
        "Encaissé après chaque étape de relance",
        "Collected after each dunning step",
    );
    let Some(first) = r.steps.first() else {
        return empty(root, title, locale);
    };
    let currency = Currency::parse(&first.currency).unwrap_or(Currency::EUR);
    let mut steps: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.currency == currency.code())
        .collect();
    steps.sort_by_key(|s| std::cmp::Reverse(s.collected));
    steps.truncate(12);
    let m = steps.len();
    let title = format!(
        "{title} ({}, {} → {})",
        currency.code(),
        crate::domain::format::date(r.from, locale),
        crate::domain::format::date(r.to, locale)
    );
    let max = steps
        .iter()
        .map(|s| minor(s.collected, &currency))
        .max()
        .unwrap_or(1)
        .max(1);
    let names: Vec<String> = steps
        .iter()
        .map(|s| format!("{} · {} ", s.segment, s.step))
        .collect();
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .caption(&title, (FONT, 20))
        .x_label_area_size(30)
        .y_label_area_size(220)
        .build_cartesian_2d(0i64..max + max * 3 / 5, (0..m as i32 - 1).into_segmented())
        .map_err(draw_err)?;
    let name_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(m as i32 - 1 - *i)
            .ok()
            .and_then(|k| names.get(k))
            .cloned()
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    let money_label = |v: &i64| short_money(*v, &currency, locale);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(m)
        .y_label_formatter(&name_of)
        .x_label_formatter(&money_label)
        .label_style((FONT, 13))
        .draw()
        .map_err(draw_err)?;
    for (row, s) in steps.iter().enumerate() {
        let y = (m - 1 - row) as i32;
        let v = minor(s.collected, &currency);
        if v > 0 {
            let mut bar = Rectangle::new(
                [(0, SegmentValue::Exact(y)), (v, SegmentValue::Exact(y + 1))],
                RGBColor(31, 90, 180).filled(),
            );
            bar.set_margin(5, 5, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(draw_err)?;
        }
        let share = s.paid_within_14_days.map_or_else(
            || "-".to_string(),
            |p| match locale {
                Locale::Fr => p.to_string().replace('.', ","),
                Locale::En => p.to_string(),
            },
        );
        let note = format!(
            " {} · {} {} · {share}% {}",
            short_money(v, &currency, locale),
            s.actions,
            t(locale, "envois", "sent"),
            t(locale, "payées sous 14 j", "paid ≤ 14 d"),
        );
        chart
            .draw_series(std::iter::once(Text::new(
                note,
                (v, SegmentValue::CenterOf(y)),
                (FONT, 12),
            )))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Champion / challenger: each variant's share of invoices paid within 30 days of their
/// due date, its 95 % interval drawn as a whisker.
fn experiment(
    root: &Area<'_>,
    r: &crate::reports::experiment::Experiment,
    locale: Locale,
) -> Result<(), ChartError> {
    let title = format!(
        "{} — {} ({} → {})",
        t(
            locale,
            "Payées sous 30 jours de l'échéance, par variante",
            "Paid within 30 days of due date, by variant"
        ),
        r.segment,
        crate::domain::format::date(r.from, locale),
        crate::domain::format::date(r.to, locale)
    );
    if r.variants.is_empty() {
        return empty(root, &title, locale);
    }
    let m = r.variants.len();
    let top = r
        .variants
        .iter()
        .filter_map(|a| {
            a.paid_within_30_days
                .ci_high
                .or(a.paid_within_30_days.value)
        })
        .map(tenths)
        .max()
        .unwrap_or(1000)
        .clamp(100, 1000);
    let names: Vec<String> = r
        .variants
        .iter()
        .map(|a| {
            let star = if a.variant == r.champion { " ★" } else { "" };
            format!("{}{star} ", a.variant)
        })
        .collect();
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .caption(&title, (FONT, 20))
        .x_label_area_size(30)
        .y_label_area_size(140)
        .build_cartesian_2d(0i64..top * 5 / 3, (0..m as i32 - 1).into_segmented())
        .map_err(draw_err)?;
    let name_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(m as i32 - 1 - *i)
            .ok()
            .and_then(|k| names.get(k))
            .cloned()
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    let pct = |d: Decimal| match locale {
        Locale::Fr => format!("{} %", d.to_string().replace('.', ",")),
        Locale::En => format!("{d}%"),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(m)
        .y_label_formatter(&name_of)
        .x_label_formatter(&|v: &i64| pct(Decimal::new(*v, 1)))
        .label_style((FONT, 13))
        .draw()
        .map_err(draw_err)?;
    for (row, a) in r.variants.iter().enumerate() {
        let y = (m - 1 - row) as i32;
        let e = &a.paid_within_30_days;
        let Some(v) = e.value.map(tenths) else {
            continue;
        };
        let colour = if a.variant == r.champion {
            RGBColor(120, 120, 120)
        } else {
            RGBColor(31, 90, 180)
        };
        let mut bar = Rectangle::new(
            [(0, SegmentValue::Exact(y)), (v, SegmentValue::Exact(y + 1))],
            colour.filled(),
        );
        bar.set_margin(12, 12, 0, 0);
        chart.draw_series(std::iter::once(bar)).map_err(draw_err)?;
        if let (Some(lo), Some(hi)) = (e.ci_low.map(tenths), e.ci_high.map(tenths)) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (lo.max(0), SegmentValue::CenterOf(y)),
                        (hi, SegmentValue::CenterOf(y)),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(draw_err)?;
        }
        let note = format!(
            "  {} [{} – {}] · {} {}",
            e.value.map(pct).unwrap_or_default(),
            e.ci_low.map(pct).unwrap_or_default(),
            e.ci_high.map(pct).unwrap_or_default(),
            a.customers,
            t(locale, "clients", "customers"),
        );
        let x = e.ci_high.map(tenths).unwrap_or(v).max(v);
        chart
            .draw_series(std::iter::once(Text::new(
                note,
                (x, SegmentValue::CenterOf(y)),
                (FONT, 12),
            )))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// The monthly management report as PDF: aging, DSO and CEI over twelve months, what
/// each step earned in the month, risk and the customers owing the most.
///
/// # Errors
/// A report, chart or PDF error.
pub async fn monthly_pdf(
    store: &dyn crate::store::Store,
    config: &crate::config::Config,
    query: &ReportQuery,
    locale: Locale,
) -> Result<Vec<u8>, ChartError> {
    use crate::reports::{first_of_month, run};
    let as_of = query.as_of;
    let month_start = first_of_month(as_of);
    let aging_r = run(store, config, ReportKind::Aging, query).await?;
    let trend_r = run(store, config, ReportKind::Dso, query).await?;
    let mut month = query.clone();
    month.from = month_start;
    let effect_r = run(store, config, ReportKind::Effectiveness, &month).await?;
    let risk_r = run(store, config, ReportKind::Risk, query).await?;
    let chart = |r: &Report, k: ReportKind| svg(r, k, locale).unwrap_or_default();
    let money = |amount: Decimal, code: &str| {
        let c = Currency::parse(code).unwrap_or(Currency::EUR);
        crate::domain::format::money(amount, &c, locale)
    };
    let days = |d: Option<Decimal>| {
        d.map_or_else(
            || "–".to_string(),
            |d| {
                d.to_string()
                    .replace('.', if locale == Locale::Fr { "," } else { "." })
            },
        )
    };
    let mut data = serde_json::json!({
        "locale": locale.as_str(),
        "company": crate::documents::company_json(&config.company),
        "month": month_label(as_of, locale),
        "as_of": crate::domain::format::date(as_of, locale),
        "month_start": crate::domain::format::date(month_start, locale),
        "from": crate::domain::format::date(query.from, locale),
        "segment": query.filter.segment,
        "charts": {
            "aging": chart(&aging_r, ReportKind::Aging),
            "dso": chart(&trend_r, ReportKind::Dso),
            "cei": chart(&trend_r, ReportKind::Cei),
            "effectiveness": chart(&effect_r, ReportKind::Effectiveness),
        },
    });
    if let Report::Aging(a) = &aging_r {
        data["aging"] = a
            .totals
            .iter()
            .map(|t| {
                let b = &t.balance;
                serde_json::json!({
                    "currency": b.currency,
                    "customers": t.customers,
                    "open": money(b.open, &b.currency),
                    "overdue": money(b.overdue, &b.currency),
                    "overdue_share": days(crate::reports::share(b.overdue, b.open)),
                    "buckets": b.buckets.iter().map(|x| serde_json::json!({"label": x.label, "amount": money(x.amount, &b.currency)})).collect::<Vec<_>>(),
                    "disputed": money(b.disputed, &b.currency),
                    "promised": money(b.promised, &b.currency),
                    "paused": money(b.paused, &b.currency),
                    "handed_over": money(b.handed_over, &b.currency),
                })
            })
            .collect();
        data["top_customers"] = a
            .customers
            .iter()
            .take(10)
            .map(|c| {
                let b = &c.balance;
                serde_json::json!({
                    "customer": c.customer,
                    "name": c.name,
                    "open": money(b.open, &b.currency),
                    "overdue": money(b.overdue, &b.currency),
                    "oldest": c.oldest_overdue_days,
                })
            })
            .collect();
    }
    if let Report::Trend(tr) = &trend_r {
        data["trend"] = tr
            .currencies
            .iter()
            .flat_map(|c| {
                c.months.iter().map(|m| {
                    serde_json::json!({
                        "month": month_label(m.start, locale),
                        "currency": c.currency,
                        "receivables": money(m.closing_receivables, &c.currency),
                        "overdue": money(m.closing_overdue, &c.currency),
                        "sales": money(m.sales, &c.currency),
                        "dso": days(m.dso_count_back),
                        "best_dso": days(m.best_dso_count_back),
                        "add": days(m.add_count_back),
                        "cei": days(m.cei),
                    })
                })
            })
            .collect();
    }
    if let Report::Effectiveness(e) = &effect_r {
        let mut steps: Vec<_> = e.steps.iter().collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.collected));
        data["effectiveness"] = steps
            .iter()
            .take(12)
            .map(|s| {
                serde_json::json!({
                    "segment": s.segment,
                    "step": s.step,
                    "actions": s.actions,
                    "named": money(s.amount_named, &s.currency),
                    "paid_14": days(s.paid_within_14_days),
                    "collected": money(s.collected, &s.currency),
                    "median": days(s.median_days_to_payment),
                })
            })
            .collect();
    }
    if let Report::Risk(r) = &risk_r {
        data["risk"] = serde_json::json!({
            "over_limit": r.over_limit_customers,
            "over_cover": r.over_cover_customers,
            "customers": r.customers.iter().take(10).map(|c| serde_json::json!({
                "customer": c.customer,
                "name": c.name,
                "exposure": money(c.exposure, &c.currency),
                "limit": c.credit_limit.map(|l| money(l, &c.currency)),
                "cover": c.cover.map(|l| money(l, &c.currency)),
                "deadline": c.declaration_deadline.map(|d| crate::domain::format::date(d, locale)),
            })).collect::<Vec<_>>(),
            "concentration": r.concentration.iter().map(|c| serde_json::json!({
                "currency": c.currency,
                "share": days(c.top_10_share),
                "overdue": money(c.overdue, &c.currency),
            })).collect::<Vec<_>>(),
        });
    }
    let renderer = crate::documents::pdf::PdfRenderer::new(&config.channels.templates_dir);
    let ident = format!("monthly-report-{as_of}");
    Ok(renderer.render("monthly_report", locale, &data, &ident, query.today)?)
}
