//! The keyring: key-encryption keys, wrapped keys and the system keys.
//!
//! Data flow at start-up: the [`MasterKey`] from the key source goes into
//! [`Keyring::generate`] (first run: fresh system keys, returned wrapped for
//! the caller to store) or [`Keyring::open`] (later runs: the stored wrapped
//! system keys are unwrapped). Either way the master key is used only to
//! derive the key-encryption key (KEK) for its version and is then dropped.
//!
//! Per row: [`Keyring::new_data_key`] makes a fresh [`DataKey`] and its
//! [`WrappedKey`] (sealed under the current KEK, bound to the row's binding
//! string such as `"claims/<id>"`); the wrapped key is stored with the row
//! and [`Keyring::unwrap_data_key`] recovers the data key on read.
//!
//! System keys: a blind-index key (HMAC keys for equality lookups on
//! encrypted columns such as phone, IMEI, GSTIN) and an OTP key (OTP codes
//! are stored only as an HMAC). Both are random, independent of each other
//! and of the master key, and stored wrapped like data keys under the
//! bindings `"system/blind_index"` and `"system/otp"`.
//!
//! Rotation: KEKs are held per master key version and every wrapped key
//! names the version it was wrapped under, so a keyring can hold several
//! versions at once; new wraps use the current (newest) one and
//! [`Keyring::rewrap`] moves an existing wrapped key onto it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use super::error::{CryptoError, Result};
use super::field::DataKey;
use super::gcm;
use super::master::MasterKey;
use super::tokens;

/// Purpose name of the blind-index system key, as stored.
pub const SYSTEM_KEY_BLIND_INDEX: &str = "blind_index";
/// Purpose name of the OTP system key, as stored.
pub const SYSTEM_KEY_OTP: &str = "otp";

/// Binding prefix reserved for system keys.
const SYSTEM_BINDING_PREFIX: &str = "system/";

/// The fixed, application-wide HKDF salt for KEK derivation. Changing it
/// changes every KEK and makes all stored data unreadable.
const KEK_SALT: &[u8] = b"glassguard-backend kek salt";

/// First byte of a wrapped key: the layout and algorithm (AES-256-GCM,
/// HKDF-SHA256 KEK, AAD as documented on [`wrap_aad`]).
const WRAP_FORMAT_V1: u8 = 1;
/// Format byte plus master key version.
const HEADER_LEN: usize = 1 + 4;
/// Every wrapped key holds a 32-byte key.
const WRAPPED_LEN: usize = HEADER_LEN + gcm::OVERHEAD + 32;

/// A wrapped key as stored in the database: self-describing bytes
/// (format byte, master key version u32 BE, 12-byte nonce, ciphertext+tag).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Validates stored bytes. Only the shape is checked here; integrity is
    /// checked when the key is unwrapped.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        match bytes.first() {
            None => Err(CryptoError::MalformedWrappedKey("empty")),
            Some(&WRAP_FORMAT_V1) if bytes.len() == WRAPPED_LEN => Ok(Self(bytes)),
            Some(&WRAP_FORMAT_V1) => Err(CryptoError::MalformedWrappedKey("wrong length")),
            Some(_) => Err(CryptoError::MalformedWrappedKey("unknown format")),
        }
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes to store, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The master key version this key is wrapped under.
    pub fn master_version(&self) -> u32 {
        let mut version = [0u8; 4];
        version.copy_from_slice(&self.0[1..HEADER_LEN]);
        u32::from_be_bytes(version)
    }

    fn header(&self) -> &[u8] {
        &self.0[..HEADER_LEN]
    }

    fn sealed(&self) -> &[u8] {
        &self.0[HEADER_LEN..]
    }
}

impl fmt::Debug for WrappedKey {
    // Not secret, but hundreds of bytes of hex help nobody in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("master_version", &self.master_version())
            .field("len", &self.0.len())
            .finish()
    }
}

