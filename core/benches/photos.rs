//! `cargo xtask bench photos [--photos DIR] [--runs N]`: the photo pipeline
//! against libvips' `vipsthumbnail` doing the same job (long edge 1600,
//! quality 80, metadata stripped), one photo at a time.
//!
//! Inputs: the JPEGs in `core/tests/data/photos/` (or every `*.jpg`/`*.jpeg`
//! in `--photos DIR`), plus a 12-megapixel phone-like photo derived here
//! from the first of them: centre-cropped to 4:3, Lanczos3-upscaled to
//! 4000x3000, JPEG q92 4:2:0 with an EXIF Orientation 6 tag (written to a
//! temporary folder, never committed).
//!
//! Per photo it prints and writes to `$GLASSGUARD_BENCH_OUT/photos.json`
//! (`photos`: a list of objects with `name, ours_ms, vips_ms, ratio,
//! ours_bytes, vips_bytes, ours_ssim, vips_ssim, small_bytes, small_ssim,
//! seal_fraction`):
//!
//! - `ours_ms`: median wall time of `--runs` runs (default 7) of reading the
//!   file and [`process`] (which also makes the preview and the pHash, which
//!   vips does not); `vips_ms`: median wall time of as many runs of
//!   `vipsthumbnail IN --size 1600x1600 -o OUT.jpg[Q=80,strip]`, process
//!   start and file write included (a few ms vips cannot avoid when used as
//!   a tool; the ratio is therefore slightly kind to us on small photos).
//! - `*_ssim`: mean SSIM (8x8 windows, luma) of each output against a
//!   reference: the full-size decode, Lanczos3-resized to the output's size
//!   in floating point, oriented upright.
//! - `small_*`: the same with [`PhotoOptions::small`] (a WebP;
//!   `--small-quality Q` overrides its quality, for tuning).
//! - `seal_fraction`: sealing the output (HPKE, in memory) over
//!   pipeline + sealing time.
//!
//! Targets, checked at the end (only informative on other photos): on the
//! 12-MP photo ratio ≤ 0.5, bytes ≤ vips', SSIM ≥ vips' − 0.01; small mode
//! ≤ 0.85 × vips' bytes at SSIM ≥ vips' − 0.01; sealing < 5 % everywhere.
//!
//! On aarch64 (to show the crates build and run there; times under qemu are
//! meaningless), with the environment of `xtask/src/setup.rs` AARCH64_ENV:
//!
//! ```text
//! CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
//! CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
//! CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
//! GLASSGUARD_BENCH_OUT=target/bench-aarch64 \
//! cargo bench -p glassguard-core --bench photos --target aarch64-unknown-linux-gnu -- --runs 1
//! ```
//!
//! (`vipsthumbnail` is the host's x86-64 binary there.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use glassguard_core::photos::{PhotoOptions, process};

struct Args {
    photos: PathBuf,
    runs: usize,
    small_quality: Option<u8>,
}

fn args() -> Result<Args> {
    let mut out = Args {
        photos: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos"),
        runs: 7,
        small_quality: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--photos" => out.photos = it.next().context("--photos needs a folder")?.into(),
            "--runs" => out.runs = it.next().context("--runs needs a number")?.parse()?,
            "--small-quality" => {
                out.small_quality = Some(
                    it.next()
                        .context("--small-quality needs 0..=100")?
                        .parse()?,
                )
            }
            // `cargo bench` passes --bench to harness-less targets.
            "--bench" => {}
            other => bail!(
                "unknown argument {other:?}; usage: photos [--photos DIR] [--runs N] [--small-quality Q]"
            ),
        }
    }
    out.runs = out.runs.max(1);
    Ok(out)
}

/// Packed RGB.
struct Rgb {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

fn decode(bytes: &[u8]) -> Result<Rgb> {
    if bytes.starts_with(b"RIFF") {
        let img = webp::Decoder::new(bytes).decode().context("WebP decode")?;
        if img.is_alpha() {
            bail!("unexpected alpha in WebP output");
        }
        return Ok(Rgb {
            w: img.width() as usize,
            h: img.height() as usize,
            px: img.to_vec(),
        });
    }
    let img = turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB)?;
    Ok(Rgb {
        w: img.width,
        h: img.height,
        px: img.pixels,
    })
}

