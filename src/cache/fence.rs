//! The cache fence: before a worker's response goes out, the native responders must know
//! every change to Next's response cache that the response may show, so that no native
//! answer after it is older.
//!
//! Each worker numbers its cache events when the change begins (its generation) and sends
//! the highest number taken with every response; events arrive when the change is done, so
//! "applied" counts unbroken runs ([`Applied`]). With a pool, a worker also answers from
//! entries the others
//! wrote to the shared cache: before a write, the writer notes `<slot> <generation>` in
//! the pool's journal, and every response carries the journal's length. Whatever a
//! response shows was noted within that length, so waiting for the noted events of every
//! worker is enough.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::runtime::protocol;
use tokio::{
    io::{AsyncReadExt, AsyncSeekExt},
    sync::{Mutex, watch},
};

/// How long a worker's response may wait for the cache events it may show.
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// What a worker's response says about the cache events before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// The worker's last cache event when it sent the headers.
    pub generation: Option<u64>,
    /// The journal's length when it sent the headers (pools only).
    pub journal: Option<u64>,
}

impl Marks {
    /// Takes the marks out of a worker's response headers (the client never sees them).
    pub(crate) fn take(headers: &mut http::HeaderMap) -> Marks {
        let mut number = |name| {
            let value = headers.remove(name)?;
            value.to_str().ok()?.parse().ok()
        };
        Marks {
            generation: number(protocol::GENERATION),
            journal: number(protocol::JOURNAL),
        }
    }
}

/// The applied cache events of one generation's workers, and its journal.
pub(crate) struct Fence {
    /// Per worker slot: the generation of the last event applied to the native responders.
    applied: Vec<watch::Receiver<u64>>,
    journal: Option<Journal>,
}

impl Fence {
    /// The fence of a generation whose workers publish their applied events on `applied`.
    /// With `journal` (a pool whose pages are answered natively), the journal file is
    /// created there, empty: the workers note their writes in it.
    pub(crate) fn create(
        applied: Vec<watch::Receiver<u64>>,
        journal: Option<PathBuf>,
    ) -> std::io::Result<Fence> {
        let slots = applied.len();
        let journal = journal
            .map(|path| Journal::create(&path, slots))
            .transpose()?;
        Ok(Fence { applied, journal })
    }

    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Removes the fence's files (its journal), once the generation's workers are gone.
    pub(crate) fn remove_files(&self) {
        if let Some(journal) = &self.journal {
            let _ = std::fs::remove_file(&journal.path);
        }
    }

    /// Waits until the events a response of worker `slot` may show are applied: its own
    /// up to `marks.generation`, and every worker's noted in the journal up to
    /// `marks.journal`. Gives up after [`EVENT_WAIT`] (a warning): a lost event must not
    /// hold responses forever.
    pub(crate) async fn wait(&self, slot: usize, marks: Marks) {
        let mut wanted: Vec<(usize, u64)> = Vec::new();
        if let Some(generation) = marks.generation {
            wanted.push((slot, generation));
        }
        if let (Some(length), Some(journal)) = (marks.journal, &self.journal) {
            wanted.extend(journal.noted(Some(length)).await.into_iter().enumerate());
        }
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        for (slot, generation) in wanted {
            let Some(applied) = self.applied.get(slot) else {
                continue;
            };
            if *applied.borrow() >= generation {
                continue;
            }
            let mut applied = applied.clone();
            let caught_up =
                tokio::time::timeout_at(deadline, applied.wait_for(|g| *g >= generation)).await;
            if !matches!(caught_up, Ok(Ok(_))) {
                tracing::warn!(
                    slot,
                    generation,
                    "cache events of the worker not applied in time"
                );
            }
        }
    }
}

/// The events of one worker applied so far, as "every number up to here". A worker numbers
/// an event when the change begins and reports it when it is done, so events arrive in the
/// order they finish.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    contiguous: u64,
    ahead: std::collections::BTreeSet<u64>,
}

impl Applied {
    /// Records event `number`; returns the number up to which every event is applied.
    pub(crate) fn record(&mut self, number: u64) -> u64 {
        if number > self.contiguous {
            self.ahead.insert(number);
        }
        while self.ahead.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
        self.contiguous
    }

