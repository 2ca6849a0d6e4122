//! The PostgreSQL source against a real server (`wal_level = logical`): run when
//! `GUST_TEST_POSTGRES_URL` is set (`postgres://postgres@127.0.0.1:5432/test`), each test on
//! a table, slot and publication of its own, dropped at its end (also when it fails);
//! skipped, and said so, otherwise.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gust_source::testing::{config, server_url, wait_until};
use gust_source::{Delivery, Event, Sink, Source, SourceError};
use gust_source_postgres::{Postgres, pgoutput, slot_lag};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

fn url() -> Option<String> {
    server_url("GUST_TEST_POSTGRES_URL")
}

async fn client(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// A test's table (`gust_test_<hex>`) and the slot and publication of the same name;
/// dropped when it goes, also when the test panics.
struct Fixture {
    url: String,
    client: Client,
    name: String,
}

impl Fixture {
    /// A table made with `columns` (SQL).
    async fn new(url: &str, columns: &str) -> Fixture {
        let name = format!(
            "gust_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        let client = client(url).await;
        client
            .batch_execute(&format!("create table {name} ({columns})"))
            .await
            .unwrap();
        Fixture {
            url: url.to_string(),
            client,
            name,
        }
    }

    /// The feed's configuration for this table, `extra` added.
    fn config(&self, extra: Value) -> Map<String, Value> {
        let mut c = config(json!({"url": self.url, "tables": [self.name], "slot": self.name}));
        if let Value::Object(extra) = extra {
            c.extend(extra);
        }
        c
    }

    async fn sql(&self, sql: &str) {
        self.client.batch_execute(sql).await.unwrap();
    }

    /// The slot's confirmed position.
    async fn confirmed(&self) -> Option<u64> {
        confirmed(&self.client, &self.name).await
    }
}

async fn confirmed(client: &Client, slot: &str) -> Option<u64> {
    let row = client
        .query_opt(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()?;
    pgoutput::parse_lsn(&row.get::<_, String>(0))
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = client(&url).await;
                for _ in 0..40 {
                    let dropped = client
                        .execute(
                            "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
                             where slot_name = $1",
                            &[&name],
                        )
                        .await;
                    if dropped.is_ok() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                let _ = client
                    .batch_execute(&format!(
                        "drop publication if exists {name}; drop table if exists {name}"
                    ))
                    .await;
            });
        });
        let _ = cleanup.join();
    }
}

/// What a [`Recorder`] answers.
#[derive(Clone)]
enum Answer {
    Accept,
    /// Moves aside a change whose new row's `name` is this.
    MoveAside(String),
    /// Accepts this many, then records the next and never returns.
    HoldAfter(usize),
}

/// A sink that records events, with the slot's confirmed position as each came, moves aside
/// and status details.
struct Recorder {
    answer: Answer,
    probe: Option<(Client, String)>,
    events: Mutex<Vec<(Event, Option<u64>)>>,
    moved: Mutex<Vec<String>>,
    details: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(answer: Answer) -> Arc<Recorder> {
        Arc::new(Recorder {
            answer,
            probe: None,
            events: Mutex::default(),
            moved: Mutex::default(),
            details: Mutex::default(),
        })
    }

    /// Also reads the slot's confirmed position as each event comes.
    async fn probing(f: &Fixture) -> Arc<Recorder> {
        Arc::new(Recorder {
            answer: Answer::Accept,
            probe: Some((client(&f.url).await, f.name.clone())),
            events: Mutex::default(),
            moved: Mutex::default(),
            details: Mutex::default(),
        })
    }

    fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

#[async_trait]
impl Sink for Recorder {
    async fn deliver(&self, event: Event) -> Delivery {
        let position = match &self.probe {
            Some((client, slot)) => confirmed(client, slot).await,
            None => None,
        };
        let name = event.payload["after"]["name"].as_str().map(str::to_string);
        let n = {
            let mut events = self.events.lock().unwrap();
            events.push((event, position));
            events.len()
        };
        match &self.answer {
            Answer::Accept => Delivery::Accepted,
            Answer::MoveAside(poison) if name.as_deref() == Some(poison) => {
                Delivery::MoveAside(format!("test says {poison}"))
            }
            Answer::MoveAside(_) => Delivery::Accepted,
            Answer::HoldAfter(k) if n > *k => std::future::pending().await,
            Answer::HoldAfter(_) => Delivery::Accepted,
        }
    }

