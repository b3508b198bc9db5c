//! Connects the HTTP client to a worker's Unix socket, whatever the request URI says.

use std::{
    future::Future,
    io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// A hyper-util connector that always dials one Unix socket.
#[derive(Clone, Debug)]
pub(crate) struct UnixConnector {
    socket: Arc<Path>,
}

impl UnixConnector {
    pub(crate) fn new(socket: &Path) -> Self {
        UnixConnector {
            socket: socket.into(),
        }
    }
}

impl tower_service::Service<http::Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let socket = self.socket.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(&*socket).await?)) })
    }
}
