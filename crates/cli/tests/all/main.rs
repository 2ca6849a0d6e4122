#![allow(clippy::unwrap_used)]
//! Integration tests: each starts a real `gust serve` on port 0 with a temporary data
//! directory and drives it over HTTP. Modules by what they protect.

mod api;
mod cli;
mod durability;
mod hostile;
mod isolation;
mod runtime;

use gust_testkit::Server;

pub fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_gust"))
}