    fn connected(&self, detail: &str) {
        self.details.lock().unwrap().push(detail.to_string());
    }

    fn moved_aside(&self, why: &str) {
        self.moved.lock().unwrap().push(why.to_string());
    }
}

fn start(config: Map<String, Value>, sink: Arc<Recorder>) -> JoinHandle<Result<(), SourceError>> {
    tokio::spawn(async move {
        let result = Postgres.run("changes", &config, &*sink).await;
        if let Err(e) = &result {
            eprintln!("run ended: {e}");
        }
        result
    })
}

async fn stop(task: JoinHandle<Result<(), SourceError>>) {
    task.abort();
    let _ = task.await;
}

/// `X/Y:n` split into the commit LSN and the index.
fn key_parts(e: &Event) -> (u64, u64) {
    let key = e.key.clone().unwrap();
    let (lsn, index) = key.rsplit_once(':').unwrap();
    (pgoutput::parse_lsn(lsn).unwrap(), index.parse().unwrap())
}

#[tokio::test]
async fn inserts_updates_and_deletes_fire_with_their_rows() {
    let Some(url) = url() else { return };
    let f = Fixture::new(
        &url,
        "id int primary key, name text, price numeric, tags jsonb, ok bool, score float8",
    )
    .await;
    let config = f.config(json!({}));
    Postgres.check("changes", &config).await.unwrap();
    let sink = Recorder::new(Answer::Accept);
    let task = start(config.clone(), sink.clone());
    assert!(wait_until(|| !sink.details.lock().unwrap().is_empty()).await);
    let t = &f.name;
    // One transaction per call (statements of one call would share an implicit one).
    f.sql(&format!(
        "insert into {t} values (1, 'a', 1.50, '{{\"x\": [1]}}', true, 2.5)"
    ))
    .await;
    f.sql(&format!("update {t} set name = 'b' where id = 1"))
        .await;
    f.sql(&format!(
        "begin; update {t} set id = 2 where id = 1; delete from {t} where id = 2; commit;"
    ))
    .await;
    assert!(wait_until(|| sink.len() == 4).await, "{:?}", sink.events());
    let events = sink.events();
    let payloads: Vec<Value> = events
        .iter()
        .map(|e| Value::Object(e.payload.clone()))
        .collect();
    let row = |id: i64, name: &str| {
        json!({"id": id, "name": name, "price": "1.50", "tags": {"x": [1]}, "ok": true,
               "score": 2.5})
    };
    let ops: Vec<(&Value, &Value, &Value)> = payloads
        .iter()
        .map(|p| (&p["op"], &p["before"], &p["after"]))
        .collect();
    assert_eq!(
        ops,
        vec![
            (&json!("c"), &Value::Null, &row(1, "a")),
            // REPLICA IDENTITY DEFAULT: no old row when the key did not change...
            (&json!("u"), &Value::Null, &row(1, "b")),
            // ...the old key when it did, and for a delete.
            (&json!("u"), &json!({"id": 1}), &row(2, "b")),
            (&json!("d"), &json!({"id": 2}), &Value::Null),
        ]
    );
    let source = &payloads[0]["source"];
    assert_eq!(source["connector"], json!("postgresql"));
    assert_eq!(source["db"], json!("test"));
    assert_eq!(source["schema"], json!("public"));
    assert_eq!(source["table"], json!(f.name));
    assert!(source["txId"].as_u64().is_some_and(|x| x > 0), "{source}");
    assert!(pgoutput::parse_lsn(source["lsn"].as_str().unwrap()).is_some());
    assert!(
        source["ts_ms"]
            .as_i64()
            .is_some_and(|ms| ms > 1_700_000_000_000)
    );
    assert!(
        payloads[0]["ts_ms"]
            .as_u64()
            .is_some_and(|ms| ms >= source["ts_ms"].as_u64().unwrap())
    );
    // The last two share a transaction: one commit LSN, indexes 0 and 1.
    let keys: Vec<(u64, u64)> = events.iter().map(key_parts).collect();
    assert_eq!(keys[0].1, 0);
    assert_eq!(keys[1].1, 0);
    assert!(keys[0].0 < keys[1].0 && keys[1].0 < keys[2].0);
    assert_eq!(keys[2], (keys[3].0, 0));
    assert_eq!(keys[3].1, 1);
    stop(task).await;

    // DELETE of the subscription: the slot and the publication go.
    Postgres.forget("changes", &config).await.unwrap();
    assert_eq!(f.confirmed().await, None, "the slot is dropped");
    let publications = f
        .client
        .query(
            "select 1 from pg_publication where pubname = $1",
            &[&f.name],
        )
        .await
        .unwrap();
    assert!(publications.is_empty(), "the publication is dropped");
}

#[tokio::test]
async fn a_transaction_of_many_rows_fires_once_each_in_order_and_moves_the_slot_past_it() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "id int primary key, name text").await;
    let config = f.config(json!({"operations": ["insert"]}));
    Postgres.check("changes", &config).await.unwrap();
    let sink = Recorder::probing(&f).await;
    let task = start(config, sink.clone());
    assert!(wait_until(|| !sink.details.lock().unwrap().is_empty()).await);
    let before = f.confirmed().await.unwrap();
    f.sql(&format!(
        "insert into {} select n, 'row ' || n from generate_series(1, 500) n",
        f.name
    ))
    .await;
    assert!(wait_until(|| sink.len() >= 500).await);
    let recorded = sink.events.lock().unwrap().clone();
    assert_eq!(recorded.len(), 500);
    let commit = key_parts(&recorded[0].0).0;
    for (i, (event, confirmed)) in recorded.iter().enumerate() {
        assert_eq!(key_parts(event), (commit, i as u64));
        assert_eq!(event.payload["after"]["id"], json!(i + 1));
        // The slot never moved into the transaction while its rows were handed.
        assert!(
            confirmed.unwrap() < commit,
            "row {i}: slot at {confirmed:?}"
        );
        assert!(confirmed.unwrap() >= before);
    }
    // Once every row was accepted, the slot moves past the commit.
    let mut moved = false;
    for _ in 0..200 {
        if f.confirmed().await.unwrap() > commit {
            moved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(moved, "the slot did not move past the commit");
    assert_eq!(sink.len(), 500, "nothing fired twice");
    stop(task).await;
}

#[tokio::test]
async fn a_run_stopped_mid_transaction_resumes_with_the_same_keys() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "id int primary key, name text").await;
    let config = f.config(json!({}));
    Postgres.check("changes", &config).await.unwrap();
    let t = &f.name;
    f.sql(&format!("insert into {t} values (0, 'alone')")).await;
    f.sql(&format!(
        "insert into {t} select n, 'row ' || n from generate_series(1, 10) n"
    ))
    .await;
    let held = Recorder::new(Answer::HoldAfter(4));
    let task = start(config.clone(), held.clone());
    assert!(wait_until(|| held.len() == 5).await);
    stop(task).await;
    let first = held.events();

    let sink = Recorder::new(Answer::Accept);
    let task = start(config, sink.clone());
    assert!(wait_until(|| sink.len() >= 11).await);
    f.sql(&format!("insert into {t} values (11, 'after')"))
        .await;
    assert!(wait_until(|| sink.len() >= 12).await);
    let events = sink.events();
    // The single-row transaction was accepted before the stop, but the slot moves only after
    // a whole peek: a change may come again, never be skipped, with the same key.
    assert_eq!(events.len(), 12, "{events:?}");
    for (a, b) in first.iter().zip(&events) {
        assert_eq!(a.key, b.key);
        assert_eq!(a.payload["after"], b.payload["after"]);
    }
    let ids: Vec<Value> = events
        .iter()
        .map(|e| e.payload["after"]["id"].clone())
        .collect();
    assert_eq!(ids, (0..12).map(|n| json!(n)).collect::<Vec<_>>());
    stop(task).await;
}

