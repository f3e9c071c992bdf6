//! From file bytes to RGB pixels, and from stored orientation to upright.
//!
//! A JPEG is decoded at a reduced scale where that still leaves at least the
//! output's size: libjpeg-turbo's scaled inverse DCT (1/8 .. 8/8) skips most
//! of the work of a 12-megapixel decode, and is where the pipeline's speed
//! comes from. A PNG has no such shortcut and is decoded whole (the limits
//! have been checked by then).

use turbojpeg::{Colorspace, Decompressor, PixelFormat, ScalingFactor};

use super::limits::Header;
use crate::error::{Error, Result};

/// Packed 8-bit RGB pixels, row by row, no padding.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rgb({}x{})", self.width, self.height)
    }
}

/// The scale whose output is the smallest still at least `min_long` on the
/// long edge (1/1 when the image is already small). Only 1/2, 1/4 and 1/8
/// are used: those have SIMD inverse DCTs; the odd eighths are plain C and
/// slower than a full decode plus resize.
pub(crate) fn pick_scale(long: u32, min_long: u32) -> ScalingFactor {
    [
        ScalingFactor::ONE_EIGHTH,
        ScalingFactor::ONE_QUARTER,
        ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(|f| f.scale(long as usize) >= min_long as usize)
    .unwrap_or(ScalingFactor::ONE)
}

/// Decodes a JPEG so that its long edge is at least `min_long` (or whole).
pub(crate) fn jpeg(input: &[u8], header: &Header, min_long: u32) -> Result<Rgb> {
    let corrupt = |e: turbojpeg::Error| Error::PhotoCorrupt(e.to_string());
    let mut d = Decompressor::new().map_err(|e| Error::Internal(e.to_string()))?;
    let h = d.read_header(input).map_err(corrupt)?;
    // Our own header parse ran the limits; libjpeg must agree on the size.
    if (h.width, h.height) != (header.width as usize, header.height as usize) {
        return Err(Error::PhotoCorrupt(
            "the JPEG header is inconsistent".into(),
        ));
    }
    if matches!(h.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
        // Print files, not camera photos; converting them needs a colour
        // management system this app does not carry.
        return Err(Error::PhotoUnsupported);
    }
    let scale = if h.is_lossless {
        ScalingFactor::ONE
    } else {
        pick_scale(header.width.max(header.height), min_long)
    };
    d.set_scaling_factor(scale).map_err(corrupt)?;
    let (width, height) = (scale.scale(h.width), scale.scale(h.height));
    let mut pixels = vec![0u8; width * height * 3];
    let image = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width,
        pitch: width * 3,
        height,
        format: PixelFormat::RGB,
    };
    // A truncated or damaged file is an error here (libjpeg-turbo reports
    // "premature end" as a warning, and TurboJPEG 3 fails the call on it).
    d.decompress(input, image).map_err(corrupt)?;
    Ok(Rgb {
        width: width as u32,
        height: height as u32,
        pixels,
    })
}