/// The associated data of a wrap: `header || "dek" || binding`, where the
/// header is the format byte and the master version. Binding the header
/// means a wrapped key cannot be relabelled with another version, and the
/// binding ties it to one row (or one system purpose).
fn wrap_aad(header: &[u8], binding: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 3 + binding.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(b"dek");
    aad.extend_from_slice(binding.as_bytes());
    aad
}

fn header(version: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = WRAP_FORMAT_V1;
    h[1..].copy_from_slice(&version.to_be_bytes());
    h
}

/// Output length for HKDF: one 256-bit key.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// KEK = HKDF-SHA256(ikm = master key, salt = [`KEK_SALT`],
/// info = "glassguard kek v<version>").
fn derive_kek(master: &MasterKey) -> Result<Zeroizing<[u8; 32]>> {
    // ring's Prk is not zeroized on drop; it lives only for this call.
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KEK_SALT).extract(master.expose());
    let info = format!("glassguard kek v{}", master.version());
    let info = [info.as_bytes()];
    let mut kek = Zeroizing::new([0u8; 32]);
    prk.expand(&info, Len32)
        .and_then(|okm| okm.fill(kek.as_mut_slice()))
        .map_err(|_| CryptoError::KeyDerivation)?;
    Ok(kek)
}

/// Seals `key` under `kek` (of master `version`) bound to `binding`.
fn wrap(kek: &[u8; 32], version: u32, binding: &str, key: &[u8; 32]) -> Result<WrappedKey> {
    let header = header(version);
    let sealed = gcm::seal(kek, &wrap_aad(&header, binding), key)?;
    let mut bytes = Vec::with_capacity(WRAPPED_LEN);
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&sealed);
    WrappedKey::from_bytes(bytes)
}

