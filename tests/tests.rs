//! Keel's integration tests: one binary (fast to link), modules by feature, helpers in
//! `util`. They use the real sled store in temp dirs, run the real `keel` binary, and talk
//! to real SMTP (mailcrab, in-process) and HTTP (axum) servers over TCP.

mod util;

mod api;
mod check;
mod cli;
mod config;
pub(crate) mod crash;
mod daemon;
mod deliver;
mod examples;
mod explain;
mod faults;
mod first_day;
mod guard;
mod health;
mod health_coverage;
mod incremental;
mod ingest;
mod layers;
mod metrics;
mod plan;
mod playtest;
mod preview;
pub(crate) mod run;
mod schedule;
mod schema;
mod segment;
mod services;
mod simulate;
mod store;
mod sync;
mod sync_input;
mod through_daemon;
mod unicode;
mod unsubscribe;
mod update;
pub(crate) mod v1;
