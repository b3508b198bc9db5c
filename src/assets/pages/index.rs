//! The pages Rust answers for, by path, and how the worker's cache events change them: a
//! written entry replaces its page, a revalidated tag leaves its pages to Node until
//! Next.js writes them again, and a report that arrives late never undoes a newer one.

use std::{collections::HashMap, sync::Arc};

use super::{
    Context, Kind,
    answers::data_path,
    load::{self, Source},
    response::Page,
};
use crate::cache::CachedEntry;

/// A page path's state.
#[derive(Clone)]
pub(crate) enum Slot {
    Native(Arc<Page>),
    /// Next.js answers (invalidated and not yet written again, or not servable).
    Node,
}

impl Slot {
    /// The page made from `source`, or Node's when there is none or Rust cannot answer
    /// it as Next would.
    pub(super) fn of(path: &str, source: Option<Source>, cx: &Context<'_>) -> Slot {
        source
            .and_then(|source| Page::new(path, source, cx))
            .map_or(Slot::Node, |page| Slot::Native(Arc::new(page)))
    }
}

/// The pages Rust knows, by path (after basePath, without trailing slash).
#[derive(Clone, Default)]
pub(crate) struct PageIndex {
    slots: HashMap<String, Slot>,
    /// The page path of each `/_next/data/<build>/<page>.json` path.
    data: HashMap<String, String>,
    /// When the write applied last to each path began (ms since the epoch). Workers of a
    /// pool report on separate channels: a write that began earlier and is reported later
    /// is older than what the index holds.
    written: HashMap<String, u64>,
    /// When each tag was last revalidated (ms since the epoch): an entry with the tag
    /// written before is stale, however late its report arrives.
    revalidated: HashMap<String, u64>,
}

impl PageIndex {
    /// Whether `path` has a slot, native or Node's.
    pub(super) fn contains(&self, path: &str) -> bool {
        self.slots.contains_key(path)
    }

    pub(super) fn insert(&mut self, path: String, slot: Slot, cx: &Context<'_>) {
        if let Slot::Native(page) = &slot
            && page.has_data()
        {
            self.data
                .insert(data_path(&cx.settings.build_id, &path), path.clone());
        }
        self.slots.insert(path, slot);
    }

    /// The page at `path`, if Rust may answer for it.
    pub(crate) fn get(&self, path: &str) -> Option<&Arc<Page>> {
        match self.slots.get(path)? {
            Slot::Native(page) => Some(page),
            Slot::Node => None,
        }
    }

    /// The page whose data route is `path` (`/_next/data/<build>/<page>.json`).
    pub(crate) fn get_data(&self, path: &str) -> Option<&Arc<Page>> {
        self.get(self.data.get(path)?)
    }

    /// Applies a write to Next's response cache.
    pub(crate) fn apply_set(&mut self, entry: CachedEntry, cx: &Context<'_>) {
        let path = entry.pathname.clone();
        let at = entry.at;
        if self.written.get(&path).is_some_and(|&newer| newer > at) {
            tracing::debug!(%path, "an older write of the page reported late; ignored");
            return;
        }
        self.written.insert(path.clone(), at);
        let mut slot = self.slot_for(entry, cx);
        if let Slot::Native(page) = &slot
            && page
                .tags()
                .iter()
                .any(|tag| self.revalidated.get(tag).is_some_and(|&time| time >= at))
        {
            slot = Slot::Node;
        }
        if let Slot::Native(page) = &slot {
            tracing::debug!(path = %page.path(), "page replaced by Next.js");
        } else {
            tracing::debug!(%path, "page left to Next.js");
        }
        self.insert(path, slot, cx);
    }

    fn slot_for(&self, entry: CachedEntry, cx: &Context<'_>) -> Slot {
        let kind = match entry.kind.as_deref() {
            Some("APP_PAGE") => Kind::App,
            Some("PAGES") => Kind::PagesProps,
            _ => return Slot::Node,
        };
        let known = match self.slots.get(&entry.pathname) {
            Some(Slot::Native(page)) => Some(page.kind()),
            _ => None,
        };
        if known.is_some_and(|k| k != kind) {
            return Slot::Node;
        }
        let path = entry.pathname.clone();
        Slot::of(&path, load::reported(entry, kind, cx), cx)
    }

    /// Applies `revalidateTag(tags)`: the pages carrying one of them are Node's until
    /// Next.js writes them again.
    pub(crate) fn apply_revalidate_tags(&mut self, tags: &[String], at: u64) {
        for tag in tags {
            let time = self.revalidated.entry(tag.clone()).or_default();
            *time = (*time).max(at);
        }
        for slot in self.slots.values_mut() {
            if let Slot::Native(page) = slot
                && page.tags().iter().any(|tag| tags.contains(tag))
            {
                tracing::debug!(path = %page.path(), ?tags, "page invalidated by tag");
                *slot = Slot::Node;
            }
        }
    }
}
