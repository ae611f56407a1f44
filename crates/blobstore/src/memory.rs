//! In-memory objects for tests and fixtures.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobStore, Error, Listing, ObjectMeta, check_range};

/// Objects held in memory. Writable through [`MemoryStore::put`] so tests can build repositories.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, SystemTime)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) an object.
    pub fn put(&self, key: &str, data: impl Into<Bytes>) {
        self.lock()
            .insert(key.to_owned(), (data.into(), SystemTime::now()));
    }

    /// Removes an object; returns whether it existed.
    pub fn remove(&self, key: &str) -> bool {
        self.lock().remove(key).is_some()
    }

    /// A copy of an object's bytes.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).map(|(b, _)| b.clone())
    }

    /// All keys.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, SystemTime)>> {
        // A poisoned map is still consistent: every mutation is a single insert/remove.
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn meta(key: &str, data: &Bytes, modified: SystemTime) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: data.len() as u64,
        modified: Some(modified),
    }
}

#[async_trait]
impl BlobStore for MemoryStore {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, t))| meta(k, v, *t))
            .collect())
    }

    async fn list_dir(&self, prefix: &str) -> Result<Listing, Error> {
        let mut out = Listing::default();
        for m in self.list(prefix).await? {
            match m.key[prefix.len()..].find('/') {
                Some(i) => {
                    let p = &m.key[..=prefix.len() + i];
                    // Keys are sorted, so equal prefixes are adjacent.
                    if out.prefixes.last().is_none_or(|last| last != p) {
                        out.prefixes.push(p.to_owned());
                    }
                }
                None => out.objects.push(m),
            }
        }
        Ok(out)
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        self.object(key).ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, Error> {
        let b = self.get(key).await?;
        check_range(key, &range, b.len() as u64)?;
        // Both bounds are <= b.len(), which fits usize.
        Ok(b.slice(range.start as usize..range.end as usize))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        self.lock()
            .get(key)
            .map(|(v, t)| meta(key, v, *t))
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_lists_one_level_like_an_object_store() {
        let m = MemoryStore::new();
        for k in ["a/1", "a/2/x", "a/2/y", "a/3/z", "a/b", "b"] {
            m.put(k, "v");
        }
        let l = m.list_dir("a/").await.unwrap();
        assert_eq!(l.prefixes, ["a/2/", "a/3/"]);
        let keys: Vec<_> = l.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a/1", "a/b"]);
        assert_eq!(m.list("a/2").await.unwrap().len(), 2);
        assert_eq!(m.head("b").await.unwrap().size, 1);
        assert!(matches!(
            m.get_range("b", 0..2).await,
            Err(Error::InvalidRange { .. })
        ));
    }
}
