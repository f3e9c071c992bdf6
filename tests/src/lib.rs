//! Glassguard's end-to-end test support: real device cores
//! (`glassguard-core`) against the real server (`glassguard-server`), with
//! a fault-injecting proxy between them.
//!
//! - [`proxy`]: the TCP proxy that drops, delays, cuts and duplicates
//!   requests, goes offline, and follows the server across restarts.
//! - [`harness`]: servers on port 0 (SQLite or PostgreSQL), restarts and
//!   resets, the people (admin, adjuster, technician, a shop and its staff),
//!   and devices that can be killed and reopened on the same database.
//!
//! The tests live in `tests/sync_e2e.rs`; the sync benchmark in
//! `benches/sync.rs`.

pub mod harness;
pub mod proxy;
