//! Connecting, making the publication and the slot, reading the slot, and releasing it.
//!
//! A poll reads the database's flush position F, then peeks at most [`CHUNK`] changes
//! committed before F (`pg_logical_slot_peek_binary_changes`, which leaves the slot where it
//! is) and streams them row by row, each change handed to the sink before the next is read.
//! Once the chunk is done, the slot is moved (`pg_replication_slot_advance`) past the last
//! commit it held, or to F when the chunk held every commit before F (so a slot whose tables
//! are idle still follows a busy database and keeps no WAL). A run dropped before that leaves
//! the slot where it was: the next run peeks the same changes again, with the same keys.
//! A change the sink does not accept stops the run: the slot moves past the commits wholly
//! accepted before it, never into its transaction.
//!
//! The peek statement stays open while its changes are delivered (its snapshot holds back
//! the database's xmin horizon, and the slot is active), and each peek decodes again from
//! the slot's restart position. Only [`check`] makes the slot and the publication.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, pin_mut};
use gust_source::{Delivery, Event, Sink, SourceError};
use serde_json::{Map, Value, json};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Changes, DEFAULT_PREFIX, Operation, Table, quote};
use crate::pgoutput::{self, Datum, Lsn, Message, OldKind, Relation};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Changes one peek asks for. PostgreSQL stops decoding at the first commit at or past this
/// many rows, so a bigger transaction comes whole in one peek; its rows are streamed, not
/// held, on both sides.
pub const CHUNK: i32 = 1000;
/// The wait after an idle poll: doubling from the first to the second while nothing comes;
/// a poll that brought changes is followed by the next one at once.
pub const IDLE_WAIT: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));
/// How often the slot's lag is reported (the status and, above [`WARN_RETAINED`], the log),
/// and other `gust_` slots of the database that nobody reads are looked for.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);
/// WAL a slot may hold back before the run warns in the log: 1 GiB.
pub const WARN_RETAINED: i64 = 1 << 30;

fn failed(c: &Changes, what: &str, e: tokio_postgres::Error) -> SourceError {
    let text = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    let text = format!("PostgreSQL at {}: {what}: {text}", c.shown());
    // Connection trouble (class 08), a server shutting down (57) or out of resources (53)
    // is the connection's; any other error the server gives is the configuration's.
    let transient = match e.code() {
        None => true,
        Some(code) => ["08", "57", "53"]
            .iter()
            .any(|p| code.code().starts_with(p)),
    };
    if transient {
        SourceError::Connection(text)
    } else {
        SourceError::Config(text)
    }
}

/// TLS settings: the system's root certificates.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        // The ring provider has the default versions; kept as rustls's own default.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    }
}

/// A connection (TLS with `sslmode=require`); it closes when the client is dropped.
pub async fn connect(c: &Changes) -> Result<Client, SourceError> {
    let at = c.shown();
    let connecting = async {
        if c.pg.get_ssl_mode() == SslMode::Require {
            let (client, conn) = c.pg.connect(MakeRustlsConnect::new(tls_config())).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        } else {
            let (client, conn) = c.pg.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                }
            });
            Ok(client)
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(SourceError::Connection(format!(
            "cannot connect to PostgreSQL at {at}: no answer"
        ))),
        Ok(Err(e)) => Err(match failed(c, "cannot connect", e) {
            SourceError::Config(t) | SourceError::Connection(t) => SourceError::Connection(t),
        }),
        Ok(Ok(client)) => Ok(client),
    }
}

/// Checks the database, the tables and the slot, and makes the publication and the slot
/// where missing (the publication set to the configured tables and operations). Only
/// [`check`] does: a run requires them.
async fn ensure(client: &Client, c: &Changes) -> Result<(), SourceError> {
    let wal_level: String = client
        .query_one("select current_setting('wal_level')", &[])
        .await
        .map_err(|e| failed(c, "reading wal_level", e))?
        .get(0);
    if wal_level != "logical" {
        return Err(SourceError::Config(format!(
            "PostgreSQL at {} has wal_level '{wal_level}': change events need \
             ALTER SYSTEM SET wal_level = logical and a restart",
            c.shown()
        )));
    }
    for table in &c.tables {
        check_table(client, c, table).await?;
    }
    ensure_publication(client, c).await?;
    ensure_slot(client, c).await
}

