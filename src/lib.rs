//! ipnsync: verifies payment-platform notifications, commits them to disk
//! before answering, decides what each means for the shop's order, and
//! pushes the new order status to the shop in the background.
//!
//! See `ARCHITECTURE.md` for the map. The entry point for embedding and
//! tests is [`run`].

pub mod config;
pub mod dispatch;
pub mod domain;
pub mod http;
pub mod ops;
pub mod providers;
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
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Options for [`run_with`] beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub limits: Limits,
}

/// Runs the daemon on an already-bound listener until `shutdown` resolves.
///
/// Order of events: open and migrate the database, start the writer and the
/// dispatcher, serve. On shutdown: stop accepting, let in-flight requests
/// get their commit, stop the dispatcher (in-flight pushes get a grace
/// period), drain the writer, checkpoint the WAL.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(config, listener, shutdown, RunOptions::default()).await
}

pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    options: RunOptions,
) -> Result<(), RunError> {
    let config = Arc::new(config);
    let path = config.database.clone();
    let conn = tokio::task::spawn_blocking(move || store::open_writer(&path))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let wake = Arc::new(Notify::new());
    let (writer, writer_thread) = store::writer::spawn(conn, config.writer.queue, config.writer.batch_max, wake.clone());

    let (stop_dispatch, dispatch_stopped) = watch::channel(false);
    let dispatcher = if config.shops.is_empty() {
        None
    } else {
        let d = Dispatcher::new(&config, writer.clone(), wake.clone());
        let grace = options.limits.drain_timeout;
        Some(tokio::spawn(d.run(dispatch_stopped, grace)))
    };

    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        database = %config.database.display(),
        sources = config.sources.len(),
        shops = config.shops.len(),
        "ipnsync listening"
    );
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    ops::systemd::notify("READY=1");
    let watchdog = ops::systemd::watchdog_interval().map(|every| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                ops::systemd::notify("WATCHDOG=1");
            }
        })
    });

    let state = Arc::new(AppState {
        config: config.clone(),
        writer: writer.clone(),
        limits: options.limits,
    });
    http::serve(listener, state.clone(), shutdown).await;
    ops::systemd::notify("STOPPING=1");
    tracing::info!("stopped accepting; draining");

    let _ = stop_dispatch.send(true);
    if let Some(handle) = dispatcher {
        match handle.await {
            Ok(Err(e)) => tracing::error!(error = %e, "dispatcher failed"),
            Err(e) => tracing::error!(error = %e, "dispatcher panicked"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    drop(state);
    drop(writer);
    // The writer thread ends once the last handle is gone and its queue is
    // drained; joining it makes every acknowledged commit final before exit.
    let joined = tokio::task::spawn_blocking(move || writer_thread.join());
    if tokio::time::timeout(Duration::from_secs(30), joined).await.is_err() {
        tracing::error!("writer did not stop within 30 s");
    }
    tracing::info!("ipnsync stopped");
    Ok(())
}
