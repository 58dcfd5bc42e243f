//! The keyed hash of each key of a value (SPEC §4), as events and the read
//! model hold them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Key name → keyed hash, each key once, in key order: written as the JSON
/// map a `BTreeMap` writes, held as one sorted vector of exactly its length.
/// The read model keeps one per version of every secret and per recent
/// upload, and a value has a handful of keys: a `BTreeMap` would allocate a
/// node of eleven slots for each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHashes(Vec<(String, String)>);

impl KeyHashes {
    /// No keys.
    pub fn new() -> Self {
        KeyHashes(Vec::new())
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hash of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).ok().map(|i| self.0[i].1.as_str())
    }

    /// Sets the hash of `key`, returning the one it replaces.
    pub fn insert(&mut self, key: String, hash: String) -> Option<String> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, hash)),
            Err(i) => {
                self.0.insert(i, (key, hash));
                None
            }
        }
    }

    /// (key, hash) in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, h)| (k, h))
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

impl From<BTreeMap<String, String>> for KeyHashes {
    fn from(map: BTreeMap<String, String>) -> Self {
        KeyHashes(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for KeyHashes {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// A key given twice keeps its last hash, as a `BTreeMap` does.
impl FromIterator<(String, String)> for KeyHashes {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        pairs.into_iter().collect::<BTreeMap<_, _>>().into()
    }
}

impl IntoIterator for KeyHashes {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for KeyHashes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for KeyHashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BTreeMap<String, String> {
        [("user", "h1"), ("cert", "h3"), ("password", "h2")]
            .into_iter()
            .map(|(k, h)| (k.to_owned(), h.to_owned()))
            .collect()
    }

    #[test]
    fn given_a_map_when_written_then_the_json_is_the_maps_and_reads_back() {
        let hashes = KeyHashes::from(map());
        let json = serde_json::to_string(&hashes).unwrap();
        assert_eq!(json, serde_json::to_string(&map()).unwrap());
        assert_eq!(json, r#"{"cert":"h3","password":"h2","user":"h1"}"#);
        let back: KeyHashes =
            serde_json::from_str(r#"{"user":"h1","password":"h2","cert":"h3"}"#).unwrap();
        assert_eq!(back, hashes);
        assert_eq!(
            back.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["cert", "password", "user"]
        );
    }

    #[test]
    fn given_keys_when_looked_up_inserted_or_repeated_then_it_behaves_as_a_map() {
        let mut hashes = KeyHashes::from(map());
        assert_eq!(
            (hashes.len(), hashes.get("password"), hashes.get("nope")),
            (3, Some("h2"), None)
        );
        assert_eq!(
            hashes.insert("password".into(), "h9".into()),
            Some("h2".to_owned())
        );
        assert_eq!(hashes.insert("api".into(), "h0".into()), None);
        assert_eq!(
            hashes.iter().next(),
            Some((&"api".to_owned(), &"h0".to_owned()))
        );
        assert_eq!(hashes.get("password"), Some("h9"));
        let repeated: KeyHashes = [
            ("k".to_owned(), "a".to_owned()),
            ("k".to_owned(), "b".to_owned()),
        ]
        .into();
        assert_eq!((repeated.len(), repeated.get("k")), (1, Some("b")));
        assert!(KeyHashes::new().is_empty());
    }
}
