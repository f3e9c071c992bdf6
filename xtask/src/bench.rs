//! `cargo xtask bench [NAME] [--] [ARGS]`: the registered benchmarks.
//!
//! Each benchmark is a `[[bench]]` target with `harness = false` in some
//! crate. It gets `GLASSGUARD_BENCH_OUT=<workspace>/target/bench` and must
//! write its results to `$GLASSGUARD_BENCH_OUT/<name>.json`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, run};
use crate::install::Installer;
use crate::setup;

/// The variable that tells a bench where to write its JSON.
pub const OUT_VAR: &str = "GLASSGUARD_BENCH_OUT";

/// A registered benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Bench {
    /// The name used on the xtask command line and for the JSON file.
    pub name: &'static str,
    /// The cargo package that owns the bench target.
    pub package: &'static str,
    /// The package's directory, relative to the workspace root.
    pub dir: &'static str,
    /// The `[[bench]]` target's name.
    pub target: &'static str,
}

/// Every benchmark `cargo xtask bench` knows. Register new ones here.
pub const BENCHES: &[Bench] = &[
    Bench {
        name: "api",
        package: "glassguard-server",
        dir: "backend",
        target: "api",
    },
    Bench {
        name: "bot",
        package: "glassguard-server",
        dir: "backend",
        target: "bot",
    },
    Bench {
        name: "photos",
        package: "glassguard-core",
        dir: "core",
        target: "photos",
    },
    Bench {
        name: "sync",
        package: "glassguard-e2e",
        dir: "tests",
        target: "sync",
    },
    Bench {
        name: "uplink_2g",
        package: "glassguard-e2e",
        dir: "tests",
        target: "uplink_2g",
    },
];

/// Parses `[NAME] [--] [ARGS]` and runs the chosen benchmark(s).
pub fn bench(root: &Path, args: &[OsString]) -> Result<()> {
    let (selected, passthrough) = parse_args(args)?;
    for bench in &selected {
        check_target_exists(root, bench)?;
    }
    if selected.iter().any(|b| b.name == "photos") {
        let mut installer = Installer::new(root);
        setup::ensure_photos_bench(&mut installer)?;
        installer.report();
    }
    // The workspace's own target/bench, even when CARGO_TARGET_DIR is elsewhere.
    let out_dir = root.join("target").join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut reports = Vec::new();
    for bench in &selected {
        eprintln!(
            "\n==== bench {} ({} --bench {}) ====",
            bench.name, bench.package, bench.target
        );
        let report = out_dir.join(format!("{}.json", bench.name));
        // Remove the previous results so a bench that writes nothing cannot pass.
        match std::fs::remove_file(&report) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("removing old {}", report.display()));
            }
            _ => {}
        }
        let mut cmd = cargo(root);
        cmd.args(["bench", "-p", bench.package, "--bench", bench.target])
            .env(OUT_VAR, &out_dir);
        if !passthrough.is_empty() {
            cmd.arg("--").args(passthrough);
        }
        run(&mut cmd)?;
        if !report.is_file() {
            bail!(
                "bench `{}` finished but did not write {} (it must write ${OUT_VAR}/{}.json)",
                bench.name,
                report.display(),
                bench.name
            );
        }
        eprintln!("bench {}: results in {}", bench.name, report.display());
        reports.push(report);
    }
    if reports.len() > 1 {
        eprintln!("\nbench results:");
        for report in &reports {
            eprintln!("  {}", report.display());
        }
    }
    Ok(())
}

/// `[NAME] [--] [ARGS...]`: a first word not starting with `-` is a NAME.
fn parse_args(args: &[OsString]) -> Result<(Vec<Bench>, &[OsString])> {
    let (name, rest) = match args.split_first() {
        Some((first, rest)) if !first.to_string_lossy().starts_with('-') => {
            (Some(first.to_string_lossy().into_owned()), rest)
        }
        _ => (None, args),
    };
    let rest = match rest.split_first() {
        Some((first, after)) if first == "--" => after,
        _ => rest,
    };
    let selected = match name {
        None => BENCHES.to_vec(),
        Some(name) => match BENCHES.iter().find(|b| b.name == name) {
            Some(bench) => vec![*bench],
            None => bail!(
                "unknown bench `{name}`; registered: {}",
                BENCHES
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    Ok((selected, rest))
}

/// Fails clearly if the bench target is not declared yet.
fn check_target_exists(root: &Path, bench: &Bench) -> Result<()> {
    let dir = root.join(bench.dir);
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let declared = declared_benches(&text).iter().any(|t| t == bench.target);
    let auto = [
        dir.join("benches").join(format!("{}.rs", bench.target)),
        dir.join("benches").join(bench.target).join("main.rs"),
    ]
    .iter()
    .any(|p: &PathBuf| p.is_file());
    if !declared && !auto {
        bail!(
            "bench `{name}` is registered in xtask but its target does not exist yet:\n  \
             {manifest} has no [[bench]] named `{target}` (package {package}).\n  \
             Add to it:\n\n[[bench]]\nname = \"{target}\"\nharness = false\n\n  \
             and write {dir}/benches/{target}.rs.",
            name = bench.name,
            manifest = manifest.display(),
            target = bench.target,
            package = bench.package,
            dir = bench.dir,
        );
    }
    Ok(())
}

/// The `name`s of the `[[bench]]` tables in a Cargo.toml.
fn declared_benches(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            in_bench = line.replace(' ', "") == "[[bench]]";
        } else if in_bench
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            names.push(value.trim().trim_matches(['"', '\'']).to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_name_and_passthrough() {
        let args = os(&["api", "--", "--quick"]);
        let (selected, rest) = parse_args(&args).unwrap();
        assert_eq!(selected.len(), 1);
        assert_eq!(rest, &os(&["--quick"])[..]);

        let args = os(&["api", "--photos", "DIR"]);
        let (_, rest) = parse_args(&args).unwrap();
        assert_eq!(rest, &os(&["--photos", "DIR"])[..]);

        let args = os(&["--", "-x"]);
        let (selected, rest) = parse_args(&args).unwrap();
        assert_eq!(selected.len(), BENCHES.len());
        assert_eq!(rest, &os(&["-x"])[..]);

        assert!(parse_args(&os(&["nope"])).is_err());
    }

    #[test]
    fn finds_declared_benches() {
        let manifest = "[package]\nname = \"x\"\n\n[[bench]]\nname = \"api\" # main\nharness = false\n\n[[ bench ]]\nname='photos'\n[dependencies]\nname = \"no\"\n";
        assert_eq!(declared_benches(manifest), ["api", "photos"]);
    }
}
