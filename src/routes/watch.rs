//! Dev mode: watching the project's route folders, so that a page added while the server
//! runs is owned at once and a deleted one stops being owned.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// The folders where Next looks for routes, under the project and under `src/`.
const ROUTE_FOLDERS: [&str; 4] = ["app", "pages", "src/app", "src/pages"];

/// Watches `app/`, `pages/` (also under `src/`) recursively, and the project folder and
/// `src/` themselves (for the middleware or proxy file and for route folders created
/// later). Each relevant change sends one message; the channel closes when this is dropped.
pub(crate) struct DevWatch {
    watcher: notify::RecommendedWatcher,
    dir: PathBuf,
    /// The folders watched so far.
    watched: Vec<PathBuf>,
}

impl DevWatch {
    pub(crate) fn start(dir: &Path) -> notify::Result<(DevWatch, mpsc::UnboundedReceiver<()>)> {
        let (changed, receiver) = mpsc::unbounded_channel();
        let ignored: Vec<PathBuf> = [".next", "node_modules", ".git"]
            .iter()
            .map(|name| dir.join(name))
            .collect();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(event) => {
                    !event.kind.is_access()
                        && event
                            .paths
                            .iter()
                            .any(|path| !ignored.iter().any(|skip| path.starts_with(skip)))
                }
                Err(_) => true,
            };
            if relevant {
                let _ = changed.send(());
            }
        })?;
        let mut watch = DevWatch {
            watcher,
            dir: dir.to_owned(),
            watched: Vec::new(),
        };
        watch.watcher.watch(dir, RecursiveMode::NonRecursive)?;
        watch.watch_new_folders()?;
        Ok((watch, receiver))
    }

    /// Starts watching the route folders (and `src/`) created since the last call. Their
    /// content is read from disk by the route scan that follows, so files written before
    /// the watch began are not missed.
    pub(crate) fn watch_new_folders(&mut self) -> notify::Result<()> {
        let src = self.dir.join("src");
        if src.is_dir() && !self.watched.contains(&src) {
            self.watcher.watch(&src, RecursiveMode::NonRecursive)?;
            self.watched.push(src);
        }
        for folder in ROUTE_FOLDERS {
            let folder = self.dir.join(folder);
            if folder.is_dir() && !self.watched.contains(&folder) {
                self.watcher.watch(&folder, RecursiveMode::Recursive)?;
                tracing::debug!(folder = %folder.display(), "watching a route folder");
                self.watched.push(folder);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The next change message within a second, draining a burst.
    async fn changed(receiver: &mut mpsc::UnboundedReceiver<()>) -> bool {
        let got = tokio::time::timeout(Duration::from_secs(1), receiver.recv())
            .await
            .is_ok();
        tokio::time::sleep(Duration::from_millis(100)).await;
        while receiver.try_recv().is_ok() {}
        got
    }

    #[tokio::test]
    async fn a_route_folder_created_later_is_watched_too() {
        let dir = tempfile::tempdir().unwrap();
        let (mut watch, mut receiver) = DevWatch::start(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("src/app/first")).unwrap();
        assert!(changed(&mut receiver).await, "src/ created");
        watch.watch_new_folders().unwrap();
        assert_eq!(watch.watched.len(), 2, "{:?}", watch.watched);

        // A page deep in the new folder is seen.
        std::fs::create_dir_all(dir.path().join("src/app/later")).unwrap();
        std::fs::write(dir.path().join("src/app/later/page.js"), "x").unwrap();
        assert!(changed(&mut receiver).await, "a page in src/app");
    }
}