fn resize(img: &Rgb, w: usize, h: usize, filter: FilterType) -> Result<Rgb> {
    let src = ImageRef::new(img.w as u32, img.h as u32, &img.px, PixelType::U8x3)?;
    let mut dst = Image::new(w as u32, h as u32, PixelType::U8x3);
    Resizer::new().resize(
        &src,
        &mut dst,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)),
    )?;
    Ok(Rgb {
        w,
        h,
        px: dst.into_vec(),
    })
}

/// Luma resized in f32 from the full-size luma (no 8-bit rounding in between).
fn luma(img: &Rgb) -> Vec<f32> {
    img.px
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect()
}

fn resize_luma(l: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Result<Vec<f32>> {
    let bytes: Vec<u8> = l.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let mut bytes = bytes;
    let src = Image::from_slice_u8(w as u32, h as u32, &mut bytes, PixelType::F32)?;
    let mut dst = Image::new(ow as u32, oh as u32, PixelType::F32);
    Resizer::new().resize(
        &src,
        &mut dst,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
    )?;
    Ok(dst
        .buffer()
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Turns a w x h plane upright for EXIF orientation `o`.
fn orient<T: Copy + Default>(v: &[T], w: usize, h: usize, o: u32) -> (Vec<T>, usize, usize) {
    let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
    let mut out = vec![T::default(); w * h];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                8 => (w - 1 - y, x),
                _ => (x, y),
            };
            out[y * ow + x] = v[sy * w + sx];
        }
    }
    (out, ow, oh)
}

/// Mean SSIM over all 8x8 windows (stride 1), from summed-area tables.
fn ssim(a: &[f32], b: &[f32], w: usize, h: usize) -> f64 {
    const N: usize = 8;
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let sat = |f: &dyn Fn(usize) -> f64| {
        let mut t = vec![0f64; (w + 1) * (h + 1)];
        for y in 0..h {
            let mut row = 0f64;
            for x in 0..w {
                row += f(y * w + x);
                t[(y + 1) * (w + 1) + x + 1] = t[y * (w + 1) + x + 1] + row;
            }
        }
        t
    };
    let sa = sat(&|i| f64::from(a[i]));
    let sb = sat(&|i| f64::from(b[i]));
    let saa = sat(&|i| f64::from(a[i]).powi(2));
    let sbb = sat(&|i| f64::from(b[i]).powi(2));
    let sab = sat(&|i| f64::from(a[i]) * f64::from(b[i]));
    let rect = |t: &[f64], x: usize, y: usize| {
        t[(y + N) * (w + 1) + x + N] - t[y * (w + 1) + x + N] - t[(y + N) * (w + 1) + x]
            + t[y * (w + 1) + x]
    };
    let n = (N * N) as f64;
    let mut total = 0f64;
    let mut count = 0usize;
    for y in 0..=h - N {
        for x in 0..=w - N {
            let (ma, mb) = (rect(&sa, x, y) / n, rect(&sb, x, y) / n);
            let va = rect(&saa, x, y) / n - ma * ma;
            let vb = rect(&sbb, x, y) / n - mb * mb;
            let cov = rect(&sab, x, y) / n - ma * mb;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count as f64
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// The EXIF Orientation of a JPEG (1 when absent).
fn orientation(bytes: &[u8]) -> u32 {
    exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
        })
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1)
}

/// An APP1 segment with only IFD0 Orientation = `o` (big-endian TIFF).
fn orientation_app1(o: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    tiff.extend_from_slice(&o.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&tiff);
    seg
}

/// The 12-MP phone-like photo: stored sideways (Orientation 6), as phones do.
fn derive_12mp(src: &Path, out: &Path) -> Result<()> {
    let img = decode(&std::fs::read(src)?)?;
    let cw = (img.h * 4 / 3).min(img.w);
    let ch = cw * 3 / 4;
    let (x0, y0) = ((img.w - cw) / 2, (img.h - ch) / 2);
    let mut crop = Vec::with_capacity(cw * ch * 3);
    for y in y0..y0 + ch {
        crop.extend_from_slice(&img.px[(y * img.w + x0) * 3..(y * img.w + x0 + cw) * 3]);
    }
    let up = resize(
        &Rgb {
            w: cw,
            h: ch,
            px: crop,
        },
        4000,
        3000,
        FilterType::Lanczos3,
    )?;
    // Stored as the sensor reads a phone held upright: rotated 90° CCW, so
    // Orientation 6 (rotate 90° CW) shows it upright.
    let (px, w, h) = orient(
        &up.px
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect::<Vec<_>>(),
        4000,
        3000,
        8,
    );
    let px: Vec<u8> = px.into_iter().flatten().collect();
    let jpeg = turbojpeg::compress(
        turbojpeg::Image {
            pixels: px.as_slice(),
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        },
        92,
        turbojpeg::Subsamp::Sub2x2,
    )?;
    let mut file = jpeg[..2].to_vec();
    file.extend_from_slice(&orientation_app1(6));
    file.extend_from_slice(&jpeg[2..]);
    std::fs::write(out, file)?;
    Ok(())
}

