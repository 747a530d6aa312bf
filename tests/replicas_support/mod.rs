//! Several daemons on one PostgreSQL database: a database of the test's own, and a TCP
//! proxy the test can cut.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::NoTls;

const ADMIN_URL_ENV: &str = "AUTOSCALER_TEST_PG_URL";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| ADMIN_URL.to_owned())
}

/// An empty database for one test (the replicas migrate it), dropped with this value.
pub struct Db {
    pub name: String,
}

impl Db {
    pub async fn new() -> Db {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "autoscaler_it_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&admin_url()).await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        Db { name }
    }

    /// The URL of this database, as `state.database_url`.
    pub fn url(&self) -> String {
        self.url_via(None)
    }

    /// The URL through a proxy on `port`.
    pub fn url_via(&self, port: Option<u16>) -> String {
        let mut config: tokio_postgres::Config = admin_url().parse().unwrap();
        config.dbname(&self.name);
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = port.unwrap_or_else(|| config.get_ports().first().copied().unwrap_or(5432));
        let user = config.get_user().unwrap_or("postgres").to_owned();
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }

    /// Rows of `sql` on this database.
    pub async fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        connect(&self.url()).await.query(sql, &[]).await.unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: a test's runtime may be the one dropping this.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let admin = connect(&admin_url()).await;
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                });
        })
        .join();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A TCP proxy to PostgreSQL that the test can cut (every connection closed, new ones
/// refused) and restore.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    generation: Arc<AtomicU32>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(AtomicU32::new(0));
        let (accept_open, accept_generation) = (Arc::clone(&open), Arc::clone(&generation));
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !accept_open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let generation = Arc::clone(&accept_generation);
                let born = generation.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    let cut = async {
                        while generation.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut => {}
                    }
                });
            }
        });
        Proxy {
            port,
            open,
            generation,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// PostgreSQL behind TLS: answers a client's `SSLRequest` with `S`, terminates TLS with
/// the fixture certificate for `localhost` (tests/fixtures/tls), and passes the plain
/// protocol on to the test server. A client that does not ask for TLS is dropped, so a
/// connection that works went through TLS.
pub struct TlsProxy {
    pub port: u16,
}

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl TlsProxy {
    pub async fn start(target: String) -> TlsProxy {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
        let certs = CertificateDer::pem_file_iter(format!("{fixtures}/server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(format!("{fixtures}/server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (acceptor, target) = (acceptor.clone(), target.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 8];
                    if client.read_exact(&mut first).await.is_err() || first != SSL_REQUEST {
                        return;
                    }
                    if client.write_all(b"S").await.is_err() {
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        TlsProxy { port }
    }
}
