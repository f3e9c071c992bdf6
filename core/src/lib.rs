//! Glassguard's device engine: the part of the app that works without a
//! network.
//!
//! One [`Core`] runs on each device (a shop's tablet, a customer's phone, a
//! technician's phone). It has no UI, reads no environment variables and
//! knows no platform paths: the shell (Tauri on desktop and mobile) hands it
//! a data directory, the database key from the OS keystore and the server
//! URL in a [`Config`].
//!
//! How data flows:
//!
//! ```text
//!  UI ──command──▶ commands ──one transaction──▶ local record + outbox row
//!                                                        │ (wakes)
//!                                       sync engine ◀────┘
//!       push (client_seq order, gzip) ──▶ server ──▶ per-row results ──▶ outbox states
//!       pull (opaque cursor)          ◀── server ◀── changes + cursor ──▶ cached view
//!  UI ◀──queries── view (policies, claims, jobs, vouchers, plans, local records)
//!  UI ◀──watch──── SyncStatus
//!  UI ──queue_upload──▶ uploads table ──(each run, before the push)──▶ tus create / HEAD / PATCH
//!                                     complete ──one transaction──▶ attach_blob outbox row
//! ```
//!
//! Modules, by noun:
//! - `store`: the SQLCipher database, its key check and migrations.
//! - `outbox`: commands owed to the server, in `client_seq` order.
//! - `view`: the cached server view and this device's local records.
//! - `commands`: offline writes (sale, claim draft and submit, job outcome, transition).
//! - [`photos`]: the photo pipeline (limits, orientation, resize, metadata
//!   strip, perceptual hash), sealing to the insurer's key, previews.
//! - [`sync`]: the push / pull engine, triggers, backoff, status.
//! - `session`: OTP sign-in, tokens, refresh.
//! - `client` and [`tls`]: HTTP with request ids, trace context, gzip and key pinning.
//! - [`uploads`]: blobs (sealed photos, documents) over tus, then the command that attaches them.
//! - [`backoff`]: capped, jittered exponential delays.
//! - [`error`]: the one error type.
//!
//! All async methods need a Tokio runtime; database work runs on Tokio's
//! blocking pool.
#![warn(missing_docs)]

pub mod backoff;
mod client;
mod commands;
pub mod error;
#[cfg(test)]
mod mock_server;
mod outbox;
pub mod photos;
mod session;
mod store;
pub mod sync;
pub mod tls;
pub mod uploads;
mod view;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use glassguard_protocol::api::{
    Claim, ClaimCreate, ClaimTransitionRequest, Job, Me, OtpPurpose, OtpSent, Plan, Policy, Voucher,
};
use glassguard_protocol::sync::{JobOutcome, OfflineSale};
use glassguard_protocol::{ClaimId, DeviceId, PhoneNumber, PolicyId};
use rusqlite::Connection;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use backoff::Backoff;
pub use error::{Error, Result};
pub use glassguard_protocol as protocol;
pub use outbox::{OutboxRow, Rejection, RowState};
pub use photos::{PhotoOptions, PhotoRecord, PhotoTarget};
pub use store::DbKey;
pub use sync::{BackgroundOptions, SyncReport, SyncStatus};
pub use uploads::{UploadProgress, UploadState, UploadStatus, UploadTarget};
pub use view::{Local, SyncMark};

/// What the shell hands the core.
#[derive(Debug)]
pub struct Config {
    /// Where the database lives (created if missing).
    pub data_dir: PathBuf,
    /// The database key, from the OS keystore.
    pub db_key: DbKey,
    /// The server, e.g. `https://api.glassguard.example/`. Plain `http://`
    /// is accepted for loopback addresses only.
    pub server_url: String,
    /// SHA-256 of the server certificate's SubjectPublicKeyInfo. When set,
    /// only that key is trusted (see [`tls`]).
    pub pinned_server_key: Option<[u8; 32]>,
    /// The insurer's X25519 public key, which photos are sealed to. Without
    /// it the core works but refuses to take photos.
    pub insurer_public_key: Option<[u8; 32]>,
}

