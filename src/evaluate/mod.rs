//! Evaluate: what the playbooks decide about each account (DESIGN.md, "Playbooks").
//!
//! Built so far: [`script`], the sandboxed Rhai engine every expression and rule runs on,
//! and [`health`], the health model and the daily scoring run. Playbook files, triggers
//! and the `check` / `simulate` / `test` commands build on them (issue [2/5]).

pub mod duration;
pub mod health;
pub mod playbook;
pub mod playtest;
pub mod schedule;
pub mod script;
pub mod simulate;
pub mod view;
