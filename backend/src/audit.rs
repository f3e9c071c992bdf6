//! Anchoring the audit chain outside the database, and checking it.
//!
//! Whoever controls the database can rewrite the whole hash chain
//! consistently (see [`crate::store::audit`]), so the server signs a
//! checkpoint — the chain's (seq, hash) — with an Ed25519 key kept in the
//! data directory, every `audit_checkpoint_every` entries and at shutdown,
//! and writes it to the object store as `audit/checkpoints/<seq>.json`.
//! [`verify`] recomputes the chain from the first entry, then checks every
//! checkpoint's signature (against the server's key, not the one the
//! checkpoint names) and that the chain has that hash at that seq.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::store::audit::{GENESIS, canonical, chain_hash};

/// The folder checkpoints are written to in the object store.
pub const CHECKPOINTS: &str = "audit/checkpoints";

/// The signing key's file name under the data directory.
pub const KEY_FILE: &str = "audit-signing.key";

/// A signed checkpoint as stored. Must not change shape: stored checkpoints
/// are read back by every later verify.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain's length at the checkpoint.
    pub seq: i64,
    /// The chain's hash at `seq` (hex).
    pub hash: String,
    /// When it was signed.
    pub at: DateTime<Utc>,
    /// The signer's Ed25519 public key (hex).
    pub public_key: String,
    /// Ed25519 signature over [`signed_bytes`] (hex).
    pub signature: String,
}

/// What a checkpoint's signature covers. Must not change shape: a fixed
/// domain tag, `seq` as 8 big-endian bytes, and the 32-byte hash.
pub fn signed_bytes(seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut out = b"glassguard audit checkpoint v1\0".to_vec();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash);
    out
}

/// The checkpoint signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key_hex())
            .finish()
    }
}

impl SigningKey {
    /// The key file in `data_dir`, created (owner-only) on first use.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<SigningKey> {
        let path = key_path(data_dir);
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => {
                check_owner_only(&path)?;
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(&path)?,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key", path.display()))?;
        Ok(SigningKey { pair })
    }

    /// The public key (hex).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// The public key's bytes.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs the chain's state at `seq`.
    pub fn checkpoint(&self, seq: i64, hash: &[u8; 32], at: DateTime<Utc>) -> Checkpoint {
        Checkpoint {
            seq,
            hash: hex::encode(hash),
            at,
            public_key: self.public_key_hex(),
            signature: hex::encode(self.pair.sign(&signed_bytes(seq, hash)).as_ref()),
        }
    }
}

fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

fn create_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("cannot generate the audit signing key"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(pkcs8.as_ref())?;
    f.sync_all()?;
    Ok(pkcs8.as_ref().to_vec())
}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} is readable by others (mode {mode:o}); chmod 600 it",
        path.display()
    );
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn checkpoint_path(seq: i64) -> ObjectPath {
    ObjectPath::from(format!("{CHECKPOINTS}/{seq:020}.json"))
}

/// Signs the chain's committed head and stores it; `None` when the chain is
/// empty.
pub async fn write_checkpoint(
    store: &Store,
    objects: &Arc<dyn ObjectStore>,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Checkpoint>> {
    let (seq, hash) = store.audit_head().await?;
    if seq == 0 {
        return Ok(None);
    }
    let cp = key.checkpoint(seq, &hash, now);
    objects
        .put(
            &checkpoint_path(seq),
            PutPayload::from(serde_json::to_vec_pretty(&cp)?),
        )
        .await
        .context("cannot store the audit checkpoint")?;
    tracing::info!(seq, "audit checkpoint written");
    Ok(Some(cp))
}

/// Every stored checkpoint, in seq order (unreadable ones as errors).
pub async fn checkpoints(
    objects: &Arc<dyn ObjectStore>,
) -> anyhow::Result<Vec<(String, anyhow::Result<Checkpoint>)>> {
    let listed = objects
        .list_with_delimiter(Some(&ObjectPath::from(CHECKPOINTS)))
        .await
        .context("cannot list the audit checkpoints")?;
    let mut names: Vec<ObjectPath> = listed.objects.into_iter().map(|o| o.location).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let read = async {
            let bytes = objects.get(&name).await?.bytes().await?;
            anyhow::Ok(serde_json::from_slice::<Checkpoint>(&bytes)?)
        }
        .await;
        out.push((name.to_string(), read));
    }
    Ok(out)
}

