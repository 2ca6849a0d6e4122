//! The SQL both backends run alike. Every statement here is valid SQLite and PostgreSQL:
//! parameters are written `$1`, `$2`, ... (PostgreSQL's form; SQLite numbers a named
//! parameter by its first appearance, so each statement names its parameters first in
//! ascending order, which a test checks), types are cast with `CAST(.. AS ..)`, upserts use
//! `ON CONFLICT`, and no list names a collation (every key column sorts by bytes on both,
//! see the crate doc). What only one dialect can say stays in its backend.

pub(crate) const CREATE_NAMESPACE: &str =
    "INSERT INTO namespaces (name, uuid, key, limits) VALUES ($1, $2, $3, $4)
     ON CONFLICT DO NOTHING";
pub(crate) const NAMESPACE_BY_UUID: &str =
    "SELECT name, uuid, key, limits FROM namespaces WHERE uuid = $1";
pub(crate) const NAMESPACE_BY_NAME: &str =
    "SELECT name, uuid, key, limits FROM namespaces WHERE name = $1";
pub(crate) const LIST_NAMESPACES: &str =
    "SELECT name, uuid, key, limits FROM namespaces ORDER BY name";
pub(crate) const SET_NAMESPACE_KEY: &str =
    "UPDATE namespaces SET uuid = $1, key = $2 WHERE name = $3";
pub(crate) const SET_NAMESPACE_LIMITS: &str = "UPDATE namespaces SET limits = $1 WHERE name = $2";

pub(crate) const ACTION_WITH_CODE: &str =
    "SELECT doc, code_hash, code FROM actions WHERE namespace = $1 AND name = $2";
pub(crate) const ACTION_WITHOUT_CODE: &str =
    "SELECT doc, code_hash, CAST(NULL AS BYTEA) FROM actions WHERE namespace = $1 AND name = $2";
pub(crate) const ACTION_CODE: &str = "SELECT code FROM actions WHERE namespace = $1 AND name = $2";
pub(crate) const CREATE_ACTION: &str =
    "INSERT INTO actions (namespace, name, version, doc, code, code_hash)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
pub(crate) const REPLACE_ACTION_WITH_CODE: &str =
    "UPDATE actions SET version = $1, doc = $2, code = $3, code_hash = $4
     WHERE namespace = $5 AND name = $6 AND version = $7";
pub(crate) const REPLACE_ACTION_DOC: &str = "UPDATE actions SET version = $1, doc = $2
     WHERE namespace = $3 AND name = $4 AND version = $5";
pub(crate) const DELETE_ACTION: &str =
    "DELETE FROM actions WHERE namespace = $1 AND name = $2 RETURNING doc, code_hash";
/// Parameters: namespace and the name range of [`crate::name_range`], then limit and offset.
pub(crate) const LIST_ACTIONS: &str = "SELECT doc, code_hash FROM actions
     WHERE namespace = $1 AND name >= $2 AND name < $3 ORDER BY name LIMIT $4 OFFSET $5";
pub(crate) const COUNT_ACTIONS: &str =
    "SELECT COUNT(*) FROM actions WHERE namespace = $1 AND name >= $2 AND name < $3";
pub(crate) const CODE_HASHES: &str = "SELECT DISTINCT code_hash FROM actions";

pub(crate) const PACKAGE: &str = "SELECT doc FROM packages WHERE namespace = $1 AND name = $2";
pub(crate) const CREATE_PACKAGE: &str =
    "INSERT INTO packages (namespace, name, version, publish, doc) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING";
pub(crate) const REPLACE_PACKAGE: &str = "UPDATE packages SET version = $1, publish = $2, doc = $3
     WHERE namespace = $4 AND name = $5 AND version = $6";
pub(crate) const LIST_PACKAGES: &str =
    "SELECT doc FROM packages WHERE namespace = $1 AND (publish OR NOT $2)
     ORDER BY name LIMIT $3 OFFSET $4";
pub(crate) const COUNT_PACKAGES: &str =
    "SELECT COUNT(*) FROM packages WHERE namespace = $1 AND (publish OR NOT $2)";

