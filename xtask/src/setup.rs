//! The prerequisites `cargo xtask test` and `cargo xtask run` need.
//!
//! Add new ones here, through the [`Installer`] helpers, e.g.
//! `installer.apt_packages(&["chromium", "tesseract-ocr"])?`,
//! `installer.cargo_tool("some-tool", "1.2.3")?` or
//! `installer.python_venv("s3", &["moto[server]==5.1.0"])?`.

use anyhow::Result;

use crate::install::Installer;

/// The target the protocol crate must keep compiling for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Checks for, and installs if missing, everything the checks need.
pub fn ensure(installer: &mut Installer) -> Result<()> {
    installer.rust_target(WASM_TARGET)?;
    Ok(())
}
