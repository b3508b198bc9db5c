//! [`NextLayer`]: the tower `Layer`, holding the [`NextService`] whose builder methods it
//! shares.

use tower_layer::Layer;

use super::NextMiddleware;
use crate::{Next, NextService};

/// Wraps a service so that requests Next.js owns go to Next.js and the rest reach the
/// service. Next owns: `/_next/*`, explicit routes, and (with filename routes on) its
/// pages and route handlers, `public/` files, next.config redirect and rewrite sources and
/// middleware matchers. Made by [`NextLayer::new`] or [`Next::layer`].
///
/// The builder methods are [`NextService`]'s: the layer's Next.js side is that service.
#[derive(Clone, Debug)]
pub struct NextLayer {
    next: NextService,
}

impl NextLayer {
    /// A layer serving the prepared app `next`.
    pub fn new(next: Next) -> Self {
        NextLayer {
            next: next.service(),
        }
    }

    /// Renders Next page `page` for requests whose path matches `pattern`: see
    /// [`NextService::route`].
    ///
    /// # Panics
    /// When `pattern` does not start with `/`.
    pub fn route(self, pattern: &str, page: &str) -> Self {
        NextLayer {
            next: self.next.route(pattern, page),
        }
    }

    /// Serve filename routes or not (next.config's `useFileSystemPublicRoutes`): see
    /// [`NextService::use_file_system_public_routes`]. When off, requests for filename
    /// routes reach the inner service.
    pub fn use_file_system_public_routes(self, on: bool) -> Self {
        NextLayer {
            next: self.next.use_file_system_public_routes(on),
        }
    }
}

impl<S> Layer<S> for NextLayer {
    type Service = NextMiddleware<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NextMiddleware::new(self.next.clone(), inner)
    }
}
