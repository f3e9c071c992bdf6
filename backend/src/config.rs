//! Typed settings, layered: defaults in code → optional TOML file →
//! `GLASSGUARD_*` environment variables → command-line flags. Everything is
//! validated at load into typed values; a bad setting stops start-up with a
//! message naming it.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server keeps its data.
#[derive(Clone, Debug)]
pub enum DatabaseUrl {
    /// SQLite file (the embedded default, under the data directory).
    Sqlite(PathBuf),
    /// PostgreSQL connection URL (kept out of Debug output: it may hold a password).
    Postgres(secrecy::SecretString),
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (DatabaseUrl::Sqlite(a), DatabaseUrl::Sqlite(b)) => a == b,
            (DatabaseUrl::Postgres(a), DatabaseUrl::Postgres(b)) => {
                a.expose_secret() == b.expose_secret()
            }
            _ => false,
        }
    }
}

/// Where blobs (photos, documents) are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectStoreUrl {
    /// A local folder (the default: `<data_dir>/objects`).
    Local(PathBuf),
    /// An S3 bucket and key prefix (`s3://bucket/prefix`); credentials and
    /// region come from the usual `AWS_*` environment.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
}

impl ObjectStoreUrl {
    /// Parses `s3://bucket[/prefix]`, `file:///path` or a plain path.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ConfigError(
                    "object_store_url s3://BUCKET/PREFIX needs a bucket".into(),
                ));
            }
            return Ok(ObjectStoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        let path = s.strip_prefix("file://").unwrap_or(s);
        if path.is_empty() || s.contains("://") && !s.starts_with("file://") {
            return Err(ConfigError(
                "object_store_url must be s3://BUCKET/PREFIX, file:///PATH or a folder".into(),
            ));
        }
        Ok(ObjectStoreUrl::Local(PathBuf::from(path)))
    }
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (SQLite file, key file, objects).
    pub data_dir: PathBuf,
    /// Database.
    pub database: DatabaseUrl,
    /// Master key file (the local key source).
    pub master_key_file: PathBuf,
    /// The insurer's sealing key file (the private key devices seal photos to).
    pub insurer_key_file: PathBuf,
    /// Optional directory of Cedar policies overriding the embedded ones.
    pub policies_dir: Option<PathBuf>,
    /// Optional plan catalog overriding the embedded one.
    pub plans_file: Option<PathBuf>,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Seed demo data at start-up.
    pub demo: bool,
    /// OTP sends allowed per client address per hour.
    pub ip_otp_per_hour: u32,
    /// Sign-in attempts allowed per client address per hour.
    pub ip_sign_in_per_hour: u32,
    /// The secret the SMS gateway signs inbound-SMS webhooks with; the
    /// webhook answers 503 while it is unset.
    pub sms_webhook_secret: Option<secrecy::SecretString>,
    /// Where blobs go.
    pub object_store: ObjectStoreUrl,
    /// The largest blob an upload may announce (`Tus-Max-Size`).
    pub upload_max_bytes: u64,
    /// How long an unfinished upload is kept after its last chunk.
    pub upload_ttl: Duration,
    /// The master key from AWS KMS instead of the local key file.
    pub kms: Option<KmsSettings>,
    /// A signed audit checkpoint is written every this many entries (and at shutdown).
    pub audit_checkpoint_every: u64,
    /// Whether and how the server terminates TLS.
    pub tls: Tls,
    /// Production mode: plain HTTP answers health checks only.
    pub production: bool,
}

/// Where the master key comes from when it comes from AWS KMS.
#[derive(Clone, Debug)]
pub struct KmsSettings {
    /// The KMS key (id, ARN or alias).
    pub key_id: String,
    /// Another KMS endpoint (a local test server); AWS's by default.
    pub endpoint: Option<String>,
    /// The region, when not from the usual AWS environment.
    pub region: Option<String>,
}

/// How the server terminates TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP (development, or behind a proxy that terminates TLS).
    Off,
    /// A certificate chain and its private key (PEM files).
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed development certificate, generated under the data
    /// directory on first run.
    SelfSigned,
}

