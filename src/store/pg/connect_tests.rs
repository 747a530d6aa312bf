//! The pool: URLs refused without showing them, durable commits required.

use secrecy::SecretString;

use super::PgError;
use super::connect::{PoolOptions, check_synchronous_commit, pool};
use super::testdb::{TestDb, admin_client};

const PASSWORD: &str = "s3cr3t-pa55";

fn refused(url: &str) -> PgError {
    pool(&SecretString::from(url.to_owned()), &PoolOptions::default()).unwrap_err()
}

#[test]
fn a_url_that_cannot_be_used_is_refused_without_showing_it() {
    for url in [
        format!("postgres://autoscaler:{PASSWORD}@db.example:notaport/state"),
        format!("postgres://autoscaler:{PASSWORD}@db.example/state?{PASSWORD}=1"),
        format!("not a url {PASSWORD}"),
    ] {
        let err = refused(&url);
        assert!(matches!(err, PgError::BadUrl(_)), "{url}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains("db.example"), "{text}");
    }
}

/// libpq's verifying modes are TLS with the certificate and name verified; its modes
/// that fall back to plain TCP are refused, never taken as plain TCP silently.
#[test]
fn tls_modes_are_taken_as_libpq_means_them_or_refused() {
    use tokio_postgres::config::SslMode;
    let mode = |url: &str| super::connect::check_url(&SecretString::from(url.to_owned()));
    for url in [
        "postgres://autoscaler@db.example/state?sslmode=verify-full",
        "postgres://autoscaler@db.example/state?application_name=x&sslmode=verify-ca&connect_timeout=3",
        "postgres://autoscaler@db.example/state?sslmode=require",
        "host=db.example user=autoscaler sslmode=verify-full",
    ] {
        assert_eq!(mode(url).unwrap().get_ssl_mode(), SslMode::Require, "{url}");
    }
    // A password that happens to read like a parameter is the password's.
    let odd = mode("postgres://autoscaler:sslmode=prefer@db.example/state").unwrap();
    assert_eq!(odd.get_password(), Some(&b"sslmode=prefer"[..]));
    let plain = mode("postgres://autoscaler@db.example/state?sslmode=disable").unwrap();
    assert_eq!(plain.get_ssl_mode(), SslMode::Disable);
    for url in [
        format!("postgres://autoscaler:{PASSWORD}@db.example/state?sslmode=prefer"),
        format!("postgres://autoscaler:{PASSWORD}@db.example/state?sslmode=allow"),
    ] {
        let err = refused(&url);
        assert!(err.to_string().contains("sslmode=require"), "{err}");
        assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
    }
}

/// TLS: a CA file that cannot be used is refused when the pool is built, naming the file;
/// a good one builds the pool (the handshake itself is tested end to end in
/// tests/replicas.rs, through a TLS proxy in front of the test server).
#[test]
fn a_ca_file_for_tls_is_read_when_the_pool_is_built() {
    let url =
        SecretString::from("postgres://autoscaler@db.example/state?sslmode=require".to_owned());
    let with = |ca: &str| PoolOptions {
        ca_file: Some(ca.into()),
        ..PoolOptions::default()
    };
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    pool(&url, &with(&format!("{fixtures}/ca.pem"))).unwrap();
    for (ca, says) in [
        ("/nonexistent/ca.pem".to_owned(), "/nonexistent/ca.pem"),
        (format!("{fixtures}/README.md"), "holds no PEM certificate"),
    ] {
        let err = pool(&url, &with(&ca)).unwrap_err();
        assert!(matches!(err, PgError::Tls(_)), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
    }
    // Plain TCP needs no CA: the file is not read (`check` refuses the pair).
    let plain = SecretString::from("postgres://autoscaler@db.example/state".to_owned());
    pool(&plain, &with("/nonexistent/ca.pem")).unwrap();
}

/// A database that cannot be reached is `Unavailable` (a 503 later), and says so without
/// the URL.
#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_the_error_shows_no_secret() {
    // Port 1 on loopback: refused at once.
    let url = SecretString::from(format!(
        "postgres://autoscaler:{PASSWORD}@127.0.0.1:1/state"
    ));
    let pool = pool(&url, &PoolOptions::default()).unwrap();

    let err = PgError::from(pool.get().await.unwrap_err());

    assert!(err.is_transient(), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.contains("127.0.0.1:1"), "{text}");
}

#[tokio::test]
async fn connections_commit_durably_and_one_that_would_not_is_refused() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    assert_eq!(check_synchronous_commit(&client).await.unwrap(), "on");
    drop(client);

    // An operator's `ALTER DATABASE … SET synchronous_commit = off` reaches every new
    // connection: the pool hands none out.
    admin_client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET synchronous_commit = off",
            db.name()
        ))
        .await
        .unwrap();
    let fresh = db.pool();
    let err = PgError::from(fresh.get().await.unwrap_err());
    assert_eq!(err, PgError::NotDurable("off".into()));
    assert!(
        err.to_string().contains("synchronous_commit = off"),
        "{err}"
    );
}
