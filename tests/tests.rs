//! Keel's integration tests: one binary (fast to link), modules by feature, helpers in
//! `util`. They use the real sled store in temp dirs and run the real `keel` binary.

mod util;

mod check;
mod cli;
mod config;
mod daemon;
mod examples;
mod health;
mod playtest;
mod run;
mod simulate;
mod store;
mod sync;
