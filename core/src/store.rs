//! The encrypted local store: one SQLCipher database in the data directory.
//!
//! Opening is careful about the order of things, because a wrong key must
//! leave the file exactly as it was:
//!
//! 1. open the file (created empty if it does not exist yet);
//! 2. check that the linked SQLite is SQLCipher (`PRAGMA cipher_version`),
//!    so a build mistake can never write data in the clear;
//! 3. `PRAGMA key` with the raw 256-bit key (no passphrase derivation: the
//!    key comes from the OS keystore);
//! 4. read `sqlite_master`: SQLCipher only decrypts the first page here, and a
//!    wrong key fails with "not a database";
//! 5. only then WAL, pragmas and the versioned migrations (`user_version`).
//!
//! Everything else in the crate reaches the database through
//! [`Store::call`], which runs a closure on a blocking thread with the one
//! connection, so async callers never block the runtime on disk I/O.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "glassguard.db";

/// The 256-bit key of the local database, from the OS keystore.
///
/// Kept in a [`SecretBox`]: zeroed on drop, redacted in `Debug`.
pub struct DbKey(SecretBox<[u8; 32]>);

impl DbKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey([REDACTED])")
    }
}

/// Versioned schema. Entry `i` moves the store from `user_version` `i` to
/// `i + 1`; append, never edit a released entry.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    -- Small facts: device id, pull cursor, last sync times, seq counter.
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    -- The signed-in session (at most one row).
    CREATE TABLE session (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        access_token TEXT NOT NULL,
        refresh_token TEXT NOT NULL,
        user_json TEXT NOT NULL
    ) STRICT;

    -- Commands waiting for, or done with, the server. `client_seq` is
    -- allocated from meta.last_client_seq in the same transaction as the row.
    CREATE TABLE outbox (
        client_seq INTEGER PRIMARY KEY,
        mutation_id TEXT NOT NULL UNIQUE,
        command TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'rejected', 'dismissed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        reject_code TEXT,
        reject_message TEXT,
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX outbox_by_state ON outbox (state, client_seq);

    -- What this device wrote and the server has not reflected back yet:
    -- sales ('sale'), claim drafts ('draft'), job outcomes ('outcome').
    CREATE TABLE local_records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        client_seq INTEGER,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    ) STRICT;

    -- The cached server view: entity JSON keyed by id, with a sort key.
    CREATE TABLE policies (id TEXT PRIMARY KEY, sort_key TEXT NOT NULL, body TEXT NOT NULL) STRICT;
    CREATE TABLE claims (id TEXT PRIMARY KEY, sort_key TEXT NOT NULL, body TEXT NOT NULL) STRICT;
    CREATE TABLE jobs (id TEXT PRIMARY KEY, sort_key TEXT NOT NULL, body TEXT NOT NULL) STRICT;
    CREATE TABLE vouchers (id TEXT PRIMARY KEY, sort_key TEXT NOT NULL, body TEXT NOT NULL) STRICT;
    CREATE TABLE plans (id TEXT PRIMARY KEY, position INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
    "#,
    // 2: the "is this phone already covered?" check of every sale looks the
    // IMEI up instead of reading every queued sale and cached policy (a
    // counter with thousands of sales queued took 50 ms a sale).
    r#"
    CREATE INDEX local_sales_by_imei ON local_records (json_extract(body, '$.imei'))
        WHERE kind = 'sale';
    CREATE INDEX policies_by_imei ON policies (json_extract(body, '$.imei'));
    "#,
    // 3: resumable uploads of blobs (see `uploads`).
    r#"
    -- Blobs to send over tus, then attach: one row per (blob, kind, target).
    -- `url` is the server's upload once created; `confirmed` the bytes the
    -- server has acknowledged; `bytes_sent` all body bytes sent (to tell
    -- how much went twice).
    CREATE TABLE uploads (
        sha256 TEXT NOT NULL,
        kind TEXT NOT NULL,
        target_id TEXT NOT NULL,
        path TEXT NOT NULL,
        length INTEGER NOT NULL,
        url TEXT,
        confirmed INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'attached', 'failed')),
        chunk_size INTEGER NOT NULL,
        bytes_sent INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        phash TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (sha256, kind, target_id)
    ) STRICT;
