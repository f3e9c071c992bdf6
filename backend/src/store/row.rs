//! Reading a column the same way from either driver: sqlx's `AnyRow` (every
//! query) and rusqlite's `Row` (the SQLite point reads of [`super::lite`]),
//! so each table's row decoder is written once.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Result, StoreError};

/// A row whose columns can be read by name.
pub(crate) trait Columns {
    /// The column `name` as a `T`.
    fn column<T: Column>(&self, name: &str) -> Result<T>;
}

/// A column type both drivers decode: the store keeps to TEXT, BIGINT and
/// BLOB (see the module documentation of [`super`]).
pub(crate) trait Column: Sized {
    /// From a sqlx row.
    fn from_any(row: &AnyRow, name: &str) -> Result<Self>;
    /// From a rusqlite row.
    fn from_lite(row: &rusqlite::Row<'_>, name: &str) -> Result<Self>;
}

macro_rules! column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_any(row: &AnyRow, name: &str) -> Result<Self> {
                Ok(row.try_get(name)?)
            }
            fn from_lite(row: &rusqlite::Row<'_>, name: &str) -> Result<Self> {
                row.get(name)
                    .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
            }
        }
    )*};
}

column!(
    String,
    Option<String>,
    i64,
    Option<i64>,
    Vec<u8>,
    Option<Vec<u8>>
);

impl Columns for AnyRow {
    fn column<T: Column>(&self, name: &str) -> Result<T> {
        T::from_any(self, name)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn column<T: Column>(&self, name: &str) -> Result<T> {
        T::from_lite(self, name)
    }
}
