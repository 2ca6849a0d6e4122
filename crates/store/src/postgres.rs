//! The scale-out store: PostgreSQL, shared by every controller and invoker of a cluster.
//!
//! Same tables and invariants as the embedded store. Every write that must be atomic is one
//! SQL statement (data-modifying CTEs where it touches two tables), so no write holds a
//! transaction open across round trips; PostgreSQL's own group commit batches the commits
//! of concurrent connections. Migrations are versioned in `gust_schema` and applied at start
//! under an advisory lock, so processes starting together apply each once.
//!
//! The search path picks the schema: `postgres://host/db?options=-c%20search_path%3Dgust`
//! keeps Gust's tables in schema `gust` (the tests give each server a schema of its own).

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use gust_model::time::now_ms;
use gust_model::{
    Action, Activation, EncodedActivation, Mapping, Namespace, NamespaceLimits, Package, Route,
    Rule, Schedule, Site, Subscription, Trigger,
};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::sql::{self, Arg};
use crate::{
    ActionStore, ActivationQuery, ActivationStore, Admission, AdmissionStore, JournalStore,
    MappingStore, NamespaceStore, PackageStore, PendingInvocation, PutMode, Result, RouteStore,
    RuleStore, ScheduleStore, SiteStore, StoreError, SubscriptionStore, TickClaim, TriggerStore,
    WritePosition, action_from, name_range,
};

mod deliveries;
mod workflows;