#[tokio::test]
async fn a_change_the_sink_moves_aside_stops_the_run_and_stays_in_the_slot() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "id int primary key, name text").await;
    let config = f.config(json!({}));
    Postgres.check("changes", &config).await.unwrap();
    let t = &f.name;
    f.sql(&format!("insert into {t} values (1, 'fine')")).await;
    f.sql(&format!("insert into {t} values (2, 'poison')"))
        .await;
    f.sql(&format!("insert into {t} values (3, 'after')")).await;
    let sink = Recorder::new(Answer::MoveAside("poison".into()));
    let ended = start(config.clone(), sink.clone()).await.unwrap();
    // The run stops at the change: nothing after it was handed, nothing was moved aside.
    match ended {
        Err(SourceError::Connection(e)) => {
            assert!(e.contains("could not be fired, kept in the slot"), "{e}");
            assert!(e.contains(&format!("public.{t}")), "{e}");
            assert!(e.contains("test says poison"), "{e}");
            let commit = pgoutput::lsn_text(key_parts(&sink.events()[1]).0);
            assert!(e.contains(&format!("commit {commit})")), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let first = sink.events();
    let names: Vec<&Value> = first.iter().map(|e| &e.payload["after"]["name"]).collect();
    assert_eq!(names, vec![&json!("fine"), &json!("poison")]);
    assert!(sink.moved.lock().unwrap().is_empty());
    // The slot moved past the accepted transaction only, never into the held one.
    let held = key_parts(&first[1]);
    let at = f.confirmed().await.unwrap();
    assert!(at > key_parts(&first[0]).0 && at < held.0, "slot at {at}");

    // Tried again (the poison still refused): the same change, the slot still before it.
    let again = Recorder::new(Answer::MoveAside("poison".into()));
    assert!(start(config.clone(), again.clone()).await.unwrap().is_err());
    assert_eq!(again.events().len(), 1);
    assert_eq!(again.events()[0].key, first[1].key);
    assert_eq!(f.confirmed().await, Some(at), "the slot did not move");

    // A run that accepts: the held change first, with its key, then the rest.
    let sink = Recorder::new(Answer::Accept);
    let task = start(config.clone(), sink.clone());
    assert!(wait_until(|| sink.len() >= 2).await);
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].key, first[1].key);
    assert_eq!(
        events[0].payload["after"],
        json!({"id": 2, "name": "poison"})
    );
    assert_eq!(events[1].payload["after"]["name"], json!("after"));
    stop(task).await;

    // The documented way past a change that can never be fired: with no run reading, move
    // the slot just past its transaction's commit; the next change comes next.
    f.sql(&format!("insert into {t} values (4, 'poison')"))
        .await;
    f.sql(&format!("insert into {t} values (5, 'later')")).await;
    let refused = Recorder::new(Answer::MoveAside("poison".into()));
    assert!(
        start(config.clone(), refused.clone())
            .await
            .unwrap()
            .is_err()
    );
    let commit = pgoutput::lsn_text(key_parts(&refused.events()[0]).0);
    f.sql(&format!(
        "select pg_replication_slot_advance('{t}', '{commit}'::pg_lsn + 1)"
    ))
    .await;
    let sink = Recorder::new(Answer::Accept);
    let task = start(config, sink.clone());
    assert!(wait_until(|| sink.len() >= 1).await);
    assert_eq!(sink.events()[0].payload["after"]["name"], json!("later"));
    stop(task).await;
}

