//! Helpers for tests that run the real `ipnsync` binary as a child process
//! (signals, crashes, logs, systemd notifications).

use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the daemon accepts connections on `port`.
pub async fn wait_listening(port: u16) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("daemon did not listen on {port}");
}

/// A config with the demo Lyra source (documentation key, TEST mode) on
/// `port`, the admin listener off, `top` inserted among the top-level keys
/// and `tables` appended after the source.
pub fn lyra_config(port: u16, db: &Path, top: &str, tables: &str) -> String {
    format!(
        "{top}listen = \"127.0.0.1:{port}\"\ndatabase = \"{}\"\n[admin]\nlisten = \"off\"\n[[sources]]\nname = \"lyra\"\nkind = \"lyra-form\"\npath = \"/ipn/lyra\"\nmode = \"TEST\"\ntest_key = \"1122334455667788\"\n{tables}",
        db.display()
    )
}

/// Sends SIGTERM, as systemd does on stop.
pub fn terminate(child: &Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}
