//! ipnsync: verifies payment-platform notifications, commits them to disk
//! before answering, decides what each means for the shop's order, and
//! pushes the new order status to the shop in the background.
//!
//! See `ARCHITECTURE.md` for the map. The entry point for embedding and
//! tests is [`run`].

pub mod cli;
pub mod config;
pub mod confirm;
pub mod console;
pub mod dispatch;
pub mod domain;
pub mod http;
pub mod ops;
pub mod outbound;
pub mod present;
pub mod providers;
pub mod review;
pub mod shops;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::http::{AppState, Limits};
use crate::ops::admin::{Admin, Health};
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "cannot listen on the admin address {addr}: {source} (set [admin] listen, or \"off\")"
    )]
    AdminListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Options for [`run_with`] beyond the configuration.
#[derive(Default)]
pub struct RunOptions {
    /// Overrides the configuration's `[http]` limits (tests).
    pub limits: Option<Limits>,
    /// An already-bound admin listener (tests bind port 0); otherwise the
    /// daemon binds `config.admin_listen` itself.
    pub admin_listener: Option<TcpListener>,
    /// New configurations to switch to (SIGHUP): keys, sources, shops and
    /// status tables. Listen addresses and the database path need a restart.
    pub reload: Option<watch::Receiver<Arc<Config>>>,
}

/// Runs the daemon on an already-bound listener until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(config, listener, shutdown, RunOptions::default()).await
}

