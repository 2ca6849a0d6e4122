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

// Durable workflows and async delivery (decision 0028).

on_every_backend!(
    workflows_are_compare_and_swap_and_listed_by_name,
    an_execution_is_created_once_per_name_and_listed_newest_first,
    a_commit_writes_everything_or_nothing,
    history_pages_both_ways_and_large_payloads_come_back_whole,
    runs_are_claimed_renewed_and_released_on_leases,
    signals_wait_in_a_running_executions_inbox_until_consumed,
    delivery_configs_are_upserted_read_and_deleted,
    a_delivery_is_taken_by_compare_and_swap_and_finished_once,
    dead_letters_are_listed_newest_first_and_deleted,
    an_idempotency_key_names_one_activation_until_it_expires,
    an_idempotency_key_is_taken_over_by_compare_and_swap_and_swept_when_expired,
    deleting_a_namespace_deletes_its_workflows_and_deliveries,
    racing_writers_of_one_run_key_or_name_have_one_winner,
);

use gust_model::{
    DeadLetter, Delivery, DeliveryConfig, Execution, ExecutionStatus, HistoryEvent, RunState,
    Workflow,
};
use gust_store::{ExecutionQuery, IdempotencyClaim, RunCommit};
use serde_json::json;

/// A claim of an idempotency key for activation `id` at `now` until `expires`.
fn key_claim(id: &str, now: u64, expires: u64) -> IdempotencyClaim {
    IdempotencyClaim {
        activation_id: id.into(),
        action: "/ns/a".into(),
        digest: format!("digest-of-{id}"),
        claimed_ms: now,
        expires_ms: expires,
    }
}

/// Longer than a history row keeps (8 KiB).
fn large(fill: char) -> String {
    std::iter::repeat_n(fill, 9 * 1024).collect()
}

fn workflow(name: &str, version: &str) -> Workflow {
    Workflow {
        namespace: "ns".into(),
        name: name.into(),
        version: version.into(),
        definition: json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        updated: 1,
    }
}

/// Execution `id` of workflow `ns/wf`, named `name`, started at `start`.
fn execution(id: &str, name: &str, start: u64) -> Execution {
    Execution {
        namespace: "ns".into(),
        id: id.into(),
        name: name.into(),
        workflow: "wf".into(),
        status: ExecutionStatus::Running,
        input: json!({"in": id}),
        output: None,
        error: None,
        cause: None,
        start,
        stop: None,
        parent: None,
    }
}

fn event(seq: u64, details: serde_json::Value) -> HistoryEvent {
    HistoryEvent {
        seq,
        ts: 1_000 + seq,
        kind: "PassStateEntered".into(),
        details,
    }
}

/// Events `from..=to` with small details.
fn events(from: u64, to: u64) -> Vec<HistoryEvent> {
    (from..=to)
        .map(|seq| event(seq, json!({"name": format!("S{seq}"), "path": ""})))
        .collect()
}

fn run(seq: u64, owner: Option<&str>, lease_ms: u64) -> RunState {
    RunState {
        seq,
        snapshot: json!({"at": seq}),
        wake_ms: Some(5_000 + seq),
        owner: owner.map(String::from),
        lease_ms,
    }
}

/// Starts execution `id` named `id` with events 1..=`seq`, owned by `owner`.
async fn start(s: &dyn Store, id: &str, seq: u64, owner: Option<&str>, lease_ms: u64) {
    let created = s
        .create_execution(
            &execution(id, id, 100),
            &run(seq, owner, lease_ms),
            &events(1, seq),
        )
        .await
        .unwrap();
    assert!(created, "{id} is new");
}

/// A commit of `id` by `owner` from `expected` on.
fn commit<'a>(
    id: &'a str,
    owner: &'a str,
    expected: u64,
    events: &'a [HistoryEvent],
    run: &'a RunState,
) -> RunCommit<'a> {
    RunCommit {
        namespace: "ns",
        id,
        expected_seq: expected,
        owner,
        events,
        run,
        execution: None,
        consumed: &[],
    }
}

async fn full_history(s: &dyn Store, namespace: &str, id: &str) -> Vec<HistoryEvent> {
    s.history(namespace, id, 0, 1_000, false).await.unwrap()
}

