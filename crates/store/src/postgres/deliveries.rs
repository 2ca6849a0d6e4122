//! [`DeliveryStore`] on PostgreSQL: every write is one statement. Leases and due times are
//! stored and compared on the database's clock (decision 0020); a delivery read back gives
//! its lease and due time on this process's clock, so a loop that writes it back unchanged
//! does not move them.

use async_trait::async_trait;
use gust_model::{DeadLetter, Delivery, DeliveryConfig};

use super::workflows::i;
use super::{PostgresStore, docs, first_doc};
use crate::sql;
use crate::{DeliveryStore, IdempotencyClaim, Result, StoreError};

/// Tries of a key claim that raced with another claim of the same key (each try is one
/// statement; a race that outlasts a few is not a race but a fault).
const CLAIM_TRIES: usize = 8;

impl PostgresStore {
    /// A delivery from a row of `sql::DELIVERY`'s columns: the columns are the truth for
    /// what the loop changes.
    fn delivery_from(&self, r: &tokio_postgres::Row) -> Result<Delivery> {
        let mut d: Delivery = serde_json::from_str(r.get(4))?;
        d.attempt = u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX);
        d.due_ms = self.local_time(r.get(1));
        d.owner = r.get(2);
        d.lease_ms = self.local_time(r.get(3));
        Ok(d)
    }
}

#[async_trait]
impl DeliveryStore for PostgresStore {
    async fn delivery_config(
        &self,
        namespace: &str,
        action: &str,
    ) -> Result<Option<DeliveryConfig>> {
        first_doc(
            &self
                .query(sql::DELIVERY_CONFIG, &[&namespace, &action])
                .await?,
        )
    }

    async fn put_delivery_config(&self, config: &DeliveryConfig) -> Result<()> {
        let doc = serde_json::to_string(config)?;
        self.execute(
            sql::PUT_DELIVERY_CONFIG,
            &[&config.namespace, &config.action, &doc],
        )
        .await
        .map(|_| ())
    }

    async fn delete_delivery_config(&self, namespace: &str, action: &str) -> Result<bool> {
        Ok(self
            .execute(sql::DELETE_DELIVERY_CONFIG, &[&namespace, &action])
            .await?
            > 0)
    }

