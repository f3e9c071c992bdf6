//! Glassguard's sealed blobs: bytes (a claim photo) encrypted on the device to
//! the insurer's public key, which only the insurer's backend can open.
//!
//! The device seals right after capture and keeps no way to read the blob
//! back. Sealing uses HPKE (RFC 9180) in base mode with the suite
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, and the info string
//! `glassguard photo v1`. The plaintext is cut into chunks so that sealing
//! and opening use a fixed amount of memory whatever the blob's size
//! ([`Sealer`] over any [`std::io::Write`], [`Opener`] over any
//! [`std::io::Read`]); [`seal`] and [`open`] are the in-memory shortcuts.
//!
//! This crate is a leaf: the core depends on it to seal and the backend to
//! open, without the backend depending on the core.
//!
//! # Format v1
//!
//! **This layout is bound into every chunk's associated data and into blobs
//! already uploaded: it must not change shape.** A new layout gets a new
//! magic.
//!
//! ```text
//! header:
//!   magic        8 bytes   "GGSEAL1\0"
//!   suite        u8        1 = X25519 / HKDF-SHA256 / AES-256-GCM
//!   chunk_size   u32 BE    plaintext bytes per full chunk (default 65536)
//!   enc_len      u16 BE    length of the encapsulated key (32 for suite 1)
//!   enc          enc_len   the HPKE encapsulated key
//! chunks, in order, each the AES-GCM ciphertext followed by its 16-byte tag:
//!   chunk 0 .. n-1  exactly chunk_size plaintext bytes each (not final)
//!   chunk n         fewer than chunk_size plaintext bytes, possibly 0 (final)
//! ```
//!
//! The final chunk is always there and is the only one shorter than
//! `chunk_size`; a plaintext that is an exact multiple of the chunk size ends
//! with an empty final chunk. The associated data of chunk `i` is
//! `header || u64 BE i || u8 final` (`final` is 1 on the last chunk, 0
//! otherwise). Chunks are sealed with one HPKE context, whose nonce is the
//! sequence number, so a reordered, dropped or duplicated chunk fails
//! authentication; the final flag makes cutting the blob at a chunk boundary
//! or appending to it fail too.
//!
//! # Errors
//!
//! [`SealError::code`] gives a stable code: `seal_corrupt` (not a sealed blob,
//! cut short, or trailing bytes), `seal_unsupported` (a suite this build does
//! not know), `seal_auth_failed` (a chunk does not authenticate: the wrong
//! private key, or tampering — by design the two cannot be told apart),
//! `seal_invalid_key` (bytes that are not a key) and `seal_io`.

use std::io::{Read, Write};

use hpke::aead::{AeadCtxR, AeadCtxS, AeadTag, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

type Kem = X25519HkdfSha256;
type Aead = AesGcm256;
type Kdf = HkdfSha256;

/// The first bytes of every v1 blob.
pub const MAGIC: &[u8; 8] = b"GGSEAL1\0";
/// Suite 1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
pub const SUITE_X25519_SHA256_AES256GCM: u8 = 1;
/// The HPKE `info` string of format v1.
pub const INFO: &[u8] = b"glassguard photo v1";
/// The plaintext bytes per full chunk unless the sealer is told otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// The largest chunk size an [`Opener`] accepts (bounds its memory).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Bytes of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes of an X25519 public key, private key and encapsulated key.
pub const KEY_LEN: usize = 32;
/// Bytes of a suite-1 header.
pub const HEADER_LEN: usize = 8 + 1 + 4 + 2 + KEY_LEN;

/// Every way sealing or opening can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Not a sealed blob, cut short, or with bytes after its final chunk.
    #[error("not a valid sealed blob: {0}")]
    Corrupt(&'static str),
    /// The blob names a suite this build does not know.
    #[error("the sealed blob uses suite {0}, which this build does not know")]
    UnsupportedSuite(u8),
    /// A chunk did not authenticate: the wrong private key, or the blob was
    /// changed. HPKE base mode cannot tell the two apart.
    #[error("chunk {chunk} of the sealed blob does not authenticate (wrong key, or tampered)")]
    AuthFailed {
        /// The chunk's index.
        chunk: u64,
    },
    /// The bytes are not an X25519 key.
    #[error("not a valid X25519 key")]
    InvalidKey,
    /// The HPKE library refused (message limit reached, or encapsulation failed).
    #[error("encryption failed: {0}")]
    Crypto(String),
    /// Reading or writing the blob failed.
    #[error("sealed blob I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl SealError {
    /// The stable code for callers to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            SealError::Corrupt(_) => "seal_corrupt",
            SealError::UnsupportedSuite(_) => "seal_unsupported",
            SealError::AuthFailed { .. } => "seal_auth_failed",
            SealError::InvalidKey => "seal_invalid_key",
            SealError::Crypto(_) => "seal_crypto",
            SealError::Io(_) => "seal_io",
        }
    }
}

