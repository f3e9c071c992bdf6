//! SQLite point reads on the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every
//! query and every row across channels; for a read by primary key those hops
//! are most of the cost (`cargo xtask bench api` shows it). The hot reads go
//! through these rusqlite connections instead: read-only, on the same WAL
//! file, taken from an idle list and put back. A read by key from a local
//! file takes microseconds, so it runs inline on the async worker like any
//! other short piece of CPU work (decrypting, authorizing); when every
//! connection is busy the caller falls back to the sqlx read pool instead of
//! waiting. Writes never come here: they stay on the one sqlx writer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Result, StoreError};

/// At most this many connections are open at once.
const MAX_OPEN: usize = 8;

/// Read-only rusqlite connections to the store's SQLite file.
#[derive(Debug)]
pub(crate) struct LiteReaders {
    path: PathBuf,
    /// Idle connections, and how many exist in all (idle or lent out).
    pool: Mutex<(Vec<Connection>, usize)>,
}

impl LiteReaders {
    /// Connections are opened on first use; the writer has created the file.
    pub(crate) fn new(path: &Path) -> LiteReaders {
        LiteReaders {
            path: path.to_path_buf(),
            pool: Mutex::new((Vec::new(), 0)),
        }
    }

    /// Runs `f` on an idle connection, or returns `None` when all
    /// [`MAX_OPEN`] are lent out (use the sqlx pool then).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Option<Result<T>> {
        let lent = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            match pool.0.pop() {
                Some(conn) => Some(conn),
                None if pool.1 < MAX_OPEN => {
                    pool.1 += 1;
                    None
                }
                None => return None,
            }
        };
        let conn = match lent {
            Some(conn) => conn,
            None => match open(&self.path) {
                Ok(conn) => conn,
                Err(e) => {
                    self.pool.lock().unwrap_or_else(|p| p.into_inner()).1 -= 1;
                    return Some(Err(e));
                }
            },
        };
        let out = f(&conn);
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(conn);
        Some(out)
    }
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Readers in WAL mode wait only in rare recovery moments; do not stall a
    // worker thread long for them.
    conn.busy_timeout(Duration::from_millis(200))?;
    Ok(conn)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}