/// Raw, optional settings as read from one layer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// `listen`.
    pub listen: Option<String>,
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `database_url`.
    pub database_url: Option<String>,
    /// `master_key_file`.
    pub master_key_file: Option<PathBuf>,
    /// `insurer_key_file`.
    pub insurer_key_file: Option<PathBuf>,
    /// `policies_dir`.
    pub policies_dir: Option<PathBuf>,
    /// `plans_file`.
    pub plans_file: Option<PathBuf>,
    /// `access_ttl_seconds`.
    pub access_ttl_seconds: Option<u64>,
    /// `refresh_ttl_seconds`.
    pub refresh_ttl_seconds: Option<u64>,
    /// `body_limit_bytes`.
    pub body_limit_bytes: Option<usize>,
    /// `demo`.
    pub demo: Option<bool>,
    /// `ip_otp_per_hour`.
    pub ip_otp_per_hour: Option<u32>,
    /// `ip_sign_in_per_hour`.
    pub ip_sign_in_per_hour: Option<u32>,
    /// `sms_webhook_secret`.
    pub sms_webhook_secret: Option<String>,
    /// `object_store_url`.
    pub object_store_url: Option<String>,
    /// `upload_max_bytes`.
    pub upload_max_bytes: Option<u64>,
    /// `upload_ttl_seconds`.
    pub upload_ttl_seconds: Option<u64>,
    /// `kms_key_id`: take the master key from this AWS KMS key.
    pub kms_key_id: Option<String>,
    /// `kms_endpoint`.
    pub kms_endpoint: Option<String>,
    /// `kms_region`.
    pub kms_region: Option<String>,
    /// `audit_checkpoint_every`.
    pub audit_checkpoint_every: Option<u64>,
    /// `tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`.
    pub tls_key: Option<PathBuf>,
    /// `tls_self_signed`.
    pub tls_self_signed: Option<bool>,
    /// `production`.
    pub production: Option<bool>,
}

impl Layer {
    /// Values from `GLASSGUARD_*` variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |k: &str| {
            std::env::var(format!("GLASSGUARD_{k}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let num = |k: &str| -> Result<Option<u64>, ConfigError> {
            var(k)
                .map(|v| {
                    v.parse()
                        .map_err(|_| ConfigError(format!("GLASSGUARD_{k} must be a number")))
                })
                .transpose()
        };
        Ok(Self {
            listen: var("LISTEN"),
            data_dir: var("DATA_DIR").map(PathBuf::from),
            database_url: var("DATABASE_URL"),
            master_key_file: var("MASTER_KEY_FILE").map(PathBuf::from),
            insurer_key_file: var("INSURER_KEY_FILE").map(PathBuf::from),
            policies_dir: var("POLICIES_DIR").map(PathBuf::from),
            plans_file: var("PLANS_FILE").map(PathBuf::from),
            access_ttl_seconds: num("ACCESS_TTL_SECONDS")?,
            refresh_ttl_seconds: num("REFRESH_TTL_SECONDS")?,
            body_limit_bytes: num("BODY_LIMIT_BYTES")?.map(|v| v as usize),
            demo: var("DEMO").map(|v| v == "1" || v == "true"),
            ip_otp_per_hour: num("IP_OTP_PER_HOUR")?.map(|v| v as u32),
            ip_sign_in_per_hour: num("IP_SIGN_IN_PER_HOUR")?.map(|v| v as u32),
            sms_webhook_secret: var("SMS_WEBHOOK_SECRET"),
            object_store_url: var("OBJECT_STORE_URL"),
            upload_max_bytes: num("UPLOAD_MAX_BYTES")?,
            upload_ttl_seconds: num("UPLOAD_TTL_SECONDS")?,
            kms_key_id: var("KMS_KEY_ID"),
            kms_endpoint: var("KMS_ENDPOINT"),
            kms_region: var("KMS_REGION"),
            audit_checkpoint_every: num("AUDIT_CHECKPOINT_EVERY")?,
            tls_cert: var("TLS_CERT").map(PathBuf::from),
            tls_key: var("TLS_KEY").map(PathBuf::from),
            tls_self_signed: var("TLS_SELF_SIGNED").map(|v| v == "1" || v == "true"),
            production: var("PRODUCTION").map(|v| v == "1" || v == "true"),
        })
    }

