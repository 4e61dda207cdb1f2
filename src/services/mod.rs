//! Services: every query and command Keel offers, as functions that take typed
//! arguments and return serialisable results. The command line, the HTTP API and the
//! page call these and only format what they return.
//!
//! Invariants: a service never prints and never reads the clock (callers pass `now`);
//! it returns a [`ServiceError`] a front end can word for its users; it imports nothing
//! from the front ends (`cli`, `daemon`).

pub mod access;
pub mod accounts;
pub mod book;
pub mod check;
pub mod contacts;
mod error;
pub mod explain;
pub mod guard;
pub mod health;
pub mod ingest;
pub mod outbox;
pub mod plan;
pub mod playtest;
pub mod preview;
pub mod schema;
pub mod simulate;
pub mod status;
pub mod sync;
pub mod tasks;

pub use error::ServiceError;
