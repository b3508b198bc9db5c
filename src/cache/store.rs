//! The host's cache store: Next's cache entries, as the workers' handlers serialise them
//! (opaque bytes), in a byte-bounded LRU, and the tags revalidated so far, numbered so that
//! a worker can ask for the changes it has not seen.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::Mutex,
};

use bytes::Bytes;
use serde_json::Value;

/// Entries of one build (its id, with its `deploymentId`) never meet another build's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EntryKey {
    /// The build the entry belongs to.
    pub namespace: String,
    /// `incremental` (Next's `cacheHandler`) or `use-cache` (its `cacheHandlers`).
    pub kind: String,
    /// Next's cache key, as the worker sent it (percent-encoded).
    pub key: String,
}

impl EntryKey {
    fn weight(&self) -> usize {
        self.namespace.len() + self.kind.len() + self.key.len()
    }
}

/// Tags and their states as Next records them (a time in Next 15, `{ stale, expired }` in
/// Next 16).
pub(crate) type TagStates = Vec<(String, Value)>;

/// Why an entry was not stored.
#[derive(Debug)]
pub(crate) struct TooLarge {
    pub size: usize,
    pub limit: usize,
}

/// The entries and tags of every build this host serves.
pub(crate) struct CacheStore {
    entries: moka::sync::Cache<EntryKey, Bytes>,
    tags: Mutex<Tags>,
    max_entry_bytes: usize,
}

#[derive(Default)]
struct Tags {
    /// Tag changes recorded so far, on this host or received from others.
    seq: u64,
    /// Per build: each tag's state as Next records it (a time in Next 15, `{ stale,
    /// expired }` in Next 16), with the change that last moved it.
    by_namespace: HashMap<String, HashMap<String, (u64, Value)>>,
}

impl CacheStore {
    /// A store of at most `capacity_bytes` of entries; one entry may take at most an
    /// eighth of it.
    pub(crate) fn new(capacity_bytes: u64) -> CacheStore {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &EntryKey, value: &Bytes| {
                u32::try_from(key.weight() + value.len()).unwrap_or(u32::MAX)
            })
            .build();
        CacheStore {
            entries,
            tags: Mutex::default(),
            max_entry_bytes: usize::try_from(capacity_bytes / 8).unwrap_or(usize::MAX),
        }
    }

    /// The largest entry it keeps, in bytes.
    pub(crate) fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    pub(crate) fn get(&self, key: &EntryKey) -> Option<Bytes> {
        self.entries.get(key)
    }

    /// Stores an entry, replacing the one before.
    ///
    /// # Errors
    ///
    /// [`TooLarge`] when the entry is larger than an eighth of the store.
    pub(crate) fn put(&self, key: EntryKey, value: Bytes) -> Result<(), TooLarge> {
        if value.len() > self.max_entry_bytes {
            self.entries.invalidate(&key);
            return Err(TooLarge {
                size: value.len(),
                limit: self.max_entry_bytes,
            });
        }
        self.entries.insert(key, value);
        Ok(())
    }

    /// The keys of `namespace`'s entries of `kind` this store holds.
    pub(crate) fn keys_of(&self, namespace: &str, kind: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(key, _)| key.namespace == namespace && key.kind == kind)
            .map(|(key, _)| key.key.clone())
            .collect()
    }

    /// Forgets an entry (another host replaced it).
    pub(crate) fn remove(&self, key: &EntryKey) {
        self.entries.invalidate(key);
    }

    /// Forgets every entry (the host could not prove it saw every change of a shared
    /// store).
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// The number of tag changes recorded so far.
    pub(crate) fn tags_seq(&self) -> u64 {
        self.tags.lock().expect("tags lock").seq
    }

    /// Records tag states; times only move forward. Returns the new change count and the
    /// tags whose state changed.
    pub(crate) fn record_tags(
        &self,
        namespace: &str,
        states: Vec<(String, Value)>,
    ) -> (u64, Vec<String>) {
        let mut tags = self.tags.lock().expect("tags lock");
        let mut changed = Vec::new();
        for (tag, state) in states {
            let seq = tags.seq + 1;
            let states = tags.by_namespace.entry(namespace.to_owned()).or_default();
            match states.entry(tag.clone()) {
                Entry::Occupied(mut known) => {
                    let merged = merge(&known.get().1, &state);
                    if merged == known.get().1 {
                        continue;
                    }
                    known.insert((seq, merged));
                }
                Entry::Vacant(vacant) => {
                    vacant.insert((seq, state));
                }
            }
            tags.seq = seq;
            changed.push(tag);
        }
        (tags.seq, changed)
    }

    /// The tags of `namespace` changed after change number `since`, and the current count.
    pub(crate) fn tags_since(&self, namespace: &str, since: u64) -> (u64, TagStates) {
        let tags = self.tags.lock().expect("tags lock");
        let changed = tags
            .by_namespace
            .get(namespace)
            .map(|states| {
                states
                    .iter()
                    .filter(|(_, (seq, _))| *seq > since)
                    .map(|(tag, (_, state))| (tag.clone(), state.clone()))
                    .collect()
            })
            .unwrap_or_default();
        (tags.seq, changed)
    }
}

