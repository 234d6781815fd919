//! A real headless Chromium for the browser tests: starts Debian's
//! `chromedriver` on a free port and opens a WebDriver session (fantoccini)
//! with a fresh profile.
//!
//! `IPNSYNC_CHROMIUM` / `IPNSYNC_CHROMEDRIVER` name other binaries.
//! Without Chromium the tests print a loud `SKIPPED browser tests: …` line
//! and pass, unless `IPNSYNC_TEST_BROWSER=1` (set by `.ci/run`), where a
//! missing browser is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

const CHROMIUM: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

/// The flags this machine's Chromium needs (no sandbox as root, no GPU,
/// and nothing that reaches for the network on its own).
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// `$VAR` when set (another install), else the first candidate present.
fn find(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        return path.exists().then_some(path);
    }
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

/// Chromium and chromedriver, or why the browser tests cannot run. With
/// `IPNSYNC_TEST_BROWSER=1` a missing one panics (CI must run them).
pub fn available() -> Option<(PathBuf, PathBuf)> {
    let found = (
        find("IPNSYNC_CHROMIUM", &CHROMIUM),
        find("IPNSYNC_CHROMEDRIVER", &CHROMEDRIVER),
    );
    match found {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        (chromium, driver) => {
            let missing = [
                chromium.is_none().then_some("chromium"),
                driver.is_none().then_some("chromedriver"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ");
            let required = std::env::var("IPNSYNC_TEST_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "IPNSYNC_TEST_BROWSER=1 but {missing} is missing (apt-get install chromium chromium-driver)"
            );
            // Straight to the stderr handle: the test harness captures
            // `eprintln!` of passing tests, and this line must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n=====================================================================\n\
                 SKIPPED browser tests: {missing} not found \
                 (apt-get install chromium chromium-driver; IPNSYNC_TEST_BROWSER=1 makes this a failure)\n\
                 ====================================================================="
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        // Wait for chromedriver to listen (startup, not a timing assertion).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium.display().to_string(), "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session with headless Chromium");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test must not leave chromedriver (and its Chromium) behind.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
