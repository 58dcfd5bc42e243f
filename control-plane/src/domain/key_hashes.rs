//! The keyed hashes of a value (SPEC §4), as events and the read model
//! hold them: a hash as its label and 32 bytes ([`StoredHash`]), and the
//! hash of each key ([`KeyHashes`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use compact_str::CompactString;
use sealplane_proto::keyed_hash::KeyedHash;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A keyed hash, written and read as its text
/// (`hmac-sha256-v2:<key id>:<64 hex digits>`), held in 40 bytes and no
/// allocation of its own: the digest as bytes and the label before it
/// (version and key id, the same for every hash of a deployment's
/// fingerprint key) as its place in a process-wide table (ADR 0031,
/// 0033). The read model holds four of them per version
/// of every secret (the value's and three keys' in a typical one); as
/// text each was a 96-byte allocation. Text that is not a keyed hash (the
/// domain refuses such reports; an old event might hold one) is kept as
/// written.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash(Held);

#[derive(Clone, PartialEq, Eq)]
enum Held {
    /// `label` is the label's place in [`LABELS`], which only grows: each
    /// label is there once, so equal places are equal labels.
    Digest {
        label: u8,
        digest: [u8; 32],
    },
    Text(Box<str>),
}

/// Most labels shared; a deployment has one per fingerprint key (and hash
/// version) it ever used. Hashes with any further label keep their text.
const MOST_LABELS: usize = 64;

/// The labels seen so far, each once.
static LABELS: Mutex<Vec<Arc<str>>> = Mutex::new(Vec::new());

/// The place of `label` in [`LABELS`] (added when new), or `None` when
/// [`MOST_LABELS`] others are held already.
fn shared(label: &str) -> Option<u8> {
    let mut labels = LABELS.lock().unwrap_or_else(|p| p.into_inner());
    let at = match labels.iter().position(|l| &**l == label) {
        Some(at) => at,
        None if labels.len() >= MOST_LABELS => return None,
        None => {
            labels.push(Arc::from(label));
            labels.len() - 1
        }
    };
    u8::try_from(at).ok()
}

/// The label at `place` in [`LABELS`].
fn label(place: u8) -> Arc<str> {
    let labels = LABELS.lock().unwrap_or_else(|p| p.into_inner());
    labels[usize::from(place)].clone()
}

impl StoredHash {
    /// Holds `text` (as a digest when it is a keyed hash).
    pub fn new(text: &str) -> Self {
        let compact = KeyedHash::parse(text).and_then(|parsed| {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(parsed.hex, &mut digest).ok()?;
            // The label is the text before the last colon: the parse
            // checked there are 64 hex digits after it.
            let label = shared(&text[..text.len() - parsed.hex.len() - 1])?;
            Some(Held::Digest { label, digest })
        });
        StoredHash(compact.unwrap_or_else(|| Held::Text(text.into())))
    }
}

impl fmt::Display for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Held::Digest { label: at, digest } => {
                write!(f, "{}:{}", label(*at), hex::encode(digest))
            }
            Held::Text(text) => f.write_str(text),
        }
    }
}

/// As its text: a keyed hash is no secret (SPEC §4).
impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl From<&str> for StoredHash {
    fn from(text: &str) -> Self {
        StoredHash::new(text)
    }
}

impl From<String> for StoredHash {
    fn from(text: String) -> Self {
        StoredHash::new(&text)
    }
}

/// Equal when it reads back as `other` (never adds a label to the table).
impl PartialEq<str> for StoredHash {
    fn eq(&self, other: &str) -> bool {
        match &self.0 {
            Held::Text(text) => &**text == other,
            Held::Digest { label: at, digest } => other
                .strip_prefix(&*label(*at))
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|hex| hex == hex::encode(digest)),
        }
    }
}

/// The place of `label` in [`LABELS`] if it is there (never adds it).
fn known(label: &str) -> Option<u8> {
    let labels = LABELS.lock().unwrap_or_else(|p| p.into_inner());
    let at = labels.iter().position(|l| &**l == label)?;
    u8::try_from(at).ok()
}

/// A hash in a binary form (the read-model snapshot, ADR 0034): the label
/// and the 32 bytes, not 64 hex digits to parse again; kept text as text.
#[derive(Serialize, Deserialize)]
enum Compact<'a> {
    Digest(&'a str, [u8; 32]),
    Text(&'a str),
}

impl StoredHash {
    /// The hash with `label` and `digest`: held as it was written when the
    /// label is known already (it was checked then), else read from its
    /// text like any other.
    fn from_digest(label: &str, digest: [u8; 32]) -> Self {
        match known(label) {
            Some(label) => StoredHash(Held::Digest { label, digest }),
            None => StoredHash::new(&format!("{label}:{}", hex::encode(digest))),
        }
    }
}

/// As its text in a human-readable format (events, JSON); as [`Compact`]
/// in a binary one.
impl Serialize for StoredHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.collect_str(self);
        }
        match &self.0 {
            Held::Digest { label: at, digest } => {
                Compact::Digest(&label(*at), *digest).serialize(serializer)
            }
            Held::Text(text) => Compact::Text(text).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for StoredHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return Ok(match Compact::deserialize(deserializer)? {
                Compact::Digest(label, digest) => StoredHash::from_digest(label, digest),
                // Through the parser too: held as a hash read from an
                // event would be (a digest when its label has room now).
                Compact::Text(text) => StoredHash::new(text),
            });
        }
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(StoredHash::new(&text))
    }
}

