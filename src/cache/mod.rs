//! Whether native answers are current: the cache events each worker reports (every write
//! to Next's response cache and every revalidated tag), applied in order to the native
//! page index, and the fence a worker's response waits at until every event it may show
//! has been applied (see [`fence`]).

mod events;
mod fence;

pub(crate) use events::{CacheChange, CacheEvent, CachedEntry, WorkerEvent};
pub(crate) use fence::{Fence, Marks};

use std::sync::Arc;

use crate::{assets::Assets, runtime::SlotEvents};
use fence::Applied;

/// Applies each worker's cache events to the native responders `assets`, in order, and
/// publishes the last one applied per worker (the worker's responses wait on it at
/// `fence`). Runs until the workers' event channels close.
pub(crate) fn keep_current(
    events: Vec<SlotEvents>,
    assets: Option<Arc<Assets>>,
    fence: Arc<Fence>,
) {
    for events in events {
        tokio::spawn(apply(events, assets.clone(), fence.clone()));
    }
}

async fn apply(events: SlotEvents, assets: Option<Arc<Assets>>, fence: Arc<Fence>) {
    let SlotEvents {
        slot,
        mut received,
        applied,
    } = events;
    let mut progress = Applied::default();
    while let Some(event) = received.recv().await {
        let number = match &event {
            WorkerEvent::Cache(event) => Some(event.generation),
            WorkerEvent::Restarted => None,
        };
        if let Some(assets) = &assets {
            assets.apply(event).await;
        }
        let up_to = match number {
            Some(number) => progress.record(number),
            // The index was read again from disk, which holds whatever the last process
            // wrote, and the new process numbers its events above the last one's.
            None => {
                let noted = match fence.journal() {
                    Some(journal) => journal.noted(None).await.get(slot).copied().unwrap_or(0),
                    None => 0,
                };
                progress.restart(noted)
            }
        };
        applied.send_modify(|applied| *applied = (*applied).max(up_to));
    }
}
