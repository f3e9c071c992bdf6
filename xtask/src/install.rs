//! Idempotent `ensure`-style installers for the tools the checks need.
//!
//! Each method checks first and installs only what is missing, recording what
//! it did so [`Installer::report`] can print it. Everything is built or
//! fetched through the ordinary package managers (rustup for Rust targets,
//! apt, pip, npm, `cargo install`); nothing downloads a prebuilt binary
//! directly.
//!
//! Debian packages are only installed when running as root (as CI does);
//! otherwise a missing package is an error that names the install command.

// Not every helper has a caller yet; they are here for the checks to come.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, capture, run};

/// One thing the installer looked at.
#[derive(Debug, Clone)]
pub struct Action {
    /// What was checked, e.g. `rust target wasm32-unknown-unknown`.
    pub what: String,
    /// True if this run installed it, false if it was already there.
    pub installed: bool,
}

/// Checks for and installs prerequisites; see the module docs.
#[derive(Debug)]
pub struct Installer {
    root: PathBuf,
    is_root: Option<bool>,
    apt_updated: bool,
    actions: Vec<Action>,
}

impl Installer {
    /// An installer working from the workspace `root` (so `rust-toolchain.toml`
    /// applies); its caches live under `<target dir>/xtask/`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            is_root: None,
            apt_updated: false,
            actions: Vec::new(),
        }
    }

    /// Whether we run as root (`id -u` is 0).
    pub fn is_root(&mut self) -> Result<bool> {
        if let Some(is_root) = self.is_root {
            return Ok(is_root);
        }
        let is_root = match capture(Command::new("id").arg("-u"))? {
            Some(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim() == "0",
            _ => false,
        };
        self.is_root = Some(is_root);
        Ok(is_root)
    }

    /// Prints one line per thing checked: installed now or already present.
    pub fn report(&self) {
        eprintln!("set-up report:");
        if self.actions.is_empty() {
            eprintln!("  (nothing to check)");
        }
        for action in &self.actions {
            let verb = if action.installed {
                "installed"
            } else {
                "present"
            };
            eprintln!("  {verb:<10} {}", action.what);
        }
    }

    /// A one-line summary: what this run installed, if anything.
    pub fn summary(&self) -> String {
        let installed: Vec<&str> = self
            .actions
            .iter()
            .filter(|a| a.installed)
            .map(|a| a.what.as_str())
            .collect();
        if installed.is_empty() {
            format!("all {} prerequisites present", self.actions.len())
        } else {
            format!("installed: {}", installed.join(", "))
        }
    }

    fn record(&mut self, what: String, installed: bool) {
        let verb = if installed { "installed" } else { "present" };
        eprintln!("  {verb}: {what}");
        self.actions.push(Action { what, installed });
    }

    /// Where installers keep venvs and npm prefixes: `<target dir>/xtask/`.
    pub fn cache_dir(&self) -> PathBuf {
        cmd::target_dir(&self.root).join("xtask")
    }

    /// Ensures the rustup target is installed for the workspace's toolchain.
    pub fn rust_target(&mut self, target: &str) -> Result<()> {
        let what = format!("rust target {target}");
        let mut list = Command::new("rustup");
        list.current_dir(&self.root)
            .args(["target", "list", "--installed"]);
        match capture(&mut list)? {
            Some(out) if out.status.success() => {
                let listed = String::from_utf8_lossy(&out.stdout);
                if listed.lines().any(|line| line.trim() == target) {
                    self.record(what, false);
                } else {
                    run(Command::new("rustup")
                        .current_dir(&self.root)
                        .args(["target", "add", target])
                        .stdin(Stdio::null()))?;
                    self.record(what, true);
                }
                Ok(())
            }
            Some(out) => bail!(
                "`rustup target list --installed` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            None => {
                // No rustup: the toolchain came from elsewhere; look in its sysroot.
                let mut sysroot = Command::new("rustc");
                sysroot.current_dir(&self.root).args(["--print", "sysroot"]);
                let out = capture(&mut sysroot)?.context("neither rustup nor rustc found")?;
                let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if Path::new(&sysroot)
                    .join("lib/rustlib")
                    .join(target)
                    .is_dir()
                {
                    self.record(what, false);
                    Ok(())
                } else {
                    bail!(
                        "the Rust target {target} is missing from {sysroot} and rustup is not \
                         available to add it; install it with your toolchain's package manager"
                    )
                }
            }
        }
    }

    /// Ensures Debian packages are installed: runs `apt-get update` once per
    /// run, then `apt-get install -y` for the missing ones. Needs root.
    pub fn apt_packages(&mut self, packages: &[&str]) -> Result<()> {
        if packages.is_empty() {
            return Ok(());
        }
        let missing = missing_apt(packages)?;
        for package in packages.iter().filter(|p| !missing.iter().any(|m| m == *p)) {
            self.record(format!("Debian package {package}"), false);
        }
        if missing.is_empty() {
            return Ok(());
        }
        let list = missing.join(" ");
        if !self.is_root()? {
            bail!(
                "missing Debian packages: {list}\n\
                 xtask installs them only when running as root (as CI does); install them with:\n  \
                 sudo apt-get install -y {list}"
            );
        }
        if !self.apt_updated {
            run(apt_get().arg("update"))?;
            self.apt_updated = true;
        }
        run(apt_get().args(["install", "-y"]).args(&missing))?;
        let still_missing = missing_apt(&missing.iter().map(String::as_str).collect::<Vec<_>>())?;
        if !still_missing.is_empty() {
            bail!(
                "apt-get reported success but these packages are still not installed: {}",
                still_missing.join(" ")
            );
        }
        for package in missing {
            self.record(format!("Debian package {package}"), true);
        }
        Ok(())
    }

    /// Ensures the cargo tool `krate` at exactly `version` is installed, where
    /// the crate's binary has the crate's name. Returns the binary's path.
    pub fn cargo_tool(&mut self, krate: &str, version: &str) -> Result<PathBuf> {
        self.cargo_tool_bin(krate, version, krate)
    }

    /// Ensures `cargo install KRATE --version VERSION` has been done (binary
    /// named `bin`); reinstalls if another version is installed. `version` must
    /// be exact (`1.2.3`). Returns the binary's path under `$CARGO_HOME/bin`.
    pub fn cargo_tool_bin(&mut self, krate: &str, version: &str, bin: &str) -> Result<PathBuf> {
        let exact = version.split('.').count() == 3
            && version
                .split('.')
                .all(|part| part.chars().next().is_some_and(|c| c.is_ascii_digit()));
        if !exact {
            bail!("cargo tool {krate}: pin an exact version like 1.2.3, not `{version}`");
        }
        let what = format!("cargo tool {krate} {version}");
        let bin_path = cargo_home()?
            .join("bin")
            .join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
        let installed = cargo_installed_versions(&self.root)?;
        if installed.get(krate).map(String::as_str) == Some(version) && bin_path.is_file() {
            self.record(what, false);
            return Ok(bin_path);
        }
        eprintln!(
            "building {krate} {version} from source with cargo install (this can take minutes)"
        );
        run(cmd::cargo(&self.root)
            .args(["install", krate, "--version", version])
            .stdin(Stdio::null()))?;
        if !bin_path.is_file() {
            bail!(
                "cargo install {krate} succeeded but {} does not exist",
                bin_path.display()
            );
        }
        self.record(what, true);
        Ok(bin_path)
    }

    /// Ensures a Python venv `<cache>/venv-NAME` with the pip `requirements`
    /// (`name` or `name==version`, extras allowed). Returns the venv directory;
    /// its interpreter is `bin/python`. On Debian the venv module needs the
    /// `python3-venv` package: call [`Installer::apt_packages`] first.
    pub fn python_venv(&mut self, name: &str, requirements: &[&str]) -> Result<PathBuf> {
        let dir = self.cache_dir().join(format!("venv-{name}"));
        let python = dir.join("bin").join("python");
        let healthy = python.is_file()
            && capture(Command::new(&python).args(["-c", "import sys"]))?
                .is_some_and(|out| out.status.success());
        if healthy {
            self.record(format!("python venv {}", dir.display()), false);
        } else {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing broken venv {}", dir.display()))?;
            }
            std::fs::create_dir_all(self.cache_dir())?;
            run(Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .stdin(Stdio::null()))
            .context("creating the venv failed (on Debian, is python3-venv installed?)")?;
            self.record(format!("python venv {}", dir.display()), true);
        }

        let out = capture(Command::new(&python).args([
            "-m",
            "pip",
            "freeze",
            "--all",
            "--disable-pip-version-check",
        ]))?
        .context("the venv's python vanished")?;
        if !out.status.success() {
            bail!(
                "pip freeze failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let frozen: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_once("=="))
            .map(|(n, v)| (normalize_pip_name(n), v.trim().to_owned()))
            .collect();
        let (present, missing): (Vec<&str>, Vec<&str>) = requirements.iter().partition(|spec| {
            let (name, version) = parse_pip_spec(spec);
            match (frozen.get(&name), version) {
                (Some(have), Some(want)) => *have == want,
                (Some(_), None) => true,
                (None, _) => false,
            }
        });
        for spec in present {
            self.record(format!("pip {spec} (venv-{name})"), false);
        }
        if !missing.is_empty() {
            run(Command::new(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(&missing)
                .stdin(Stdio::null()))?;
            for spec in missing {
                self.record(format!("pip {spec} (venv-{name})"), true);
            }
        }
        Ok(dir)
    }

    /// Ensures npm packages (`name` or `name@version`, scoped names allowed)
    /// in the prefix `<cache>/npm-NAME`. Returns the prefix; binaries are in
    /// `node_modules/.bin`.
    pub fn npm_packages(&mut self, name: &str, packages: &[&str]) -> Result<PathBuf> {
        let dir = self.cache_dir().join(format!("npm-{name}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (present, missing): (Vec<&str>, Vec<&str>) =
            packages.iter().partition(|spec| npm_has(&dir, spec));
        for spec in present {
            self.record(format!("npm {spec} (npm-{name})"), false);
        }
        if !missing.is_empty() {
            run(Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .args(&missing)
                .stdin(Stdio::null()))?;
            for spec in missing {
                self.record(format!("npm {spec} (npm-{name})"), true);
            }
        }
        Ok(dir)
    }
}

/// `apt-get` set up for unattended use.
fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}

/// The subset of `packages` that dpkg does not report as installed.
fn missing_apt(packages: &[&str]) -> Result<Vec<String>> {
    let mut query = Command::new("dpkg-query");
    query
        .args(["-W", "-f=${Package} ${db:Status-Status}\\n"])
        .args(packages);
    // dpkg-query exits 1 when some package is unknown; the output still lists the known ones.
    let Some(out) = capture(&mut query)? else {
        bail!(
            "dpkg-query not found: automatic installs only support Debian/Ubuntu; \
             install these by hand: {}",
            packages.join(" ")
        );
    };
    let installed: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, status)| status.trim() == "installed")
        .map(|(package, _)| package.to_owned())
        .collect();
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(p.split(':').next().unwrap_or(p)))
        .map(|p| (*p).to_owned())
        .collect())
}