struct Row {
    name: String,
    ours_ms: f64,
    vips_ms: f64,
    ours_bytes: usize,
    vips_bytes: usize,
    ours_ssim: f64,
    vips_ssim: f64,
    small_bytes: usize,
    small_ssim: f64,
    seal_fraction: f64,
    twelve_mp: bool,
}

fn run_one(path: &Path, tmp: &Path, args: &Args, twelve_mp: bool) -> Result<Row> {
    let runs = args.runs;
    let name = path
        .file_name()
        .context("no file name")?
        .to_string_lossy()
        .into_owned();
    let input = std::fs::read(path)?;
    let opts = PhotoOptions::default();
    let small_opts = PhotoOptions {
        small: true,
        small_quality: args.small_quality.unwrap_or(opts.small_quality),
        ..opts
    };

    // Ours: read + pipeline, median of `runs` (after one warm-up).
    let mut ours = None;
    let mut times = vec![];
    for i in 0..=runs {
        let t = Instant::now();
        let bytes = std::fs::read(path)?;
        let out = process(&bytes, &opts)?;
        if i > 0 {
            times.push(t.elapsed());
        }
        ours = Some(out);
    }
    let ours = ours.context("no run")?;
    let ours_ms = median(times);
    let small = process(&input, &small_opts)?;

    // Sealing the output, in memory.
    let (_, pk) = glassguard_seal::PrivateKey::generate();
    let mut seal_times = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        let blob = glassguard_seal::seal(&pk, &ours.bytes)?;
        seal_times.push(t.elapsed());
        std::hint::black_box(blob);
    }
    let seal_ms = median(seal_times);

    // vips: the same job, as a tool.
    let out = tmp.join(format!("vips-{name}"));
    let out = out.with_extension("jpg");
    let target = format!("{}[Q=80,strip]", out.display());
    let mut vips_times = vec![];
    for i in 0..=runs {
        let t = Instant::now();
        let status = Command::new("vipsthumbnail")
            .arg(path)
            .args(["--size", "1600x1600", "-o", &target])
            .status()
            .context("running vipsthumbnail (apt-get install libvips-tools)")?;
        if !status.success() {
            bail!("vipsthumbnail failed on {}", path.display());
        }
        if i > 0 {
            vips_times.push(t.elapsed());
        }
    }
    let vips_ms = median(vips_times);
    let vips_bytes = std::fs::read(&out)?;

    // Quality against the reference downscale.
    let full = decode(&input)?;
    let full_luma = luma(&full);
    let o = orientation(&input);
    let score = |bytes: &[u8]| -> Result<f64> {
        let img = decode(bytes)?;
        // The output is upright; the reference is resized in stored orientation.
        let (sw, sh) = if o >= 5 {
            (img.h, img.w)
        } else {
            (img.w, img.h)
        };
        let reference = resize_luma(&full_luma, full.w, full.h, sw, sh)?;
        let (reference, rw, rh) = orient(&reference, sw, sh, o);
        if (rw, rh) != (img.w, img.h) {
            bail!("reference {rw}x{rh} vs output {}x{}", img.w, img.h);
        }
        Ok(ssim(&reference, &luma(&img), img.w, img.h))
    };
    Ok(Row {
        name,
        ours_ms,
        vips_ms,
        ours_bytes: ours.bytes.len(),
        vips_bytes: vips_bytes.len(),
        ours_ssim: score(&ours.bytes)?,
        vips_ssim: score(&vips_bytes)?,
        small_bytes: small.bytes.len(),
        small_ssim: score(&small.bytes)?,
        seal_fraction: seal_ms / (ours_ms + seal_ms),
        twelve_mp,
    })
}

