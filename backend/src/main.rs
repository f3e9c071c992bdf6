//! `glassguard`: the server binary.
//!
//! - `glassguard serve [--listen ADDR] [--data-dir DIR] [--config FILE] [--demo]
//!   [--tls-cert PEM --tls-key PEM | --tls-self-signed] [--production]`
//! - `glassguard admin create --phone PHONE --name NAME [--data-dir DIR]`
//! - `glassguard sms-inbox [--to PHONE] [--limit N] [--data-dir DIR]`
//! - `glassguard backup --to DIR [--data-dir DIR]` (encrypted; see `backup`)
//! - `glassguard restore --from DIR [--data-dir DIR]` (into an empty target)
//! - `glassguard verify-backup --from DIR [--data-dir DIR]`
//! - `glassguard keys init --kms KEY_ID` (master key from AWS KMS)
//! - `glassguard keys rotate [--grace-seconds N]` (while servers run)
//! - `glassguard audit verify [--data-dir DIR]`

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glassguard_protocol::{PhoneNumber, Role, UserId};
use glassguard_server::clock::SystemClock;
use glassguard_server::config::{Layer, Settings};
use glassguard_server::crypto::KeySource as _;
use glassguard_server::store::{AuditRecord, NewUser};

#[derive(Parser)]
#[command(name = "glassguard", about = "Glassguard insurer backend", version)]
struct Cli {
    /// Settings file (TOML); environment variables GLASSGUARD_* and flags override it.
    #[arg(long, global = true, env = "GLASSGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite file, master key).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Seed demo users and an approved demo partner.
        #[arg(long)]
        demo: bool,
        /// Terminate TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// Terminate TLS with a self-signed development certificate
        /// (generated under the data directory on first run).
        #[arg(long)]
        tls_self_signed: bool,
        /// Production mode: plain HTTP answers health checks only.
        #[arg(long)]
        production: bool,
    },
    /// Print the dev SMS inbox (codes included) from the data directory:
    /// for the operator of a local or demo server, before any admin has signed in.
    SmsInbox {
        /// Only messages to this phone.
        #[arg(long)]
        to: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 5)]
        limit: i64,
    },
    /// Write a consistent, encrypted backup of the database and the object
    /// store into a new directory (safe while the server runs). Restoring it
    /// needs the same master key: keep the key file apart from the backup.
    Backup {
        /// The backup directory (new or empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into an empty data directory / database / object
    /// store; refuses a target that holds data. Needs the backup's master key.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Check a backup (hashes, master key, every file decrypts) without restoring it.
    VerifyBackup {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Manage the master key (AWS KMS).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and check it against the signed checkpoints;
    /// names the first bad entry or checkpoint and exits non-zero on failure.
    Verify,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the master key in AWS KMS (GenerateDataKey) and store only its
    /// KMS ciphertext in the object store (`keys/master-v1.json`). Then run
    /// the server with GLASSGUARD_KMS_KEY_ID set to the same key.
    Init {
        /// The KMS key (id, ARN or alias).
        #[arg(long)]
        kms: String,
    },
    /// Move every data key to a new master key version, while servers run;
    /// the old version is retired at the end.
    Rotate {
        /// How long to wait for running servers to load the new version
        /// before keys move onto it (they look every 30 s).
        #[arg(long, default_value_t = 65)]
        grace_seconds: u64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin who signs in by OTP on this phone.
    Create {
        /// The admin's mobile number.
        #[arg(long)]
        phone: String,
        /// The admin's name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

fn settings(cli: &Cli, listen: Option<String>, demo: bool) -> anyhow::Result<Settings> {
    settings_with(cli, listen, demo, Layer::default())
}

fn settings_with(
    cli: &Cli,
    listen: Option<String>,
    demo: bool,
    flags: Layer,
) -> anyhow::Result<Settings> {
    let mut layer = Layer::default();
    if let Some(file) = &cli.config {
        layer = layer.overlay(Layer::from_file(file)?);
    }
    layer = layer.overlay(Layer::from_env()?);
    layer = layer.overlay(Layer {
        listen,
        data_dir: cli.data_dir.clone(),
        demo: demo.then_some(true),
        ..flags
    });
    Ok(layer.resolve()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GLASSGUARD_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve {
            listen,
            demo,
            tls_cert,
            tls_key,
            tls_self_signed,
            production,
        } => {
            let flags = Layer {
                tls_cert: tls_cert.clone(),
                tls_key: tls_key.clone(),
                tls_self_signed: tls_self_signed.then_some(true),
                production: production.then_some(true),
                ..Layer::default()
            };
            let s = settings_with(&cli, listen.clone(), *demo, flags)?;
            let listener = tokio::net::TcpListener::bind(s.listen)
                .await
                .with_context(|| format!("cannot listen on {}", s.listen))?;
            let demo = s.demo;
            let data_dir = s.data_dir.clone();
            let server =
                glassguard_server::launch_with_listener(s, Arc::new(SystemClock), listener).await?;
            let base = format!("{}://{}", server.scheme, server.addr);
            println!(
                "Glassguard is listening on {base}  (data in {})",
                data_dir.display()
            );
            println!("  health:   {base}/healthz   API description: {base}/openapi.json");
            if demo {
                use glassguard_server::demo::*;
                println!(
                    "  demo users sign in by OTP (POST {base}/v1/auth/otp, then /v1/auth/sign-in):"
                );
                println!(
                    "    admin {ADMIN_PHONE}, adjuster {ADJUSTER_PHONE}, technician {TECHNICIAN_PHONE},"
                );
                println!(
                    "    demo partner admin {PARTNER_ADMIN_PHONE}, counter staff {PARTNER_STAFF_PHONE}"
                );
                println!(
                    "  codes are not really sent: they land in the dev SMS inbox. Read it with"
                );
                println!(
                    "    cargo run -q -p glassguard-server --bin glassguard -- --data-dir {} sms-inbox",
                    data_dir.display()
                );
                println!(
                    "  or, signed in as admin: curl -H \"Authorization: Bearer $ADMIN\" {base}/v1/admin/sms"
                );
            }
            server.wait().await
        }
        Command::SmsInbox { to, limit } => {
            let s = settings(&cli, None, false)?;
            let to = to.as_deref().map(PhoneNumber::parse).transpose()?;
            let state = glassguard_server::build_state(s, Arc::new(SystemClock)).await?;
            for m in state.store.inbox(&state.keys, to.as_ref(), *limit).await? {
                println!(
                    "{}  to {}  {}",
                    m.created_at.format("%H:%M:%S"),
                    m.to,
                    m.body
                );
            }
            Ok(())
        }
        Command::Backup { to } => {
            let s = settings(&cli, None, false)?;
            let state = glassguard_server::build_state(s, Arc::new(SystemClock)).await?;
            let m = glassguard_server::backup::backup(&state, to).await?;
            state.store.close().await;
            println!(
                "backup {} written to {} ({} files, schema {})",
                m.id,
                to.display(),
                m.files.len(),
                m.schema_version
            );
            Ok(())
        }
        Command::Restore { from } => {
            let s = settings(&cli, None, false)?;
            let m = glassguard_server::backup::restore(from, &s).await?;
            println!(
                "backup {} of {} restored ({} files)",
                m.id,
                m.created_at,
                m.files.len()
            );
            Ok(())
        }
        Command::VerifyBackup { from } => {
            let s = settings(&cli, None, false)?;
            let source = glassguard_server::key_source(&s)?;
            let m = glassguard_server::backup::verify(from, source.as_ref()).await?;
            println!(
                "backup {} of {} is intact ({} files)",
                m.id,
                m.created_at,
                m.files.len()
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Init { kms },
        } => {
            let mut s = settings(&cli, None, false)?;
            let k = s
                .kms
                .get_or_insert_with(|| glassguard_server::config::KmsSettings {
                    key_id: kms.clone(),
                    endpoint: None,
                    region: None,
                });
            k.key_id = kms.clone();
            if let glassguard_server::config::ObjectStoreUrl::Local(dir) = &s.object_store {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let objects = glassguard_server::uploads::object_store(&s.object_store)?;
            let source = glassguard_server::kms_source(k, objects);
            let version = source.init().await?;
            println!(
                "master key version {version} created under KMS key {kms}; only its KMS ciphertext is stored ({})",
                source.describe()
            );
            println!("  run the server with GLASSGUARD_KMS_KEY_ID={kms}");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { grace_seconds },
        } => {
            let s = settings(&cli, None, false)?;
            let kms = s
                .kms
                .clone()
                .context("rotation needs the KMS key source: set GLASSGUARD_KMS_KEY_ID")?;
            let objects = glassguard_server::uploads::object_store(&s.object_store)?;
            let source = glassguard_server::kms_source(&kms, objects);
            let state = glassguard_server::build_state(s, Arc::new(SystemClock)).await?;
            let r = glassguard_server::rotation::rotate(
                &state.store,
                &state.keys,
                &source,
                std::time::Duration::from_secs(*grace_seconds),
            )
            .await?;
            state.store.close().await;
            println!(
                "rotated from master key version(s) {:?} to {}: {} keys re-wrapped",
                r.from, r.to, r.moved
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let s = settings(&cli, None, false)?;
            let key = glassguard_server::audit::SigningKey::load_or_create(&s.data_dir)?;
            let state = glassguard_server::build_state(s, Arc::new(SystemClock)).await?;
            match glassguard_server::audit::verify(
                &state.store,
                state.blobs.objects(),
                &key.public_key(),
            )
            .await?
            {
                Ok(v) => {
                    println!(
                        "audit trail intact: {} entries, {} signed checkpoints",
                        v.entries, v.checkpoints
                    );
                    Ok(())
                }
                Err(t) => {
                    eprintln!("audit trail TAMPERED: {t}");
                    std::process::exit(2);
                }
            }
        }
        Command::Admin {
            command: AdminCommand::Create { phone, name },
        } => {
            let s = settings(&cli, None, false)?;
            let phone = PhoneNumber::parse(phone)?;
            let state = glassguard_server::build_state(s, Arc::new(SystemClock)).await?;
            let user = NewUser {
                id: UserId::new(),
                role: Role::Admin,
                phone: &phone,
                name: Some(name),
                email: None,
                partner_id: None,
                service_centre: None,
            };
            let rec = AuditRecord {
                action: "user.create".into(),
                resource_type: "user".into(),
                resource_id: Some(user.id.to_string()),
                ..Default::default()
            };
            match state
                .store
                .create_user(&state.keys, &user, state.now(), &rec)
                .await?
            {
                Some(u) => println!(
                    "admin {} created; sign in by OTP on {}",
                    u.id,
                    phone.masked()
                ),
                None => anyhow::bail!("this phone number already belongs to a user"),
            }
            Ok(())
        }
    }
}
