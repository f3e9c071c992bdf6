//! `cargo xtask test`: every check, in order, stopping at the first failure.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, cargo, run};
use crate::install::Installer;
use crate::postgres::{self, Postgres};
use crate::setup;

/// Options of `cargo xtask test`.
#[derive(Debug, Default)]
pub struct Options {
    /// Skip fmt, clippy and the wasm check.
    pub quick: bool,
    /// Passed to the test binaries (after cargo's `--`), e.g. a name filter.
    pub test_args: Vec<OsString>,
}

/// How a step ended.
#[derive(Debug)]
enum Outcome {
    Ok(Option<String>),
    Warn(String),
    Skipped(String),
    Failed(String),
    NotRun,
}

#[derive(Debug)]
struct Step {
    name: &'static str,
    outcome: Outcome,
    seconds: f64,
}

/// Runs steps in order; once one fails the rest are recorded as not run.
#[derive(Debug)]
struct Pipeline {
    total: usize,
    steps: Vec<Step>,
    failed: bool,
}

impl Pipeline {
    fn new(total: usize) -> Self {
        Self {
            total,
            steps: Vec::new(),
            failed: false,
        }
    }

    fn header(&self, name: &str, what: &str) {
        let title = format!(
            "==== [{}/{}] {name}: {what} ",
            self.steps.len() + 1,
            self.total
        );
        let pad = 78usize.saturating_sub(title.len());
        eprintln!("\n{title}{}", "=".repeat(pad));
    }

