//! What a photo may be before any pixel is decoded: its format from its
//! first bytes, its dimensions from its header, and the limits that keep a
//! decompression bomb (a small file claiming a huge image) from allocating.
//!
//! The JPEG and PNG headers are read here, by hand, rather than by the
//! decoders: a file that claims 60000x60000 is refused from its SOF or IHDR
//! alone, whatever follows it.

use crate::error::{Error, Result};

/// Limits against oversized files and decompression bombs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhotoLimits {
    /// The largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// The most pixels (width × height) accepted.
    pub max_pixels: u64,
    /// The longest side accepted, in pixels.
    pub max_dimension: u32,
}

impl Default for PhotoLimits {
    /// 30 MB, 50 megapixels, 12000 px a side: above any phone camera's
    /// photo (a 200 MP sensor bins to 12.5 MP by default), far below a bomb.
    fn default() -> Self {
        PhotoLimits {
            max_file_bytes: 30_000_000,
            max_pixels: 50_000_000,
            max_dimension: 12_000,
        }
    }
}

/// The formats the pipeline reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputFormat {
    Jpeg,
    Png,
}

/// What the header says, once checked against the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub format: InputFormat,
    pub width: u32,
    pub height: u32,
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Sniffs the format, reads the dimensions and applies `limits`.
pub(crate) fn check(input: &[u8], limits: &PhotoLimits) -> Result<Header> {
    if input.len() as u64 > limits.max_file_bytes {
        return Err(Error::PhotoTooLarge {
            bytes: input.len() as u64,
            max: limits.max_file_bytes,
        });
    }
    let (format, (width, height)) = if input.starts_with(&[0xFF, 0xD8, 0xFF]) {
        (InputFormat::Jpeg, jpeg_dimensions(input)?)
    } else if input.starts_with(PNG_SIGNATURE) {
        (InputFormat::Png, png_dimensions(input)?)
    } else {
        return Err(Error::PhotoUnsupported);
    };
    if width == 0 || height == 0 {
        return Err(Error::PhotoCorrupt(
            "the header says the image is empty".into(),
        ));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || width > limits.max_dimension || height > limits.max_dimension {
        return Err(Error::PhotoTooManyPixels {
            width: width.into(),
            height: height.into(),
            max_pixels: limits.max_pixels,
            max_dimension: limits.max_dimension.into(),
        });
    }
    Ok(Header {
        format,
        width,
        height,
    })
}

/// One JPEG marker segment before the image data.
#[derive(Debug)]
pub(crate) struct Segment<'a> {
    pub marker: u8,
    pub payload: &'a [u8],
}

/// The marker segments from SOI up to (not including) the first SOS.
pub(crate) fn jpeg_segments(input: &[u8]) -> impl Iterator<Item = Result<Segment<'_>>> {
    let mut at = 2; // after SOI
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let cut = || Error::PhotoCorrupt("the JPEG header is cut short".into());
        // Markers may be preceded by fill bytes (0xFF).
        loop {
            match input.get(at) {
                None => {
                    done = true;
                    return Some(Err(cut()));
                }
                Some(0xFF) if input.get(at + 1) == Some(&0xFF) => at += 1,
                Some(0xFF) => break,
                Some(_) => {
                    done = true;
                    return Some(Err(Error::PhotoCorrupt("bad JPEG marker".into())));
                }
            }
        }
        let Some(&marker) = input.get(at + 1) else {
            done = true;
            return Some(Err(cut()));
        };
        if marker == 0xDA || marker == 0xD9 {
            // Start of scan (or end of image): the header is over.
            done = true;
            return None;
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            // Stand-alone markers carry no length.
            at += 2;
            return Some(Ok(Segment {
                marker,
                payload: &[],
            }));
        }
        let (Some(&hi), Some(&lo)) = (input.get(at + 2), input.get(at + 3)) else {
            done = true;
            return Some(Err(cut()));
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 2 {
            done = true;
            return Some(Err(Error::PhotoCorrupt("bad JPEG segment length".into())));
        }
        let Some(payload) = input.get(at + 4..at + 2 + len) else {
            done = true;
            return Some(Err(cut()));
        };
        at += 2 + len;
        Some(Ok(Segment { marker, payload }))
    })
}

