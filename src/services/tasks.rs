//! Tasks (CTAs) playbooks opened: the list a CSM works from, and closing or snoozing one.
//!
//! Invariants:
//! - Only an open or snoozed task can be done, cancelled or snoozed; a closed one is
//!   refused with [`ServiceError::TaskClosed`] (so doing it twice is an error, not a
//!   silent second write).
//! - A snooze is to a day after today (the config's zone); the task is due again at the
//!   start of that day at the earliest, so it is neither overdue nor escalated before it
//!   wakes.
//! - A snoozed task whose day has come lists as open (not as snoozed): the statuses
//!   [`StatusFilter`] offers split the tasks, each task in exactly one.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::model::{Task, TaskStatus};
use crate::store::Store;

/// Which tasks [`list`] shows, by where they stand today.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// On a CSM's list: open, or snoozed until a day that has come.
    #[default]
    Open,
    /// Snoozed until a day still to come.
    Snoozed,
    Done,
    Cancelled,
    /// Every task.
    All,
}

impl StatusFilter {
    fn keeps(self, task: &Task, today: NaiveDate) -> bool {
        match self {
            StatusFilter::Open => task.is_awake(today),
            StatusFilter::Snoozed => task.status == TaskStatus::Snoozed && !task.is_awake(today),
            StatusFilter::Done => task.status == TaskStatus::Done,
            StatusFilter::Cancelled => task.status == TaskStatus::Cancelled,
            StatusFilter::All => true,
        }
    }
}

/// Which tasks [`list`] shows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// Only this owner's (email, case-insensitive).
    pub owner: Option<String>,
    /// Only tasks past their due time (only awake tasks can be).
    pub overdue: bool,
    /// Which statuses (open ones by default).
    #[serde(default)]
    pub status: StatusFilter,
    /// At most this many, after sorting.
    pub limit: Option<usize>,
}

/// Tasks, soonest due first (those with no due date last), ties by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// How many matched before the limit.
    pub matched: usize,
    /// Ids of the listed tasks that are overdue now.
    pub overdue: Vec<u64>,
}

impl TaskList {
    pub fn is_overdue(&self, id: u64) -> bool {
        self.overdue.contains(&id)
    }
}

pub fn list(store: &Store, query: &ListQuery, now: DateTime<Utc>, timezone: Tz) -> Result<TaskList, ServiceError> {
    let today = now.with_timezone(&timezone).date_naive();
    let mut tasks: Vec<Task> = store
        .tasks()
        .filter(|t| {
            t.as_ref().map_or(true, |t| {
                query.status.keeps(t, today)
                    && (!query.overdue || t.is_overdue(now, today))
                    && query.owner.as_ref().is_none_or(|o| o.eq_ignore_ascii_case(&t.owner))
            })
        })
        .collect::<Result<_, _>>()?;
    tasks.sort_by(|a, b| a.due.is_none().cmp(&b.due.is_none()).then(a.due.cmp(&b.due)).then(a.id.cmp(&b.id)));
    let matched = tasks.len();
    if let Some(limit) = query.limit {
        tasks.truncate(limit);
    }
    let overdue = tasks.iter().filter(|t| t.is_overdue(now, today)).map(|t| t.id).collect();
    Ok(TaskList { tasks, matched, overdue })
}

/// Marks an open task done; returns it as stored.
pub fn done(store: &Store, id: u64, now: DateTime<Utc>) -> Result<Task, ServiceError> {
    change(store, id, now, |t| t.status = TaskStatus::Done)
}

/// Cancels an open task (it will not escalate; the playbook may open a new one).
pub fn cancel(store: &Store, id: u64, now: DateTime<Utc>) -> Result<Task, ServiceError> {
    change(store, id, now, |t| t.status = TaskStatus::Cancelled)
}

/// What [`snooze`] needs.
#[derive(Debug, Clone)]
pub struct SnoozeArgs {
    pub id: u64,
    /// The day it wakes, in `timezone`.
    pub until: NaiveDate,
    pub now: DateTime<Utc>,
    /// The config's zone: what "today" and the wake day mean.
    pub timezone: Tz,
}

/// Hides an open task until a later day; from that day on it is open again, and due.
pub fn snooze(store: &Store, args: &SnoozeArgs) -> Result<Task, ServiceError> {
    let today = args.now.with_timezone(&args.timezone).date_naive();
    if args.until <= today {
        return Err(ServiceError::NotAfterToday { until: args.until, today });
    }
    // The first instant of the wake day (a zone's midnight may not exist: DST).
    let wake =
        args.timezone.from_local_datetime(&args.until.and_time(chrono::NaiveTime::MIN)).earliest().map(|d| d.to_utc());
    change(store, args.id, args.now, |t| {
        t.status = TaskStatus::Snoozed;
        t.snoozed_until = Some(args.until);
        if let Some(w) = wake {
            if t.due.is_none_or(|d| d < w) {
                t.due = Some(w);
            }
        }
    })
}

/// How many tasks are open (snoozed ones included).
pub fn open_count(store: &Store) -> Result<u64, ServiceError> {
    let mut n = 0;
    for task in store.tasks() {
        n += u64::from(task?.is_open());
    }
    Ok(n)
}

/// Reads, checks and writes the task as one compare-and-swap ([`Store::replace_task`]):
/// the daemon's pass and its escalations run beside the API, and a change of theirs in
/// between is read again, never overwritten (nor a task closed meanwhile reopened).
fn change(store: &Store, id: u64, now: DateTime<Utc>, apply: impl Fn(&mut Task)) -> Result<Task, ServiceError> {
    loop {
        let before = store.task(id)?.ok_or_else(|| ServiceError::not_found("task", id))?;
        if !before.is_open() {
            return Err(ServiceError::TaskClosed { id, status: before.status });
        }
        let mut task = before.clone();
        apply(&mut task);
        task.updated = now;
        if store.replace_task(&before, &task)? {
            store.flush()?;
            return Ok(task);
        }
    }
}
