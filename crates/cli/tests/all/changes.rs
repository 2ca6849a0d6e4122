//! PostgreSQL change events end to end (decision 0027): a `postgres/changes` trigger on a
//! table of the test's own runs its rule's function once per row change, as committed; a
//! kill -9 of the server while a transaction's changes are delivered loses and repeats none;
//! deleting the trigger drops its replication slot and its publication. Against the machine's
//! PostgreSQL (`wal_level = logical`), each test skipped by name when `GUST_TEST_POSTGRES_URL`
//! is unset.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use gust_testkit::{Server, function};
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

use crate::server;
use crate::sources::{broker, call_feed, feed_trigger, wait_connected};

const FEED: &str = "postgres/changes";

/// The URL of the machine's PostgreSQL, or `None` after saying `test` is skipped.
fn postgres(test: &str) -> Option<String> {
    broker("GUST_TEST_POSTGRES_URL", test)
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// A table of the test's own, `(id int primary key, name text, n int)`; dropped when it
/// goes, with the slot and publication its trigger used if they are still there (also when
/// the test panics). Declared before the server, so the server is killed first.
struct Table {
    url: String,
    client: Client,
    name: String,
    /// The trigger's slot (and publication: the same default name), once known.
    slot: Option<String>,
}

impl Table {
    async fn new(url: &str) -> Table {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("changes_{nanos:x}_{:x}", std::process::id());
        let client = connect(url).await;
        client
            .batch_execute(&format!(
                "create table {name} (id int primary key, name text not null, n int not null)"
            ))
            .await
            .unwrap();
        Table {
            url: url.to_string(),
            client,
            name,
            slot: None,
        }
    }

    async fn sql(&self, sql: &str) {
        self.client.batch_execute(sql).await.unwrap();
    }

    /// Inserts rows `ids` in one transaction, in order of id.
    async fn insert(&self, ids: std::ops::RangeInclusive<i32>) {
        let (from, to) = (ids.start(), ids.end());
        self.sql(&format!(
            "insert into {} (id, name, n) select i, 'row ' || i, i * 10 \
             from generate_series({from}, {to}) as i order by i",
            self.name
        ))
        .await;
    }

    /// Whether a replication slot named `slot` exists.
    async fn slot_exists(&self, slot: &str) -> bool {
        let n: i64 = self
            .client
            .query_one(
                "select count(*) from pg_replication_slots where slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .get(0);
        n > 0
    }

    /// Whether a publication named `publication` exists.
    async fn publication_exists(&self, publication: &str) -> bool {
        let n: i64 = self
            .client
            .query_one(
                "select count(*) from pg_publication where pubname = $1",
                &[&publication],
            )
            .await
            .unwrap()
            .get(0);
        n > 0
    }

    /// The slot's confirmed position (`None` when there is no such slot).
    async fn confirmed(&self, slot: &str) -> Option<u64> {
        let row = self
            .client
            .query_opt(
                "select confirmed_flush_lsn::text from pg_replication_slots \
                 where slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()?;
        Some(lsn(&row.get::<_, String>(0)))
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let (url, name, slot) = (self.url.clone(), self.name.clone(), self.slot.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = connect(&url).await;
                if let Some(slot) = slot {
                    for _ in 0..40 {
                        let dropped = client
                            .execute(
                                "select pg_drop_replication_slot(slot_name) \
                                 from pg_replication_slots where slot_name = $1",
                                &[&slot],
                            )
                            .await;
                        if dropped.is_ok() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    let _ = client
                        .batch_execute(&format!("drop publication if exists {slot}"))
                        .await;
                }
                let _ = client
                    .batch_execute(&format!("drop table if exists {name}"))
                    .await;
            });
        });
        let _ = cleanup.join();
    }
}

/// A WAL position `X/Y` as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// A change's key `<commit LSN>:<index>` as numbers, which sort in commit order.
fn key(text: &str) -> (u64, u64) {
    let (commit, index) = text.rsplit_once(':').unwrap();
    (lsn(commit), index.parse().unwrap())
}

/// Creates trigger `trigger` on `table` with a rule to `echo`; its slot's name, which the
/// table keeps for its clean-up.
async fn changes_trigger(s: &Server, url: &str, table: &mut Table, trigger: &str) -> String {
    let params = json!({ "url": url, "tables": [table.name] });
    let answer = feed_trigger(s, trigger, FEED, params, "echo").await;
    assert_eq!(answer["success"], true, "{answer}");
    let read = wait_connected(s, FEED, trigger).await;
    let config = &read["result"]["config"];
    assert_eq!(config["url"], "********", "the URL is a secret: {read}");
    let slot = config["slot"].as_str().unwrap().to_string();
    assert!(slot.starts_with("gust_"), "{read}");
    assert_eq!(config["publication"], slot.as_str(), "{read}");
    table.slot = Some(slot.clone());
    slot
}

/// How many records action (or trigger) `name` has.
async fn count(s: &Server, name: &str) -> u64 {
    let r = s
        .call(
            "GET",
            &format!("/api/v1/namespaces/_/activations?name={name}&count=true"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["activations"].as_u64().unwrap()
}

/// Every record of `name`, page by page (a listing gives at most 200).
async fn all_records(s: &Server, name: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let r = s
            .call(
                "GET",
                &format!(
                    "/api/v1/namespaces/_/activations?name={name}&docs=true&limit=200&skip={}",
                    all.len()
                ),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.body.as_array().cloned().unwrap_or_default();
        let done = page.len() < 200;
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// The change event echo was invoked with, in record `r`.
fn event(r: &Value) -> &Value {
    &r["response"]["result"]["params"]
}

/// The row id a change event is about (`after`'s, or `before`'s for a delete).
fn row_id(e: &Value) -> i64 {
    let row = if e["op"] == "d" {
        &e["before"]
    } else {
        &e["after"]
    };
    row["id"].as_i64().unwrap_or_else(|| panic!("no id: {e}"))
}

/// Waits until echo's records hold changes of `n` distinct rows; every record then.
async fn wait_for_rows(s: &Server, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let records = all_records(s, "echo").await;
        let rows: BTreeSet<i64> = records.iter().map(|r| row_id(event(r))).collect();
        if rows.len() >= n {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "echo ran for {} distinct rows of {n} after 90 s ({} records)",
            rows.len(),
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes trigger `trigger` through the API and checks that its slot and publication went
/// with it, and did not come back 3 s later.
async fn delete_and_check_released(s: &Server, table: &Table, trigger: &str, slot: &str) {
    assert!(table.slot_exists(slot).await, "the slot {slot} exists");
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/namespaces/_/triggers/{trigger}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !table.slot_exists(slot).await,
        "deleting the trigger dropped its replication slot {slot}"
    );
    assert!(
        !table.publication_exists(slot).await,
        "deleting the trigger dropped its publication {slot}"
    );
    // A run still stopping (within a second) or retried must not make them again: a while
    // later they are still gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !table.slot_exists(slot).await,
        "the replication slot {slot} came back after the trigger's deletion"
    );
    assert!(
        !table.publication_exists(slot).await,
        "the publication {slot} came back after the trigger's deletion"
    );
}

#[tokio::test]
async fn row_changes_run_a_function_once_each_in_commit_order() {
    let test = "row_changes_run_a_function_once_each_in_commit_order";
    let Some(url) = postgres(test) else {
        return;
    };
    let mut table = Table::new(&url).await;
    let s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let slot = changes_trigger(&s, &url, &mut table, "rows").await;
    let name = table.name.clone();

    // Four transactions: an insert, an update, a delete, then 200 inserts in one.
    table
        .sql(&format!(
            "insert into {name} (id, name, n) values (0, 'first', 1)"
        ))
        .await;
    table
        .sql(&format!("update {name} set name = 'changed' where id = 0"))
        .await;
    table.sql(&format!("delete from {name} where id = 0")).await;
    table.insert(1..=200).await;

    let records = wait_for_rows(&s, 201).await;
    // Settled: nothing more runs (the last changes' repeats would show here).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&s, "echo").await, 203, "one run per row change");
    assert_eq!(count(&s, "rows").await, 203, "one fire per row change");
    let records = if records.len() == 203 {
        records
    } else {
        all_records(&s, "echo").await
    };
    assert_eq!(records.len(), 203);

    // In the order of the keys (commit LSN, index in the transaction): the statements' order.
    let mut events: Vec<((u64, u64), Value)> = records
        .iter()
        .map(|r| {
            let e = event(r).clone();
            assert_eq!(r["response"]["success"], true, "{r}");
            (key(e["__event_key"].as_str().unwrap()), e)
        })
        .collect();
    events.sort_by_key(|(k, _)| *k);
    let keys: BTreeSet<(u64, u64)> = events.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys.len(), 203, "every change has a key of its own");
    let (c, u, d) = (&events[0].1, &events[1].1, &events[2].1);
    assert_eq!(c["op"], "c", "{c}");
    assert_eq!(c["before"], Value::Null, "{c}");
    assert_eq!(c["after"], json!({"id": 0, "name": "first", "n": 1}), "{c}");
    assert_eq!(u["op"], "u", "{u}");
    // The default replica identity: no old row when the key did not change.
    assert_eq!(u["before"], Value::Null, "{u}");
    assert_eq!(
        u["after"],
        json!({"id": 0, "name": "changed", "n": 1}),
        "{u}"
    );
    assert_eq!(d["op"], "d", "{d}");
    // The default replica identity: the key columns of the old row.
    assert_eq!(d["before"], json!({"id": 0}), "{d}");
    assert_eq!(d["after"], Value::Null, "{d}");
    for (_, e) in &events {
        let source = &e["source"];
        assert_eq!(source["connector"], "postgresql", "{e}");
        assert_eq!(source["schema"], "public", "{e}");
        assert_eq!(source["table"], name.as_str(), "{e}");
        assert!(source["db"].is_string(), "{e}");
        assert!(source["txId"].is_u64(), "{e}");
        assert!(source["ts_ms"].is_u64(), "{e}");
        assert!(e["ts_ms"].is_u64(), "{e}");
        lsn(source["lsn"].as_str().unwrap());
    }
    // Three transactions of one change each, then one of 200.
    let commits: Vec<u64> = events.iter().map(|((c, _), _)| *c).collect();
    let distinct: BTreeSet<u64> = commits.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "four commits");
    for ((_, index), e) in &events[..3] {
        assert_eq!(*index, 0, "{e}");
    }
    let bulk = &events[3..];
    let tx = &bulk[0].1["source"]["txId"];
    for (i, ((commit, index), e)) in bulk.iter().enumerate() {
        assert_eq!(*commit, bulk[0].0.0, "one transaction: {e}");
        assert_eq!(*index, i as u64, "indexed from 0 in the transaction: {e}");
        assert_eq!(e["op"], "c", "{e}");
        assert_eq!(
            row_id(e),
            i as i64 + 1,
            "the rows in the order inserted: {e}"
        );
        assert_eq!(
            e["after"],
            json!({"id": i + 1, "name": format!("row {}", i + 1), "n": (i + 1) * 10}),
        );
        assert_eq!(&e["source"]["txId"], tx, "{e}");
    }
    // Each change's own position grows with the commit order.
    let positions: Vec<u64> = events
        .iter()
        .map(|(_, e)| lsn(e["source"]["lsn"].as_str().unwrap()))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "the changes' positions follow the keys: {positions:?}"
    );

    // The fires came in that order too: a fire starts once the previous one was accepted,
    // so their records' start times (ms) never go back along the keys.
    let mut fires: Vec<((u64, u64), u64)> = all_records(&s, "rows")
        .await
        .iter()
        .map(|r| {
            let k = r["response"]["result"]["__event_key"].as_str().unwrap();
            (key(k), r["start"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(fires.len(), 203);
    fires.sort_unstable();
    assert!(
        fires.windows(2).all(|w| w[0].1 <= w[1].1),
        "fired in commit order: {fires:?}"
    );

    let read = call_feed(&s, FEED, "READ", "rows", json!({})).await;
    assert!(
        read["result"]["status"]["movedAside"].is_null(),
        "nothing was moved aside: {read}"
    );
    delete_and_check_released(&s, &table, "rows", &slot).await;
}

#[tokio::test]
async fn a_kill_9_while_changes_are_delivered_loses_and_repeats_nothing() {
    let test = "a_kill_9_while_changes_are_delivered_loses_and_repeats_nothing";
    let Some(url) = postgres(test) else {
        return;
    };
    let mut table = Table::new(&url).await;
    let mut s = server();
    s.create("echo", &function("echo"), json!({})).await;
    let slot = changes_trigger(&s, &url, &mut table, "bulk").await;

    // One transaction of 300 rows; the server is killed once some have run, not all.
    table.insert(1..=300).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ran = loop {
        let n = count(&s, "echo").await;
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "no change ran in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    s.kill();
    let at_kill = table.confirmed(&slot).await.unwrap();

    // Restarted: the slot's changes are read again from its position; 50 rows more after.
    let s = s.restart();
    table.insert(301..=350).await;
    let records = wait_for_rows(&s, 350).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = if count(&s, "echo").await == records.len() as u64 {
        records
    } else {
        all_records(&s, "echo").await
    };

    // Each row ran once: a change delivered again has the key of its first delivery, and its
    // fire runs nothing new (decision 0021).
    let mut runs: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in &records {
        let e = event(r);
        assert_eq!(e["op"], "c", "{e}");
        runs.entry(row_id(e))
            .or_default()
            .push(e["__event_key"].as_str().unwrap().to_string());
    }
    // Whether the kill came before the slot moved past the transaction (its changes were
    // then all delivered again after the restart), said for whoever reads the output.
    let past = runs.get(&1).map(|keys| at_kill > key(&keys[0]).0);
    eprintln!(
        "{test}: killed with {ran} of 300 runs recorded; the slot was past the \
         transaction then: {past:?}"
    );
    let repeated: Vec<_> = runs.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(repeated.is_empty(), "rows that ran twice: {repeated:?}");
    assert_eq!(runs.len(), 350);
    assert_eq!(
        runs.keys().copied().collect::<Vec<_>>(),
        (1..=350).collect::<Vec<i64>>()
    );
    assert_eq!(records.len(), 350, "one run per row");
    assert_eq!(count(&s, "bulk").await, 350, "one fire record per row");
    let read = call_feed(&s, FEED, "READ", "bulk", json!({})).await;
    assert!(
        read["result"]["status"]["movedAside"].is_null(),
        "nothing was moved aside: {read}"
    );
    delete_and_check_released(&s, &table, "bulk", &slot).await;
}