/// This crate's result type.
pub type Result<T, E = SealError> = std::result::Result<T, E>;

/// The recipient's (the insurer's) public key: 32 bytes of X25519.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(<Kem as hpke::Kem>::PublicKey);

impl PublicKey {
    /// Parses the 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| SealError::InvalidKey)
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(&self.0.to_bytes());
        out
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in self.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The recipient's private key. Zeroed on drop (by `hpke`), redacted in `Debug`.
#[derive(Clone)]
pub struct PrivateKey(<Kem as hpke::Kem>::PrivateKey);

impl PrivateKey {
    /// A new random key pair from the operating system's generator.
    pub fn generate() -> (PrivateKey, PublicKey) {
        let (sk, pk) = Kem::gen_keypair();
        (PrivateKey(sk), PublicKey(pk))
    }

    /// Parses the 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| SealError::InvalidKey)
    }

    /// The 32 raw bytes. Handle with care.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(&self.0.to_bytes());
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(Kem::sk_to_pk(&self.0))
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([REDACTED])")
    }
}

/// The associated data of one chunk: header || u64 BE index || final flag.
fn chunk_aad(aad: &mut Vec<u8>, header: &[u8], index: u64, last: bool) {
    aad.clear();
    aad.extend_from_slice(header);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
}

/// Seals a stream of plaintext to a recipient, chunk by chunk.
///
/// Write the plaintext in pieces of any size ([`Sealer::update`] or
/// [`std::io::Write`]), then call [`Sealer::finish`]; a sealer dropped
/// without `finish` leaves a blob that does not open (no final chunk).
pub struct Sealer<W: Write> {
    out: W,
    ctx: AeadCtxS<Aead, Kdf, Kem>,
    header: Vec<u8>,
    chunk_size: usize,
    buf: Vec<u8>,
    aad: Vec<u8>,
    index: u64,
}

impl<W: Write> std::fmt::Debug for Sealer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("chunk_size", &self.chunk_size)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Sealer<W> {
    /// Starts a blob to `recipient` with the default chunk size, writing the
    /// header to `out`.
    pub fn new(recipient: &PublicKey, out: W) -> Result<Self> {
        Self::with_chunk_size(recipient, out, DEFAULT_CHUNK_SIZE)
    }

