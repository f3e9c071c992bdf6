//! `cargo xtask run [--] [ARGS]`: the demo server on a local data directory.

use std::ffi::OsString;
use std::path::Path;

use anyhow::Result;

use crate::cmd::{cargo, display};
use crate::install::Installer;
use crate::setup;

/// The variable the server reads its listen address from.
const LISTEN_VAR: &str = "GLASSGUARD_LISTEN";
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Ensures set-up, then replaces this process with
/// `cargo run -p glassguard-server --bin glassguard -- serve --demo --data-dir ./data ARGS`.
pub fn run(root: &Path, args: &[OsString]) -> Result<()> {
    let args = match args.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => args,
    };
    let mut installer = Installer::new(root);
    setup::ensure(&mut installer)?;
    installer.report();

    let mut cmd = cargo(root);
    cmd.args([
        "run",
        "-p",
        "glassguard-server",
        "--bin",
        "glassguard",
        "--",
    ])
    .args(["serve", "--demo", "--data-dir", "./data"])
    .args(args);
    if std::env::var_os(LISTEN_VAR).is_none_or(|v| v.is_empty()) {
        cmd.env(LISTEN_VAR, DEFAULT_LISTEN);
    }
    eprintln!("$ {}", display(&cmd));
    exec(cmd)
}

#[cfg(unix)]
fn exec(mut cmd: std::process::Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    // Only returns on failure; on success Ctrl-C goes straight to cargo and the server.
    let err = cmd.exec();
    Err(anyhow::Error::new(err).context("could not start cargo"))
}

#[cfg(not(unix))]
fn exec(mut cmd: std::process::Command) -> Result<()> {
    let status = cmd.status()?;
    std::process::exit(status.code().unwrap_or(1));
}
