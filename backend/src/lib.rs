//! The Glassguard insurer backend: partners, sales, policies, claims and
//! vouchers over HTTP, on SQLite (default) or PostgreSQL.
//!
//! Data flows in at the HTTP edge ([`http`]), where bodies are parsed into
//! the protocol's domain types and every request is put to the one
//! [`authz::Authorizer`]; business rules come from the plan catalog
//! ([`plans`]); storage ([`store`]) encrypts PII with keys from [`crypto`]
//! and writes each change together with its audit entry and its outbox
//! notification; the [`notifier`] drains the outbox. Photos and documents
//! arrive over tus ([`uploads`]) into the object store.
//!
//! [`launch_with_listener`] starts the whole server on a given listener; the
//! binary and the tests both use it.

pub mod audit;
pub mod authz;
pub mod backup;
pub mod bot;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod http;
pub mod limits;
pub mod notifier;
pub mod plans;
pub mod rotation;
pub mod store;
pub mod tls;
pub mod uploads;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{KeySource, KmsKeySource, LocalKeyFile};
use crate::http::AppState;
use crate::store::Store;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// `https` when the server terminates TLS, else `http`.
    pub scheme: &'static str,
    /// The certificate the server presents (DER), when it terminates TLS:
    /// clients pin its key.
    pub certificate: Option<Vec<u8>>,
    /// The state handlers share (tests use it to reach the store).
    pub state: AppState,
    /// Wakes the notification worker.
    pub notify: Arc<tokio::sync::Notify>,
    /// Signs the audit checkpoints.
    pub audit_key: Arc<audit::SigningKey>,
    serve: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
    key_refresh: Option<tokio::task::JoinHandle<()>>,
    checkpointer: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Runs until the serve task ends (or the process is asked to stop),
    /// then writes what the audit writer holds and a last signed checkpoint.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let r = tokio::select! {
            r = &mut self.serve => r.context("server task failed"),
            _ = shutdown_signal() => Ok(()),
        };
        self.shutdown().await?;
        r
    }

    /// Stops serving, writes what the audit writer holds and signs a last
    /// checkpoint of the audit chain.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        self.serve.abort();
        self.worker.abort();
        if let Some(t) = &self.key_refresh {
            t.abort();
        }
        self.checkpointer.abort();
        self.state.store.flush_audit().await;
        audit::write_checkpoint(
            &self.state.store,
            self.state.blobs.objects(),
            &self.audit_key,
            self.state.now(),
        )
        .await?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.serve.abort();
        self.worker.abort();
        if let Some(t) = &self.key_refresh {
            t.abort();
        }
        self.checkpointer.abort();
        // Write what the audit writer holds, then give the database its
        // connections back (a stopped server must not hold them until the
        // pool's idle timeout: PostgreSQL has a connection limit).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = self.state.store.clone();
            rt.spawn(async move {
                store.flush_audit().await;
                store.close().await;
            });
        }
    }
}

/// The master key source the settings name: AWS KMS when a KMS key id is
/// set (the wrapped master key in the object store, under `keys/`), else
/// the local key file.
pub fn key_source(settings: &Settings) -> anyhow::Result<Box<dyn KeySource>> {
    let Some(kms) = &settings.kms else {
        return Ok(Box::new(LocalKeyFile::new(
            settings.master_key_file.clone(),
        )));
    };
    if let config::ObjectStoreUrl::Local(dir) = &settings.object_store {
        anyhow::ensure!(
            dir.is_dir(),
            "no wrapped master key: the object folder {} does not exist (run `glassguard keys init --kms {}` first)",
            dir.display(),
            kms.key_id
        );
    }
    let objects = uploads::object_store(&settings.object_store)
        .context("cannot open the object store that holds the wrapped master key")?;
    Ok(Box::new(kms_source(kms, objects)))
}

/// The KMS key source for these settings over `objects`.
pub fn kms_source(
    kms: &config::KmsSettings,
    objects: Arc<dyn object_store::ObjectStore>,
) -> KmsKeySource {
    KmsKeySource::new(kms.key_id.clone(), objects)
        .with_endpoint(kms.endpoint.clone())
        .with_region(kms.region.clone())
}

/// Builds the application state: storage, keys, policies, catalog.
pub async fn build_state(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let source = key_source(&settings)?;
    build_state_with(settings, clock, source.as_ref()).await
}

