//! A bounded pool of PostgreSQL sessions for the readers (dispatcher,
//! confirmer, console, admin API). The writer keeps its own session.
//!
//! Bounded so that a burst of console pages or a slow database cannot open
//! connections without limit (PostgreSQL's `max_connections` is shared by
//! every daemon on it): a caller waits at most [`WAIT`] for a free slot,
//! then gets an error (a 503 or a retry, as for a database that does not
//! answer). Idle sessions are kept and reused; a broken one is dropped.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;

use super::pg::{PgConnection, PgTarget};
use super::{Error, Result};

/// How long a reader waits for a free session.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct PgPool {
    target: Arc<PgTarget>,
    size: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Client>,
    /// Sessions handed out or being opened.
    busy: usize,
}

impl PgPool {
    pub fn new(target: PgTarget, size: usize) -> Arc<PgPool> {
        Arc::new(PgPool {
            target: Arc::new(target),
            size: size.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                busy: 0,
            }),
            freed: Condvar::new(),
        })
    }

    pub fn target(&self) -> &Arc<PgTarget> {
        &self.target
    }

    /// A session from the pool (a new one when none is idle and the pool
    /// is not full); back in the pool when the connection is dropped.
    pub fn get(self: &Arc<Self>) -> Result<PgConnection> {
        let deadline = Instant::now() + WAIT;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(client) = state.idle.pop() {
                state.busy += 1;
                if client.is_closed() {
                    drop(state);
                    super::pg::dispose(client);
                    return self.open_counted();
                }
                return Ok(PgConnection::from_client(
                    self.target.clone(),
                    client,
                    Some(self.clone()),
                ));
            }
            if state.busy < self.size {
                state.busy += 1;
                drop(state);
                return self.open_counted();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Other(format!(
                    "all {} database connections of this daemon are in use (waited {}s)",
                    self.size,
                    WAIT.as_secs()
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Opens a session for a slot already counted as busy.
    fn open_counted(self: &Arc<Self>) -> Result<PgConnection> {
        match self.target.connect() {
            Ok(client) => Ok(PgConnection::from_client(
                self.target.clone(),
                client,
                Some(self.clone()),
            )),
            Err(e) => {
                self.give_back(None);
                Err(e)
            }
        }
    }

    /// A session comes back (`None`: it was broken or is gone).
    pub(super) fn give_back(&self, client: Option<Client>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.busy = state.busy.saturating_sub(1);
        if let Some(c) = client {
            state.idle.push(c);
        }
        drop(state);
        self.freed.notify_one();
    }
}