/// `$CARGO_HOME`, defaulting to `~/.cargo`.
fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Crate name to version, from `cargo install --list`.
fn cargo_installed_versions(root: &Path) -> Result<BTreeMap<String, String>> {
    let out = capture(cmd::cargo(root).args(["install", "--list"]))?.context("cargo not found")?;
    if !out.status.success() {
        bail!(
            "cargo install --list failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_cargo_install_list(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

/// Parses `name v1.2.3:` / `name v1.2.3 (source):` header lines.
fn parse_cargo_install_list(listing: &str) -> BTreeMap<String, String> {
    listing
        .lines()
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.trim_end_matches(':').strip_prefix('v')?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
}

/// PEP 503 name normalisation.
fn normalize_pip_name(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace(['_', '.'], "-")
}

/// `moto[s3]==5.0.1` → (`moto`, Some(`5.0.1`)); other specifiers → no exact version.
fn parse_pip_spec(spec: &str) -> (String, Option<String>) {
    let spec = spec.split(';').next().unwrap_or(spec).trim();
    let name_end = spec
        .find(|c: char| "[=<>!~ ".contains(c))
        .unwrap_or(spec.len());
    let version = spec
        .split_once("==")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && !v.contains(['*', ',']));
    (normalize_pip_name(&spec[..name_end]), version)
}

/// `@scope/pkg@1.2.3` → (`@scope/pkg`, Some(`1.2.3`)).
fn parse_npm_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once('@') {
        Some((name, version)) if !name.is_empty() => (name, Some(version)),
        _ => (spec, None),
    }
}

/// Whether `prefix/node_modules/NAME` is installed (at the exact version, if given).
fn npm_has(prefix: &Path, spec: &str) -> bool {
    let (name, version) = parse_npm_spec(spec);
    let manifest = prefix.join("node_modules").join(name).join("package.json");
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return false;
    };
    match version {
        None => true,
        Some(want) => json_string_field(&text, "version").as_deref() == Some(want),
    }
}

