//! Encrypted backups and restores: the database plus the object store.
//!
//! Terms:
//! - **Backup directory**: what `glassguard backup --to DIR` writes: a
//!   `manifest.json` and encrypted files (`database.enc`, `objects/<n>.enc`).
//!   Nothing in it is plaintext except the manifest, which holds no secret.
//! - **Backup key**: a fresh AES-256 key per backup. It is stored in the
//!   manifest only wrapped by the master key (through the keyring, bound to
//!   `backups/<backup id>`), so a restore needs the same key source (the
//!   master key file, or later the KMS key) as the server that made it. The
//!   manifest also carries the database's wrapped system keys, which lets a
//!   restore check the master key *before* it writes anything.
//!
//! How data flows on backup: SQLite is copied consistently with `VACUUM
//! INTO` (a snapshot taken in one read transaction, while the server keeps
//! serving) into a temporary file in the data directory, encrypted chunk by
//! chunk into the backup directory, and the temporary file removed.
//! PostgreSQL goes through its own tool: `pg_dump --format=custom` streams
//! straight into the encryption, never touching the disk in the clear. Each
//! object in the object store (sealed photo and document blobs under
//! `blobs/`, and anything else there) is read and encrypted the same way.
//! The manifest lists every file with the SHA-256 of its encrypted bytes.
//!
//! On restore: the manifest is read, the master key is checked against the
//! wrapped system keys, every file's hash is checked, and only then is the
//! target written: the SQLite file (or `pg_restore` into an empty PostgreSQL
//! database), then the objects. A target that already holds data is refused.
//!
//! Encrypted file layout (must not change shape: old backups must restore):
//! `"GGBK1\n"`, then chunks of `u32 BE length || sealed chunk`, each chunk at
//! most [`CHUNK`] plaintext bytes sealed under the backup key with the
//! associated data (table `"backup"`, column = the file's name in the
//! manifest, row id = `"<backup id>/<chunk index>/<0|1 last>"`), so chunks
//! cannot be reordered, moved between files or backups, or cut off.
//!
//! With the KMS key source, the wrapped master keys (`keys/` in the object
//! store) are in the backup like any object, but a restore needs them
//! first: copy `keys/` into the new object store (from the replicated
//! bucket, or from an older copy), then restore; the restore leaves them be.
//!
//! Not in a backup: the master key (kept apart by the operator: a backup
//! and its key in one place would be no protection), and unfinished upload
//! staging files (clients resume those by starting a new upload).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::config::{DatabaseUrl, Settings};
use crate::crypto::{DataKey, FieldAad, KeySource, Keyring, WrappedKey};
use crate::store::Store;

/// Plaintext bytes per encrypted chunk.
pub const CHUNK: usize = 1 << 20;
/// First bytes of every encrypted backup file.
const MAGIC: &[u8] = b"GGBK1\n";
/// The manifest's format version.
const FORMAT: u32 = 1;
/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The encrypted database's file name.
const DATABASE_FILE: &str = "database.enc";

/// What a backup holds. Stored as `manifest.json`; holds no secret (keys
/// only wrapped). Must not change shape incompatibly: old backups restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// This backup's id (UUIDv7), bound into every chunk.
    pub id: String,
    /// When the backup was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The highest applied schema migration.
    pub schema_version: i64,
    /// `"sqlite"` or `"postgres"`: what the database file is.
    pub database_kind: String,
    /// The master key version the backup key is wrapped under.
    pub master_version: u32,
    /// The backup key, wrapped by the master key (base64).
    pub backup_key: String,
    /// The database's wrapped system keys (purpose, base64): a restore
    /// opens a keyring with them to check the master key first.
    pub system_keys: Vec<(String, String)>,
    /// The encrypted files.
    pub files: Vec<FileEntry>,
}

/// One encrypted file of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name inside the backup directory.
    pub name: String,
    /// `"database"` or `"object"`.
    pub kind: String,
    /// For objects: the object's path in the object store.
    pub object_path: Option<String>,
    /// Plaintext length.
    pub plain_len: u64,
    /// SHA-256 (hex) of the encrypted file.
    pub sha256: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn backup_binding(id: &str) -> String {
    format!("backups/{id}")
}

fn chunk_aad_row(id: &str, index: u64, last: bool) -> String {
    format!("{id}/{index}/{}", u8::from(last))
}

