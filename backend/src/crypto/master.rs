//! The master key and where it comes from.
//!
//! At start-up the server asks its [`KeySource`] for the [`MasterKey`] and
//! hands it to [`Keyring`](super::Keyring), which derives the key-encryption
//! keys from it and then drops it (zeroizing the bytes). The master key never
//! encrypts data directly and is never stored in the database.
//!
//! [`LocalKeyFile`] is the zero-configuration source: a hex key in a file
//! with owner-only permissions, created on first run.
//! [`KmsKeySource`](super::KmsKeySource) implements the same trait with AWS
//! KMS, which is why [`KeySource::load`] returns a future.

use std::fmt;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{CryptoError, Result};
use super::tokens;

/// The master key: 32 secret bytes plus the version that names it in every
/// wrapped key, so several versions can coexist during rotation.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    version: u32,
    bytes: [u8; 32],
}

impl MasterKey {
    /// Wraps raw key bytes. The caller's copy of `bytes` is moved in; the
    /// key is zeroized when this value is dropped.
    pub fn from_bytes(version: u32, bytes: [u8; 32]) -> Self {
        Self { version, bytes }
    }

    /// The master key version (1 for a local key file).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The raw key, for KEK derivation only.
    pub(super) fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .field("bytes", &"[redacted]")
            .finish()
    }
}

/// Somewhere a master key can be loaded from.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// Loads (or on first run creates) the master key.
    fn load(&self) -> Pin<Box<dyn Future<Output = Result<MasterKey>> + Send + '_>>;

    /// Every master key version that must be loaded, oldest first: more
    /// than one only while a rotation is moving keys between versions.
    fn load_all(&self) -> Pin<Box<dyn Future<Output = Result<Vec<MasterKey>>> + Send + '_>> {
        Box::pin(async move { Ok(vec![self.load().await?]) })
    }

    /// Human description for start-up logs, e.g. "local key file
    /// ./data/master.key" (never key material).
    fn describe(&self) -> String;
}

/// The version of a master key held in a local key file. A file holds one
/// key; rotating means a new source with a new version.
const LOCAL_KEY_VERSION: u32 = 1;

/// Upper bound on what we read from a key file: 64 hex digits plus a line
/// ending fit easily; anything much larger is not a key file.
const MAX_KEY_FILE_LEN: u64 = 256;

/// The zero-config default: a file holding the key (hex, one line), created
/// on first run with owner-only permissions (0600, created with
/// `create_new` so two processes can't race); refuses to load (clear error
/// naming the path) if the file is group/other accessible, not 64 hex
/// chars, or unreadable. Version 1.
#[derive(Debug, Clone)]
pub struct LocalKeyFile {
    path: PathBuf,
}

impl LocalKeyFile {
    /// A key source reading (or creating) the key file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The blocking implementation of [`KeySource::load`].
    fn load_blocking(&self) -> Result<MasterKey> {
        match self.read_existing() {
            Err(CryptoError::KeyFileIo { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                self.create()
            }
            other => other,
        }
    }

    fn io_error(&self, source: std::io::Error) -> CryptoError {
        CryptoError::KeyFileIo {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads and validates an existing key file.
    fn read_existing(&self) -> Result<MasterKey> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.io_error(e))?;
        // Check the opened file (fstat), not the path, so a swap between the
        // check and the read cannot slip past.
        let meta = file.metadata().map_err(|e| self.io_error(e))?;
        if !meta.is_file() {
            return Err(self.io_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        check_owner_only(&self.path, &meta)?;

        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_LEN)
            .read_to_string(&mut text)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => self.corrupt(),
                _ => self.io_error(e),
            })?;

        let hex_key = text.trim_end_matches(['\n', '\r']);
        let mut bytes = [0u8; 32];
        if hex_key.len() != 64 || hex::decode_to_slice(hex_key, &mut bytes).is_err() {
            bytes.zeroize();
            return Err(self.corrupt());
        }
        Ok(MasterKey::from_bytes(LOCAL_KEY_VERSION, bytes))
    }

    fn corrupt(&self) -> CryptoError {
        CryptoError::KeyFileCorrupt {
            path: self.path.clone(),
        }
    }

