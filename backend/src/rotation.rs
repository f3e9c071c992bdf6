//! Master key rotation with the KMS key source, without downtime.
//!
//! Steps, on a running system:
//! 1. `keys rotate` asks KMS for a new master key version N+1 and stores its
//!    ciphertext next to the others (`keys/master-v<N+1>.json`).
//! 2. Running servers load it within [`REFRESH_EVERY`] ([`refresh`] runs in
//!    each of them); from then on their keyrings hold both versions, new
//!    rows are wrapped under N+1 and rows under N still open. `keys rotate`
//!    waits out that grace period before it moves anything.
//! 3. Every system key and row data key is re-wrapped onto N+1
//!    ([`Store::rewrap_all`]): batched transactions that change only the
//!    wrapped key column, each update conditional on the old bytes, so
//!    concurrent readers and writers are unaffected. Passes repeat until one
//!    moves nothing, then the store is checked to hold no key under an old
//!    version.
//! 4. The old versions are marked retired: no server loads them again at
//!    boot (running ones drop them at their next refresh).
//!
//! No plaintext key is written anywhere: KMS returns the new key over TLS
//! and it lives only in zeroizing memory; only its KMS ciphertext is stored.

use std::time::Duration;

use anyhow::{Context, ensure};

use crate::crypto::{Keyring, KmsKeySource};
use crate::store::Store;

/// How often a running server looks for new (or retired) master key versions.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The versions moved away from (now retired).
    pub from: Vec<u32>,
    /// The new current version.
    pub to: u32,
    /// How many wrapped keys were re-wrapped.
    pub moved: u64,
}

/// Runs a rotation (steps in the module docs) through `keys`, the keyring
/// of this process; `grace` is how long to wait for other running servers
/// to load the new version before moving keys onto it.
pub async fn rotate(
    store: &Store,
    keys: &Keyring,
    source: &KmsKeySource,
    grace: Duration,
) -> anyhow::Result<Rotation> {
    let from = keys.master_versions();
    let new = source
        .next_version()
        .await
        .context("cannot make a new master key version")?;
    let to = new.version();
    keys.add_master(new)?;
    tracing::info!(
        version = to,
        "new master key version stored; waiting for servers to load it"
    );
    tokio::time::sleep(grace).await;

    let mut moved = 0;
    for _ in 0..10 {
        let n = store.rewrap_all(keys).await?;
        moved += n;
        if n == 0 {
            break;
        }
    }
    let left = store.wrapped_key_versions().await?;
    ensure!(
        left.keys().all(|v| *v == to),
        "keys are still wrapped under old master key versions ({left:?}); run the rotation again"
    );
    for v in &from {
        source
            .retire(*v)
            .await
            .with_context(|| format!("cannot retire master key version {v}"))?;
        keys.retire_master(*v)?;
    }
    tracing::info!(to, moved, "master key rotation finished");
    Ok(Rotation { from, to, moved })
}

/// Brings a running keyring up to date with the stored versions: loads new
/// ones (through KMS) and forgets retired ones.
pub async fn refresh(keys: &Keyring, source: &KmsKeySource) -> anyhow::Result<()> {
    let loaded = keys.master_versions();
    for stored in source.stored().await? {
        if stored.retired {
            if loaded.contains(&stored.version) && stored.version != keys.master_version() {
                keys.retire_master(stored.version)?;
            }
        } else if !loaded.contains(&stored.version) {
            keys.add_master(source.load_version(&stored).await?)?;
            tracing::info!(version = stored.version, "loaded a new master key version");
        }
    }
    Ok(())
}