/// [`run`] with options.
///
/// Order of events: open and migrate the database, start the writer, the
/// dispatcher and the admin listener, serve, tell systemd we are ready. On
/// shutdown: stop accepting, let in-flight requests get their commit, stop
/// the dispatcher (in-flight pushes get a grace period, the rest stay
/// pending), drain the writer, checkpoint the WAL.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    options: RunOptions,
) -> Result<(), RunError> {
    ops::metrics::handle();
    let config = Arc::new(config);
    let path = config.database.clone();
    let opening = tokio::task::spawn_blocking(move || store::open_writer(&path));
    let conn = ops::systemd::while_starting(
        opening,
        "opening the database (a schema upgrade of a large database takes minutes)",
    )
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    let admin_listener = match options.admin_listener {
        Some(l) => Some(l),
        None => match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| RunError::AdminListen { addr, source })?,
            ),
            None => None,
        },
    };

    // The identity of the file just opened: writes stop if another file (or
    // none) takes its place at the path.
    // (SQLite only: PostgreSQL keeps its own files.)
    let files = match config.database.sqlite_path() {
        Some(path) => Some(Arc::new(store::files::FileWatch::new(path)?)),
        None => None,
    };
    // The checkpointer hands the end of a large checkpoint to the writer
    // (`checkpoint::Handoff`), so that the WAL starts over under load.
    let handoff = Arc::new(store::checkpoint::Handoff::default());
    let checkpointer = match config.database.sqlite_path() {
        Some(path) => Some(store::checkpoint::spawn(
            path,
            store::checkpoint::EVERY,
            files.clone(),
            handoff.clone(),
        )?),
        None => None,
    };
    // Retention in the background, on its own connection (read at start:
    // a changed [retention] takes effect at the next restart).
    let retention = match &config.retention {
        Some(policy) => Some(store::retention::spawn(&config.database, policy.clone())?),
        None => None,
    };
    let wake = Arc::new(Notify::new());
    // PostgreSQL: more writer sessions beside the first (which migrated).
    let mut conns = vec![conn];
    if config.database.is_postgres() {
        for _ in 1..config.writer.sessions {
            let db = config.database.clone();
            conns.push(
                tokio::task::spawn_blocking(move || store::open_session(&db))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??,
            );
        }
    }
    let (writer, writer_thread) = store::writer::spawn_sessions(
        conns,
        files,
        Some(handoff),
        config.writer.queue,
        config.writer.batch_max,
        wake.clone(),
    );

    // The live configuration: the initial one, then whatever SIGHUP loads.
    let (config_tx, config_rx) = watch::channel(config.clone());
    let forward = options.reload.map(|mut reload| {
        let config_tx = config_tx.clone();
        tokio::spawn(async move {
            while reload.changed().await.is_ok() {
                let next = reload.borrow_and_update().clone();
                let _ = config_tx.send(next);
            }
        })
    });

    let health = Arc::new(Health::default());
    let (stop_tasks, tasks_stopped) = watch::channel(false);
    let limits = options.limits.unwrap_or_else(|| config.http.clone());
    let grace = limits.drain_timeout;
    let dispatcher = {
        let d = Dispatcher::new(
            config_rx.clone(),
            writer.clone(),
            wake.clone(),
            health.clone(),
        );
        tokio::spawn(d.run(tasks_stopped.clone(), grace))
    };
    // Held notifications wait for their gateway's answer (`confirm`).
    let confirmer = tokio::spawn(confirm::run(
        config_rx.clone(),
        config.database.clone(),
        writer.clone(),
        tasks_stopped.clone(),
    ));
    // Orders that never heard back (`[reconcile]`; idle without it).
    let reconciler = tokio::spawn(confirm::reconcile::run(
        config_rx.clone(),
        config.database.clone(),
        writer.clone(),
        tasks_stopped.clone(),
    ));
    let admin_task = admin_listener.map(|l| {
        let admin = Arc::new(Admin {
            writer: writer.clone(),
            health: health.clone(),
            db_path: config.database.clone(),
            dispatching: true,
            dispatcher_stall: (config.dispatch.poll_interval * 30).max(Duration::from_secs(30)),
            review: review::http::AdminApi {
                config: config_rx.clone(),
                db: config.database.clone(),
            },
            console: console::Console::new(config_rx.clone(), config.database.clone()),
        });
        let mut stopped = tasks_stopped.clone();
        tracing::info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin listening (/metrics, /healthz, /readyz)");
        tokio::spawn(ops::admin::serve(l, admin, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });

    let addr = listener.local_addr()?;
    let backend = if config.database.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    ops::metrics::instance(store::instance_id(), backend);
    tracing::info!(
        %addr,
        database = %config.database,
        instance = store::instance_id(),
        sources = config.sources.len(),
        shops = config.shops.len(),
        "ipnsync listening"
    );
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    // Ready means able to acknowledge: only once a real write committed (a
    // read-only or full database opens fine, then refuses every commit).
    // The first try runs before serving, so it never competes with requests
    // for the writer queue; if it fails, the daemon serves (503s) and tries
    // again in the background.
    let first_write = writer.probe().await;
    let ready = tokio::spawn(notify_ready_after_a_write(writer.clone(), first_write));
    let watchdog = ops::systemd::watchdog_interval().map(|every| {
        tokio::spawn(feed_watchdog(
            every,
            writer.clone(),
            health.clone(),
            (config.dispatch.poll_interval * 30).max(Duration::from_secs(30)),
        ))
    });

    let state = Arc::new(AppState {
        config: config_rx,
        writer: writer.clone(),
        limits,
    });
    http::serve(listener, state.clone(), shutdown).await;
    ops::systemd::notify("STOPPING=1");
    tracing::info!("stopped accepting; draining");

    let _ = stop_tasks.send(true);
    match dispatcher.await {
        Ok(Err(e)) => tracing::error!(error = %e, "dispatcher failed"),
        Err(e) => tracing::error!(error = %e, "dispatcher panicked"),
        Ok(Ok(())) => {}
    }
    // A gateway call in flight is abandoned after the grace period: its
    // row stays waiting and is asked again on the next start.
    for task in [confirmer, reconciler] {
        let abort = task.abort_handle();
        if tokio::time::timeout(grace, task).await.is_err() {
            abort.abort();
        }
    }
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    for t in [watchdog, forward, Some(ready)].into_iter().flatten() {
        t.abort();
    }
    // Commit and answer whatever is still queued, then end the writer even
    // if a handle is still alive somewhere.
    writer.close().await;
    drop(state);
    drop(writer);
    if let Some(r) = retention {
        r.stop();
    }
    if let Some(c) = checkpointer {
        c.stop();
    }
    // The writer thread ends once the last handle is gone and its queue is
    // drained; joining it makes every acknowledged commit final before exit.
    let joined = tokio::task::spawn_blocking(move || writer_thread.join());
    if tokio::time::timeout(Duration::from_secs(30), joined)
        .await
        .is_err()
    {
        tracing::error!("writer did not stop within 30 s");
    }
    tracing::info!("ipnsync stopped");
    Ok(())
}

/// Sends READY=1 once the writer has committed a real write (the probe).
/// Until then systemd is told why not (`STATUS=`), the ERROR is logged, and
/// the write is tried again every second: a database that cannot be written
/// (read-only file, full disk, a foreign lock) must not look started.
async fn notify_ready_after_a_write(
    writer: store::WriterHandle,
    first: Result<(), store::SubmitError>,
) {
    let mut reported = false;
    let mut result = first;
    loop {
        match result {
            Ok(()) => {
                if reported {
                    tracing::info!("the database takes writes; ready");
                }
                ops::systemd::notify("READY=1");
                ops::systemd::notify("STATUS=serving");
                return;
            }
            Err(e) => {
                if !reported {
                    tracing::error!(error = %e, "database not writable at start: not telling systemd we are ready; notifications are answered 503");
                    reported = true;
                }
                ops::systemd::notify(&format!("STATUS=not ready: database not writable: {e}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        result = writer.probe().await;
    }
}

/// Feeds systemd's watchdog only while the daemon actually works: the
/// database takes a write and the dispatcher keeps looping. A daemon that
/// is alive but stuck (writer thread gone, dispatcher failed, database file
/// deleted or replaced) stops pinging and systemd restarts it; each missed
/// ping tells systemd why (`STATUS=`).
async fn feed_watchdog(
    every: Duration,
    writer: store::WriterHandle,
    health: Arc<Health>,
    dispatcher_stall: Duration,
) {
    let mut tick = tokio::time::interval(every / 3);
    let mut was_healthy = true;
    loop {
        tick.tick().await;
        let probe = match tokio::time::timeout(every / 4, writer.probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no write committed within {:?}", every / 4)),
        };
        let writable = probe.is_ok();
        let beat = health
            .dispatcher_heartbeat
            .load(std::sync::atomic::Ordering::Relaxed);
        let dispatching = store::now_ms() - beat <= dispatcher_stall.as_millis() as i64;
        if writable && dispatching {
            if !was_healthy {
                ops::systemd::notify("STATUS=serving");
            }
            ops::systemd::notify("WATCHDOG=1");
            was_healthy = true;
        } else {
            let why = match probe {
                Err(e) => format!("database not writable: {e}"),
                Ok(()) => "dispatcher not looping".to_owned(),
            };
            tracing::warn!(
                writable,
                dispatching,
                "watchdog not fed: the daemon is not healthy: {why}"
            );
            ops::systemd::notify(&format!("STATUS=not healthy, watchdog not fed: {why}"));
            was_healthy = false;
        }
    }
}
