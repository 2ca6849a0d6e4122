//! The store's invariants, checked on every backend: SQLite always, PostgreSQL when
//! `GUST_TEST_POSTGRES_URL` is set (each test on a fresh schema; skipped, and said so, when
//! it is not).
#![allow(clippy::unwrap_used)]

use gust_model::{
    Action, ActionLimits, Activation, ActivationResponse, ActivationStatus, BindingRef,
    EncodedActivation, Exec, Namespace, NamespaceLimits, Package, Route, Site, SiteFile,
};
use gust_store::postgres::PostgresStore;
use gust_store::sqlite::{Durability, SqliteStore};
use gust_store::{
    ActivationQuery, ActivationStore, AdmissionStore, JournalStore, PendingInvocation, PutMode,
    Store, StoreError, TickClaim, WritePosition,
};

/// Runs each named scenario (`async fn NAME(&dyn Store)`) as `NAME::sqlite` and
/// `NAME::postgres`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("gust.db");
                let store = super::SqliteStore::open(path, super::Durability::Process).unwrap();
                super::$name(&store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(url) = gust_testkit::postgres_url() else {
                    eprintln!("skipped: GUST_TEST_POSTGRES_URL is not set");
                    return;
                };
                let schema = gust_testkit::Schema::create(&url);
                let store = super::PostgresStore::connect(&schema.url).await.unwrap();
                super::$name(&store).await;
            }
        }
    )*};
}

on_every_backend!(
    a_record_clears_its_journal_entry_and_is_written_once,
    a_first_run_record_is_read_at_once_and_ordered_with_other_writes,
    late_journaling_loses_to_an_existing_record,
    action_updates_are_compare_and_swap,
    namespaces_and_keys,
    activation_lists_filter_page_and_count,
    deleting_a_namespace_deletes_its_actions_and_records,
    retention_deletes_records_that_started_before_the_cutoff,
    packages_hold_actions_and_go_with_them,
    sites_name_blobs_and_sweeps_keep_what_is_named,
    routes_are_replaced_listed_and_deleted_by_api_path_and_method,
    every_list_is_in_byte_order,
    triggers_and_rules_are_compare_and_swap_and_rules_are_found_by_trigger,
    a_schedule_tick_is_claimed_once_and_a_dead_owners_pending_tick_adopted,
    a_subscription_has_one_owner_at_a_time_and_goes_with_its_trigger,
    a_mapping_is_upserted_listed_by_rule_and_goes_with_its_rule_and_namespace,
    is_accepted_sees_the_journal_and_the_records,
    records_are_read_in_the_order_they_were_written,
);

/// Package `ns/name`, version 0.0.1.
fn package(name: &str, publish: bool) -> Package {
    Package {
        namespace: "ns".into(),
        name: name.into(),
        version: "0.0.1".into(),
        publish,
        binding: None,
        annotations: vec![],
        parameters: vec![],
        updated: 0,
    }
}

async fn packages_hold_actions_and_go_with_them(s: &dyn Store) {
    s.put_package(&package("p", true), PutMode::Create)
        .await
        .unwrap();
    s.put_package(&package("p_", false), PutMode::Create)
        .await
        .unwrap();
    assert!(matches!(
        s.put_package(&package("p", true), PutMode::Create).await,
        Err(StoreError::Conflict)
    ));
    let mut bound = package("b", false);
    bound.binding = Some(BindingRef {
        namespace: "other".into(),
        name: "lib".into(),
    });
    s.put_package(&bound, PutMode::Create).await.unwrap();
    assert_eq!(s.package("ns", "b").await.unwrap().unwrap(), bound);
    // Compare-and-swap on the version, like actions.
    let mut v2 = package("p", true);
    v2.version = "0.0.2".into();
    let stale = PutMode::Replace {
        expected_version: "9.9.9".into(),
    };
    assert!(matches!(
        s.put_package(&v2, stale).await,
        Err(StoreError::Conflict)
    ));
    let current = PutMode::Replace {
        expected_version: "0.0.1".into(),
    };
    s.put_package(&v2, current).await.unwrap();
    assert_eq!(
        s.package("ns", "p").await.unwrap().unwrap().version,
        "0.0.2"
    );

    // Actions `p/...` are the package's; `p_/x` and `px` (names that sort near) are not.
    for name in ["p/a", "p/b", "p_/x", "px", "q"] {
        let mut a = action();
        a.name = name.into();
        s.put_action(&a, Some(b"code"), PutMode::Create)
            .await
            .unwrap();
    }
    let names = |list: Vec<Action>| list.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_actions("ns", Some("p"), 0, 10).await.unwrap()),
        ["p/a", "p/b"]
    );
    assert_eq!(s.count_actions("ns", Some("p")).await.unwrap(), 2);
    assert_eq!(s.count_actions("ns", None).await.unwrap(), 5);
    assert_eq!(
        names(s.list_actions("ns", None, 1, 2).await.unwrap()),
        ["p/b", "p_/x"]
    );

    // Listing: every package, or the published ones.
    let pnames = |list: Vec<Package>| list.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        pnames(s.list_packages("ns", false, 0, 10).await.unwrap()),
        ["b", "p", "p_"]
    );
    assert_eq!(
        pnames(s.list_packages("ns", true, 0, 10).await.unwrap()),
        ["p"]
    );
    assert_eq!(s.count_packages("ns", true).await.unwrap(), 1);

    // Deleting the package deletes its actions, and only those.
    let gone = s.delete_package("ns", "p").await.unwrap().unwrap();
    assert_eq!(gone.version, "0.0.2");
    assert!(s.delete_package("ns", "p").await.unwrap().is_none());
    assert_eq!(
        names(s.list_actions("ns", None, 0, 10).await.unwrap()),
        ["p_/x", "px", "q"]
    );
}

fn record(id: &str, start: u64) -> Activation {
    Activation {
        namespace: "ns".into(),
        name: "a".into(),
        version: "0.0.1".into(),
        subject: "ns".into(),
        activation_id: id.into(),
        start,
        end: start + 1,
        duration: 1,
        status_code: 0,
        response: ActivationResponse::new(ActivationStatus::Success, serde_json::json!({})),
        logs: vec![],
        annotations: vec![],
        publish: false,
        cause: None,
    }
}

fn pending(id: &str) -> PendingInvocation {
    PendingInvocation {
        activation_id: id.into(),
        accepted_at: 1,
        message: b"{}".to_vec(),
    }
}

/// The ids of the journal entries, as `pending` lists them.
async fn pending_ids(s: &dyn Store) -> Vec<String> {
    let entries = s.pending().await.unwrap();
    entries.into_iter().map(|p| p.activation_id).collect()
}

