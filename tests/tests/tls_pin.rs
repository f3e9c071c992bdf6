//! The device core's key pinning against the real backend's TLS listener:
//! the right pin gets in, a server with another key is refused (fail closed).

use std::sync::Arc;

use glassguard_core::protocol::PhoneNumber;
use glassguard_core::protocol::api::OtpPurpose;
use glassguard_core::{Config, Core, DbKey, Error};
use glassguard_server::clock::SystemClock;
use glassguard_server::config::Layer;

/// A backend terminating TLS with its own self-signed certificate.
async fn tls_backend(dir: &std::path::Path) -> glassguard_server::Server {
    let settings = Layer {
        data_dir: Some(dir.to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        tls_self_signed: Some(true),
        ..Layer::default()
    }
    .resolve()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    glassguard_server::launch_with_listener(settings, Arc::new(SystemClock), listener)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pinned_core_talks_to_its_server_and_refuses_one_with_another_key() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = tls_backend(a_dir.path()).await;
    let impostor = tls_backend(b_dir.path()).await;
    assert_eq!(server.scheme, "https");
    let pin = glassguard_core::tls::spki_sha256(server.certificate.as_ref().unwrap()).unwrap();
    let core_for = |addr: std::net::SocketAddr, dir: &std::path::Path| {
        Core::open(Config {
            data_dir: dir.to_path_buf(),
            db_key: DbKey::new([7; 32]),
            server_url: format!("https://{addr}"),
            pinned_server_key: Some(pin),
            insurer_public_key: None,
        })
        .unwrap()
    };
    let phone = PhoneNumber::parse("9876543210").unwrap();

    let device = tempfile::tempdir().unwrap();
    let sent = core_for(server.addr, device.path())
        .request_otp(phone.clone(), OtpPurpose::SignIn)
        .await
        .unwrap();
    assert!(sent.expires_in_seconds > 0);

    let device = tempfile::tempdir().unwrap();
    let err = core_for(impostor.addr, device.path())
        .request_otp(phone, OtpPurpose::SignIn)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PinMismatch), "{err:?}");
}
