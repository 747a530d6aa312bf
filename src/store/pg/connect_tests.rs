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
        format!("postgres://autoscaler:{PASSWORD}@db.example/state?sslmode=require"),
        format!("postgres://autoscaler:{PASSWORD}@db.example/state?{PASSWORD}=1"),
        format!("not a url {PASSWORD}"),
    ] {
        let err = refused(&url);
        assert!(matches!(err, PgError::BadUrl(_)), "{url}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains("db.example"), "{text}");
    }
    assert!(
        refused("postgres://autoscaler@db.example/state?sslmode=require")
            .to_string()
            .contains("TLS")
    );
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