/// Key name → keyed hash, each key once, in key order: written as the JSON
/// map a `BTreeMap` writes, held as one sorted slice of exactly its length.
/// The read model keeps one per version of every secret and per recent
/// upload, and a value has a handful of keys: a `BTreeMap` would allocate a
/// node of eleven slots for each. A key's name is held inline up to 24
/// bytes (ADR 0033): names are short, and each was an allocation of its
/// own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHashes(Box<[(CompactString, StoredHash)]>);

impl KeyHashes {
    /// No keys.
    pub fn new() -> Self {
        KeyHashes::default()
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
    pub fn get(&self, key: &str) -> Option<&StoredHash> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    /// Sets the hash of `key`, returning the one it replaces.
    pub fn insert(&mut self, key: String, hash: String) -> Option<StoredHash> {
        let hash = StoredHash::new(&hash);
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, hash)),
            Err(i) => {
                let mut pairs = std::mem::take(&mut self.0).into_vec();
                pairs.insert(i, (key.into(), hash));
                self.0 = pairs.into_boxed_slice();
                None
            }
        }
    }

    /// (key, hash) in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &StoredHash)> {
        self.0.iter().map(|(k, h)| (&**k, h))
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }
}

impl From<BTreeMap<String, String>> for KeyHashes {
    fn from(map: BTreeMap<String, String>) -> Self {
        KeyHashes(
            map.into_iter()
                .map(|(k, h)| (CompactString::from(k), StoredHash::new(&h)))
                .collect(),
        )
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

/// (key, hash as text) in key order, as the API's maps take them.
impl IntoIterator for KeyHashes {
    type Item = (String, String);
    type IntoIter = std::iter::Map<
        std::vec::IntoIter<(CompactString, StoredHash)>,
        fn((CompactString, StoredHash)) -> (String, String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_vec()
            .into_iter()
            .map(|(k, h)| (k.into_string(), h.to_string()))
    }
}

impl Serialize for KeyHashes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// Read straight into the sorted slice, each name inline: no map, no
/// string of its own per name or hash. A key given twice keeps its last
/// hash, as a `BTreeMap` does.
impl<'de> Deserialize<'de> for KeyHashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = KeyHashes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of key names to keyed hashes")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyHashes, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<CompactString, StoredHash>()? {
                    entries.push(entry);
                }
                if !entries.is_sorted_by(|a, b| a.0 < b.0) {
                    // Latest first, so that the one kept of each name is
                    // the last given (the sort is stable).
                    entries.reverse();
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    entries.dedup_by(|later, kept| later.0 == kept.0);
                }
                Ok(KeyHashes(entries.into_boxed_slice()))
            }
        }
        deserializer.deserialize_map(Entries)
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

    fn v2(c: char) -> String {
        format!("hmac-sha256-v2:k1:{}", c.to_string().repeat(64))
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
            back.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["cert", "password", "user"]
        );
    }

    #[test]
    fn given_keys_when_looked_up_inserted_or_repeated_then_it_behaves_as_a_map() {
        let mut hashes = KeyHashes::from(map());
        assert_eq!(
            (hashes.len(), hashes.get("password"), hashes.get("nope")),
            (3, Some(&StoredHash::from("h2")), None)
        );
        assert_eq!(
            hashes.insert("password".into(), "h9".into()),
            Some("h2".into())
        );
        assert_eq!(hashes.insert("api".into(), "h0".into()), None);
        assert_eq!(hashes.iter().next(), Some(("api", &"h0".into())));
        assert_eq!(hashes.get("password"), Some(&"h9".into()));
        let repeated: KeyHashes = [
            ("k".to_owned(), "a".to_owned()),
            ("k".to_owned(), "b".to_owned()),
        ]
        .into();
        assert_eq!((repeated.len(), repeated.get("k")), (1, Some(&"b".into())));
        assert!(KeyHashes::new().is_empty());
    }

    #[test]
    fn given_key_names_when_held_then_short_ones_need_no_allocation_and_all_read_back() {
        let long = "a-key-name-longer-than-twenty-four-bytes".to_owned();
        let hashes: KeyHashes = [
            ("password".to_owned(), v2('a')),
            (long.clone(), v2('b')),
            ("twenty-four-bytes-exact!".to_owned(), v2('c')),
        ]
        .into();
        let inline: Vec<_> = hashes
            .0
            .iter()
            .map(|(k, _)| !k.is_heap_allocated())
            .collect();
        // In key order: the long name, "password", the 24-byte one.
        assert_eq!(inline, [false, true, true]);
        assert_eq!(hashes.get(&long), Some(&StoredHash::new(&v2('b'))));
        let back: Vec<(String, String)> = hashes.into_iter().collect();
        assert_eq!(back[0], (long, v2('b')));
        assert_eq!(back[1], ("password".to_owned(), v2('a')));
    }

    #[test]
    fn given_keyed_hashes_when_held_then_they_read_back_as_written_in_no_allocation_of_their_own() {
        for text in [
            v2('a'),
            "hmac-sha256:dev:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                .to_owned(),
        ] {
            let held = StoredHash::new(&text);
            assert!(matches!(held.0, Held::Digest { .. }), "{text}");
            assert_eq!(held.to_string(), text);
            assert_eq!(format!("{held:?}"), format!("{text:?}"));
            assert!(held == *text.as_str());
            let json = serde_json::to_string(&held).unwrap();
            assert_eq!(json, serde_json::to_string(&text).unwrap());
            assert_eq!(serde_json::from_str::<StoredHash>(&json).unwrap(), held);
        }
        // One label, held once for every hash that has it.
        let (a, b) = (StoredHash::new(&v2('a')), StoredHash::new(&v2('b')));
        let (Held::Digest { label: la, .. }, Held::Digest { label: lb, .. }) = (&a.0, &b.0) else {
            panic!("not held as digests");
        };
        assert_eq!(la, lb);
        assert_ne!(a, b);
        assert_eq!(std::mem::size_of::<StoredHash>(), 40);
    }

    #[test]
    fn given_text_that_is_not_a_keyed_hash_when_held_then_it_is_kept_exactly() {
        for text in [
            "h1",
            "",
            // Upper-case hex is not the format: kept as it was written, not
            // turned into the lower-case spelling.
            "hmac-sha256-v2:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "hmac-sha256-v2:k1:abc",
            "sha256:abc",
        ] {
            let held = StoredHash::new(text);
            assert!(matches!(held.0, Held::Text(_)), "{text}");
            assert_eq!(held.to_string(), text);
            assert!(held == *text);
        }
    }

    #[test]
    fn given_a_binary_form_when_hashes_are_written_then_they_are_bytes_and_read_back_as_they_were()
    {
        // Given a keyed hash, text kept as written, and a map of both
        let digest = StoredHash::new(&v2('d'));
        let text = StoredHash::new("sha256:abc");
        let hashes: KeyHashes = [
            ("user".to_owned(), v2('d')),
            ("old".to_owned(), "sha256:abc".to_owned()),
        ]
        .into();
        // When each is written in postcard and read back
        let bytes = postcard::to_allocvec(&digest).unwrap();
        // Then the digest is its 32 bytes, not 64 hex digits
        assert!(bytes.len() < 64, "{} bytes", bytes.len());
        assert!(bytes.ends_with(&[0xdd; 32]));
        assert_eq!(postcard::from_bytes::<StoredHash>(&bytes).unwrap(), digest);
        let back =
            postcard::from_bytes::<StoredHash>(&postcard::to_allocvec(&text).unwrap()).unwrap();
        assert!(matches!(back.0, Held::Text(_)));
        assert_eq!(back, text);
        let back =
            postcard::from_bytes::<KeyHashes>(&postcard::to_allocvec(&hashes).unwrap()).unwrap();
        assert_eq!(back, hashes);
    }

    #[test]
    fn given_a_label_this_process_has_not_seen_when_read_in_binary_then_it_is_checked_as_text() {
        // Given digests under labels no hash of this process has had: one
        // of a keyed hash, one that is not a label at all
        let fresh = Compact::Digest("hmac-sha256-v2:unseen-in-tests", [7; 32]);
        let bogus = Compact::Digest("not a label", [7; 32]);
        // When read back
        let read = |c: &Compact<'_>| {
            postcard::from_bytes::<StoredHash>(&postcard::to_allocvec(c).unwrap()).unwrap()
        };
        // Then the keyed hash is held as a digest and reads as its text;
        // the other is kept as the text it makes, never as a digest
        let text = format!("hmac-sha256-v2:unseen-in-tests:{}", "07".repeat(32));
        let held = read(&fresh);
        assert!(matches!(held.0, Held::Digest { .. }));
        assert_eq!(held.to_string(), text);
        let held = read(&bogus);
        assert!(matches!(held.0, Held::Text(_)));
        assert_eq!(held.to_string(), format!("not a label:{}", "07".repeat(32)));
    }

    #[test]
    fn given_json_with_keys_out_of_order_or_twice_when_read_then_it_is_the_map_a_btreemap_reads() {
        // Given a JSON object with its keys unsorted and one key twice
        let json = format!(
            r#"{{"user":"{}","cert":"{}","user":"{}","a":"{}"}}"#,
            v2('a'),
            v2('b'),
            v2('c'),
            v2('d')
        );
        // When read as key hashes and as a map
        let hashes: KeyHashes = serde_json::from_str(&json).unwrap();
        let map: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
        // Then they agree: sorted, the last hash of a key given twice
        assert_eq!(hashes, KeyHashes::from(map));
        assert_eq!(hashes.get("user"), Some(&StoredHash::new(&v2('c'))));
        let names: Vec<_> = hashes.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["a", "cert", "user"]);
    }
}
