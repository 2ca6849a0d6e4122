#![allow(clippy::unwrap_used)]
//! Integration tests: each starts a real `gust serve` on port 0 with a temporary data
//! directory and drives it over HTTP. Modules by what they protect.

mod api;
mod apis;
mod changes;
mod cli;
mod console;
mod delivery;
mod density;
mod durability;
mod guard;
mod handlers;
mod hostile;
mod isolation;
mod lambda_api;
mod lambda_http;
mod lambda_runtime;
mod live;
mod mapping_reads;
mod mappings;
mod metrics;
mod owclient;
mod packages;
mod processes;
mod runtime;
mod secrets;
mod sequences;
mod sites;
mod sources;
mod tls;
mod tokens;
mod tracing;
mod triggers;
mod web;
mod workflows;
mod workflows_api;

use gust_testkit::Server;

pub fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_gust"))
}

/// A server started with `args` that runs Node.js and Python in the process sandbox, or
/// `None` where this machine cannot (said on stderr with `test`'s name).
pub async fn process_server(test: &str, args: &[&str]) -> Option<Server> {
    if !gust_testkit::is_root() {
        eprintln!("SKIPPED {test}: the process sandbox needs root");
        return None;
    }
    let s = Server::start_with(env!("CARGO_BIN_EXE_gust"), args);
    let info = s.call("GET", "/api/v1", None).await.body;
    if info["runtimes"]["nodejs"].is_null() || info["runtimes"]["python"].is_null() {
        eprintln!("SKIPPED {test}: node or python3 not found in /usr/bin or /usr/local/bin");
        return None;
    }
    Some(s)
}

/// The value of annotation `key` of an activation record (`null` when it has none).
pub fn annotation<'a>(record: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    record["annotations"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["key"] == key))
        .map_or(&serde_json::Value::Null, |x| &x["value"])
}

/// The store `s` runs on, opened directly (as a crashed server would have left it).
pub async fn open_store(s: &Server) -> Box<dyn gust_store::Store> {
    use gust_store::postgres::PostgresStore;
    use gust_store::sqlite::{Durability, SqliteStore};
    match s.store_args().get(1) {
        Some(url) => Box::new(PostgresStore::connect(url).await.unwrap()),
        None => {
            Box::new(SqliteStore::open(s.data_dir.join("gust.db"), Durability::Process).unwrap())
        }
    }
}