#[tokio::test]
async fn a_run_whose_slot_was_dropped_fails_and_does_not_make_it_again() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "id int primary key, name text").await;
    let config = f.config(json!({}));
    // Never checked (as after a DELETE, or an operator's drop): no slot to read.
    match Postgres
        .run("changes", &config, &*Recorder::new(Answer::Accept))
        .await
    {
        Err(SourceError::Config(e)) => assert!(
            e.contains(&format!("the replication slot '{}' does not exist", f.name))
                && e.contains("UPDATE the feed"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.confirmed().await, None, "the run made no slot");

    // Dropped while a run reads it: that run ends, and the next one makes nothing either.
    Postgres.check("changes", &config).await.unwrap();
    let sink = Recorder::new(Answer::Accept);
    let task = start(config.clone(), sink.clone());
    f.sql(&format!("insert into {} values (1, 'a')", f.name))
        .await;
    assert!(wait_until(|| sink.len() == 1).await);
    Postgres.forget("changes", &config).await.unwrap();
    assert!(task.await.unwrap().is_err(), "the run ends with its slot");
    match Postgres.run("changes", &config, &*sink).await {
        Err(SourceError::Config(e)) => assert!(e.contains("does not exist (dropped?)"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.confirmed().await, None, "the slot stays dropped");

    // UPDATE (check) makes it again, from now on.
    Postgres.check("changes", &config).await.unwrap();
    assert!(f.confirmed().await.is_some());
}

#[tokio::test]
async fn a_table_without_a_primary_key_is_refused_unless_it_can_publish_its_changes() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "a int, name text").await;
    let t = &f.name;
    match Postgres.check("changes", &f.config(json!({}))).await {
        Err(SourceError::Config(e)) => {
            assert!(e.contains("has no primary key"), "{e}");
            assert!(e.contains("REPLICA IDENTITY FULL"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was made: the application's updates still work.
    f.sql(&format!(
        "insert into {t} values (1, 'x'); update {t} set name = 'y'"
    ))
    .await;
    assert_eq!(f.confirmed().await, None);

    // Inserts only: the publication does not publish updates, which PostgreSQL then allows.
    let inserts = f.config(json!({"operations": "insert"}));
    Postgres.check("changes", &inserts).await.unwrap();
    let sink = Recorder::new(Answer::Accept);
    let task = start(inserts, sink.clone());
    f.sql(&format!(
        "insert into {t} values (2, 'z'); update {t} set name = 'w'"
    ))
    .await;
    assert!(wait_until(|| sink.len() == 1).await);
    assert_eq!(
        sink.events()[0].payload["after"],
        json!({"a": 2, "name": "z"})
    );
    stop(task).await;
    Postgres
        .forget("changes", &f.config(json!({})))
        .await
        .unwrap();

    // REPLICA IDENTITY FULL: every change, with the whole old row.
    f.sql(&format!("alter table {t} replica identity full"))
        .await;
    let all = f.config(json!({}));
    Postgres.check("changes", &all).await.unwrap();
    let sink = Recorder::new(Answer::Accept);
    let task = start(all, sink.clone());
    f.sql(&format!(
        "update {t} set name = 'v' where a = 2; delete from {t} where a = 1"
    ))
    .await;
    assert!(wait_until(|| sink.len() == 2).await);
    let events = sink.events();
    assert_eq!(events[0].payload["before"], json!({"a": 2, "name": "w"}));
    assert_eq!(events[0].payload["after"], json!({"a": 2, "name": "v"}));
    assert_eq!(events[1].payload["before"], json!({"a": 1, "name": "w"}));
    stop(task).await;
}

#[tokio::test]
async fn the_slot_lag_is_reported() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "id int primary key, body text").await;
    let config = f.config(json!({}));
    Postgres.check("changes", &config).await.unwrap();
    f.sql(&format!(
        "insert into {} select n, repeat('x', 1000) from generate_series(1, 200) n",
        f.name
    ))
    .await;
    let lag = slot_lag(&config).await.unwrap().unwrap();
    assert!(lag.unconfirmed > 100_000, "{lag:?}");
    assert!(lag.retained >= lag.unconfirmed, "{lag:?}");
    let sink = Recorder::new(Answer::Accept);
    let task = start(config.clone(), sink.clone());
    assert!(wait_until(|| sink.len() == 200).await);
    let details = sink.details.lock().unwrap().clone();
    assert!(
        details[0].starts_with(&format!("reading slot {0} (publication {0}) of ", f.name))
            && details[0].contains("of WAL retained"),
        "{details:?}"
    );
    stop(task).await;
    let missing = f.config(json!({"slot": "gust_test_no_such_slot"}));
    assert_eq!(slot_lag(&missing).await.unwrap(), None);
}

#[tokio::test]
async fn check_names_what_is_wrong() {
    let Some(url) = url() else { return };
    let f = Fixture::new(&url, "id int primary key").await;
    let check =
        |params: Map<String, Value>| async move { Postgres.check("changes", &params).await };
    match check(config(
        json!({"url": "postgres://postgres@127.0.0.1:1/test", "tables": "t"}),
    ))
    .await
    {
        Err(SourceError::Connection(e)) => {
            assert!(e.contains("PostgreSQL at 127.0.0.1:1/test"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let mut missing = f.config(json!({}));
    missing.insert("tables".into(), json!(["public.gust_test_no_such_table"]));
    match check(missing).await {
        Err(SourceError::Config(e)) => {
            assert!(
                e.contains("there is no table public.gust_test_no_such_table"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.confirmed().await,
        None,
        "no slot for a configuration that cannot work"
    );
}