/// Opens a wrapped key with `kek`; [`CryptoError::Decrypt`] on any mismatch.
fn unwrap(kek: &[u8; 32], binding: &str, wrapped: &WrappedKey) -> Result<Zeroizing<[u8; 32]>> {
    let plain = Zeroizing::new(gcm::open(
        kek,
        &wrap_aad(wrapped.header(), binding),
        wrapped.sealed(),
    )?);
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != key.len() {
        // Authenticated, so only reachable if something wrapped a key of
        // another size under this format; treat it as corrupt.
        return Err(CryptoError::Decrypt);
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

fn system_binding(purpose: &str) -> String {
    format!("{SYSTEM_BINDING_PREFIX}{purpose}")
}

fn check_row_binding(binding: &str) -> Result<()> {
    if binding.starts_with(SYSTEM_BINDING_PREFIX) {
        return Err(CryptoError::ReservedBinding(binding.to_owned()));
    }
    Ok(())
}

struct Inner {
    /// The version new wraps use: the newest master key loaded.
    current: AtomicU32,
    /// KEKs by master key version: one normally, several during a rotation
    /// (every wrapped key names its version, so all of them keep opening).
    keks: RwLock<BTreeMap<u32, Zeroizing<[u8; 32]>>>,
    blind_index_key: Zeroizing<[u8; 32]>,
    otp_key: Zeroizing<[u8; 32]>,
}

/// Holds the key-encryption keys (by master version) and the system keys;
/// cheap to clone (Arc inside). All key bytes are zeroized when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

impl Keyring {
    /// First run: generates the system keys (blind index key, OTP key) and
    /// returns them wrapped for storage, as (purpose, WrappedKey) pairs with
    /// purposes "blind_index" and "otp".
    pub fn generate(master: MasterKey) -> Result<(Keyring, Vec<(String, WrappedKey)>)> {
        let version = master.version();
        let kek = derive_kek(&master)?;
        drop(master);

        let mut blind_index_key = Zeroizing::new([0u8; 32]);
        tokens::try_fill(blind_index_key.as_mut_slice())?;
        let mut otp_key = Zeroizing::new([0u8; 32]);
        tokens::try_fill(otp_key.as_mut_slice())?;

        let stored = vec![
            (
                SYSTEM_KEY_BLIND_INDEX.to_owned(),
                wrap(
                    &kek,
                    version,
                    &system_binding(SYSTEM_KEY_BLIND_INDEX),
                    &blind_index_key,
                )?,
            ),
            (
                SYSTEM_KEY_OTP.to_owned(),
                wrap(&kek, version, &system_binding(SYSTEM_KEY_OTP), &otp_key)?,
            ),
        ];
        let keyring = Self::from_parts(version, kek, blind_index_key, otp_key);
        Ok((keyring, stored))
    }

    /// Later runs: unwraps the stored system keys. Wrong master key ->
    /// [`CryptoError::WrongMasterKey`] (a clear refusal to start), a missing
    /// purpose -> [`CryptoError::MissingSystemKey`]. Unknown purposes are
    /// ignored so newer system keys don't break older code.
    pub fn open(master: MasterKey, stored: &[(String, WrappedKey)]) -> Result<Keyring> {
        Self::open_versions(vec![master], stored)
    }

    /// Like [`Keyring::open`] with several master key versions loaded (as
    /// during a rotation): new wraps use the newest; each stored system key
    /// opens under the version it names.
    pub fn open_versions(
        masters: Vec<MasterKey>,
        stored: &[(String, WrappedKey)],
    ) -> Result<Keyring> {
        let mut keks = BTreeMap::new();
        for master in masters {
            keks.insert(master.version(), derive_kek(&master)?);
        }
        let current = *keks.keys().next_back().ok_or(CryptoError::WrongMasterKey)?;

        let unwrap_system = |purpose: &str| -> Result<Zeroizing<[u8; 32]>> {
            let wrapped = stored
                .iter()
                .find(|(p, _)| p == purpose)
                .map(|(_, w)| w)
                .ok_or_else(|| CryptoError::MissingSystemKey(purpose.to_owned()))?;
            // A version that is not loaded: for start-up this is the same
            // failure as a wrong key.
            let kek = keks
                .get(&wrapped.master_version())
                .ok_or(CryptoError::WrongMasterKey)?;
            unwrap(kek, &system_binding(purpose), wrapped).map_err(|e| match e {
                CryptoError::Decrypt => CryptoError::WrongMasterKey,
                other => other,
            })
        };
        let blind_index_key = unwrap_system(SYSTEM_KEY_BLIND_INDEX)?;
        let otp_key = unwrap_system(SYSTEM_KEY_OTP)?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: AtomicU32::new(current),
                keks: RwLock::new(keks),
                blind_index_key,
                otp_key,
            }),
        })
    }

    /// Loads another master key version into a running keyring (every clone
    /// sees it). A newer version becomes the one new wraps use; keys wrapped
    /// under the older ones keep opening until they are retired.
    pub fn add_master(&self, master: MasterKey) -> Result<()> {
        let version = master.version();
        let kek = derive_kek(&master)?;
        drop(master);
        self.keks_mut().insert(version, kek);
        self.inner.current.fetch_max(version, Ordering::SeqCst);
        Ok(())
    }

    /// Forgets an old master key version after a rotation moved every key
    /// off it. The current version cannot be retired.
    pub fn retire_master(&self, version: u32) -> Result<()> {
        if version == self.master_version() {
            return Err(CryptoError::UnknownMasterVersion(version));
        }
        self.keks_mut().remove(&version);
        Ok(())
    }

    /// The master key versions loaded, oldest first.
    pub fn master_versions(&self) -> Vec<u32> {
        self.keks_read().keys().copied().collect()
    }

    fn keks_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u32, Zeroizing<[u8; 32]>>> {
        // A panic while holding the lock cannot leave the map half-changed
        // (insert/remove are single steps): recover from poisoning.
        self.inner
            .keks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keks_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u32, Zeroizing<[u8; 32]>>> {
        self.inner
            .keks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn from_parts(
        version: u32,
        kek: Zeroizing<[u8; 32]>,
        blind_index_key: Zeroizing<[u8; 32]>,
        otp_key: Zeroizing<[u8; 32]>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: AtomicU32::new(version),
                keks: RwLock::new(BTreeMap::from([(version, kek)])),
                blind_index_key,
                otp_key,
            }),
        }
    }

    /// The master key version new keys are wrapped under.
    pub fn master_version(&self) -> u32 {
        self.inner.current.load(Ordering::SeqCst)
    }

    /// A copy of one version's KEK (zeroized when dropped), so no lock is
    /// held while it is used.
    fn kek(&self, version: u32) -> Result<Zeroizing<[u8; 32]>> {
        self.keks_read()
            .get(&version)
            .cloned()
            .ok_or(CryptoError::UnknownMasterVersion(version))
    }

    /// A fresh DEK and its wrapped form (wrapped under the current master
    /// version; AAD of the wrap = header || "dek" || `binding`, e.g.
    /// `"claims/<id>"`). Bindings starting with `system/` are reserved.
    pub fn new_data_key(&self, binding: &str) -> Result<(DataKey, WrappedKey)> {
        check_row_binding(binding)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        tokens::try_fill(bytes.as_mut_slice())?;
        let version = self.master_version();
        let wrapped = wrap(&*self.kek(version)?, version, binding, &bytes)?;
        Ok((DataKey::from_bytes(*bytes), wrapped))
    }

    /// Unwraps a row's data key. [`CryptoError::Decrypt`] if it was wrapped
    /// for another binding or under another master key,
    /// [`CryptoError::UnknownMasterVersion`] if its version is not loaded.
    pub fn unwrap_data_key(&self, binding: &str, wrapped: &WrappedKey) -> Result<DataKey> {
        check_row_binding(binding)?;
        let key = unwrap(&*self.kek(wrapped.master_version())?, binding, wrapped)?;
        Ok(DataKey::from_bytes(*key))
    }

    /// Re-wraps a wrapped key under the current master version (same key,
    /// fresh nonce), e.g. after a master key rotation. Works for row keys and
    /// system keys (`"system/<purpose>"`): the key itself never leaves this
    /// function.
    pub fn rewrap(&self, binding: &str, wrapped: &WrappedKey) -> Result<WrappedKey> {
        let key = unwrap(&*self.kek(wrapped.master_version())?, binding, wrapped)?;
        let version = self.master_version();
        wrap(&*self.kek(version)?, version, binding, &key)
    }

    /// Blind index: HMAC-SHA256(blind key, domain || 0x00 || value)
    /// truncated to 16 bytes.
    ///
    /// `value` must already be normalized by the caller (e.g. E.164 phone,
    /// upper-case GSTIN): equal inputs give equal indexes, nothing more.
    /// `domain` (e.g. `"phone"`) is a code constant and must not contain NUL,
    /// which keeps the encoding unambiguous; it separates index spaces so
    /// equal values in different columns don't correlate.
    pub fn blind_index(&self, domain: &str, value: &str) -> [u8; 16] {
        debug_assert!(!domain.contains('\0'), "blind index domain contains NUL");
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.inner.blind_index_key.as_slice());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    fn otp_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.inner.otp_key.as_slice())
    }

    /// OTP storage: HMAC-SHA256(otp key, purpose || 0 || phone || 0 ||
    /// challenge_id || 0 || code).
    pub fn otp_mac(&self, purpose: &str, phone: &str, challenge_id: &str, code: &str) -> [u8; 32] {
        let msg = otp_message(purpose, phone, challenge_id, code);
        let tag = hmac::sign(&self.otp_key(), &msg);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Constant-time verification of an OTP against a stored mac
    /// (`ring::hmac::verify`). A stored value of the wrong length is false.
    pub fn otp_verify(
        &self,
        purpose: &str,
        phone: &str,
        challenge_id: &str,
        code: &str,
        stored: &[u8],
    ) -> bool {
        let msg = otp_message(purpose, phone, challenge_id, code);
        hmac::verify(&self.otp_key(), &msg, stored).is_ok()
    }
}

