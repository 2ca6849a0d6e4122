#![allow(clippy::unwrap_used)]
//! Integration tests: each starts a real `gust serve` on port 0 with a temporary data
//! directory and drives it over HTTP. Modules by what they protect.

mod api;
mod apis;
mod cli;
mod durability;
mod handlers;
mod hostile;
mod isolation;
mod packages;
mod processes;
mod runtime;
mod sequences;
mod sites;
mod web;

use gust_testkit::Server;

pub fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_gust"))
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