pub(crate) const PUT_ROUTE: &str = "INSERT INTO routes (namespace, base_path, path, method, doc)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (namespace, base_path, path, method) DO UPDATE SET doc = excluded.doc";
pub(crate) const DELETE_ROUTES: &str = "DELETE FROM routes WHERE namespace = $1 AND base_path = $2
     AND (CAST($3 AS TEXT) IS NULL OR path = $3) AND (CAST($4 AS TEXT) IS NULL OR method = $4)";
pub(crate) const LIST_ROUTES: &str = "SELECT doc FROM routes
     WHERE namespace = $1 AND (CAST($2 AS TEXT) IS NULL OR base_path = $2)
     ORDER BY base_path, path, method";

pub(crate) const PUT_SITE_BLOB: &str =
    "INSERT INTO site_blobs (namespace, hash, content, touched) VALUES ($1, $2, $3, $4)
     ON CONFLICT (namespace, hash) DO UPDATE SET touched = excluded.touched";
pub(crate) const SITE_BLOB: &str =
    "SELECT content FROM site_blobs WHERE namespace = $1 AND hash = $2";
pub(crate) const SITE_BLOB_BYTES: &str =
    "SELECT CAST(COALESCE(SUM(length(content)), 0) AS BIGINT) FROM site_blobs
     WHERE namespace = $1";
pub(crate) const SITE: &str = "SELECT doc FROM sites WHERE namespace = $1 AND name = $2";
pub(crate) const PUT_SITE: &str = "INSERT INTO sites (namespace, name, doc) VALUES ($1, $2, $3)
     ON CONFLICT (namespace, name) DO UPDATE SET doc = excluded.doc";
pub(crate) const DELETE_SITE: &str =
    "DELETE FROM sites WHERE namespace = $1 AND name = $2 RETURNING doc";
pub(crate) const LIST_SITES: &str = "SELECT doc FROM sites WHERE namespace = $1 ORDER BY name";

pub(crate) const TRIGGER: &str = "SELECT doc FROM triggers WHERE namespace = $1 AND name = $2";
pub(crate) const CREATE_TRIGGER: &str =
    "INSERT INTO triggers (namespace, name, version, doc) VALUES ($1, $2, $3, $4)
     ON CONFLICT DO NOTHING";
pub(crate) const REPLACE_TRIGGER: &str = "UPDATE triggers SET version = $1, doc = $2
     WHERE namespace = $3 AND name = $4 AND version = $5";
pub(crate) const DELETE_TRIGGER_SCHEDULE: &str =
    "DELETE FROM schedules WHERE namespace = $1 AND trigger = $2";
pub(crate) const DELETE_TRIGGER: &str =
    "DELETE FROM triggers WHERE namespace = $1 AND name = $2 RETURNING doc";
pub(crate) const LIST_TRIGGERS: &str =
    "SELECT doc FROM triggers WHERE namespace = $1 ORDER BY name LIMIT $2 OFFSET $3";
pub(crate) const COUNT_TRIGGERS: &str = "SELECT COUNT(*) FROM triggers WHERE namespace = $1";

pub(crate) const RULE: &str = "SELECT doc FROM rules WHERE namespace = $1 AND name = $2";
pub(crate) const CREATE_RULE: &str =
    "INSERT INTO rules (namespace, name, version, trigger, doc) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING";
pub(crate) const REPLACE_RULE: &str = "UPDATE rules SET version = $1, trigger = $2, doc = $3
     WHERE namespace = $4 AND name = $5 AND version = $6";
pub(crate) const DELETE_RULE: &str =
    "DELETE FROM rules WHERE namespace = $1 AND name = $2 RETURNING doc";
pub(crate) const LIST_RULES: &str =
    "SELECT doc FROM rules WHERE namespace = $1 ORDER BY name LIMIT $2 OFFSET $3";
pub(crate) const COUNT_RULES: &str = "SELECT COUNT(*) FROM rules WHERE namespace = $1";
pub(crate) const RULES_OF_TRIGGER: &str =
    "SELECT doc FROM rules WHERE namespace = $1 AND trigger = $2 ORDER BY name";

