//! The prerequisites `cargo xtask test` and `cargo xtask run` need.
//!
//! Add new ones here, through the [`Installer`] helpers, e.g.
//! `installer.apt_packages(&["chromium", "tesseract-ocr"])?`,
//! `installer.cargo_tool("some-tool", "1.2.3")?` or
//! `installer.python_venv("s3", &["moto[server]==5.1.0"])?`.

use anyhow::Result;

use crate::install::Installer;

/// Debian packages the build and the tests need: `cmake` and `nasm` build
/// libjpeg-turbo (with its x86 SIMD) for the core's photo pipeline;
/// `exiftool` checks that photos leave the pipeline without metadata.
pub const BUILD_APT: &[&str] = &["cmake", "nasm", "libimage-exiftool-perl"];

/// Debian packages the photos benchmark needs: libvips' `vipsthumbnail`, the
/// tool it races.
pub const PHOTOS_BENCH_APT: &[&str] = &["libvips-tools"];

/// The target the protocol crate must keep compiling for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The device target the core's unit tests also run on, under qemu-user.
pub const AARCH64_TARGET: &str = "aarch64-unknown-linux-gnu";

/// Debian packages for the aarch64 run: the cross linker and C compiler
/// (SQLCipher, vendored OpenSSL and aws-lc build C for the target; OpenSSL's
/// build also needs perl, which Debian always has; libjpeg-turbo is built with
/// cmake, which probes for a C++ compiler too) and qemu's user-mode emulator.
pub const AARCH64_APT: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "g++-aarch64-linux-gnu",
    "qemu-user",
];

/// The environment that makes `cargo test --target aarch64-unknown-linux-gnu`
/// cross-link and run its test binaries under qemu.
pub const AARCH64_ENV: &[(&str, &str)] = &[
    (
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
        "aarch64-linux-gnu-gcc",
    ),
    (
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
        "qemu-aarch64 -L /usr/aarch64-linux-gnu",
    ),
    ("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc"),
    ("CXX_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-g++"),
];

/// Installs what the aarch64 run needs. Only as root (apt needs it); returns
/// whether the run can go ahead.
pub fn ensure_aarch64(installer: &mut Installer) -> Result<bool> {
    if !installer.is_root()? {
        return Ok(false);
    }
    installer.apt_packages(AARCH64_APT)?;
    installer.rust_target(AARCH64_TARGET)?;
    Ok(true)
}

/// Checks for, and installs if missing, everything the checks need.
pub fn ensure(installer: &mut Installer) -> Result<()> {
    installer.rust_target(WASM_TARGET)?;
    installer.apt_packages(BUILD_APT)?;
    Ok(())
}

/// Checks for, and installs if missing (as root), what `cargo xtask bench
/// photos` needs besides the build's own packages.
pub fn ensure_photos_bench(installer: &mut Installer) -> Result<()> {
    installer.apt_packages(BUILD_APT)?;
    installer.apt_packages(PHOTOS_BENCH_APT)?;
    Ok(())
}
