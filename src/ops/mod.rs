//! Operations: logging setup and systemd integration.

pub mod logging;
pub mod systemd;
