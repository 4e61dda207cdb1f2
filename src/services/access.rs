//! [`Book`]: the queries and commands a person runs against the book from the command
//! line — tasks, accounts, the outbox, unsubscribing, syncing, planning — whoever holds
//! the store.
//!
//! When no daemon runs, a command opens the store and [`Local`] calls the services
//! directly. When `keel run` holds it (the embedded store opens in one process at a time), the same
//! command goes through the daemon's API, whose client (`api::client`) implements this
//! trait over HTTP: the daemon's handlers call the very services [`Local`] calls, so both
//! paths answer the same, and the command prints it the same way.
//!
//! Invariants: every method is one service call (no rule here); results are the
//! services' own types, which travel over the API as JSON and back unchanged.

use chrono::{DateTime, NaiveDate, Utc};

use super::accounts::{self, AccountDetail, AccountList};
use super::contacts::{self, UnsubscribeBy, Unsubscribed};
use super::explain::{self, Explanation};
use super::guard::{self, GuardList};
use super::outbox::{self, RetryTarget};
use super::plan::{self, Report as PlanReport, Request as PlanRequest};
use super::sync::{self, ProgressFor, SyncOutcome, SyncRequest};
use super::tasks::{self, SnoozeArgs, TaskList};
use super::ServiceError;
use crate::config::Config;
use crate::lang::health::HealthModel;
use crate::lang::Loaded;
use crate::model::{GuardRecord, OutboxEntry, Task};
use crate::store::Store;

/// The book, reached one way or another.
pub trait Book {
    /// Where the answers come from, for messages ("the store at …", "keel run at …").
    fn describe(&self) -> String;
    fn tasks(&self, query: &tasks::ListQuery) -> Result<TaskList, ServiceError>;
    fn task_done(&self, id: u64) -> Result<Task, ServiceError>;
    fn task_cancel(&self, id: u64) -> Result<Task, ServiceError>;
    fn task_snooze(&self, id: u64, until: NaiveDate) -> Result<Task, ServiceError>;
    fn accounts(&self, query: &accounts::ListQuery) -> Result<AccountList, ServiceError>;
    /// One account with events of the last `events_days` days.
    fn account(&self, id: &str, events_days: u32) -> Result<AccountDetail, ServiceError>;
    fn outbox(&self, query: &outbox::ListQuery) -> Result<Vec<OutboxEntry>, ServiceError>;
    fn outbox_retry(&self, target: RetryTarget) -> Result<Vec<OutboxEntry>, ServiceError>;
    fn unsubscribe(&self, by: &UnsubscribeBy) -> Result<Unsubscribed, ServiceError>;
    /// `keel sync`: the files are read by whoever holds the store (a daemon on this
    /// machine, as the client is only used when the store is this one); `progress` is
    /// drawn only when the files are read here.
    fn sync(&self, request: &SyncRequest, progress: ProgressFor) -> Result<SyncOutcome, ServiceError>;
    /// The blast-radius guard's records: held playbooks and what the guard did.
    fn guard(&self) -> Result<GuardList, ServiceError>;
    /// Lets one pass of a held playbook through, of up to the size it was held at.
    fn approve(&self, playbook: &str, by: &str, size: Option<u64>) -> Result<GuardRecord, ServiceError>;
    /// `keel plan`: the working set's texts travel in the request, so the daemon plans
    /// the set this command read, against the running set it recorded in its store.
    fn plan(&self, request: &PlanRequest) -> Result<PlanReport, ServiceError>;
    /// `keel explain`: why a playbook did or did not fire for an account, by the
    /// playbooks in force where the store is held.
    fn explain(&self, request: &explain::Request) -> Result<Explanation, ServiceError>;
}

/// The store opened by this process.
pub struct Local<'a> {
    pub store: Store,
    pub config: &'a Config,
    pub now: DateTime<Utc>,
    /// The health model in force, when it loads: names the inputs a category lacked.
    pub model: Option<HealthModel>,
    /// The rules and playbooks, for the commands that evaluate them (`explain`).
    pub loaded: Option<Loaded>,
}

impl Book for Local<'_> {
    fn describe(&self) -> String {
        format!("the store at {}", self.store.path().display())
    }

    fn tasks(&self, query: &tasks::ListQuery) -> Result<TaskList, ServiceError> {
        tasks::list(&self.store, query, self.now, self.config.timezone)
    }

    fn task_done(&self, id: u64) -> Result<Task, ServiceError> {
        tasks::done(&self.store, id, self.now)
    }

    fn task_cancel(&self, id: u64) -> Result<Task, ServiceError> {
        tasks::cancel(&self.store, id, self.now)
    }

    fn task_snooze(&self, id: u64, until: NaiveDate) -> Result<Task, ServiceError> {
        tasks::snooze(&self.store, &SnoozeArgs { id, until, now: self.now, timezone: self.config.timezone })
    }

    fn accounts(&self, query: &accounts::ListQuery) -> Result<AccountList, ServiceError> {
        accounts::list(&self.store, query, self.now, self.config.timezone)
    }

    fn account(&self, id: &str, events_days: u32) -> Result<AccountDetail, ServiceError> {
        let query =
            accounts::ShowQuery { id: id.to_string(), events_days, now: self.now, timezone: self.config.timezone };
        accounts::show(&self.store, &query, self.model.as_ref())
    }

    fn outbox(&self, query: &outbox::ListQuery) -> Result<Vec<OutboxEntry>, ServiceError> {
        outbox::list(&self.store, query)
    }

    fn outbox_retry(&self, target: RetryTarget) -> Result<Vec<OutboxEntry>, ServiceError> {
        outbox::retry(&self.store, target, self.now)
    }

    fn unsubscribe(&self, by: &UnsubscribeBy) -> Result<Unsubscribed, ServiceError> {
        contacts::unsubscribe(&self.store, self.config, by, self.now)
    }

    fn sync(&self, request: &SyncRequest, progress: ProgressFor) -> Result<SyncOutcome, ServiceError> {
        sync::sync(&self.store, self.config, request, self.now, progress)
    }

    fn guard(&self) -> Result<GuardList, ServiceError> {
        guard::list(&self.store)
    }

    fn approve(&self, playbook: &str, by: &str, size: Option<u64>) -> Result<GuardRecord, ServiceError> {
        guard::approve(&self.store, playbook, by, size, self.now)
    }

    fn plan(&self, request: &PlanRequest) -> Result<PlanReport, ServiceError> {
        plan::plan(&self.store, self.config, request, self.now)
    }

    fn explain(&self, request: &explain::Request) -> Result<Explanation, ServiceError> {
        let Some(loaded) = &self.loaded else {
            return Err(ServiceError::Config("the playbooks were not loaded for this command".into()));
        };
        let ctx = crate::decide::tick::Context { store: &self.store, loaded, config: self.config };
        explain::explain(ctx, request, self.now)
    }
}
