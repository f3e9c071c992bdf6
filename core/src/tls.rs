//! Server key pinning: a rustls certificate verifier that trusts exactly one
//! server key.
//!
//! The pin is the SHA-256 of the server certificate's SubjectPublicKeyInfo
//! (the DER `SEQUENCE`, as `openssl x509 -pubkey | openssl pkey -pubin
//! -outform der | sha256sum` prints it). With a pin:
//!
//! - the end-entity certificate's key must hash to the pin, or the handshake
//!   fails (fail closed: there is no fallback to the CA roots);
//! - the chain need not lead to a public CA and the name is not checked: the
//!   key *is* the identity, so a self-hosted backend with a self-signed
//!   certificate works, and a mis-issued CA certificate for our name does not;
//! - the handshake signature is still verified against that key, so holding
//!   the certificate without its private key gets an attacker nothing;
//! - only TLS 1.3 is offered.
//!
//! reqwest 0.13 has no hook for a custom verifier, so the client is built
//! with `ClientBuilder::tls_backend_preconfigured` (the successor of
//! `use_preconfigured_tls`) and a [`rustls::ClientConfig`] made here. That
//! call relies on reqwest and this crate sharing one `rustls` version (0.23);
//! a mismatch would show as reqwest refusing the "unknown" backend at build
//! time, which the tests catch.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The error inside rustls' error when the key does not match, so the client
/// can tell a pin failure from other TLS failures.
#[derive(Debug, thiserror::Error)]
#[error("server key does not match the pinned key")]
pub(crate) struct PinMismatch;

/// Trusts exactly the server key whose SPKI hashes to `pin`.
#[derive(Debug)]
pub(crate) struct PinnedKeyVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32]> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| Error::Config(format!("not a DER certificate: {e}")))?;
    Ok(Sha256::digest(cert.subject_public_key_info().as_ref()).into())
}

impl ServerCertVerifier for PinnedKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hash = spki_sha256(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if hash == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::warn!("server key does not match the pinned key");
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS 1.3-only client config that trusts only the pinned key.
pub(crate) fn pinned_config(pin: [u8; 32]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedKeyVerifier {
        pin,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Config(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// Whether `err` (from reqwest) was caused by a pin mismatch.
pub(crate) fn is_pin_mismatch(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<PinMismatch>() {
            return true;
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
            && other.0.is::<PinMismatch>()
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_pin_mismatch(inner)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 and its key (DER).
    pub(crate) fn self_signed() -> (Vec<u8>, Vec<u8>) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        (cert.cert.der().to_vec(), cert.signing_key.serialize_der())
    }

    #[test]
    fn only_the_pinned_key_verifies() {
        let (cert, _) = self_signed();
        let (other, _) = self_signed();
        let pin = spki_sha256(&cert).unwrap();
        let verifier = PinnedKeyVerifier {
            pin,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let now = UnixTime::now();
        assert!(
            verifier
                .verify_server_cert(&CertificateDer::from(cert), &[], &name, &[], now)
                .is_ok()
        );
        let err = verifier
            .verify_server_cert(&CertificateDer::from(other), &[], &name, &[], now)
            .unwrap_err();
        assert!(is_pin_mismatch(&err), "{err:?}");
        let err = verifier
            .verify_server_cert(&CertificateDer::from(vec![1, 2, 3]), &[], &name, &[], now)
            .unwrap_err();
        assert!(!is_pin_mismatch(&err));
    }
}
