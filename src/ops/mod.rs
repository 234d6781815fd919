//! Operations: logging, metrics, the admin listener (health, readiness,
//! metrics) and systemd integration.

pub mod admin;
pub mod logging;
pub mod metrics;
pub mod systemd;
