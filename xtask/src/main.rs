//! Glassguard's own automation, run as `cargo xtask <command>` from anywhere
//! in the workspace.
//!
//! Commands:
//!
//! - `cargo xtask run [-- ARGS]`: ensures set-up, then runs the demo server
//!   (`glassguard serve --demo --data-dir ./data ARGS`) on
//!   `GLASSGUARD_LISTEN`, default `127.0.0.1:8080`.
//! - `cargo xtask test [--quick] [-- TEST-ARGS]`: set-up (Rust targets, apt
//!   packages, cargo tools), `cargo fmt --check`, clippy with warnings denied,
//!   the protocol crate's wasm32 build, PostgreSQL discovery (sets
//!   `GLASSGUARD_TEST_POSTGRES_URL`), `cargo test --workspace`,
//!   doc tests if there are any, and (as root, installing the cross gcc,
//!   qemu-user and the Rust target) the core's unit tests for
//!   `aarch64-unknown-linux-gnu` under qemu. Stops at the first failure and prints a
//!   per-step summary. `--quick` skips fmt, clippy, wasm and aarch64; TEST-ARGS go to
//!   the test binaries (e.g. a name filter).
//! - `cargo xtask bench [NAME] [--] [ARGS]`: runs one registered benchmark
//!   (or all), passing ARGS through; each writes
//!   `<workspace>/target/bench/NAME.json`.
//!
//! CI runs `.ci/run`, which runs `cargo xtask test` with `CI=true`.

mod bench;
mod cmd;
mod install;
mod postgres;
mod run;
mod setup;
mod suite;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Result, bail};

fn usage() -> String {
    let benches: Vec<&str> = bench::BENCHES.iter().map(|b| b.name).collect();
    format!(
        "usage:
  cargo xtask run [-- ARGS]                 demo server on {listen} (GLASSGUARD_LISTEN)
  cargo xtask test [--quick] [-- TEST-ARGS] every check CI runs; --quick skips fmt/clippy/wasm/aarch64
  cargo xtask bench [NAME] [--] [ARGS]      benchmarks: {benches}",
        listen = "127.0.0.1:8080",
        benches = benches.join(", "),
    )
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the cause chain; no backtrace, these are user-facing errors.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<()> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{}", usage());
        bail!("no command given");
    };
    let root = cmd::workspace_root()?;
    match command.to_str() {
        Some("run") => run::run(&root, rest),
        Some("test") => suite::test(&root, &test_options(rest)?),
        Some("bench") => bench::bench(&root, rest),
        Some("help" | "-h" | "--help") => {
            println!("{}", usage());
            Ok(())
        }
        _ => {
            eprintln!("{}", usage());
            bail!("unknown command `{}`", command.to_string_lossy())
        }
    }
}

fn test_options(args: &[OsString]) -> Result<suite::Options> {
    let mut options = suite::Options::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--quick") => options.quick = true,
            Some("--") => {
                options.test_args = iter.cloned().collect();
                break;
            }
            _ => {
                eprintln!("{}", usage());
                bail!(
                    "unknown argument to `cargo xtask test`: {}",
                    arg.to_string_lossy()
                );
            }
        }
    }
    Ok(options)
}
