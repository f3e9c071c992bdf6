//! Locating the workspace and running commands visibly.
//!
//! Every command is printed (shell-quoted, with the environment it changes)
//! before it runs, so a CI log can be replayed by copy and paste.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// The workspace root: the parent of the xtask crate's directory.
///
/// Prefers the `CARGO_MANIFEST_DIR` that `cargo run` sets at run time (right
/// even if the clone moved since xtask was built), then the compile-time one.
pub fn workspace_root() -> Result<PathBuf> {
    let runtime = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for xtask_dir in runtime.into_iter().chain([compiled]) {
        if xtask_dir.file_name() == Some(OsStr::new("xtask"))
            && xtask_dir.join("Cargo.toml").is_file()
            && let Some(root) = xtask_dir.parent()
            && root.join("Cargo.toml").is_file()
        {
            return Ok(root.to_path_buf());
        }
    }
    bail!(
        "cannot find the workspace root (expected xtask/ directly under it); run via `cargo xtask`"
    )
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// True when running under CI (`CI` set to anything but empty, `0` or `false`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The cargo that runs xtask (`$CARGO`), so nested builds use the same toolchain.
fn cargo_program() -> OsString {
    std::env::var_os("CARGO")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cargo".into())
}

/// A `cargo` command running in the workspace root.
pub fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(root);
    cmd
}

/// Prints `$ <command>` and runs it with inherited stdio; fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Prints `$ <command>` and runs it with stdout and stderr captured and no
/// stdin. `Ok(None)` if the program is not installed; the exit status is the
/// caller's to judge.
pub fn capture(cmd: &mut Command) -> Result<Option<Output>> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    capture_quietly(cmd, &shown)
}

/// Like [`capture`] but prints nothing; `shown` names the command in errors.
pub fn capture_quietly(cmd: &mut Command, shown: &str) -> Result<Option<Output>> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("could not start `{shown}`")),
    }
}

/// The command as a shell line: `env -u A B=1 cargo test ...`.
pub fn display(cmd: &Command) -> String {
    let mut parts = Vec::new();
    let envs: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    let removed: Vec<&OsStr> = envs
        .iter()
        .filter_map(|(k, v)| v.is_none().then_some(*k))
        .collect();
    if !removed.is_empty() {
        parts.push("env".to_owned());
        for key in removed {
            parts.push("-u".to_owned());
            parts.push(quote(key));
        }
    }
    for (key, value) in &envs {
        if let Some(value) = value {
            let value = redact_url(&value.to_string_lossy());
            parts.push(format!("{}={}", quote(key), quote(OsStr::new(&value))));
        }
    }
    if cmd.get_program() == cargo_program() {
        parts.push("cargo".to_owned());
    } else {
        parts.push(quote(cmd.get_program()));
    }
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

/// Shell-quotes one word if it needs it.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Hides the password in `scheme://user:password@host/...`.
pub fn redact_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact_url("127.0.0.1:8080"), "127.0.0.1:8080");
    }

    #[test]
    fn displays_env_and_quotes() {
        let mut cmd = Command::new("echo");
        cmd.env("A", "1")
            .env_remove("B")
            .args(["x y", "it's", "plain"]);
        assert_eq!(display(&cmd), r"env -u B A=1 echo 'x y' 'it'\''s' plain");
    }
}
