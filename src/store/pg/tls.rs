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