    /// [`Sealer::new`] with another chunk size (1 ..= [`MAX_CHUNK_SIZE`]).
    pub fn with_chunk_size(recipient: &PublicKey, mut out: W, chunk_size: u32) -> Result<Self> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(SealError::Corrupt("chunk size out of range"));
        }
        let (enc, ctx) = hpke::setup_sender::<Aead, Kdf, Kem>(&OpModeS::Base, &recipient.0, INFO)
            .map_err(|e| SealError::Crypto(e.to_string()))?;
        let enc = enc.to_bytes();
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(SUITE_X25519_SHA256_AES256GCM);
        header.extend_from_slice(&chunk_size.to_be_bytes());
        // The encapsulated key is 32 bytes: it fits a u16.
        header.extend_from_slice(&(enc.len() as u16).to_be_bytes());
        header.extend_from_slice(&enc);
        out.write_all(&header)?;
        let chunk_size = chunk_size as usize;
        Ok(Sealer {
            out,
            ctx,
            header,
            chunk_size,
            buf: Vec::with_capacity(chunk_size + TAG_LEN),
            aad: Vec::with_capacity(HEADER_LEN + 9),
            index: 0,
        })
    }

    /// Adds plaintext. Full chunks are sealed and written as soon as it is
    /// known they are not the last one.
    pub fn update(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.buf.len() == self.chunk_size {
                // More plaintext follows, so the full buffer is not the final chunk.
                self.seal_buffered(false)?;
            }
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the last chunk (and, after an exact multiple of the chunk size,
    /// the empty final chunk), flushes, and hands the writer back.
    pub fn finish(mut self) -> Result<W> {
        if self.buf.len() == self.chunk_size {
            self.seal_buffered(false)?;
        }
        self.seal_buffered(true)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn seal_buffered(&mut self, last: bool) -> Result<()> {
        chunk_aad(&mut self.aad, &self.header, self.index, last);
        let tag = self
            .ctx
            .seal_inout_detached(self.buf.as_mut_slice().into(), &self.aad)
            .map_err(|e| SealError::Crypto(e.to_string()))?;
        self.out.write_all(&self.buf)?;
        self.out.write_all(&tag.to_bytes())?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf).map_err(|e| match e {
            SealError::Io(e) => e,
            other => std::io::Error::other(other),
        })?;
        Ok(buf.len())
    }

    /// Flushes the underlying writer; buffered plaintext stays until a chunk fills.
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Opens a sealed blob chunk by chunk with the recipient's private key.
///
/// Each chunk is authenticated before its plaintext is handed out; a caller
/// that streams plaintext onward must still treat everything as void unless
/// [`Opener::next_chunk`] finally returns `Ok(None)` (truncation is only
/// detectable at the end).
pub struct Opener<R: Read> {
    input: R,
    ctx: AeadCtxR<Aead, Kdf, Kem>,
    header: Vec<u8>,
    chunk_size: usize,
    buf: Vec<u8>,
    aad: Vec<u8>,
    index: u64,
    done: bool,
}

impl<R: Read> std::fmt::Debug for Opener<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("chunk_size", &self.chunk_size)
            .field("index", &self.index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> Opener<R> {
    /// Reads and checks the header, and derives the decryption context.
    pub fn new(recipient: &PrivateKey, mut input: R) -> Result<Self> {
        let mut fixed = [0u8; 15];
        if read_full(&mut input, &mut fixed)? < fixed.len() {
            return Err(SealError::Corrupt("shorter than the header"));
        }
        if &fixed[..8] != MAGIC {
            return Err(SealError::Corrupt("bad magic"));
        }
        if fixed[8] != SUITE_X25519_SHA256_AES256GCM {
            return Err(SealError::UnsupportedSuite(fixed[8]));
        }
        let chunk_size = u32::from_be_bytes([fixed[9], fixed[10], fixed[11], fixed[12]]);
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(SealError::Corrupt("chunk size out of range"));
        }
        let enc_len = u16::from_be_bytes([fixed[13], fixed[14]]) as usize;
        if enc_len != KEY_LEN {
            return Err(SealError::Corrupt("encapsulated key has the wrong length"));
        }
        let mut enc = [0u8; KEY_LEN];
        if read_full(&mut input, &mut enc)? < KEY_LEN {
            return Err(SealError::Corrupt("shorter than the header"));
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&fixed);
        header.extend_from_slice(&enc);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc)
            .map_err(|_| SealError::Corrupt("encapsulated key is not a key"))?;
        let ctx = hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &recipient.0, &enc, INFO)
            .map_err(|_| SealError::AuthFailed { chunk: 0 })?;
        let chunk_size = chunk_size as usize;
        Ok(Opener {
            input,
            ctx,
            header,
            chunk_size,
            buf: vec![0u8; chunk_size + TAG_LEN],
            aad: Vec::with_capacity(HEADER_LEN + 9),
            index: 0,
            done: false,
        })
    }

    /// The next chunk's plaintext, `Ok(None)` after the final chunk. Any
    /// error is final: the blob must be discarded.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.done {
            return Ok(None);
        }
        let got = read_full(&mut self.input, &mut self.buf)?;
        // A full-length record is a non-final chunk; anything shorter is the
        // final one, and the input must end there.
        let last = got < self.buf.len();
        if got < TAG_LEN {
            self.done = true;
            return Err(SealError::Corrupt("cut short (no final chunk)"));
        }
        let plain_len = got - TAG_LEN;
        chunk_aad(&mut self.aad, &self.header, self.index, last);
        let tag = AeadTag::<Aead>::from_bytes(&self.buf[plain_len..got])
            .map_err(|_| SealError::Corrupt("bad tag length"))?;
        let chunk = self.index;
        self.ctx
            .open_inout_detached(self.buf[..plain_len].as_mut().into(), &self.aad, &tag)
            .map_err(|_| {
                self.done = true;
                SealError::AuthFailed { chunk }
            })?;
        self.index += 1;
        self.done = last;
        Ok(Some(&self.buf[..plain_len]))
    }

    /// Opens everything into `out`; returns the plaintext length.
    pub fn copy_to(mut self, out: &mut impl Write) -> Result<u64> {
        let mut total = 0u64;
        while let Some(chunk) = self.next_chunk()? {
            out.write_all(chunk)?;
            total += chunk.len() as u64;
        }
        Ok(total)
    }
}

