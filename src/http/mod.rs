//! HTTP ingress: accepts connections, routes notification paths to their
//! source, and answers only after the writer has committed.

pub mod answer;
pub mod intake;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::store::WriterHandle;

// `Limits` is resolved from `[http]` by `config`, which `http` depends on:
// it lives there (downhill) and is re-exported here under its old path.
pub use crate::config::{default_per_peer, Limits, DEFAULT_MAX_CONNECTIONS_PER_PEER};

/// The address a connection counts against: an IPv4 address (an IPv4 peer
/// on a dual-stack socket counts as the same address as its mapped form),
/// or an IPv6 peer's /64. One IPv6 host is given a whole /64 and can pick
/// any address in it, so counting single IPv6 addresses would let it open
/// a connection per address and take every slot after all.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Open connections per peer address (the per-peer half of admission).
#[derive(Default)]
struct PeerSlots {
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

#[derive(Default)]
struct Peer {
    open: usize,
    /// Connections refused since the peer last reached its cap: one WARN
    /// when it starts, one when it ends, not one per connection (a greedy
    /// peer may try thousands a second).
    refused: u64,
}

/// One peer's connection slot; frees itself when dropped.
struct PeerSlot {
    slots: Arc<PeerSlots>,
    ip: IpAddr,
}

impl PeerSlots {
    /// Takes a slot for `ip` unless it already holds `cap`; on refusal,
    /// how many connections it has had refused in a row.
    fn try_take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Result<PeerSlot, u64> {
        let mut peers = self.peers.lock().expect("peer slots");
        let peer = peers.entry(ip).or_default();
        if peer.open >= cap {
            peer.refused += 1;
            return Err(peer.refused);
        }
        peer.open += 1;
        Ok(PeerSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.slots.peers.lock().expect("peer slots");
        if let Some(peer) = peers.get_mut(&self.ip) {
            peer.open -= 1;
            if peer.refused > 0 {
                tracing::warn!(peer = %self.ip, refused = peer.refused, "peer back under its connection cap");
                peer.refused = 0;
            }
            if peer.open == 0 {
                // Keep the map as small as the set of connected peers.
                peers.remove(&self.ip);
            }
        }
    }
}

/// What every request handler can see.
pub struct AppState {
    /// The live configuration (replaced on SIGHUP).
    pub config: tokio::sync::watch::Receiver<Arc<Config>>,
    pub writer: WriterHandle,
    pub limits: Limits,
}

/// Serves until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish (each is waiting for its commit) within
/// `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(state.limits.max_connections));
    let peers = Arc::new(PeerSlots::default());
    let per_peer = state.limits.max_connections_per_peer;
    let header_read_timeout = state.limits.header_read_timeout;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Per peer first: a greedy address is turned away before it can
        // take one of the global slots the others need (`peer_key`: per
        // IPv4 address, per IPv6 /64).
        let peer_slot = match peers.try_take(peer_key(peer.ip()), per_peer) {
            Ok(slot) => slot,
            Err(refused) => {
                if refused == 1 {
                    tracing::warn!(%peer, limit = per_peer, "per-peer connection limit reached, closing its new connections until one of its own ends");
                }
                metrics::counter!(crate::ops::metrics::CONNECTIONS_REFUSED, "reason" => "per_peer")
                    .increment(1);
                drop(stream);
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = state.limits.max_connections, "connection limit reached, closing new connection");
            metrics::counter!(crate::ops::metrics::CONNECTIONS_REFUSED, "reason" => "global")
                .increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(intake::handle(&state, peer, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
            drop(peer_slot);
        });
    }
    drop(listener);
    let drain = state.limits.drain_timeout;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(timeout = ?drain, "requests still in flight at the end of the drain period");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            peer_key(ip("2001:db8:1:2:aaaa::1")),
            peer_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "one /64, one peer"
        );
        assert_ne!(
            peer_key(ip("2001:db8:1:2::1")),
            peer_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(peer_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(peer_key(ip("192.0.2.7")), peer_key(ip("192.0.2.8")));
        // A greedy host rotating addresses in its /64 hits one cap.
        let slots = Arc::new(PeerSlots::default());
        let _a = slots.try_take(peer_key(ip("2001:db8::1")), 2).unwrap();
        let _b = slots.try_take(peer_key(ip("2001:db8::2")), 2).unwrap();
        assert!(slots.try_take(peer_key(ip("2001:db8::3")), 2).is_err());
    }

    #[test]
    fn each_peer_has_its_own_cap_and_slots_come_back() {
        let slots = Arc::new(PeerSlots::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = slots.try_take(a, 2).unwrap();
        let _second = slots.try_take(a, 2).unwrap();
        assert_eq!(slots.try_take(a, 2).err(), Some(1));
        assert_eq!(slots.try_take(a, 2).err(), Some(2));
        let _other = slots
            .try_take(b, 2)
            .expect("another address is not affected");
        drop(first);
        assert!(
            slots.try_take(a, 2).is_ok(),
            "a freed slot can be taken again"
        );
    }
}
