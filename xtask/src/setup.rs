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

/// The official tus client the upload interoperability test drives
/// (`tests/tus/`), pinned; in the venv `<target>/xtask/venv-tus`.
pub const TUSPY: &str = "tuspy==1.1.0";

/// The local AWS API server the KMS key source tests drive
/// (`backend/tests/api/kms.rs`), pinned; in the venv `<target>/xtask/venv-moto`,
/// where the tests find it (or through `$GLASSGUARD_MOTO_PYTHON`).
pub const MOTO: &str = "moto[server]==5.1.0";

/// Checks for, and installs if missing, everything the checks need.
pub fn ensure(installer: &mut Installer) -> Result<()> {
    installer.rust_target(WASM_TARGET)?;
    // Debian's python3 needs python3-venv for `python3 -m venv`; other
    // pythons (pyenv, Homebrew) have it built in.
    let has_venv = std::process::Command::new("python3")
        .args(["-m", "venv", "--help"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_venv {
        installer.apt_packages(&["python3-venv"])?;
    }
    installer.python_venv("tus", &[TUSPY])?;
    installer.python_venv("moto", &[MOTO])?;
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
