//! The store's invariants, on the SQLite backend.
#![allow(clippy::unwrap_used)]

use gust_model::{
    Action, ActionLimits, Activation, ActivationResponse, ActivationStatus, EncodedActivation,
    Exec, Namespace, NamespaceLimits,
};
use gust_store::sqlite::{Durability, SqliteStore};
use gust_store::{ActivationQuery, PendingInvocation, PutMode, Store, StoreError};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("gust.db"), Durability::Process).unwrap();
    (dir, s)
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

fn encoded(record: Activation) -> EncodedActivation {
    EncodedActivation::new(&record).unwrap()
}

#[tokio::test]
async fn a_record_clears_its_journal_entry_and_is_written_once() {
    let (_d, s) = store();
    s.put_pending(pending("a1")).await.unwrap();
    assert_eq!(s.pending().await.unwrap().len(), 1);
    s.put_activation(&encoded(record("a1", 10))).await.unwrap();
    assert!(s.pending().await.unwrap().is_empty());
    let mut again = record("a1", 99);
    again.name = "other".into();
    s.put_activation(&encoded(again)).await.unwrap();
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

#[tokio::test]
async fn late_journaling_loses_to_an_existing_record() {
    let (_d, s) = store();
    assert!(s.put_pending_unless_recorded(pending("b1")).await.unwrap());
    s.put_activation(&encoded(record("b1", 1))).await.unwrap();
    assert!(!s.put_pending_unless_recorded(pending("b1")).await.unwrap());
    assert!(s.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn action_updates_are_compare_and_swap() {
    let (_d, s) = store();
    let mut a = Action {
        namespace: "ns".into(),
        name: "x".into(),
        version: "0.0.1".into(),
        publish: false,
        exec: Exec {
            kind: "wasm".into(),
            code: None,
            binary: true,
            main: None,
        },
        annotations: vec![],
        parameters: vec![],
        limits: ActionLimits::default(),
        updated: 0,
        code_hash: "h".into(),
    };
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

#[tokio::test]
async fn namespaces_and_keys() {
    let (_d, s) = store();
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
