//! The master key from AWS KMS.
//!
//! Terms:
//! - **Wrapped master key**: a JSON file `keys/master-v<N>.json` in the
//!   object store (the local object folder, or S3) holding a KMS
//!   `CiphertextBlob` for master key version N, the KMS key id it was made
//!   under and whether the version is retired. It holds no plaintext: only
//!   KMS can open it.
//! - **Versions**: `keys init` makes version 1; each `keys rotate` adds the
//!   next one. A rotation re-wraps every data key onto the new version and
//!   then marks the old one retired; a retired version is never loaded again.
//!
//! How data flows: `keys init` (and each rotation) calls KMS
//! `GenerateDataKey` (AES-256) and stores only the ciphertext; at boot the
//! server lists the versions that are not retired, calls KMS `Decrypt` for
//! each and holds the plaintext only in a [`MasterKey`] (zeroized on drop),
//! which the keyring turns into KEKs. The KMS encryption context binds each
//! ciphertext to its purpose and version, so a version-1 blob cannot be
//! passed off as version 2. Nothing is written at boot: if KMS cannot be
//! reached, refuses the key, or the wrapped key is missing or corrupt, the
//! load fails with a message saying which.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use base64::Engine as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

use super::error::{CryptoError, Result};
use super::master::{KeySource, MasterKey};

/// Where in the object store the wrapped master keys live.
pub const KEYS_PREFIX: &str = "keys";

/// A stored wrapped master key. Must not change shape: stored keys must
/// keep loading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrappedMasterKey {
    /// The master key version.
    pub version: u32,
    /// The KMS key it was generated under (as given to `keys init`).
    pub key_id: String,
    /// The KMS `CiphertextBlob`, base64.
    pub ciphertext: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Set once a rotation moved every key off this version.
    #[serde(default)]
    pub retired: bool,
}

fn object_path(version: u32) -> ObjectPath {
    ObjectPath::from(format!("{KEYS_PREFIX}/master-v{version}.json"))
}

fn kms_err(what: &str, e: impl std::error::Error) -> CryptoError {
    // The SDK's Display is terse ("service error"); the source chain says why.
    let mut msg = format!("{what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    CryptoError::Kms(msg)
}

fn store_err(what: &str, e: impl fmt::Display) -> CryptoError {
    CryptoError::Kms(format!("{what}: {e}"))
}

/// A master key source backed by AWS KMS; see the module docs.
#[derive(Clone)]
pub struct KmsKeySource {
    key_id: String,
    objects: Arc<dyn ObjectStore>,
    endpoint: Option<String>,
    region: Option<String>,
    static_credentials: Option<(String, String)>,
}

impl fmt::Debug for KmsKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKeySource")
            .field("key_id", &self.key_id)
            .field("objects", &self.objects.to_string())
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish()
    }
}