/// The table exists and, when updates or deletes are published, has a replica identity:
/// PostgreSQL refuses UPDATE and DELETE on a table in such a publication without one, so
/// adding it would break the application writing it.
async fn check_table(client: &Client, c: &Changes, table: &Table) -> Result<(), SourceError> {
    let row = client
        .query_opt(
            "select c.relreplident::text, \
                    exists(select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary), \
                    exists(select 1 from pg_index i where i.indrelid = c.oid and i.indisreplident) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(|e| failed(c, &format!("looking up table {table}"), e))?;
    let Some(row) = row else {
        return Err(SourceError::Config(format!(
            "there is no table {table} in {} (names are case-sensitive)",
            c.shown()
        )));
    };
    let identity: String = row.get(0);
    let has_identity = match identity.as_str() {
        "f" => true,
        "i" => row.get(2),
        "d" => row.get(1),
        _ => false,
    };
    if !has_identity && (c.publishes(Operation::Update) || c.publishes(Operation::Delete)) {
        return Err(SourceError::Config(format!(
            "table {table} has no primary key (nor replica identity): in a publication of \
             its updates and deletes PostgreSQL would refuse its UPDATE and DELETE statements. \
             Give it a primary key, or run ALTER TABLE {} REPLICA IDENTITY FULL, or set \
             operations to insert",
            table.quoted()
        )));
    }
    Ok(())
}

fn publish_option(c: &Changes) -> String {
    let ops: Vec<&str> = c.operations.iter().map(|o| o.name()).collect();
    format!("(publish = '{}')", ops.join(", "))
}

async fn ensure_publication(client: &Client, c: &Changes) -> Result<(), SourceError> {
    let name = quote(&c.publication);
    let tables: Vec<String> = c.tables.iter().map(Table::quoted).collect();
    let tables = tables.join(", ");
    let row = client
        .query_opt(
            "select puballtables, pubinsert, pubupdate, pubdelete, pubtruncate \
             from pg_publication where pubname = $1",
            &[&c.publication],
        )
        .await
        .map_err(|e| failed(c, "looking up the publication", e))?;
    let Some(row) = row else {
        let create = format!(
            "create publication {name} for table {tables} with {}",
            publish_option(c)
        );
        return match client.batch_execute(&create).await {
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => Ok(()),
            other => other.map_err(|e| failed(c, "creating the publication", e)),
        };
    };
    if row.get::<_, bool>(0) {
        return Err(SourceError::Config(format!(
            "publication {} publishes all tables: give the feed a publication of its own",
            c.publication
        )));
    }
    let published = [row.get::<_, bool>(1), row.get(2), row.get(3), row.get(4)];
    let wanted = [
        c.publishes(Operation::Insert),
        c.publishes(Operation::Update),
        c.publishes(Operation::Delete),
        false,
    ];
    if published != wanted {
        let alter = format!("alter publication {name} set {}", publish_option(c));
        client
            .batch_execute(&alter)
            .await
            .map_err(|e| failed(c, "altering the publication", e))?;
    }
    let mut has: Vec<Table> = client
        .query(
            "select schemaname::text, tablename::text from pg_publication_tables \
             where pubname = $1",
            &[&c.publication],
        )
        .await
        .map_err(|e| failed(c, "reading the publication's tables", e))?
        .iter()
        .map(|r| Table {
            schema: r.get(0),
            name: r.get(1),
        })
        .collect();
    has.sort();
    let mut want = c.tables.clone();
    want.sort();
    if has != want {
        let alter = format!("alter publication {name} set table {tables}");
        client
            .batch_execute(&alter)
            .await
            .map_err(|e| failed(c, "setting the publication's tables", e))?;
    }
    Ok(())
}

/// Whether the slot exists; an error when it exists and is not a `pgoutput` slot of the
/// configured database.
async fn slot_exists(client: &Client, c: &Changes) -> Result<bool, SourceError> {
    let row = client
        .query_opt(
            "select slot_type::text, coalesce(plugin::text, ''), \
                    coalesce(database::text, '') = current_database()::text \
             from pg_replication_slots where slot_name = $1",
            &[&c.slot],
        )
        .await
        .map_err(|e| failed(c, "looking up the replication slot", e))?;
    let Some(row) = row else { return Ok(false) };
    let (kind, plugin, here): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    if kind != "logical" || plugin != "pgoutput" || !here {
        return Err(SourceError::Config(format!(
            "replication slot {} exists and is not a pgoutput slot of database {}",
            c.slot,
            c.database()
        )));
    }
    Ok(true)
}

async fn ensure_slot(client: &Client, c: &Changes) -> Result<(), SourceError> {
    if slot_exists(client, c).await? {
        return Ok(());
    }
    let created = client
        .execute(
            "select pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&c.slot],
        )
        .await;
    match created {
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => Ok(()),
        other => other
            .map(|_| ())
            .map_err(|e| failed(c, "creating the replication slot", e)),
    }
}

/// What a run needs and never makes: the slot (a slot made again would silently skip the
/// changes made since the old one went, and one made after [`forget`] would be nobody's)
/// and the publication.
async fn require(client: &Client, c: &Changes) -> Result<(), SourceError> {
    if !slot_exists(client, c).await? {
        return Err(missing_slot(c));
    }
    let publication = client
        .query_opt(
            "select 1 from pg_publication where pubname = $1",
            &[&c.publication],
        )
        .await
        .map_err(|e| failed(c, "looking up the publication", e))?;
    if publication.is_none() {
        return Err(SourceError::Config(format!(
            "the publication '{}' does not exist (dropped?): UPDATE the feed (any parameter) \
             to create it again, or delete and re-create the trigger",
            c.publication
        )));
    }
    Ok(())
}

/// The slot is not there: dropped by someone, or by [`forget`] while this run was stopping.
fn missing_slot(c: &Changes) -> SourceError {
    SourceError::Config(format!(
        "the replication slot '{}' does not exist (dropped?): the changes since cannot be \
         read; UPDATE the feed (any parameter) to create it again, or delete and re-create \
         the trigger",
        c.slot
    ))
}

/// How far a slot is behind, in bytes of WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLag {
    /// From the slot's confirmed position to the server's current WAL position: what is
    /// not yet delivered (or not yet known to hold nothing for the feed).
    pub unconfirmed: i64,
    /// From the slot's restart position to the current WAL position: what the server keeps
    /// on disk for it.
    pub retained: i64,
}

