//! A scratch PostgreSQL database for one benchmark run (`loadgen` and
//! `drain` with `--postgres URL`): created fresh on the server the URL
//! names (a user allowed to create databases, like `IPNSYNC_TEST_PG`),
//! dropped when the value is dropped (`DROP DATABASE … WITH (FORCE)`).
//!
//! The blocking `postgres` client starts a runtime of its own, so every
//! call here runs on a thread of its own (the examples run on tokio).

pub struct ScratchPg {
    admin: postgres::Config,
    pub name: String,
    /// `postgres://user@host:port/name`, without the password.
    pub url: String,
    password: Option<String>,
}

impl ScratchPg {
    /// Creates `ipnsync_bench_<label>_<pid>_<nanos>` on `server`.
    pub fn create(server: &str, label: &str) -> ScratchPg {
        let admin: postgres::Config = server
            .parse()
            .unwrap_or_else(|e| panic!("--postgres: not a postgres:// URL: {e}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("ipnsync_bench_{label}_{}_{nanos}", std::process::id());
        let user = admin.get_user().unwrap_or("postgres").to_owned();
        let host = match admin.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = admin.get_ports().first().copied().unwrap_or(5432);
        let password = admin
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let scratch = ScratchPg {
            url: format!("postgres://{user}@{host}:{port}/{name}"),
            admin,
            name,
            password,
        };
        let sql = format!("CREATE DATABASE {}", scratch.name);
        scratch.on_server(move |c| c.batch_execute(&sql).expect("CREATE DATABASE"));
        scratch
    }

    /// The daemon's configuration lines for this database.
    pub fn config_lines(&self) -> String {
        let mut s = format!("database = {:?}\n", self.url);
        if let Some(p) = &self.password {
            s.push_str(&format!("database_password = {p:?}\n"));
        }
        s
    }

    /// Runs `f` with a client connected to the scratch database.
    pub fn with_client<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
    ) -> T {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        run_connected(config, f)
    }

    /// Runs `f` with a client connected to the server's own database.
    fn on_server<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
    ) -> T {
        run_connected(self.admin.clone(), f)
    }
}

fn run_connected<T: Send + 'static>(
    config: postgres::Config,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let mut client = config
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}"));
        f(&mut client)
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let name = self.name.clone();
        let config = self.admin.clone();
        let dropped = std::thread::spawn(move || {
            config
                .connect(postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&sql))
        })
        .join();
        match dropped {
            Ok(Ok(())) => eprintln!("dropped database {name}"),
            Ok(Err(e)) => eprintln!("could not drop database {name}: {e} (drop it by hand)"),
            Err(_) => eprintln!("could not drop database {name} (drop it by hand)"),
        }
    }
}