/// State shared by the core's handle and its background task.
#[derive(Debug)]
pub(crate) struct Shared {
    store: store::Store,
    client: client::Client,
    device_id: DeviceId,
    status: watch::Sender<SyncStatus>,
    /// Wakes the background task (a write, a reconnect, a sign-in).
    wake: Notify,
    /// Set with `wake` when the wake should cut a backoff short.
    urgent: AtomicBool,
    /// Push bodies are gzipped until the server shows it cannot read them.
    push_gzip: AtomicBool,
    run_lock: tokio::sync::Mutex<()>,
    refresh_lock: tokio::sync::Mutex<()>,
    backoff: Backoff,
    data_dir: PathBuf,
    insurer_key: Option<glassguard_seal::PublicKey>,
}

impl Shared {
    /// Runs a local write, then updates the counts and wakes the engine.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let out = self.store.call(f).await?;
        self.refresh_counts().await?;
        self.wake.notify_one();
        Ok(out)
    }
}

/// The device engine. Create one per process with [`Core::open`]; share it
/// by reference (it is `Send + Sync`).
#[derive(Debug)]
pub struct Core {
    shared: Arc<Shared>,
    background: Mutex<Option<JoinHandle<()>>>,
}

impl Core {
    /// Opens the encrypted store (creating it on first use) and prepares the
    /// HTTP client. Fails with [`Error::WrongKey`] without touching the file
    /// if the key is wrong. Does no network I/O.
    pub fn open(config: Config) -> Result<Core> {
        Self::open_with(config, Backoff::default())
    }

    /// [`Core::open`] with other backoff settings (tests, or a shell that
    /// wants a gentler schedule on metered networks).
    pub fn open_with(config: Config, backoff: Backoff) -> Result<Core> {
        let client = client::Client::new(&config.server_url, config.pinned_server_key)?;
        let insurer_key = config
            .insurer_public_key
            .map(|k| glassguard_seal::PublicKey::from_bytes(&k))
            .transpose()
            .map_err(|e| Error::Config(format!("insurer_public_key: {e}")))?;
        let store = store::Store::open(&config.data_dir, &config.db_key)?;
        let (device_id, counts, last_success) = store.call_sync(|c| {
            let id = session::device_id(c)?;
            let counts = outbox::counts(c)?;
            let last = store::meta_get(c, "last_sync_success")?
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            Ok((id, counts, last))
        })?;
        let (status, _) = watch::channel(SyncStatus {
            pending: counts.0,
            rejected: counts.1,
            last_success,
            // Until the shell says otherwise, assume the network is there.
            online: true,
            ..SyncStatus::default()
        });
        Ok(Core {
            shared: Arc::new(Shared {
                store,
                client,
                device_id,
                status,
                wake: Notify::new(),
                urgent: AtomicBool::new(false),
                push_gzip: AtomicBool::new(true),
                run_lock: tokio::sync::Mutex::new(()),
                refresh_lock: tokio::sync::Mutex::new(()),
                backoff,
                data_dir: config.data_dir,
                insurer_key,
            }),
            background: Mutex::new(None),
        })
    }

    /// This device's id (made once, on first open).
    pub fn device_id(&self) -> DeviceId {
        self.shared.device_id
    }

    // ---- sessions ----------------------------------------------------------

    /// Asks the server to text a one-time code to `phone`: `sign_in` to sign
    /// in, `sale_consent` for the customer at the counter.
    pub async fn request_otp(&self, phone: PhoneNumber, purpose: OtpPurpose) -> Result<OtpSent> {
        self.shared.request_otp(phone, purpose).await
    }

