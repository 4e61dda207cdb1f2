//! Keel: a playbook automation engine for Customer Success teams.
//!
//! The crate follows the data flow, one module per stage:
//!
//! ```text
//! sync (files, later HTTP push/pull) → store (sled) → evaluate (playbooks, Rhai) → deliver (email, webhooks, tasks)
//! ```
//!
//! - [`config`]: `keel.yaml`, parsed strictly and validated;
//! - [`model`]: accounts, contacts, events;
//! - [`sync`]: source files into the store, as upserts;
//! - [`store`]: the embedded sled store behind Keel's own interface;
//! - [`evaluate`]: the health model and playbooks, deciding what fires;
//! - [`daemon`]: the schedule, reloads, and the loop around evaluation and delivery;
//! - [`deliver`]: the outbox worked off — email, webhooks, task escalations — with
//!   retries and the protections customers' inboxes are owed;
//! - [`services`]: every query and command as a library function with typed arguments
//!   and a serialisable result, shared by the command line, the HTTP API and the page;
//! - [`cli`]: the `keel` command line; `main.rs` only parses arguments and calls it.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod deliver;
pub mod diagnostic;
pub mod lang;
pub mod model;
pub mod services;
pub mod store;
pub mod sync;