/// The columns of a schedule, in the order the backends read them.
macro_rules! schedule_columns {
    () => {
        "namespace, trigger, doc, next_ms, pending_ms, owner, lease_ms, fired"
    };
}
pub(crate) const PUT_SCHEDULE: &str =
    "INSERT INTO schedules (namespace, trigger, doc, next_ms, pending_ms, owner, lease_ms, fired)
     VALUES ($1, $2, $3, $4, NULL, NULL, 0, 0)
     ON CONFLICT (namespace, trigger)
     DO UPDATE SET doc = excluded.doc, next_ms = excluded.next_ms, pending_ms = NULL";
pub(crate) const SCHEDULE: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules WHERE namespace = $1 AND trigger = $2"
);
/// Due ticks and pending ticks, each found by its own index.
pub(crate) const DUE_SCHEDULES: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules
     WHERE next_ms <= $1 AND pending_ms IS NULL
       AND (owner = $2 OR owner IS NULL OR lease_ms < $1)
     UNION ALL SELECT ",
    schedule_columns!(),
    " FROM schedules
     WHERE pending_ms IS NOT NULL AND (owner = $2 OR owner IS NULL OR lease_ms < $1)
     ORDER BY next_ms LIMIT $3"
);
pub(crate) const CLAIM_TICK: &str =
    "UPDATE schedules SET next_ms = $1, pending_ms = $2, owner = $3, lease_ms = $4
     WHERE namespace = $5 AND trigger = $6 AND next_ms = $2 AND pending_ms IS NULL
       AND (owner = $3 OR owner IS NULL OR lease_ms < $7)";
pub(crate) const SKIP_TICKS: &str = "UPDATE schedules SET next_ms = $1, owner = $2, lease_ms = $3
     WHERE namespace = $4 AND trigger = $5 AND next_ms = $6 AND pending_ms IS NULL
       AND (owner = $2 OR owner IS NULL OR lease_ms < $7)";
pub(crate) const ADOPT_PENDING: &str = "UPDATE schedules SET owner = $1, lease_ms = $2
     WHERE namespace = $3 AND trigger = $4 AND pending_ms = $5
       AND (owner = $1 OR owner IS NULL OR lease_ms < $6)";
pub(crate) const FINISH_TICK: &str = "UPDATE schedules SET pending_ms = NULL, fired = fired + 1
     WHERE namespace = $1 AND trigger = $2 AND pending_ms = $3";
pub(crate) const RENEW_SCHEDULES: &str = "UPDATE schedules SET lease_ms = $1 WHERE owner = $2";
/// Walks the `next_ms` index from the soonest tick to the first this owner may fire.
pub(crate) const EARLIEST_TICK: &str = "SELECT next_ms FROM schedules
     WHERE next_ms IS NOT NULL AND (owner = $1 OR owner IS NULL OR lease_ms < $2)
     ORDER BY next_ms LIMIT 1";
pub(crate) const RELEASE_SCHEDULES: &str = "UPDATE schedules SET owner = NULL, lease_ms = 0";

/// The columns of a subscription, in the order the backends read them.
macro_rules! subscription_columns {
    () => {
        "namespace, trigger, doc, owner, lease_ms, status"
    };
}
pub(crate) const PUT_SUBSCRIPTION: &str =
    "INSERT INTO subscriptions (namespace, trigger, doc, runs, owner, lease_ms, status)
     VALUES ($1, $2, $3, $4, NULL, 0, '{}')
     ON CONFLICT (namespace, trigger)
     DO UPDATE SET doc = excluded.doc, runs = excluded.runs, status = '{}'";
pub(crate) const SUBSCRIPTION: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions WHERE namespace = $1 AND trigger = $2"
);
pub(crate) const DELETE_SUBSCRIPTION: &str =
    "DELETE FROM subscriptions WHERE namespace = $1 AND trigger = $2";
pub(crate) const RUNNABLE_SUBSCRIPTIONS: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions
     WHERE runs = 1 AND (owner = $1 OR owner IS NULL OR lease_ms < $2)"
);
pub(crate) const CLAIM_SUBSCRIPTION: &str = "UPDATE subscriptions SET owner = $1, lease_ms = $2
     WHERE namespace = $3 AND trigger = $4 AND runs = 1
       AND (owner = $1 OR owner IS NULL OR lease_ms < $5)";
