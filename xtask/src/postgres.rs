//! Finding (and if need be starting) the PostgreSQL server the conformance
//! suite's PostgreSQL half runs against.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{capture_quietly, redact_url, run};
use crate::install::Installer;

/// The variable the test harness reads; unset means "skip PostgreSQL".
pub const URL_VAR: &str = "GLASSGUARD_TEST_POSTGRES_URL";

/// Used when `GLASSGUARD_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the Debian `postgresql-common` packaging keeps its clusters.
const DEBIAN_CLUSTERS: &str = "/etc/postgresql";

/// The outcome of [`ensure`].
#[derive(Debug)]
pub enum Postgres {
    /// Reachable: pass this URL to the tests.
    Reachable(String),
    /// Not reachable at `host:port`; the PostgreSQL tests will skip.
    Unreachable(String),
}

/// Tests a TCP connection to the configured (or default) server; if that
/// fails, the server is local and we are root, tries to start the Debian
/// cluster(s) and tests again. Under CI an unreachable server is an error.
pub fn ensure(installer: &mut Installer, ci: bool) -> Result<Postgres> {
    let configured = std::env::var(URL_VAR).ok().filter(|u| !u.trim().is_empty());
    let url = configured.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    let (host, port) = host_port(&url).with_context(|| {
        format!(
            "cannot read host and port from {URL_VAR}={}",
            redact_url(&url)
        )
    })?;
    let target = format!("{host}:{port}");
    let source = if configured.is_some() {
        URL_VAR
    } else {
        "default"
    };
    eprintln!("PostgreSQL: {} ({source})", redact_url(&url));

    let mut reachable = probe(&host, port);
    if !reachable && is_loopback(&host) && installer.is_root()? {
        reachable = start_debian_clusters(&host, port)?;
    }
    if reachable {
        eprintln!("PostgreSQL: {target} accepts TCP connections");
        check_login(&url);
        return Ok(Postgres::Reachable(url));
    }
    if ci {
        bail!(
            "PostgreSQL is not reachable at {target} and CI is set: the PostgreSQL half of the \
             conformance suite must run in CI. Install and start PostgreSQL on the runner \
             (Debian: apt-get install postgresql, then pg_ctlcluster <version> main start), or \
             point {URL_VAR} at a reachable server."
        );
    }
    eprintln!("{}", banner(&target));
    Ok(Postgres::Unreachable(target))
}

/// The loud warning printed when PostgreSQL tests will not run.
pub fn banner(target: &str) -> String {
    let rule = "!".repeat(78);
    let lines = [
        format!("WARNING: PostgreSQL is NOT reachable at {target}."),
        "The PostgreSQL half of the conformance suite will NOT run;".to_owned(),
        "only SQLite is being tested. A green run here proves nothing about PostgreSQL.".to_owned(),
        "To fix: start PostgreSQL (Debian: pg_ctlcluster <version> main start) or set".to_owned(),
        format!("{URL_VAR}=postgres://USER@HOST:PORT/DB (the harness creates its own databases)."),
    ];
    let mut out = format!("\n{rule}\n");
    for line in lines {
        out.push_str(&format!("!!  {line}\n"));
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

/// Starts each Debian cluster version (newest first) until the server answers.
fn start_debian_clusters(host: &str, port: u16) -> Result<bool> {
    let Ok(entries) = std::fs::read_dir(DEBIAN_CLUSTERS) else {
        eprintln!("PostgreSQL: {DEBIAN_CLUSTERS} does not exist; is PostgreSQL installed?");
        return Ok(false);
    };
    let mut versions: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("main").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    for version in versions.iter().rev() {
        eprintln!("PostgreSQL: not reachable; starting cluster {version}/main");
        let started = run(Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", version, "main", "start"])
            .stdin(Stdio::null()));
        let patience = match started {
            Ok(()) => Duration::from_secs(15),
            Err(err) => {
                eprintln!("PostgreSQL: {err:#}");
                Duration::ZERO
            }
        };
        if wait_until_reachable(host, port, patience) {
            return Ok(true);
        }
    }
    if versions.is_empty() {
        eprintln!("PostgreSQL: no clusters under {DEBIAN_CLUSTERS}");
    }
    Ok(false)
}

fn wait_until_reachable(host: &str, port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if probe(host, port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether any address of `host:port` accepts a TCP connection.
fn probe(host: &str, port: u16) -> bool {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(err) => {
            eprintln!("PostgreSQL: cannot resolve {host}: {err}");
            return false;
        }
    };
    addrs
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok())
}

/// If `psql` is installed, checks that the URL can also log in, and warns
/// (with the likely cause) if it cannot: a TCP probe does not prove that.
fn check_login(url: &str) {
    let shown = format!("psql -w -X -A -t -q -d {} -c 'select 1'", redact_url(url));
    let mut psql = Command::new("psql");
    psql.args(["-w", "-X", "-A", "-t", "-q", "-d", url, "-c", "select 1"]);
    eprintln!("$ {shown}");
    match capture_quietly(&mut psql, &shown) {
        Ok(Some(out)) if out.status.success() => eprintln!("PostgreSQL: login ok"),
        Ok(Some(out)) => eprintln!(
            "WARNING: PostgreSQL accepts connections but login failed; the PostgreSQL tests \
             will likely fail. Check pg_hba.conf (the default URL needs `trust` for \
             127.0.0.1) or set {URL_VAR} with credentials.\n  psql: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(None) => eprintln!("PostgreSQL: psql not installed; login not checked"),
        Err(err) => eprintln!("PostgreSQL: {err:#}"),
    }
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1") || host.starts_with("127.")
}

/// Host and port of `postgres://[user[:pw]@]host[:port][/db][?...]`.
fn host_port(url: &str) -> Result<(String, u16)> {
    let (_, rest) = url.split_once("://").context("not a URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // libpq allows `host1:port1,host2:port2`; probe the first.
    let first = hosts.split(',').next().unwrap_or_default();
    let (host, port) = if let Some(bracketed) = first.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').context("unclosed [ in host")?;
        (host, after.strip_prefix(':'))
    } else {
        match first.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (first, None),
        }
    };
    let port = match port {
        Some(port) if !port.is_empty() => port.parse().context("bad port")?,
        _ => 5432,
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Ok((host.to_owned(), port))
}

/// Sets or removes the test URL on a test command.
pub fn apply(cmd: &mut Command, status: &Postgres) {
    match status {
        Postgres::Reachable(url) => cmd.env(URL_VAR, url),
        Postgres::Unreachable(_) => cmd.env_remove(URL_VAR),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let hp = |u| host_port(u).unwrap();
        assert_eq!(hp(DEFAULT_URL), ("127.0.0.1".into(), 5432));
        assert_eq!(
            hp("postgresql://u:p@db.example:6543/x?sslmode=disable"),
            ("db.example".into(), 6543)
        );
        assert_eq!(hp("postgres://[::1]:5433/x"), ("::1".into(), 5433));
        assert_eq!(hp("postgres://localhost"), ("localhost".into(), 5432));
        assert_eq!(hp("postgres:///db"), ("localhost".into(), 5432));
        assert!(host_port("127.0.0.1:5432").is_err());
    }
}