    /// Values from a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// `other` wins where it has a value.
    pub fn overlay(self, other: Layer) -> Layer {
        Layer {
            listen: other.listen.or(self.listen),
            data_dir: other.data_dir.or(self.data_dir),
            database_url: other.database_url.or(self.database_url),
            master_key_file: other.master_key_file.or(self.master_key_file),
            insurer_key_file: other.insurer_key_file.or(self.insurer_key_file),
            policies_dir: other.policies_dir.or(self.policies_dir),
            plans_file: other.plans_file.or(self.plans_file),
            access_ttl_seconds: other.access_ttl_seconds.or(self.access_ttl_seconds),
            refresh_ttl_seconds: other.refresh_ttl_seconds.or(self.refresh_ttl_seconds),
            body_limit_bytes: other.body_limit_bytes.or(self.body_limit_bytes),
            demo: other.demo.or(self.demo),
            ip_otp_per_hour: other.ip_otp_per_hour.or(self.ip_otp_per_hour),
            ip_sign_in_per_hour: other.ip_sign_in_per_hour.or(self.ip_sign_in_per_hour),
            sms_webhook_secret: other.sms_webhook_secret.or(self.sms_webhook_secret),
            object_store_url: other.object_store_url.or(self.object_store_url),
            upload_max_bytes: other.upload_max_bytes.or(self.upload_max_bytes),
            upload_ttl_seconds: other.upload_ttl_seconds.or(self.upload_ttl_seconds),
            kms_key_id: other.kms_key_id.or(self.kms_key_id),
            kms_endpoint: other.kms_endpoint.or(self.kms_endpoint),
            kms_region: other.kms_region.or(self.kms_region),
            audit_checkpoint_every: other.audit_checkpoint_every.or(self.audit_checkpoint_every),
            tls_cert: other.tls_cert.or(self.tls_cert),
            tls_key: other.tls_key.or(self.tls_key),
            tls_self_signed: other.tls_self_signed.or(self.tls_self_signed),
            production: other.production.or(self.production),
        }
    }

    /// Validates into settings, filling defaults.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| ConfigError(format!("listen address {listen:?} is not HOST:PORT")))?;
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let database = match self.database_url {
            None => DatabaseUrl::Sqlite(data_dir.join("glassguard.db")),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                DatabaseUrl::Postgres(secrecy::SecretString::from(u))
            }
            Some(u) if u.starts_with("sqlite://") => {
                DatabaseUrl::Sqlite(PathBuf::from(&u["sqlite://".len()..]))
            }
            Some(_) => {
                return Err(ConfigError(
                    "database_url must start with postgres:// or sqlite://".into(),
                ));
            }
        };
        let access = self.access_ttl_seconds.unwrap_or(15 * 60);
        let refresh = self.refresh_ttl_seconds.unwrap_or(30 * 24 * 3600);
        if access == 0 || access > 3600 {
            return Err(ConfigError(
                "access_ttl_seconds must be between 1 and 3600 (access tokens are short-lived)"
                    .into(),
            ));
        }
        if refresh <= access {
            return Err(ConfigError(
                "refresh_ttl_seconds must be longer than access_ttl_seconds".into(),
            ));
        }
        let body_limit_bytes = self.body_limit_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&body_limit_bytes) {
            return Err(ConfigError(
                "body_limit_bytes must be between 1 KiB and 16 MiB".into(),
            ));
        }
        let object_store = match &self.object_store_url {
            Some(u) => ObjectStoreUrl::parse(u)?,
            None => ObjectStoreUrl::Local(data_dir.join("objects")),
        };
        let upload_max_bytes = self.upload_max_bytes.unwrap_or(64 * 1024 * 1024);
        if !(1024..=1024 * 1024 * 1024).contains(&upload_max_bytes) {
            return Err(ConfigError(
                "upload_max_bytes must be between 1 KiB and 1 GiB".into(),
            ));
        }
        let upload_ttl = self.upload_ttl_seconds.unwrap_or(24 * 3600);
        if !(60..=30 * 24 * 3600).contains(&upload_ttl) {
            return Err(ConfigError(
                "upload_ttl_seconds must be between 60 and 2592000 (30 days)".into(),
            ));
        }
        if self.kms_key_id.is_none() && (self.kms_endpoint.is_some() || self.kms_region.is_some()) {
            return Err(ConfigError(
                "kms_endpoint / kms_region are set but kms_key_id is not".into(),
            ));
        }
        let kms = self.kms_key_id.map(|key_id| KmsSettings {
            key_id,
            endpoint: self.kms_endpoint,
            region: self.kms_region,
        });
        let audit_checkpoint_every = self.audit_checkpoint_every.unwrap_or(1000);
        if audit_checkpoint_every == 0 {
            return Err(ConfigError(
                "audit_checkpoint_every must be at least 1".into(),
            ));
        }
        let production = self.production.unwrap_or(false);
        let tls = match (
            self.tls_cert,
            self.tls_key,
            self.tls_self_signed.unwrap_or(false),
        ) {
            (Some(cert), Some(key), false) => Tls::Files { cert, key },
            (None, None, true) if production => {
                return Err(ConfigError(
                    "tls_self_signed is for development; production needs tls_cert and tls_key"
                        .into(),
                ));
            }
            (None, None, true) => Tls::SelfSigned,
            (None, None, false) => Tls::Off,
            (_, _, true) => {
                return Err(ConfigError(
                    "tls_self_signed and tls_cert/tls_key exclude each other".into(),
                ));
            }
            _ => {
                return Err(ConfigError(
                    "tls_cert and tls_key go together (PEM files)".into(),
                ));
            }
        };
        Ok(Settings {
            kms,
            tls,
            production,
            audit_checkpoint_every,
            object_store,
            upload_max_bytes,
            upload_ttl: Duration::from_secs(upload_ttl),
            listen,
            master_key_file: self
                .master_key_file
                .unwrap_or_else(|| data_dir.join("master.key")),
            insurer_key_file: self
                .insurer_key_file
                .unwrap_or_else(|| data_dir.join("insurer.key")),
            data_dir,
            database,
            policies_dir: self.policies_dir,
            plans_file: self.plans_file,
            access_ttl: Duration::from_secs(access),
            refresh_ttl: Duration::from_secs(refresh),
            body_limit_bytes,
            demo: self.demo.unwrap_or(false),
            ip_otp_per_hour: self.ip_otp_per_hour.unwrap_or(30),
            ip_sign_in_per_hour: self.ip_sign_in_per_hour.unwrap_or(60),
            sms_webhook_secret: match self.sms_webhook_secret {
                Some(s) if s.len() < 16 => {
                    return Err(ConfigError(
                        "sms_webhook_secret must be at least 16 characters".into(),
                    ));
                }
                s => s.map(secrecy::SecretString::from),
            },
        })
    }
}

