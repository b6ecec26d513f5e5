//! SQL helpers both backends use; the statements themselves are in `shared/`.

/// Rows per multi-row statement: well under SQLite's 32,766 bound parameters.
pub(crate) const BATCH_ROWS: usize = 500;

/// `UPDATE invoices` adding what a batch of payments settled: `$1` is the time, then
/// (invoice id, amount) pairs. Numbered parameters are reused in the three CASEs.
pub(crate) fn settle_invoices_sql(pairs: usize) -> String {
    let mut case = String::from("(CASE id");
    let mut ids = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (id, amt) = (2 + 2 * i, 3 + 2 * i);
        case.push_str(&format!(" WHEN ${id} THEN CAST(${amt} AS BIGINT)"));
        ids.push(format!("${id}"));
    }
    case.push_str(" END)");
    format!(
        "UPDATE invoices SET allocated_minor = allocated_minor + {case}, open_minor = open_minor - {case}, \
         status = CASE WHEN open_minor - {case} <= 0 THEN 'paid' ELSE status END, updated_at = $1 WHERE id IN ({})",
        ids.join(", ")
    )
}
