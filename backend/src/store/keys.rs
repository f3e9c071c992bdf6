//! The keyring's stored half (wrapped system keys) and the per-row cipher
//! every PII column goes through.

use sqlx::AnyConnection;

use super::{Result, Store, get, ms};
use crate::crypto::{DataKey, FieldAad, Keyring, MasterKey, WrappedKey};

impl Store {
    /// Opens the keyring: unwraps the stored system keys with the master key
    /// versions (oldest first; several while a rotation runs), or on first
    /// run generates and stores them under the newest.
    pub async fn open_keyring(&self, mut masters: Vec<MasterKey>) -> Result<Keyring> {
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
            let master = masters
                .pop()
                .ok_or(crate::crypto::CryptoError::WrongMasterKey)?;
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
        Ok(Keyring::open_versions(masters, &stored)?)
    }
}

/// Every table whose rows carry a wrapped data key in `dek`, bound to
/// `"<table>/<id>"`. A new table with PII must be added here, or a master
/// key rotation would leave its rows behind (the rotation test checks
/// every `dek` column of the schema against this list).
pub const DEK_TABLES: &[&str] = &[
    "partners",
    "users",
    "policies",
    "claims",
    "notifications",
    "sms_inbox",
    "bot_conversations",
    "bot_orders",
    "bot_callbacks",
];

/// How many rows one rotation transaction re-wraps.
const REWRAP_BATCH: i64 = 500;

impl Store {
    /// One pass of a master key rotation: re-wraps every system key and
    /// every row's data key that is not under the keyring's current version
    /// onto it, in batches of [`REWRAP_BATCH`] rows per transaction. Only
    /// the wrapped key changes (the data key and the ciphertexts stay), and
    /// each update is conditional on the old wrapped bytes, so it is safe
    /// beside a running server whose keyring holds both versions. Returns
    /// how many keys moved: run it until it returns 0.
    #[tracing::instrument(skip_all, fields(to_version = keys.master_version()))]
    pub async fn rewrap_all(&self, keys: &Keyring) -> Result<u64> {
        let current = keys.master_version();
        let mut moved = 0u64;
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT purpose, wrapped FROM system_keys")
                .fetch_all(self.reader())
                .await?;
        for (purpose, wrapped) in rows {
            let old = WrappedKey::from_bytes(wrapped)?;
            if old.master_version() == current {
                continue;
            }
            let new = keys.rewrap(&format!("system/{purpose}"), &old)?;
            let done = sqlx::query(
                "UPDATE system_keys SET wrapped = $1 WHERE purpose = $2 AND wrapped = $3",
            )
            .bind(new.into_bytes())
            .bind(&purpose)
            .bind(old.into_bytes())
            .execute(&self.write)
            .await?;
            moved += done.rows_affected();
        }
        for table in DEK_TABLES {
            let mut after = String::new();
            loop {
                let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT id, dek FROM {table} WHERE id > $1 ORDER BY id LIMIT {REWRAP_BATCH}"
                )))
                .bind(&after)
                .fetch_all(self.reader())
                .await?;
                let Some((last, _)) = rows.last() else { break };
                after = last.clone();
                let mut tx = self.begin().await?;
                for (id, dek) in rows {
                    let old = WrappedKey::from_bytes(dek)?;
                    if old.master_version() == current {
                        continue;
                    }
                    let new = keys.rewrap(&format!("{table}/{id}"), &old)?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET dek = $1 WHERE id = $2 AND dek = $3"
                    )))
                    .bind(new.into_bytes())
                    .bind(&id)
                    .bind(old.into_bytes())
                    .execute(&mut *tx)
                    .await?;
                    moved += done.rows_affected();
                }
                tx.commit().await?;
            }
        }
        tracing::info!(moved, "rewrapped data keys");
        Ok(moved)
    }

    /// How many stored keys (system and row) are wrapped under each master
    /// key version.
    pub async fn wrapped_key_versions(&self) -> Result<std::collections::BTreeMap<u32, u64>> {
        let mut out = std::collections::BTreeMap::new();
        let mut count = |bytes: Vec<u8>| -> Result<()> {
            *out.entry(WrappedKey::from_bytes(bytes)?.master_version())
                .or_insert(0) += 1;
            Ok(())
        };
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT wrapped FROM system_keys")
            .fetch_all(self.reader())
            .await?;
        for (w,) in rows {
            count(w)?;
        }
        for table in DEK_TABLES {
            let rows: Vec<(Vec<u8>,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT dek FROM {table}")))
                    .fetch_all(self.reader())
                    .await?;
            for (w,) in rows {
                count(w)?;
            }
        }
        Ok(out)
    }

    /// Every stored row key as (binding, wrapped key): for checks that each
    /// one opens (tests, and an operator's verification after a rotation).
    pub async fn wrapped_row_keys(&self) -> Result<Vec<(String, WrappedKey)>> {
        let mut out = Vec::new();
        for table in DEK_TABLES {
            let rows: Vec<(String, Vec<u8>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, dek FROM {table}")))
                    .fetch_all(self.reader())
                    .await?;
            for (id, w) in rows {
                out.push((format!("{table}/{id}"), WrappedKey::from_bytes(w)?));
            }
        }
        Ok(out)
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
