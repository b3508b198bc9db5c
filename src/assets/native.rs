//! What the native responders decide: a native answer (ready, read from disk, or a
//! partially prerendered page's shell that a worker completes), or Node's.

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Response, StatusCode};

use super::{ImageMiss, Learn, NATIVE_HEADER};
use crate::body::Body;

/// A native answer: ready, or read from disk.
pub(crate) enum Native {
    Ready(Response<Body>),
    Pending(BoxFuture<'static, Response<Body>>),
    /// A partially prerendered page: its head and static shell at once, then the rest of
    /// the page from a worker that resumes the render (see `Next`'s handling).
    Resume(Resume),
}

/// What Rust sends of a partially prerendered page, and what a worker resumes from.
pub(crate) struct Resume {
    /// The response without its body: status and headers.
    pub head: Response<()>,
    /// The static shell, sent first.
    pub shell: Bytes,
    /// The shell's postponed state (Next's `postponed`), sent to the worker.
    pub state: Bytes,
}

impl Native {
    pub(super) fn ready(response: Response<Body>) -> Native {
        Native::Ready(response)
    }

    pub(super) fn pending(future: impl Future<Output = Response<Body>> + Send + 'static) -> Native {
        Native::Pending(Box::pin(future))
    }

    /// The response. A [`Native::Resume`] needs a worker: it is answered by `Next`, and
    /// here only with a 500 that says so.
    pub(crate) async fn into_response(self) -> Response<Body> {
        match self {
            Native::Ready(response) => response,
            Native::Pending(future) => future.await,
            Native::Resume(_) => {
                tracing::error!("a partially prerendered page reached a path without workers");
                crate::body::plain_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page needs a worker",
                )
            }
        }
    }

    pub(super) fn mark(self, marker: Option<&'static str>) -> Native {
        let Some(marker) = marker else {
            return self;
        };
        let mark = move |mut response: Response<Body>| {
            response
                .headers_mut()
                .insert(NATIVE_HEADER, HeaderValue::from_static(marker));
            response
        };
        match self {
            Native::Ready(response) => Native::Ready(mark(response)),
            Native::Pending(future) => Native::pending(async move { mark(future.await) }),
            Native::Resume(mut resume) => {
                resume
                    .head
                    .headers_mut()
                    .insert(NATIVE_HEADER, HeaderValue::from_static(marker));
                Native::Resume(resume)
            }
        }
    }
}

/// A native answer and the name of its responder (for [`NATIVE_HEADER`]).
pub(super) type Answered = (Native, &'static str);

/// Who answers a request, as the native responders see it.
pub(crate) enum Decision {
    Native(Native),
    /// Node answers; with `Some`, its gzip answer is kept when it is the expected one.
    Node(Option<Learn>),
    /// Node answers an image request that may make it optimize, in turn (see
    /// [`Optimizations`]).
    ImageMiss(ImageMiss),
}
