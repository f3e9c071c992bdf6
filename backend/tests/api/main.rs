//! Black-box API tests: the real server on 127.0.0.1:0, a real HTTP client.
//! Each test gets its own SQLite file (and, for the conformance half, its own
//! PostgreSQL database).

mod audit;
mod authz_matrix;
mod conformance;
mod harness;
mod pii;
mod refusals;
mod story;
mod sync;
mod tls;
mod uploads;