fn main() -> Result<()> {
    let args = args()?;
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&args.photos)
        .with_context(|| format!("reading {}", args.photos.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    photos.sort();
    if photos.is_empty() {
        bail!("no JPEGs in {}", args.photos.display());
    }
    let tmp = tempfile::tempdir()?;
    let twelve = tmp.path().join("phone-12mp.jpg");
    derive_12mp(&photos[0], &twelve)?;

    let mut rows = vec![];
    for (path, is_12mp) in photos
        .iter()
        .map(|p| (p.as_path(), false))
        .chain([(twelve.as_path(), true)])
    {
        eprintln!("photos: {} ...", path.display());
        rows.push(run_one(path, tmp.path(), &args, is_12mp)?);
    }

    println!(
        "\n{:<22} {:>8} {:>8} {:>6} {:>9} {:>9} {:>7} {:>7} {:>9} {:>7} {:>6} {:>6}",
        "photo",
        "ours ms",
        "vips ms",
        "ratio",
        "ours B",
        "vips B",
        "ours",
        "vips",
        "small B",
        "small",
        "small/",
        "seal"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>6} {:>9} {:>9} {:>7} {:>7} {:>9} {:>7} {:>6} {:>6}",
        "", "", "", "", "", "", "SSIM", "SSIM", "", "SSIM", "vips B", "%"
    );
    for r in &rows {
        println!(
            "{:<22} {:>8.1} {:>8.1} {:>6.2} {:>9} {:>9} {:>7.4} {:>7.4} {:>9} {:>7.4} {:>6.2} {:>6.2}",
            r.name,
            r.ours_ms,
            r.vips_ms,
            r.ours_ms / r.vips_ms,
            r.ours_bytes,
            r.vips_bytes,
            r.ours_ssim,
            r.vips_ssim,
            r.small_bytes,
            r.small_ssim,
            r.small_bytes as f64 / r.vips_bytes as f64,
            r.seal_fraction * 100.0
        );
    }

    let mut checks: Vec<(String, bool)> = vec![];
    for r in &rows {
        let ok_ssim = |s: f64| s >= r.vips_ssim - 0.01;
        if r.twelve_mp {
            checks.push((
                format!(
                    "{}: time ≤ 0.5 × vips ({:.2})",
                    r.name,
                    r.ours_ms / r.vips_ms
                ),
                r.ours_ms <= 0.5 * r.vips_ms,
            ));
            checks.push((
                format!(
                    "{}: bytes ≤ vips ({} vs {})",
                    r.name, r.ours_bytes, r.vips_bytes
                ),
                r.ours_bytes <= r.vips_bytes,
            ));
            checks.push((
                format!(
                    "{}: SSIM ≥ vips − 0.01 ({:.4} vs {:.4})",
                    r.name, r.ours_ssim, r.vips_ssim
                ),
                ok_ssim(r.ours_ssim),
            ));
        }
        checks.push((
            format!(
                "{}: small ≤ 0.85 × vips bytes ({:.2}) at SSIM ≥ vips − 0.01 ({:.4} vs {:.4})",
                r.name,
                r.small_bytes as f64 / r.vips_bytes as f64,
                r.small_ssim,
                r.vips_ssim
            ),
            r.small_bytes as f64 <= 0.85 * r.vips_bytes as f64 && ok_ssim(r.small_ssim),
        ));
        checks.push((
            format!(
                "{}: sealing < 5 % ({:.2} %)",
                r.name,
                r.seal_fraction * 100.0
            ),
            r.seal_fraction < 0.05,
        ));
    }
    println!("\ntargets:");
    for (what, ok) in &checks {
        println!("  [{}] {what}", if *ok { "ok" } else { "MISSED" });
    }

    let json = serde_json::json!({
        "photos": rows.iter().map(|r| serde_json::json!({
            "name": r.name,
            "ours_ms": r.ours_ms,
            "vips_ms": r.vips_ms,
            "ratio": r.ours_ms / r.vips_ms,
            "ours_bytes": r.ours_bytes,
            "vips_bytes": r.vips_bytes,
            "ours_ssim": r.ours_ssim,
            "vips_ssim": r.vips_ssim,
            "small_bytes": r.small_bytes,
            "small_ssim": r.small_ssim,
            "seal_fraction": r.seal_fraction,
        })).collect::<Vec<_>>(),
    });
    let out_dir = std::env::var_os("GLASSGUARD_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench"));
    std::fs::create_dir_all(&out_dir)?;
    let file = out_dir.join("photos.json");
    std::fs::write(&file, serde_json::to_string_pretty(&json)?)?;
    eprintln!("photos: results in {}", file.display());
    Ok(())
}
