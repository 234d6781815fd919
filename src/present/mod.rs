//! Stored records in words, for the operator's screens: what the CLI's
//! tables and the console's pages both show. Pure: no I/O, no clock (the
//! caller passes `now`), no SQL; it reads the records `store` returns.

pub mod timeline;
