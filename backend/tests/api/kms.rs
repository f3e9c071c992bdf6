//! The master key from AWS KMS, against a local AWS API server (moto, from
//! PyPI, pinned in `xtask/src/setup.rs` and installed by `cargo xtask test`
//! into `<target>/xtask/venv-moto`; or `$GLASSGUARD_MOTO_PYTHON`), through
//! the real AWS SDK: `keys init`, boot, the refusals to start, and a
//! rotation on a running server while requests continue.
//!
//! Under `CI=true` a missing moto fails the test; elsewhere it says loudly
//! that it did not run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use glassguard_protocol::Role;
use glassguard_server::crypto::{Keyring, KmsKeySource, MasterKey};
use reqwest::StatusCode;

use crate::harness::{Db, TestApp};
use crate::story::{ADMIN, CUSTOMER, run_story_on};

const REGION: &str = "us-east-1";

fn moto_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GLASSGUARD_MOTO_PYTHON") {
        return Some(PathBuf::from(p));
    }
    // This binary is <target>/debug/deps/api-*.
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    let p = target.join("xtask/venv-moto/bin/python");
    p.is_file().then_some(p)
}

/// A moto server on a free port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto, or `None` (loudly; a failure under CI) when it is not installed.
    pub async fn start() -> Option<Moto> {
        let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"));
        let python = moto_python().filter(|p| {
            Command::new(p)
                .args(["-c", "import moto.server"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let Some(python) = python else {
            assert!(
                !ci,
                "CI=true but moto is not installed: run `cargo xtask test` (or set GLASSGUARD_MOTO_PYTHON)"
            );
            eprintln!(
                "\n!!!! NOT RUN: KMS tests (moto not installed; `cargo xtask test` installs it, or set GLASSGUARD_MOTO_PYTHON) !!!!\n"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .is_ok()
            {
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto did not start on port {port}");
    }

    async fn client(&self) -> aws_sdk_kms::Client {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await;
        aws_sdk_kms::Client::new(&conf)
    }

    /// Decrypts a stored master key ciphertext as the server would (the
    /// test's own look at the key, to search for it).
    async fn decrypt(&self, ciphertext: &serde_json::Value, key: &str, version: u32) -> Vec<u8> {
        let blob = base64::engine::general_purpose::STANDARD
            .decode(ciphertext.as_str().unwrap())
            .unwrap();
        let out = self
            .client()
            .await
            .decrypt()
            .key_id(key)
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
            .encryption_context("glassguard", "master-key")
            .encryption_context("version", version.to_string())
            .send()
            .await
            .unwrap();
        let plain = out.plaintext().unwrap().as_ref().to_vec();
        assert_eq!(plain.len(), 32);
        plain
    }

    /// A new symmetric KMS key; its id.
    pub async fn create_key(&self) -> String {
        let out = self.client().await.create_key().send().await.unwrap();
        out.key_metadata().unwrap().key_id().to_string()
    }

    /// The key source a server in a test uses (credentials given here,
    /// not taken from the environment).
    pub fn source(&self, key_id: &str, objects: &Path) -> KmsKeySource {
        std::fs::create_dir_all(objects).unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(objects).unwrap();
        KmsKeySource::new(key_id, Arc::new(store))
            .with_endpoint(Some(self.endpoint.clone()))
            .with_region(Some(REGION.into()))
            .with_static_credentials("testing", "testing")
    }
}

/// Runs the `glassguard` binary with the KMS settings in its environment.
fn glassguard(data_dir: &Path, key_id: &str, endpoint: &str, args: &[&str]) -> (bool, String) {
    glassguard_logging(data_dir, key_id, endpoint, args, "info")
}

fn glassguard_logging(
    data_dir: &Path,
    key_id: &str,
    endpoint: &str,
    args: &[&str],
    log: &str,
) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_glassguard"))
        .env("GLASSGUARD_LOG", log)
        .env_remove("RUST_BACKTRACE")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("GLASSGUARD_CONFIG")
        .env_remove("GLASSGUARD_DATABASE_URL")
        .env_remove("GLASSGUARD_OBJECT_STORE_URL")
        .env_remove("AWS_PROFILE")
        .env("GLASSGUARD_KMS_KEY_ID", key_id)
        .env("GLASSGUARD_KMS_ENDPOINT", endpoint)
        .env("GLASSGUARD_KMS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The refusal paths: each exits non-zero with a clear message and
/// writes no database.
#[tokio::test]
async fn kms_init_boot_and_refusals_through_the_binary() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let key = moto.create_key().await;
    let other_key = moto.create_key().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = ["admin", "create", "--phone", "+919100000901"];

    // No wrapped key yet.
    let (ok, text) = glassguard(&data, &key, &moto.endpoint, &admin);
    assert!(!ok && text.contains("keys init"), "{text}");
    assert!(!data.join("glassguard.db").exists(), "nothing written");

    let (ok, text) = glassguard(
        &data,
        &key,
        &moto.endpoint,
        &["keys", "init", "--kms", &key],
    );
    assert!(ok, "{text}");
    let wrapped = data.join("objects/keys/master-v1.json");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&wrapped).unwrap()).unwrap();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["key_id"], key.as_str());
    // A second init would orphan every key: refused.
    let (ok, text) = glassguard(
        &data,
        &key,
        &moto.endpoint,
        &["keys", "init", "--kms", &key],
    );
    assert!(!ok && text.contains("exists already"), "{text}");

    // Boots through KMS (no key file anywhere), logging at TRACE: the
    // master key KMS returned is nowhere in the output (the AWS SDK's
    // traces included), as raw bytes, hex or base64.
    let (ok, text) = glassguard_logging(&data, &key, &moto.endpoint, &admin, "trace");
    assert!(ok, "{text}");
    assert!(text.len() > 10_000 && text.contains("TRACE"), "{text}");
    let master = moto.decrypt(&stored["ciphertext"], &key, 1).await;
    for form in [
        hex::encode(&master),
        base64::engine::general_purpose::STANDARD.encode(&master),
        String::from_utf8_lossy(&master).into_owned(),
    ] {
        assert!(
            !text.contains(form.trim_end_matches('=')),
            "the master key is in the logs"
        );
    }
    assert!(data.join("glassguard.db").exists());
    assert!(
        !data.join("master.key").exists(),
        "no local key file with KMS"
    );

    // Each refusal in a copy of the key folder, with no database yet.
    let fresh = |name: &str, json: Option<String>| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(d.join("objects/keys")).unwrap();
        let json = json.unwrap_or_else(|| std::fs::read_to_string(&wrapped).unwrap());
        std::fs::write(d.join("objects/keys/master-v1.json"), json).unwrap();
        d
    };
    let wrong = fresh("wrong-key", None);
    let (ok, text) = glassguard(&wrong, &other_key, &moto.endpoint, &admin);
    assert!(
        !ok && text.contains(&format!("the configured KMS key is {other_key}")),
        "{text}"
    );
    assert!(!wrong.join("glassguard.db").exists());

    // A KMS key that does not exist: init refuses, writes no wrapped key.
    let nowhere = dir.path().join("no-such-key");
    let (ok, text) = glassguard(
        &nowhere,
        "no-such-key",
        &moto.endpoint,
        &["keys", "init", "--kms", "no-such-key"],
    );
    assert!(!ok && text.contains("GenerateDataKey"), "{text}");
    assert!(!nowhere.join("objects/keys/master-v1.json").exists());

    let mut bad = stored.clone();
    bad["ciphertext"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let corrupt = fresh("corrupt", Some(bad.to_string()));
    let (ok, text) = glassguard(&corrupt, &key, &moto.endpoint, &admin);
    assert!(!ok && text.contains("KMS Decrypt"), "{text}");
    assert!(!corrupt.join("glassguard.db").exists());

    let garbage = fresh("garbage", Some("{not json".into()));
    let (ok, text) = glassguard(&garbage, &key, &moto.endpoint, &admin);
    assert!(!ok && text.contains("corrupt"), "{text}");
    assert!(!garbage.join("glassguard.db").exists());

    let unreachable = fresh("unreachable", None);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, text) = glassguard(
        &unreachable,
        &key,
        &format!("http://127.0.0.1:{closed_port}"),
        &admin,
    );
    assert!(!ok && text.contains("cannot load the master key"), "{text}");
    assert!(!unreachable.join("glassguard.db").exists());
}

/// The story on a KMS-backed server, a rotation while requests continue,
/// then: every key under the new version, every PII field still decrypts,
/// and the old master key alone opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_rotation_on_a_running_server() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let key = moto.create_key().await;
    let data = tempfile::tempdir().unwrap();
    let objects = data.path().join("objects");
    let source = moto.source(&key, &objects);
    assert_eq!(source.init().await.unwrap(), 1);

    let data_dir = data.path().to_path_buf();
    let app = TestApp::spawn_with_kms(
        Db::Sqlite,
        |l| {
            l.data_dir = Some(data_dir.clone());
            l.kms_key_id = Some(key.clone());
        },
        Some(source.clone()),
    )
    .await
    .unwrap();
    let story = run_story_on(app).await;
    let app = &story.app;
    let state = app.server.state.clone();
    assert_eq!(state.keys.master_versions(), [1]);
    let before = state.store.wrapped_key_versions().await.unwrap();
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), [1]);

    // Requests go on while the rotation runs: reads of PII and new rows.
    let admin = app.sign_in(ADMIN).await.access_token;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (http, base, admin, stop) = (
            app.http.clone(),
            app.base.clone(),
            admin.clone(),
            stop.clone(),
        );
        let policy = story.policy_id;
        let claim = story.claim_id;
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || n < 5 {
                for path in [
                    format!("/v1/policies/{policy}"),
                    format!("/v1/claims/{claim}"),
                    "/v1/admin/sms".to_string(),
                    "/v1/users".to_string(),
                ] {
                    let r = http
                        .get(format!("{base}{path}"))
                        .bearer_auth(&admin)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), StatusCode::OK, "{path} during the rotation");
                }
                n += 1;
            }
            n
        })
    };
    let writes = async {
        for i in 0..5 {
            app.seed_user(
                &format!("+9191000009{i:02}"),
                Role::Technician,
                "Rotating Tech",
            )
            .await;
        }
    };
    let (rotation, ()) = tokio::join!(
        glassguard_server::rotation::rotate(&state.store, &state.keys, &source, Duration::ZERO),
        writes
    );
    let rotation = rotation.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(load.await.unwrap() >= 5);
    assert_eq!(rotation.from, [1]);
    assert_eq!(rotation.to, 2);
    assert!(rotation.moved > 20, "{rotation:?}");

    // Every stored key is under version 2 and the keyring holds only it.
    let after = state.store.wrapped_key_versions().await.unwrap();
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), [2], "{after:?}");
    assert_eq!(state.keys.master_versions(), [2]);
    let stored = source.stored().await.unwrap();
    assert!(stored[0].retired && !stored[1].retired);

    // Every PII field still decrypts: through the API, and every row key unwraps.
    let rows = state.store.wrapped_row_keys().await.unwrap();
    assert!(rows.len() > 20);
    for (binding, wrapped) in &rows {
        state.keys.unwrap_data_key(binding, wrapped).unwrap();
    }
    let customer = app.sign_in(CUSTOMER).await.access_token;
    for (path, token) in [
        (format!("/v1/policies/{}", story.policy_id), &admin),
        (format!("/v1/claims/{}", story.claim_id), &admin),
        ("/v1/admin/sms".to_string(), &admin),
        ("/v1/users".to_string(), &admin),
        ("/v1/policies".to_string(), &customer),
    ] {
        let (s, b) = app.get(&path, Some(token)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
    }

    // A server started now loads version 2 only and reads everything.
    let masters = source_versions(&source).await;
    assert_eq!(
        masters.iter().map(MasterKey::version).collect::<Vec<_>>(),
        [2]
    );

    // The old master key alone opens no row key and not the keyring.
    let old = source.load_version(&stored[0]).await.unwrap();
    assert_eq!(old.version(), 1);
    let (only_old, _) = Keyring::generate(old).unwrap();
    for (binding, wrapped) in &rows {
        assert!(
            only_old.unwrap_data_key(binding, wrapped).is_err(),
            "{binding} opens with the old master key"
        );
    }
    let old = source.load_version(&stored[0]).await.unwrap();
    let system = system_keys(&state.store).await;
    assert!(Keyring::open(old, &system).is_err());
    let new = source.load_version(&stored[1]).await.unwrap();
    Keyring::open(new, &system).unwrap();

    // A running server that did not make the rotation picks the new
    // version up through its refresh.
    let (second, _) = Keyring::generate(MasterKey::from_bytes(9, [7; 32])).unwrap();
    glassguard_server::rotation::refresh(&second, &source)
        .await
        .unwrap();
    assert!(second.master_versions().contains(&2));
}

async fn source_versions(source: &KmsKeySource) -> Vec<MasterKey> {
    source.load_versions().await.unwrap()
}

async fn system_keys(
    store: &glassguard_server::store::Store,
) -> Vec<(String, glassguard_server::crypto::WrappedKey)> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT purpose, wrapped FROM system_keys")
        .fetch_all(store.reader())
        .await
        .unwrap();
    rows.into_iter()
        .map(|(p, w)| {
            (
                p,
                glassguard_server::crypto::WrappedKey::from_bytes(w).unwrap(),
            )
        })
        .collect()
}
