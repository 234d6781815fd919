//! The admin listener (default 127.0.0.1:9090): `/metrics`, `/healthz`,
//! `/readyz`, the token-protected `/admin/*` API (`review::http`) and the
//! operator console (`/`, `/console/…`, when `[console]` is configured).
//! Kept off the notification port so it is never exposed to the internet
//! with it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::metrics;
use crate::store::{self, queries, WriterHandle};

/// Liveness signals other tasks publish for `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// When the dispatcher last completed a loop (ms), 0 = not running.
    pub dispatcher_heartbeat: AtomicI64,
}

impl Health {
    pub fn beat(&self) {
        self.dispatcher_heartbeat
            .store(store::now_ms(), Ordering::Relaxed);
    }
}

pub struct Admin {
    pub writer: WriterHandle,
    pub health: Arc<Health>,
    pub db_path: crate::store::Database,
    /// Whether a dispatcher is expected (at least one shop configured).
    pub dispatching: bool,
    /// A dispatcher heartbeat older than this means it is stuck.
    pub dispatcher_stall: Duration,
    /// The review actions API (`/admin/*`).
    pub review: crate::review::http::AdminApi,
    /// The operator console (`/console/`, off without `[console]`).
    pub console: crate::console::Console,
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admin = admin.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let admin = admin.clone();
            req.extensions_mut().insert(crate::console::Peer(peer));
            async move { Ok::<_, Infallible>(route(&admin, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(graceful.watch(conn));
    }
    // Idle keep-alive connections (a Prometheus scraper's) close at once;
    // a request in progress gets two seconds. Nothing here may hold up the
    // daemon's stop.
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

async fn route(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path().starts_with("/admin/") {
        return crate::review::http::route(&admin.review, req).await;
    }
    if crate::console::handles(req.uri().path()) {
        return crate::console::route(&admin.console, req).await;
    }
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".into(),
        );
    }
    match req.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/readyz" => readyz(admin).await,
        "/metrics" => {
            refresh_gauges(admin).await;
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::handle().render(),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    }
}

/// Ready = the database takes a write within 2 s, the writer queue is not
/// nearly full, and the dispatcher (if any) is looping.
async fn readyz(admin: &Admin) -> Response<Body> {
    let mut problems = Vec::new();
    match tokio::time::timeout(Duration::from_secs(2), admin.writer.probe()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database not writable: {e}")),
        Err(_) => problems.push("database write did not complete within 2s".to_owned()),
    }
    let depth = admin.writer.queue_depth();
    if depth * 10 >= admin.writer.capacity() * 9 {
        problems.push(format!(
            "writer saturated: {depth} of {} queued",
            admin.writer.capacity()
        ));
    }
    if admin.dispatching {
        let beat = admin.health.dispatcher_heartbeat.load(Ordering::Relaxed);
        let age = store::now_ms() - beat;
        if beat == 0 || age > admin.dispatcher_stall.as_millis() as i64 {
            problems.push(format!(
                "dispatcher not making progress (last loop {age} ms ago)"
            ));
        }
    }
    if problems.is_empty() {
        reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ready\n".into(),
        )
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

async fn refresh_gauges(admin: &Admin) {
    ::metrics::gauge!(metrics::WRITER_QUEUE).set(admin.writer.queue_depth() as f64);
    let path = admin.db_path.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let conn = store::open_reader(&path)?;
        let (pending, _, dead) = queries::outbox_counts(&conn)?;
        let oldest = queries::oldest_pending_created_at(&conn)?;
        Ok::<_, store::StoreError>((pending, dead, oldest))
    })
    .await;
    if let Ok(Ok((pending, dead, oldest))) = counts {
        ::metrics::gauge!(metrics::OUTBOX_PENDING).set(pending as f64);
        ::metrics::gauge!(metrics::OUTBOX_DEAD).set(dead as f64);
        let age = oldest
            .map(|t| (store::now_ms() - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        ::metrics::gauge!(metrics::OUTBOX_OLDEST_AGE).set(age);
    }
}