/// Encrypts everything `input` yields into `out` (layout in the module
/// docs); returns the plaintext length and the SHA-256 of what was written.
fn encrypt_stream(
    key: &DataKey,
    backup_id: &str,
    name: &str,
    mut input: impl Read,
    out: &mut impl Write,
) -> anyhow::Result<(u64, String)> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut emit = |bytes: &[u8], out: &mut dyn Write| -> std::io::Result<()> {
        hash.update(bytes);
        out.write_all(bytes)
    };
    emit(MAGIC, out)?;
    // One chunk of look-ahead, so the last chunk is known when it is sealed.
    let mut current = read_chunk(&mut input)?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let next = if current.len() == CHUNK {
            read_chunk(&mut input)?
        } else {
            Vec::new()
        };
        let last = next.is_empty();
        let row = chunk_aad_row(backup_id, index, last);
        let sealed = key.seal(&FieldAad::new("backup", name, &row), &current);
        let len = u32::try_from(sealed.len()).context("chunk too large")?;
        emit(&len.to_be_bytes(), out)?;
        emit(&sealed, out)?;
        total += current.len() as u64;
        if last {
            break;
        }
        current = next;
        index += 1;
    }
    out.flush()?;
    Ok((total, hex::encode(hash.finish())))
}

fn read_chunk(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    input.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Decrypts a file written by [`encrypt_stream`] into `out`; fails on any
/// tampering, reordering or truncation.
fn decrypt_stream(
    key: &DataKey,
    backup_id: &str,
    name: &str,
    mut input: impl Read,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic).context("not a backup file")?;
    ensure!(magic == MAGIC, "{name}: not a Glassguard backup file");
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let mut len = [0u8; 4];
        input
            .read_exact(&mut len)
            .with_context(|| format!("{name}: cut short"))?;
        let len = u32::from_be_bytes(len) as usize;
        ensure!(len <= CHUNK + 64, "{name}: corrupt chunk length");
        let mut sealed = vec![0u8; len];
        input
            .read_exact(&mut sealed)
            .with_context(|| format!("{name}: cut short"))?;
        // Try "not last" first; only the final chunk is sealed as last.
        let (plain, last) = match key.open(
            &FieldAad::new("backup", name, &chunk_aad_row(backup_id, index, false)),
            &sealed,
        ) {
            Ok(p) => (p, false),
            Err(_) => (
                key.open(
                    &FieldAad::new("backup", name, &chunk_aad_row(backup_id, index, true)),
                    &sealed,
                )
                .with_context(|| {
                    format!("{name}: chunk {index} does not decrypt (wrong key or tampered)")
                })?,
                true,
            ),
        };
        out.write_all(&plain)?;
        total += plain.len() as u64;
        if last {
            let mut rest = [0u8; 1];
            ensure!(
                input.read(&mut rest)? == 0,
                "{name}: bytes after the last chunk"
            );
            break;
        }
        index += 1;
    }
    out.flush()?;
    Ok(total)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish()))
}

/// Splits the password out of a PostgreSQL URL, so the URL can go on a
/// command line (visible to every user of the machine) and the password
/// through `PGPASSWORD` (visible only to the process's owner).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A PostgreSQL client tool pointed at `url`, its password (if any) in the
/// environment rather than on the command line.
fn pg_tool(tool: &str, url: &str) -> std::process::Command {
    let (url, password) = split_password(url);
    let mut cmd = std::process::Command::new(tool);
    cmd.arg("--dbname").arg(url);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

/// Refuses a backup directory that already holds anything, so a backup
/// never mixes with another.
fn prepare_target(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "the backup directory {} is not empty: back up into a new directory",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir.join("objects"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

async fn schema_version(store: &Store) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(store.reader())
            .await?,
    )
}

async fn stored_system_keys(store: &Store) -> anyhow::Result<Vec<(String, String)>> {
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT purpose, wrapped FROM system_keys ORDER BY purpose")
            .fetch_all(store.reader())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(p, w)| (p, b64().encode(w)))
        .collect())
}

/// Lists every object in the store (recursively).
async fn all_objects(objects: &dyn object_store::ObjectStore) -> anyhow::Result<Vec<ObjectPath>> {
    let mut out = Vec::new();
    let mut pending: Vec<Option<ObjectPath>> = vec![None];
    while let Some(prefix) = pending.pop() {
        let listed = objects.list_with_delimiter(prefix.as_ref()).await?;
        out.extend(listed.objects.into_iter().map(|o| o.location));
        pending.extend(listed.common_prefixes.into_iter().map(Some));
    }
    out.sort();
    Ok(out)
}