/// Width and height from the first SOF segment.
fn jpeg_dimensions(input: &[u8]) -> Result<(u32, u32)> {
    for segment in jpeg_segments(input) {
        let segment = segment?;
        // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&segment.marker) && ![0xC4, 0xC8, 0xCC].contains(&segment.marker)
        {
            let p = segment.payload;
            if p.len() < 5 {
                return Err(Error::PhotoCorrupt(
                    "the JPEG frame header is cut short".into(),
                ));
            }
            let height = u16::from_be_bytes([p[1], p[2]]);
            let width = u16::from_be_bytes([p[3], p[4]]);
            return Ok((width.into(), height.into()));
        }
    }
    Err(Error::PhotoCorrupt("the JPEG has no frame header".into()))
}

/// Width and height from IHDR, which must be the first chunk.
fn png_dimensions(input: &[u8]) -> Result<(u32, u32)> {
    let ihdr = input
        .get(8..24)
        .ok_or_else(|| Error::PhotoCorrupt("the PNG header is cut short".into()))?;
    if &ihdr[4..8] != b"IHDR" {
        return Err(Error::PhotoCorrupt(
            "the PNG does not start with IHDR".into(),
        ));
    }
    let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
    let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
    Ok((width, height))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A JPEG that is only a header: SOI, a SOF0 claiming `w`x`h`, EOI.
    pub(crate) fn jpeg_header_only(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    /// A PNG that is only a signature and an IHDR claiming `w`x`h`.
    pub(crate) fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut v = PNG_SIGNATURE.to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn headers_are_read_and_limited() {
        let limits = PhotoLimits::default();
        let h = check(&jpeg_header_only(4000, 3000), &limits).unwrap();
        assert_eq!(
            (h.format, h.width, h.height),
            (InputFormat::Jpeg, 4000, 3000)
        );
        let h = check(&png_header_only(640, 480), &limits).unwrap();
        assert_eq!((h.format, h.width, h.height), (InputFormat::Png, 640, 480));
        for bomb in [
            jpeg_header_only(60000, 60000),
            png_header_only(60000, 60000),
            png_header_only(100_000, 10),
            jpeg_header_only(9000, 9000), // 81 MP, each side allowed
        ] {
            let err = check(&bomb, &limits).unwrap_err();
            assert!(matches!(err, Error::PhotoTooManyPixels { .. }), "{err:?}");
        }
        let small = PhotoLimits {
            max_file_bytes: 10,
            ..limits
        };
        let err = check(&jpeg_header_only(10, 10), &small).unwrap_err();
        assert!(matches!(err, Error::PhotoTooLarge { .. }), "{err:?}");
    }

    #[test]
    fn foreign_and_cut_headers_have_their_codes() {
        let limits = PhotoLimits::default();
        for other in [&b"GIF89a......"[..], b"", b"%PDF-1.7", &[0u8; 100]] {
            assert!(matches!(
                check(other, &limits),
                Err(Error::PhotoUnsupported)
            ));
        }
        let jpeg = jpeg_header_only(100, 100);
        for cut in 3..10 {
            let err = check(&jpeg[..cut], &limits).unwrap_err();
            assert!(matches!(err, Error::PhotoCorrupt(_)), "{cut}: {err:?}");
        }
        let png = png_header_only(100, 100);
        assert!(matches!(
            check(&png[..20], &limits),
            Err(Error::PhotoCorrupt(_))
        ));
        assert!(matches!(
            check(&png_header_only(0, 5), &limits),
            Err(Error::PhotoCorrupt(_))
        ));
    }
}