    /// Generates a key and writes it to a new file. If another process wins
    /// the race to create the file, its key is loaded instead.
    fn create(&self) -> Result<MasterKey> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| self.io_error(e))?;
        }

        let mut bytes = [0u8; 32];
        tokens::try_fill(&mut bytes)?;
        let key = MasterKey::from_bytes(LOCAL_KEY_VERSION, bytes);
        bytes.zeroize();

        let mut file = match open_new_private(&self.path) {
            Ok(file) => file,
            // Another process created it between our read and our create:
            // use theirs, so both processes end up with the same key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return self.read_existing();
            }
            Err(e) => return Err(self.io_error(e)),
        };

        let mut line = Zeroizing::new(hex::encode(key.expose()));
        line.push('\n');
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // A half-written key file would be refused on the next start;
            // better to leave no file and let the next start create one.
            drop(file);
            let _ = std::fs::remove_file(&self.path);
            return Err(self.io_error(e));
        }
        // Make the new directory entry durable too: losing the key file after
        // keys were wrapped under it would lose every encrypted column.
        sync_parent_dir(&self.path).map_err(|e| self.io_error(e))?;
        Ok(key)
    }
}

impl KeySource for LocalKeyFile {
    fn load(&self) -> Pin<Box<dyn Future<Output = Result<MasterKey>> + Send + '_>> {
        // A few small blocking file operations, once, at start-up: running
        // them inline keeps this usable from any executor (no runtime needed
        // for spawn_blocking) at negligible cost.
        Box::pin(async move { self.load_blocking() })
    }

    fn describe(&self) -> String {
        format!("local key file {}", self.path.display())
    }
}

#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    // No POSIX mode bits to check; ACLs are the operator's responsibility.
    Ok(())
}

#[cfg(unix)]
fn open_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Only affects directories created here; existing ones are left alone.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt as _;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn debug_does_not_print_key() {
        let key = MasterKey::from_bytes(3, [0xab; 32]);
        let dbg = format!("{key:?}");
        assert!(dbg.contains("[redacted]"), "{dbg}");
        assert!(dbg.contains('3'));
        assert!(!dbg.to_lowercase().contains("abab"), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}");
    }

    #[test]
    #[cfg(unix)]
    fn creates_0600_file_then_loads_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("master.key");
        let source = LocalKeyFile::new(&path);
        assert!(source.describe().contains("master.key"));

        let first = block_on(source.load()).expect("first load creates");
        assert_eq!(first.version(), 1);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.trim_end().len(), 64);

        let second = block_on(LocalKeyFile::new(&path).load()).expect("second load");
        assert_eq!(first.expose(), second.expose());
        assert_eq!(second.version(), 1);
    }

    #[test]
    #[cfg(unix)]
    fn refuses_group_or_other_readable_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        std::fs::write(&path, format!("{}\n", "11".repeat(32))).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");

        let err = block_on(LocalKeyFile::new(&path).load()).expect_err("must refuse");
        assert!(
            matches!(err, CryptoError::KeyFilePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));

        // The same file with owner-only permissions loads, without a newline too.
        std::fs::write(&path, "11".repeat(32)).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let key = block_on(LocalKeyFile::new(&path).load()).expect("loads");
        assert_eq!(key.expose(), &[0x11; 32]);
    }

    #[test]
    #[cfg(unix)]
    fn refuses_corrupt_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        for content in [
            String::new(),
            "11".repeat(31),
            "11".repeat(33),
            format!("{}zz\n", "11".repeat(31)),
            format!(" {}\n", "11".repeat(32)),
            format!("{}\n{}\n", "11".repeat(32), "22".repeat(32)),
        ] {
            std::fs::write(&path, &content).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            let err = block_on(LocalKeyFile::new(&path).load()).expect_err("must refuse");
            assert!(
                matches!(err, CryptoError::KeyFileCorrupt { .. }),
                "{content:?}: {err:?}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        // Not UTF-8 at all.
        std::fs::write(&path, [0xff; 64]).expect("write");
        let err = block_on(LocalKeyFile::new(&path).load()).expect_err("must refuse");
        assert!(matches!(err, CryptoError::KeyFileCorrupt { .. }), "{err:?}");
    }

    #[test]
    #[cfg(unix)]
    fn unreadable_path_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: neither readable as a key
        // nor creatable.
        let path = dir.path().join("master.key");
        std::fs::create_dir(&path).expect("mkdir");
        let err = block_on(LocalKeyFile::new(&path).load()).expect_err("must refuse");
        assert!(matches!(err, CryptoError::KeyFileIo { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
