//! A 64-bit perceptual hash (DCT pHash) for the server's duplicate-photo
//! fraud checks: the same photo recompressed, resized or lightly edited hashes
//! to within a few bits; different photos land about 32 bits apart.
//!
//! Steps: luma, area-averaged down to 32x32; a 2-D DCT-II; the 8x8 block of
//! lowest frequencies after the DC row and column (coefficients 1..=8 in
//! each direction, as phash.org does: the DC terms carry overall brightness,
//! not structure); one bit per coefficient, set when it is above the block's
//! median. Bit `63 - (8 * row + col)` holds coefficient (row + 1, col + 1).

use super::decode::Rgb;

const N: usize = 32;

/// The pHash of an image.
pub(crate) fn phash(img: &Rgb) -> u64 {
    let grey = luma_32(img);
    let dct = dct_2d(&grey);
    let mut block = [0f64; 64];
    for r in 0..8 {
        for c in 0..8 {
            block[r * 8 + c] = dct[(r + 1) * N + (c + 1)];
        }
    }
    let mut sorted = block;
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    block
        .iter()
        .fold(0u64, |acc, &v| (acc << 1) | u64::from(v > median))
}

/// The number of differing bits between two hashes (0 = same picture).
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Luma (BT.601), area-averaged onto a 32x32 grid.
fn luma_32(img: &Rgb) -> [f64; N * N] {
    let (w, h) = (img.width as usize, img.height as usize);
    let mut sum = [0f64; N * N];
    let mut count = [0u32; N * N];
    for y in 0..h {
        let gy = y * N / h;
        let row = &img.pixels[y * w * 3..(y + 1) * w * 3];
        for (x, p) in row.chunks_exact(3).enumerate() {
            let gx = x * N / w;
            let l = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            sum[gy * N + gx] += l;
            count[gy * N + gx] += 1;
        }
    }
    let mut out = [0f64; N * N];
    for ((o, s), c) in out.iter_mut().zip(sum).zip(count) {
        // An image smaller than 32 px leaves some cells empty: they stay 0.
        if c > 0 {
            *o = s / f64::from(c);
        }
    }
    out
}

/// Separable, unnormalised DCT-II over rows then columns.
fn dct_2d(input: &[f64; N * N]) -> Vec<f64> {
    let mut cos = [0f64; N * N];
    for k in 0..N {
        for n in 0..N {
            cos[k * N + n] = (std::f64::consts::PI / N as f64 * (n as f64 + 0.5) * k as f64).cos();
        }
    }
    let mut rows = vec![0f64; N * N];
    for y in 0..N {
        for k in 0..N {
            rows[y * N + k] = (0..N).map(|n| input[y * N + n] * cos[k * N + n]).sum();
        }
    }
    let mut out = vec![0f64; N * N];
    for x in 0..N {
        for k in 0..N {
            out[k * N + x] = (0..N).map(|n| rows[n * N + x] * cos[k * N + n]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hamming_counts_bits() {
        assert_eq!(hamming(0, 0), 0);
        assert_eq!(hamming(0b1011, 0b0001), 2);
        assert_eq!(hamming(u64::MAX, 0), 64);
    }

    #[test]
    fn a_flat_image_and_a_gradient_differ() {
        let flat = Rgb {
            width: 64,
            height: 64,
            pixels: vec![128; 64 * 64 * 3],
        };
        let grad = Rgb {
            width: 64,
            height: 64,
            pixels: (0..64 * 64)
                .flat_map(|i| {
                    let v = ((i % 64) * 4) as u8;
                    [v, v, v]
                })
                .collect(),
        };
        assert!(hamming(phash(&flat), phash(&grad)) > 0);
    }
}
