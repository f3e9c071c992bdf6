//! Black-box API tests: the real server on 127.0.0.1:0, a real HTTP client.
//! Each test gets its own SQLite file (and, for the conformance half, its own
//! PostgreSQL database).

mod audit;
mod authz_matrix;
mod backup;
mod conformance;
mod harness;
mod kms;
mod pii;
mod refusals;
mod secrets;
mod story;
mod sync;
mod tls;
mod uploads;