impl Settings {
    /// Settings for a test or an embedded run: everything under `data_dir`.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Settings {
        Layer {
            data_dir: Some(data_dir.into()),
            listen: Some("127.0.0.1:0".into()),
            ..Layer::default()
        }
        .resolve()
        .unwrap_or_else(|_| unreachable_defaults())
    }
}

fn unreachable_defaults() -> Settings {
    // The defaults above always validate; kept separate so no caller needs unwrap.
    Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: PathBuf::from("./data"),
        database: DatabaseUrl::Sqlite(PathBuf::from("./data/glassguard.db")),
        master_key_file: PathBuf::from("./data/master.key"),
        insurer_key_file: PathBuf::from("./data/insurer.key"),
        policies_dir: None,
        plans_file: None,
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(30 * 24 * 3600),
        body_limit_bytes: 64 * 1024,
        demo: false,
        ip_otp_per_hour: 30,
        ip_sign_in_per_hour: 60,
        sms_webhook_secret: None,
        object_store: ObjectStoreUrl::Local(PathBuf::from("./data/objects")),
        upload_max_bytes: 64 * 1024 * 1024,
        kms: None,
        upload_ttl: Duration::from_secs(24 * 3600),
        audit_checkpoint_every: 1000,
        tls: Tls::Off,
        production: false,
    }
}

/// A setting is missing or wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_a_working_embedded_system() {
        let s = Layer::default().resolve().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database,
            DatabaseUrl::Sqlite(PathBuf::from("./data/glassguard.db"))
        );
    }

    #[test]
    fn later_layers_win_and_bad_values_are_named() {
        let s = Layer {
            listen: Some("0.0.0.0:1".into()),
            ..Default::default()
        }
        .overlay(Layer {
            listen: Some("127.0.0.1:9".into()),
            ..Default::default()
        })
        .resolve()
        .unwrap();
        assert_eq!(s.listen.port(), 9);
        let e = Layer {
            listen: Some("nope".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().contains("nope"));
        let e = Layer {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().contains("database_url"));
    }

    #[test]
    fn object_store_urls() {
        let s = Layer {
            data_dir: Some("/d".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.object_store, ObjectStoreUrl::Local("/d/objects".into()));
        assert_eq!(
            ObjectStoreUrl::parse("s3://bucket/a/b/").unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert!(ObjectStoreUrl::parse("s3://").is_err());
        assert!(ObjectStoreUrl::parse("gs://x").is_err());
        assert_eq!(
            ObjectStoreUrl::parse("file:///srv/objects").unwrap(),
            ObjectStoreUrl::Local("/srv/objects".into())
        );
    }

    #[test]
    fn database_url_is_not_in_debug_output() {
        let s = Layer {
            database_url: Some("postgres://u:hunter2@h/db".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
