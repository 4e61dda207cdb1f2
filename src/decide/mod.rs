//! Decide: what the playbooks decide about each account, and when.
//!
//! - [`pass`]: the one evaluation pass — the daemon's, `simulate`'s (a dry run) and
//!   `keel test`'s — deciding firings, skips and exits by the trigger table;
//! - [`guard`]: the blast-radius guard, which holds a pass that would fire too widely;
//! - [`health`]: an account's health with its trend, from the store;
//! - [`tick`]: which playbooks are due at a moment, and the pass for them, committed or
//!   dry-run;
//! - [`incremental`]: which accounts a pass must evaluate;
//! - [`time`]: days and spans as the pass counts them;
//! - [`plan`]: a firing's actions rendered into outbox entries and tasks;
//! - [`unsubscribe`]: the signed one-click links customer mail carries.

pub mod guard;
pub mod health;
pub mod incremental;
pub mod pass;
pub mod plan;
pub mod tick;
pub mod time;
pub mod unsubscribe;
