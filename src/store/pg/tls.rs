//! TLS to the state database. A URL with `sslmode=require` is connected over TLS and the
//! server's certificate is verified, name included: against the system's trusted roots,
//! plus the CAs of `state.database_ca` (a managed database's own CA, say). That is
//! libpq's `verify-full`, stricter than libpq's `require` (which checks nothing): a
//! replica must not hand its alarms to whoever answers on the database's address.
//! Without `sslmode=require` the connection is plain TCP, as libpq's `prefer` with a
//! server that offers no TLS; `check` refuses `state.database_ca` then, rather than
//! ignore it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::PgError;

/// The TLS client of the pool's connections: the platform's verifier with the extra
/// roots of `ca_file`, if any.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, PgError> {
    let extra = match ca_file {
        Some(path) => load_ca(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|err| PgError::Tls(format!("cannot set up certificate checks: {err}")))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| PgError::Tls(err.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The certificates of a PEM file (`state.database_ca`); at least one.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, PgError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| PgError::Tls(format!("state.database_ca {shown}: {err}")))?;
    if certs.is_empty() {
        return Err(PgError::Tls(format!(
            "state.database_ca {shown} holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// What a failed TLS handshake to the database says, without the host name rustls puts
/// in some of its texts (an error is logged and printed; the URL's parts are not shown):
/// `None` if `err` is not a TLS failure.
pub(super) fn handshake_failure(err: &tokio_postgres::Error) -> Option<String> {
    use rustls::CertificateError as Cert;
    if !err
        .to_string()
        .starts_with("error performing TLS handshake")
    {
        return None;
    }
    let mut source = std::error::Error::source(err);
    let mut tls = None;
    while let Some(cause) = source {
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(found) = cause.downcast_ref::<rustls::Error>().or(inner) {
            tls = Some(found);
            break;
        }
        source = cause.source();
    }
    let why = match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "the server's certificate is not for the host in state.database_url"
            }
            Cert::UnknownIssuer => {
                "the server's certificate is not issued by a CA this replica trusts (the \
                 system's, or those in state.database_ca)"
            }
            Cert::Expired | Cert::ExpiredContext { .. } => "the server's certificate has expired",
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet"
            }
            _ => "the server's certificate is refused",
        }
        .to_owned(),
        Some(other) => other.to_string(),
        None => "the TLS handshake failed".to_owned(),
    };
    Some(format!("TLS to the state database: {why}"))
}
