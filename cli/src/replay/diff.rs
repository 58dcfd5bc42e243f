//! What changed between two replayed states (`sealctl audit replay --diff
//! A B`): a pure function over the very views `--at` prints, so a diff
//! names exactly what the two states show differently.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ReplayState;
use crate::admin::{PrincipalRow, StoreRow};
use crate::secrets::SecretDetail;

/// Which part of the state a change is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Stores.
    Stores,
    /// Secrets.
    Secrets,
    /// Users and groups.
    Principals,
}

/// What happened to the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// It appeared.
    Added,
    /// It disappeared.
    Removed,
    /// One of its fields changed (`field`, `before`, `after`).
    Changed,
    /// A secret gained a version (`version`, `hash`).
    VersionAdded,
    /// A slug joined an access list (`field` the list, `after` the slug).
    AccessAdded,
    /// A slug left an access list (`field` the list, `before` the slug).
    AccessRemoved,
    /// A secret was deleted or destroyed (`before`, `after`: its deletion state).
    Deleted,
    /// A user joined a group (`subject` the group, `after` the user).
    MemberAdded,
    /// A user left a group (`subject` the group, `before` the user).
    MemberRemoved,
}

/// One change; the `-o json` / `-o yaml` fields (README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `stores`, `secrets` or `principals`.
    pub section: Section,
    /// The store's name, the secret's uri or the principal's slug.
    pub subject: String,
    /// What happened.
    pub change: ChangeKind,
    /// The field changed, or the access list.
    pub field: Option<String>,
    /// The value before (a field's, or the slug removed).
    pub before: Option<String>,
    /// The value after (a field's, or the slug added).
    pub after: Option<String>,
    /// For `version_added`: the version.
    pub version: Option<u64>,
    /// For `version_added`: its keyed hash.
    pub hash: Option<String>,
}

impl Change {
    fn new(section: Section, subject: &str, change: ChangeKind) -> Self {
        Change {
            section,
            subject: subject.to_owned(),
            change,
            field: None,
            before: None,
            after: None,
            version: None,
            hash: None,
        }
    }

    fn field(mut self, field: &str, before: Option<String>, after: Option<String>) -> Self {
        self.field = Some(field.to_owned());
        self.before = before;
        self.after = after;
        self
    }

    /// The change in one line, for people.
    pub fn describe(&self) -> String {
        let text = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let field = text(&self.field);
        let (before, after) = (text(&self.before), text(&self.after));
        let s = &self.subject;
        match self.change {
            ChangeKind::Added => match &self.after {
                Some(what) => format!("+ {s} ({what})"),
                None => format!("+ {s}"),
            },
            ChangeKind::Removed => format!("- {s}"),
            ChangeKind::Changed => format!("~ {s}: {field} {before} -> {after}"),
            ChangeKind::VersionAdded => format!(
                "+ {s}: version {} ({})",
                self.version.unwrap_or_default(),
                self.hash.clone().unwrap_or_default()
            ),
            ChangeKind::AccessAdded => format!("+ {s}: {field} {after}"),
            ChangeKind::AccessRemoved => format!("- {s}: {field} {before}"),
            ChangeKind::Deleted => format!("x {s}: {after} (was {before})"),
            ChangeKind::MemberAdded => format!("+ {s}: member {after}"),
            ChangeKind::MemberRemoved => format!("- {s}: member {before}"),
        }
    }
}

/// Everything that differs from `before` to `after`, by section, then
/// subject, in a stable order.
pub fn diff(before: &ReplayState, after: &ReplayState) -> Vec<Change> {
    let mut changes = stores(&before.stores, &after.stores);
    changes.extend(secrets(&before.secrets, &after.secrets));
    changes.extend(principals(&before.principals, &after.principals));
    changes
}

fn by_key<T>(rows: &[T], key: fn(&T) -> &str) -> BTreeMap<&str, &T> {
    rows.iter().map(|r| (key(r), r)).collect()
}

/// Added and removed keys, then `changed` for those in both.
fn compare<T>(
    section: Section,
    before: &BTreeMap<&str, &T>,
    after: &BTreeMap<&str, &T>,
    added: impl Fn(&T) -> Option<String>,
    mut changed: impl FnMut(&str, Option<&T>, &T, &mut Vec<Change>),
) -> Vec<Change> {
    let mut out = vec![];
    let keys: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (None, Some(new)) => {
                let mut change = Change::new(section, key, ChangeKind::Added);
                change.after = added(new);
                out.push(change);
                changed(key, None, new, &mut out);
            }
            (Some(_), None) => out.push(Change::new(section, key, ChangeKind::Removed)),
            (Some(old), Some(new)) => changed(key, Some(old), new, &mut out),
            (None, None) => {}
        }
    }
    out
}