pub(crate) const RENEW_SUBSCRIPTIONS: &str =
    "UPDATE subscriptions SET lease_ms = $1 WHERE owner = $2";
pub(crate) const SUBSCRIPTION_STATUS: &str =
    "UPDATE subscriptions SET status = $1 WHERE namespace = $2 AND trigger = $3";
pub(crate) const RELEASE_SUBSCRIPTIONS: &str =
    "UPDATE subscriptions SET owner = NULL, lease_ms = 0";

/// The columns of a mapping, in the order the backends read them.
macro_rules! mapping_columns {
    () => {
        "namespace, rule, trigger, checkpoint, state, updated_ms"
    };
}
/// Upserts a mapping if its rule exists (the `WHERE` also keeps SQLite from reading `ON` as a
/// join).
pub(crate) const PUT_MAPPING: &str = concat!(
    "INSERT INTO mappings (",
    mapping_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6
     WHERE EXISTS (SELECT 1 FROM rules WHERE namespace = $1 AND name = $2)
     ON CONFLICT (namespace, rule) DO UPDATE SET trigger = excluded.trigger,
        checkpoint = excluded.checkpoint, state = excluded.state,
        updated_ms = excluded.updated_ms"
);
pub(crate) const MAPPING: &str = concat!(
    "SELECT ",
    mapping_columns!(),
    " FROM mappings WHERE namespace = $1 AND rule = $2"
);
pub(crate) const MAPPINGS: &str = concat!(
    "SELECT ",
    mapping_columns!(),
    " FROM mappings WHERE namespace = $1 ORDER BY rule"
);
pub(crate) const DELETE_MAPPING: &str = "DELETE FROM mappings WHERE namespace = $1 AND rule = $2";

pub(crate) const PUT_PENDING_UNLESS_RECORDED: &str = "INSERT INTO pending (id, accepted, message)
     SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM activations WHERE id = $1)
     ON CONFLICT DO NOTHING";
pub(crate) const IS_ACCEPTED: &str = "SELECT 1 FROM pending WHERE id = $1
     UNION ALL SELECT 1 FROM activations WHERE id = $1 AND namespace = $2 LIMIT 1";
pub(crate) const PENDING: &str = "SELECT id, accepted, message FROM pending ORDER BY accepted";

pub(crate) const ACTIVATION: &str = "SELECT doc FROM activations WHERE id = $1 AND namespace = $2";
pub(crate) const DELETE_ACTIVATIONS_BEFORE: &str = "DELETE FROM activations WHERE start < $1
     AND namespace IN (SELECT name FROM namespaces)";

pub(crate) const WORKFLOW: &str = "SELECT doc FROM workflows WHERE namespace = $1 AND name = $2";
pub(crate) const CREATE_WORKFLOW: &str =
    "INSERT INTO workflows (namespace, name, version, doc) VALUES ($1, $2, $3, $4)
     ON CONFLICT DO NOTHING";
pub(crate) const REPLACE_WORKFLOW: &str = "UPDATE workflows SET version = $1, doc = $2
     WHERE namespace = $3 AND name = $4 AND version = $5";
pub(crate) const LIST_WORKFLOWS: &str =
    "SELECT doc FROM workflows WHERE namespace = $1 ORDER BY name LIMIT $2 OFFSET $3";
pub(crate) const DELETE_WORKFLOW: &str =
    "DELETE FROM workflows WHERE namespace = $1 AND name = $2 RETURNING doc";

pub(crate) const EXECUTION: &str = "SELECT doc FROM executions WHERE namespace = $1 AND id = $2";
pub(crate) const EXECUTION_NAMED: &str =
    "SELECT doc FROM executions WHERE namespace = $1 AND workflow = $2 AND name = $3";
/// Parameters: namespace, workflow or NULL, status or NULL, limit, offset.
pub(crate) const LIST_EXECUTIONS: &str = "SELECT doc FROM executions WHERE namespace = $1
       AND (CAST($2 AS TEXT) IS NULL OR workflow = $2)
       AND (CAST($3 AS TEXT) IS NULL OR status = $3)
     ORDER BY start_ms DESC, id DESC LIMIT $4 OFFSET $5";
