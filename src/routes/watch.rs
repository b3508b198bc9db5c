//! Dev mode: watching the project's route folders, so that a page added while the server
//! runs is owned at once and a deleted one stops being owned.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches `app/`, `pages/` (also under `src/`) and the project folder itself (for the
/// middleware or proxy file and for route folders created later). Each relevant change
/// sends one message; the channel closes when the watcher is dropped.
pub(crate) fn watch_dev_routes(
    dir: &Path,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let (changed, receiver) = mpsc::unbounded_channel();
    let ignored: Vec<PathBuf> = [".next", "node_modules", ".git"]
        .iter()
        .map(|name| dir.join(name))
        .collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
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
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    for base in [dir.to_owned(), dir.join("src")] {
        for folder in ["app", "pages"] {
            let folder = base.join(folder);
            if folder.is_dir() {
                watcher.watch(&folder, RecursiveMode::Recursive)?;
            }
        }
    }
    Ok((watcher, receiver))
}