"#,
    // 4: photos taken on this device. The sealed original is a file under
    // <data_dir>/sealed/ named by its SHA-256 (only the insurer can open it);
    // here are the preview the user sees and the facts kept from EXIF. Its
    // upload is a row of `uploads`, written in the same transaction.
    r#"
    CREATE TABLE photos (
        sealed_sha256 TEXT PRIMARY KEY,
        target_kind TEXT NOT NULL,
        target_id TEXT NOT NULL,
        preview BLOB NOT NULL,
        sealed_len INTEGER NOT NULL,
        phash TEXT NOT NULL,
        plain_sha256 TEXT NOT NULL,
        format TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        captured_at TEXT,
        device_model TEXT,
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE INDEX photos_by_target ON photos (target_kind, target_id, created_at);
    "#,
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The open store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the store in `data_dir` with `key`; see the module docs.
    #[tracing::instrument(skip_all)]
    pub fn open(data_dir: &Path, key: &DbKey) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let cipher: Option<String> = conn
            .query_row("PRAGMA cipher_version", [], |r| r.get(0))
            .optional()?;
        if cipher.as_deref().is_none_or(str::is_empty) {
            return Err(Error::NotEncrypted);
        }
        let hex_key = Zeroizing::new(hex::encode(key.0.expose_secret()));
        let pragma = Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex_key.as_str()));
        conn.execute_batch(&pragma)?;
        drop((pragma, hex_key));
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
                return Err(Error::WrongKey { path });
            }
            Err(e) => return Err(e.into()),
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )?;
        let mut conn = conn;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled its transaction back when the
            // transaction dropped, so the connection is still consistent.
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::Internal(format!("store task failed: {e}")))?
    }

    /// Runs `f` with the connection on the current thread (for tests and `open`).
    pub fn call_sync<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

/// Applies the migrations the file has not seen, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
        tracing::info!(version = i + 1, "local store migrated");
    }
    Ok(())
}

/// Reads a `meta` value.
pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Writes a `meta` value.
pub fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Deletes a `meta` value.
pub fn meta_delete(conn: &Connection, key: &str) -> Result<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key(b: u8) -> DbKey {
        DbKey::new([b; 32])
    }

    fn user_version(store: &Store) -> i64 {
        store
            .call_sync(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn wrong_key_fails_cleanly_and_leaves_the_file_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &key(1)).unwrap();
            store.call_sync(|c| meta_set(c, "hello", "world")).unwrap();
        }
        let file = dir.path().join(DB_FILE);
        let before = std::fs::read(&file).unwrap();
        let mut listing_before: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        listing_before.sort();

        let err = Store::open(dir.path(), &key(2)).unwrap_err();
        assert!(matches!(err, Error::WrongKey { .. }), "{err:?}");
        assert!(err.to_string().contains("does not open"), "{err}");

        assert_eq!(std::fs::read(&file).unwrap(), before, "file bytes changed");
        let mut listing_after: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        listing_after.sort();
        assert_eq!(listing_after, listing_before, "files appeared or vanished");

        // The right key still opens it, data intact.
        let store = Store::open(dir.path(), &key(1)).unwrap();
        let v = store.call_sync(|c| meta_get(c, "hello")).unwrap();
        assert_eq!(v.as_deref(), Some("world"));
    }

    #[test]
    fn a_plain_file_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DB_FILE);
        std::fs::write(&file, b"not a database at all, just some bytes".repeat(200)).unwrap();
        let before = std::fs::read(&file).unwrap();
        assert!(matches!(
            Store::open(dir.path(), &key(1)),
            Err(Error::WrongKey { .. })
        ));
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }

    #[test]
    fn the_file_is_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(7)).unwrap();
        store
            .call_sync(|c| meta_set(c, "canary", "CANARY-PLAINTEXT-9876543210"))
            .unwrap();
        drop(store); // checkpoints the WAL into the file
        let bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        assert!(bytes.len() >= 4096);
        assert!(!bytes.starts_with(b"SQLite format 3"));
        assert!(!bytes.windows(7).any(|w| w == b"CANARY-"));
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(3)).unwrap();
        assert_eq!(user_version(&store), SCHEMA_VERSION);
        store.call_sync(|c| meta_set(c, "k", "v")).unwrap();
        // Running them again is a no-op.
        store.call_sync(migrate).unwrap();
        assert_eq!(user_version(&store), SCHEMA_VERSION);
        drop(store);
        // And so is reopening.
        let store = Store::open(dir.path(), &key(3)).unwrap();
        assert_eq!(user_version(&store), SCHEMA_VERSION);
        assert_eq!(
            store.call_sync(|c| meta_get(c, "k")).unwrap().as_deref(),
            Some("v")
        );
        let journal: String = store
            .call_sync(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &key(4)).unwrap();
        store
            .call_sync(|c| {
                Ok(c.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))?)
            })
            .unwrap();
        drop(store);
        assert!(matches!(
            Store::open(dir.path(), &key(4)),
            Err(Error::SchemaTooNew { .. })
        ));
    }
}
