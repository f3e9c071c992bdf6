//! The keyring's stored half (wrapped system keys) and the per-row cipher
//! every PII column goes through.

use sqlx::AnyConnection;

use super::{Result, Store, get, ms};
use crate::crypto::{DataKey, FieldAad, Keyring, MasterKey, WrappedKey};

impl Store {
    /// Opens the keyring: unwraps the stored system keys with the master key,
    /// or on first run generates and stores them.
    pub async fn open_keyring(&self, master: MasterKey) -> Result<Keyring> {
        let mut tx = self.begin().await?;
        if self.dialect == super::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7345002)")
                .execute(&mut *tx)
                .await?;
        }
        let rows = sqlx::query("SELECT purpose, wrapped FROM system_keys")
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            let (keyring, wrapped) = Keyring::generate(master)?;
            for (purpose, key) in wrapped {
                sqlx::query(
                    "INSERT INTO system_keys (purpose, wrapped, created_at) VALUES ($1, $2, $3)",
                )
                .bind(purpose)
                .bind(key.as_bytes().to_vec())
                .bind(ms(chrono::Utc::now()))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(keyring);
        }
        tx.commit().await?;
        let mut stored = Vec::new();
        for r in rows {
            stored.push((
                get::<String>(&r, "purpose")?,
                WrappedKey::from_bytes(get::<Vec<u8>>(&r, "wrapped")?)?,
            ));
        }
        Ok(Keyring::open(master, &stored)?)
    }
}

/// Encrypts and decrypts the PII columns of one row under its data key, with
/// associated data binding table, column and row id.
pub(crate) struct RowCipher {
    key: DataKey,
    table: &'static str,
    row_id: String,
}

impl RowCipher {
    /// A new row: a fresh data key, and its wrapped form to store in `dek`.
    pub(crate) fn create(
        keys: &Keyring,
        table: &'static str,
        row_id: &str,
    ) -> Result<(RowCipher, Vec<u8>)> {
        let (key, wrapped) = keys.new_data_key(&format!("{table}/{row_id}"))?;
        Ok((
            RowCipher {
                key,
                table,
                row_id: row_id.to_string(),
            },
            wrapped.as_bytes().to_vec(),
        ))
    }

    /// An existing row, from its stored `dek`.
    pub(crate) fn open(
        keys: &Keyring,
        table: &'static str,
        row_id: &str,
        dek: Vec<u8>,
    ) -> Result<RowCipher> {
        let key =
            keys.unwrap_data_key(&format!("{table}/{row_id}"), &WrappedKey::from_bytes(dek)?)?;
        Ok(RowCipher {
            key,
            table,
            row_id: row_id.to_string(),
        })
    }

    pub(crate) fn seal(&self, column: &str, plaintext: &str) -> Vec<u8> {
        self.key.seal_str(
            &FieldAad {
                table: self.table,
                column,
                row_id: &self.row_id,
            },
            plaintext,
        )
    }

    pub(crate) fn open_str(&self, column: &str, sealed: &[u8]) -> Result<String> {
        Ok(self.key.open_str(
            &FieldAad {
                table: self.table,
                column,
                row_id: &self.row_id,
            },
            sealed,
        )?)
    }

    pub(crate) fn seal_opt(&self, column: &str, plaintext: Option<&str>) -> Option<Vec<u8>> {
        plaintext.map(|p| self.seal(column, p))
    }

    pub(crate) fn open_opt(&self, column: &str, sealed: Option<Vec<u8>>) -> Result<Option<String>> {
        sealed.map(|s| self.open_str(column, &s)).transpose()
    }
}

/// Blind-index domains: one per kind of value, so equal strings of different
/// kinds never collide.
pub(crate) mod index {
    pub const PHONE: &str = "phone";
    pub const IMEI: &str = "imei";
    pub const GSTIN: &str = "gstin";
}

pub(crate) fn blind(keys: &Keyring, domain: &str, value: &str) -> Vec<u8> {
    keys.blind_index(domain, value).to_vec()
}

#[allow(dead_code)]
pub(crate) type Conn = AnyConnection;
