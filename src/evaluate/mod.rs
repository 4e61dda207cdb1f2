//! Evaluate: what the playbooks decide about each account (DESIGN.md, "Playbooks").
//!
//! Built so far: [`script`], the sandboxed Rhai engine every playbook expression and rule
//! runs on. The playbook files, the health model, triggers and the `check` / `simulate` /
//! `test` commands build on it (issue [2/5]).

pub mod script;
