//! Errors from starting a Next.js app. Errors while serving requests are HTTP responses,
//! never `Err`: see [`crate::Next::service`].

use std::{fmt, io, path::PathBuf};

/// Why [`crate::Next::prepare`] could not start the app. Each message says what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The project folder does not exist or is not a folder.
    ProjectDir {
        /// The folder that was given.
        dir: PathBuf,
        /// What went wrong reading it.
        source: io::Error,
    },
    /// No `node` executable could be run.
    NodeNotFound {
        /// The program that was tried.
        program: PathBuf,
    },
    /// The `next` package is not installed in the project.
    NextNotInstalled {
        /// The project folder.
        dir: PathBuf,
        /// The command that installs it, e.g. `npm ci`.
        install: String,
    },
    /// Production mode, but no usable build.
    BuildMissing {
        /// The project folder.
        dir: PathBuf,
        /// The detail: missing folder, or a build from another Next.js version.
        detail: String,
    },
    /// The worker did not become ready in time.
    StartTimeout {
        /// The configured limit.
        after: std::time::Duration,
        /// The last lines the worker printed on stderr.
        stderr: String,
    },
    /// The worker exited, or Next.js reported an error, while starting.
    WorkerFailed {
        /// What happened.
        reason: String,
        /// The last lines the worker printed on stderr.
        stderr: String,
    },
    /// The build output could not be read.
    Manifest {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
        /// The error underneath, when the file could not be read (an [`io::Error`]) or
        /// parsed (a `serde_json::Error`); `None` when the file is missing or a regex in it
        /// is not understood.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A [`crate::NextOptions`] setting that cannot work, e.g. `workers(0)`.
    InvalidOptions {
        /// Which setting, and why.
        detail: String,
    },
    /// [`crate::Next::reload`] after [`crate::Next::shutdown`].
    ShutDown,
    /// [`crate::Next::reload`] in development mode, where Next.js recompiles changed files
    /// itself (and two dev servers would write into the same `.next`).
    ReloadInDev,
    /// An operating-system error while setting up the workers.
    Io {
        /// The file or program involved.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ProjectDir { dir, source } => {
                write!(
                    f,
                    "Next.js project folder {} is not usable: {source}",
                    dir.display()
                )
            }
            Error::NodeNotFound { program } => write!(
                f,
                "could not run `{}`: install Node.js 18.18 or later, or point \
                 NextOptions::node_binary at it",
                program.display()
            ),
            Error::NextNotInstalled { dir, install } => write!(
                f,
                "the `next` package is not installed in {}: run `{install}` there",
                dir.display()
            ),
            Error::BuildMissing { dir, detail } => write!(
                f,
                "no production build usable in {} ({detail}): run `next build` there, \
                 or start with dev(true)",
                dir.display()
            ),
            Error::StartTimeout { after, stderr } => {
                write!(f, "the Next.js worker was not ready after {after:?}")?;
                write_stderr(f, stderr)
            }
            Error::WorkerFailed { reason, stderr } => {
                write!(f, "the Next.js worker failed to start: {reason}")?;
                write_stderr(f, stderr)
            }
            Error::Manifest { path, detail, .. } => {
                write!(f, "could not read {}: {detail}", path.display())
            }
            Error::InvalidOptions { detail } => write!(f, "invalid NextOptions: {detail}"),
            Error::ShutDown => write!(f, "the Next.js app has been shut down"),
            Error::ReloadInDev => write!(
                f,
                "reload() serves a new production build; in development mode Next.js \
                 recompiles changed files itself"
            ),
            Error::Io { path, source } => write!(
                f,
                "could not set up the Next.js workers ({}): {source}",
                path.display()
            ),
        }
    }
}

/// What introduces a worker's last stderr lines in an error's message.
pub(crate) const STDERR_TAIL: &str = "\nlast lines of its stderr:\n";

fn write_stderr(f: &mut fmt::Formatter<'_>, stderr: &str) -> fmt::Result {
    if stderr.trim().is_empty() {
        Ok(())
    } else {
        write!(f, "{STDERR_TAIL}{}", stderr.trim_end())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ProjectDir { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            Error::Manifest {
                source: Some(source),
                ..
            } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl Error {
    /// An [`Error::Io`] about `path`, for `map_err`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