    fn step(&mut self, name: &'static str, what: &str, f: impl FnOnce() -> Result<Outcome>) {
        if self.failed {
            self.steps.push(Step {
                name,
                outcome: Outcome::NotRun,
                seconds: 0.0,
            });
            return;
        }
        self.header(name, what);
        let start = Instant::now();
        let outcome = f().unwrap_or_else(|err| Outcome::Failed(format!("{err:#}")));
        let seconds = start.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Failed(err) => {
                eprintln!("\nerror: step `{name}` failed: {err}");
                self.failed = true;
            }
            Outcome::Skipped(why) => eprintln!("skipped: {why}"),
            _ => {}
        }
        self.steps.push(Step {
            name,
            outcome,
            seconds,
        });
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        let outcome = if self.failed {
            Outcome::NotRun
        } else {
            Outcome::Skipped(why.to_owned())
        };
        self.steps.push(Step {
            name,
            outcome,
            seconds: 0.0,
        });
    }

    /// Prints one line per step; an error if any step failed.
    fn finish(self, total_seconds: f64) -> Result<()> {
        eprintln!("\n==== summary {}", "=".repeat(65));
        for step in &self.steps {
            let (label, note) = match &step.outcome {
                Outcome::Ok(note) => ("ok", note.clone().unwrap_or_default()),
                Outcome::Warn(note) => ("WARN", note.clone()),
                Outcome::Skipped(why) => ("skipped", why.clone()),
                Outcome::Failed(err) => ("FAILED", first_line(err)),
                Outcome::NotRun => ("not run", "an earlier step failed".to_owned()),
            };
            let time = match step.outcome {
                Outcome::Skipped(_) | Outcome::NotRun => String::new(),
                _ => format!("{:.1}s", step.seconds),
            };
            let line = format!("  {label:<8} {:<11} {time:>7}  {note}", step.name);
            eprintln!("{}", line.trim_end());
        }
        let failed: Vec<&str> = self
            .steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
            .map(|s| s.name)
            .collect();
        eprintln!(
            "  total {total_seconds:.1}s: {}",
            if failed.is_empty() {
                "PASSED"
            } else {
                "FAILED"
            }
        );
        if !failed.is_empty() {
            bail!("cargo xtask test failed at step `{}`", failed.join("`, `"));
        }
        Ok(())
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 100 {
        format!("{}...", line.chars().take(97).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Runs the whole suite; see the crate docs.
pub fn test(root: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let ci = cmd::is_ci();
    eprintln!(
        "cargo xtask test: workspace {}, CI={ci}, quick={}",
        root.display(),
        options.quick
    );
    let mut pipeline = Pipeline::new(8);
    let mut installer = Installer::new(root);

    pipeline.step("set-up", "toolchain targets and tools", || {
        setup::ensure(&mut installer)?;
        installer.report();
        Ok(Outcome::Ok(Some(installer.summary())))
    });

    if options.quick {
        pipeline.skip("fmt", "--quick");
        pipeline.skip("clippy", "--quick");
        pipeline.skip("wasm", "--quick");
    } else {
        pipeline.step("fmt", "cargo fmt --all --check", || {
            run(cargo(root).args(["fmt", "--all", "--check"]))
                .context("formatting differs; run `cargo fmt --all`")?;
            Ok(Outcome::Ok(None))
        });
        pipeline.step("clippy", "cargo clippy, warnings denied", || {
            run(cargo(root).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            Ok(Outcome::Ok(None))
        });
        pipeline.step("wasm", "protocol crate builds for wasm32", || {
            run(cargo(root).args([
                "check",
                "-p",
                "glassguard-protocol",
                "--target",
                setup::WASM_TARGET,
            ]))?;
            Ok(Outcome::Ok(None))
        });
    }

    let mut database = None;
    pipeline.step("postgres", "find the test database server", || {
        let status = postgres::ensure(&mut installer, ci)?;
        let outcome = match &status {
            Postgres::Reachable(url) => Outcome::Ok(Some(format!(
                "{}={}",
                postgres::URL_VAR,
                cmd::redact_url(url)
            ))),
            Postgres::Unreachable(target) => Outcome::Warn(format!(
                "unreachable at {target}: PostgreSQL half of the conformance suite NOT run"
            )),
        };
        database = Some(status);
        Ok(outcome)
    });

    // Not --all-targets: that would also run the benchmarks (in debug);
    // clippy above already builds them, and `cargo xtask bench` runs them.
    pipeline.step("test", "cargo test --workspace", || {
        let mut test = test_command(root, database.as_ref(), &["--workspace"]);
        if !options.test_args.is_empty() {
            test.arg("--").args(&options.test_args);
        }
        run(&mut test)?;
        Ok(Outcome::Ok(None))
    });

    pipeline.step("doctest", "cargo test --workspace --doc", || {
        if !has_doc_tests(root) {
            return Ok(Outcome::Skipped(
                "no ``` code blocks in doc comments".to_owned(),
            ));
        }
        let mut test = test_command(root, database.as_ref(), &["--workspace", "--doc"]);
        if !options.test_args.is_empty() {
            test.arg("--").args(&options.test_args);
        }
        run(&mut test)?;
        Ok(Outcome::Ok(None))
    });

    if options.quick {
        pipeline.skip("aarch64", "--quick");
    } else {
        pipeline.step(
            "aarch64",
            "core unit tests for aarch64 under qemu-user",
            || {
                if !setup::ensure_aarch64(&mut installer)? {
                    return Ok(Outcome::Skipped(format!(
                        "not root: cannot install {} and the {} target",
                        setup::AARCH64_APT.join(" "),
                        setup::AARCH64_TARGET
                    )));
                }
                let mut test = cargo(root);
                test.args([
                    "test",
                    "-p",
                    "glassguard-core",
                    "--target",
                    setup::AARCH64_TARGET,
                    "--lib",
                ])
                .env("RUST_BACKTRACE", "1")
                .envs(setup::AARCH64_ENV.iter().copied());
                run(&mut test)?;
                Ok(Outcome::Ok(None))
            },
        );
    }

    let unreachable = match &database {
        Some(Postgres::Unreachable(target)) => Some(target.clone()),
        _ => None,
    };
    let result = pipeline.finish(started.elapsed().as_secs_f64());
    if let Some(target) = unreachable {
        eprint!("{}", postgres::banner(&target));
    }
    result
}

/// `cargo test ARGS` with the database env from the postgres step and backtraces on.
fn test_command(root: &Path, database: Option<&Postgres>, args: &[&str]) -> Command {
    let mut test = cargo(root);
    test.arg("test").args(args).env("RUST_BACKTRACE", "1");
    if let Some(database) = database {
        postgres::apply(&mut test, database);
    }
    test
}

/// Whether any `.rs` file outside target dirs has a fenced code block in a
/// doc comment (or pulls docs in with `include_str!`), i.e. whether
/// `cargo test --doc` has anything to do.
fn has_doc_tests(root: &Path) -> bool {
    let target = cmd::target_dir(root);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let skip = name.starts_with('.')
                    || matches!(name.as_ref(), "target" | "node_modules" | "data")
                    || path == target;
                if !skip {
                    stack.push(path);
                }
            } else if kind.is_file()
                && name.ends_with(".rs")
                && std::fs::read_to_string(&path).is_ok_and(|text| doc_has_code(&text))
            {
                eprintln!("doc tests found in {}", path.display());
                return true;
            }
        }
    }
    false
}

fn doc_has_code(text: &str) -> bool {
    text.lines().map(str::trim_start).any(|line| {
        ((line.starts_with("///") || line.starts_with("//!")) && line.contains("```"))
            || (line.starts_with("#") && line.contains("doc") && line.contains("include_str!"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_doc_code_blocks() {
        assert!(doc_has_code(
            "/// ```\n/// assert!(true);\n/// ```\nfn f() {}"
        ));
        assert!(doc_has_code("    //! ```rust"));
        assert!(doc_has_code("#![doc = include_str!(\"../README.md\")]"));
        assert!(!doc_has_code("/// plain docs\nlet s = \"```\";"));
    }
}
