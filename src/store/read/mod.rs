//! What operators and the console read: read-only connections, no writes.
//!
//! - [`orders`]: the order list and one order's whole history (`ipnsync
//!   orders`, `show`, the console's order page).
//! - [`review_queue`]: the orders waiting for a human, the transactions an
//!   action is about, and the record of past actions.
//! - [`console`]: the console's header counters, order search, dead
//!   updates and operator actions.
//!
//! Every read uses a connection from [`open_read`] (WAL lets it see
//! committed data while the daemon writes). The writes an operator makes
//! are in [`super::operator`] and [`super::claims`].

use crate::store::db::Connection;

use super::{migrations, StoreError};

pub mod console;
pub mod orders;
pub mod review_queue;

/// A read handle, as the CLI and the console hold one across several store
/// reads: the one name for it outside `store` (either engine).
pub type Reader = Connection;

/// Opens an existing database for reading and checks it carries this
/// binary's schema. A missing SQLite file is an error: a reader never
/// creates one.
pub fn open_read<D: super::AsDatabase + ?Sized>(db: &D) -> Result<Reader, StoreError> {
    let conn = super::open_reader(db)?;
    check_schema(&conn)?;
    Ok(conn)
}

pub(super) fn check_schema(conn: &Connection) -> Result<(), StoreError> {
    let found = migrations::version(conn)?;
    if found > migrations::LATEST {
        return Err(StoreError::SchemaTooNew {
            found,
            known: migrations::LATEST,
        });
    }
    if found < migrations::LATEST {
        return Err(StoreError::Corrupt(format!(
            "schema version {found}, this binary expects {}: not an ipnsync database, or the daemon has not migrated it yet",
            migrations::LATEST
        )));
    }
    Ok(())
}