/// Decodes a PNG to RGB; transparency is flattened onto white.
pub(crate) fn png(input: &[u8], header: &Header) -> Result<Rgb> {
    let corrupt = |e: png::DecodingError| Error::PhotoCorrupt(e.to_string());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(input));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    // The header check has bounded the size already; this bounds the decoder's
    // own allocations (e.g. ancillary chunks) the same way.
    decoder.set_limits(png::Limits {
        bytes: (header.width as usize) * (header.height as usize) * 8 + (1 << 20),
    });
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Error::PhotoCorrupt("the PNG is too large".into()))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(corrupt)?;
    let (width, height) = (info.width, info.height);
    let n = (width as usize) * (height as usize);
    let src = &buf[..info.buffer_size()];
    let mut pixels = Vec::with_capacity(n * 3);
    // Rows may not be padded after EXPAND | STRIP_16 (line_size = width * channels).
    let white =
        |v: u8, a: u8| ((u16::from(v) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
    match info.color_type {
        png::ColorType::Rgb => pixels.extend_from_slice(&src[..n * 3]),
        png::ColorType::Rgba => {
            for p in src.chunks_exact(4).take(n) {
                pixels.extend_from_slice(&[
                    white(p[0], p[3]),
                    white(p[1], p[3]),
                    white(p[2], p[3]),
                ]);
            }
        }
        png::ColorType::Grayscale => {
            for &g in &src[..n] {
                pixels.extend_from_slice(&[g, g, g]);
            }
        }
        png::ColorType::GrayscaleAlpha => {
            for p in src.chunks_exact(2).take(n) {
                let g = white(p[0], p[1]);
                pixels.extend_from_slice(&[g, g, g]);
            }
        }
        png::ColorType::Indexed => {
            return Err(Error::PhotoCorrupt(
                "the PNG palette was not expanded".into(),
            ));
        }
    }
    if pixels.len() != n * 3 {
        return Err(Error::PhotoCorrupt("the PNG image data is short".into()));
    }
    Ok(Rgb {
        width,
        height,
        pixels,
    })
}

/// Turns stored pixels upright for EXIF orientation `o` (1..=8; anything
/// else is treated as 1). 5..=8 swap width and height.
///
/// The table is the EXIF one: for orientation 6 the stored 0th row is the
/// visual right-hand side and the 0th column the visual top (the phone was
/// held upright, the sensor read it sideways), so output (x, y) takes stored
/// (y, h-1-x).
pub(crate) fn orient(img: Rgb, o: u8) -> Rgb {
    if !(2..=8).contains(&o) {
        return img;
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
    // Along an output row the source index moves by a fixed step; `start`
    // is the source index of the row's first pixel.
    let (wi, hi) = (w as isize, h as isize);
    let (start, step): (fn(isize, isize, isize) -> isize, isize) = match o {
        2 => (|y, w, _| y * w + w - 1, -1),
        3 => (|y, w, h| (h - 1 - y) * w + w - 1, -1),
        4 => (|y, w, h| (h - 1 - y) * w, 1),
        5 => (|y, _, _| y, wi),
        6 => (|y, w, h| (h - 1) * w + y, -wi),
        7 => (|y, w, h| (h - 1) * w + w - 1 - y, -wi),
        _ => (|y, w, _| w - 1 - y, wi), // 8
    };
    let mut out = vec![0u8; w * h * 3];
    for (y, row) in out.chunks_exact_mut(ow * 3).enumerate().take(oh) {
        let mut src = start(y as isize, wi, hi);
        for px in row.chunks_exact_mut(3) {
            let s = src as usize * 3;
            px.copy_from_slice(&img.pixels[s..s + 3]);
            src += step;
        }
    }
    Rgb {
        width: ow as u32,
        height: oh as u32,
        pixels: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_pick_the_smallest_decode_still_large_enough() {
        let s = |long, min| {
            let f = pick_scale(long, min);
            (f.num(), f.denom())
        };
        assert_eq!(s(4000, 1600), (1, 2));
        assert_eq!(s(2560, 1600), (1, 1));
        assert_eq!(s(6400, 1600), (1, 4));
        assert_eq!(s(12800, 1600), (1, 8));
        assert_eq!(s(800, 1600), (1, 1));
        assert_eq!(s(3200, 1600), (1, 2));
    }

    #[test]
    fn orientation_moves_a_corner_where_exif_says() {
        // 3x2, a distinct value per pixel.
        let img = Rgb {
            width: 3,
            height: 2,
            pixels: (0..18).collect(),
        };
        let first = |o| {
            let r = orient(img.clone(), o);
            (r.width, r.height, r.pixels[0])
        };
        // Stored pixel (x, y) has value 3 * (y * 3 + x).
        assert_eq!(first(1), (3, 2, 0));
        assert_eq!(first(2), (3, 2, 6)); // stored top-right
        assert_eq!(first(3), (3, 2, 15)); // stored bottom-right
        assert_eq!(first(4), (3, 2, 9)); // stored bottom-left
        assert_eq!(first(5), (2, 3, 0)); // stored top-left
        assert_eq!(first(6), (2, 3, 9)); // stored bottom-left
        assert_eq!(first(7), (2, 3, 15)); // stored bottom-right
        assert_eq!(first(8), (2, 3, 6)); // stored top-right
    }
}
