//! [`DeliveryStore`] on the embedded store: each write is one job of the writer thread, so a
//! compare-and-swap or a claim reads what nobody can change meanwhile.

use async_trait::async_trait;
use gust_model::{DeadLetter, Delivery, DeliveryConfig};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, text};
use crate::sql;
use crate::{DeliveryStore, IdempotencyClaim, Result};

/// A stored integer: u64 past i64's range is clamped.
fn n(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// A row of `sql::DELIVERY`'s columns, as read.
type DeliveryRow = (i64, i64, Option<String>, i64, String);

/// A delivery from its row: the columns are the truth for what the loop changes.
fn delivery_of(row: DeliveryRow) -> Result<Delivery> {
    let (attempt, due, owner, lease, doc) = row;
    let mut d: Delivery = serde_json::from_str(&doc)?;
    d.attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
    d.due_ms = due.max(0) as u64;
    d.owner = owner;
    d.lease_ms = lease.max(0) as u64;
    Ok(d)
}

impl SqliteStore {
    async fn deliveries(&self, sql: &'static str, args: Vec<Value>) -> Result<Vec<Delivery>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.map(|r| delivery_of(r?)).collect()
        })
        .await
    }
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn delivery_config(
        &self,
        namespace: &str,
        action: &str,
    ) -> Result<Option<DeliveryConfig>> {
        self.doc(sql::DELIVERY_CONFIG, vec![text(namespace), text(action)])
            .await
    }

    async fn put_delivery_config(&self, config: &DeliveryConfig) -> Result<()> {
        let args = vec![
            text(&config.namespace),
            text(&config.action),
            Value::Text(serde_json::to_string(config)?),
        ];
        self.write_count(sql::PUT_DELIVERY_CONFIG, args)
            .await
            .map(|_| ())
    }

    async fn delete_delivery_config(&self, namespace: &str, action: &str) -> Result<bool> {
        let args = vec![text(namespace), text(action)];
        Ok(self.write_count(sql::DELETE_DELIVERY_CONFIG, args).await? > 0)
    }

    async fn put_delivery(&self, d: &Delivery) -> Result<()> {
        let args = vec![
            text(&d.namespace),
            text(&d.id),
            Value::Integer(i64::from(d.attempt)),
            n(d.due_ms),
            d.owner.as_deref().map_or(Value::Null, text),
            n(d.lease_ms),
            Value::Text(serde_json::to_string(d)?),
        ];
        self.write_count(sql::PUT_DELIVERY, args).await.map(|_| ())
    }

    async fn delivery(&self, namespace: &str, id: &str) -> Result<Option<Delivery>> {
        Ok(self
            .deliveries(sql::DELIVERY, vec![text(namespace), text(id)])
            .await?
            .into_iter()
            .next())
    }

    async fn due_deliveries(&self, owner: &str, now_ms: u64, limit: u64) -> Result<Vec<Delivery>> {
        self.deliveries(sql::DUE_DELIVERIES, vec![n(now_ms), text(owner), n(limit)])
            .await
    }

    async fn update_delivery(
        &self,
        d: &Delivery,
        expected_attempt: u32,
        now_ms: u64,
    ) -> Result<bool> {
        let args = vec![
            Value::Integer(i64::from(d.attempt)),
            n(d.due_ms),
            d.owner.as_deref().map_or(Value::Null, text),
            n(d.lease_ms),
            Value::Text(serde_json::to_string(d)?),
            text(&d.namespace),
            text(&d.id),
            Value::Integer(i64::from(expected_attempt)),
            n(now_ms),
        ];
        Ok(self.write_count(sql::UPDATE_DELIVERY, args).await? > 0)
    }

    async fn finish_delivery(
        &self,
        namespace: &str,
        id: &str,
        dead: Option<&DeadLetter>,
    ) -> Result<bool> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        let dead = dead
            .map(|d| -> Result<_> {
                Ok((
                    d.namespace.clone(),
                    d.id.clone(),
                    n(d.created),
                    serde_json::to_string(d)?,
                ))
            })
            .transpose()?;
        self.write(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM deliveries WHERE namespace = ?1 AND id = ?2")?
                .execute(params![ns, id])?;
            // Finished once: a second finish writes no second letter.
            if deleted == 0 {
                return Ok(false);
            }
            if let Some((ns, id, created, doc)) = dead {
                c.prepare_cached(sql::PUT_DEAD_LETTER)?
                    .execute(params![ns, id, created, doc])?;
            }
            Ok(true)
        })
        .await
    }

    async fn release_deliveries(&self) -> Result<()> {
        self.write_count(sql::RELEASE_DELIVERIES, Vec::new())
            .await
            .map(|_| ())
    }

    async fn dead_letters(
        &self,
        namespace: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<DeadLetter>> {
        self.docs(sql::DEAD_LETTERS, vec![text(namespace), n(limit), n(skip)])
            .await
    }

    async fn dead_letter(&self, namespace: &str, id: &str) -> Result<Option<DeadLetter>> {
        self.doc(sql::DEAD_LETTER, vec![text(namespace), text(id)])
            .await
    }

    async fn delete_dead_letter(&self, namespace: &str, id: &str) -> Result<bool> {
        let args = vec![text(namespace), text(id)];
        Ok(self.write_count(sql::DELETE_DEAD_LETTER, args).await? > 0)
    }

    async fn claim_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        claim: &IdempotencyClaim,
        now_ms: u64,
    ) -> Result<Option<IdempotencyClaim>> {
        let (ns, key, claim) = (namespace.to_string(), key.to_string(), claim.clone());
        let now = n(now_ms);
        self.write(move |c| {
            let claimed = c
                .prepare_cached(sql::CLAIM_IDEMPOTENCY_KEY)?
                .execute(params![
                    ns,
                    key,
                    claim.activation_id,
                    n(claim.expires_ms),
                    claim.action,
                    claim.digest,
                    n(claim.claimed_ms),
                    now,
                ])?;
            if claimed > 0 {
                return Ok(None);
            }
            Ok(c.prepare_cached(sql::IDEMPOTENCY_KEY)?
                .query_row(params![ns, key], |r| {
                    Ok(IdempotencyClaim {
                        activation_id: r.get(0)?,
                        expires_ms: r.get::<_, i64>(1)?.max(0) as u64,
                        action: r.get(2)?,
                        digest: r.get(3)?,
                        claimed_ms: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn replace_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        activation_id: &str,
        claim: &IdempotencyClaim,
    ) -> Result<bool> {
        let args = vec![
            text(&claim.activation_id),
            n(claim.expires_ms),
            text(&claim.action),
            text(&claim.digest),
            n(claim.claimed_ms),
            text(namespace),
            text(key),
            text(activation_id),
        ];
        Ok(self.write_count(sql::REPLACE_IDEMPOTENCY_KEY, args).await? > 0)
    }

    async fn release_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
        activation_id: &str,
    ) -> Result<()> {
        let args = vec![text(namespace), text(key), text(activation_id)];
        self.write_count(sql::RELEASE_IDEMPOTENCY_KEY, args)
            .await
            .map(|_| ())
    }

    async fn sweep_idempotency_keys(&self, now_ms: u64) -> Result<u64> {
        self.write_count(sql::SWEEP_IDEMPOTENCY_KEYS, vec![n(now_ms)])
            .await
    }
}
