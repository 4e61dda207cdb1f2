//! Services: every query and command Keel offers, as functions that take typed
//! arguments and return serialisable results. The command line, the HTTP API and the
//! page call these and only format what they return.

pub mod health;
pub mod playtest;
pub mod simulate;