/// Action `ns/x`, version 0.0.1.
fn action() -> Action {
    Action {
        namespace: "ns".into(),
        name: "x".into(),
        version: "0.0.1".into(),
        publish: false,
        exec: Exec {
            kind: "wasm".into(),
            code: None,
            binary: true,
            main: None,
            components: None,
            http: false,
        },
        annotations: vec![],
        parameters: vec![],
        limits: ActionLimits::default(),
        updated: 0,
        code_hash: "h".into(),
    }
}

fn encoded(record: Activation) -> EncodedActivation {
    EncodedActivation::new(&record).unwrap()
}

async fn a_record_clears_its_journal_entry_and_is_written_once(s: &dyn Store) {
    s.put_pending(pending("a1")).await.unwrap();
    assert_eq!(s.pending().await.unwrap().len(), 1);
    assert!(s.put_activation(&encoded(record("a1", 10))).await.unwrap());
    assert!(s.pending().await.unwrap().is_empty());
    let mut again = record("a1", 99);
    again.name = "other".into();
    assert!(
        !s.put_activation(&encoded(again)).await.unwrap(),
        "not written twice"
    );
    let got = s.activation("ns", "a1").await.unwrap().unwrap();
    assert_eq!(got.start, 10, "the first record wins");
    let q = ActivationQuery {
        namespace: "ns".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.count_activations(&q).await.unwrap(), 1);
    assert!(s.activation("other-ns", "a1").await.unwrap().is_none());
}

async fn a_first_run_record_is_read_at_once_and_ordered_with_other_writes(s: &dyn Store) {
    s.put_pending(pending("n1")).await.unwrap();
    s.put_pending(pending("n2")).await.unwrap();
    s.put_new_activation(&encoded(record("n1", 5)))
        .await
        .unwrap();
    // Every read made after the write returned sees it (the embedded store has only logged
    // it so far).
    assert_eq!(s.activation("ns", "n1").await.unwrap().unwrap().start, 5);
    assert_eq!(
        pending_ids(s).await,
        ["n2"],
        "the record cleared its own journal entry only"
    );
    s.put_new_activation(&encoded(record("n2", 6)))
        .await
        .unwrap();
    let q = ActivationQuery {
        namespace: "ns".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.count_activations(&q).await.unwrap(), 2);
    assert_eq!(s.list_activations(&q).await.unwrap().len(), 2);
    // A write queued after a logged record applies after it.
    s.put_new_activation(&encoded(record("n3", 1)))
        .await
        .unwrap();
    assert_eq!(
        s.delete_activations_before(2).await.unwrap(),
        0,
        "records of an unknown namespace are kept"
    );
    s.create_namespace(&Namespace {
        name: "ns".into(),
        uuid: "u-ns".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    })
    .await
    .unwrap();
    s.put_new_activation(&encoded(record("n4", 1)))
        .await
        .unwrap();
    assert_eq!(
        s.delete_activations_before(2).await.unwrap(),
        2,
        "both early records, the logged one included"
    );
    assert!(s.activation("ns", "n4").await.unwrap().is_none());
}

async fn late_journaling_loses_to_an_existing_record(s: &dyn Store) {
    assert!(s.put_pending_unless_recorded(pending("b1")).await.unwrap());
    s.put_activation(&encoded(record("b1", 1))).await.unwrap();
    assert!(!s.put_pending_unless_recorded(pending("b1")).await.unwrap());
    assert!(s.pending().await.unwrap().is_empty());
}

async fn action_updates_are_compare_and_swap(s: &dyn Store) {
    let mut a = action();
    s.put_action(&a, Some(b"code"), PutMode::Create)
        .await
        .unwrap();
    assert!(matches!(
        s.put_action(&a, Some(b"code"), PutMode::Create).await,
        Err(StoreError::Conflict)
    ));
    a.version = "0.0.2".into();
    let replace = PutMode::Replace {
        expected_version: "0.0.1".into(),
    };
    s.put_action(&a, None, replace.clone()).await.unwrap();
    assert!(
        matches!(
            s.put_action(&a, None, replace).await,
            Err(StoreError::Conflict)
        ),
        "a second writer with the old version loses"
    );
    let got = s.action("ns", "x", true).await.unwrap().unwrap();
    assert_eq!(got.version, "0.0.2");
    assert_eq!(got.exec.code.as_deref(), Some("Y29kZQ=="), "code kept");
    assert_eq!(s.delete_action("ns", "x").await.unwrap().unwrap().name, "x");
    assert!(s.delete_action("ns", "x").await.unwrap().is_none());
}

async fn namespaces_and_keys(s: &dyn Store) {
    let ns = Namespace {
        name: "n".into(),
        uuid: "u".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    };
    s.create_namespace(&ns).await.unwrap();
    assert!(matches!(
        s.create_namespace(&ns).await,
        Err(StoreError::Conflict)
    ));
    s.set_namespace_key("n", "u2", "k2").await.unwrap();
    assert!(s.namespace_by_uuid("u").await.unwrap().is_none());
    assert_eq!(s.namespace_by_uuid("u2").await.unwrap().unwrap().key, "k2");
    assert!(matches!(
        s.set_namespace_key("missing", "a", "b").await,
        Err(StoreError::NotFound)
    ));
}

