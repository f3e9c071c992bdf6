//! Claim and inspection photos: from a camera file to a sealed blob the
//! insurer can open and a small preview only this device can.
//!
//! ```text
//! JPEG/PNG bytes
//!   ─▶ limits     file size; format and dimensions from the header, before
//!                 any pixel is decoded (decompression bombs stop here)
//!   ─▶ metadata   EXIF Orientation, DateTimeOriginal, Model (nothing else kept)
//!   ─▶ decode     JPEG at 1/2, 1/4 or 1/8 scale when still ≥ the target; PNG whole
//!   ─▶ encode     Lanczos3 resize to the long edge (1600) ─▶ orientation applied
//!                 ─▶ JPEG q80 (small mode: WebP) from pixels only (no
//!                 EXIF/GPS/XMP/ICC can follow)
//!   ─▶ phash      64-bit DCT perceptual hash (duplicate-photo checks), from
//!                 the preview's pixels (it averages down to 32x32 anyway)
//!   ─▶ sha256     of the encoded bytes
//!   = ProcessedPhoto ─▶ seal_photo: HPKE to the insurer, chunked, to a file
//!                       named by the blob's SHA-256 (the upload's name)
//! ```
//!
//! [`Core::add_photo`](crate::Core::add_photo) runs all of it on the blocking
//! pool, writes the sealed file under `<data_dir>/sealed/`, keeps the preview
//! (320 px JPEG) and the kept facts in the encrypted store's `photos` table,
//! and drops the unsealed full-size output: the device cannot read a
//! submitted photo back.
//!
//! Modules: [`limits`](PhotoLimits), `metadata`, `decode`, `encode`,
//! `phash` ([`hamming`]), `records` (the `photos` table).

mod decode;
mod encode;
mod limits;
mod metadata;
mod phash;
pub(crate) mod records;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use glassguard_seal::{PublicKey, Sealer};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use limits::PhotoLimits;
pub use phash::hamming;
pub use records::{PhotoRecord, PhotoTarget};

/// The folder under the data directory that holds sealed photo blobs, each
/// named by the lowercase hex SHA-256 of its bytes.
pub const SEALED_DIR: &str = "sealed";

/// What the pipeline makes of a photo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhotoOptions {
    /// The output's long edge at most, in pixels (1600).
    pub long_edge: u32,
    /// JPEG quality of the normal output, 1..=100 (80).
    pub quality: u8,
    /// Fewer bytes for a 2G link at about the same visual quality: a WebP
    /// at `small_quality` instead of a JPEG.
    pub small: bool,
    /// The WebP quality of the small mode, 0..=100 ([`SMALL_QUALITY`], tuned
    /// with `cargo xtask bench photos` to match the SSIM of a q80 JPEG).
    pub small_quality: u8,
    /// The preview's long edge (320).
    pub preview_long_edge: u32,
    /// Limits against oversized files and decompression bombs.
    pub limits: PhotoLimits,
}

/// The default WebP quality of [`PhotoOptions::small`].
pub const SMALL_QUALITY: u8 = 77;
/// The preview's JPEG quality.
const PREVIEW_QUALITY: u8 = 70;

impl Default for PhotoOptions {
    fn default() -> Self {
        PhotoOptions {
            long_edge: 1600,
            quality: 80,
            small: false,
            small_quality: SMALL_QUALITY,
            preview_long_edge: 320,
            limits: PhotoLimits::default(),
        }
    }
}

/// The encoded output's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhotoFormat {
    /// JPEG (JFIF, no other segments).
    Jpeg,
    /// WebP (lossy, a bare VP8 bitstream: no EXIF or XMP chunk).
    WebP,
}

impl PhotoFormat {
    /// The name stored and sent (`jpeg`).
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpeg",
            PhotoFormat::WebP => "webp",
        }
    }
}

/// A photo after the pipeline, before sealing. Holds the full-size output:
/// seal it and drop it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProcessedPhoto {
    /// The encoded output (metadata-free).
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: PhotoFormat,
    /// Width after orientation, in pixels.
    pub width: u32,
    /// Height after orientation, in pixels.
    pub height: u32,
    /// The 64-bit perceptual hash (compare with [`hamming`]).
    pub phash: u64,
    /// SHA-256 of [`ProcessedPhoto::bytes`].
    pub sha256: [u8; 32],
    /// EXIF DateTimeOriginal, in the camera's local time.
    pub captured_at: Option<NaiveDateTime>,
    /// EXIF Model.
    pub device_model: Option<String>,
    /// A small JPEG for the device's own display.
    pub preview: Vec<u8>,
}