    /// Signs in with the code and keeps the session in the encrypted store.
    /// Signing in as someone else than last time clears the cached view.
    pub async fn sign_in(&self, phone: PhoneNumber, code: impl Into<String>) -> Result<Me> {
        let me = self.shared.sign_in(phone, code.into()).await?;
        self.shared
            .urgent
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify_one();
        Ok(me)
    }

    /// Signs out here (and on the server if it can be reached). The cached
    /// view is cleared; unsynced work stays queued for the next sign-in.
    pub async fn sign_out(&self) -> Result<()> {
        self.shared.sign_out().await
    }

    /// The signed-in user, if any.
    pub async fn me(&self) -> Result<Option<Me>> {
        self.shared.store.call(|c| session::me(c)).await
    }

    // ---- offline commands --------------------------------------------------

    /// Records a sale at the counter, with or without a network. The policy
    /// activates when the sale syncs and passes the server's checks; a
    /// refusal shows in [`Core::rejected`] and [`Core::sales`].
    pub async fn record_sale(&self, sale: OfflineSale) -> Result<PolicyId> {
        self.shared.record_sale(sale).await
    }

    /// Saves a claim draft (local only), new or edited; make the id with
    /// `ClaimId::new()` the first time and keep it for edits.
    pub async fn draft_claim(&self, draft: ClaimCreate) -> Result<ClaimId> {
        self.shared.draft_claim(draft).await
    }

    /// Deletes a draft that was never submitted (or was refused).
    pub async fn discard_draft(&self, id: ClaimId) -> Result<()> {
        self.shared.discard_draft(id).await
    }

    /// Queues a draft for filing (`create_claim`). Returns its `client_seq`.
    pub async fn submit_claim(&self, id: ClaimId) -> Result<u64> {
        self.shared.submit_claim(id).await
    }

    /// Records a technician's repair or exchange outcome for an allocated
    /// job. Returns its `client_seq`.
    pub async fn record_job_outcome(&self, outcome: JobOutcome) -> Result<u64> {
        self.shared.record_job_outcome(outcome).await
    }

    /// Queues a request to move a claim. Only the server moves claims; a
    /// stale `expected_state` comes back as a rejection with the current state.
    pub async fn request_transition(
        &self,
        claim_id: ClaimId,
        request: ClaimTransitionRequest,
    ) -> Result<u64> {
        self.shared.request_transition(claim_id, request).await
    }

    /// Hides a refusal the user has seen. A refused sale or outcome goes
    /// away; a refused claim becomes an editable draft again.
    pub async fn dismiss_rejected(&self, client_seq: u64) -> Result<bool> {
        self.shared.dismiss_rejected(client_seq).await
    }

    // ---- uploads -------------------------------------------------------------

    /// Queues a blob (a sealed photo or document at `path`, named by its
    /// `sha256`) for upload to `target`. Each sync run sends pending uploads
    /// before it pushes, resuming where the server's copy ends, and queues
    /// the `attach_blob` command once the server has the whole blob (with the
    /// photo's perceptual hash, for the server's duplicate check). Fails
    /// if the file is not the blob its name says.
    pub async fn queue_upload(
        &self,
        path: PathBuf,
        sha256: protocol::uploads::BlobHash,
        target: UploadTarget,
        phash: Option<protocol::uploads::PerceptualHash>,
    ) -> Result<()> {
        self.shared.queue_upload(path, sha256, target, phash).await
    }

    /// Every upload this device knows, with its progress (bytes the server
    /// confirmed of the blob's length), oldest first.
    pub async fn uploads(&self) -> Result<Vec<UploadStatus>> {
        self.shared.store.call(|c| uploads::statuses(c)).await
    }

    // ---- photos ------------------------------------------------------------

    /// Takes a photo (camera JPEG or PNG bytes) as evidence for `target`:
    /// runs the pipeline on the blocking pool, seals the result to the
    /// insurer's key into `<data_dir>/sealed/<sha256>`, and stores a preview.
    /// The unsealed full-size output is not kept. Refused photos fail with
    /// `photo_*` codes; without an insurer key this is a configuration error.
    pub async fn add_photo(&self, target: PhotoTarget, bytes: Vec<u8>) -> Result<PhotoRecord> {
        self.add_photo_with(target, bytes, PhotoOptions::default())
            .await
    }