fn seqs(events: &[HistoryEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

async fn workflows_are_compare_and_swap_and_listed_by_name(s: &dyn Store) {
    for name in ["b", "a", "B", "c"] {
        s.put_workflow(&workflow(name, "1"), PutMode::Create)
            .await
            .unwrap();
    }
    assert!(matches!(
        s.put_workflow(&workflow("a", "9"), PutMode::Create).await,
        Err(StoreError::Conflict)
    ));
    let stale = PutMode::Replace {
        expected_version: "0".into(),
    };
    assert!(matches!(
        s.put_workflow(&workflow("a", "2"), stale).await,
        Err(StoreError::Conflict)
    ));
    let mut v2 = workflow("a", "2");
    v2.definition = json!({"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}});
    let current = PutMode::Replace {
        expected_version: "1".into(),
    };
    s.put_workflow(&v2, current).await.unwrap();
    assert_eq!(s.workflow("ns", "a").await.unwrap().unwrap(), v2);
    let missing = PutMode::Replace {
        expected_version: "1".into(),
    };
    assert!(matches!(
        s.put_workflow(&workflow("zz", "2"), missing).await,
        Err(StoreError::Conflict)
    ));
    assert!(s.workflow("ns", "zz").await.unwrap().is_none());
    assert!(s.workflow("other", "a").await.unwrap().is_none());

    let names = |list: Vec<Workflow>| list.into_iter().map(|w| w.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_workflows("ns", 0, 10).await.unwrap()),
        ["B", "a", "b", "c"]
    );
    assert_eq!(
        names(s.list_workflows("ns", 1, 2).await.unwrap()),
        ["a", "b"]
    );
    assert!(s.list_workflows("other", 0, 10).await.unwrap().is_empty());

    assert_eq!(s.delete_workflow("ns", "a").await.unwrap().unwrap(), v2);
    assert!(s.delete_workflow("ns", "a").await.unwrap().is_none());
    assert_eq!(
        names(s.list_workflows("ns", 0, 10).await.unwrap()),
        ["B", "b", "c"]
    );
}

async fn an_execution_is_created_once_per_name_and_listed_newest_first(s: &dyn Store) {
    let first = execution("e1", "n1", 100);
    assert!(
        s.create_execution(&first, &run(2, Some("a"), 9_000), &events(1, 2))
            .await
            .unwrap()
    );
    assert_eq!(s.execution("ns", "e1").await.unwrap().unwrap(), first);
    assert_eq!(
        s.execution_named("ns", "wf", "n1").await.unwrap().unwrap(),
        first
    );
    assert_eq!(
        s.run_state("ns", "e1").await.unwrap().unwrap(),
        run(2, Some("a"), 9_000)
    );
    assert_eq!(full_history(s, "ns", "e1").await, events(1, 2));

    // The name is taken in this workflow: nothing of the second is written.
    let again = execution("e2", "n1", 200);
    assert!(
        !s.create_execution(&again, &run(1, Some("b"), 9_000), &events(1, 1))
            .await
            .unwrap()
    );
    assert!(s.execution("ns", "e2").await.unwrap().is_none());
    assert!(s.run_state("ns", "e2").await.unwrap().is_none());
    assert!(full_history(s, "ns", "e2").await.is_empty());
    assert_eq!(
        s.execution_named("ns", "wf", "n1").await.unwrap().unwrap(),
        first
    );
    // So is the id.
    let same_id = execution("e1", "n9", 200);
    assert!(
        !s.create_execution(&same_id, &run(1, None, 0), &events(1, 1))
            .await
            .unwrap()
    );
    assert!(s.execution_named("ns", "wf", "n9").await.unwrap().is_none());

    // Badly numbered events, or a run state not at the last of them: refused, nothing written.
    let bad = execution("e3", "n3", 300);
    assert!(
        s.create_execution(&bad, &run(2, None, 0), &events(2, 3))
            .await
            .is_err()
    );
    assert!(
        s.create_execution(&bad, &run(1, None, 0), &events(1, 2))
            .await
            .is_err()
    );
    assert!(s.execution("ns", "e3").await.unwrap().is_none());

    // The same name in another workflow is another execution; one that ended at once has
    // no run state.
    let mut other = execution("e3", "n1", 300);
    other.workflow = "wf2".into();
    other.status = ExecutionStatus::Succeeded;
    other.output = Some(json!({"out": 1}));
    other.stop = Some(301);
    assert!(
        s.create_execution(&other, &run(2, None, 0), &events(1, 2))
            .await
            .unwrap()
    );
    assert!(s.run_state("ns", "e3").await.unwrap().is_none());
    assert_eq!(full_history(s, "ns", "e3").await.len(), 2);
    // Two more, one started at the same time as e3.
    for (id, start) in [("e4", 300), ("e0", 50)] {
        assert!(
            s.create_execution(&execution(id, id, start), &run(1, None, 0), &events(1, 1))
                .await
                .unwrap()
        );
    }

    let ids = |list: Vec<Execution>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let query = |workflow, status, skip, limit| ExecutionQuery {
        namespace: "ns",
        workflow,
        status,
        skip,
        limit,
    };
    // Newest first; of one start time, the larger id first.
    assert_eq!(
        ids(s.list_executions(&query(None, None, 0, 10)).await.unwrap()),
        ["e4", "e3", "e1", "e0"]
    );
    assert_eq!(
        ids(s.list_executions(&query(None, None, 1, 2)).await.unwrap()),
        ["e3", "e1"]
    );
    assert_eq!(
        ids(s
            .list_executions(&query(Some("wf"), None, 0, 10))
            .await
            .unwrap()),
        ["e4", "e1", "e0"]
    );
    assert_eq!(
        ids(s
            .list_executions(&query(None, Some(ExecutionStatus::Succeeded), 0, 10))
            .await
            .unwrap()),
        ["e3"]
    );
    assert_eq!(
        ids(s
            .list_executions(&query(Some("wf"), Some(ExecutionStatus::Running), 0, 10))
            .await
            .unwrap()),
        ["e4", "e1", "e0"]
    );
    let elsewhere = ExecutionQuery {
        namespace: "other",
        ..query(None, None, 0, 10)
    };
    assert!(s.list_executions(&elsewhere).await.unwrap().is_empty());
}

async fn a_commit_writes_everything_or_nothing(s: &dyn Store) {
    start(s, "e1", 1, Some("a"), 9_000).await;
    assert!(s.post_signal("ns", "e1", &json!({"n": 1})).await.unwrap());
    let signal = s.signals("ns", "e1").await.unwrap()[0].0;
    let consumed = [signal];
    let next = events(2, 3);
    let state = run(3, Some("a"), 9_000);
    let mut running = execution("e1", "e1", 100);
    running.input = json!({"changed": true});

    let unchanged = async || {
        assert_eq!(seqs(&full_history(s, "ns", "e1").await), [1]);
        assert_eq!(s.run_state("ns", "e1").await.unwrap().unwrap().seq, 1);
        assert_eq!(s.signals("ns", "e1").await.unwrap().len(), 1);
        assert_eq!(
            s.execution("ns", "e1").await.unwrap().unwrap(),
            execution("e1", "e1", 100)
        );
    };
    // A stale seq, another owner: refused, nothing written.
    let (old, old_run) = (events(1, 2), run(2, Some("a"), 0));
    let mut stale = commit("e1", "a", 0, &old, &old_run);
    stale.execution = Some(&running);
    stale.consumed = &consumed;
    assert!(!s.commit_run(&stale).await.unwrap());
    unchanged().await;
    let mut other = commit("e1", "b", 1, &next, &state);
    other.execution = Some(&running);
    other.consumed = &consumed;
    assert!(!s.commit_run(&other).await.unwrap());
    unchanged().await;
    // Badly numbered: an error, nothing written.
    let gap = [event(3, json!({}))];
    assert!(
        s.commit_run(&commit("e1", "a", 1, &gap, &run(3, None, 0)))
            .await
            .is_err()
    );
    let off = run(4, None, 0);
    assert!(
        s.commit_run(&commit("e1", "a", 1, &next, &off))
            .await
            .is_err()
    );
    let mut foreign = commit("e1", "a", 1, &next, &state);
    let stranger = execution("e9", "e9", 1);
    foreign.execution = Some(&stranger);
    assert!(s.commit_run(&foreign).await.is_err());
    unchanged().await;

    // The owner at the stored seq: events, snapshot, execution and inbox change together.
    let mut good = commit("e1", "a", 1, &next, &state);
    good.execution = Some(&running);
    good.consumed = &consumed;
    assert!(s.commit_run(&good).await.unwrap());
    assert_eq!(
        full_history(s, "ns", "e1").await,
        [events(1, 1), next.clone()].concat()
    );
    let stored = s.run_state("ns", "e1").await.unwrap().unwrap();
    assert_eq!(
        (&stored.snapshot, stored.seq, stored.wake_ms),
        (&json!({"at": 3}), 3, Some(5_003))
    );
    assert_eq!(stored.owner.as_deref(), Some("a"), "the owner stays");
    assert_eq!(s.execution("ns", "e1").await.unwrap().unwrap(), running);
    assert!(s.signals("ns", "e1").await.unwrap().is_empty());
    // The same commit again: its seq is gone.
    assert!(!s.commit_run(&good).await.unwrap());
    assert_eq!(full_history(s, "ns", "e1").await.len(), 3);

    // A commit without events or execution moves only the snapshot.
    let mut quiet = run(3, Some("a"), 9_000);
    quiet.snapshot = json!({"waiting": true});
    quiet.wake_ms = None;
    assert!(
        s.commit_run(&commit("e1", "a", 3, &[], &quiet))
            .await
            .unwrap()
    );
    let stored = s.run_state("ns", "e1").await.unwrap().unwrap();
    assert_eq!(
        (stored.snapshot, stored.wake_ms),
        (json!({"waiting": true}), None)
    );

    // The commit that ends the execution deletes its run state.
    let mut done = running.clone();
    done.status = ExecutionStatus::Failed;
    done.error = Some("States.TaskFailed".into());
    done.cause = Some("boom".into());
    done.stop = Some(400);
    let last = [event(4, json!({"error": "States.TaskFailed"}))];
    let last_run = run(4, Some("a"), 9_000);
    let mut end = commit("e1", "a", 3, &last, &last_run);
    end.execution = Some(&done);
    assert!(s.commit_run(&end).await.unwrap());
    assert!(s.run_state("ns", "e1").await.unwrap().is_none());
    assert_eq!(s.execution("ns", "e1").await.unwrap().unwrap(), done);
    assert_eq!(seqs(&full_history(s, "ns", "e1").await), [1, 2, 3, 4]);
    assert!(!s.commit_run(&end).await.unwrap());
    let after = [event(5, json!({}))];
    assert!(
        !s.commit_run(&commit("e1", "a", 4, &after, &run(5, None, 0)))
            .await
            .unwrap()
    );
    assert!(
        s.claimable_runs("z", u64::MAX >> 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn history_pages_both_ways_and_large_payloads_come_back_whole(s: &dyn Store) {
    start(s, "e1", 1, Some("a"), 9_000).await;
    // Events 2..=25; some carry large payloads: one field (the same one twice), many
    // middling fields, a whole large value, and a value that looks like a stored reference.
    let mut written = events(2, 25);
    written[3].details = json!({"name": "Big", "output": large('o')});
    written[4].details = json!({"name": "Big again", "input": large('o')});
    let middling: String = large('m').chars().take(5 * 1024).collect();
    written[5].details = json!({"a": middling, "b": middling, "c": middling});
    written[6].details = json!([large('x')]);
    written[7].details = json!({"$payload": "0".repeat(64)});
    written[8].details = json!({"result": {"$payload": "f".repeat(64)}});
    let state = run(25, Some("a"), 9_000);
    assert!(
        s.commit_run(&commit("e1", "a", 1, &written, &state))
            .await
            .unwrap()
    );
    let all = [events(1, 1), written].concat();
    assert_eq!(full_history(s, "ns", "e1").await, all);

    let page = async |after, limit, reverse| {
        seqs(&s.history("ns", "e1", after, limit, reverse).await.unwrap())
    };
    assert_eq!(page(0, 10, false).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(page(10, 10, false).await, (11..=20).collect::<Vec<_>>());
    assert_eq!(page(20, 10, false).await, (21..=25).collect::<Vec<_>>());
    assert!(page(25, 10, false).await.is_empty());
    // Newest first: from the end (`u64::MAX`), then below the last seen.
    assert_eq!(page(u64::MAX, 5, true).await, [25, 24, 23, 22, 21]);
    assert!(page(0, 5, true).await.is_empty());
    assert_eq!(page(21, 5, true).await, [20, 19, 18, 17, 16]);
    assert_eq!(page(3, 5, true).await, [2, 1]);
    assert!(page(1, 5, true).await.is_empty());
    // Pages hold the payloads too.
    let big = s.history("ns", "e1", 4, 5, false).await.unwrap();
    assert_eq!(big, all[4..9]);
    let back = s.history("ns", "e1", 10, 6, true).await.unwrap();
    assert_eq!(back[0], all[8]);
    assert!(
        s.history("ns", "e9", 0, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.history("other", "e1", 0, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn runs_are_claimed_renewed_and_released_on_leases(s: &dyn Store) {
    start(s, "e1", 1, None, 0).await;
    start(s, "e2", 1, Some("a"), 10_000).await;
    start(s, "e3", 1, Some("b"), 10_000).await;
    let ids = |runs: Vec<(String, String)>| {
        let mut ids: Vec<String> = runs
            .into_iter()
            .map(|(ns, id)| {
                assert_eq!(ns, "ns");
                id
            })
            .collect();
        ids.sort();
        ids
    };
    // (Times a few ms apart may compare either way on PostgreSQL: see the schedules' test.)
    assert_eq!(ids(s.claimable_runs("a", 5_000, 10).await.unwrap()), ["e1"]);
    assert_eq!(ids(s.claimable_runs("b", 5_000, 10).await.unwrap()), ["e1"]);
    // Leases ran out; a process never finds its own runs claimable.
    assert_eq!(
        ids(s.claimable_runs("c", 20_000, 10).await.unwrap()),
        ["e1", "e2", "e3"]
    );
    assert_eq!(
        ids(s.claimable_runs("a", 20_000, 10).await.unwrap()),
        ["e1", "e3"]
    );
    assert_eq!(s.claimable_runs("c", 20_000, 2).await.unwrap().len(), 2);

    assert!(s.claim_run("ns", "e1", "a", 5_000, 15_000).await.unwrap());
    assert!(!s.claim_run("ns", "e1", "b", 6_000, 16_000).await.unwrap());
    assert!(s.claim_run("ns", "e1", "a", 6_000, 16_000).await.unwrap());
    assert!(!s.claim_run("ns", "e9", "a", 6_000, 16_000).await.unwrap());
    assert_eq!(s.renew_runs("a", 30_000).await.unwrap(), 2);
    let e1 = s.run_state("ns", "e1").await.unwrap().unwrap();
    assert_eq!((e1.owner.as_deref(), e1.lease_ms), (Some("a"), 30_000));
    assert!(!s.claim_run("ns", "e2", "b", 20_000, 40_000).await.unwrap());
    // `b` died: `a` takes its run once its lease ran out, and `b` can no longer commit it.
    assert!(s.claim_run("ns", "e3", "a", 20_000, 40_000).await.unwrap());
    let next = events(2, 2);
    assert!(
        !s.commit_run(&commit("e3", "b", 1, &next, &run(2, None, 0)))
            .await
            .unwrap()
    );
    assert!(
        s.commit_run(&commit("e3", "a", 1, &next, &run(2, None, 0)))
            .await
            .unwrap()
    );
    // The commit left the owner and lease as they were.
    let e3 = s.run_state("ns", "e3").await.unwrap().unwrap();
    assert_eq!((e3.owner.as_deref(), e3.lease_ms), (Some("a"), 40_000));
    assert!(s.claimable_runs("c", 25_000, 10).await.unwrap().is_empty());

    // A store one process uses drops every owner at its start.
    s.release_runs().await.unwrap();
    let e2 = s.run_state("ns", "e2").await.unwrap().unwrap();
    assert_eq!((e2.owner, e2.lease_ms), (None, 0));
    assert_eq!(
        ids(s.claimable_runs("a", 1_000, 10).await.unwrap()),
        ["e1", "e2", "e3"]
    );
    assert_eq!(s.renew_runs("a", 50_000).await.unwrap(), 0);
}

async fn signals_wait_in_a_running_executions_inbox_until_consumed(s: &dyn Store) {
    start(s, "e1", 1, Some("a"), 10_000).await;
    start(s, "e2", 1, Some("b"), 10_000).await;
    assert!(s.signalled_runs("a").await.unwrap().is_empty());
    for n in 1..=3 {
        assert!(s.post_signal("ns", "e1", &json!({"n": n})).await.unwrap());
    }
    assert!(!s.post_signal("ns", "e9", &json!({"n": 0})).await.unwrap());
    assert!(
        !s.post_signal("other", "e1", &json!({"n": 0}))
            .await
            .unwrap()
    );
    let inbox = s.signals("ns", "e1").await.unwrap();
    let docs: Vec<&serde_json::Value> = inbox.iter().map(|(_, d)| d).collect();
    assert_eq!(docs, [&json!({"n": 1}), &json!({"n": 2}), &json!({"n": 3})]);
    assert!(inbox[0].0 < inbox[1].0 && inbox[1].0 < inbox[2].0);
    assert!(s.signals("ns", "e2").await.unwrap().is_empty());
    assert_eq!(
        s.signalled_runs("a").await.unwrap(),
        [("ns".to_string(), "e1".to_string())]
    );
    assert!(s.signalled_runs("b").await.unwrap().is_empty());

    // A commit consumes some; the rest wait.
    let consumed = [inbox[0].0, inbox[2].0];
    let same = run(1, None, 0);
    let mut c = commit("e1", "a", 1, &[], &same);
    c.consumed = &consumed;
    assert!(s.commit_run(&c).await.unwrap());
    let left = s.signals("ns", "e1").await.unwrap();
    assert_eq!(left, [(inbox[1].0, json!({"n": 2}))]);
    // Ownership moves: so does who is told.
    assert!(s.claim_run("ns", "e1", "b", 20_000, 30_000).await.unwrap());
    assert!(s.signalled_runs("a").await.unwrap().is_empty());
    assert_eq!(s.signalled_runs("b").await.unwrap().len(), 1);

    // The end of the execution takes what is left; a finished execution takes none.
    let mut done = execution("e1", "e1", 100);
    done.status = ExecutionStatus::Aborted;
    let mut end = commit("e1", "b", 1, &[], &same);
    end.execution = Some(&done);
    assert!(s.commit_run(&end).await.unwrap());
    assert!(s.signals("ns", "e1").await.unwrap().is_empty());
    assert!(
        !s.post_signal("ns", "e1", &json!({"late": true}))
            .await
            .unwrap()
    );
    assert!(s.signals("ns", "e1").await.unwrap().is_empty());
    assert!(s.signalled_runs("b").await.unwrap().is_empty());
}

fn delivery_config(action: &str, retries: u32) -> DeliveryConfig {
    DeliveryConfig {
        namespace: "ns".into(),
        action: action.into(),
        maximum_retry_attempts: retries,
        maximum_event_age_in_seconds: 3_600,
        on_success: Some("subject:done".into()),
        on_failure: None,
        updated: 7,
    }
}

async fn delivery_configs_are_upserted_read_and_deleted(s: &dyn Store) {
    assert!(s.delivery_config("ns", "a").await.unwrap().is_none());
    s.put_delivery_config(&delivery_config("a", 2))
        .await
        .unwrap();
    s.put_delivery_config(&delivery_config("p/b", 0))
        .await
        .unwrap();
    assert_eq!(
        s.delivery_config("ns", "a").await.unwrap().unwrap(),
        delivery_config("a", 2)
    );
    let mut replaced = delivery_config("a", 10);
    replaced.on_success = None;
    replaced.on_failure = Some("action:dlq".into());
    s.put_delivery_config(&replaced).await.unwrap();
    assert_eq!(
        s.delivery_config("ns", "a").await.unwrap().unwrap(),
        replaced
    );
    assert!(s.delivery_config("other", "a").await.unwrap().is_none());
    assert!(s.delete_delivery_config("ns", "a").await.unwrap());
    assert!(!s.delete_delivery_config("ns", "a").await.unwrap());
    assert!(s.delivery_config("ns", "a").await.unwrap().is_none());
    assert!(s.delivery_config("ns", "p/b").await.unwrap().is_some());
}

/// Delivery `id` of action `ns/a`, due at `due_ms`, owned by nobody.
fn delivery(id: &str, due_ms: u64) -> Delivery {
    Delivery {
        namespace: "ns".into(),
        id: id.into(),
        action: "a".into(),
        message: json!({"activationId": id, "content": {"x": 1}}),
        config: delivery_config("a", 2),
        attempt: 1,
        attempt_id: id.into(),
        accepted_ms: 500,
        due_ms,
        owner: None,
        lease_ms: 0,
        state: serde_json::Map::new(),
    }
}

fn dead_letter(id: &str, created: u64) -> DeadLetter {
    DeadLetter {
        namespace: "ns".into(),
        id: id.into(),
        action: "a".into(),
        record: json!({"requestContext": {"condition": "RetriesExhausted"}, "id": id}),
        created,
        secrets: Vec::new(),
    }
}

async fn a_delivery_is_taken_by_compare_and_swap_and_finished_once(s: &dyn Store) {
    s.put_delivery(&delivery("d1", 1_000)).await.unwrap();
    s.put_delivery(&delivery("d2", 5_000)).await.unwrap();
    // A second write of an id is ignored.
    let mut twice = delivery("d1", 9_000);
    twice.message = json!({"second": true});
    s.put_delivery(&twice).await.unwrap();
    assert_eq!(
        s.delivery("ns", "d1").await.unwrap().unwrap(),
        delivery("d1", 1_000)
    );
    assert!(s.delivery("other", "d1").await.unwrap().is_none());

    let ids = |list: Vec<Delivery>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(s.due_deliveries("a", 2_000, 10).await.unwrap()), ["d1"]);
    assert_eq!(
        ids(s.due_deliveries("a", 10_000, 10).await.unwrap()),
        ["d1", "d2"]
    );
    assert_eq!(ids(s.due_deliveries("a", 10_000, 1).await.unwrap()), ["d1"]);

    // `a` takes d1; `b` cannot while `a`'s lease holds.
    let mut taken = delivery("d1", 1_000);
    taken.owner = Some("a".into());
    taken.lease_ms = 20_000;
    assert!(s.update_delivery(&taken, 1, 2_000).await.unwrap());
    assert_eq!(s.delivery("ns", "d1").await.unwrap().unwrap(), taken);
    let mut by_b = taken.clone();
    by_b.owner = Some("b".into());
    assert!(!s.update_delivery(&by_b, 1, 3_000).await.unwrap());
    assert_eq!(
        ids(s.due_deliveries("b", 10_000, 10).await.unwrap()),
        ["d2"]
    );
    assert_eq!(
        ids(s.due_deliveries("a", 10_000, 10).await.unwrap()),
        ["d1", "d2"]
    );

    // `a` schedules a retry: compare-and-swap on the attempt.
    let mut retry = taken.clone();
    retry.attempt = 2;
    retry.attempt_id = "d1-2".into();
    retry.due_ms = 15_000;
    retry
        .state
        .insert("lastError".into(), json!({"errorType": "Boom"}));
    assert!(s.update_delivery(&retry, 1, 4_000).await.unwrap());
    assert!(!s.update_delivery(&retry, 1, 4_000).await.unwrap());
    assert_eq!(s.delivery("ns", "d1").await.unwrap().unwrap(), retry);
    assert_eq!(
        ids(s.due_deliveries("a", 10_000, 10).await.unwrap()),
        ["d2"]
    );

    // `a` dies: once its lease ran out, `b` takes the retry.
    let mut adopted = retry.clone();
    adopted.owner = Some("b".into());
    adopted.lease_ms = 40_000;
    assert!(!s.update_delivery(&adopted, 2, 19_000).await.unwrap());
    assert_eq!(
        ids(s.due_deliveries("b", 25_000, 10).await.unwrap()),
        ["d2", "d1"]
    );
    assert!(s.update_delivery(&adopted, 2, 25_000).await.unwrap());

    // Finished with a dead letter, once.
    assert!(
        s.finish_delivery("ns", "d1", Some(&dead_letter("d1", 30_000)))
            .await
            .unwrap()
    );
    assert!(s.delivery("ns", "d1").await.unwrap().is_none());
    assert_eq!(
        s.dead_letter("ns", "d1").await.unwrap().unwrap(),
        dead_letter("d1", 30_000)
    );
    assert!(
        !s.finish_delivery("ns", "d1", Some(&dead_letter("d1", 31_000)))
            .await
            .unwrap()
    );
    assert_eq!(
        s.dead_letter("ns", "d1").await.unwrap().unwrap().created,
        30_000
    );
    // Finished without one.
    assert!(s.finish_delivery("ns", "d2", None).await.unwrap());
    assert!(s.dead_letter("ns", "d2").await.unwrap().is_none());
    assert!(s.due_deliveries("a", 100_000, 10).await.unwrap().is_empty());

    // A store one process uses drops every owner at its start.
    let mut held = delivery("d3", 1_000);
    held.owner = Some("x".into());
    held.lease_ms = u64::MAX >> 4;
    s.put_delivery(&held).await.unwrap();
    assert!(s.due_deliveries("a", 2_000, 10).await.unwrap().is_empty());
    s.release_deliveries().await.unwrap();
    let d3 = s.delivery("ns", "d3").await.unwrap().unwrap();
    assert_eq!((d3.owner, d3.lease_ms), (None, 0));
    assert_eq!(ids(s.due_deliveries("a", 2_000, 10).await.unwrap()), ["d3"]);
}

async fn dead_letters_are_listed_newest_first_and_deleted(s: &dyn Store) {
    for (id, created) in [("l1", 10), ("l3", 30), ("l2", 20), ("l0", 30)] {
        s.put_delivery(&delivery(id, 1)).await.unwrap();
        let letter = dead_letter(id, created);
        assert!(s.finish_delivery("ns", id, Some(&letter)).await.unwrap());
    }
    let ids = |list: Vec<DeadLetter>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.dead_letters("ns", 0, 10).await.unwrap()),
        ["l3", "l0", "l2", "l1"]
    );
    assert_eq!(ids(s.dead_letters("ns", 1, 2).await.unwrap()), ["l0", "l2"]);
    assert!(s.dead_letters("other", 0, 10).await.unwrap().is_empty());
    assert_eq!(
        s.dead_letter("ns", "l2").await.unwrap().unwrap(),
        dead_letter("l2", 20)
    );
    assert!(s.dead_letter("other", "l2").await.unwrap().is_none());
    assert!(s.delete_dead_letter("ns", "l2").await.unwrap());
    assert!(!s.delete_dead_letter("ns", "l2").await.unwrap());
    assert!(s.dead_letter("ns", "l2").await.unwrap().is_none());
    assert_eq!(
        ids(s.dead_letters("ns", 0, 10).await.unwrap()),
        ["l3", "l0", "l1"]
    );
    // A re-driven delivery that fails again replaces its letter.
    s.put_delivery(&delivery("l1", 1)).await.unwrap();
    let again = dead_letter("l1", 40);
    assert!(s.finish_delivery("ns", "l1", Some(&again)).await.unwrap());
    assert_eq!(ids(s.dead_letters("ns", 0, 1).await.unwrap()), ["l1"]);
    assert_eq!(s.dead_letters("ns", 0, 10).await.unwrap().len(), 3);
}

async fn an_idempotency_key_names_one_activation_until_it_expires(s: &dyn Store) {
    let claim = async |ns, key, id, now| {
        s.claim_idempotency_key(ns, key, &key_claim(id, now, now + 1_000), now)
            .await
            .unwrap()
            .map(|c| c.activation_id)
    };
    assert_eq!(claim("ns", "k", "id1", 1_000).await, None);
    assert_eq!(claim("ns", "k", "id2", 1_500).await.as_deref(), Some("id1"));
    assert_eq!(claim("ns", "k", "id2", 1_999).await.as_deref(), Some("id1"));
    // Keys are per namespace, and per key.
    assert_eq!(claim("other", "k", "idX", 1_500).await, None);
    assert_eq!(claim("ns", "K", "idY", 1_500).await, None);
    // Expired (at 2,000): the next claim takes it.
    assert_eq!(claim("ns", "k", "id3", 2_000).await, None);
    assert_eq!(claim("ns", "k", "id4", 2_500).await.as_deref(), Some("id3"));
    // A release of another activation's key changes nothing; of its own frees it.
    s.release_idempotency_key("ns", "k", "id4").await.unwrap();
    assert_eq!(claim("ns", "k", "id4", 2_600).await.as_deref(), Some("id3"));
    s.release_idempotency_key("ns", "k", "id3").await.unwrap();
    assert_eq!(claim("ns", "k", "id5", 2_700).await, None);
    assert_eq!(claim("ns", "k", "id6", 2_800).await.as_deref(), Some("id5"));
    assert_eq!(
        claim("other", "k", "idZ", 2_000).await.as_deref(),
        Some("idX")
    );
}

async fn an_idempotency_key_is_taken_over_by_compare_and_swap_and_swept_when_expired(
    s: &dyn Store,
) {
    let first = key_claim("id1", 1_000, 5_000);
    assert_eq!(
        s.claim_idempotency_key("ns", "k", &first, 1_000)
            .await
            .unwrap(),
        None
    );
    // A repeated claim reads all the first one holds.
    let held = s
        .claim_idempotency_key("ns", "k", &key_claim("id2", 1_200, 5_200), 1_200)
        .await
        .unwrap();
    assert_eq!(held.as_ref(), Some(&first));
    // Taken over only from the activation it still names.
    let over = key_claim("id3", 2_000, 6_000);
    assert!(
        !s.replace_idempotency_key("ns", "k", "id2", &over)
            .await
            .unwrap()
    );
    assert!(
        s.replace_idempotency_key("ns", "k", "id1", &over)
            .await
            .unwrap()
    );
    assert!(
        !s.replace_idempotency_key("ns", "k", "id1", &key_claim("id4", 2_000, 6_000))
            .await
            .unwrap()
    );
    let held = s
        .claim_idempotency_key("ns", "k", &key_claim("id5", 2_100, 6_100), 2_100)
        .await
        .unwrap();
    assert_eq!(held.as_ref(), Some(&over));
    // Swept once expired, and only then.
    assert_eq!(
        s.claim_idempotency_key("ns", "other", &key_claim("o1", 1_000, 9_000), 1_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.sweep_idempotency_keys(5_999).await.unwrap(), 0);
    assert_eq!(s.sweep_idempotency_keys(6_000).await.unwrap(), 1);
    assert_eq!(s.sweep_idempotency_keys(6_000).await.unwrap(), 0);
    assert_eq!(
        s.claim_idempotency_key("ns", "k", &key_claim("id6", 6_000, 7_000), 6_000)
            .await
            .unwrap(),
        None
    );
    let held = s
        .claim_idempotency_key("ns", "other", &key_claim("o2", 6_000, 7_000), 6_000)
        .await
        .unwrap();
    assert_eq!(held.map(|c| c.activation_id).as_deref(), Some("o1"));
}

async fn deleting_a_namespace_deletes_its_workflows_and_deliveries(s: &dyn Store) {
    // The same rows in two namespaces, the same large payload in both histories.
    for name in ["ns", "keep"] {
        s.create_namespace(&Namespace {
            name: name.into(),
            uuid: name.into(),
            key: "k".into(),
            limits: NamespaceLimits::default(),
        })
        .await
        .unwrap();
        let at = |mut w: Workflow| {
            w.namespace = name.into();
            w
        };
        s.put_workflow(&at(workflow("wf", "1")), PutMode::Create)
            .await
            .unwrap();
        let mut e = execution("e1", "e1", 100);
        e.namespace = name.into();
        let first = [event(1, json!({"input": large('p')}))];
        assert!(
            s.create_execution(&e, &run(1, Some("a"), 1_000), &first)
                .await
                .unwrap()
        );
        assert!(s.post_signal(name, "e1", &json!({})).await.unwrap());
        let mut config = delivery_config("a", 1);
        config.namespace = name.into();
        s.put_delivery_config(&config).await.unwrap();
        for id in ["d1", "d2"] {
            let mut d = delivery(id, 1);
            d.namespace = name.into();
            s.put_delivery(&d).await.unwrap();
        }
        let mut letter = dead_letter("d2", 5);
        letter.namespace = name.into();
        assert!(s.finish_delivery(name, "d2", Some(&letter)).await.unwrap());
        assert_eq!(
            s.claim_idempotency_key(name, "k", &key_claim("i1", 1, u64::MAX >> 4), 1)
                .await
                .unwrap(),
            None
        );
    }
    s.delete_namespace("ns").await.unwrap();

    assert!(s.workflow("ns", "wf").await.unwrap().is_none());
    assert!(s.list_workflows("ns", 0, 10).await.unwrap().is_empty());
    assert!(s.execution("ns", "e1").await.unwrap().is_none());
    assert!(s.execution_named("ns", "wf", "e1").await.unwrap().is_none());
    assert!(s.run_state("ns", "e1").await.unwrap().is_none());
    assert!(full_history(s, "ns", "e1").await.is_empty());
    assert!(s.signals("ns", "e1").await.unwrap().is_empty());
    assert!(s.delivery_config("ns", "a").await.unwrap().is_none());
    assert!(s.delivery("ns", "d1").await.unwrap().is_none());
    assert!(s.dead_letters("ns", 0, 10).await.unwrap().is_empty());
    assert_eq!(
        s.claim_idempotency_key("ns", "k", &key_claim("i2", 2, 3), 2)
            .await
            .unwrap(),
        None
    );
    let claimable = s.claimable_runs("z", 5_000, 10).await.unwrap();
    assert_eq!(claimable, [("keep".to_string(), "e1".to_string())]);
    let signalled = s.signalled_runs("a").await.unwrap();
    assert_eq!(signalled, [("keep".to_string(), "e1".to_string())]);
    let due = s.due_deliveries("z", 5_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.namespace.as_str()).collect::<Vec<_>>(),
        ["keep"]
    );

    // The other namespace keeps everything, its large payload too.
    assert!(s.workflow("keep", "wf").await.unwrap().is_some());
    let kept = full_history(s, "keep", "e1").await;
    assert_eq!(kept[0].details, json!({"input": large('p')}));
    assert_eq!(s.signals("keep", "e1").await.unwrap().len(), 1);
    assert!(s.delivery_config("keep", "a").await.unwrap().is_some());
    assert_eq!(s.dead_letters("keep", 0, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.claim_idempotency_key("keep", "k", &key_claim("i2", 2, 3), 2)
            .await
            .unwrap()
            .map(|c| c.activation_id)
            .as_deref(),
        Some("i1")
    );
}

async fn racing_writers_of_one_run_key_or_name_have_one_winner(s: &dyn Store) {
    // Three starts of one name at once: one execution.
    let named = |id: &str| {
        let mut e = execution(id, "same", 100);
        e.input = json!({"by": id});
        e
    };
    let (x, y, z) = (named("x"), named("y"), named("z"));
    let (first, one) = (run(1, Some("a"), 9_000), events(1, 1));
    let created = tokio::join!(
        s.create_execution(&x, &first, &one),
        s.create_execution(&y, &first, &one),
        s.create_execution(&z, &first, &one),
    );
    let created = [created.0.unwrap(), created.1.unwrap(), created.2.unwrap()];
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    let winner = s
        .execution_named("ns", "wf", "same")
        .await
        .unwrap()
        .unwrap();

    // Three commits from the same seq at once: one is recorded, whole.
    let id = winner.id.as_str();
    let batches: Vec<Vec<HistoryEvent>> = (0..3)
        .map(|n| {
            (2..=4)
                .map(|seq| event(seq, json!({"writer": n, "big": large('r')})))
                .collect()
        })
        .collect();
    let next = run(4, Some("a"), 9_000);
    let commits: Vec<RunCommit<'_>> = batches
        .iter()
        .map(|b| commit(id, "a", 1, b, &next))
        .collect();
    let done = tokio::join!(
        s.commit_run(&commits[0]),
        s.commit_run(&commits[1]),
        s.commit_run(&commits[2]),
    );
    let done = [done.0.unwrap(), done.1.unwrap(), done.2.unwrap()];
    assert_eq!(done.iter().filter(|c| **c).count(), 1, "{done:?}");
    let kept = done.iter().position(|c| *c).unwrap();
    assert_eq!(
        full_history(s, "ns", id).await,
        [events(1, 1), batches[kept].clone()].concat()
    );

    // Three claims of one idempotency key at once: one takes it, the others get its id.
    let (c1, c2, c3) = (
        key_claim("i1", 1_000, 9_000),
        key_claim("i2", 1_000, 9_000),
        key_claim("i3", 1_000, 9_000),
    );
    let claimed = tokio::join!(
        s.claim_idempotency_key("ns", "k", &c1, 1_000),
        s.claim_idempotency_key("ns", "k", &c2, 1_000),
        s.claim_idempotency_key("ns", "k", &c3, 1_000),
    );
    let claimed = [claimed.0.unwrap(), claimed.1.unwrap(), claimed.2.unwrap()]
        .map(|c| c.map(|c| c.activation_id));
    let winners: Vec<usize> = (0..3).filter(|n| claimed[*n].is_none()).collect();
    assert_eq!(winners.len(), 1, "{claimed:?}");
    let holder = format!("i{}", winners[0] + 1);
    for c in claimed.iter().flatten() {
        assert_eq!(c, &holder);
    }
}