/// The lag of `slot`, or `None` when there is no such slot.
pub async fn slot_lag(client: &Client, c: &Changes) -> Result<Option<SlotLag>, SourceError> {
    let row = client
        .query_opt(
            "select coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8, \
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8 \
             from pg_replication_slots where slot_name = $1",
            &[&c.slot],
        )
        .await
        .map_err(|e| failed(c, "reading the slot's lag", e))?;
    Ok(row.map(|r| SlotLag {
        unconfirmed: r.get(0),
        retained: r.get(1),
    }))
}

/// `n` bytes as people read them (`512 B`, `3.5 MiB`).
pub fn bytes_text(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// What the status says while the run reads.
fn detail(c: &Changes, lag: Option<SlotLag>) -> String {
    let mut text = format!(
        "reading slot {} (publication {}) of {}",
        c.slot,
        c.publication,
        c.shown()
    );
    if let Some(lag) = lag {
        text.push_str(&format!(
            "; {} of WAL retained, {} not yet confirmed",
            bytes_text(lag.retained),
            bytes_text(lag.unconfirmed)
        ));
    }
    text
}

/// Reports the slot's lag (the status, and the log above [`WARN_RETAINED`]) and warns of
/// other `gust_` slots of the database that nobody reads and that hold more than that.
async fn report(
    client: &Client,
    c: &Changes,
    sink: &dyn Sink,
    last: &mut String,
) -> Result<(), SourceError> {
    let lag = slot_lag(client, c).await?;
    if let Some(lag) = lag
        && lag.retained > WARN_RETAINED
    {
        tracing::warn!(
            slot = %c.slot,
            database = %c.shown(),
            "replication slot {} holds {} of WAL: its subscription is behind",
            c.slot,
            bytes_text(lag.retained)
        );
    }
    let text = detail(c, lag);
    if text != *last {
        sink.connected(&text);
        *last = text;
    }
    let abandoned = client
        .query(
            "select slot_name::text, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 \
             from pg_replication_slots \
             where slot_name like $1 and slot_name <> $2 and not active \
               and database = current_database() \
               and pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) > $3::int8",
            &[&format!("{DEFAULT_PREFIX}%"), &c.slot, &WARN_RETAINED],
        )
        .await
        .map_err(|e| failed(c, "looking for slots nobody reads", e))?;
    for row in abandoned {
        let (slot, retained): (String, i64) = (row.get(0), row.get(1));
        tracing::warn!(
            slot = %slot,
            database = %c.shown(),
            "replication slot {slot} holds {} of WAL; if no subscription reads it any more, \
             drop it: SELECT pg_drop_replication_slot('{slot}')",
            bytes_text(retained)
        );
    }
    Ok(())
}

/// Checks a configuration against its database, making the publication and the slot
/// (from then on, changes are kept for the subscription).
pub async fn check(c: &Changes) -> Result<(), SourceError> {
    let client = connect(c).await?;
    ensure(&client, c).await
}

/// The transaction whose changes are being read.
struct Txn {
    commit_lsn: Lsn,
    ts_ms: i64,
    xid: u32,
    /// Changes of it handed so far.
    index: u64,
}

/// What one peek did.
struct Chunk {
    rows: usize,
    changes: usize,
    /// Where the last commit it held ends.
    last_end: Option<Lsn>,
    /// Why the chunk stopped at a change the sink did not accept (the rest was not read).
    held: Option<SourceError>,
}

/// Reads the slot until an error: the slot and the publication must exist ([`check`] makes
/// them).
pub async fn changes(c: &Changes, sink: &dyn Sink) -> Result<(), SourceError> {
    let client = connect(c).await?;
    require(&client, c).await?;
    let database: String = client
        .query_one("select current_database()::text", &[])
        .await
        .map_err(|e| failed(c, "reading the database's name", e))?
        .get(0);
    let mut confirmed = confirmed(&client, c).await?;
    let mut last_report = String::new();
    report(&client, c, sink, &mut last_report).await?;
    let mut reported = Instant::now();
    let mut relations: HashMap<u32, Relation> = HashMap::new();
    let mut idle = IDLE_WAIT.0;
    loop {
        if reported.elapsed() >= REPORT_EVERY {
            report(&client, c, sink, &mut last_report).await?;
            reported = Instant::now();
        }
        let flush: String = client
            .query_one("select pg_current_wal_flush_lsn()::text", &[])
            .await
            .map_err(|e| failed(c, "reading the WAL position", e))?
            .get(0);
        let flush = pgoutput::parse_lsn(&flush).ok_or_else(|| {
            SourceError::Connection(format!("a WAL position not understood: {flush}"))
        })?;
        let chunk = peek(&client, c, &database, flush, &mut relations, sink).await?;
        if let Some(held) = chunk.held {
            // The commits wholly accepted before it are passed; the one it is in is not.
            if let Some(end) = chunk.last_end
                && end > confirmed
            {
                advance(&client, c, end).await?;
            }
            return Err(held);
        }
        // Fewer rows than asked: decoding went up to `flush`, so every commit before it was
        // in the chunk.
        let target = if chunk.rows < CHUNK as usize {
            Some(chunk.last_end.map_or(flush, |end| end.max(flush)))
        } else {
            chunk.last_end
        };
        if let Some(target) = target
            && target > confirmed
        {
            confirmed = advance(&client, c, target).await?;
        }
        if chunk.changes > 0 || chunk.rows >= CHUNK as usize {
            idle = IDLE_WAIT.0;
        } else {
            tokio::time::sleep(idle).await;
            idle = (idle * 2).min(IDLE_WAIT.1);
        }
    }
}

async fn confirmed(client: &Client, c: &Changes) -> Result<Lsn, SourceError> {
    let row = client
        .query_opt(
            "select coalesce(confirmed_flush_lsn, '0/0')::text from pg_replication_slots \
             where slot_name = $1",
            &[&c.slot],
        )
        .await
        .map_err(|e| failed(c, "reading the slot's position", e))?;
    let text: String = row.ok_or_else(|| missing_slot(c))?.get(0);
    pgoutput::parse_lsn(&text)
        .ok_or_else(|| SourceError::Connection(format!("a slot position not understood: {text}")))
}

/// Moves the slot to `target`; where it is now.
async fn advance(client: &Client, c: &Changes, target: Lsn) -> Result<Lsn, SourceError> {
    let row = client
        .query_one(
            "select end_lsn::text from pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&c.slot, &pgoutput::lsn_text(target)],
        )
        .await
        .map_err(|e| failed(c, "advancing the slot", e))?;
    let text: String = row.get(0);
    Ok(pgoutput::parse_lsn(&text).unwrap_or(target))
}

/// Peeks at most [`CHUNK`] changes committed before `upto` and hands each row change to the
/// sink, in order.
async fn peek(
    client: &Client,
    c: &Changes,
    database: &str,
    upto: Lsn,
    relations: &mut HashMap<u32, Relation>,
    sink: &dyn Sink,
) -> Result<Chunk, SourceError> {
    let upto = pgoutput::lsn_text(upto);
    let params: [&(dyn ToSql + Sync); 4] = [&c.slot, &upto, &CHUNK, &c.publication];
    let rows = client
        .query_raw(
            "select lsn::text, data from pg_logical_slot_peek_binary_changes(\
                 $1, $2::text::pg_lsn, $3, 'proto_version', '1', 'publication_names', $4)",
            params,
        )
        .await
        .map_err(|e| peek_failed(c, e))?;
    pin_mut!(rows);
    let mut chunk = Chunk {
        rows: 0,
        changes: 0,
        last_end: None,
        held: None,
    };
    let mut txn: Option<Txn> = None;
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| peek_failed(c, e))?;
        chunk.rows += 1;
        let lsn: String = row.get(0);
        let data: &[u8] = row.get(1);
        let message = pgoutput::decode(data).map_err(|e| SourceError::Connection(e.to_string()))?;
        let (relation, op, old, new) = match message {
            Message::Begin {
                final_lsn,
                commit_ts,
                xid,
            } => {
                txn = Some(Txn {
                    commit_lsn: final_lsn,
                    ts_ms: pgoutput::unix_ms(commit_ts),
                    xid,
                    index: 0,
                });
                continue;
            }
            Message::Commit { end_lsn, .. } => {
                chunk.last_end = Some(end_lsn);
                txn = None;
                continue;
            }
            Message::Relation(r) => {
                relations.insert(r.id, r);
                continue;
            }
            Message::Other(_) => continue,
            Message::Insert { relation, new } => (relation, "c", None, Some(new)),
            Message::Update { relation, old, new } => (relation, "u", old, Some(new)),
            Message::Delete { relation, old } => (relation, "d", Some(old), None),
        };
        let Some(t) = txn.as_mut() else {
            return Err(SourceError::Connection(
                "a change outside a transaction in the slot's stream".into(),
            ));
        };
        let Some(rel) = relations.get(&relation) else {
            return Err(SourceError::Connection(format!(
                "a change of relation {relation} before its description"
            )));
        };
        let before = old.map(|(kind, datums)| row_object(rel, &datums, kind == OldKind::Key));
        let after = new.map(|datums| row_object(rel, &datums, false));
        let event = Event {
            key: Some(format!("{}:{}", pgoutput::lsn_text(t.commit_lsn), t.index)),
            payload: payload(op, before, after, rel, database, t, &lsn),
        };
        t.index += 1;
        chunk.changes += 1;
        match sink.deliver(event).await {
            Delivery::Accepted => {}
            // No place of its own to put it aside: the change stays in the slot, which never
            // moves past it, and the run stops to read it again after a backoff.
            Delivery::MoveAside(why) => {
                chunk.held = Some(SourceError::Connection(format!(
                    "a change of table {}.{} at {lsn} (transaction {}, commit {}) could not \
                     be fired, kept in the slot: {why}",
                    rel.schema,
                    rel.name,
                    t.xid,
                    pgoutput::lsn_text(t.commit_lsn)
                )));
                return Ok(chunk);
            }
        }
    }
    Ok(chunk)
}