async fn activation_lists_filter_page_and_count(s: &dyn Store) {
    for (id, name, start) in [
        ("r1", "a", 10),
        ("r2", "b", 20),
        ("r3", "a", 30),
        ("r4", "a", 40),
    ] {
        let mut r = record(id, start);
        r.name = name.into();
        s.put_activation(&encoded(r)).await.unwrap();
    }
    let ids = |list: Vec<Box<serde_json::value::RawValue>>| -> Vec<String> {
        list.iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(r.get()).unwrap();
                v["activationId"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let all = ActivationQuery {
        namespace: "ns".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(s.list_activations(&all).await.unwrap()),
        ["r4", "r3", "r2", "r1"]
    );
    let page = ActivationQuery {
        skip: 1,
        limit: 2,
        ..all.clone()
    };
    assert_eq!(ids(s.list_activations(&page).await.unwrap()), ["r3", "r2"]);
    let named = ActivationQuery {
        name: Some("a".into()),
        since: Some(20),
        upto: Some(40),
        ..all.clone()
    };
    assert_eq!(ids(s.list_activations(&named).await.unwrap()), ["r4", "r3"]);
    assert_eq!(s.count_activations(&named).await.unwrap(), 2);
    let other = ActivationQuery {
        namespace: "other".into(),
        ..all
    };
    assert_eq!(s.count_activations(&other).await.unwrap(), 0);
    let stored = s.list_activations(&page).await.unwrap();
    let back: Activation = serde_json::from_str(stored[0].get()).unwrap();
    assert_eq!((back.activation_id.as_str(), back.start), ("r3", 30));
}

async fn deleting_a_namespace_deletes_its_actions_and_records(s: &dyn Store) {
    s.put_package(&package("pk", false), PutMode::Create)
        .await
        .unwrap();
    let ns = Namespace {
        name: "ns".into(),
        uuid: "u".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    };
    s.create_namespace(&ns).await.unwrap();
    s.put_activation(&encoded(record("d1", 1))).await.unwrap();
    let action = action();
    s.put_action(&action, Some(b"code"), PutMode::Create)
        .await
        .unwrap();
    s.delete_namespace("ns").await.unwrap();
    assert!(s.namespace("ns").await.unwrap().is_none());
    assert!(s.action("ns", "x", false).await.unwrap().is_none());
    assert!(s.package("ns", "pk").await.unwrap().is_none());
    assert!(s.activation("ns", "d1").await.unwrap().is_none());
    assert!(matches!(
        s.delete_namespace("ns").await,
        Err(StoreError::NotFound)
    ));
}

async fn retention_deletes_records_that_started_before_the_cutoff(s: &dyn Store) {
    for name in ["ns", "ns2"] {
        let ns = Namespace {
            name: name.into(),
            uuid: format!("u-{name}"),
            key: "k".into(),
            limits: NamespaceLimits::default(),
        };
        s.create_namespace(&ns).await.unwrap();
    }
    for (id, ns, start) in [
        ("old1", "ns", 100),
        ("old2", "ns2", 199),
        ("new", "ns", 200),
    ] {
        let mut r = record(id, start);
        r.namespace = ns.into();
        s.put_activation(&encoded(r)).await.unwrap();
    }
    assert_eq!(s.delete_activations_before(200).await.unwrap(), 2);
    assert!(s.activation("ns", "old1").await.unwrap().is_none());
    assert!(s.activation("ns2", "old2").await.unwrap().is_none());
    assert!(s.activation("ns", "new").await.unwrap().is_some());
    assert_eq!(s.delete_activations_before(200).await.unwrap(), 0);
}

/// Cluster-wide admission (PostgreSQL only): many tasks admitting at once, as several
/// controllers do, never get past either limit; a record frees its slot; an entry nobody
/// recorded is claimed once by a sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_counts_across_processes_and_stale_entries_are_claimed_once() {
    use gust_store::Admission;
    let Some(url) = gust_testkit::postgres_url() else {
        eprintln!("skipped: GUST_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = gust_testkit::Schema::create(&url);
    // Two stores: two processes' connection pools.
    let a = std::sync::Arc::new(PostgresStore::connect(&schema.url).await.unwrap());
    let b = std::sync::Arc::new(PostgresStore::connect(&schema.url).await.unwrap());
    let limits = NamespaceLimits {
        invocations_per_minute: 1000,
        concurrent_invocations: 5,
        ..Default::default()
    };
    let minute = 60_000 * 1_000_000;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let p = pending(&format!("c{i:02}"));
            store.admit("ns", &limits, minute, p).await.unwrap()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Admission::Admitted => admitted += 1,
            Admission::Concurrent { count } => assert_eq!(count, 5),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 5, "five slots, whichever process asked");
    assert_eq!(
        a.admit("other", &limits, minute, pending("o1"))
            .await
            .unwrap(),
        Admission::Admitted,
        "namespaces are counted apart"
    );

    // A record frees its slot.
    let journaled: Vec<String> = pending_ids(a.as_ref())
        .await
        .into_iter()
        .filter(|id| id.starts_with('c'))
        .collect();
    assert_eq!(journaled.len(), 5);
    let mut r = record(&journaled[0], 1);
    r.namespace = "ns".into();
    assert!(a.put_activation(&encoded(r)).await.unwrap());
    assert_eq!(
        b.admit("ns", &limits, minute, pending("d1")).await.unwrap(),
        Admission::Admitted
    );
    assert!(matches!(
        b.admit("ns", &limits, minute, pending("d2")).await.unwrap(),
        Admission::Concurrent { count: 5 }
    ));
    // An entry that was not published after all is forgotten: its slot is free again.
    b.forget_pending("d1").await.unwrap();
    assert_eq!(
        a.admit("ns", &limits, minute, pending("d3")).await.unwrap(),
        Admission::Admitted
    );

    // Per minute: counted per namespace and minute.
    let tight = NamespaceLimits {
        invocations_per_minute: 2,
        concurrent_invocations: 100,
        ..Default::default()
    };
    let next = minute + 60_000;
    assert_eq!(
        a.admit("m", &tight, next, pending("m1")).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        b.admit("m", &tight, next, pending("m2")).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        a.admit("m", &tight, next, pending("m3")).await.unwrap(),
        Admission::PerMinute { count: 2 }
    );
    assert_eq!(
        a.admit("m", &tight, next + 60_000, pending("m4"))
            .await
            .unwrap(),
        Admission::Admitted,
        "a new minute"
    );

    // Stale entries (all were accepted at 1): claimed by one sweep, which marks them
    // accepted at its own time, not by a second sweep running right after.
    let first = a.claim_stale_pending(1000, 5000).await.unwrap();
    let second = b.claim_stale_pending(1000, 5000).await.unwrap();
    assert_eq!(first.len(), 9, "{first:?}");
    assert!(first.iter().all(|p| p.accepted_at == 5000));
    assert!(second.is_empty(), "{second:?}");
}

/// Trigger fires per minute, counted by two processes on one PostgreSQL.
#[tokio::test]
async fn fires_are_counted_per_namespace_and_minute_across_processes() {
    let Some(url) = gust_testkit::postgres_url() else {
        eprintln!("skipped: GUST_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = gust_testkit::Schema::create(&url);
    let a = PostgresStore::connect(&schema.url).await.unwrap();
    let b = PostgresStore::connect(&schema.url).await.unwrap();
    let minute = 60_000 * 1_000_000;
    let mut admitted = 0;
    for i in 0..5 {
        let store = if i % 2 == 0 { &a } else { &b };
        if store.admit_fire("ns", 3, minute).await.unwrap() == gust_store::Admission::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(
        a.admit_fire("ns", 3, minute + 1).await.unwrap(),
        gust_store::Admission::PerMinute { count: 3 }
    );
    assert_eq!(
        b.admit_fire("other", 3, minute).await.unwrap(),
        gust_store::Admission::Admitted,
        "namespaces are counted apart"
    );
    assert_eq!(
        b.admit_fire("ns", 3, minute + 60_000).await.unwrap(),
        gust_store::Admission::Admitted,
        "a new minute starts over"
    );
    let e = SqliteStore::open(
        tempfile::tempdir().unwrap().path().join("g.db"),
        Durability::Process,
    )
    .unwrap()
    .admit_fire("ns", 3, 0)
    .await;
    assert!(e.is_err(), "the embedded store counts fires in the process");
}

#[tokio::test]
async fn the_embedded_store_refuses_cluster_admission() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("gust.db"), Durability::Process).unwrap();
    let e = store
        .admit("ns", &NamespaceLimits::default(), 0, pending("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("PostgreSQL"), "{e}");
}

/// TLS to PostgreSQL (`sslmode=require`): the server's certificate is checked, so a server
/// whose certificate nobody vouches for is refused, and one vouched for by the CA file given
/// is accepted. Runs when the test server has TLS on with a certificate for `localhost`.
#[tokio::test]
async fn postgres_over_tls_checks_the_server_certificate() {
    let Some(url) = gust_testkit::postgres_url() else {
        eprintln!("skipped: GUST_TEST_POSTGRES_URL is not set");
        return;
    };
    let plain = PostgresStore::connect(&url).await.unwrap();
    let (ssl, cert, used) = plain.server_tls().await.unwrap();
    assert!(!used, "plain unless asked for");
    let readable = std::fs::read(&cert).is_ok();
    if !ssl || !readable {
        eprintln!("skipped: the PostgreSQL server has no TLS certificate this test can read");
        return;
    }
    let Some(rest) = url.split_once("@").map(|(_, r)| r) else {
        eprintln!("skipped: GUST_TEST_POSTGRES_URL has no user@host");
        return;
    };
    let user = url.split_once("://").unwrap().1.split_once('@').unwrap().0;
    let port_db = rest.split_once(':').map_or("5432/test", |(_, p)| p);
    let tls_url = format!("postgres://{user}@localhost:{port_db}?sslmode=require");
    // The test server's certificate is self-signed: trusted only if the system trusts it
    // (Debian puts its "snakeoil" certificate in /etc/ssl/certs) or the CA file names it.
    if let Err(e) = PostgresStore::connect(&tls_url).await {
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    }
    let store = PostgresStore::connect_with_ca(&tls_url, Some(std::path::Path::new(&cert)))
        .await
        .unwrap();
    assert!(
        store.server_tls().await.unwrap().2,
        "the connection uses TLS"
    );
    // A certificate for another name is refused.
    let other = tls_url.replace("localhost", "127.0.0.1");
    let e = PostgresStore::connect_with_ca(&other, Some(std::path::Path::new(&cert)))
        .await
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

/// Site `ns/name` with one file per `(path, hash)`.
fn site(name: &str, files: &[(&str, &str)]) -> Site {
    Site {
        namespace: "ns".into(),
        name: name.into(),
        files: files
            .iter()
            .map(|(p, h)| {
                let file = SiteFile {
                    hash: h.to_string(),
                    size: 1,
                    content_type: "text/plain".into(),
                };
                (p.to_string(), file)
            })
            .collect(),
        spa: false,
        cache_control: None,
        updated: 0,
    }
}

async fn sites_name_blobs_and_sweeps_keep_what_is_named(s: &dyn Store) {
    s.put_site_blob("ns", "aa", b"one".to_vec()).await.unwrap();
    s.put_site_blob("ns", "bb", b"second".to_vec())
        .await
        .unwrap();
    // The same content again is kept once; another namespace's blobs are its own.
    s.put_site_blob("ns", "aa", b"one".to_vec()).await.unwrap();
    s.put_site_blob("other", "cc", b"x".to_vec()).await.unwrap();
    let sizes = s
        .touch_site_blobs("ns", &["aa".into(), "bb".into(), "cc".into(), "dd".into()])
        .await
        .unwrap();
    assert_eq!(sizes.len(), 2);
    assert_eq!(sizes["aa"], 3);
    assert_eq!(sizes["bb"], 6);
    assert_eq!(s.site_blob("ns", "aa").await.unwrap().unwrap(), b"one");
    assert_eq!(s.site_blob_bytes("ns").await.unwrap(), 9);
    assert_eq!(s.site_blob_bytes("nobody").await.unwrap(), 0);
    assert!(s.site_blob("ns", "cc").await.unwrap().is_none());

    s.put_site(&site("web", &[("index.html", "aa")]))
        .await
        .unwrap();
    s.put_site(&site("docs", &[("a/b.txt", "aa")]))
        .await
        .unwrap();
    assert_eq!(s.site("ns", "web").await.unwrap().unwrap().files.len(), 1);
    let names: Vec<String> = s
        .list_sites("ns")
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["docs", "web"]);
    // Replacing a site switches every file at once.
    s.put_site(&site("web", &[("index.html", "bb")]))
        .await
        .unwrap();
    assert_eq!(
        s.site("ns", "web").await.unwrap().unwrap().files["index.html"].hash,
        "bb"
    );

    // A sweep leaves recently used blobs, and old ones that a site names.
    assert_eq!(s.sweep_site_blobs("ns", 0).await.unwrap(), 0);
    s.delete_site("ns", "docs").await.unwrap().unwrap();
    assert!(s.delete_site("ns", "docs").await.unwrap().is_none());
    let later = gust_model::time::now_ms() + 1;
    assert_eq!(s.sweep_site_blobs("ns", later).await.unwrap(), 1);
    assert!(s.site_blob("ns", "aa").await.unwrap().is_none());
    assert!(s.site_blob("ns", "bb").await.unwrap().is_some());
    assert!(s.site_blob("other", "cc").await.unwrap().is_some());

    // Deleting the namespace takes its sites and blobs.
    s.create_namespace(&Namespace {
        name: "ns".into(),
        uuid: "u-ns".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    })
    .await
    .unwrap();
    s.delete_namespace("ns").await.unwrap();
    assert!(s.site("ns", "web").await.unwrap().is_none());
    assert!(s.site_blob("ns", "bb").await.unwrap().is_none());
}

/// Route `method base_path path` of namespace `ns` to `action`.
fn route(base_path: &str, path: &str, method: &str, action: &str) -> Route {
    Route {
        namespace: "ns".into(),
        base_path: base_path.into(),
        path: path.into(),
        method: method.into(),
        action: action.into(),
        response_type: "json".into(),
        cors: true,
        rate_limit: None,
        updated: 0,
    }
}

fn route_keys(routes: &[Route]) -> Vec<String> {
    routes
        .iter()
        .map(|r| format!("{} {}{} {}", r.method, r.base_path, r.path, r.action))
        .collect()
}

async fn routes_are_replaced_listed_and_deleted_by_api_path_and_method(s: &dyn Store) {
    for r in [
        route("/shop", "/items", "GET", "/ns/list"),
        route("/shop", "/items", "POST", "/ns/add"),
        route("/shop", "/items/{id}", "GET", "/ns/get"),
        route("/blog", "/", "GET", "/ns/blog"),
    ] {
        s.put_route(&r).await.unwrap();
    }
    // The same base path, path and method again replaces the route.
    s.put_route(&route("/shop", "/items", "GET", "/ns/list2"))
        .await
        .unwrap();
    // Another namespace's routes are its own.
    let mut theirs = route("/shop", "/items", "GET", "/other/list");
    theirs.namespace = "other".into();
    s.put_route(&theirs).await.unwrap();

    assert_eq!(
        route_keys(&s.list_routes("ns", None).await.unwrap()),
        [
            "GET /blog/ /ns/blog",
            "GET /shop/items /ns/list2",
            "POST /shop/items /ns/add",
            "GET /shop/items/{id} /ns/get",
        ]
    );
    assert_eq!(s.list_routes("ns", Some("/shop")).await.unwrap().len(), 3);
    assert!(s.list_routes("ns", Some("/none")).await.unwrap().is_empty());

    // By method, by path, then the whole API.
    assert_eq!(
        s.delete_routes("ns", "/shop", Some("/items"), Some("POST"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.delete_routes("ns", "/shop", Some("/items"), Some("POST"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.delete_routes("ns", "/shop", Some("/items/{id}"), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.delete_routes("ns", "/shop", None, None).await.unwrap(), 1);
    assert_eq!(
        route_keys(&s.list_routes("ns", None).await.unwrap()),
        ["GET /blog/ /ns/blog"]
    );
    assert_eq!(s.list_routes("other", None).await.unwrap().len(), 1);

    // Deleting the namespace takes its routes.
    s.create_namespace(&Namespace {
        name: "ns".into(),
        uuid: "u-ns".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    })
    .await
    .unwrap();
    s.delete_namespace("ns").await.unwrap();
    assert!(s.list_routes("ns", None).await.unwrap().is_empty());
}

/// Names whose order differs between byte order and a language's collation: upper before
/// lower case, `_`, `-` and `.` by their code points, `/` (a package's actions) before `0`.
const UNSORTED: [&str; 7] = ["b", "a-b", "B", "a_b", "a.b", "ab", "a"];
const IN_BYTE_ORDER: [&str; 7] = ["B", "a", "a-b", "a.b", "a_b", "ab", "b"];

async fn every_list_is_in_byte_order(s: &dyn Store) {
    for (i, name) in UNSORTED.iter().enumerate() {
        s.create_namespace(&Namespace {
            name: name.to_string(),
            uuid: format!("u{i}"),
            key: "k".into(),
            limits: NamespaceLimits::default(),
        })
        .await
        .unwrap();
        let mut a = action();
        a.name = name.to_string();
        s.put_action(&a, Some(b"code"), PutMode::Create)
            .await
            .unwrap();
        s.put_package(&package(name, false), PutMode::Create)
            .await
            .unwrap();
        s.put_route(&route(&format!("/{name}"), "/", "GET", "/ns/x"))
            .await
            .unwrap();
        s.put_site(&site(name, &[])).await.unwrap();
    }
    let namespaces: Vec<String> = s
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(namespaces, IN_BYTE_ORDER);
    let actions: Vec<String> = s
        .list_actions("ns", None, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(actions, IN_BYTE_ORDER);
    let packages: Vec<String> = s
        .list_packages("ns", false, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(packages, IN_BYTE_ORDER);
    let bases: Vec<String> = s
        .list_routes("ns", None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.base_path[1..].to_string())
        .collect();
    assert_eq!(bases, IN_BYTE_ORDER);
    let sites: Vec<String> = s
        .list_sites("ns")
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(sites, IN_BYTE_ORDER);

    // A package's actions are exactly the names under `p/`, whatever sorts near them.
    for name in ["p/x", "p/y", "p-z", "p0", "p.a", "pa", "p"] {
        let mut a = action();
        a.namespace = "pk".into();
        a.name = name.to_string();
        s.put_action(&a, Some(b"code"), PutMode::Create)
            .await
            .unwrap();
    }
    let mut p = package("p", false);
    p.namespace = "pk".into();
    s.put_package(&p, PutMode::Create).await.unwrap();
    let inside: Vec<String> = s
        .list_actions("pk", Some("p"), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(inside, ["p/x", "p/y"]);
    assert_eq!(s.count_actions("pk", Some("p")).await.unwrap(), 2);
    s.delete_package("pk", "p").await.unwrap().unwrap();
    let left: Vec<String> = s
        .list_actions("pk", None, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(left, ["p", "p-z", "p.a", "p0", "pa"]);

    // Records that started at the same time are listed by id, in byte order too.
    for id in ["b1", "B1", "a1"] {
        let mut r = record(id, 5);
        r.namespace = "ties".into();
        s.put_activation(&encoded(r)).await.unwrap();
    }
    let q = ActivationQuery {
        namespace: "ties".into(),
        limit: 10,
        ..Default::default()
    };
    let ids: Vec<String> = s
        .list_activations(&q)
        .await
        .unwrap()
        .iter()
        .map(|raw| {
            let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            v["activationId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids, ["B1", "a1", "b1"]);
}

fn trigger(name: &str) -> gust_model::Trigger {
    gust_model::Trigger {
        namespace: "ns".into(),
        name: name.into(),
        version: "0.0.1".into(),
        publish: false,
        parameters: Vec::new(),
        annotations: Vec::new(),
        limits: Default::default(),
        updated: 1,
    }
}

fn rule(name: &str, trigger: &str) -> gust_model::Rule {
    gust_model::Rule {
        namespace: "ns".into(),
        name: name.into(),
        version: "0.0.1".into(),
        publish: false,
        annotations: Vec::new(),
        trigger: gust_model::EntityPath {
            path: "ns".into(),
            name: trigger.into(),
        },
        action: gust_model::EntityPath {
            path: "other/pkg".into(),
            name: "a".into(),
        },
        status: gust_model::RuleStatus::Active,
        updated: 1,
    }
}

async fn triggers_and_rules_are_compare_and_swap_and_rules_are_found_by_trigger(s: &dyn Store) {
    s.put_trigger(&trigger("t"), PutMode::Create).await.unwrap();
    assert!(matches!(
        s.put_trigger(&trigger("t"), PutMode::Create).await,
        Err(StoreError::Conflict)
    ));
    let mut v2 = trigger("t");
    v2.version = "0.0.2".into();
    let stale = PutMode::Replace {
        expected_version: "0.0.9".into(),
    };
    assert!(matches!(
        s.put_trigger(&v2, stale).await,
        Err(StoreError::Conflict)
    ));
    let current = PutMode::Replace {
        expected_version: "0.0.1".into(),
    };
    s.put_trigger(&v2, current).await.unwrap();
    assert_eq!(
        s.trigger("ns", "t").await.unwrap().unwrap().version,
        "0.0.2"
    );
    s.put_trigger(&trigger("u"), PutMode::Create).await.unwrap();
    assert_eq!(s.count_triggers("ns").await.unwrap(), 2);
    let names: Vec<String> = s
        .list_triggers("ns", 1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["u"]);

    for (r, t) in [("r2", "t"), ("r1", "t"), ("r3", "u")] {
        s.put_rule(&rule(r, t), PutMode::Create).await.unwrap();
    }
    let of_t: Vec<String> = s
        .rules_of_trigger("ns", "/ns/t")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(of_t, ["r1", "r2"]);
    // Moving a rule to another trigger moves it in the index too.
    let mut moved = rule("r3", "t");
    moved.version = "0.0.2".into();
    let mode = PutMode::Replace {
        expected_version: "0.0.1".into(),
    };
    s.put_rule(&moved, mode).await.unwrap();
    assert_eq!(s.rules_of_trigger("ns", "/ns/t").await.unwrap().len(), 3);
    assert!(s.rules_of_trigger("ns", "/ns/u").await.unwrap().is_empty());
    assert_eq!(s.count_rules("ns").await.unwrap(), 3);
    assert_eq!(
        s.rule("ns", "r3").await.unwrap().unwrap().action.path,
        "other/pkg"
    );

    // A trigger's delete takes its schedule, and leaves its rules.
    s.put_schedule(&schedule("t", Some(10))).await.unwrap();
    assert_eq!(
        s.delete_trigger("ns", "t").await.unwrap().unwrap().name,
        "t"
    );
    assert!(s.schedule("ns", "t").await.unwrap().is_none());
    assert!(s.delete_trigger("ns", "t").await.unwrap().is_none());
    assert_eq!(s.rules_of_trigger("ns", "/ns/t").await.unwrap().len(), 3);
    assert_eq!(s.delete_rule("ns", "r1").await.unwrap().unwrap().name, "r1");
    assert!(s.delete_rule("ns", "r1").await.unwrap().is_none());
}

fn schedule(trigger: &str, next_ms: Option<u64>) -> gust_model::Schedule {
    gust_model::Schedule {
        namespace: "ns".into(),
        trigger: trigger.into(),
        spec: gust_model::ScheduleSpec {
            timing: gust_model::Timing::Interval {
                minutes: 1,
                origin_ms: 0,
            },
            payload: Default::default(),
            start_ms: None,
            stop_ms: None,
            feed: "/whisk.system/alarms/interval".into(),
            config: Default::default(),
            paused: false,
            changed_ms: 0,
        },
        next_ms,
        pending_ms: None,
        owner: None,
        lease_ms: 0,
        fired: 0,
    }
}

fn claim<'a>(owner: &'a str, tick: u64, next: Option<u64>, now: u64) -> TickClaim<'a> {
    TickClaim {
        namespace: "ns",
        trigger: "t",
        tick_ms: tick,
        next_ms: next,
        owner,
        now_ms: now,
        lease_ms: now + 5_000,
    }
}

async fn a_schedule_tick_is_claimed_once_and_a_dead_owners_pending_tick_adopted(s: &dyn Store) {
    s.put_schedule(&schedule("t", Some(60_000))).await.unwrap();
    // (Times a few ms apart may compare either way: PostgreSQL shifts them by the measured
    // offset to its clock.)
    assert!(s.due_schedules("a", 59_000, 10).await.unwrap().is_empty());
    assert_eq!(s.due_schedules("a", 61_000, 10).await.unwrap().len(), 1);
    assert_eq!(s.earliest_tick("a", 0).await.unwrap(), Some(60_000));
    // One of two processes claims the tick.
    assert!(
        s.claim_tick(&claim("a", 60_000, Some(120_000), 60_001))
            .await
            .unwrap()
    );
    assert!(
        !s.claim_tick(&claim("b", 60_000, Some(120_000), 60_001))
            .await
            .unwrap()
    );
    let got = s.schedule("ns", "t").await.unwrap().unwrap();
    assert_eq!(
        (got.next_ms, got.pending_ms, got.owner.as_deref()),
        (Some(120_000), Some(60_000), Some("a"))
    );
    // While `a`'s lease holds, `b` sees nothing due and cannot adopt the pending tick.
    assert!(s.due_schedules("b", 60_002, 10).await.unwrap().is_empty());
    assert!(
        !s.adopt_pending(&claim("b", 60_000, None, 60_002))
            .await
            .unwrap()
    );
    // `a` dies; its lease runs out: `b` adopts the pending tick, fires it, clears it.
    let due = s.due_schedules("b", 70_000, 10).await.unwrap();
    assert_eq!(due[0].pending_ms, Some(60_000));
    assert!(
        s.adopt_pending(&claim("b", 60_000, None, 70_000))
            .await
            .unwrap()
    );
    s.finish_tick("ns", "t", 60_000).await.unwrap();
    let got = s.schedule("ns", "t").await.unwrap().unwrap();
    assert_eq!(
        (got.pending_ms, got.fired, got.owner.as_deref()),
        (None, 1, Some("b"))
    );
    // `b` renews; `a` (back) cannot take the next tick from it.
    assert_eq!(s.renew_schedules("b", 200_000).await.unwrap(), 1);
    assert!(
        !s.claim_tick(&claim("a", 120_000, Some(180_000), 120_001))
            .await
            .unwrap()
    );
    assert!(
        s.claim_tick(&claim("b", 120_000, None, 120_001))
            .await
            .unwrap()
    );
    s.finish_tick("ns", "t", 120_000).await.unwrap();
    // Ended: nothing due any more; a release drops every owner.
    assert!(
        s.due_schedules("b", u64::MAX >> 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.release_schedules().await.unwrap();
    assert_eq!(s.schedule("ns", "t").await.unwrap().unwrap().owner, None);
    // A backlog skipped: the next tick moves without a pending one, once.
    s.put_schedule(&schedule("t", Some(300_000))).await.unwrap();
    assert!(
        s.skip_ticks(&claim("b", 300_000, Some(900_000), 1_000_000))
            .await
            .unwrap()
    );
    assert!(
        !s.skip_ticks(&claim("b", 300_000, Some(900_000), 1_000_000))
            .await
            .unwrap()
    );
    let got = s.schedule("ns", "t").await.unwrap().unwrap();
    assert_eq!((got.next_ms, got.pending_ms), (Some(900_000), None));
    assert!(s.delete_schedule("ns", "t").await.unwrap());
    assert!(!s.delete_schedule("ns", "t").await.unwrap());
}

/// A subscription of trigger `ns/trigger` to source `source`.
fn subscription(trigger: &str, listens: bool, changed_ms: u64) -> gust_model::Subscription {
    let mut config = serde_json::Map::new();
    config.insert("topic".into(), serde_json::json!("t"));
    gust_model::Subscription {
        namespace: "ns".into(),
        trigger: trigger.into(),
        spec: gust_model::SubscriptionSpec {
            source: "mqtt".into(),
            feed: "subscribe".into(),
            config,
            listens,
            paused: false,
            changed_ms,
        },
        owner: None,
        lease_ms: 0,
        status: serde_json::Map::new(),
    }
}

async fn a_subscription_has_one_owner_at_a_time_and_goes_with_its_trigger(s: &dyn Store) {
    s.put_trigger(&trigger("q"), PutMode::Create).await.unwrap();
    s.put_subscription(&subscription("q", true, 1))
        .await
        .unwrap();
    s.put_subscription(&subscription("hook", false, 1))
        .await
        .unwrap();
    // Only a connected subscription runs; one of two processes claims it.
    let runnable = s.runnable_subscriptions("a", 10_000).await.unwrap();
    assert_eq!(runnable.len(), 1);
    assert_eq!(runnable[0].trigger, "q");
    assert!(
        s.claim_subscription("ns", "q", "a", 10_000, 15_000)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_subscription("ns", "q", "b", 10_001, 15_001)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_subscription("ns", "hook", "a", 10_000, 15_000)
            .await
            .unwrap()
    );
    assert!(
        s.runnable_subscriptions("b", 10_002)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.runnable_subscriptions("a", 10_002).await.unwrap().len(),
        1
    );
    // `a` renews; then dies: once its lease ran out `b` claims it.
    assert_eq!(s.renew_subscriptions("a", 20_000).await.unwrap(), 1);
    assert!(
        !s.claim_subscription("ns", "q", "b", 16_000, 21_000)
            .await
            .unwrap()
    );
    assert!(
        s.claim_subscription("ns", "q", "b", 30_000, 35_000)
            .await
            .unwrap()
    );
    // A status is kept until the subscription is written again; a pause stops it running.
    let mut status = serde_json::Map::new();
    status.insert("connected".into(), serde_json::json!(true));
    s.set_subscription_status("ns", "q", &status).await.unwrap();
    let got = s.subscription("ns", "q").await.unwrap().unwrap();
    assert_eq!(
        (got.owner.as_deref(), got.status.get("connected")),
        (Some("b"), Some(&serde_json::json!(true)))
    );
    let mut paused = subscription("q", true, 2);
    paused.spec.paused = true;
    s.put_subscription(&paused).await.unwrap();
    let got = s.subscription("ns", "q").await.unwrap().unwrap();
    assert!(got.status.is_empty() && got.spec.paused && got.spec.changed_ms == 2);
    assert!(
        s.runnable_subscriptions("b", 30_001)
            .await
            .unwrap()
            .is_empty()
    );
    // Deleting the trigger deletes its subscription.
    s.delete_trigger("ns", "q").await.unwrap();
    assert!(s.subscription("ns", "q").await.unwrap().is_none());
    assert!(s.delete_subscription("ns", "hook").await.unwrap());
    assert!(!s.delete_subscription("ns", "hook").await.unwrap());
}

/// The mapping of rule `ns/rule` on trigger `/ns/s`.
fn mapping(rule: &str, checkpoint: u64) -> gust_model::Mapping {
    let mut state = serde_json::Map::new();
    state.insert("state".into(), serde_json::json!("running"));
    state.insert("batches".into(), serde_json::json!(checkpoint));
    gust_model::Mapping {
        namespace: "ns".into(),
        rule: rule.into(),
        trigger: "/ns/s".into(),
        checkpoint,
        state,
        updated_ms: checkpoint.saturating_add(1_000),
    }
}

async fn a_mapping_is_upserted_listed_by_rule_and_goes_with_its_rule_and_namespace(s: &dyn Store) {
    let ns = Namespace {
        name: "ns".into(),
        uuid: "u".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    };
    s.create_namespace(&ns).await.unwrap();
    for name in ["b", "a", "B", "c"] {
        s.put_rule(&rule(name, "s"), PutMode::Create).await.unwrap();
    }
    // No rule, no mapping: a runner that outlived its rule writes nothing.
    assert!(!s.put_mapping(&mapping("gone", 1)).await.unwrap());
    assert!(s.mapping("ns", "gone").await.unwrap().is_none());
    assert!(s.mappings("ns").await.unwrap().is_empty());

    for name in ["b", "a", "B", "c"] {
        assert!(s.put_mapping(&mapping(name, 1)).await.unwrap());
    }
    // An upsert replaces every column; the largest sequences survive the round trip.
    let mut latest = mapping("a", u64::MAX);
    latest.trigger = "/ns/s2".into();
    latest
        .state
        .insert("lastError".into(), serde_json::json!({"message": "x"}));
    assert!(s.put_mapping(&latest).await.unwrap());
    assert_eq!(s.mapping("ns", "a").await.unwrap().unwrap(), latest);
    let listed = s.mappings("ns").await.unwrap();
    let rules: Vec<&str> = listed.iter().map(|m| m.rule.as_str()).collect();
    assert_eq!(rules, ["B", "a", "b", "c"]);
    assert_eq!(listed[1], latest);
    assert_eq!(listed[2], mapping("b", 1));
    assert!(s.mappings("other").await.unwrap().is_empty());
    assert!(s.mapping("other", "a").await.unwrap().is_none());

    // Deleting a mapping keeps its rule; deleting a rule deletes its mapping.
    assert!(s.delete_mapping("ns", "c").await.unwrap());
    assert!(!s.delete_mapping("ns", "c").await.unwrap());
    assert!(s.rule("ns", "c").await.unwrap().is_some());
    s.delete_rule("ns", "b").await.unwrap().unwrap();
    assert!(s.mapping("ns", "b").await.unwrap().is_none());
    assert!(!s.put_mapping(&mapping("b", 2)).await.unwrap());
    let rules: Vec<String> = s
        .mappings("ns")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.rule)
        .collect();
    assert_eq!(rules, ["B", "a"]);

    // Deleting the namespace deletes the rest.
    s.delete_namespace("ns").await.unwrap();
    assert!(s.mappings("ns").await.unwrap().is_empty());
    assert!(s.mapping("ns", "a").await.unwrap().is_none());
}

async fn is_accepted_sees_the_journal_and_the_records(s: &dyn Store) {
    let id = "0123456789abcdef0123456789abcdef";
    assert!(!s.is_accepted("ns", id).await.unwrap());
    s.put_pending(pending(id)).await.unwrap();
    assert!(s.is_accepted("ns", id).await.unwrap());
    // The record clears the journal entry and is found in its own namespace only.
    let encoded = EncodedActivation::new(&record(id, 1)).unwrap();
    s.put_activation(&encoded).await.unwrap();
    assert!(s.is_accepted("ns", id).await.unwrap());
    assert!(!s.is_accepted("other", id).await.unwrap());
}

/// Reads `q`'s records written after `from` until `n` have come (a PostgreSQL reader waits for
/// the transactions of other sessions running beside it to end), then once more to see that
/// nothing else comes; returns their ids in order and the next position.
async fn written(
    s: &dyn Store,
    q: &ActivationQuery,
    from: &WritePosition,
    n: usize,
) -> (Vec<String>, WritePosition) {
    let mut ids = Vec::new();
    let mut at = from.clone();
    for round in 0.. {
        let (docs, next) = s.activations_written_after(q, &at).await.unwrap();
        at = next;
        ids.extend(docs.iter().map(|(id, d)| {
            let v: serde_json::Value = serde_json::from_str(d.get()).unwrap();
            assert_eq!(
                v["activationId"],
                id.as_str(),
                "each record with its own id"
            );
            id.clone()
        }));
        if ids.len() >= n && docs.is_empty() {
            break;
        }
        assert!(round < 400, "only {ids:?} of {n} records came");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    (ids, at)
}

async fn records_are_read_in_the_order_they_were_written(s: &dyn Store) {
    let start = s.write_position().await.unwrap();
    let q = ActivationQuery {
        namespace: "ns".into(),
        limit: 10,
        ..Default::default()
    };
    // The embedded store signals its record writes (a reader waits on that instead of
    // polling); PostgreSQL, written by other processes too, has no signal.
    let mut signal = s.records_written();
    if let Some(signal) = &mut signal {
        signal.borrow_and_update();
    }
    // The second started earlier than the first but was written later: it still comes
    // after it, and another namespace's record does not come at all.
    s.put_activation(&encoded(record("w1", 50))).await.unwrap();
    if let Some(signal) = &mut signal {
        assert!(signal.has_changed().unwrap(), "a write is signalled");
    }
    let mut other = record("w2", 60);
    other.namespace = "other".into();
    s.put_activation(&encoded(other)).await.unwrap();
    if let Some(signal) = &mut signal {
        signal.borrow_and_update();
    }
    s.put_new_activation(&encoded(record("w3", 10)))
        .await
        .unwrap();
    if let Some(signal) = &mut signal {
        assert!(signal.has_changed().unwrap(), "a logged write is signalled");
    }
    let (ids, after) = written(s, &q, &start, 2).await;
    assert_eq!(ids, ["w1", "w3"]);
    assert!(
        s.activations_written_after(&q, &after)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // A name filter; then pages of one record each from the start.
    let mut b = record("w4", 70);
    b.name = "b".into();
    s.put_activation(&encoded(b)).await.unwrap();
    let named = ActivationQuery {
        name: Some("b".into()),
        ..q.clone()
    };
    assert_eq!(written(s, &named, &after, 1).await.0, ["w4"]);
    let one = ActivationQuery {
        limit: 1,
        ..q.clone()
    };
    let mut at = start.clone();
    let mut paged = Vec::new();
    for round in 0.. {
        if paged.len() == 3 {
            break;
        }
        assert!(round < 400, "only {paged:?} came");
        let (docs, next) = s.activations_written_after(&one, &at).await.unwrap();
        assert!(docs.len() <= 1);
        if docs.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        paged.extend(docs.iter().map(|(id, d)| {
            let record = serde_json::from_str::<Activation>(d.get()).unwrap();
            assert_eq!(&record.activation_id, id);
            record.activation_id
        }));
        at = next;
    }
    assert_eq!(paged, ["w1", "w3", "w4"]);

    // Resuming after a record gives what was written after it; an unknown id, or another
    // namespace's, has no position.
    let after_w1 = s.write_position_of("ns", "w1").await.unwrap().unwrap();
    assert_eq!(written(s, &q, &after_w1, 2).await.0, ["w3", "w4"]);
    assert!(s.write_position_of("ns", "nope").await.unwrap().is_none());
    assert!(s.write_position_of("ns", "w2").await.unwrap().is_none());

    // A position taken now is after every record written so far.
    let now = s.write_position().await.unwrap();
    let (docs, now) = s.activations_written_after(&q, &now).await.unwrap();
    assert!(docs.is_empty(), "{docs:?}");

    // Deleting a namespace whose record is the newest does not hide a record written
    // after it from a reader that had passed that record.
    s.create_namespace(&Namespace {
        name: "gone".into(),
        uuid: "g".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    })
    .await
    .unwrap();
    let mut g = record("g1", 80);
    g.namespace = "gone".into();
    s.put_activation(&encoded(g)).await.unwrap();
    let (ids, past_g) = written(s, &q, &now, 0).await;
    assert!(ids.is_empty(), "{ids:?}");
    s.delete_namespace("gone").await.unwrap();
    s.put_activation(&encoded(record("w6", 90))).await.unwrap();
    let (ids, past_w6) = written(s, &q, &past_g, 1).await;
    assert_eq!(ids, ["w6"]);

    // So does retention deleting every record, the newest included.
    s.create_namespace(&Namespace {
        name: "ns".into(),
        uuid: "n".into(),
        key: "k".into(),
        limits: NamespaceLimits::default(),
    })
    .await
    .unwrap();
    assert_eq!(s.delete_activations_before(1_000).await.unwrap(), 4);
    assert!(s.activation("ns", "w6").await.unwrap().is_none());
    s.put_activation(&encoded(record("w7", 100))).await.unwrap();
    assert_eq!(written(s, &q, &past_w6, 1).await.0, ["w7"]);
}
