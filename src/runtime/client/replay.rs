//! A request body that can be taken back until hyper first reads it, so a request whose
//! worker turned out to be unreachable can go to another worker without being buffered.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::body::{Body, BoxError};

/// The body as hyper sees it. It holds the real body in a cell shared with [`Unread`]
/// until the first frame is asked for.
pub(crate) struct Replayable {
    cell: Arc<Mutex<Option<Body>>>,
    body: Option<Body>,
}

/// The other handle on the cell: takes the body back if hyper never read it.
pub(crate) struct Unread {
    cell: Arc<Mutex<Option<Body>>>,
}

impl Replayable {
    pub(crate) fn new(body: Body) -> (Replayable, Unread) {
        let cell = Arc::new(Mutex::new(Some(body)));
        (
            Replayable {
                cell: cell.clone(),
                body: None,
            },
            Unread { cell },
        )
    }

    fn with_body<T>(&self, f: impl FnOnce(Option<&Body>) -> T) -> T {
        match &self.body {
            Some(body) => f(Some(body)),
            None => f(self.cell.lock().expect("body cell").as_ref()),
        }
    }
}

impl Unread {
    /// The body, if hyper has not started reading it.
    pub(crate) fn take(&self) -> Option<Body> {
        self.cell.lock().expect("body cell").take()
    }
}

impl http_body::Body for Replayable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.body.is_none() {
            // From now on the body is hyper's: taken out of the cell for good.
            let taken = self.cell.lock().expect("body cell").take();
            match taken {
                Some(body) => self.body = Some(body),
                None => return Poll::Ready(None),
            }
        }
        let body = self.body.as_mut().expect("taken above");
        Pin::new(body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.with_body(|body| body.is_none_or(http_body::Body::is_end_stream))
    }

    fn size_hint(&self) -> SizeHint {
        self.with_body(|body| {
            body.map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
        })
    }
}