fn peek_failed(c: &Changes, e: tokio_postgres::Error) -> SourceError {
    if e.code() == Some(&SqlState::UNDEFINED_OBJECT) {
        // The slot (or the publication) was dropped: the next run says which, and makes
        // neither again.
        let text = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        return SourceError::Connection(format!(
            "PostgreSQL at {}: reading slot {}: {text}",
            c.shown(),
            c.slot
        ));
    }
    failed(c, "reading the slot", e)
}

/// A Debezium-like change event: `{op, before, after, source: {connector, db, schema,
/// table, txId, lsn, ts_ms}, ts_ms}`.
fn payload(
    op: &str,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
    rel: &Relation,
    database: &str,
    t: &Txn,
    lsn: &str,
) -> Map<String, Value> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let value = json!({
        "op": op,
        "before": before,
        "after": after,
        "source": {
            "connector": "postgresql",
            "db": database,
            "schema": rel.schema,
            "table": rel.name,
            "txId": t.xid,
            "lsn": lsn,
            "ts_ms": t.ts_ms,
        },
        "ts_ms": now_ms,
    });
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A tuple as `{column: value}`; with `keys_only`, the replica identity's columns only. An
/// unchanged TOASTed value (not sent) is left out.
fn row_object(rel: &Relation, datums: &[Datum], keys_only: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (col, datum) in rel.columns.iter().zip(datums) {
        if keys_only && !col.key {
            continue;
        }
        if let Some(v) = value(col.type_oid, datum) {
            out.insert(col.name.clone(), v);
        }
    }
    out
}