/// Connections kept open to PostgreSQL per process.
const POOL_SIZE: usize = 16;
/// Key of the advisory lock that serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x6775_7374; // "gust"

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE namespaces (
    name    TEXT PRIMARY KEY,
    uuid    TEXT NOT NULL UNIQUE,
    key     TEXT NOT NULL,
    limits  TEXT NOT NULL
);
CREATE TABLE actions (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    code      BYTEA NOT NULL,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
-- Records are kept as the JSON text the invoker encoded (not jsonb): read back byte for byte.
CREATE TABLE activations (
    id        TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    start     BIGINT NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX activations_by_namespace ON activations (namespace, start DESC);
CREATE INDEX activations_by_name ON activations (namespace, name, start DESC);
CREATE TABLE pending (
    id        TEXT PRIMARY KEY,
    accepted  BIGINT NOT NULL,
    message   BYTEA NOT NULL
);
"#,
    r#"
-- Cluster-wide throttling (`admit`). A namespace's row in `invocations_admitted` counts its
-- admissions (`n`) and those of the current minute; `invocations_finished` counts the
-- admitted journal entries cleared since (by their record, or `forget_pending`, in the same
-- statement), spread over 16 rows per namespace so records of one namespace rarely wait on
-- one row lock. In flight = n - finished. (Counting journal rows instead costs a scan of their
-- dead index entries per admission.)
ALTER TABLE pending ADD COLUMN namespace TEXT;
CREATE TABLE invocations_admitted (
    namespace TEXT PRIMARY KEY,
    n         BIGINT NOT NULL,
    minute    BIGINT NOT NULL,
    in_minute BIGINT NOT NULL
);
CREATE TABLE invocations_finished (
    namespace TEXT NOT NULL,
    shard     SMALLINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (namespace, shard)
);
"#,
    r#"
CREATE TABLE packages (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    publish   BOOLEAN NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
"#,
    r#"
CREATE TABLE routes (
    namespace TEXT NOT NULL,
    base_path TEXT NOT NULL,
    path      TEXT NOT NULL,
    method    TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, base_path, path, method)
);
"#,
    r#"
CREATE TABLE site_blobs (
    namespace TEXT NOT NULL,
    hash      TEXT NOT NULL,
    content   BYTEA NOT NULL,
    touched   BIGINT NOT NULL,
    PRIMARY KEY (namespace, hash)
);
CREATE TABLE sites (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
"#,
    r#"
-- One collation rule for every list (decision 0019): every key column sorts by its bytes, as
-- SQLite's do, whatever the database's default collation; a package's actions are then the
-- key range `p/` to `p0` on both backends.
ALTER TABLE namespaces ALTER COLUMN name TYPE TEXT COLLATE "C",
                       ALTER COLUMN uuid TYPE TEXT COLLATE "C";
ALTER TABLE actions ALTER COLUMN namespace TYPE TEXT COLLATE "C",
                    ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE activations ALTER COLUMN id TYPE TEXT COLLATE "C",
                        ALTER COLUMN namespace TYPE TEXT COLLATE "C",
                        ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE pending ALTER COLUMN id TYPE TEXT COLLATE "C",
                    ALTER COLUMN namespace TYPE TEXT COLLATE "C";
ALTER TABLE invocations_admitted ALTER COLUMN namespace TYPE TEXT COLLATE "C";
ALTER TABLE invocations_finished ALTER COLUMN namespace TYPE TEXT COLLATE "C";
ALTER TABLE packages ALTER COLUMN namespace TYPE TEXT COLLATE "C",
                     ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE routes ALTER COLUMN namespace TYPE TEXT COLLATE "C",
                   ALTER COLUMN base_path TYPE TEXT COLLATE "C",
                   ALTER COLUMN path TYPE TEXT COLLATE "C",
                   ALTER COLUMN method TYPE TEXT COLLATE "C";
ALTER TABLE site_blobs ALTER COLUMN namespace TYPE TEXT COLLATE "C",
                       ALTER COLUMN hash TYPE TEXT COLLATE "C";
ALTER TABLE sites ALTER COLUMN namespace TYPE TEXT COLLATE "C",
                  ALTER COLUMN name TYPE TEXT COLLATE "C";
"#,
    r#"
-- Triggers, rules and the schedules of timer-fed triggers (decision 0020); fires counted per
-- namespace and minute across every controller.
CREATE TABLE triggers (
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    version   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE rules (
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    version   TEXT NOT NULL,
    trigger   TEXT COLLATE "C" NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX rules_by_trigger ON rules (namespace, trigger);
CREATE TABLE schedules (
    namespace  TEXT COLLATE "C" NOT NULL,
    trigger    TEXT COLLATE "C" NOT NULL,
    doc        TEXT NOT NULL,
    next_ms    BIGINT,
    pending_ms BIGINT,
    owner      TEXT,
    lease_ms   BIGINT NOT NULL,
    fired      BIGINT NOT NULL,
    PRIMARY KEY (namespace, trigger)
);
CREATE INDEX schedules_by_next ON schedules (next_ms);
CREATE INDEX schedules_pending ON schedules (pending_ms) WHERE pending_ms IS NOT NULL;
CREATE TABLE fires_admitted (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    minute    BIGINT NOT NULL,
    n         BIGINT NOT NULL
);
"#,
    r#"
-- The subscriptions of source-fed triggers (decision 0021).
CREATE TABLE subscriptions (
    namespace TEXT COLLATE "C" NOT NULL,
    trigger   TEXT COLLATE "C" NOT NULL,
    doc       TEXT NOT NULL,
    runs      INTEGER NOT NULL,
    owner     TEXT,
    lease_ms  BIGINT NOT NULL,
    status    TEXT NOT NULL,
    PRIMARY KEY (namespace, trigger)
);
CREATE INDEX subscriptions_running ON subscriptions (runs, owner);
"#,
    r#"
-- The write order of records, for readers of new records (decision 0026): the id of the
-- transaction that wrote each one. Every transaction below the oldest one still running has
-- ended, so a reader that reads up to that boundary never passes over a record that commits
-- later.
ALTER TABLE activations ADD COLUMN written xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX activations_by_written ON activations (namespace, written, id);
"#,
    r#"
-- The event source mappings of stream triggers, one per rule (decision 0027).
CREATE TABLE mappings (
    namespace  TEXT COLLATE "C" NOT NULL,
    rule       TEXT COLLATE "C" NOT NULL,
    trigger    TEXT COLLATE "C" NOT NULL,
    checkpoint BIGINT NOT NULL,
    state      TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, rule)
);
"#,
    r#"
-- Durable workflows and async delivery (decision 0028).
CREATE TABLE workflows (
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    version   TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE executions (
    namespace TEXT COLLATE "C" NOT NULL,
    id        TEXT COLLATE "C" NOT NULL,
    workflow  TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    status    TEXT NOT NULL,
    start_ms  BIGINT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, id),
    UNIQUE (namespace, workflow, name)
);
CREATE INDEX executions_by_start ON executions (namespace, start_ms, id);
CREATE INDEX executions_by_workflow ON executions (namespace, workflow, start_ms, id);
CREATE TABLE workflow_runs (
    namespace TEXT COLLATE "C" NOT NULL,
    id        TEXT COLLATE "C" NOT NULL,
    seq       BIGINT NOT NULL,
    snapshot  TEXT NOT NULL,
    wake_ms   BIGINT,
    owner     TEXT,
    lease_ms  BIGINT NOT NULL,
    PRIMARY KEY (namespace, id)
);
-- An unowned run's lease_ms is 0, so the claim poll is one range of this index.
CREATE INDEX workflow_runs_by_lease ON workflow_runs (lease_ms);
CREATE INDEX workflow_runs_by_owner ON workflow_runs (owner);
CREATE TABLE workflow_history (
    namespace TEXT COLLATE "C" NOT NULL,
    execution TEXT COLLATE "C" NOT NULL,
    seq       BIGINT NOT NULL,
    ts        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    details   TEXT NOT NULL,
    PRIMARY KEY (namespace, execution, seq)
);
-- History payloads over 8 KiB, once per namespace, by the hex SHA-256 of their JSON text.
CREATE TABLE workflow_payloads (
    namespace TEXT COLLATE "C" NOT NULL,
    hash      TEXT COLLATE "C" NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (namespace, hash)
);
CREATE TABLE workflow_signals (
    id        BIGSERIAL PRIMARY KEY,
    namespace TEXT COLLATE "C" NOT NULL,
    execution TEXT COLLATE "C" NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX workflow_signals_by_run ON workflow_signals (namespace, execution, id);
CREATE TABLE delivery_configs (
    namespace TEXT COLLATE "C" NOT NULL,
    action    TEXT COLLATE "C" NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, action)
);
CREATE TABLE deliveries (
    namespace TEXT COLLATE "C" NOT NULL,
    id        TEXT COLLATE "C" NOT NULL,
    attempt   BIGINT NOT NULL,
    due_ms    BIGINT NOT NULL,
    owner     TEXT,
    lease_ms  BIGINT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX deliveries_by_due ON deliveries (due_ms);
CREATE TABLE dead_letters (
    namespace  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX dead_letters_by_created ON dead_letters (namespace, created_ms, id);
CREATE TABLE idempotency_keys (
    namespace     TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    activation_id TEXT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    action        TEXT NOT NULL DEFAULT '',
    digest        TEXT NOT NULL DEFAULT '',
    claimed_ms    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_ms);
"#,
];

/// CTEs that delete journal entry `$1` and, if a cluster's controller admitted it (it has a
/// namespace), count it finished in `invocations_finished` row `$2` of its namespace. A macro,
/// so the statements that use it stay string literals.
macro_rules! clear_pending {
    () => {
        "cleared AS (DELETE FROM pending WHERE id = $1 RETURNING namespace),
         finished AS (
            INSERT INTO invocations_finished (namespace, shard, n)
            SELECT namespace, $2, 1 FROM cleared WHERE namespace IS NOT NULL
            ON CONFLICT (namespace, shard) DO UPDATE SET n = invocations_finished.n + 1)"
    };
}

/// Which of a namespace's 16 `invocations_finished` rows an activation counts in.
fn shard(activation_id: &str) -> i16 {
    activation_id
        .bytes()
        .last()
        .map_or(0, |b| i16::from(b % 16))
}

type Param = Box<dyn ToSql + Sync + Send>;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Backend(match e.as_db_error() {
            Some(db) => format!("PostgreSQL: {}", db.message()),
            None => format!("PostgreSQL: {}", chain(&e)),
        })
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// The database's clock minus this process's, in ms, measured at connect: leases (of
    /// schedules, subscriptions, workflow runs and deliveries), due ticks and due deliveries
    /// are compared on the database's clock, so processes whose own clocks differ still
    /// agree on when a lease ran out.
    clock_offset_ms: i64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db?...`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_ca(url, None).await
    }

    /// Connects like [`PostgresStore::connect`]; with `sslmode=require` in the URL the
    /// connection is TLS and the server's certificate must chain to the system's roots or to
    /// a certificate in the PEM file `ca`, and name the URL's host (stricter than libpq's
    /// `require`, which checks nothing). Without it the connection is plain.
    pub async fn connect_with_ca(url: &str, ca: Option<&Path>) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Require {
            let tls = MakeRustlsConnect::new(tls_config(ca)?);
            Manager::from_config(config, tls, recycling)
        } else {
            Manager::from_config(config, NoTls, recycling)
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot set up the connection pool: {e}")))?;
        let mut store = PostgresStore {
            pool,
            clock_offset_ms: 0,
        };
        store.migrate().await?;
        store.clock_offset_ms = store.measure_clock_offset().await?;
        Ok(store)
    }

    /// The database's clock minus this process's (ms), from the middle of one round trip.
    async fn measure_clock_offset(&self) -> Result<i64> {
        let client = self.client().await?;
        let before = now_ms() as i64;
        let row = client
            .query_one(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                &[],
            )
            .await?;
        let after = now_ms() as i64;
        Ok(row.get::<_, i64>(0) - (before + after) / 2)
    }

    /// A time of this process's clock (ms) on the database's clock.
    fn db_time(&self, ms: u64) -> i64 {
        (ms as i64).saturating_add(self.clock_offset_ms)
    }

    /// Whether the server offers TLS, the path of its certificate file (on the server's
    /// machine), and whether this store's connections use TLS.
    pub async fn server_tls(&self) -> Result<(bool, String, bool)> {
        let client = self.client().await?;
        let ssl: String = client.query_one("SHOW ssl", &[]).await?.get(0);
        let cert: String = client.query_one("SHOW ssl_cert_file", &[]).await?.get(0);
        let used: bool = client
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await?
            .get(0);
        Ok((ssl == "on", cert, used))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("cannot reach PostgreSQL: {}", chain(&e))))
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS gust_schema (version INTEGER NOT NULL)")
            .await?;
        let version: i32 = tx
            .query_opt("SELECT version FROM gust_schema", &[])
            .await?
            .map_or(0, |r| r.get(0));
        for sql in MIGRATIONS.iter().skip(version.max(0) as usize) {
            tx.batch_execute(sql).await?;
        }
        let latest = MIGRATIONS.len() as i32;
        if version < latest {
            tx.execute("DELETE FROM gust_schema", &[]).await?;
            tx.execute("INSERT INTO gust_schema (version) VALUES ($1)", &[&latest])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs one statement; returns the rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    /// Deletes journal entries whose record exists (they are finished; see
    /// `put_pending_unless_recorded`).
    async fn drop_recorded_pending(&self) -> Result<u64> {
        self.execute(
            "DELETE FROM pending p USING activations a WHERE p.id = a.id",
            &[],
        )
        .await
    }

    async fn namespace_where(&self, sql: &str, value: &str) -> Result<Option<Namespace>> {
        self.query(sql, &[&value])
            .await?
            .first()
            .map(namespace_from)
            .transpose()
    }
}

/// An error with its causes (a TLS failure says why only in its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = s.source();
    }
    text
}

/// TLS settings: the system's root certificates and those of the PEM file `ca`.
fn tls_config(ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    let tls = |e: &dyn std::fmt::Display| StoreError::Backend(format!("TLS: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(ca) = ca {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| tls(&format!("cannot read {}: {e}", ca.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| tls(&format!("{}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls(&format!("{}: {e}", ca.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn namespace_from(r: &tokio_postgres::Row) -> Result<Namespace> {
    Ok(Namespace {
        name: r.get(0),
        uuid: r.get(1),
        key: r.get(2),
        limits: serde_json::from_str(r.get(3))?,
    })
}

/// The parameters of a statement built at run time, as PostgreSQL takes them.
fn params_of(args: Vec<Arg>) -> Vec<Param> {
    args.into_iter()
        .map(|a| -> Param {
            match a {
                Arg::Text(s) => Box::new(s),
                Arg::Int(n) => Box::new(n),
            }
        })
        .collect()
}

fn refs(args: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

#[async_trait]
impl NamespaceStore for PostgresStore {
    async fn create_namespace(&self, ns: &Namespace) -> Result<()> {
        let limits = serde_json::to_string(&ns.limits)?;
        let n = self
            .execute(
                sql::CREATE_NAMESPACE,
                &[&ns.name, &ns.uuid, &ns.key, &limits],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>> {
        self.namespace_where(sql::NAMESPACE_BY_UUID, uuid).await
    }

    async fn namespace(&self, name: &str) -> Result<Option<Namespace>> {
        self.namespace_where(sql::NAMESPACE_BY_NAME, name).await
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.query(sql::LIST_NAMESPACES, &[])
            .await?
            .iter()
            .map(namespace_from)
            .collect()
    }

    async fn set_namespace_key(&self, name: &str, uuid: &str, key: &str) -> Result<()> {
        let n = self
            .execute(sql::SET_NAMESPACE_KEY, &[&uuid, &key, &name])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_namespace_limits(&self, name: &str, limits: NamespaceLimits) -> Result<()> {
        let limits = serde_json::to_string(&limits)?;
        let n = self
            .execute(sql::SET_NAMESPACE_LIMITS, &[&limits, &name])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_namespace(&self, name: &str) -> Result<()> {
        // One statement: the namespace, its actions and its activations go together.
        let n = self
            .execute(
                "WITH a AS (DELETE FROM actions WHERE namespace = $1),
                      p AS (DELETE FROM packages WHERE namespace = $1),
                      t AS (DELETE FROM routes WHERE namespace = $1),
                      s AS (DELETE FROM sites WHERE namespace = $1),
                      b AS (DELETE FROM site_blobs WHERE namespace = $1),
                      g AS (DELETE FROM triggers WHERE namespace = $1),
                      u AS (DELETE FROM rules WHERE namespace = $1),
                      h AS (DELETE FROM schedules WHERE namespace = $1),
                      v AS (DELETE FROM subscriptions WHERE namespace = $1),
                      m AS (DELETE FROM mappings WHERE namespace = $1),
                      r AS (DELETE FROM activations WHERE namespace = $1),
                      wf AS (DELETE FROM workflows WHERE namespace = $1),
                      ex AS (DELETE FROM executions WHERE namespace = $1),
                      wr AS (DELETE FROM workflow_runs WHERE namespace = $1),
                      wh AS (DELETE FROM workflow_history WHERE namespace = $1),
                      wp AS (DELETE FROM workflow_payloads WHERE namespace = $1),
                      ws AS (DELETE FROM workflow_signals WHERE namespace = $1),
                      dc AS (DELETE FROM delivery_configs WHERE namespace = $1),
                      dd AS (DELETE FROM deliveries WHERE namespace = $1),
                      dl AS (DELETE FROM dead_letters WHERE namespace = $1),
                      ik AS (DELETE FROM idempotency_keys WHERE namespace = $1)
                 DELETE FROM namespaces WHERE name = $1",
                &[&name],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

#[async_trait]
impl ActionStore for PostgresStore {
    async fn action(&self, namespace: &str, name: &str, with_code: bool) -> Result<Option<Action>> {
        let sql = if with_code {
            sql::ACTION_WITH_CODE
        } else {
            sql::ACTION_WITHOUT_CODE
        };
        self.query(sql, &[&namespace, &name])
            .await?
            .first()
            .map(|r| action_from(r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    async fn action_code(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .query(sql::ACTION_CODE, &[&namespace, &name])
            .await?
            .first()
            .map(|r| r.get(0)))
    }

    async fn put_action(&self, action: &Action, code: Option<&[u8]>, mode: PutMode) -> Result<()> {
        let mut doc_action = action.clone();
        doc_action.exec.code = None;
        let doc = serde_json::to_string(&doc_action)?;
        let (ns, name, version, hash) = (
            &action.namespace,
            &action.name,
            &action.version,
            &action.code_hash,
        );
        let n = match (mode, code) {
            (PutMode::Create, Some(code)) => {
                self.execute(sql::CREATE_ACTION, &[ns, name, version, &doc, &code, hash])
                    .await?
            }
            (PutMode::Create, None) => {
                return Err(StoreError::Backend("an action needs code".into()));
            }
            (PutMode::Replace { expected_version }, Some(code)) => {
                self.execute(
                    sql::REPLACE_ACTION_WITH_CODE,
                    &[version, &doc, &code, hash, ns, name, &expected_version],
                )
                .await?
            }
            (PutMode::Replace { expected_version }, None) => {
                self.execute(
                    sql::REPLACE_ACTION_DOC,
                    &[version, &doc, ns, name, &expected_version],
                )
                .await?
            }
        };
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn delete_action(&self, namespace: &str, name: &str) -> Result<Option<Action>> {
        self.query(sql::DELETE_ACTION, &[&namespace, &name])
            .await?
            .first()
            .map(|r| action_from(r.get(0), r.get(1), None))
            .transpose()
    }

    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Action>> {
        let (lo, hi) = name_range(package);
        self.query(
            sql::LIST_ACTIONS,
            &[&namespace, &lo, &hi, &(limit as i64), &(skip as i64)],
        )
        .await?
        .iter()
        .map(|r| action_from(r.get(0), r.get(1), None))
        .collect()
    }

    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> Result<u64> {
        let (lo, hi) = name_range(package);
        let rows = self
            .query(sql::COUNT_ACTIONS, &[&namespace, &lo, &hi])
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    async fn code_hashes(&self) -> Result<Vec<String>> {
        Ok(self
            .query(sql::CODE_HASHES, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }
}

#[async_trait]
impl PackageStore for PostgresStore {
    async fn package(&self, namespace: &str, name: &str) -> Result<Option<Package>> {
        self.query(sql::PACKAGE, &[&namespace, &name])
            .await?
            .first()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .transpose()
    }

    async fn put_package(&self, package: &Package, mode: PutMode) -> Result<()> {
        let doc = serde_json::to_string(package)?;
        let (ns, name, version, publish) = (
            &package.namespace,
            &package.name,
            &package.version,
            &package.publish,
        );
        let n = match mode {
            PutMode::Create => {
                self.execute(sql::CREATE_PACKAGE, &[ns, name, version, publish, &doc])
                    .await?
            }
            PutMode::Replace { expected_version } => {
                self.execute(
                    sql::REPLACE_PACKAGE,
                    &[version, publish, &doc, ns, name, &expected_version],
                )
                .await?
            }
        };
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn delete_package(&self, namespace: &str, name: &str) -> Result<Option<Package>> {
        // One statement: the package and its actions (the key range of its names) go together.
        let (lo, hi) = name_range(Some(name));
        self.query(
            "WITH p AS (DELETE FROM packages WHERE namespace = $1 AND name = $2 RETURNING doc),
                  a AS (DELETE FROM actions WHERE namespace = $1 AND name >= $3 AND name < $4
                        AND EXISTS (SELECT 1 FROM p))
             SELECT doc FROM p",
            &[&namespace, &name, &lo, &hi],
        )
        .await?
        .first()
        .map(|r| Ok(serde_json::from_str(r.get(0))?))
        .transpose()
    }

    async fn list_packages(
        &self,
        namespace: &str,
        public_only: bool,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<Package>> {
        self.query(
            sql::LIST_PACKAGES,
            &[&namespace, &public_only, &(limit as i64), &(skip as i64)],
        )
        .await?
        .iter()
        .map(|r| Ok(serde_json::from_str(r.get(0))?))
        .collect()
    }

    async fn count_packages(&self, namespace: &str, public_only: bool) -> Result<u64> {
        let rows = self
            .query(sql::COUNT_PACKAGES, &[&namespace, &public_only])
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }
}

#[async_trait]
impl RouteStore for PostgresStore {
    async fn put_route(&self, route: &Route) -> Result<()> {
        let doc = serde_json::to_string(route)?;
        self.execute(
            sql::PUT_ROUTE,
            &[
                &route.namespace,
                &route.base_path,
                &route.path,
                &route.method,
                &doc,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn delete_routes(
        &self,
        namespace: &str,
        base_path: &str,
        path: Option<&str>,
        method: Option<&str>,
    ) -> Result<u64> {
        self.execute(
            sql::DELETE_ROUTES,
            &[&namespace, &base_path, &path, &method],
        )
        .await
    }

    async fn list_routes(&self, namespace: &str, base_path: Option<&str>) -> Result<Vec<Route>> {
        self.query(sql::LIST_ROUTES, &[&namespace, &base_path])
            .await?
            .iter()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .collect()
    }
}

#[async_trait]
impl SiteStore for PostgresStore {
    async fn put_site_blob(&self, namespace: &str, hash: &str, content: Vec<u8>) -> Result<()> {
        self.execute(
            sql::PUT_SITE_BLOB,
            &[&namespace, &hash, &content, &(now_ms() as i64)],
        )
        .await
        .map(|_| ())
    }

    async fn touch_site_blobs(
        &self,
        namespace: &str,
        hashes: &[String],
    ) -> Result<HashMap<String, u64>> {
        Ok(self
            .query(
                "UPDATE site_blobs SET touched = $3 WHERE namespace = $1 AND hash = ANY($2)
                 RETURNING hash, octet_length(content)",
                &[&namespace, &hashes, &(now_ms() as i64)],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1) as u64))
            .collect())
    }

    async fn site_blob(&self, namespace: &str, hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .query(sql::SITE_BLOB, &[&namespace, &hash])
            .await?
            .first()
            .map(|r| r.get(0)))
    }

    async fn site_blob_bytes(&self, namespace: &str) -> Result<u64> {
        let rows = self.query(sql::SITE_BLOB_BYTES, &[&namespace]).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    async fn sweep_site_blobs(&self, namespace: &str, before: u64) -> Result<u64> {
        self.execute(
            "DELETE FROM site_blobs b WHERE namespace = $1 AND touched < $2
             AND NOT EXISTS (
                 SELECT 1 FROM sites s, jsonb_each(s.doc::jsonb -> 'files') f
                 WHERE s.namespace = $1 AND f.value ->> 'hash' = b.hash)",
            &[&namespace, &(before as i64)],
        )
        .await
    }

    async fn site(&self, namespace: &str, name: &str) -> Result<Option<Site>> {
        self.query(sql::SITE, &[&namespace, &name])
            .await?
            .first()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .transpose()
    }

    async fn put_site(&self, site: &Site) -> Result<()> {
        let doc = serde_json::to_string(site)?;
        self.execute(sql::PUT_SITE, &[&site.namespace, &site.name, &doc])
            .await
            .map(|_| ())
    }

    async fn delete_site(&self, namespace: &str, name: &str) -> Result<Option<Site>> {
        self.query(sql::DELETE_SITE, &[&namespace, &name])
            .await?
            .first()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .transpose()
    }

    async fn list_sites(&self, namespace: &str) -> Result<Vec<Site>> {
        self.query(sql::LIST_SITES, &[&namespace])
            .await?
            .iter()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .collect()
    }
}

#[async_trait]
impl JournalStore for PostgresStore {
    async fn put_pending(&self, p: PendingInvocation) -> Result<()> {
        self.execute(
            "INSERT INTO pending (id, accepted, message) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&p.activation_id, &(p.accepted_at as i64), &p.message],
        )
        .await
        .map(|_| ())
    }

    async fn put_pending_unless_recorded(&self, p: PendingInvocation) -> Result<bool> {
        // Racing with the record's own write, both may commit (neither sees the other's
        // uncommitted row); `pending` then drops the entry instead of running it again.
        let n = self
            .execute(
                sql::PUT_PENDING_UNLESS_RECORDED,
                &[&p.activation_id, &(p.accepted_at as i64), &p.message],
            )
            .await?;
        Ok(n > 0)
    }

    async fn is_accepted(&self, namespace: &str, id: &str) -> Result<bool> {
        Ok(!self
            .query(sql::IS_ACCEPTED, &[&id, &namespace])
            .await?
            .is_empty())
    }

    async fn pending(&self) -> Result<Vec<PendingInvocation>> {
        // Entries whose record exists are finished: dropped, not returned.
        self.drop_recorded_pending().await?;
        Ok(self
            .query(sql::PENDING, &[])
            .await?
            .iter()
            .map(|r| PendingInvocation {
                activation_id: r.get(0),
                accepted_at: r.get::<_, i64>(1) as u64,
                message: r.get(2),
            })
            .collect())
    }

    async fn refresh_pending(&self, activation_id: &str, now_ms: u64) -> Result<()> {
        self.execute(
            "UPDATE pending SET accepted = $2 WHERE id = $1",
            &[&activation_id, &(now_ms as i64)],
        )
        .await
        .map(|_| ())
    }

    async fn forget_pending(&self, activation_id: &str) -> Result<()> {
        self.execute(
            concat!("WITH ", clear_pending!(), " SELECT 1"),
            &[&activation_id, &shard(activation_id)],
        )
        .await
        .map(|_| ())
    }

    async fn claim_stale_pending(
        &self,
        before_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<PendingInvocation>> {
        self.drop_recorded_pending().await?;
        // Claimed in one statement: a concurrent sweep's UPDATE waits for these rows and
        // then no longer finds them old enough.
        Ok(self
            .query(
                "UPDATE pending SET accepted = $2 WHERE accepted < $1
                 RETURNING id, message",
                &[&(before_ms as i64), &(now_ms as i64)],
            )
            .await?
            .iter()
            .map(|r| PendingInvocation {
                activation_id: r.get(0),
                accepted_at: now_ms,
                message: r.get(1),
            })
            .collect())
    }
}

#[async_trait]
impl AdmissionStore for PostgresStore {
    async fn admit(
        &self,
        namespace: &str,
        limits: &NamespaceLimits,
        now_ms: u64,
        p: PendingInvocation,
    ) -> Result<Admission> {
        let minute = (now_ms / 60_000) as i64;
        if limits.invocations_per_minute == 0 {
            return Ok(Admission::PerMinute { count: 0 });
        }
        if limits.concurrent_invocations == 0 {
            return Ok(Admission::Concurrent { count: 0 });
        }
        let (per_minute, concurrent) = (
            limits.invocations_per_minute.min(i64::MAX as u64) as i64,
            limits.concurrent_invocations.min(i64::MAX as u64) as i64,
        );
        let client = self.client().await?;
        // Counted and journaled in one statement. The minute only moves forward: a controller
        // whose clock is behind counts into the newest minute seen, and never resets it. The
        // upsert locks the namespace's row and
        // checks both limits against its newest version (a concurrent admission from any
        // process waits for the lock, then sees this one), so no two admissions pass a limit
        // together. Finished counts only grow, so a stale read of them can only refuse, never
        // over-admit. The transaction's requests are pipelined (one round trip) and its commit
        // does not wait for the disk, so the row lock is held for microseconds; the bus keeps
        // the invocation itself, and a crash of PostgreSQL loses the count and the journal
        // entry together.
        let admit = client
            .prepare_cached(
                "WITH bumped AS (
                    INSERT INTO invocations_admitted AS a (namespace, n, minute, in_minute)
                    VALUES ($1, 1, $2, 1)
                    ON CONFLICT (namespace) DO UPDATE SET
                        n = a.n + 1,
                        in_minute = CASE WHEN $2 > a.minute THEN 1 ELSE a.in_minute + 1 END,
                        minute = GREATEST(a.minute, $2)
                    WHERE ($2 > a.minute OR a.in_minute < $6::BIGINT)
                      AND a.n - (SELECT coalesce(sum(f.n), 0) FROM invocations_finished f
                                  WHERE f.namespace = $1) < $7::BIGINT
                    RETURNING 1),
                 journaled AS (
                    INSERT INTO pending (id, accepted, message, namespace)
                    SELECT $3, $4, $5, $1 FROM bumped)
                 SELECT count(*) FROM bumped",
            )
            .await?;
        let accepted = p.accepted_at as i64;
        let admit_args: [&(dyn ToSql + Sync); 7] = [
            &namespace,
            &minute,
            &p.activation_id,
            &accepted,
            &p.message,
            &per_minute,
            &concurrent,
        ];
        let (_, row, _) = tokio::try_join!(
            client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO OFF"),
            client.query_one(&admit, &admit_args),
            client.batch_execute("COMMIT"),
        )?;
        if row.get::<_, i64>(0) > 0 {
            return Ok(Admission::Admitted);
        }
        // Refused: say which limit, with the counts as they are now.
        let counts = client
            .prepare_cached(
                "SELECT CASE WHEN minute >= $2 THEN in_minute ELSE 0 END,
                        n - (SELECT coalesce(sum(f.n), 0) FROM invocations_finished f
                              WHERE f.namespace = $1)::BIGINT
                 FROM invocations_admitted WHERE namespace = $1",
            )
            .await?;
        let row = client.query_opt(&counts, &[&namespace, &minute]).await?;
        let (in_minute, flight): (i64, i64) = row.map_or((0, 0), |r| (r.get(0), r.get(1)));
        Ok(if in_minute >= per_minute {
            Admission::PerMinute {
                count: in_minute as u64,
            }
        } else {
            Admission::Concurrent {
                count: flight.max(concurrent) as u64,
            }
        })
    }

    async fn admit_fire(&self, namespace: &str, per_minute: u64, now_ms: u64) -> Result<Admission> {
        let minute = (now_ms / 60_000) as i64;
        let limit = per_minute as i64;
        let rows = self
            .query(
                "INSERT INTO fires_admitted (namespace, minute, n)
                 SELECT $1, CAST($2 AS BIGINT), 1 WHERE CAST($3 AS BIGINT) > 0
                 ON CONFLICT (namespace) DO UPDATE SET
                     n = CASE WHEN fires_admitted.minute = excluded.minute
                              THEN fires_admitted.n + 1 ELSE 1 END,
                     minute = excluded.minute
                 WHERE fires_admitted.minute <> excluded.minute
                    OR fires_admitted.n < CAST($3 AS BIGINT)
                 RETURNING n",
                &[&namespace, &minute, &limit],
            )
            .await?;
        Ok(if rows.is_empty() {
            Admission::PerMinute { count: per_minute }
        } else {
            Admission::Admitted
        })
    }
}

#[async_trait]
impl ActivationStore for PostgresStore {
    async fn put_activation(&self, record: &EncodedActivation) -> Result<bool> {
        // One statement: the record, the removal of its journal entry and, if a cluster's
        // controller admitted that entry, the end of its time in flight commit together.
        self.execute(
            concat!(
                "WITH ",
                clear_pending!(),
                " INSERT INTO activations (id, namespace, name, start, doc)
                 VALUES ($1, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            ),
            &[
                &record.activation_id,
                &shard(&record.activation_id),
                &record.namespace,
                &record.name,
                &(record.start as i64),
                &record.json.get(),
            ],
        )
        .await
        .map(|n| n > 0)
    }

    async fn activation(&self, namespace: &str, id: &str) -> Result<Option<Activation>> {
        self.query(sql::ACTIVATION, &[&id, &namespace])
            .await?
            .first()
            .map(|r| Ok(serde_json::from_str(r.get(0))?))
            .transpose()
    }

    async fn list_activations(&self, q: &ActivationQuery) -> Result<Vec<Box<RawValue>>> {
        let (filter, args) = sql::activation_filter(q);
        let sql = sql::list_activations(&filter, args.len());
        let mut args = params_of(args);
        args.push(Box::new(q.limit as i64));
        args.push(Box::new(q.skip as i64));
        self.query(&sql, &refs(&args))
            .await?
            .into_iter()
            .map(|r| Ok(RawValue::from_string(r.get(0))?))
            .collect()
    }

    async fn count_activations(&self, q: &ActivationQuery) -> Result<u64> {
        let (filter, args) = sql::activation_filter(q);
        let args = params_of(args);
        let rows = self
            .query(&sql::count_activations(&filter), &refs(&args))
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    // A reader starts at the oldest transaction still running, and skips what the snapshot
    // taken then already saw: records written from then on, and only those, come.
    async fn write_position(&self) -> Result<WritePosition> {
        let rows = self
            .query(
                "SELECT pg_snapshot_xmin(s)::text, s::text FROM pg_current_snapshot() s",
                &[],
            )
            .await?;
        let row = rows.first();
        Ok(WritePosition {
            seq: xid(row.map(|r| r.get::<_, String>(0)))?,
            id: String::new(),
            snapshot: row.map(|r| r.get::<_, String>(1)),
        })
    }

    async fn write_position_of(&self, namespace: &str, id: &str) -> Result<Option<WritePosition>> {
        let rows = self
            .query(
                "SELECT written::text FROM activations WHERE id = $1 AND namespace = $2",
                &[&id, &namespace],
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(WritePosition {
                    seq: xid(Some(r.get::<_, String>(0)))?,
                    id: id.to_string(),
                    snapshot: None,
                })
            })
            .transpose()
    }

    // Rows from the position up to the oldest transaction still running (all below it have
    // ended), in transaction order, ties by id; the boundary comes from the same statement.
    async fn activations_written_after(
        &self,
        q: &ActivationQuery,
        from: &WritePosition,
    ) -> Result<(Vec<(String, Box<RawValue>)>, WritePosition)> {
        let named = if q.name.is_some() {
            "AND a.name = $6"
        } else {
            ""
        };
        let sql = format!(
            "WITH b AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x)
             SELECT b.x::text, a.written::text, a.id, a.doc FROM b LEFT JOIN activations a
               ON a.namespace = $1 AND a.written >= $2::text::xid8 AND a.written < b.x
              AND NOT (a.written = $2::text::xid8 AND a.id <= $3)
              AND NOT coalesce(pg_visible_in_snapshot(a.written, $5::text::pg_snapshot), false)
              {named}
             ORDER BY a.written, a.id LIMIT $4"
        );
        let seq = from.seq.to_string();
        let limit = q.limit as i64;
        let name = q.name.clone().unwrap_or_default();
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&q.namespace, &seq, &from.id, &limit, &from.snapshot];
        if q.name.is_some() {
            params.push(&name);
        }
        let rows = self.query(&sql, &params).await?;
        let boundary = xid(rows.first().map(|r| r.get::<_, String>(0)))?;
        let mut docs = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in &rows {
            let (Some(written), Some(id), Some(doc)) = (
                r.get::<_, Option<String>>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, Option<String>>(3),
            ) else {
                continue;
            };
            docs.push((id.clone(), RawValue::from_string(doc)?));
            last = Some((written, id));
        }
        let next = match last {
            Some((written, id)) if docs.len() as u64 >= q.limit => WritePosition {
                seq: xid(Some(written))?,
                id,
                snapshot: from.snapshot.clone(),
            },
            // Everything below the boundary is read: the next read starts at it.
            _ => WritePosition {
                seq: boundary.max(from.seq),
                id: if boundary > from.seq {
                    String::new()
                } else {
                    from.id.clone()
                },
                snapshot: from.snapshot.clone(),
            },
        };
        Ok((docs, next))
    }

    async fn delete_activations_before(&self, start_ms: u64) -> Result<u64> {
        self.execute(sql::DELETE_ACTIVATIONS_BEFORE, &[&(start_ms as i64)])
            .await
    }
}

/// The one document (JSON text, column 0) of `rows`, parsed.
fn first_doc<T: serde::de::DeserializeOwned>(rows: &[tokio_postgres::Row]) -> Result<Option<T>> {
    rows.first()
        .map(|r| Ok(serde_json::from_str(r.get(0))?))
        .transpose()
}

/// Every document (JSON text, column 0) of `rows`, parsed.
fn docs<T: serde::de::DeserializeOwned>(rows: &[tokio_postgres::Row]) -> Result<Vec<T>> {
    rows.iter()
        .map(|r| Ok(serde_json::from_str(r.get(0))?))
        .collect()
}

/// A schedule from a row of `sql::SCHEDULE`'s columns.
fn schedule_from(r: &tokio_postgres::Row) -> Result<Schedule> {
    let ms = |i: usize| r.get::<_, Option<i64>>(i).map(|n| n as u64);
    Ok(Schedule {
        namespace: r.get(0),
        trigger: r.get(1),
        spec: serde_json::from_str(r.get(2))?,
        next_ms: ms(3),
        pending_ms: ms(4),
        owner: r.get(5),
        lease_ms: r.get::<_, i64>(6) as u64,
        fired: r.get::<_, i64>(7) as u64,
    })
}

/// A version compare-and-swap or create that changed no row: somebody else wrote first.
fn changed(n: u64) -> Result<()> {
    if n == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

#[async_trait]
impl TriggerStore for PostgresStore {
    async fn trigger(&self, namespace: &str, name: &str) -> Result<Option<Trigger>> {
        first_doc(&self.query(sql::TRIGGER, &[&namespace, &name]).await?)
    }

    async fn put_trigger(&self, t: &Trigger, mode: PutMode) -> Result<()> {
        let doc = serde_json::to_string(t)?;
        let n = match mode {
            PutMode::Create => {
                self.execute(
                    sql::CREATE_TRIGGER,
                    &[&t.namespace, &t.name, &t.version, &doc],
                )
                .await?
            }
            PutMode::Replace { expected_version } => {
                self.execute(
                    sql::REPLACE_TRIGGER,
                    &[&t.version, &doc, &t.namespace, &t.name, &expected_version],
                )
                .await?
            }
        };
        changed(n)
    }

    async fn delete_trigger(&self, namespace: &str, name: &str) -> Result<Option<Trigger>> {
        // One statement: the trigger and its schedule go together.
        let rows = self
            .query(
                "WITH s AS (DELETE FROM schedules WHERE namespace = $1 AND trigger = $2),
                      v AS (DELETE FROM subscriptions WHERE namespace = $1 AND trigger = $2)
                 DELETE FROM triggers WHERE namespace = $1 AND name = $2 RETURNING doc",
                &[&namespace, &name],
            )
            .await?;
        first_doc(&rows)
    }

    async fn list_triggers(&self, namespace: &str, skip: u64, limit: u64) -> Result<Vec<Trigger>> {
        docs(
            &self
                .query(
                    sql::LIST_TRIGGERS,
                    &[&namespace, &(limit as i64), &(skip as i64)],
                )
                .await?,
        )
    }

    async fn count_triggers(&self, namespace: &str) -> Result<u64> {
        let rows = self.query(sql::COUNT_TRIGGERS, &[&namespace]).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }
}

#[async_trait]
impl RuleStore for PostgresStore {
    async fn rule(&self, namespace: &str, name: &str) -> Result<Option<Rule>> {
        first_doc(&self.query(sql::RULE, &[&namespace, &name]).await?)
    }

    async fn put_rule(&self, r: &Rule, mode: PutMode) -> Result<()> {
        let doc = serde_json::to_string(r)?;
        let trigger = r.trigger.qualified();
        let n = match mode {
            PutMode::Create => {
                self.execute(
                    sql::CREATE_RULE,
                    &[&r.namespace, &r.name, &r.version, &trigger, &doc],
                )
                .await?
            }
            PutMode::Replace { expected_version } => {
                self.execute(
                    sql::REPLACE_RULE,
                    &[
                        &r.version,
                        &trigger,
                        &doc,
                        &r.namespace,
                        &r.name,
                        &expected_version,
                    ],
                )
                .await?
            }
        };
        changed(n)
    }

    async fn delete_rule(&self, namespace: &str, name: &str) -> Result<Option<Rule>> {
        // One statement: the rule and its mapping go together.
        let rows = self
            .query(
                "WITH m AS (DELETE FROM mappings WHERE namespace = $1 AND rule = $2)
                 DELETE FROM rules WHERE namespace = $1 AND name = $2 RETURNING doc",
                &[&namespace, &name],
            )
            .await?;
        first_doc(&rows)
    }

    async fn list_rules(&self, namespace: &str, skip: u64, limit: u64) -> Result<Vec<Rule>> {
        docs(
            &self
                .query(
                    sql::LIST_RULES,
                    &[&namespace, &(limit as i64), &(skip as i64)],
                )
                .await?,
        )
    }

    async fn count_rules(&self, namespace: &str) -> Result<u64> {
        let rows = self.query(sql::COUNT_RULES, &[&namespace]).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    async fn rules_of_trigger(&self, namespace: &str, trigger: &str) -> Result<Vec<Rule>> {
        docs(
            &self
                .query(sql::RULES_OF_TRIGGER, &[&namespace, &trigger])
                .await?,
        )
    }
}

fn subscription_from(r: &tokio_postgres::Row) -> Result<Subscription> {
    Ok(Subscription {
        namespace: r.get(0),
        trigger: r.get(1),
        spec: serde_json::from_str(r.get(2))?,
        owner: r.get(3),
        lease_ms: r.get::<_, i64>(4) as u64,
        status: serde_json::from_str(r.get(5))?,
    })
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn put_subscription(&self, s: &Subscription) -> Result<()> {
        let doc = serde_json::to_string(&s.spec)?;
        let runs = i32::from(s.spec.listens && !s.spec.paused);
        self.execute(
            sql::PUT_SUBSCRIPTION,
            &[&s.namespace, &s.trigger, &doc, &runs],
        )
        .await
        .map(|_| ())
    }

    async fn subscription(&self, namespace: &str, trigger: &str) -> Result<Option<Subscription>> {
        self.query(sql::SUBSCRIPTION, &[&namespace, &trigger])
            .await?
            .first()
            .map(subscription_from)
            .transpose()
    }

    async fn delete_subscription(&self, namespace: &str, trigger: &str) -> Result<bool> {
        Ok(self
            .execute(sql::DELETE_SUBSCRIPTION, &[&namespace, &trigger])
            .await?
            > 0)
    }

    async fn runnable_subscriptions(&self, owner: &str, now_ms: u64) -> Result<Vec<Subscription>> {
        self.query(
            sql::RUNNABLE_SUBSCRIPTIONS,
            &[&owner, &self.db_time(now_ms)],
        )
        .await?
        .iter()
        .map(subscription_from)
        .collect()
    }

    async fn claim_subscription(
        &self,
        namespace: &str,
        trigger: &str,
        owner: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<bool> {
        let n = self
            .execute(
                sql::CLAIM_SUBSCRIPTION,
                &[
                    &owner,
                    &self.db_time(lease_ms),
                    &namespace,
                    &trigger,
                    &self.db_time(now_ms),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn renew_subscriptions(&self, owner: &str, lease_ms: u64) -> Result<u64> {
        self.execute(sql::RENEW_SUBSCRIPTIONS, &[&self.db_time(lease_ms), &owner])
            .await
    }

    async fn set_subscription_status(
        &self,
        namespace: &str,
        trigger: &str,
        status: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let status = serde_json::to_string(status)?;
        self.execute(sql::SUBSCRIPTION_STATUS, &[&status, &namespace, &trigger])
            .await
            .map(|_| ())
    }

    async fn release_subscriptions(&self) -> Result<()> {
        self.execute(sql::RELEASE_SUBSCRIPTIONS, &[])
            .await
            .map(|_| ())
    }
}

fn mapping_from(r: &tokio_postgres::Row) -> Result<Mapping> {
    Ok(Mapping {
        namespace: r.get(0),
        rule: r.get(1),
        trigger: r.get(2),
        checkpoint: r.get::<_, i64>(3) as u64,
        state: serde_json::from_str(r.get(4))?,
        updated_ms: r.get::<_, i64>(5) as u64,
    })
}

#[async_trait]
impl MappingStore for PostgresStore {
    async fn mapping(&self, namespace: &str, rule: &str) -> Result<Option<Mapping>> {
        self.query(sql::MAPPING, &[&namespace, &rule])
            .await?
            .first()
            .map(mapping_from)
            .transpose()
    }

    async fn mappings(&self, namespace: &str) -> Result<Vec<Mapping>> {
        self.query(sql::MAPPINGS, &[&namespace])
            .await?
            .iter()
            .map(mapping_from)
            .collect()
    }

    async fn put_mapping(&self, m: &Mapping) -> Result<bool> {
        let state = serde_json::to_string(&m.state)?;
        let n = self
            .execute(
                sql::PUT_MAPPING,
                &[
                    &m.namespace,
                    &m.rule,
                    &m.trigger,
                    &(m.checkpoint as i64),
                    &state,
                    &(m.updated_ms as i64),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn delete_mapping(&self, namespace: &str, rule: &str) -> Result<bool> {
        Ok(self
            .execute(sql::DELETE_MAPPING, &[&namespace, &rule])
            .await?
            > 0)
    }
}

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn put_schedule(&self, s: &Schedule) -> Result<()> {
        let doc = serde_json::to_string(&s.spec)?;
        let next = s.next_ms.map(|n| n as i64);
        self.execute(sql::PUT_SCHEDULE, &[&s.namespace, &s.trigger, &doc, &next])
            .await
            .map(|_| ())
    }

    async fn schedule(&self, namespace: &str, trigger: &str) -> Result<Option<Schedule>> {
        self.query(sql::SCHEDULE, &[&namespace, &trigger])
            .await?
            .first()
            .map(schedule_from)
            .transpose()
    }

    async fn delete_schedule(&self, namespace: &str, trigger: &str) -> Result<bool> {
        Ok(self
            .execute(sql::DELETE_TRIGGER_SCHEDULE, &[&namespace, &trigger])
            .await?
            > 0)
    }

    async fn due_schedules(&self, owner: &str, now_ms: u64, limit: u64) -> Result<Vec<Schedule>> {
        self.query(
            sql::DUE_SCHEDULES,
            &[&self.db_time(now_ms), &owner, &(limit as i64)],
        )
        .await?
        .iter()
        .map(schedule_from)
        .collect()
    }

    async fn claim_tick(&self, c: &TickClaim<'_>) -> Result<bool> {
        let next = c.next_ms.map(|n| n as i64);
        let n = self
            .execute(
                sql::CLAIM_TICK,
                &[
                    &next,
                    &(c.tick_ms as i64),
                    &c.owner,
                    &self.db_time(c.lease_ms),
                    &c.namespace,
                    &c.trigger,
                    &self.db_time(c.now_ms),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn skip_ticks(&self, c: &TickClaim<'_>) -> Result<bool> {
        let next = c.next_ms.map(|n| n as i64);
        let n = self
            .execute(
                sql::SKIP_TICKS,
                &[
                    &next,
                    &c.owner,
                    &self.db_time(c.lease_ms),
                    &c.namespace,
                    &c.trigger,
                    &(c.tick_ms as i64),
                    &self.db_time(c.now_ms),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn adopt_pending(&self, c: &TickClaim<'_>) -> Result<bool> {
        let n = self
            .execute(
                sql::ADOPT_PENDING,
                &[
                    &c.owner,
                    &self.db_time(c.lease_ms),
                    &c.namespace,
                    &c.trigger,
                    &(c.tick_ms as i64),
                    &self.db_time(c.now_ms),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn finish_tick(&self, namespace: &str, trigger: &str, tick_ms: u64) -> Result<()> {
        self.execute(sql::FINISH_TICK, &[&namespace, &trigger, &(tick_ms as i64)])
            .await
            .map(|_| ())
    }

    async fn renew_schedules(&self, owner: &str, lease_ms: u64) -> Result<u64> {
        self.execute(sql::RENEW_SCHEDULES, &[&self.db_time(lease_ms), &owner])
            .await
    }

    async fn earliest_tick(&self, owner: &str, now_ms: u64) -> Result<Option<u64>> {
        let rows = self
            .query(sql::EARLIEST_TICK, &[&owner, &self.db_time(now_ms)])
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|n| n as u64))
    }

    async fn release_schedules(&self) -> Result<()> {
        self.execute(sql::RELEASE_SCHEDULES, &[]).await.map(|_| ())
    }
}

/// A transaction id (`xid8`) read as text.
fn xid(text: Option<String>) -> Result<i64> {
    text.and_then(|t| t.parse().ok())
        .ok_or_else(|| StoreError::Backend("a transaction id that is not a number".into()))
}