fn stores(before: &[StoreRow], after: &[StoreRow]) -> Vec<Change> {
    let key: fn(&StoreRow) -> &str = |s| s.name.as_str();
    compare(
        Section::Stores,
        &by_key(before, key),
        &by_key(after, key),
        |s| Some(s.kind.clone()),
        |name, old, new, out| {
            let Some(old) = old else { return };
            let fields: [(&str, String, String); 6] = [
                ("kind", old.kind.clone(), new.kind.clone()),
                ("enabled", old.enabled.to_string(), new.enabled.to_string()),
                ("default", old.default.to_string(), new.default.to_string()),
                (
                    "reactor_key",
                    old.reactor_key.clone(),
                    new.reactor_key.clone(),
                ),
                (
                    "certificate_serial",
                    old.certificate_serial.to_string(),
                    new.certificate_serial.to_string(),
                ),
                (
                    "certified_by",
                    old.certified_by.clone(),
                    new.certified_by.clone(),
                ),
            ];
            for (field, was, is) in fields {
                if was != is {
                    out.push(
                        Change::new(Section::Stores, name, ChangeKind::Changed).field(
                            field,
                            Some(was),
                            Some(is),
                        ),
                    );
                }
            }
        },
    )
}

fn secrets(before: &[SecretDetail], after: &[SecretDetail]) -> Vec<Change> {
    let key: fn(&SecretDetail) -> &str = |s| s.uri.as_str();
    let empty = SecretDetail {
        uri: String::new(),
        creator: String::new(),
        deletion: "none".into(),
        versions: vec![],
        access: BTreeMap::new(),
        history: None,
    };
    compare(
        Section::Secrets,
        &by_key(before, key),
        &by_key(after, key),
        |_| None,
        |uri, old, new, out| {
            // A secret just added is compared with an empty one, so its
            // versions and access lists are named too.
            secret(uri, old.unwrap_or(&empty), new, out);
        },
    )
}

fn secret(uri: &str, old: &SecretDetail, new: &SecretDetail, out: &mut Vec<Change>) {
    let known: BTreeSet<u64> = old.versions.iter().map(|v| v.version).collect();
    for v in new.versions.iter().filter(|v| !known.contains(&v.version)) {
        let mut change = Change::new(Section::Secrets, uri, ChangeKind::VersionAdded);
        change.version = Some(v.version);
        change.hash = Some(v.hash.clone());
        out.push(change);
    }
    let lists: BTreeSet<&String> = old.access.keys().chain(new.access.keys()).collect();
    let none = vec![];
    for list in lists {
        let was: BTreeSet<&String> = old.access.get(list).unwrap_or(&none).iter().collect();
        let is: BTreeSet<&String> = new.access.get(list).unwrap_or(&none).iter().collect();
        for slug in is.difference(&was) {
            out.push(
                Change::new(Section::Secrets, uri, ChangeKind::AccessAdded).field(
                    list,
                    None,
                    Some((*slug).clone()),
                ),
            );
        }
        for slug in was.difference(&is) {
            out.push(
                Change::new(Section::Secrets, uri, ChangeKind::AccessRemoved).field(
                    list,
                    Some((*slug).clone()),
                    None,
                ),
            );
        }
    }
    if old.deletion != new.deletion {
        let kind = if matches!(new.deletion.as_str(), "deleted" | "destroyed") {
            ChangeKind::Deleted
        } else {
            ChangeKind::Changed
        };
        out.push(Change::new(Section::Secrets, uri, kind).field(
            "deletion",
            Some(old.deletion.clone()),
            Some(new.deletion.clone()),
        ));
    }
    if old.creator != new.creator && !old.creator.is_empty() {
        out.push(
            Change::new(Section::Secrets, uri, ChangeKind::Changed).field(
                "creator",
                Some(old.creator.clone()),
                Some(new.creator.clone()),
            ),
        );
    }
}

fn principals(before: &[PrincipalRow], after: &[PrincipalRow]) -> Vec<Change> {
    let key: fn(&PrincipalRow) -> &str = |p| p.slug.as_str();
    compare(
        Section::Principals,
        &by_key(before, key),
        &by_key(after, key),
        |p| {
            Some(if p.role.is_empty() {
                p.kind.clone()
            } else {
                format!("{} {}", p.kind, p.role)
            })
        },
        |slug, old, new, out| {
            if let Some(old) = old {
                for (field, was, is) in [
                    ("kind", &old.kind, &new.kind),
                    ("role", &old.role, &new.role),
                ] {
                    if was != is {
                        out.push(
                            Change::new(Section::Principals, slug, ChangeKind::Changed).field(
                                field,
                                Some(was.clone()),
                                Some(is.clone()),
                            ),
                        );
                    }
                }
                if old.stores != new.stores {
                    out.push(
                        Change::new(Section::Principals, slug, ChangeKind::Changed).field(
                            "stores",
                            Some(old.stores.join(",")),
                            Some(new.stores.join(",")),
                        ),
                    );
                }
            }
            // Memberships are named once, on the group (a user's `related`
            // lists the same facts from the other side).
            if new.kind != "group" {
                return;
            }
            let was: BTreeSet<&String> = old.iter().flat_map(|o| &o.related).collect();
            let is: BTreeSet<&String> = new.related.iter().collect();
            for user in is.difference(&was) {
                out.push(
                    Change::new(Section::Principals, slug, ChangeKind::MemberAdded).field(
                        "members",
                        None,
                        Some((*user).clone()),
                    ),
                );
            }
            for user in was.difference(&is) {
                out.push(
                    Change::new(Section::Principals, slug, ChangeKind::MemberRemoved).field(
                        "members",
                        Some((*user).clone()),
                        None,
                    ),
                );
            }
        },
    )
}

#[cfg(test)]
mod tests;
