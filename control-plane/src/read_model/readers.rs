//! Which secrets a principal may read, found without visiting every secret
//! (ADR 0039).
//!
//! A user creates secrets only under a first path segment that is its slug
//! or one of its groups (`Secret::may_create`), so most readers of a secret
//! are named by its path already: those are found by a range of the
//! secrets map. Every other reader (a grant across owners, an admin's
//! secret given to a user, a creator writing under its group's segment) has
//! an entry in [`Grants`], kept by the read model as it folds each secret
//! event. A listing then costs what the caller may read (and what lies
//! under its own segments), not the size of the deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::domain::names::{MAX_SECRET_PATH_BYTES, SecretPath, SecretUri, Slug, StoreName};
use crate::domain::secret::{AccessList, Secret};

/// Reader → the secrets it reads while its name is not the secret's first
/// path segment. Derived from the secrets alone: never written to a
/// snapshot, rebuilt when one is read.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct Grants(BTreeMap<Slug, BTreeSet<SecretUri>>);

/// The readers of `secret` that its path does not name, sorted.
pub(crate) fn readers_elsewhere(secret: &Secret) -> Vec<Slug> {
    let Some(uri) = secret.uri() else {
        return Vec::new();
    };
    let owner = uri.path.owner_segment();
    let mut readers: Vec<Slug> = secret
        .access()
        .members(AccessList::Readers)
        .filter(|s| s.as_str() != owner)
        .cloned()
        .collect();
    readers.sort();
    readers
}

impl Grants {
    /// Every secret's readers elsewhere.
    pub(crate) fn of(secrets: &BTreeMap<SecretUri, Secret>) -> Grants {
        let mut grants = Grants::default();
        for (uri, secret) in secrets {
            grants.change(uri, &[], &readers_elsewhere(secret));
        }
        grants
    }

    /// Records that `uri`'s readers elsewhere went from `before` to `after`
    /// (both sorted).
    pub(crate) fn change(&mut self, uri: &SecretUri, before: &[Slug], after: &[Slug]) {
        for gone in before.iter().filter(|s| after.binary_search(s).is_err()) {
            if let Some(uris) = self.0.get_mut(gone) {
                uris.remove(uri);
                if uris.is_empty() {
                    self.0.remove(gone);
                }
            }
        }
        for new in after.iter().filter(|s| before.binary_search(s).is_err()) {
            self.0.entry(new.clone()).or_default().insert(uri.clone());
        }
    }
}

/// Up to `limit` of the secrets in `secrets` that one of `names` reads and
/// `keep` accepts, in uri order, after `after` and in `store` when given.
/// `names` are a principal's slug and its groups; `keep` should check the
/// reader lists again (a secret under a name's segment may not list it).
pub(crate) fn readable_by<'a>(
    secrets: &'a BTreeMap<SecretUri, Secret>,
    grants: &'a Grants,
    names: &[&Slug],
    store: Option<&StoreName>,
    after: Option<&SecretUri>,
    limit: usize,
    keep: impl Fn(&Secret) -> bool,
) -> Vec<(&'a SecretUri, &'a Secret)> {
    let mut found: Vec<(&SecretUri, &Secret)> = Vec::new();
    let stores = match store {
        Some(s) => vec![s.clone()],
        None => stores_in(secrets),
    };
    let keep = |(_, s): &(&SecretUri, &Secret)| keep(s);
    for name in names {
        // A slug is always a valid one-segment path.
        let Ok(own) = SecretPath::parse(name.as_str()) else {
            continue;
        };
        let (first_below, past_below) = below(name);
        for store in &stores {
            let at = |path: &SecretPath| SecretUri {
                store: store.clone(),
                path: path.clone(),
            };
            let exact = at(&own);
            if after.is_none_or(|a| *a < exact)
                && let Some(entry) = secrets.get_key_value(&exact)
                && keep(&entry)
            {
                found.push(entry);
            }
            let (lo, hi) = (at(&first_below), at(&past_below));
            let from = match after {
                Some(a) if *a >= lo => Bound::Excluded(a),
                _ => Bound::Included(&lo),
            };
            if after.is_some_and(|a| *a >= hi) {
                continue;
            }
            found.extend(
                secrets
                    .range::<SecretUri, _>((from, Bound::Excluded(&hi)))
                    .filter(keep)
                    .take(limit),
            );
        }
        if let Some(uris) = grants.0.get(*name) {
            let from = after.map_or(Bound::Unbounded, Bound::Excluded);
            found.extend(
                uris.range::<SecretUri, _>((from, Bound::Unbounded))
                    .filter(|uri| store.is_none_or(|s| uri.store == *s))
                    .filter_map(|uri| secrets.get_key_value(uri))
                    .filter(keep)
                    .take(limit),
            );
        }
    }
    found.sort_by(|a, b| a.0.cmp(b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    found.truncate(limit);
    found
}

/// The first and the first-past path under `name/`: every path `name/…`
/// lies in `[name/-, name0)`, since `-` is the lowest byte a segment may
/// start with and `0` the byte after `/`.
fn below(name: &Slug) -> (SecretPath, SecretPath) {
    let parse = |s: String| SecretPath::parse(s).expect("a slug with a valid suffix is a path");
    (parse(format!("{name}/-")), parse(format!("{name}0")))
}

/// The stores that hold at least one secret, each found with one seek.
fn stores_in(secrets: &BTreeMap<SecretUri, Secret>) -> Vec<StoreName> {
    let mut stores = Vec::new();
    let last = last_path();
    let mut next = secrets.keys().next();
    while let Some(uri) = next {
        stores.push(uri.store.clone());
        let past = SecretUri {
            store: uri.store.clone(),
            path: last.clone(),
        };
        next = secrets
            .range::<SecretUri, _>((Bound::Excluded(&past), Bound::Unbounded))
            .next()
            .map(|(u, _)| u);
    }
    stores
}

/// The greatest valid path: the longest run of the greatest segment byte.
fn last_path() -> SecretPath {
    SecretPath::parse("z".repeat(MAX_SECRET_PATH_BYTES)).expect("a path of the longest length")
}

#[cfg(test)]
mod tests;