    /// [`Core::add_photo`] with other options (e.g. `small` on a 2G link).
    #[tracing::instrument(skip_all, fields(target = target.kind()))]
    pub async fn add_photo_with(
        &self,
        target: PhotoTarget,
        bytes: Vec<u8>,
        options: PhotoOptions,
    ) -> Result<PhotoRecord> {
        let key = self.shared.insurer_key.clone().ok_or_else(|| {
            Error::Config("no insurer public key: photos cannot be sealed".into())
        })?;
        let dir = self.shared.data_dir.join(photos::SEALED_DIR);
        let (photo, sealed) = tokio::task::spawn_blocking(move || {
            let photo = photos::process(&bytes, &options)?;
            let sealed = photos::seal_photo(&photo, &key, &dir)?;
            Ok::<_, Error>((photo, sealed))
        })
        .await
        .map_err(|e| Error::Internal(format!("photo task failed: {e}")))??;
        let path = sealed.path.clone();
        let path_text = path
            .to_str()
            .ok_or_else(|| Error::Config(format!("{} is not UTF-8", path.display())))?
            .to_string();
        // The photo and its upload in one transaction: a photo is never
        // stored without being queued to go to the insurer.
        let stored = self
            .shared
            .store
            .call(move |c| {
                let tx = c.transaction()?;
                let record = photos::records::insert(&tx, target, &photo, &sealed)?;
                let sha = protocol::uploads::BlobHash::from_bytes(&sealed.sha256);
                uploads::enqueue(
                    &tx,
                    &sha,
                    target.upload_target(),
                    &path_text,
                    sealed.len,
                    Some(protocol::uploads::PerceptualHash::new(photo.phash)),
                )?;
                tx.commit()?;
                Ok(record)
            })
            .await;
        match stored {
            Ok(record) => {
                self.shared.wake.notify_one();
                Ok(record)
            }
            Err(e) => {
                // No row points at it: the blob would never be uploaded.
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// The photos taken for `target`, oldest first.
    pub async fn photos(&self, target: PhotoTarget) -> Result<Vec<PhotoRecord>> {
        self.shared
            .store
            .call(move |c| photos::records::for_target(c, target))
            .await
    }

    /// A photo's preview (a small JPEG), by its sealed blob's SHA-256.
    pub async fn photo_preview(&self, sealed_sha256: &str) -> Result<Option<Vec<u8>>> {
        let key = sealed_sha256.to_owned();
        self.shared
            .store
            .call(move |c| photos::records::preview(c, &key))
            .await
    }

    /// Where a sealed photo's blob is (for the upload client); `None` unless
    /// the name is a lowercase hex SHA-256.
    pub fn sealed_photo_path(&self, sealed_sha256: &str) -> Option<PathBuf> {
        let is_name = sealed_sha256.len() == 64
            && sealed_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        is_name.then(|| {
            self.shared
                .data_dir
                .join(photos::SEALED_DIR)
                .join(sealed_sha256)
        })
    }

    // ---- the view ----------------------------------------------------------

    /// Policies: a shop's sales that became policies, or a customer's own.
    pub async fn policies(&self) -> Result<Vec<Policy>> {
        self.shared.store.call(|c| view::policies(c)).await
    }

    /// Claims as the server last said they were.
    pub async fn claims(&self) -> Result<Vec<Claim>> {
        self.shared.store.call(|c| view::claims(c)).await
    }

    /// A technician's allocated jobs.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        self.shared.store.call(|c| view::jobs(c)).await
    }

    /// A customer's vouchers.
    pub async fn vouchers(&self) -> Result<Vec<Voucher>> {
        self.shared.store.call(|c| view::vouchers(c)).await
    }

    /// Sales recorded on this device that are not policies yet.
    pub async fn sales(&self) -> Result<Vec<Local<OfflineSale>>> {
        self.shared
            .store
            .call(|c| view::locals(c, view::Kind::Sale))
            .await
    }

    /// Claim drafts, and claims submitted from this device that the server
    /// has not reflected back yet.
    pub async fn drafts(&self) -> Result<Vec<Local<ClaimCreate>>> {
        self.shared
            .store
            .call(|c| view::locals(c, view::Kind::Draft))
            .await
    }

    /// Job outcomes recorded on this device that have not come back yet.
    pub async fn job_outcomes(&self) -> Result<Vec<Local<JobOutcome>>> {
        self.shared
            .store
            .call(|c| view::locals(c, view::Kind::Outcome))
            .await
    }

    /// The cached plan catalog (empty until the first fetch).
    pub async fn plans(&self) -> Result<Vec<Plan>> {
        self.shared.store.call(|c| view::plans(c)).await
    }

    /// Fetches the plan catalog now and caches it.
    pub async fn refresh_plans(&self) -> Result<Vec<Plan>> {
        self.shared.refresh_plans(&client::Trace::new()).await
    }

    // ---- sync --------------------------------------------------------------

    /// Commands waiting to be sent, in order.
    pub async fn pending(&self) -> Result<Vec<OutboxRow>> {
        self.shared.store.call(|c| outbox::pending(c)).await
    }

    /// Commands the server refused, with its reasons, oldest first.
    pub async fn rejected(&self) -> Result<Vec<Rejection>> {
        self.shared.store.call(|c| outbox::rejected(c)).await
    }

    /// Runs one sync now (push, then pull), whatever the backoff says.
    pub async fn sync_now(&self) -> Result<SyncReport> {
        self.shared.sync_now().await
    }

    /// The sync status, for the UI to watch.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// The shell's word on connectivity. Going online triggers a sync at
    /// once (cutting any backoff short); while offline the background task
    /// does not try.
    pub fn network_changed(&self, online: bool) {
        self.shared.network_changed(online);
    }

    /// Starts the background task (timer, triggers, backoff). Idempotent.
    /// Must be called inside a Tokio runtime; stops when the core is dropped.
    pub fn start_background(&self, options: BackgroundOptions) {
        let mut slot = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        *slot = Some(tokio::spawn(sync::background(self.shared.clone(), options)));
    }

    /// Stops the background task, if running.
    pub fn stop_background(&self) {
        if let Some(h) = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            h.abort();
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.stop_background();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_server::{self, Mock};
    use crate::sync::tests::{open, signed_in};
    use glassguard_protocol::Role;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// Every file of the store (database, WAL, shared memory), concatenated.
    fn store_bytes(dir: &std::path::Path) -> Vec<u8> {
        let mut all = vec![];
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.to_string_lossy().contains(store::DB_FILE) {
                all.extend(std::fs::read(path).unwrap());
            }
        }
        all
    }

    #[tokio::test]
    async fn no_pii_or_token_reaches_the_disk_in_the_clear() {
        let (mock, dir, core) = signed_in(Role::PartnerStaff).await;
        let sale = mock_server::sale(4);
        core.record_sale(sale.clone()).await.unwrap();
        core.sync_now().await.unwrap();
        core.record_sale(mock_server::sale(5)).await.unwrap();
        assert_eq!(core.policies().await.unwrap().len(), 1);
        let token = mock.lock().valid_access.iter().next().unwrap().clone();
        let bytes = store_bytes(dir.path());
        assert!(bytes.len() > 4096, "the store has data");
        for needle in [
            sale.customer_name.as_str(),
            "Kulkarni",
            sale.customer_phone.as_str(),
            "9123456789",
            sale.imei.as_str(),
            "Asha",
            "9876543210",
            token.as_str(),
            "refresh-",
            "record_sale",
            "CREATE TABLE",
        ] {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{needle:?} is on disk in the clear"
            );
        }
        // The same check can fail: the values are there once decrypted.
        drop(core);
        let core = open(&mock.url, dir.path());
        assert_eq!(
            core.policies().await.unwrap()[0].customer_name,
            sale.customer_name
        );
    }

    #[tokio::test]
    async fn a_wrong_key_does_not_open_the_core() {
        let mock = Mock::start().await;
        let dir = tempfile::tempdir().unwrap();
        drop(open(&mock.url, dir.path()));
        let err = Core::open(Config {
            data_dir: dir.path().to_path_buf(),
            db_key: DbKey::new([0xAA; 32]),
            server_url: mock.url.clone(),
            pinned_server_key: None,
            insurer_public_key: None,
        })
        .unwrap_err();
        assert!(matches!(err, Error::WrongKey { .. }), "{err:?}");
        assert!(format!("{:?}", DbKey::new([0xAA; 32])).contains("REDACTED"));
    }

    /// A log sink the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn logs_carry_no_tokens_codes_or_pii() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let (mock, _dir, core) = signed_in(Role::PartnerStaff).await;
        let sale = mock_server::sale(1);
        core.record_sale(sale.clone()).await.unwrap();
        mock.expire_access();
        mock.lock().reject_seqs.insert(2);
        core.record_sale(mock_server::sale(2)).await.unwrap();
        core.sync_now().await.unwrap();
        let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        // The test must be able to fail: the core's own lines were captured
        // (the sync run's closing line may land after the test's last read).
        assert!(
            logs.contains("glassguard_core") && logs.contains("signed in"),
            "logs were captured:\n{logs}"
        );
        for needle in [
            "access-",
            "refresh-",
            "123456",
            "Bearer",
            sale.customer_name.as_str(),
            sale.customer_phone.as_str(),
            "9876543210",
            sale.imei.as_str(),
            "Asha",
        ] {
            assert!(!logs.contains(needle), "{needle:?} in logs:\n{logs}");
        }
    }