/// Type OIDs of PostgreSQL's built-in types that become JSON other than a string.
mod oid {
    pub const BOOL: u32 = 16;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const JSONB: u32 = 3802;
}

/// A column's value as JSON from its text form: booleans, integers and floats as JSON
/// numbers and booleans, json and jsonb parsed, everything else (numeric, to keep its
/// precision; dates; arrays in PostgreSQL's text form) as the text; `None` for an unchanged
/// TOASTed value.
pub fn value(type_oid: u32, datum: &Datum) -> Option<Value> {
    let text = match datum {
        Datum::Null => return Some(Value::Null),
        Datum::Unchanged => return None,
        Datum::Binary(b) => return Some(gust_source::base64_text(b).into()),
        Datum::Text(t) => t,
    };
    let parsed = match type_oid {
        oid::BOOL => match text.as_str() {
            "t" => Some(Value::Bool(true)),
            "f" => Some(Value::Bool(false)),
            _ => None,
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => text.parse::<i64>().ok().map(Value::from),
        // NaN and the infinities have no JSON number: they stay text.
        oid::FLOAT4 | oid::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        oid::JSON | oid::JSONB => serde_json::from_str(text).ok(),
        _ => None,
    };
    Some(parsed.unwrap_or_else(|| Value::String(text.clone())))
}

/// Drops the slot (waiting a little while a run that is stopping still holds it) and a
/// publication whose name starts with `gust_` (one the feed named itself, by default).
pub async fn forget(c: &Changes) -> Result<(), SourceError> {
    let client = connect(c).await?;
    let mut attempts = 0;
    loop {
        let dropped = client
            .execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
                 where slot_name = $1",
                &[&c.slot],
            )
            .await;
        match dropped {
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => {
                other.map_err(|e| failed(c, "dropping the replication slot", e))?;
                break;
            }
        }
    }
    if c.publication.starts_with(DEFAULT_PREFIX) {
        client
            .batch_execute(&format!(
                "drop publication if exists {}",
                quote(&c.publication)
            ))
            .await
            .map_err(|e| failed(c, "dropping the publication", e))?;
    }
    Ok(())
}
