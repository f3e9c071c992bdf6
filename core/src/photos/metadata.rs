//! The few EXIF facts the pipeline keeps from a camera file: which way is up
//! (Orientation), when it was taken (DateTimeOriginal) and by what phone
//! (Model). Everything else — GPS above all — is dropped: the output is
//! encoded from pixels alone, so no source segment can leak into it, and the
//! kept facts travel as separate fields of our own record.

use chrono::NaiveDateTime;
use exif::{In, Tag, Value};

use super::limits::{InputFormat, jpeg_segments};

/// The EXIF facts the pipeline keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// EXIF Orientation, 1..=8 (1 when absent or out of range).
    pub orientation: u8,
    /// DateTimeOriginal (or DateTime), in the camera's local time.
    pub captured_at: Option<NaiveDateTime>,
    /// The camera's Model tag.
    pub device_model: Option<String>,
}

/// Reads the facts; a missing or damaged EXIF block gives the defaults (a
/// photo is not refused for its metadata).
pub(crate) fn read(input: &[u8], format: InputFormat) -> Facts {
    let raw = match format {
        InputFormat::Jpeg => jpeg_exif(input),
        InputFormat::Png => png_exif(input),
    };
    let Some(raw) = raw else {
        return Facts {
            orientation: 1,
            ..Facts::default()
        };
    };
    let Ok(exif) = exif::Reader::new().read_raw(raw) else {
        return Facts {
            orientation: 1,
            ..Facts::default()
        };
    };
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o))
        .map_or(1, |o| o as u8);
    let captured_at = [Tag::DateTimeOriginal, Tag::DateTime]
        .into_iter()
        .find_map(|tag| {
            let field = exif.get_field(tag, In::PRIMARY)?;
            let Value::Ascii(ref parts) = field.value else {
                return None;
            };
            let dt = exif::DateTime::from_ascii(parts.first()?).ok()?;
            chrono::NaiveDate::from_ymd_opt(dt.year.into(), dt.month.into(), dt.day.into())?
                .and_hms_opt(dt.hour.into(), dt.minute.into(), dt.second.into())
        });
    let device_model = exif
        .get_field(Tag::Model, In::PRIMARY)
        .and_then(|f| match f.value {
            Value::Ascii(ref parts) => parts.first().map(|p| ascii_text(p)),
            _ => None,
        })
        .filter(|m| !m.is_empty());
    Facts {
        orientation,
        captured_at,
        device_model,
    }
}

/// Printable ASCII only, trimmed, at most 64 characters (the model goes into
/// our record and the UI, so it gets no control characters from a file).
fn ascii_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take_while(|b| **b != 0)
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .take(64)
        .map(|b| char::from(*b))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The TIFF payload of the first `Exif\0\0` APP1 segment.
fn jpeg_exif(input: &[u8]) -> Option<Vec<u8>> {
    jpeg_segments(input)
        .map_while(Result::ok)
        .find(|s| s.marker == 0xE1 && s.payload.starts_with(b"Exif\0\0"))
        .map(|s| s.payload[6..].to_vec())
}

/// The payload of the PNG `eXIf` chunk, if it comes before the image data.
fn png_exif(input: &[u8]) -> Option<Vec<u8>> {
    let mut at = 8;
    while let Some(head) = input.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        let data = input.get(at + 8..(at + 8).checked_add(len)?)?;
        if kind == b"eXIf" {
            return Some(data.to_vec());
        }
        at = at.checked_add(12)?.checked_add(len)?;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An APP1 EXIF segment (marker included) with IFD0 Orientation, Model,
    /// and an EXIF IFD with DateTimeOriginal; big-endian TIFF.
    pub(crate) fn exif_app1(orientation: u16, model: Option<&str>, taken: Option<&str>) -> Vec<u8> {
        let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = vec![];
        // (tag, type, count, value bytes)
        entries.push((0x0112, 3, 1, orientation.to_be_bytes().to_vec()));
        if let Some(m) = model {
            let mut b = m.as_bytes().to_vec();
            b.push(0);
            entries.push((0x0110, 2, b.len() as u32, b));
        }
        let exif_ifd_entry = taken.is_some();
        let n0 = entries.len() + usize::from(exif_ifd_entry);
        // Layout: header (8) | IFD0 (2 + 12 n0 + 4) | EXIF IFD (2 + 12 + 4) | data
        let ifd0_at = 8usize;
        let exif_ifd_at = ifd0_at + 2 + 12 * n0 + 4;
        let mut data_at = exif_ifd_at + if exif_ifd_entry { 2 + 12 + 4 } else { 0 };
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        let mut data = vec![];
        let mut entry = |tiff: &mut Vec<u8>, tag: u16, ty: u16, count: u32, value: &[u8]| {
            tiff.extend_from_slice(&tag.to_be_bytes());
            tiff.extend_from_slice(&ty.to_be_bytes());
            tiff.extend_from_slice(&count.to_be_bytes());
            if value.len() <= 4 {
                let mut v = value.to_vec();
                v.resize(4, 0);
                tiff.extend_from_slice(&v);
            } else {
                tiff.extend_from_slice(&(data_at as u32).to_be_bytes());
                data.extend_from_slice(value);
                data_at += value.len();
            }
        };
        tiff.extend_from_slice(&(n0 as u16).to_be_bytes());
        entries.sort_by_key(|e| e.0);
        for (tag, ty, count, value) in &entries {
            entry(&mut tiff, *tag, *ty, *count, value);
        }
        if exif_ifd_entry {
            entry(&mut tiff, 0x8769, 4, 1, &(exif_ifd_at as u32).to_be_bytes());
        }
        tiff.extend_from_slice(&0u32.to_be_bytes());
        if let Some(t) = taken {
            let mut b = t.as_bytes().to_vec();
            b.push(0);
            tiff.extend_from_slice(&1u16.to_be_bytes());
            entry(&mut tiff, 0x9003, 2, b.len() as u32, &b);
            tiff.extend_from_slice(&0u32.to_be_bytes());
        }
        tiff.extend_from_slice(&data);
        let mut seg = vec![0xFF, 0xE1];
        seg.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        seg.extend_from_slice(b"Exif\0\0");
        seg.extend_from_slice(&tiff);
        seg
    }

    /// `jpeg` with `app1` inserted right after SOI.
    pub(crate) fn with_segment(jpeg: &[u8], app1: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn reads_orientation_time_and_model() {
        let jpeg = super::super::limits::tests::jpeg_header_only(10, 10);
        let app1 = exif_app1(6, Some("Pixel 7a"), Some("2026:11:30 14:05:09"));
        let facts = read(&with_segment(&jpeg, &app1), InputFormat::Jpeg);
        assert_eq!(facts.orientation, 6);
        assert_eq!(facts.device_model.as_deref(), Some("Pixel 7a"));
        assert_eq!(
            facts.captured_at.unwrap().to_string(),
            "2026-11-30 14:05:09"
        );
        let bare = read(&jpeg, InputFormat::Jpeg);
        assert_eq!(bare.orientation, 1);
        assert_eq!(bare.captured_at, None);
        let odd = read(
            &with_segment(&jpeg, &exif_app1(42, None, None)),
            InputFormat::Jpeg,
        );
        assert_eq!(odd.orientation, 1);
    }
}