    /// A one-connection-at-a-time HTTPS server answering every request with
    /// `202 OtpSent`.
    async fn tls_server(cert: Vec<u8>, key: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = vec![0u8; 8192];
                let mut got = vec![];
                while !contains(&got, b"}") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"expires_in_seconds":300,"resend_after_seconds":60}"#;
                let resp = format!(
                    "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        format!("https://127.0.0.1:{}", addr.port())
    }

    #[tokio::test]
    async fn a_pinned_key_is_required_and_enough() {
        let (cert, key) = tls::tests::self_signed();
        let url = tls_server(cert.clone(), key).await;
        let phone = glassguard_protocol::PhoneNumber::parse("9876543210").unwrap();
        let purpose = glassguard_protocol::api::OtpPurpose::SignIn;
        let core_with = |pin: Option<[u8; 32]>, dir: &std::path::Path| {
            Core::open(Config {
                data_dir: dir.to_path_buf(),
                db_key: DbKey::new([1; 32]),
                server_url: url.clone(),
                pinned_server_key: pin,
                insurer_public_key: None,
            })
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();

        // The right pin: a self-signed certificate is trusted by its key.
        let pin = tls::spki_sha256(&cert).unwrap();
        let sent = core_with(Some(pin), dir.path())
            .request_otp(phone.clone(), purpose)
            .await
            .unwrap();
        assert_eq!(sent.expires_in_seconds, 300);

        // Another key: fail closed, and say why.
        let (other, _) = tls::tests::self_signed();
        let wrong = tls::spki_sha256(&other).unwrap();
        let err = core_with(Some(wrong), dir.path())
            .request_otp(phone.clone(), purpose)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PinMismatch), "{err:?}");

        // No pin: the self-signed certificate is not trusted by the CA roots.
        let err = core_with(None, dir.path())
            .request_otp(phone, purpose)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Network(_)), "{err:?}");
    }
}
