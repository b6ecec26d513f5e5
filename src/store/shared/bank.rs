//! The bank statement import's reads and its record of each credit (`bank_credits`).

use super::{Db, StoreImpl};
use crate::store::bank::{BankCreditRow, CustomerName, OpenInvoice};

type CreditRow = (
    String,
    String,
    chrono::NaiveDate,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
);

#[async_trait::async_trait]
impl crate::store::BankStore for StoreImpl {
    async fn open_invoices_for_matching(
        &self,
        each: &mut (dyn FnMut(OpenInvoice) + Send),
    ) -> crate::store::Result<()> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT invoices.number, customers.external_id, invoices.currency, invoices.open_minor \
             FROM invoices JOIN customers ON customers.id = invoices.customer_id \
             WHERE invoices.status = 'open' AND invoices.open_minor > 0",
        )
        .fetch(&self.pool);
        while let Some((number, customer, currency, open)) = rows.try_next().await? {
            let cur = crate::store::rows::currency(&currency)?;
            each(OpenInvoice {
                number,
                customer,
                currency,
                open_amount: cur.from_minor(open),
            });
        }
        Ok(())
    }

    async fn customer_names(&self) -> crate::store::Result<Vec<CustomerName>> {
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT external_id, name, legal_name FROM customers")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(external_id, name, legal_name)| CustomerName {
                external_id,
                name,
                legal_name,
            })
            .collect())
    }

    async fn record_bank_credits(&self, rows: &[BankCreditRow]) -> crate::store::Result<u64> {
        let mut written = 0;
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO bank_credits (key, file_name, value_date, currency, amount_minor, \
                 debtor_name, debtor_iban, reference, remittance, matched_by, customer, invoice, \
                 payment_id, imported_at) ",
            );
            let mut binds = Vec::with_capacity(chunk.len());
            for r in chunk {
                let minor = crate::store::rows::currency(&r.currency)?
                    .to_minor(r.amount)
                    .map_err(|e| crate::store::StoreError::Invalid(e.to_string()))?;
                binds.push((r, minor));
            }
            qb.push_values(binds, |mut b, (r, minor)| {
                b.push_bind(&r.key)
                    .push_bind(&r.file_name)
                    .push_bind(r.value_date)
                    .push_bind(&r.currency)
                    .push_bind(minor)
                    .push_bind(&r.debtor_name)
                    .push_bind(&r.debtor_iban)
                    .push_bind(&r.reference)
                    .push_bind(&r.remittance)
                    .push_bind(&r.matched_by)
                    .push_bind(&r.customer)
                    .push_bind(&r.invoice)
                    .push_bind(&r.payment_id)
                    .push_bind(r.imported_at);
            });
            qb.push(
                " ON CONFLICT (key) DO UPDATE SET matched_by = excluded.matched_by, \
                 customer = excluded.customer, invoice = excluded.invoice, \
                 payment_id = excluded.payment_id \
                 WHERE bank_credits.matched_by IS NULL AND excluded.matched_by IS NOT NULL",
            );
            written += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn matched_bank_credits(
        &self,
        keys: &[String],
    ) -> crate::store::Result<std::collections::HashMap<String, (String, String, Option<String>)>>
    {
        let mut out = std::collections::HashMap::new();
        for chunk in keys.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "SELECT key, matched_by, customer, invoice FROM bank_credits \
                 WHERE matched_by IS NOT NULL AND key IN (",
            );
            let mut sep = qb.separated(", ");
            for k in chunk {
                sep.push_bind(k);
            }
            qb.push(")");
            let rows: Vec<(String, String, Option<String>, Option<String>)> =
                qb.build_query_as().fetch_all(&self.pool).await?;
            for (key, by, customer, invoice) in rows {
                if let Some(customer) = customer {
                    out.insert(key, (by, customer, invoice));
                }
            }
        }
        Ok(out)
    }

    async fn bank_credits(
        &self,
        unmatched: bool,
        limit: u32,
    ) -> crate::store::Result<Vec<BankCreditRow>> {
        let sql =
            format!(
            "SELECT key, file_name, value_date, currency, amount_minor, debtor_name, debtor_iban, \
             reference, remittance, matched_by, customer, invoice, payment_id, imported_at \
             FROM bank_credits {} ORDER BY value_date DESC, id DESC LIMIT $1",
            if unmatched { "WHERE matched_by IS NULL" } else { "" }
        );
        let rows: Vec<CreditRow> = sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                let cur = crate::store::rows::currency(&r.3)?;
                Ok(BankCreditRow {
                    key: r.0,
                    file_name: r.1,
                    value_date: r.2,
                    currency: r.3,
                    amount: cur.from_minor(r.4),
                    debtor_name: r.5,
                    debtor_iban: r.6,
                    reference: r.7,
                    remittance: r.8,
                    matched_by: r.9,
                    customer: r.10,
                    invoice: r.11,
                    payment_id: r.12,
                    imported_at: r.13,
                })
            })
            .collect()
    }
}