/// The OTP HMAC input. Zeroized afterwards: it holds the code and phone.
fn otp_message(purpose: &str, phone: &str, challenge_id: &str, code: &str) -> Zeroizing<Vec<u8>> {
    let parts = [purpose, phone, challenge_id, code];
    let mut msg = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            msg.push(0);
        }
        msg.extend_from_slice(part.as_bytes());
    }
    Zeroizing::new(msg)
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("master_version", &self.master_version())
            .field("kek_versions", &self.master_versions())
            .field("keys", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::field::FieldAad;
    use crate::crypto::tokens::random_bytes;
    use proptest::prelude::*;

    fn master(version: u32) -> MasterKey {
        MasterKey::from_bytes(version, random_bytes())
    }

    fn pair(version: u32) -> (MasterKey, MasterKey) {
        let bytes = random_bytes();
        (
            MasterKey::from_bytes(version, bytes),
            MasterKey::from_bytes(version, bytes),
        )
    }

    fn fixed_keyring(version: u32) -> Keyring {
        Keyring::from_parts(
            version,
            Zeroizing::new([0x11; 32]),
            Zeroizing::new([0x42; 32]),
            Zeroizing::new([0x24; 32]),
        )
    }

    const ROW: FieldAad<'static> = FieldAad {
        table: "claims",
        column: "bank_account",
        row_id: "42",
    };

    #[test]
    fn keyring_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Keyring>();
    }

    #[test]
    fn kek_derivation_known_answer() {
        // Computed independently (Python hmac/hashlib HKDF); pins the KDF,
        // salt and info string that every stored wrapped key depends on.
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        let kek = derive_kek(&MasterKey::from_bytes(1, bytes)).expect("derive");
        assert_eq!(
            hex::encode(*kek),
            "089911a98ebc63eb6803367496b3cc7b3c768183f4d030198fc2b56f5d89fb72"
        );
        let kek7 = derive_kek(&MasterKey::from_bytes(7, bytes)).expect("derive");
        assert_eq!(
            hex::encode(*kek7),
            "0c8787f4552978a698b2f2bc597782712a2318da383d4d72dc6bcbc4c8ab93fc"
        );
    }

    #[test]
    fn mac_known_answers() {
        let k = fixed_keyring(1);
        assert_eq!(
            hex::encode(k.blind_index("phone", "+919812345678")),
            "ab86851723e6128cecaacaaab8b29d8e"
        );
        assert_eq!(
            hex::encode(k.otp_mac("login", "+919812345678", "ch-1", "123456")),
            "3b582690f2455368f3730814d3ad191241e53a39f927fb68ad7d20bf3bc8f17b"
        );
    }

    #[test]
    fn generate_then_open_gives_same_system_keys() {
        let (m1, m2) = pair(1);
        let (generated, stored) = Keyring::generate(m1).expect("generate");
        assert_eq!(generated.master_version(), 1);
        let purposes: Vec<&str> = stored.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(purposes, ["blind_index", "otp"]);
        for (_, w) in &stored {
            assert_eq!(w.master_version(), 1);
            assert_eq!(w.as_bytes().len(), WRAPPED_LEN);
            // Stored bytes survive a round trip through the database shape.
            assert_eq!(
                &WrappedKey::from_bytes(w.as_bytes().to_vec()).expect("valid"),
                w
            );
        }

        let opened = Keyring::open(m2, &stored).expect("open");
        assert_eq!(
            opened.blind_index("phone", "+91981"),
            generated.blind_index("phone", "+91981")
        );
        let mac = generated.otp_mac("login", "+91981", "c1", "123456");
        assert!(opened.otp_verify("login", "+91981", "c1", "123456", &mac));

        // Row keys made by one instance unwrap in the other.
        let (dek, wrapped) = generated.new_data_key("claims/42").expect("dek");
        let sealed = dek.seal_str(&ROW, "IFSC0001 12345");
        let dek2 = opened
            .unwrap_data_key("claims/42", &wrapped)
            .expect("unwrap");
        assert_eq!(
            dek2.open_str(&ROW, &sealed).expect("open"),
            "IFSC0001 12345"
        );
    }

    #[test]
    fn open_with_other_master_key_is_wrong_master_key() {
        let (_, stored) = Keyring::generate(master(1)).expect("generate");
        let err = Keyring::open(master(1), &stored).expect_err("other key");
        assert!(matches!(err, CryptoError::WrongMasterKey), "{err:?}");

        // Same bytes but another version: also a refusal.
        let (m1, m2) = pair(1);
        let (_, stored) = Keyring::generate(m1).expect("generate");
        let m2 = MasterKey::from_bytes(2, *m2.expose());
        let err = Keyring::open(m2, &stored).expect_err("other version");
        assert!(matches!(err, CryptoError::WrongMasterKey), "{err:?}");
    }

    #[test]
    fn open_with_missing_or_swapped_system_keys_fails() {
        let (m1, m2) = pair(1);
        let (_, stored) = Keyring::generate(m1).expect("generate");
        let bytes = *m2.expose();

        let only_blind: Vec<_> = stored.iter().filter(|(p, _)| p != "otp").cloned().collect();
        let err = Keyring::open(m2, &only_blind).expect_err("missing");
        assert!(
            matches!(&err, CryptoError::MissingSystemKey(p) if p == "otp"),
            "{err:?}"
        );

        let err = Keyring::open(MasterKey::from_bytes(1, bytes), &[]).expect_err("missing");
        assert!(
            matches!(&err, CryptoError::MissingSystemKey(p) if p == "blind_index"),
            "{err:?}"
        );

        // The OTP key stored under the blind-index purpose: the binding
        // differs, so it must not unwrap.
        let swapped = vec![
            ("blind_index".to_owned(), stored[1].1.clone()),
            ("otp".to_owned(), stored[0].1.clone()),
        ];
        let err = Keyring::open(MasterKey::from_bytes(1, bytes), &swapped).expect_err("swapped");
        assert!(matches!(err, CryptoError::WrongMasterKey), "{err:?}");

        // Extra, unknown purposes are ignored.
        let mut extra = stored.clone();
        extra.insert(0, ("future".to_owned(), stored[0].1.clone()));
        Keyring::open(MasterKey::from_bytes(1, bytes), &extra).expect("extra purpose ok");
    }

    #[test]
    fn wrapped_dek_is_bound_to_master_key_and_binding() {
        let (a, _) = Keyring::generate(master(1)).expect("a");
        let (b, _) = Keyring::generate(master(1)).expect("b");
        let (dek, wrapped) = a.new_data_key("claims/1").expect("dek");
        assert_eq!(wrapped.master_version(), 1);

        let back = a.unwrap_data_key("claims/1", &wrapped).expect("unwrap");
        assert_eq!(back.expose(), dek.expose());

        assert!(matches!(
            a.unwrap_data_key("claims/2", &wrapped),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            a.unwrap_data_key("customers/1", &wrapped),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            b.unwrap_data_key("claims/1", &wrapped),
            Err(CryptoError::Decrypt)
        ));

        // Under a master version the keyring does not hold.
        let (v2, _) = Keyring::generate(master(2)).expect("v2");
        assert!(matches!(
            v2.unwrap_data_key("claims/1", &wrapped),
            Err(CryptoError::UnknownMasterVersion(1))
        ));
    }

    #[test]
    fn relabelled_version_fails() {
        // A keyring holding versions 7 and 8 with identical KEK bytes, so only
        // the bound header tells them apart: relabelling a wrapped key with
        // another version must fail authentication, not redirect it.
        let k = fixed_keyring(7);
        let (_, wrapped) = k.new_data_key("claims/1").expect("dek");
        let mut bytes = wrapped.into_bytes();
        bytes[4] = 8;
        let relabelled = WrappedKey::from_bytes(bytes).expect("shape ok");
        let both = Keyring {
            inner: Arc::new(Inner {
                current: AtomicU32::new(7),
                keks: RwLock::new(BTreeMap::from([
                    (7, Zeroizing::new([0x11; 32])),
                    (8, Zeroizing::new([0x11; 32])),
                ])),
                blind_index_key: Zeroizing::new([0; 32]),
                otp_key: Zeroizing::new([0; 32]),
            }),
        };
        assert!(matches!(
            both.unwrap_data_key("claims/1", &relabelled),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn system_bindings_are_reserved_for_row_keys() {
        let (k, stored) = Keyring::generate(master(1)).expect("k");
        assert!(matches!(
            k.new_data_key("system/otp"),
            Err(CryptoError::ReservedBinding(_))
        ));
        assert!(matches!(
            k.unwrap_data_key("system/otp", &stored[1].1),
            Err(CryptoError::ReservedBinding(_))
        ));
    }

    #[test]
    fn rewrap_keeps_the_key_and_changes_the_bytes() {
        let (k, stored) = Keyring::generate(master(1)).expect("k");
        let (dek, wrapped) = k.new_data_key("claims/9").expect("dek");
        let rewrapped = k.rewrap("claims/9", &wrapped).expect("rewrap");
        assert_ne!(rewrapped, wrapped);
        assert_eq!(rewrapped.master_version(), 1);
        let back = k.unwrap_data_key("claims/9", &rewrapped).expect("unwrap");
        assert_eq!(back.expose(), dek.expose());
        assert!(matches!(
            k.rewrap("claims/10", &wrapped),
            Err(CryptoError::Decrypt)
        ));

        // System keys can be re-wrapped too, and still open.
        let otp = k.rewrap("system/otp", &stored[1].1).expect("rewrap system");
        let blind = k
            .rewrap("system/blind_index", &stored[0].1)
            .expect("rewrap");
        assert!(k.rewrap("system/otp", &stored[0].1).is_err());
        let _ = (otp, blind);
    }

    #[test]
    fn a_rotation_moves_keys_to_the_new_version_and_the_old_one_goes() {
        let (m1, m1b) = pair(1);
        let (m2, m2b) = pair(2);
        let (k, stored) = Keyring::generate(m1).expect("k");
        let (dek, wrapped) = k.new_data_key("claims/1").expect("dek");
        let other = k.clone();
        k.add_master(m2).expect("add");
        // Every clone sees the new version; new wraps use it.
        assert_eq!(other.master_version(), 2);
        assert_eq!(other.master_versions(), [1, 2]);
        assert_eq!(
            other
                .new_data_key("claims/2")
                .expect("dek")
                .1
                .master_version(),
            2
        );
        // Old wraps still open; a rewrap moves them to version 2.
        let moved = other.rewrap("claims/1", &wrapped).expect("rewrap");
        assert_eq!(moved.master_version(), 2);
        let system: Vec<_> = stored
            .iter()
            .map(|(p, w)| (p.clone(), k.rewrap(&system_binding(p), w).expect("rewrap")))
            .collect();
        assert!(k.retire_master(2).is_err(), "the current version stays");
        k.retire_master(1).expect("retire");
        assert!(matches!(
            other.unwrap_data_key("claims/1", &wrapped),
            Err(CryptoError::UnknownMasterVersion(1))
        ));
        let back = other.unwrap_data_key("claims/1", &moved).expect("unwrap");
        assert_eq!(back.expose(), dek.expose());

        // After a restart: version 2 alone opens everything; version 1 alone
        // opens nothing.
        let reopened = Keyring::open(m2b, &system).expect("open v2");
        assert!(reopened.unwrap_data_key("claims/1", &moved).is_ok());
        assert!(matches!(
            Keyring::open(m1b, &system),
            Err(CryptoError::WrongMasterKey)
        ));
    }

    #[test]
    fn wrapped_key_shape_is_validated() {
        assert!(matches!(
            WrappedKey::from_bytes(vec![]),
            Err(CryptoError::MalformedWrappedKey(_))
        ));
        assert!(matches!(
            WrappedKey::from_bytes(vec![1; WRAPPED_LEN - 1]),
            Err(CryptoError::MalformedWrappedKey(_))
        ));
        assert!(matches!(
            WrappedKey::from_bytes(vec![2; WRAPPED_LEN]),
            Err(CryptoError::MalformedWrappedKey(_))
        ));
        let mut ok = vec![0u8; WRAPPED_LEN];
        ok[0] = 1;
        ok[1..5].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        let w = WrappedKey::from_bytes(ok).expect("valid shape");
        assert_eq!(w.master_version(), 0x0102_0304);
        let dbg = format!("{w:?}");
        assert!(dbg.contains("master_version"), "{dbg}");
    }

    #[test]
    fn blind_index_is_deterministic_and_separated() {
        let (a, _) = Keyring::generate(master(1)).expect("a");
        let (b, _) = Keyring::generate(master(1)).expect("b");
        let i = a.blind_index("phone", "+919812345678");
        assert_eq!(i, a.blind_index("phone", "+919812345678"));
        assert_eq!(i, a.clone().blind_index("phone", "+919812345678"));
        assert_ne!(i, a.blind_index("imei", "+919812345678"));
        assert_ne!(i, a.blind_index("phone", "+919812345679"));
        assert_ne!(i, b.blind_index("phone", "+919812345678"));
        // The separator keeps domain/value boundaries apart.
        assert_ne!(a.blind_index("ab", "c"), a.blind_index("a", "bc"));
    }

    #[test]
    fn otp_verify_accepts_only_the_right_code() {
        let (k, _) = Keyring::generate(master(1)).expect("k");
        let (other, _) = Keyring::generate(master(1)).expect("other");
        let mac = k.otp_mac("login", "+919812345678", "ch-1", "123456");
        assert!(k.otp_verify("login", "+919812345678", "ch-1", "123456", &mac));
        assert!(!k.otp_verify("login", "+919812345678", "ch-1", "123457", &mac));
        assert!(!k.otp_verify("login", "+919812345678", "ch-2", "123456", &mac));
        assert!(!k.otp_verify("login", "+919812345679", "ch-1", "123456", &mac));
        assert!(!k.otp_verify("claim", "+919812345678", "ch-1", "123456", &mac));
        assert!(!k.otp_verify("login", "+919812345678", "ch-1", "123456", &mac[..16]));
        assert!(!k.otp_verify("login", "+919812345678", "ch-1", "123456", &[]));
        assert!(!other.otp_verify("login", "+919812345678", "ch-1", "123456", &mac));
    }

    #[test]
    fn debug_does_not_print_keys() {
        let k = fixed_keyring(3);
        let dbg = format!("{k:?}");
        assert!(dbg.contains("[redacted]"), "{dbg}");
        for byte in ["11", "42", "24"] {
            assert!(!dbg.contains(&byte.repeat(4)), "{dbg}");
        }
        let (k, _) = Keyring::generate(master(1)).expect("k");
        let dbg = format!("{k:?}");
        for key in [
            &*k.inner.blind_index_key,
            &*k.inner.otp_key,
            &*k.kek(1).expect("kek"),
        ] {
            assert!(!dbg.contains(&hex::encode(key)[..8]), "{dbg}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_flipped_bit_in_wrapped_key_fails(
            pos in 0usize..WRAPPED_LEN,
            bit in 0u8..8,
        ) {
            let k = fixed_keyring(1);
            let (_, wrapped) = k.new_data_key("claims/1").expect("dek");
            let mut bytes = wrapped.into_bytes();
            bytes[pos] ^= 1 << bit;
            let result = WrappedKey::from_bytes(bytes)
                .and_then(|w| k.unwrap_data_key("claims/1", &w));
            prop_assert!(result.is_err());
        }

        #[test]
        fn dek_round_trip_any_binding(binding in "[a-z]{1,10}/[0-9a-f-]{0,36}", plain in any::<String>()) {
            let k = fixed_keyring(1);
            let (dek, wrapped) = k.new_data_key(&binding).expect("dek");
            let aad = FieldAad::new("t", "c", &binding);
            let sealed = dek.seal_str(&aad, &plain);
            let back = k.unwrap_data_key(&binding, &wrapped).expect("unwrap");
            prop_assert_eq!(back.open_str(&aad, &sealed).expect("open"), plain);
        }
    }
}