/// Writes a checkpoint whenever the chain has grown by `every` entries since
/// the last one (checked each second). Runs until aborted.
pub async fn run_checkpointer(
    store: Store,
    objects: Arc<dyn ObjectStore>,
    key: Arc<SigningKey>,
    clock: Arc<dyn crate::clock::Clock>,
    every: u64,
) {
    let mut last = match checkpoints(&objects).await {
        Ok(cps) => cps
            .iter()
            .filter_map(|(_, c)| c.as_ref().ok().map(|c| c.seq))
            .max()
            .unwrap_or(0),
        Err(_) => 0,
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        match store.audit_head().await {
            Ok((seq, _)) if seq >= last + every as i64 => {
                match write_checkpoint(&store, &objects, &key, clock.now()).await {
                    Ok(Some(cp)) => last = cp.seq,
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "audit checkpoint not written"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the audit chain's head"),
        }
    }
}

/// What is wrong with the audit trail: the first problem found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Tampered {
    /// An entry's seq is not the next one (an entry is missing or out of place).
    #[error("audit entry {expected} is missing (found entry {found} in its place)")]
    Missing {
        /// The seq the chain needs next.
        expected: i64,
        /// The seq found.
        found: i64,
    },
    /// An entry's stored previous hash is not its predecessor's hash.
    #[error("audit entry {seq} does not follow entry {}: its previous hash differs", seq - 1)]
    BrokenLink {
        /// The entry.
        seq: i64,
    },
    /// An entry's content does not match its hash.
    #[error("audit entry {seq} was altered: its hash does not match its content")]
    Altered {
        /// The entry.
        seq: i64,
    },
    /// The chain's head names more entries than the table holds.
    #[error("the audit chain ends at entry {found} but its head says {head}")]
    Truncated {
        /// The head's seq.
        head: i64,
        /// The last entry found.
        found: i64,
    },
    /// A checkpoint cannot be read or its signature is not the server's.
    #[error("audit checkpoint {name} is not valid: {reason}")]
    BadCheckpoint {
        /// Its object name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A checkpoint names an entry beyond the end of the chain.
    #[error("audit checkpoint at entry {seq} is beyond the end of the chain ({len} entries)")]
    CheckpointBeyondEnd {
        /// The checkpoint's seq.
        seq: i64,
        /// The chain's length.
        len: i64,
    },
    /// The chain's hash at a checkpoint differs from the signed one.
    #[error("the audit chain at entry {seq} differs from its signed checkpoint")]
    CheckpointMismatch {
        /// The checkpoint's seq.
        seq: i64,
    },
}

/// A verified trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: i64,
    /// Checkpoints checked.
    pub checkpoints: usize,
}

/// Recomputes the chain and checks it against every stored checkpoint
/// signed by `public_key`. `Ok(Err(..))` names the first problem found.
pub async fn verify(
    store: &Store,
    objects: &Arc<dyn ObjectStore>,
    public_key: &[u8],
) -> anyhow::Result<Result<Verified, Tampered>> {
    // The checkpoints first, so the chain's hash at each is noted in one pass.
    let mut wanted = std::collections::BTreeMap::new();
    for (name, cp) in checkpoints(objects).await? {
        let bad = |reason: String| Tampered::BadCheckpoint {
            name: name.clone(),
            reason,
        };
        let cp = match cp {
            Ok(cp) => cp,
            Err(e) => return Ok(Err(bad(format!("unreadable: {e}")))),
        };
        let Some(hash) = hex::decode(&cp.hash)
            .ok()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
        else {
            return Ok(Err(bad("its hash is not 32 bytes of hex".into())));
        };
        let sig = hex::decode(&cp.signature).unwrap_or_default();
        if UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&signed_bytes(cp.seq, &hash), &sig)
            .is_err()
        {
            return Ok(Err(bad("its signature is not the server's".into())));
        }
        wanted.insert(cp.seq, hash);
    }
    let mut prev = GENESIS;
    let mut n = 0i64;
    loop {
        let page = store.audit_chain(n, 5000).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            let expected = n + 1;
            if row.seq != expected {
                return Ok(Err(Tampered::Missing {
                    expected,
                    found: row.seq,
                }));
            }
            if row.prev_hash != prev {
                return Ok(Err(Tampered::BrokenLink { seq: row.seq }));
            }
            let hash = chain_hash(&prev, &canonical(row.seq, row.at, &row.record));
            if row.hash != hash {
                return Ok(Err(Tampered::Altered { seq: row.seq }));
            }
            if let Some(signed) = wanted.get(&row.seq)
                && *signed != hash
            {
                return Ok(Err(Tampered::CheckpointMismatch { seq: row.seq }));
            }
            prev = hash;
            n = row.seq;
        }
    }
    if let Some((&seq, _)) = wanted.range(n + 1..).next() {
        return Ok(Err(Tampered::CheckpointBeyondEnd { seq, len: n }));
    }
    let (head, _) = store.audit_head().await?;
    if head != n {
        return Ok(Err(Tampered::Truncated { head, found: n }));
    }
    Ok(Ok(Verified {
        entries: n,
        checkpoints: wanted.len(),
    }))
}
