//! TLS for client and peer connections (rustls with the ring provider).
//!
//! Client ports: `tls_port` / `zk_tls_port` serve the native / ZooKeeper protocol over
//! TLS beside the plain ports; `tls_required` makes the plain ports speak TLS too (a
//! client that does not start a TLS handshake is closed). The server presents
//! `tls_cert` + `tls_key`; with `tls_ca` it asks clients for a certificate signed by
//! that CA (optional for clients): a verified client certificate authenticates the
//! connection as the `x509` scheme with the certificate's subject DN as id, written as
//! ZooKeeper's `X509AuthenticationProvider` does (Java's `X500Principal.getName()`, RFC
//! 2253: RDNs last-first, `,` between them).
//!
//! Peers (`peer_tls = true`): every member presents its certificate both when it dials
//! and when it accepts, and verifies the other's against `tls_ca`; a member whose
//! certificate another CA signed cannot connect, so it cannot join.

use crate::error::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("cannot read certificates {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Config(format!("cannot read private key {}: {e}", path.display())))
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca)? {
        roots
            .add(c)
            .map_err(|e| Error::Config(format!("bad CA certificate {}: {e}", ca.display())))?;
    }
    Ok(Arc::new(roots))
}

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("TLS configuration: {e}"))
}

/// The acceptor of a listening side. With `ca`, clients are asked for a certificate
/// that CA signed: `client_cert_required` refuses a client without one (peers).
pub fn acceptor(
    cert: &Path,
    key_path: &Path,
    ca: Option<&Path>,
    client_cert_required: bool,
) -> Result<TlsAcceptor> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = match ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let verifier = if client_cert_required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(tls_err)?)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs(cert)?, key(key_path)?)
        .map_err(tls_err)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector of a dialing side: trusts servers `ca` signed, presents `client` (a
/// certificate and key file) when given.
pub fn connector(ca: &Path, client: Option<(&Path, &Path)>) -> Result<TlsConnector> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots(ca)?);
    let config = match client {
        Some((cert, key_path)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_path)?)
            .map_err(tls_err)?,
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name a dialer checks the server's certificate against: an IP address or a DNS
/// name.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|e| Error::Config(format!("`{host}` is not a valid TLS server name: {e}")))
}

/// The subject DN of a DER certificate as ZooKeeper's x509 provider writes it (RFC 2253:
/// last RDN first, `,` between RDNs, `+` inside one, common attributes by short name).
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type();
                    let name = match oid.to_id_string().as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.6" => "C".to_string(),
                        "2.5.4.7" => "L".to_string(),
                        "2.5.4.8" => "ST".to_string(),
                        "2.5.4.10" => "O".to_string(),
                        "2.5.4.11" => "OU".to_string(),
                        "2.5.4.9" => "STREET".to_string(),
                        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                        // Java writes other attributes by OID too.
                        other => other.to_string(),
                    };
                    let value = atv.as_str().map(escape).unwrap_or_default();
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// RFC 2253 escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == v.chars().count() - 1 && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A byte stream a connection runs on: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The subject DN of the verified client certificate of a server-side TLS stream.
pub fn peer_dn<S>(stream: &tokio_rustls::server::TlsStream<S>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()?
        .first()
        .and_then(|c| subject_dn(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_dn_is_written_last_rdn_first() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Zab, Inc");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("CN=alice,O=Zab\\, Inc,C=DE")
        );
        assert_eq!(subject_dn(b"not a certificate"), None);
    }
}