/// [`build_state`] with a given master key source.
pub async fn build_state_with(
    settings: Settings,
    clock: Arc<dyn Clock>,
    source: &dyn KeySource,
) -> anyhow::Result<AppState> {
    // The master key first: a server that cannot have it writes nothing.
    let masters = source
        .load_all()
        .await
        .with_context(|| format!("cannot load the master key ({})", source.describe()))?;
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    tracing::info!(source = %source.describe(), "master key loaded");
    let store = Store::open(&settings.database)
        .await
        .context("cannot open the database")?;
    let keys = store
        .open_keyring(masters)
        .await
        .context("cannot open the keyring: is this the master key this database was made with?")?;
    let authz = match &settings.policies_dir {
        Some(dir) => authz::Authorizer::from_dir(dir),
        None => authz::Authorizer::embedded(),
    }
    .context("authorization policies are invalid")?;
    let catalog = match &settings.plans_file {
        Some(p) => plans::Catalog::parse(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => plans::Catalog::parse(plans::EMBEDDED_CATALOG),
    }
    .context("the plan catalog is invalid")?;
    let blobs = uploads::Blobs::open(&settings).context("cannot open the object store")?;
    let insurer_source = LocalKeyFile::new(settings.insurer_key_file.clone());
    let insurer_key = crypto::InsurerKey::load(&insurer_source)
        .await
        .with_context(|| {
            format!(
                "cannot load the insurer's sealing key ({})",
                insurer_source.describe()
            )
        })?;
    Ok(AppState {
        blobs,
        insurer_key: Arc::new(insurer_key),
        store,
        keys,
        authz,
        catalog: Arc::new(catalog),
        clock,
        settings: Arc::new(settings),
        sessions: Default::default(),
        limiter: Default::default(),
    })
}

/// Starts the server on `listener` with the dev SMS inbox.
pub async fn launch_with_listener(
    settings: Settings,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let source = key_source(&settings)?;
    launch_with_key_source(settings, clock, listener, source.as_ref(), None).await
}

/// [`launch_with_listener`] with a given master key source; with `kms`, the
/// server also picks up new master key versions as a rotation makes them
/// (see [`rotation`]).
pub async fn launch_with_key_source(
    settings: Settings,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    source: &dyn KeySource,
    kms: Option<KmsKeySource>,
) -> anyhow::Result<Server> {
    let kms = kms.or_else(|| {
        let objects = uploads::object_store(&settings.object_store).ok()?;
        Some(kms_source(settings.kms.as_ref()?, objects))
    });
    let state = build_state_with(settings, clock, source).await?;
    if state.settings.demo {
        demo::seed(&state).await.context("cannot seed demo data")?;
    }
    let addr = listener.local_addr()?;
    state.store.start_audit_writer();
    let audit_key = Arc::new(
        audit::SigningKey::load_or_create(&state.settings.data_dir)
            .context("cannot load the audit signing key")?,
    );
    let checkpointer = tokio::spawn(audit::run_checkpointer(
        state.store.clone(),
        state.blobs.objects().clone(),
        audit_key.clone(),
        state.clock.clone(),
        state.settings.audit_checkpoint_every,
    ));
    let notify = Arc::new(tokio::sync::Notify::new());
    let sender = Arc::new(notifier::DevInbox::new(
        state.store.clone(),
        state.keys.clone(),
        state.clock.clone(),
    ));
    let worker = tokio::spawn(notifier::run(
        state.store.clone(),
        state.keys.clone(),
        state.clock.clone(),
        sender,
        notify.clone(),
    ));
    let key_refresh = kms.map(|source| {
        let keys = state.keys.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(rotation::REFRESH_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = rotation::refresh(&keys, &source).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot refresh the master key versions");
                }
            }
        })
    });
    let tls = tls::server_config(&state.settings).context("cannot set up TLS")?;
    let app = http::app(state.clone());
    let certificate = tls.as_ref().map(|(_, cert)| cert.clone());
    let (scheme, serve) = match tls {
        Some((config, _)) => {
            let app = app.layer(axum::middleware::from_fn(tls::hsts));
            // `tap_io` only to get axum's `ConnectInfo<SocketAddr>` for any listener.
            let listener =
                axum::serve::ListenerExt::tap_io(tls::TlsListener::new(listener, config)?, |_| {});
            let serve = tokio::spawn(async move {
                let svc = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, svc).await {
                    tracing::error!(error = %e, "server stopped");
                }
            });
            ("https", serve)
        }
        None => {
            let app = if state.settings.production {
                app.layer(axum::middleware::from_fn(tls::health_only))
            } else {
                app
            };
            let serve = tokio::spawn(async move {
                let svc = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, svc).await {
                    tracing::error!(error = %e, "server stopped");
                }
            });
            ("http", serve)
        }
    };
    Ok(Server {
        addr,
        scheme,
        certificate,
        state,
        notify,
        audit_key,
        serve,
        worker,
        key_refresh,
        checkpointer,
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