impl KmsKeySource {
    /// A source for the KMS key `key_id` (id, ARN or alias), keeping the
    /// wrapped master keys under `keys/` in `objects`. Credentials and
    /// region come from the usual AWS environment unless set here.
    pub fn new(key_id: impl Into<String>, objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            key_id: key_id.into(),
            objects,
            endpoint: None,
            region: None,
            static_credentials: None,
        }
    }

    /// Talks to this KMS endpoint instead of AWS's (a local test server).
    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Uses this region instead of the environment's.
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Uses these credentials instead of the environment's (tests).
    pub fn with_static_credentials(mut self, access_key: &str, secret_key: &str) -> Self {
        self.static_credentials = Some((access_key.into(), secret_key.into()));
        self
    }

    /// The KMS key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn client(&self) -> aws_sdk_kms::Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            // A KMS that does not answer should stop a boot in seconds, not hang it.
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(20))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((access, secret)) = &self.static_credentials {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                access,
                secret,
                None,
                None,
                "glassguard-static",
            ));
        }
        aws_sdk_kms::Client::new(&loader.load().await)
    }

    /// Every stored wrapped master key, oldest first.
    pub async fn stored(&self) -> Result<Vec<WrappedMasterKey>> {
        let listed = self
            .objects
            .list_with_delimiter(Some(&ObjectPath::from(KEYS_PREFIX)))
            .await
            .map_err(|e| store_err("cannot list the wrapped master keys", e))?;
        let mut out = Vec::new();
        for meta in listed.objects {
            let name = meta.location.filename().unwrap_or_default();
            if !(name.starts_with("master-v") && name.ends_with(".json")) {
                continue;
            }
            let bytes = self
                .objects
                .get(&meta.location)
                .await
                .map_err(|e| store_err(&format!("cannot read {}", meta.location), e))?
                .bytes()
                .await
                .map_err(|e| store_err(&format!("cannot read {}", meta.location), e))?;
            let key: WrappedMasterKey = serde_json::from_slice(&bytes).map_err(|e| {
                CryptoError::Kms(format!(
                    "the wrapped master key {} is corrupt: {e}",
                    meta.location
                ))
            })?;
            if meta.location != object_path(key.version) {
                return Err(CryptoError::Kms(format!(
                    "the wrapped master key {} names version {}",
                    meta.location, key.version
                )));
            }
            out.push(key);
        }
        out.sort_by_key(|k| k.version);
        Ok(out)
    }

    fn context(version: u32) -> [(&'static str, String); 2] {
        [
            ("glassguard", "master-key".to_owned()),
            ("version", version.to_string()),
        ]
    }

    /// Generates master key `version` in KMS and stores only its ciphertext
    /// (refusing to overwrite an existing version). Returns the key.
    async fn generate(&self, version: u32) -> Result<MasterKey> {
        let client = self.client().await;
        let mut req = client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256);
        for (k, v) in Self::context(version) {
            req = req.encryption_context(k, v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| kms_err(&format!("KMS GenerateDataKey with key {}", self.key_id), e))?;
        let ciphertext = out
            .ciphertext_blob()
            .ok_or_else(|| CryptoError::Kms("KMS returned no ciphertext".into()))?;
        let key = master_from_plaintext(version, out.plaintext().map(Blob::as_ref))?;
        let stored = WrappedMasterKey {
            version,
            key_id: self.key_id.clone(),
            ciphertext: base64::engine::general_purpose::STANDARD.encode(ciphertext.as_ref()),
            created_at: chrono::Utc::now().to_rfc3339(),
            retired: false,
        };
        self.put(&stored, PutMode::Create).await?;
        Ok(key)
    }

    async fn put(&self, stored: &WrappedMasterKey, mode: PutMode) -> Result<()> {
        let json = serde_json::to_vec_pretty(stored)
            .map_err(|e| CryptoError::Kms(format!("cannot encode the wrapped key: {e}")))?;
        self.objects
            .put_opts(
                &object_path(stored.version),
                json.into(),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| store_err(&format!("cannot store {}", object_path(stored.version)), e))?;
        Ok(())
    }

    /// `keys init`: generates master key version 1. Refuses if any version
    /// exists already (a second init would orphan every wrapped key).
    pub async fn init(&self) -> Result<u32> {
        if let Some(k) = self.stored().await?.last() {
            return Err(CryptoError::Kms(format!(
                "a wrapped master key exists already (version {}): use `keys rotate` to make a new one",
                k.version
            )));
        }
        drop(self.generate(1).await?);
        Ok(1)
    }

    /// A rotation's first step: generates and stores the next master key
    /// version and returns it.
    pub async fn next_version(&self) -> Result<MasterKey> {
        let next = self.stored().await?.last().map_or(1, |k| k.version + 1);
        self.generate(next).await
    }

    /// A rotation's last step: marks `version` retired so it is never
    /// loaded again.
    pub async fn retire(&self, version: u32) -> Result<()> {
        let mut stored = self
            .stored()
            .await?
            .into_iter()
            .find(|k| k.version == version)
            .ok_or_else(|| CryptoError::Kms(format!("no master key version {version}")))?;
        stored.retired = true;
        self.put(&stored, PutMode::Overwrite).await
    }

    async fn decrypt(
        &self,
        client: &aws_sdk_kms::Client,
        stored: &WrappedMasterKey,
    ) -> Result<MasterKey> {
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(&stored.ciphertext)
            .map_err(|_| {
                CryptoError::Kms(format!(
                    "the wrapped master key {} is corrupt (not base64)",
                    object_path(stored.version)
                ))
            })?;
        // Each version opens under the KMS key it was made with (a rotation
        // may also move to a new KMS key).
        let mut req = client
            .decrypt()
            .key_id(&stored.key_id)
            .ciphertext_blob(Blob::new(ciphertext));
        for (k, v) in Self::context(stored.version) {
            req = req.encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| {
            kms_err(
                &format!(
                    "KMS Decrypt of {} with key {}",
                    object_path(stored.version),
                    stored.key_id
                ),
                e,
            )
        })?;
        master_from_plaintext(stored.version, out.plaintext().map(Blob::as_ref))
    }

    /// Decrypts one stored version through KMS (retired ones too: a test
    /// checks that an old key alone opens nothing any more).
    pub async fn load_version(&self, stored: &WrappedMasterKey) -> Result<MasterKey> {
        self.decrypt(&self.client().await, stored).await
    }

    /// Every master key version that is not retired, oldest first (several
    /// only while a rotation runs).
    pub async fn load_versions(&self) -> Result<Vec<MasterKey>> {
        let stored: Vec<_> = self
            .stored()
            .await?
            .into_iter()
            .filter(|k| !k.retired)
            .collect();
        if stored.is_empty() {
            return Err(CryptoError::Kms(format!(
                "no wrapped master key under {KEYS_PREFIX}/ in {}: run `glassguard keys init --kms {}` first",
                self.objects, self.key_id
            )));
        }
        if let Some(newest) = stored.last().filter(|k| k.key_id != self.key_id) {
            return Err(CryptoError::Kms(format!(
                "the master key (version {}) was made under KMS key {}, but the configured KMS key is {}: \
                 set GLASSGUARD_KMS_KEY_ID to the key it was made with",
                newest.version, newest.key_id, self.key_id
            )));
        }
        let client = self.client().await;
        let mut out = Vec::new();
        for k in &stored {
            out.push(self.decrypt(&client, k).await?);
        }
        Ok(out)
    }
}