impl std::fmt::Debug for ProcessedPhoto {
    // Never the bytes: photos do not go into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessedPhoto")
            .field("bytes", &self.bytes.len())
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("phash", &format_args!("{:016x}", self.phash))
            .field("captured_at", &self.captured_at)
            .field("device_model", &self.device_model)
            .field("preview", &self.preview.len())
            .finish()
    }
}

/// Runs the pipeline (see the module docs) on a JPEG or PNG file's bytes.
pub fn process(input: &[u8], options: &PhotoOptions) -> Result<ProcessedPhoto> {
    let header = limits::check(input, &options.limits)?;
    let facts = metadata::read(input, header.format);
    let (width, height) = encode::fit(header.width, header.height, options.long_edge.max(1));
    let decoded = match header.format {
        limits::InputFormat::Jpeg => decode::jpeg(input, &header, width.max(height))?,
        limits::InputFormat::Png => decode::png(input, &header)?,
    };
    let resized = encode::resize(decoded, width, height)?;
    let upright = decode::orient(resized, facts.orientation);
    let (bytes, format) = if options.small {
        (
            encode::webp(&upright, options.small_quality)?,
            PhotoFormat::WebP,
        )
    } else {
        let settings = encode::JpegSettings {
            quality: options.quality,
            progressive: false,
        };
        (encode::jpeg(&upright, settings)?, PhotoFormat::Jpeg)
    };
    let (pw, ph) = encode::fit(
        upright.width,
        upright.height,
        options.preview_long_edge.max(1),
    );
    let preview_pixels = encode::resize_with(
        upright.clone(),
        pw,
        ph,
        fast_image_resize::FilterType::Bilinear,
    )?;
    // The hash averages down to 32x32: the preview's pixels give the same
    // bits as the full output's at a twentieth of the work.
    let phash = phash::phash(&preview_pixels);
    let preview = encode::jpeg(
        &preview_pixels,
        encode::JpegSettings {
            quality: PREVIEW_QUALITY,
            progressive: false,
        },
    )?;
    Ok(ProcessedPhoto {
        sha256: Sha256::digest(&bytes).into(),
        bytes,
        format,
        width: upright.width,
        height: upright.height,
        phash,
        captured_at: facts.captured_at,
        device_model: facts.device_model,
        preview,
    })
}

/// A sealed photo on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedPhoto {
    /// SHA-256 of the sealed blob: its file name and its name for upload.
    pub sha256: [u8; 32],
    /// The blob's length in bytes.
    pub len: u64,
    /// The file.
    pub path: PathBuf,
}

/// Hashes and counts what passes through to the file.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Seals `photo`'s bytes to `recipient` into `dir`, as a file named by the
/// blob's SHA-256 (written to a temporary name first, synced, then renamed,
/// so a crash never leaves a half blob under a real name).
pub fn seal_photo(
    photo: &ProcessedPhoto,
    recipient: &PublicKey,
    dir: &Path,
) -> Result<SealedPhoto> {
    seal_bytes(&photo.bytes, recipient, dir)
}

fn seal_bytes(bytes: &[u8], recipient: &PublicKey, dir: &Path) -> Result<SealedPhoto> {
    std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    let tmp = dir.join(format!(".sealing-{}", uuid::Uuid::now_v7()));
    let result = seal_to(bytes, recipient, dir, &tmp);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::PhotoFile { path, source }
}

/// Seals into `tmp`, syncs it, and renames it to its hash in `dir`.
fn seal_to(bytes: &[u8], recipient: &PublicKey, dir: &Path, tmp: &Path) -> Result<SealedPhoto> {
    let file = std::fs::File::create(tmp).map_err(file_error(tmp))?;
    let out = Hashing {
        inner: std::io::BufWriter::with_capacity(256 * 1024, file),
        hasher: Sha256::new(),
        len: 0,
    };
    let mut sealer = Sealer::new(recipient, out)?;
    sealer.update(bytes)?;
    let out = sealer.finish()?;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| file_error(tmp)(e.into_error()))?;
    file.sync_all().map_err(file_error(tmp))?;
    let sha256: [u8; 32] = out.hasher.finalize().into();
    let path = dir.join(hex::encode(sha256));
    std::fs::rename(tmp, &path).map_err(file_error(&path))?;
    Ok(SealedPhoto {
        sha256,
        len: out.len,
        path,
    })
}

#[cfg(test)]
pub(crate) mod tests;