    /// A new process took over, numbering above every event the last one reported and
    /// above `noted` (its slot's highest number in the journal): a number the last process
    /// took but never reported will not come.
    pub(crate) fn restart(&mut self, noted: u64) -> u64 {
        let highest = self.ahead.last().copied().unwrap_or(0).max(noted);
        self.contiguous = self.contiguous.max(highest);
        self.ahead.clear();
        self.contiguous
    }
}

/// The pool's journal file, read as far as responses need.
pub(crate) struct Journal {
    path: PathBuf,
    read: Mutex<JournalRead>,
}

#[derive(Default)]
struct JournalRead {
    /// Bytes read, up to the end of the last whole line.
    offset: u64,
    /// Per slot, the highest generation noted in what was read.
    noted: Vec<u64>,
}

impl Journal {
    /// Creates the (empty) journal of `slots` workers.
    fn create(path: &Path, slots: usize) -> std::io::Result<Journal> {
        std::fs::write(path, "")?;
        Ok(Journal {
            path: path.to_owned(),
            read: Mutex::new(JournalRead {
                offset: 0,
                noted: vec![0; slots],
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Per slot, the highest generation noted in the journal's first `length` bytes (or
    /// more), or in the whole journal with `None`. The file is read only when it grew.
    pub(crate) async fn noted(&self, length: Option<u64>) -> Vec<u64> {
        let mut read = self.read.lock().await;
        if length.is_none_or(|length| length > read.offset)
            && let Err(err) = read.catch_up(&self.path).await
        {
            tracing::warn!(error = %err, journal = %self.path.display(), "could not read the cache journal");
        }
        read.noted.clone()
    }
}

impl JournalRead {
    async fn catch_up(&mut self, path: &Path) -> std::io::Result<()> {
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).await?;
        // Only whole lines: a worker may be writing the last one.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in text[..whole].split(|&b| b == b'\n') {
            let line = std::str::from_utf8(line).unwrap_or("");
            let mut numbers = line.split(' ').map(str::parse::<u64>);
            if let (Some(Ok(slot)), Some(Ok(generation))) = (numbers.next(), numbers.next())
                && let Some(noted) = self.noted.get_mut(slot as usize)
            {
                *noted = (*noted).max(generation);
            }
        }
        self.offset += whole as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_whole_lines_and_keeps_the_highest_generation_per_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let journal = Journal::create(&path, 2).unwrap();
        assert_eq!(journal.noted(Some(0)).await, vec![0, 0]);
        std::fs::write(&path, "0 1\n1 4\n0 2\n1 3\n0 9").unwrap();
        // The unfinished last line is not taken.
        assert_eq!(journal.noted(None).await, vec![2, 4]);
        std::fs::write(&path, "0 1\n1 4\n0 2\n1 3\n0 9\n7 1\n").unwrap();
        // A slot the pool does not have is ignored.
        assert_eq!(journal.noted(Some(22)).await, vec![9, 4]);
    }

    #[test]
    fn applied_counts_only_unbroken_runs() {
        let mut applied = Applied::default();
        assert_eq!(applied.record(2), 0, "1 is still under way");
        assert_eq!(applied.record(3), 0);
        assert_eq!(applied.record(1), 3);
        assert_eq!(applied.record(1), 3, "a repeat changes nothing");
        assert_eq!(applied.record(5), 3);
        // The process died with 4 unreported; the next one numbers from 6.
        assert_eq!(applied.restart(0), 5);
        assert_eq!(applied.record(6), 6);
        assert_eq!(applied.restart(9), 9, "the journal noted 9");
    }

    #[tokio::test]
    async fn waits_for_the_events_noted_by_other_workers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (own, own_rx) = watch::channel(3);
        let (other, other_rx) = watch::channel(0);
        let fence =
            std::sync::Arc::new(Fence::create(vec![own_rx, other_rx], Some(path.clone())).unwrap());
        std::fs::write(&path, "1 1\n").unwrap();
        let waiting = tokio::spawn({
            let fence = fence.clone();
            async move {
                let marks = Marks {
                    generation: Some(3),
                    journal: Some(4),
                };
                fence.wait(0, marks).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "passed before the other worker's event"
        );
        other.send(1).unwrap();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the fence opens once the event is applied")
            .unwrap();
        drop(own);
    }
}