pub(crate) const RUN_STATE: &str = "SELECT seq, snapshot, wake_ms, owner, lease_ms
     FROM workflow_runs WHERE namespace = $1 AND id = $2";
/// Runs whose lease ran out; an unowned run's `lease_ms` is 0, so they are in that range
/// of the lease index too.
pub(crate) const CLAIMABLE_RUNS: &str = "SELECT namespace, id FROM workflow_runs
     WHERE lease_ms < $1 AND (owner IS NULL OR owner <> $2) ORDER BY lease_ms LIMIT $3";
pub(crate) const CLAIM_RUN: &str = "UPDATE workflow_runs SET owner = $1, lease_ms = $2
     WHERE namespace = $3 AND id = $4 AND (owner = $1 OR owner IS NULL OR lease_ms < $5)";
pub(crate) const RENEW_RUNS: &str = "UPDATE workflow_runs SET lease_ms = $1 WHERE owner = $2";
pub(crate) const RELEASE_RUNS: &str =
    "UPDATE workflow_runs SET owner = NULL, lease_ms = 0 WHERE owner IS NOT NULL";
pub(crate) const HISTORY: &str = "SELECT seq, ts, kind, details FROM workflow_history
     WHERE namespace = $1 AND execution = $2 AND seq > $3 ORDER BY seq LIMIT $4";
pub(crate) const HISTORY_REVERSE: &str = "SELECT seq, ts, kind, details FROM workflow_history
     WHERE namespace = $1 AND execution = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4";
pub(crate) const POST_SIGNAL: &str =
    "INSERT INTO workflow_signals (namespace, execution, doc) SELECT $1, $2, $3
     WHERE EXISTS (SELECT 1 FROM executions
                   WHERE namespace = $1 AND id = $2 AND status = 'RUNNING')";
pub(crate) const SIGNALS: &str = "SELECT id, doc FROM workflow_signals
     WHERE namespace = $1 AND execution = $2 ORDER BY id";
pub(crate) const SIGNALLED_RUNS: &str = "SELECT DISTINCT s.namespace, s.execution
     FROM workflow_signals s JOIN workflow_runs r
       ON r.namespace = s.namespace AND r.id = s.execution
     WHERE r.owner = $1 ORDER BY s.namespace, s.execution";

pub(crate) const DELIVERY_CONFIG: &str =
    "SELECT doc FROM delivery_configs WHERE namespace = $1 AND action = $2";
pub(crate) const PUT_DELIVERY_CONFIG: &str =
    "INSERT INTO delivery_configs (namespace, action, doc) VALUES ($1, $2, $3)
     ON CONFLICT (namespace, action) DO UPDATE SET doc = excluded.doc";
pub(crate) const DELETE_DELIVERY_CONFIG: &str =
    "DELETE FROM delivery_configs WHERE namespace = $1 AND action = $2";
/// The columns of a delivery, in the order the backends read them.
macro_rules! delivery_columns {
    () => {
        "attempt, due_ms, owner, lease_ms, doc"
    };
}
pub(crate) const PUT_DELIVERY: &str = concat!(
    "INSERT INTO deliveries (namespace, id, ",
    delivery_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
);
pub(crate) const DELIVERY: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries WHERE namespace = $1 AND id = $2"
);
pub(crate) const DUE_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries WHERE due_ms <= $1 AND (owner = $2 OR owner IS NULL OR lease_ms < $1)
     ORDER BY due_ms LIMIT $3"
);
pub(crate) const UPDATE_DELIVERY: &str =
    "UPDATE deliveries SET attempt = $1, due_ms = $2, owner = $3, lease_ms = $4, doc = $5
     WHERE namespace = $6 AND id = $7 AND attempt = $8
       AND (owner IS NULL OR owner = $3 OR lease_ms < $9)";
/// A dead letter; one of the same id (a re-driven delivery that failed again) is replaced.
pub(crate) const PUT_DEAD_LETTER: &str =
    "INSERT INTO dead_letters (namespace, id, created_ms, doc) VALUES ($1, $2, $3, $4)
     ON CONFLICT (namespace, id) DO UPDATE SET created_ms = excluded.created_ms, doc = excluded.doc";
pub(crate) const RELEASE_DELIVERIES: &str =
    "UPDATE deliveries SET owner = NULL, lease_ms = 0 WHERE owner IS NOT NULL";