/// The first top-level-looking `"field": "value"` string in a JSON text.
fn json_string_field(text: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let after_key = &text[text.find(&key)? + key.len()..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let value = after_colon.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cargo_install_list() {
        let listing =
            "cargo-nextest v0.9.67:\n    cargo-nextest\nfoo v1.0.0 (/src/foo):\n    foo\n";
        let parsed = parse_cargo_install_list(listing);
        assert_eq!(parsed["cargo-nextest"], "0.9.67");
        assert_eq!(parsed["foo"], "1.0.0");
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn parses_pip_specs() {
        assert_eq!(
            parse_pip_spec("moto[s3]==5.0.1"),
            ("moto".into(), Some("5.0.1".into()))
        );
        assert_eq!(parse_pip_spec("tuspy"), ("tuspy".into(), None));
        assert_eq!(parse_pip_spec("Paramiko>=3"), ("paramiko".into(), None));
        assert_eq!(normalize_pip_name("Foo_Bar.baz"), "foo-bar-baz");
    }

    #[test]
    fn parses_npm_specs() {
        assert_eq!(
            parse_npm_spec("@scope/pkg@1.2.3"),
            ("@scope/pkg", Some("1.2.3"))
        );
        assert_eq!(parse_npm_spec("@scope/pkg"), ("@scope/pkg", None));
        assert_eq!(parse_npm_spec("pkg@2"), ("pkg", Some("2")));
        assert_eq!(
            json_string_field(r#"{ "name": "x", "version" : "1.2.3" }"#, "version").as_deref(),
            Some("1.2.3")
        );
    }
}
