//! Storage: one interface over SQLite (the embedded default) and PostgreSQL.
//!
//! The SQL is written once, in the subset both databases share (`$1`
//! placeholders, `ON CONFLICT`, partial unique indexes, `RETURNING`), and runs
//! through sqlx's `Any` driver. Types are kept to what both agree on: BIGINT
//! for integers, times (epoch ms) and money (paise), TEXT for ids and dates,
//! BLOB/BYTEA for ciphertexts and blind indexes.
//!
//! SQLite allows one writer at a time, so the store keeps a one-connection
//! write pool (no `SQLITE_BUSY` on lock upgrade) beside a read pool; on
//! PostgreSQL both are the same pool. Domain methods live in one file per
//! noun (`partners`, `users`, `otps`, `sessions`, `policies`, `claims`,
//! `vouchers`, `notifications`, `audit`, `uploads`); they take the keyring where a row
//! holds PII, so no plaintext PII reaches the database.

pub mod audit;
pub mod bot;
pub mod changes;
pub mod claims;
pub mod keys;
mod lite;
pub mod notifications;
pub mod otps;
pub mod partners;
pub mod policies;
mod row;
pub mod sessions;
pub mod sync;
pub mod uploads;
pub mod users;
pub mod vouchers;

pub use audit::AuditRecord;
pub use claims::{ClaimRow, CreateOutcome, NewClaim, NewVoucher, Transition, TransitionOutcome};
pub use notifications::Outgoing;
pub use otps::{OtpCheck, OtpIssue};
pub use partners::RegistrationConflict;
pub use policies::{NewPolicy, PolicyRow, SaleOutcome, Scope};
pub use sessions::{AccessCheck, TokenPair};
pub use sessions::{AuthedUser, RefreshOutcome};
pub use users::NewUser;
pub use users::UserRow;
pub use vouchers::RedeemOutcome;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe};
use std::path::Path;
use std::time::Duration;

use crate::config::DatabaseUrl;
use row::{Column, Columns};

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Storage failures. Constraint violations the domain cares about are mapped
/// to domain errors by the methods that expect them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A read on the SQLite point-read path failed.
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored value does not decode (corruption or a bug).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A field could not be decrypted.
    #[error("crypto: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// Store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store.
#[derive(Clone, Debug)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    dialect: Dialect,
    /// SQLite only: the point-read path (see [`lite`]).
    lite: Option<std::sync::Arc<lite::LiteReaders>>,
    audit_tx: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<audit::AuditMsg>>>,
}