/// Copies KMS's plaintext into a [`MasterKey`]; the SDK's own buffer is
/// dropped right after (the SDK does not zeroize it; nothing we can reach).
fn master_from_plaintext(version: u32, plaintext: Option<&[u8]>) -> Result<MasterKey> {
    let plaintext =
        plaintext.ok_or_else(|| CryptoError::Kms("KMS returned no plaintext".into()))?;
    let mut bytes = [0u8; 32];
    if plaintext.len() != bytes.len() {
        return Err(CryptoError::Kms(format!(
            "KMS returned a {}-byte key, expected 32",
            plaintext.len()
        )));
    }
    bytes.copy_from_slice(plaintext);
    let key = MasterKey::from_bytes(version, bytes);
    bytes.zeroize();
    Ok(key)
}

impl KeySource for KmsKeySource {
    fn load(&self) -> Pin<Box<dyn Future<Output = Result<MasterKey>> + Send + '_>> {
        Box::pin(async move {
            self.load_versions()
                .await?
                .pop()
                .ok_or_else(|| CryptoError::Kms("no master key".into()))
        })
    }

    fn load_all(&self) -> Pin<Box<dyn Future<Output = Result<Vec<MasterKey>>> + Send + '_>> {
        Box::pin(self.load_versions())
    }

    fn describe(&self) -> String {
        format!(
            "AWS KMS key {} (wrapped master key under {KEYS_PREFIX}/ in {})",
            self.key_id, self.objects
        )
    }
}
