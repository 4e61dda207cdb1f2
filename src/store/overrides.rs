//! Playbook updates of account fields, and how they stand against syncs.
//!
//! A playbook's `update` is applied by [`Store::commit`] with the firing that decided it:
//! the account record, its date index keys and a change mark, in the firing's
//! transaction. The `overrides` tree keeps, per account, each field a playbook set and the
//! value the *source* had for it then (`Null`: the source had none).
//!
//! Precedence, decided per field at each sync ([`reconcile`]):
//! - a sync that brings the same source value as that kept one leaves the playbook's
//!   value in place (the source did not change the field: re-importing yesterday's CRM
//!   export must not undo today's update);
//! - a sync that brings another value wins: the field takes it and the override is
//!   forgotten (someone changed the field in the source since, and the source is the
//!   record of truth for what it carries).
//!
//! A field a sync does not carry is untouched either way. Invariant: an override exists
//! only for a field a playbook set and no sync has changed since.

use std::collections::BTreeMap;

use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{codec, decode, incremental, Store, StoreError};
use crate::model::{Account, AccountPatch, FieldUpdate};

/// An account's overrides: field → the source's value the playbook's update replaced.
pub type Overrides = BTreeMap<String, Value>;

/// The trees a field update writes, inside [`Store::commit`]'s transaction.
pub(super) struct Trees<'a> {
    pub accounts: &'a TransactionalTree,
    pub dates: &'a TransactionalTree,
    pub changes: &'a TransactionalTree,
    pub overrides: &'a TransactionalTree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Applies one field update: the account (if it still exists and the value differs),
/// its date index, a change mark under `seq`, and the override.
pub(super) fn apply(t: &Trees, update: &FieldUpdate, seq: u64) -> TxResult<()> {
    let id = update.account.as_bytes();
    let Some(raw) = t.accounts.get(id)? else { return Ok(()) };
    let mut account: Account = decode("accounts", id, &raw).map_err(ConflictableTransactionError::Abort)?;
    let old_dates = incremental::date_keys(&account);
    let before = account.field(&update.field);
    if !account.set_field(&update.field, &update.value) {
        return Ok(());
    }
    t.accounts.insert(id, codec::encode(&account))?;
    let new_dates = incremental::date_keys(&account);
    for key in old_dates.iter().filter(|k| !new_dates.contains(k)) {
        t.dates.remove(key.as_slice())?;
    }
    for key in new_dates.iter().filter(|k| !old_dates.contains(k)) {
        t.dates.insert(key.as_slice(), &[])?;
    }
    t.changes.insert(incremental::change_key(seq, &update.account), &[])?;
    let mut overrides: Overrides = match t.overrides.get(id)? {
        Some(v) => decode("overrides", id, &v).map_err(ConflictableTransactionError::Abort)?,
        None => Overrides::new(),
    };
    // A second update of a field keeps the source's value from before the first.
    if !overrides.contains_key(&update.field) {
        overrides.insert(update.field.clone(), before);
        t.overrides.insert(id, codec::encode(&overrides))?;
    }
    Ok(())
}

/// Decides a sync's patch against the account's overrides: a field the source brings
/// unchanged is left out of the patch (the playbook's value stays); a field it brings
/// changed stays in the patch and its override goes. Returns whether `overrides` changed.
pub(super) fn reconcile(overrides: &mut Overrides, patch: &mut AccountPatch) -> bool {
    let before = overrides.len();
    overrides.retain(|field, source| match patch.value_of(field) {
        None => true,
        Some(v) if v == *source => {
            patch.drop_field(field);
            true
        }
        Some(_) => false,
    });
    overrides.len() != before
}

impl Store {
    /// The fields of an account that a playbook's update set and no sync has changed
    /// since, with the source's value each replaced.
    pub fn overrides_of(&self, account_id: &str) -> Result<Overrides, StoreError> {
        match self.overrides.get(account_id)? {
            Some(v) => decode("overrides", account_id.as_bytes(), &v),
            None => Ok(Overrides::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_repeating_the_source_keeps_the_update_and_a_changed_source_wins() {
        let mut overrides = Overrides::from([("lifecycle_stage".to_string(), Value::from("onboarding"))]);
        let mut same = AccountPatch {
            id: "A1".into(),
            lifecycle_stage: Some("onboarding".into()),
            owner: Some("ana@example.com".into()),
            ..Default::default()
        };
        assert!(!reconcile(&mut overrides, &mut same));
        assert_eq!(same.lifecycle_stage, None, "the playbook's value stays");
        assert_eq!(same.owner.as_deref(), Some("ana@example.com"), "other fields still apply");
        let mut changed =
            AccountPatch { id: "A1".into(), lifecycle_stage: Some("renewal".into()), ..Default::default() };
        assert!(reconcile(&mut overrides, &mut changed));
        assert_eq!(changed.lifecycle_stage.as_deref(), Some("renewal"));
        assert!(overrides.is_empty(), "the source changed the field: the override is forgotten");
    }
}
