//! From decoded pixels to the bytes that are sealed: a resize to the target
//! size (fast_image_resize, SIMD convolution) and a JPEG encode
//! (libjpeg-turbo, optimised Huffman tables), or for the small mode a WebP
//! (libwebp), which reaches the same SSIM as a JPEG in about a quarter
//! fewer bytes.
//!
//! The encoder writes a bare JFIF from pixels: no EXIF, XMP, IPTC, ICC or
//! comment segment from the source can reach the output.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use turbojpeg::{Compressor, PixelFormat, Subsamp};

use super::decode::Rgb;
use crate::error::{Error, Result};

/// The size that fits `width`x`height` into `long_edge` on its long side,
/// keeping the aspect ratio; never enlarges.
pub(crate) fn fit(width: u32, height: u32, long_edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= long_edge {
        return (width, height);
    }
    let scale =
        |v: u32| ((f64::from(v) * f64::from(long_edge) / f64::from(long)).round() as u32).max(1);
    if width >= height {
        (long_edge, scale(height))
    } else {
        (scale(width), long_edge)
    }
}

/// Resizes to exactly `width`x`height` (Lanczos3; a no-op when equal).
pub(crate) fn resize(img: Rgb, width: u32, height: u32) -> Result<Rgb> {
    resize_with(img, width, height, FilterType::Lanczos3)
}

/// [`resize`] with another filter.
pub(crate) fn resize_with(img: Rgb, width: u32, height: u32, filter: FilterType) -> Result<Rgb> {
    if (img.width, img.height) == (width, height) {
        return Ok(img);
    }
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("resize: {e}"));
    let src = ImageRef::new(img.width, img.height, &img.pixels, PixelType::U8x3)
        .map_err(|e| internal(&e))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)),
        )
        .map_err(|e| internal(&e))?;
    Ok(Rgb {
        width,
        height,
        pixels: dst.into_vec(),
    })
}

/// How to encode a JPEG.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JpegSettings {
    pub quality: u8,
    pub progressive: bool,
}

/// Encodes RGB as a baseline (or progressive) 4:2:0 JPEG with optimised
/// Huffman tables and nothing but the image in it.
pub(crate) fn jpeg(img: &Rgb, settings: JpegSettings) -> Result<Vec<u8>> {
    let internal = |e: turbojpeg::Error| Error::Internal(format!("JPEG encode: {e}"));
    let mut c = Compressor::new().map_err(internal)?;
    c.set_quality(i32::from(settings.quality.clamp(1, 100)))
        .map_err(internal)?;
    c.set_subsamp(Subsamp::Sub2x2).map_err(internal)?;
    c.set_optimize(true).map_err(internal)?;
    c.set_progressive(settings.progressive).map_err(internal)?;
    let image = turbojpeg::Image {
        pixels: img.pixels.as_slice(),
        width: img.width as usize,
        pitch: img.width as usize * 3,
        height: img.height as usize,
        format: PixelFormat::RGB,
    };
    c.compress_to_vec(image).map_err(internal)
}

/// Encodes RGB as a lossy WebP at `quality` (0..=100), libwebp's default
/// method (4).
pub(crate) fn webp(img: &Rgb, quality: u8) -> Result<Vec<u8>> {
    webp::Encoder::from_rgb(&img.pixels, img.width, img.height)
        .encode_simple(false, f32::from(quality.min(100)))
        .map(|m| m.to_vec())
        .map_err(|e| Error::Internal(format!("WebP encode: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_aspect_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 1600), (1600, 1200));
        assert_eq!(fit(3000, 4000, 1600), (1200, 1600));
        assert_eq!(fit(2560, 1600, 1600), (1600, 1000));
        assert_eq!(fit(800, 600, 1600), (800, 600));
        assert_eq!(fit(10000, 1, 1600), (1600, 1));
    }
}
