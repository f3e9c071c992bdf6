//! No plaintext phone number, name or email in the SQLite file (with its
//! WAL) or in a PostgreSQL dump after the whole story.

use crate::harness::Db;
use crate::story::{self, CUSTOMER, CUSTOMER_EMAIL, CUSTOMER_NAME, OWNER, OWNER_NAME, STAFF};

fn needles() -> Vec<String> {
    let mut n = vec![
        CUSTOMER_NAME.to_string(),
        OWNER_NAME.to_string(),
        CUSTOMER_EMAIL.to_string(),
        "Sunil Kumar".to_string(),
    ];
    for phone in [CUSTOMER, OWNER, STAFF] {
        n.push(phone.to_string());
        n.push(phone.trim_start_matches("+91").to_string());
    }
    // The shop's bank account and address are PII too.
    n.push("50100234567891".into());
    n.push("Sector 17 Market".into());
    n
}

fn find_all(haystack: &[u8], needles: &[String]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| {
            let variants = [
                n.as_bytes().to_vec(),
                n.encode_utf16()
                    .flat_map(|u| u.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ];
            variants
                .iter()
                .any(|v| haystack.windows(v.len()).any(|w| w == v.as_slice()))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn no_plaintext_pii_in_the_sqlite_file() {
    let out = story::run_story(Db::Sqlite).await.unwrap();
    let db = out.app.db_file();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    assert!(
        bytes.len() > 10_000,
        "the database file was read ({} bytes)",
        bytes.len()
    );
    // The test must be able to fail: the certificate number is stored in the clear and is found.
    let cert = out
        .app
        .get(&format!("/v1/policies/{}", out.policy_id), Some(&out.admin))
        .await
        .1["certificate_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(find_all(&bytes, std::slice::from_ref(&cert)), vec![cert]);
    let found = find_all(&bytes, &needles());
    assert!(
        found.is_empty(),
        "plaintext PII in {}: {found:?}",
        db.display()
    );
}

#[tokio::test]
async fn no_plaintext_pii_in_a_postgres_dump() {
    let Some(out) = story::run_story(Db::Postgres).await else {
        return;
    };
    let db = out.app.pg_db.clone().unwrap();
    let admin = std::env::var("GLASSGUARD_TEST_POSTGRES_URL").unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    let dump = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(format!("{base}/{db}"))
        .output()
        .expect("pg_dump is installed with PostgreSQL");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = dump.stdout;
    assert!(text.len() > 10_000);
    // Ciphertexts are dumped as hex; decode every \x run as well, so encoded plaintext would be seen too.
    let mut decoded = Vec::new();
    for part in String::from_utf8_lossy(&text).split("\\\\x") {
        let hex: String = part.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        if let Ok(b) = hex::decode(&hex[..hex.len() / 2 * 2]) {
            decoded.extend(b);
        }
    }
    let mut all = text.clone();
    all.extend(decoded);
    let found = find_all(&all, &needles());
    assert!(
        found.is_empty(),
        "plaintext PII in the dump of {db}: {found:?}"
    );
    assert!(
        find_all(&all, &["Galaxy A55".to_string()]).len() == 1,
        "the dump holds the story's (non-PII) data"
    );
}
