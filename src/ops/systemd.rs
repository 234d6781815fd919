//! `sd_notify` without a C library: a datagram to `$NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;

/// Sends a notification (`READY=1`, `STOPPING=1`, `WATCHDOG=1`…) when
/// running under systemd with `Type=notify`; does nothing otherwise.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        send_abstract(&sock, abstract_name, state)
    } else {
        sock.send_to(state.as_bytes(), &path).map(|_| ())
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> std::io::Result<()> {
    Ok(())
}

/// The watchdog interval systemd expects pings within, if enabled.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    Some(std::time::Duration::from_micros(usec))
}

/// How long systemd's start timeout is pushed out at each step while a
/// long start-up task runs, and how often.
const START_EXTENSION: std::time::Duration = std::time::Duration::from_secs(60);
const START_STEP: std::time::Duration = std::time::Duration::from_secs(20);

/// Awaits `task` (a start-up step such as opening the database, whose
/// schema migration can take minutes on a large database) while telling
/// systemd, every 20 s, that the start is still progressing
/// (`EXTEND_TIMEOUT_USEC`): without it `Type=notify`'s start timeout (90 s
/// by default) would kill the daemon in the middle of the upgrade, and
/// again at every restart. A task that ends in time sends nothing.
pub async fn while_starting<F: std::future::Future>(task: F, status: &str) -> F::Output {
    while_starting_to(task, status, START_STEP, notify).await
}

async fn while_starting_to<F: std::future::Future>(
    task: F,
    status: &str,
    step: std::time::Duration,
    notify: impl Fn(&str),
) -> F::Output {
    tokio::pin!(task);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    loop {
        tokio::select! {
            out = &mut task => return out,
            _ = tick.tick() => {
                tracing::info!("still {status}");
                notify(&format!(
                    "STATUS={status}\nEXTEND_TIMEOUT_USEC={}",
                    START_EXTENSION.as_micros()
                ));
            }
        }
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn a_long_start_keeps_pushing_the_timeout_out_and_a_short_one_says_nothing() {
        let sent = Mutex::new(Vec::new());
        let record = |m: &str| sent.lock().unwrap().push(m.to_owned());
        let ms = std::time::Duration::from_millis;
        let slow = tokio::time::sleep(ms(70));
        while_starting_to(
            async {
                slow.await;
                7
            },
            "migrating",
            ms(20),
            record,
        )
        .await;
        let sent = std::mem::take(&mut *sent.lock().unwrap());
        assert!(!sent.is_empty(), "every 20 ms while it runs");
        assert!(sent
            .iter()
            .all(|m| m == "STATUS=migrating\nEXTEND_TIMEOUT_USEC=60000000"));

        let quiet = Mutex::new(0);
        let out = while_starting_to(async { 7 }, "migrating", ms(20), |_| {
            *quiet.lock().unwrap() += 1
        })
        .await;
        assert_eq!((out, *quiet.lock().unwrap()), (7, 0));
    }
}