/// Writes a consistent, encrypted backup of the database and the object
/// store into `to` (a new or empty directory). Safe on a running server:
/// SQLite is snapshotted in one read transaction, PostgreSQL by `pg_dump`
/// (one repeatable-read snapshot). Objects are immutable once written
/// (named by their hash), so copying them after the database snapshot
/// captures at least every blob the snapshot references.
pub async fn backup(state: &crate::http::AppState, to: &Path) -> anyhow::Result<Manifest> {
    prepare_target(to)?;
    // Audit entries the writer still holds belong in the backup.
    state.store.flush_audit().await;
    let keys = &state.keys;
    let id = uuid::Uuid::now_v7().to_string();
    let (key, wrapped) = keys.new_data_key(&backup_binding(&id))?;
    let key = Arc::new(key);
    let mut files = Vec::new();

    let store = &state.store;
    let database_kind = match &state.settings.database {
        DatabaseUrl::Sqlite(db) => {
            let snapshot = db.with_extension(format!("backup-{id}.tmp"));
            let result = async {
                // VACUUM INTO refuses to overwrite; the name is fresh anyway.
                sqlx::query("VACUUM INTO $1")
                    .bind(snapshot.display().to_string())
                    .execute(store.reader())
                    .await
                    .context("SQLite snapshot (VACUUM INTO) failed")?;
                let file = std::fs::File::open(&snapshot)?;
                let mut out = std::fs::File::create(to.join(DATABASE_FILE))?;
                let (plain_len, sha256) = encrypt_stream(&key, &id, DATABASE_FILE, file, &mut out)?;
                out.sync_all()?;
                anyhow::Ok((plain_len, sha256))
            }
            .await;
            let _ = std::fs::remove_file(&snapshot);
            let (plain_len, sha256) = result?;
            files.push(FileEntry {
                name: DATABASE_FILE.into(),
                kind: "database".into(),
                object_path: None,
                plain_len,
                sha256,
            });
            "sqlite"
        }
        DatabaseUrl::Postgres(url) => {
            let url = secrecy::ExposeSecret::expose_secret(url).to_string();
            let target = to.join(DATABASE_FILE);
            let (key, id2) = (key.clone(), id.clone());
            // pg_dump's output is read with blocking I/O: on a blocking thread.
            let (plain_len, sha256) = tokio::task::spawn_blocking(move || {
                let mut child = pg_tool("pg_dump", &url)
                    .args(["--format=custom", "--no-owner", "--no-privileges"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .context("cannot run pg_dump (is the PostgreSQL client installed?)")?;
                let stdout = child.stdout.take().context("pg_dump stdout")?;
                let mut out = std::fs::File::create(&target)?;
                let r = encrypt_stream(&key, &id2, DATABASE_FILE, stdout, &mut out);
                let output = child.wait_with_output()?;
                ensure!(
                    output.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                out.sync_all()?;
                r
            })
            .await??;
            files.push(FileEntry {
                name: DATABASE_FILE.into(),
                kind: "database".into(),
                object_path: None,
                plain_len,
                sha256,
            });
            "postgres"
        }
    };

    let objects = state.blobs.objects();
    for (n, path) in all_objects(objects.as_ref()).await?.into_iter().enumerate() {
        let bytes = objects.get(&path).await?.bytes().await?;
        let name = format!("objects/{n:08}.enc");
        let mut out = std::fs::File::create(to.join(&name))?;
        let (plain_len, sha256) = encrypt_stream(&key, &id, &name, &bytes[..], &mut out)?;
        out.sync_all()?;
        files.push(FileEntry {
            name,
            kind: "object".into(),
            object_path: Some(path.to_string()),
            plain_len,
            sha256,
        });
    }

    let manifest = Manifest {
        format: FORMAT,
        id,
        created_at: chrono::Utc::now().to_rfc3339(),
        schema_version: schema_version(store).await?,
        database_kind: database_kind.into(),
        master_version: wrapped.master_version(),
        backup_key: b64().encode(wrapped.as_bytes()),
        system_keys: stored_system_keys(store).await?,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    let mut out = std::fs::File::create(to.join(MANIFEST))?;
    out.write_all(&json)?;
    out.sync_all()?;
    tracing::info!(backup = %manifest.id, files = manifest.files.len(), "backup written");
    Ok(manifest)
}

/// Reads and checks a backup's manifest and files against the master key
/// from `source`: returns the manifest and the backup key, or a clear
/// refusal (wrong master key, a file missing, changed or not listed).
async fn open_backup(
    from: &Path,
    source: &dyn KeySource,
) -> anyhow::Result<(Manifest, Arc<DataKey>)> {
    let manifest_path = from.join(MANIFEST);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not a backup manifest", manifest_path.display()))?;
    ensure!(
        manifest.format == FORMAT,
        "backup format {} is not supported",
        manifest.format
    );
    let masters = source
        .load_all()
        .await
        .with_context(|| format!("cannot load the master key ({})", source.describe()))?;
    let mut system = Vec::new();
    for (purpose, wrapped) in &manifest.system_keys {
        system.push((
            purpose.clone(),
            WrappedKey::from_bytes(b64().decode(wrapped)?)?,
        ));
    }
    let keyring = Keyring::open_versions(masters, &system).context(
        "this backup was made under another master key: restore with the key source it was made with",
    )?;
    let wrapped = WrappedKey::from_bytes(b64().decode(&manifest.backup_key)?)?;
    let key = keyring
        .unwrap_data_key(&backup_binding(&manifest.id), &wrapped)
        .context("the backup key does not unwrap: the manifest was altered")?;
    for f in &manifest.files {
        ensure!(
            !f.name.contains("..") && !f.name.starts_with('/'),
            "manifest names a file outside the backup: {}",
            f.name
        );
        let got = sha256_file(&from.join(&f.name))?;
        ensure!(
            got == f.sha256,
            "{}: its hash does not match the manifest (damaged or altered)",
            f.name
        );
    }
    Ok((manifest, Arc::new(key)))
}

/// Verifies a backup without restoring it: manifest, master key, hashes,
/// and that every file decrypts.
pub async fn verify(from: &Path, source: &dyn KeySource) -> anyhow::Result<Manifest> {
    let (manifest, key) = open_backup(from, source).await?;
    for f in &manifest.files {
        let file = std::fs::File::open(from.join(&f.name))?;
        let n = decrypt_stream(&key, &manifest.id, &f.name, file, &mut std::io::sink())?;
        ensure!(n == f.plain_len, "{}: wrong length", f.name);
    }
    Ok(manifest)
}

/// Restores a backup into the empty target the settings name: the SQLite
/// file (or an empty PostgreSQL database through `pg_restore`) and the
/// object store. Refuses a target that already holds a database or
/// objects; checks everything before writing anything.
pub async fn restore(from: &Path, settings: &Settings) -> anyhow::Result<Manifest> {
    let source = crate::key_source(settings)?;
    let (manifest, key) = open_backup(from, source.as_ref()).await?;
    let database = manifest
        .files
        .iter()
        .find(|f| f.kind == "database")
        .context("the backup holds no database")?;

    let blobs = crate::uploads::Blobs::open(settings)?;
    // The wrapped master keys (KMS) are the one thing an operator puts in
    // place before a restore: the restore needs them to open the backup.
    let keys_prefix = format!("{}/", crate::crypto::KEYS_PREFIX);
    ensure!(
        all_objects(blobs.objects().as_ref())
            .await?
            .iter()
            .all(|p| p.as_ref().starts_with(&keys_prefix)),
        "the object store is not empty: restore into an empty one"
    );

    match (&settings.database, manifest.database_kind.as_str()) {
        (DatabaseUrl::Sqlite(db), "sqlite") => {
            ensure!(
                !db.exists(),
                "{} exists: restore into an empty data directory",
                db.display()
            );
            if let Some(dir) = db.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Decrypt beside the target, then rename: a failed restore
            // leaves no half-written database behind.
            let partial: PathBuf = db.with_extension("restore.tmp");
            let result = (|| {
                let input = std::fs::File::open(from.join(&database.name))?;
                let mut out = std::fs::File::create(&partial)?;
                decrypt_stream(&key, &manifest.id, &database.name, input, &mut out)?;
                out.sync_all()?;
                std::fs::rename(&partial, db)?;
                anyhow::Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result?;
        }
        (DatabaseUrl::Postgres(url), "postgres") => {
            let tables: i64 = {
                use sqlx::Connection as _;
                sqlx::any::install_default_drivers();
                let mut conn =
                    sqlx::AnyConnection::connect(secrecy::ExposeSecret::expose_secret(url))
                        .await
                        .context("cannot connect to PostgreSQL")?;
                let n = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_one(&mut conn)
                .await?;
                let _ = conn.close().await;
                n
            };
            ensure!(
                tables == 0,
                "the PostgreSQL database is not empty: restore into a new database"
            );
            let url = secrecy::ExposeSecret::expose_secret(url).to_string();
            let input = std::fs::File::open(from.join(&database.name))?;
            let (key, id, name) = (key.clone(), manifest.id.clone(), database.name.clone());
            // pg_restore is fed with blocking I/O: on a blocking thread.
            tokio::task::spawn_blocking(move || {
                let mut child = pg_tool("pg_restore", &url)
                    .args(["--no-owner", "--no-privileges", "--exit-on-error"])
                    .stdin(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .context("cannot run pg_restore (is the PostgreSQL client installed?)")?;
                let mut stdin = child.stdin.take().context("pg_restore stdin")?;
                let r = decrypt_stream(&key, &id, &name, input, &mut stdin);
                drop(stdin);
                let output = child.wait_with_output()?;
                r?;
                ensure!(
                    output.status.success(),
                    "pg_restore failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                anyhow::Ok(())
            })
            .await??;
        }
        (_, kind) => bail!(
            "this backup holds a {kind} database, but the settings name another kind of database"
        ),
    }

    for f in manifest.files.iter().filter(|f| f.kind == "object") {
        let path = f
            .object_path
            .as_deref()
            .with_context(|| format!("{}: no object path", f.name))?;
        let target = ObjectPath::from(path);
        if path.starts_with(&keys_prefix) && blobs.objects().head(&target).await.is_ok() {
            continue;
        }
        let input = std::fs::File::open(from.join(&f.name))?;
        let mut plain = Vec::with_capacity(f.plain_len as usize);
        decrypt_stream(&key, &manifest.id, &f.name, input, &mut plain)?;
        blobs
            .objects()
            .put(&target, plain.into())
            .await
            .with_context(|| format!("cannot write object {path}"))?;
    }
    tracing::info!(backup = %manifest.id, "backup restored");
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (Keyring, DataKey, WrappedKey) {
        let (k, _) = Keyring::generate(crate::crypto::MasterKey::from_bytes(
            1,
            crate::crypto::random_bytes(),
        ))
        .expect("keyring");
        let (d, w) = k.new_data_key("backups/x").expect("dek");
        (k, d, w)
    }

    fn round_trip(len: usize) {
        let (_, key, _) = key();
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut enc = Vec::new();
        let (n, sha) = encrypt_stream(&key, "b1", "f", &plain[..], &mut enc).expect("enc");
        assert_eq!(n, len as u64);
        assert_eq!(
            sha,
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &enc))
        );
        let mut back = Vec::new();
        decrypt_stream(&key, "b1", "f", &enc[..], &mut back).expect("dec");
        assert_eq!(back, plain);

        // Another file name or backup id: refused.
        assert!(decrypt_stream(&key, "b2", "f", &enc[..], &mut Vec::new()).is_err());
        assert!(decrypt_stream(&key, "b1", "g", &enc[..], &mut Vec::new()).is_err());
        // Cut after the first chunk, or a flipped byte: refused.
        if len > CHUNK {
            let first = MAGIC.len() + 4 + CHUNK + 28;
            assert!(decrypt_stream(&key, "b1", "f", &enc[..first], &mut Vec::new()).is_err());
        }
        let mut bad = enc.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decrypt_stream(&key, "b1", "f", &bad[..], &mut Vec::new()).is_err());
    }

    #[test]
    fn encrypted_files_round_trip_and_refuse_tampering() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5] {
            round_trip(len);
        }
    }

    #[test]
    fn passwords_stay_off_the_command_line() {
        assert_eq!(
            split_password("postgres://gg:s%40cr%3At@db.internal:5432/glassguard?sslmode=require"),
            (
                "postgres://gg@db.internal:5432/glassguard?sslmode=require".into(),
                Some("s@cr:t".into())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1:5432/x"),
            ("postgres://postgres@127.0.0.1:5432/x".into(), None)
        );
        assert_eq!(
            split_password("postgresql://h/x"),
            ("postgresql://h/x".into(), None)
        );
    }

    #[test]
    fn ciphertext_holds_no_plaintext() {
        let (_, key, _) = key();
        let plain = b"Kavya Ramanathan +919100000006 ".repeat(100);
        let mut enc = Vec::new();
        encrypt_stream(&key, "b", "f", &plain[..], &mut enc).expect("enc");
        assert!(!enc.windows(16).any(|w| w == &plain[..16]));
    }
}
