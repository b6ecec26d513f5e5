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

/// The columns a tick writes into `actions`, in the order both backends bind them
/// ([`ACTION_INSERT_WIDTH`] of them). A macro, so that it can be part of the `const`
/// statements of each backend through `concat!`.
macro_rules! action_insert_columns {
    () => {
        "idempotency_key, customer_id, segment, kind, step, template, options, currency, \
         amount_minor, rule_file, rule_hash, facts, facts_sha256, invoice_numbers, decided_on, \
         status, last_error, created_at, updated_at, variant"
    };
}
pub(crate) use action_insert_columns;

/// How many columns [`action_insert_columns!`] names.
pub(crate) const ACTION_INSERT_WIDTH: usize = 20;

/// What claiming an action returns (`RETURNING …`), read into `ClaimedAction`.
macro_rules! claimed_action_columns {
    () => {
        "id, idempotency_key, customer_id, kind, step, template, options, currency, \
         amount_minor, attempts, decided_on, invoice_numbers"
    };
}
pub(crate) use claimed_action_columns;

/// The columns of `customers` an upsert writes: everything but the pause, which
/// collectors own. The first is the key.
macro_rules! customer_upsert_columns {
    () => {
        "external_id, name, legal_name, siren, siret, vat_number, country, segment, locale, \
         emails, phones, address_line1, address_line2, postal_code, city, address_country, \
         currency, credit_limit_minor, insured, insurer_policy, insurer_buyer_ref, cover_minor, \
         collector, tags"
    };
}
pub(crate) use customer_upsert_columns;

/// The columns of `customers` read into a `CustomerRow`: the upserted ones and the pause.
pub(crate) const CUSTOMER_COLUMNS: &str =
    concat!(customer_upsert_columns!(), ", pause_reason, paused_until");

/// [`customer_upsert_columns!`] one by one.
pub(crate) fn customer_upsert_column_names() -> impl Iterator<Item = &'static str> {
    customer_upsert_columns!().split(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_action_insert_width_counts_its_columns() {
        assert_eq!(
            action_insert_columns!().split(", ").count(),
            super::ACTION_INSERT_WIDTH
        );
    }

    #[test]
    fn customer_columns_are_the_upserted_ones_and_the_pause() {
        let all: Vec<&str> = super::CUSTOMER_COLUMNS.split(", ").collect();
        let upserted: Vec<&str> = super::customer_upsert_column_names().collect();
        assert_eq!(upserted.len(), 24);
        assert_eq!(all[..24], upserted[..]);
        assert_eq!(all[24..], ["pause_reason", "paused_until"]);
    }
}