/// A write transaction.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A migration: its SQL for both databases, or one for each.
enum Migration {
    Both(&'static str),
    Each {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

const MIGRATIONS: &[(i64, Migration)] = &[
    (
        1,
        Migration::Both(include_str!("../../migrations/0001_init.sql")),
    ),
    (
        2,
        Migration::Both(include_str!("../../migrations/0002_sync.sql")),
    ),
    (
        3,
        Migration::Both(include_str!("../../migrations/0003_bot.sql")),
    ),
    (
        4,
        Migration::Both(include_str!("../../migrations/0004_feed_tag.sql")),
    ),
    (
        5,
        Migration::Both(include_str!("../../migrations/0005_uploads.sql")),
    ),
    (
        6,
        Migration::Both(include_str!("../../migrations/0006_audit_chain.sql")),
    ),
    (
        7,
        Migration::Each {
            sqlite: include_str!("../../migrations/0007_audit_append_only.sqlite.sql"),
            postgres: include_str!("../../migrations/0007_audit_append_only.postgres.sql"),
        },
    ),
];

/// The migration after which rows written before the hash chain are chained
/// (before the append-only triggers exist).
const AUDIT_CHAIN_MIGRATION: i64 = 6;

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &DatabaseUrl) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let store = match url {
            DatabaseUrl::Sqlite(path) => Self::open_sqlite(path).await?,
            DatabaseUrl::Postgres(url) => {
                use secrecy::ExposeSecret;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url.expose_secret())
                    .await?;
                let store = Store {
                    read: pool.clone(),
                    write: pool,
                    dialect: Dialect::Postgres,
                    lite: None,
                    audit_tx: Default::default(),
                };
                store.migrate().await?;
                store
            }
        };
        Ok(store)
    }

    async fn open_sqlite(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Corrupt(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(sqlite_pragmas)
            .connect(&url)
            .await?;
        // The writer creates the file, switches it to WAL and migrates before
        // readers open it: a reader that cached the old schema would read a
        // `SELECT *` of a changed table with the old column count.
        sqlx::query("SELECT 1").execute(&write).await?;
        Store {
            read: write.clone(),
            write: write.clone(),
            dialect: Dialect::Sqlite,
            lite: None,
            audit_tx: Default::default(),
        }
        .migrate()
        .await?;
        let read = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(2)
            .after_connect(sqlite_pragmas)
            .connect(&url)
            .await?;
        Ok(Store {
            read,
            write,
            dialect: Dialect::Sqlite,
            lite: Some(std::sync::Arc::new(lite::LiteReaders::new(path))),
            audit_tx: Default::default(),
        })
    }

    /// The database behind the store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes the connection pools (waits for lent connections to return).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.write.begin().await?)
    }

    /// Runs a read on the SQLite point-read path; `None` on PostgreSQL or
    /// when that path is busy, and the caller reads through sqlx.
    pub(crate) fn lite_read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Option<Result<T>> {
        self.lite.as_ref()?.with(f)
    }

    /// The read pool (for checks made before a write transaction begins).
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&self.write)
            .await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.begin().await?;
            if self.dialect == Dialect::Postgres {
                // Replicas starting together must not migrate twice.
                sqlx::query("SELECT pg_advisory_xact_lock(7345001)")
                    .execute(&mut *tx)
                    .await?;
            }
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                tx.commit().await?;
                continue;
            }
            let sql = match (sql, self.dialect) {
                (Migration::Both(sql), _) => *sql,
                (Migration::Each { sqlite, .. }, Dialect::Sqlite) => *sqlite,
                (Migration::Each { postgres, .. }, Dialect::Postgres) => *postgres,
            };
            let sql = match self.dialect {
                Dialect::Sqlite => sql
                    .replace("BLOB_T", "BLOB")
                    .replace("SERIAL_PK", "INTEGER PRIMARY KEY AUTOINCREMENT"),
                Dialect::Postgres => sql
                    .replace("BLOB_T", "BYTEA")
                    .replace("SERIAL_PK", "BIGSERIAL PRIMARY KEY"),
            };
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            if *version == AUDIT_CHAIN_MIGRATION {
                audit::chain_existing(&mut tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

type ConnectHook<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// Every SQLite connection: WAL, foreign keys, a busy timeout, and freed
/// pages overwritten (so deleted PII ciphertext does not linger).
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> ConnectHook<'_> {
    Box::pin(async move {
        sqlx::raw_sql(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 10000; PRAGMA secure_delete = ON;",
        )
        .execute(conn)
        .await?;
        Ok(())
    })
}

// Helpers shared by the domain files: conversions at the column boundary.

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {v}")))
}

pub(crate) fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn from_day(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("bad date {s}")))
}

pub(crate) fn get<T: Column>(row: &(impl Columns + ?Sized), col: &str) -> Result<T> {
    row.column(col)
}

/// An enum's wire name (its serde spelling), for TEXT columns.
pub(crate) fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// Reads an enum stored by [`wire`].
pub(crate) fn unwire<T: serde::de::DeserializeOwned>(
    row: &(impl Columns + ?Sized),
    col: &str,
) -> Result<T> {
    let s: String = row.column(col)?;
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}")))
}

/// Reads an optional enum stored by [`wire`].
pub(crate) fn unwire_opt<T: serde::de::DeserializeOwned>(
    row: &(impl Columns + ?Sized),
    col: &str,
) -> Result<Option<T>> {
    let s: Option<String> = row.column(col)?;
    s.map(|s| {
        serde_json::from_value(serde_json::Value::String(s.clone()))
            .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}")))
    })
    .transpose()
}

pub(crate) fn parse<T: std::str::FromStr>(row: &(impl Columns + ?Sized), col: &str) -> Result<T> {
    let s: String = row.column(col)?;
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}")))
}

pub(crate) fn parse_opt<T: std::str::FromStr>(
    row: &(impl Columns + ?Sized),
    col: &str,
) -> Result<Option<T>> {
    let s: Option<String> = row.column(col)?;
    s.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}")))
    })
    .transpose()
}