/// Two states of one tag, merged as Next updates its tags manifest: in Next 15 a time, the
/// later wins; in Next 16 an object of times, where the later revalidation's fields
/// (ordered by `at`, the revalidation's time) replace the earlier's: an `updateTag` after a
/// `revalidateTag(tag, profile)` moves `expired` back to now.
fn merge(known: &Value, new: &Value) -> Value {
    match (known, new) {
        (Value::Number(a), Value::Number(b)) => {
            if b.as_f64() > a.as_f64() {
                new.clone()
            } else {
                known.clone()
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let at = |state: &serde_json::Map<String, Value>| {
                state.get("at").and_then(Value::as_f64).unwrap_or(0.0)
            };
            let (earlier, later) = if at(b) >= at(a) { (a, b) } else { (b, a) };
            let mut merged = earlier.clone();
            merged.extend(later.clone());
            Value::Object(merged)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> EntryKey {
        EntryKey {
            namespace: "build".into(),
            kind: "incremental".into(),
            key: name.into(),
        }
    }

    #[test]
    fn the_later_revalidation_wins() {
        let store = CacheStore::new(1 << 20);
        let tag = |state: serde_json::Value| vec![("a".to_owned(), state)];
        let (seq, changed) =
            store.record_tags("build", tag(json!({"at": 5, "stale": 5, "expired": 900})));
        assert_eq!((seq, changed.len()), (1, 1));
        // An earlier revalidation reported late changes nothing, and is not a change.
        let (seq, changed) = store.record_tags("build", tag(json!({"at": 3, "stale": 3})));
        assert_eq!((seq, changed.len()), (1, 0));
        // updateTag after revalidateTag(tag, 'max'): expired moves back to now.
        let (seq, _) = store.record_tags("build", tag(json!({"at": 7, "expired": 7})));
        assert_eq!(seq, 2);
        // Next 15: the later time.
        store.record_tags("build", vec![("b".into(), json!(4))]);
        store.record_tags("build", vec![("b".into(), json!(2))]);
        let (_, since) = store.tags_since("build", 1);
        let since: HashMap<_, _> = since.into_iter().collect();
        assert_eq!(since["a"], json!({"at": 7, "stale": 5, "expired": 7}));
        assert_eq!(since["b"], json!(4));
        assert!(store.tags_since("other", 0).1.is_empty());
    }

    #[test]
    fn ten_thousand_entries_stay_within_the_bound() {
        let capacity = 1 << 20;
        let store = CacheStore::new(capacity);
        assert!(
            store
                .put(key("big"), Bytes::from(vec![0; 130 * 1024]))
                .is_err(),
            "an entry over an eighth of the store"
        );
        for i in 0..10_000 {
            store
                .put(key(&i.to_string()), Bytes::from(vec![0; 1024]))
                .unwrap();
        }
        store.entries.run_pending_tasks();
        assert!(store.entries.weighted_size() <= capacity);
        assert!(
            store.entries.entry_count() > 500,
            "the store keeps what fits"
        );
    }
}