    async fn put_delivery(&self, d: &Delivery) -> Result<()> {
        let doc = serde_json::to_string(d)?;
        self.execute(
            sql::PUT_DELIVERY,
            &[
                &d.namespace,
                &d.id,
                &i64::from(d.attempt),
                &self.db_time(d.due_ms),
                &d.owner,
                &self.db_time(d.lease_ms),
                &doc,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn delivery(&self, namespace: &str, id: &str) -> Result<Option<Delivery>> {
        self.query(sql::DELIVERY, &[&namespace, &id])
            .await?
            .first()
            .map(|r| self.delivery_from(r))
            .transpose()
    }

    async fn due_deliveries(&self, owner: &str, now_ms: u64, limit: u64) -> Result<Vec<Delivery>> {
        self.query(
            sql::DUE_DELIVERIES,
            &[&self.db_time(now_ms), &owner, &i(limit)],
        )
        .await?
        .iter()
        .map(|r| self.delivery_from(r))
        .collect()
    }

    async fn update_delivery(
        &self,
        d: &Delivery,
        expected_attempt: u32,
        now_ms: u64,
    ) -> Result<bool> {
        let doc = serde_json::to_string(d)?;
        let n = self
            .execute(
                sql::UPDATE_DELIVERY,
                &[
                    &i64::from(d.attempt),
                    &self.db_time(d.due_ms),
                    &d.owner,
                    &self.db_time(d.lease_ms),
                    &doc,
                    &d.namespace,
                    &d.id,
                    &i64::from(expected_attempt),
                    &self.db_time(now_ms),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn finish_delivery(
        &self,
        namespace: &str,
        id: &str,
        dead: Option<&DeadLetter>,
    ) -> Result<bool> {
        // One statement; the letter is written only by the finish that deleted the delivery.
        let letter = dead.map(serde_json::to_string).transpose()?;
        let (letter_ns, letter_id, created) = match dead {
            Some(d) => (
                Some(d.namespace.as_str()),
                Some(d.id.as_str()),
                i(d.created),
            ),
            None => (None, None, 0),
        };
        let rows = self
            .query(
                "WITH finished AS (
                    DELETE FROM deliveries WHERE namespace = $1 AND id = $2 RETURNING 1),
                 letter AS (
                    INSERT INTO dead_letters (namespace, id, created_ms, doc)
                    SELECT $3, $4, $5, $6
                    WHERE CAST($6 AS TEXT) IS NOT NULL AND EXISTS (SELECT 1 FROM finished)
                    ON CONFLICT (namespace, id) DO UPDATE
                    SET created_ms = excluded.created_ms, doc = excluded.doc)
                 SELECT count(*) FROM finished",
                &[&namespace, &id, &letter_ns, &letter_id, &created, &letter],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get::<_, i64>(0) > 0))
    }

    async fn release_deliveries(&self) -> Result<()> {
        self.execute(sql::RELEASE_DELIVERIES, &[]).await.map(|_| ())
    }

    async fn dead_letters(
        &self,
        namespace: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<DeadLetter>> {
        docs(
            &self
                .query(sql::DEAD_LETTERS, &[&namespace, &i(limit), &i(skip)])
                .await?,
        )
    }

    async fn dead_letter(&self, namespace: &str, id: &str) -> Result<Option<DeadLetter>> {
        first_doc(&self.query(sql::DEAD_LETTER, &[&namespace, &id]).await?)
    }

    async fn delete_dead_letter(&self, namespace: &str, id: &str) -> Result<bool> {
        Ok(self
            .execute(sql::DELETE_DEAD_LETTER, &[&namespace, &id])
            .await?
            > 0)
    }

    async fn claim_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        claim: &IdempotencyClaim,
        now_ms: u64,
    ) -> Result<Option<IdempotencyClaim>> {
        // The claim and the read of the key that refused it are one statement, but the read
        // sees the database as the statement began: a key another claim wrote meanwhile (or
        // an expired one it replaced) is not in it, and the statement is run again.
        let now = i(now_ms);
        let (expires, claimed) = (i(claim.expires_ms), i(claim.claimed_ms));
        for _ in 0..CLAIM_TRIES {
            let rows = self
                .query(
                    concat!(
                        "WITH claimed AS (",
                        // `sql::CLAIM_IDEMPOTENCY_KEY`, returning what it wrote.
                        "INSERT INTO idempotency_keys (namespace, key, activation_id, expires_ms,
                                                       action, digest, claimed_ms)
                         VALUES ($1, $2, $3, $4, $6, $7, $8)
                         ON CONFLICT (namespace, key) DO UPDATE
                         SET activation_id = excluded.activation_id,
                             expires_ms = excluded.expires_ms,
                             action = excluded.action,
                             digest = excluded.digest,
                             claimed_ms = excluded.claimed_ms
                         WHERE idempotency_keys.expires_ms <= $5
                         RETURNING 1)
                     SELECT (SELECT count(*) FROM claimed), k.activation_id, k.expires_ms,
                            k.action, k.digest, k.claimed_ms
                     FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k
                       ON k.namespace = $1 AND k.key = $2"
                    ),
                    &[
                        &namespace,
                        &key,
                        &claim.activation_id,
                        &expires,
                        &now,
                        &claim.action,
                        &claim.digest,
                        &claimed,
                    ],
                )
                .await?;
            let Some(row) = rows.first() else {
                continue;
            };
            if row.get::<_, i64>(0) > 0 {
                return Ok(None);
            }
            let held: Option<String> = row.get(1);
            let until: Option<i64> = row.get(2);
            if let (Some(held), Some(until)) = (held, until)
                && until > now
            {
                return Ok(Some(IdempotencyClaim {
                    activation_id: held,
                    expires_ms: until.max(0) as u64,
                    action: row.get::<_, Option<String>>(3).unwrap_or_default(),
                    digest: row.get::<_, Option<String>>(4).unwrap_or_default(),
                    claimed_ms: row.get::<_, Option<i64>>(5).unwrap_or(0).max(0) as u64,
                }));
            }
        }
        Err(StoreError::Backend(format!(
            "idempotency key claims kept racing for a key of namespace {namespace}"
        )))
    }

    async fn replace_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        activation_id: &str,
        claim: &IdempotencyClaim,
    ) -> Result<bool> {
        let n = self
            .execute(
                sql::REPLACE_IDEMPOTENCY_KEY,
                &[
                    &claim.activation_id,
                    &i(claim.expires_ms),
                    &claim.action,
                    &claim.digest,
                    &i(claim.claimed_ms),
                    &namespace,
                    &key,
                    &activation_id,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn release_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        activation_id: &str,
    ) -> Result<()> {
        self.execute(
            sql::RELEASE_IDEMPOTENCY_KEY,
            &[&namespace, &key, &activation_id],
        )
        .await
        .map(|_| ())
    }

    async fn sweep_idempotency_keys(&self, now_ms: u64) -> Result<u64> {
        self.execute(sql::SWEEP_IDEMPOTENCY_KEYS, &[&i(now_ms)])
            .await
    }
}