/// Seals `plaintext` to `recipient` in memory.
pub fn seal(recipient: &PublicKey, plaintext: &[u8]) -> Result<Vec<u8>> {
    let chunks = plaintext.len() / DEFAULT_CHUNK_SIZE as usize + 1;
    let mut sealer = Sealer::new(
        recipient,
        Vec::with_capacity(HEADER_LEN + plaintext.len() + chunks * TAG_LEN),
    )?;
    sealer.update(plaintext)?;
    sealer.finish()
}

/// Opens a whole blob in memory.
pub fn open(recipient: &PrivateKey, blob: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(blob.len().saturating_sub(HEADER_LEN));
    Opener::new(recipient, blob)?.copy_to(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL: u32 = 64;

    fn seal_with(pk: &PublicKey, data: &[u8], chunk: u32, piece: usize) -> Vec<u8> {
        let mut s = Sealer::with_chunk_size(pk, Vec::new(), chunk).unwrap();
        for p in data.chunks(piece.max(1)) {
            s.update(p).unwrap();
        }
        s.finish().unwrap()
    }

    /// The byte ranges of each chunk record in a blob.
    fn records(blob: &[u8], chunk: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = vec![];
        let mut at = HEADER_LEN;
        loop {
            let end = (at + chunk + TAG_LEN).min(blob.len());
            out.push(at..end);
            if end - at < chunk + TAG_LEN {
                return out;
            }
            at = end;
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trips_any_size_in_any_pieces(
            len in prop_oneof![0usize..600, Just(0), Just(64), Just(128), Just(640)],
            piece in 1usize..200,
        ) {
            let (sk, pk) = PrivateKey::generate();
            let plain = data(len);
            let blob = seal_with(&pk, &plain, SMALL, piece);
            // Exactly one final chunk, possibly empty.
            let n = len / SMALL as usize + 1;
            prop_assert_eq!(blob.len(), HEADER_LEN + len + n * TAG_LEN);
            let mut out = vec![];
            Opener::new(&sk, blob.as_slice()).unwrap().copy_to(&mut out).unwrap();
            prop_assert_eq!(out, plain);
        }
    }

    #[test]
    fn round_trips_with_the_default_chunk_size() {
        let (sk, pk) = PrivateKey::generate();
        for len in [
            0,
            1,
            DEFAULT_CHUNK_SIZE as usize,
            3 * DEFAULT_CHUNK_SIZE as usize + 7,
        ] {
            let plain = data(len);
            let blob = seal(&pk, &plain).unwrap();
            assert_eq!(&blob[..8], MAGIC);
            assert_eq!(open(&sk, &blob).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn keys_round_trip_through_bytes() {
        let (sk, pk) = PrivateKey::generate();
        let sk2 = PrivateKey::from_bytes(&sk.to_bytes()).unwrap();
        assert_eq!(sk2.public_key(), pk);
        assert_eq!(PublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
        assert!(PublicKey::from_bytes(&[1; 31]).is_err());
        assert_eq!(format!("{sk:?}"), "PrivateKey([REDACTED])");
    }

    #[test]
    fn the_wrong_recipient_key_cannot_open() {
        let (_, pk) = PrivateKey::generate();
        let (other, _) = PrivateKey::generate();
        let blob = seal(&pk, b"a photo").unwrap();
        let err = open(&other, &blob).unwrap_err();
        assert!(matches!(err, SealError::AuthFailed { chunk: 0 }), "{err:?}");
        assert_eq!(err.code(), "seal_auth_failed");
    }

    #[test]
    fn flipping_a_byte_in_any_chunk_or_the_header_fails() {
        let (sk, pk) = PrivateKey::generate();
        let plain = data(5 * SMALL as usize + 10);
        let blob = seal_with(&pk, &plain, SMALL, 1000);
        let recs = records(&blob, SMALL as usize);
        assert_eq!(recs.len(), 6);
        for (i, r) in recs.iter().enumerate() {
            // First byte of the ciphertext, and last byte of the tag.
            for at in [r.start, r.end - 1] {
                let mut bad = blob.clone();
                bad[at] ^= 0x01;
                let err = open(&sk, &bad).unwrap_err();
                assert!(
                    matches!(err, SealError::AuthFailed { chunk } if chunk == i as u64),
                    "chunk {i} byte {at}: {err:?}"
                );
            }
        }
        // The chunk size and the encapsulated key are bound too.
        for at in [12, HEADER_LEN - 1] {
            let mut bad = blob.clone();
            bad[at] ^= 0x01;
            assert!(open(&sk, &bad).is_err(), "header byte {at}");
        }
    }

    #[test]
    fn dropping_reordering_or_duplicating_a_chunk_fails() {
        let (sk, pk) = PrivateKey::generate();
        let plain = data(4 * SMALL as usize + 10);
        let blob = seal_with(&pk, &plain, SMALL, 1000);
        let recs = records(&blob, SMALL as usize);
        let header = &blob[..HEADER_LEN];
        let rebuild = |order: &[usize]| {
            let mut b = header.to_vec();
            for &i in order {
                b.extend_from_slice(&blob[recs[i].clone()]);
            }
            b
        };
        assert_eq!(open(&sk, &rebuild(&[0, 1, 2, 3, 4])).unwrap(), plain);
        for order in [
            &[0, 2, 3, 4][..],       // dropped
            &[1, 0, 2, 3, 4][..],    // swapped
            &[0, 1, 1, 2, 3, 4][..], // duplicated
            &[0, 1, 2, 3, 4, 4][..], // final duplicated
            &[0, 1, 2, 4, 3][..],    // final moved
        ] {
            let err = open(&sk, &rebuild(order)).unwrap_err();
            assert!(
                matches!(err, SealError::AuthFailed { .. }),
                "{order:?}: {err:?}"
            );
        }
    }

    #[test]
    fn truncation_fails_everywhere() {
        let (sk, pk) = PrivateKey::generate();
        let plain = data(3 * SMALL as usize);
        let blob = seal_with(&pk, &plain, SMALL, 1000);
        for cut in 0..blob.len() {
            assert!(open(&sk, &blob[..cut]).is_err(), "cut at {cut}");
        }
        // At a chunk boundary the error says so.
        let boundary = HEADER_LEN + 2 * (SMALL as usize + TAG_LEN);
        assert_eq!(
            open(&sk, &blob[..boundary]).unwrap_err().code(),
            "seal_corrupt"
        );
    }

    #[test]
    fn trailing_bytes_fail() {
        let (sk, pk) = PrivateKey::generate();
        for len in [0, 10, SMALL as usize] {
            let blob = seal_with(&pk, &data(len), SMALL, 1000);
            for extra in [&[0u8][..], &[0; TAG_LEN][..], &[7; 200][..]] {
                let mut bad = blob.clone();
                bad.extend_from_slice(extra);
                assert!(open(&sk, &bad).is_err(), "len {len} + {}", extra.len());
            }
        }
    }

    #[test]
    fn a_foreign_or_unknown_blob_is_refused_with_its_code() {
        let (sk, pk) = PrivateKey::generate();
        assert_eq!(open(&sk, b"").unwrap_err().code(), "seal_corrupt");
        assert_eq!(open(&sk, &[0xFF; 100]).unwrap_err().code(), "seal_corrupt");
        let mut blob = seal(&pk, b"x").unwrap();
        blob[8] = 2;
        assert_eq!(open(&sk, &blob).unwrap_err().code(), "seal_unsupported");
    }
}
