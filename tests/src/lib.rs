//! Glassguard's end-to-end test support: real device cores
//! (`glassguard-core`) against the real server (`glassguard-server`), with
//! a fault-injecting proxy between them.
//!
//! - [`proxy`]: the TCP proxy that drops, delays, cuts and duplicates
//!   requests (answers cut, or requests cut mid-body), shapes a slow link,
//!   goes offline, and follows the server across restarts.
//! - [`harness`]: servers on port 0 (SQLite or PostgreSQL), restarts and
//!   resets, the people (admin, adjuster, technician, a shop and its staff),
//!   and devices that can be killed and reopened on the same database.
//!
//! The tests live in `tests/sync_e2e.rs` (sync), `tests/uploads_e2e.rs`
//! (a resumable upload through cuts) and `tests/tus_client.rs` (tuspy, an
//! official tus client, against the server); the benchmarks in
//! `benches/sync.rs` and `benches/uplink_2g.rs` (a claim with three photos
//! over an emulated 2G link).

pub mod harness;
pub mod proxy;
