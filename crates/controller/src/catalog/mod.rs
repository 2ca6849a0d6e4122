//! The catalog: actions, packages and API routes, as a namespace's owner writes and reads
//! them, and the resolution of the action a request names (through packages and bindings).
//! Reads go through short-lived caches; every write forgets what it changed.

pub mod actions;
pub mod apis;
pub mod packages;
