//! Boots the real daemon on 127.0.0.1:0 with a temporary database.

use std::net::SocketAddr;
use std::path::Path;

use ipnsync::config::{Config, SecretEnv};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Daemon {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub db: ipnsync::store::Database,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ipnsync::RunError>>>,
    pub client: reqwest::Client,
}

/// Parses a TOML config and points its database into `dir` (or, in a
/// PostgreSQL test binary, at a fresh PostgreSQL database: `backend`).
pub fn config(toml: &str, dir: &Path) -> Config {
    let mut c = Config::parse(toml, &SecretEnv::default()).expect("test config parses");
    c.database = super::backend::fresh_database(dir);
    c
}

impl Daemon {
    pub async fn start(config: Config) -> Daemon {
        Daemon::start_with(config, ipnsync::RunOptions::default()).await
    }

    pub async fn start_with(config: Config, mut options: ipnsync::RunOptions) -> Daemon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        options.admin_listener = Some(admin_listener);
        let db = config.database.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(ipnsync::run_with(
            config,
            listener,
            async {
                let _ = stopped.await;
            },
            options,
        ));
        Daemon {
            addr,
            admin,
            db,
            stop: Some(stop),
            handle: Some(handle),
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs a path on the admin listener: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("http://{}{}", self.admin, path))
            .send()
            .await
            .expect("admin request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// POSTs a form body; returns the status and the body text.
    pub async fn post_form(&self, path: &str, body: impl Into<Vec<u8>>) -> (u16, String) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.into())
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Stops the daemon gracefully and waits for it.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.handle.take().unwrap().await.unwrap().unwrap();
    }

    /// The SQLite file (tests about the file itself run on SQLite only).
    pub fn db_path(&self) -> &Path {
        self.db.sqlite_path().expect("a SQLite test")
    }

    /// A connection for the test's own checks (either engine).
    pub fn reader(&self) -> ipnsync::store::Connection {
        super::backend::connect(&self.db)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.reader().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Re-signs a form body with the documentation key after editing fields.
pub fn resign(body: &[u8], edit: impl FnOnce(&mut Vec<(String, String)>)) -> Vec<u8> {
    use ipnsync::providers::form::{self, Form};
    use ipnsync::providers::lyra::{form_signature, SignAlgo};
    let parsed = form::parse(body).unwrap();
    let mut pairs: Vec<(String, String)> = parsed
        .iter()
        .filter(|(n, _)| *n != "signature")
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    edit(&mut pairs);
    let unsigned = Form::from_pairs(pairs.clone());
    let sig = form_signature(&unsigned, "1122334455667788", SignAlgo::HmacSha256);
    pairs.push(("signature".into(), sig));
    Form::from_pairs(pairs).encode().into_bytes()
}

pub fn set(pairs: &mut [(String, String)], name: &str, value: &str) {
    let slot = pairs
        .iter_mut()
        .find(|(n, _)| n == name)
        .expect("field exists");
    slot.1 = value.to_owned();
}