pub(crate) const DEAD_LETTERS: &str = "SELECT doc FROM dead_letters WHERE namespace = $1
     ORDER BY created_ms DESC, id DESC LIMIT $2 OFFSET $3";
pub(crate) const DEAD_LETTER: &str =
    "SELECT doc FROM dead_letters WHERE namespace = $1 AND id = $2";
pub(crate) const DELETE_DEAD_LETTER: &str =
    "DELETE FROM dead_letters WHERE namespace = $1 AND id = $2";
/// Inserts a key, or takes over one that expired by `$8`; changes no row when an unexpired
/// one exists.
pub(crate) const CLAIM_IDEMPOTENCY_KEY: &str =
    "INSERT INTO idempotency_keys (namespace, key, activation_id, expires_ms, action, digest,
                                   claimed_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (namespace, key) DO UPDATE
     SET activation_id = excluded.activation_id, expires_ms = excluded.expires_ms,
         action = excluded.action, digest = excluded.digest, claimed_ms = excluded.claimed_ms
     WHERE idempotency_keys.expires_ms <= $8";
/// Gives a key to a new claim if it still names activation `$8`.
pub(crate) const REPLACE_IDEMPOTENCY_KEY: &str = "UPDATE idempotency_keys
     SET activation_id = $1, expires_ms = $2, action = $3, digest = $4, claimed_ms = $5
     WHERE namespace = $6 AND key = $7 AND activation_id = $8";
pub(crate) const RELEASE_IDEMPOTENCY_KEY: &str =
    "DELETE FROM idempotency_keys WHERE namespace = $1 AND key = $2 AND activation_id = $3";
pub(crate) const IDEMPOTENCY_KEY: &str =
    "SELECT activation_id, expires_ms, action, digest, claimed_ms FROM idempotency_keys
     WHERE namespace = $1 AND key = $2";
pub(crate) const SWEEP_IDEMPOTENCY_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE expires_ms <= $1";

/// A parameter of a statement built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// The `FROM ... WHERE ...` of an activation query and its parameters (`$1`...).
pub(crate) fn activation_filter(q: &crate::ActivationQuery) -> (String, Vec<Arg>) {
    let mut sql = String::from(" FROM activations WHERE namespace = $1");
    let mut args = vec![Arg::Text(q.namespace.clone())];
    let mut and = |column_op: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&format!(" AND {column_op} ${}", args.len()));
    };
    if let Some(name) = &q.name {
        and("name =", Arg::Text(name.clone()));
    }
    if let Some(since) = q.since {
        and("start >=", Arg::Int(since as i64));
    }
    if let Some(upto) = q.upto {
        and("start <=", Arg::Int(upto as i64));
    }
    (sql, args)
}

