//! What a template may read: the shape of the context [`crate::lang::render`] gives
//! every template, so that `{{ account.nam }}` is an error at load (file:line:column,
//! "did you mean `name`?") instead of an undefined value at send time.
//!
//! Invariant: [`CONTEXT`] lists every name and field the render context provides (the
//! account as [`crate::lang::view::AccountView`] serialises it, its health, contacts,
//! the playbook, the day, the event, the recipient, digests' `accounts`). Maps whose keys
//! come from data (`metrics`, `fields`, `components`, `properties`) are open: any key
//! below them passes, since only the data can say which exist. Below a leaf (a string, a
//! number) or a list, anything passes too: `account.name.upper()` is a method call, which
//! minijinja reports as the same dotted path.

/// One node of the context's shape.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A value with no fields the check knows of (strings, numbers, dates, lists).
    Leaf,
    /// A map whose keys come from the data.
    Open,
    /// A map with exactly these fields.
    Fields(&'static [(&'static str, Shape)]),
}

const HEALTH: Shape = Shape::Fields(&[
    ("score", Shape::Leaf),
    ("band", Shape::Leaf),
    ("components", Shape::Open),
    ("date", Shape::Leaf),
    ("change_7d", Shape::Leaf),
    ("change_30d", Shape::Leaf),
    ("change_90d", Shape::Leaf),
]);

const CONTACT_FIELDS: &[(&str, Shape)] = &[
    ("id", Shape::Leaf),
    ("account_id", Shape::Leaf),
    ("email", Shape::Leaf),
    ("name", Shape::Leaf),
    ("role", Shape::Leaf),
    ("timezone", Shape::Leaf),
    ("unsubscribed", Shape::Leaf),
    ("fields", Shape::Open),
    ("updated_at", Shape::Leaf),
];

const ACCOUNT: Shape = Shape::Fields(&[
    ("id", Shape::Leaf),
    ("name", Shape::Leaf),
    ("segment", Shape::Leaf),
    ("arr", Shape::Leaf),
    ("owner", Shape::Leaf),
    ("manager", Shape::Leaf),
    ("renewal_date", Shape::Leaf),
    ("start_date", Shape::Leaf),
    ("lifecycle_stage", Shape::Leaf),
    ("timezone", Shape::Leaf),
    ("fields", Shape::Open),
    ("metrics", Shape::Open),
    ("updated_at", Shape::Leaf),
    ("health", HEALTH),
    ("contacts", Shape::Leaf),
]);

const EVENT: Shape = Shape::Fields(&[
    ("id", Shape::Leaf),
    ("account_id", Shape::Leaf),
    ("contact_id", Shape::Leaf),
    ("name", Shape::Leaf),
    ("timestamp", Shape::Leaf),
    ("properties", Shape::Open),
]);

/// The top of every template's context.
pub const CONTEXT: Shape = Shape::Fields(&[
    ("account", ACCOUNT),
    ("health", HEALTH),
    ("contacts", Shape::Leaf),
    ("playbook", Shape::Fields(&[("id", Shape::Leaf), ("name", Shape::Leaf)])),
    ("today", Shape::Leaf),
    ("event", EVENT),
    ("accounts", Shape::Leaf),
    // A contact for customer mail; `{ email }` for internal mail (the contact's other
    // fields are then undefined, which `recipient.name or "there"` allows for).
    ("recipient", Shape::Fields(CONTACT_FIELDS)),
    ("unsubscribe_url", Shape::Leaf),
]);

/// Why a dotted path is not in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The path up to and including the unknown part (`account.nam`).
    pub path: String,
    /// The names valid where the unknown one stands.
    pub known: Vec<&'static str>,
    /// The nearest known name, for "did you mean".
    pub near: Option<&'static str>,
}

/// Checks one dotted path (`account.metrics.nps`) against [`CONTEXT`].
pub fn check(path: &str) -> Result<(), Unknown> {
    let mut shape = CONTEXT;
    let mut seen = Vec::new();
    for part in path.split('.') {
        let fields = match shape {
            Shape::Leaf | Shape::Open => return Ok(()),
            Shape::Fields(f) => f,
        };
        seen.push(part);
        match fields.iter().find(|(name, _)| *name == part) {
            Some((_, next)) => shape = *next,
            None => {
                let known: Vec<&'static str> = fields.iter().map(|(n, _)| *n).collect();
                let near = crate::diagnostic::did_you_mean(part, known.iter().copied());
                return Err(Unknown { path: seen.join("."), known, near });
            }
        }
    }
    Ok(())
}

/// Where `path` is first read in a template's `source`: the byte offset of its first
/// whole occurrence (not `account.name` for `account.nam`), else of its first part.
pub fn offset_in(source: &str, path: &str) -> Option<usize> {
    let ident = |c: char| c == '_' || c.is_alphanumeric();
    let whole = |needle: &str| {
        source.match_indices(needle).map(|(at, _)| at).find(|&at| {
            let before = source[..at].chars().next_back();
            let after = source[at + needle.len()..].chars().next();
            !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
        })
    };
    whole(path).or_else(|| whole(path.split('.').next().unwrap_or(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_pass_and_open_maps_take_any_key() {
        for ok in [
            "account.name",
            "account.metrics.anything",
            "account.fields.go_live",
            "account.health.components.engagement",
            "health.change_7d",
            "event.properties.priority",
            "recipient.email",
            "account.name.upper",
            "today",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn an_unknown_field_names_where_and_the_near_name() {
        let e = check("account.nam").unwrap_err();
        assert_eq!((e.path.as_str(), e.near), ("account.nam", Some("name")));
        let e = check("account.health.scor").unwrap_err();
        assert_eq!((e.path.as_str(), e.near), ("account.health.scor", Some("score")));
        assert_eq!(check("acount.name").unwrap_err().near, Some("account"));
    }

    #[test]
    fn finds_the_whole_path_not_a_longer_one() {
        let src = "{{ account.name }} {{ account.nam }}";
        assert_eq!(offset_in(src, "account.nam"), Some(22));
        assert_eq!(offset_in("{{ x.account.nam }}", "account.nam"), None);
    }
}