/// The activation list: `filter` (from [`activation_filter`], with `n` parameters) newest
/// first, ties by id, then limit and offset as parameters `n + 1` and `n + 2`.
pub(crate) fn list_activations(filter: &str, n: usize) -> String {
    format!(
        "SELECT doc{filter} ORDER BY start DESC, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    )
}

pub(crate) fn count_activations(filter: &str) -> String {
    format!("SELECT COUNT(*){filter}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers of the `$n` parameters of `sql`, in order of appearance.
    fn parameters(sql: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = sql;
        while let Some(i) = rest.find('$') {
            rest = &rest[i + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            assert!(!digits.is_empty(), "a `$` without a number in {sql}");
            out.push(digits.parse().unwrap());
        }
        out
    }

    /// SQLite numbers `$n` by first appearance: each statement must introduce `$1`, `$2`,
    /// ... in that order, or SQLite would bind its parameters to the wrong places.
    #[test]
    fn every_statement_names_its_parameters_in_order() {
        let q = crate::ActivationQuery {
            namespace: "ns".into(),
            name: Some("a".into()),
            since: Some(1),
            upto: Some(2),
            skip: 0,
            limit: 10,
        };
        let (filter, args) = activation_filter(&q);
        let built = [
            list_activations(&filter, args.len()),
            count_activations(&filter),
        ];
        let fixed = [
            CREATE_NAMESPACE,
            NAMESPACE_BY_UUID,
            NAMESPACE_BY_NAME,
            LIST_NAMESPACES,
            SET_NAMESPACE_KEY,
            SET_NAMESPACE_LIMITS,
            ACTION_WITH_CODE,
            ACTION_WITHOUT_CODE,
            ACTION_CODE,
            CREATE_ACTION,
            REPLACE_ACTION_WITH_CODE,
            REPLACE_ACTION_DOC,
            DELETE_ACTION,
            LIST_ACTIONS,
            COUNT_ACTIONS,
            CODE_HASHES,
            PACKAGE,
            CREATE_PACKAGE,
            REPLACE_PACKAGE,
            LIST_PACKAGES,
            COUNT_PACKAGES,
            PUT_ROUTE,
            DELETE_ROUTES,
            LIST_ROUTES,
            PUT_SITE_BLOB,
            SITE_BLOB,
            SITE_BLOB_BYTES,
            SITE,
            PUT_SITE,
            DELETE_SITE,
            LIST_SITES,
            TRIGGER,
            CREATE_TRIGGER,
            REPLACE_TRIGGER,
            DELETE_TRIGGER_SCHEDULE,
            DELETE_TRIGGER,
            LIST_TRIGGERS,
            COUNT_TRIGGERS,
            RULE,
            CREATE_RULE,
            REPLACE_RULE,
            DELETE_RULE,
            LIST_RULES,
            COUNT_RULES,
            RULES_OF_TRIGGER,
            PUT_SCHEDULE,
            SCHEDULE,
            DUE_SCHEDULES,
            CLAIM_TICK,
            SKIP_TICKS,
            ADOPT_PENDING,
            FINISH_TICK,
            RENEW_SCHEDULES,
            EARLIEST_TICK,
            RELEASE_SCHEDULES,
            PUT_SUBSCRIPTION,
            SUBSCRIPTION,
            DELETE_SUBSCRIPTION,
            RUNNABLE_SUBSCRIPTIONS,
            CLAIM_SUBSCRIPTION,
            RENEW_SUBSCRIPTIONS,
            SUBSCRIPTION_STATUS,
            RELEASE_SUBSCRIPTIONS,
            PUT_MAPPING,
            MAPPING,
            MAPPINGS,
            DELETE_MAPPING,
            PUT_PENDING_UNLESS_RECORDED,
            PENDING,
            IS_ACCEPTED,
            ACTIVATION,
            DELETE_ACTIVATIONS_BEFORE,
            WORKFLOW,
            CREATE_WORKFLOW,
            REPLACE_WORKFLOW,
            LIST_WORKFLOWS,
            DELETE_WORKFLOW,
            EXECUTION,
            EXECUTION_NAMED,
            LIST_EXECUTIONS,
            RUN_STATE,
            CLAIMABLE_RUNS,
            CLAIM_RUN,
            RENEW_RUNS,
            RELEASE_RUNS,
            HISTORY,
            HISTORY_REVERSE,
            POST_SIGNAL,
            SIGNALS,
            SIGNALLED_RUNS,
            DELIVERY_CONFIG,
            PUT_DELIVERY_CONFIG,
            DELETE_DELIVERY_CONFIG,
            PUT_DELIVERY,
            DELIVERY,
            DUE_DELIVERIES,
            UPDATE_DELIVERY,
            PUT_DEAD_LETTER,
            RELEASE_DELIVERIES,
            DEAD_LETTERS,
            DEAD_LETTER,
            DELETE_DEAD_LETTER,
            CLAIM_IDEMPOTENCY_KEY,
            IDEMPOTENCY_KEY,
            REPLACE_IDEMPOTENCY_KEY,
            RELEASE_IDEMPOTENCY_KEY,
            SWEEP_IDEMPOTENCY_KEYS,
        ];
        for sql in fixed
            .iter()
            .copied()
            .chain(built.iter().map(String::as_str))
        {
            let mut highest = 0;
            for n in parameters(sql) {
                assert!(
                    n <= highest + 1,
                    "`${n}` comes before `${}` in {sql}",
                    highest + 1
                );
                highest = highest.max(n);
            }
            assert!(!sql.contains('?'), "a `?` parameter in {sql}");
        }
    }
}
