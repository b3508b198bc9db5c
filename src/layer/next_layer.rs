use std::sync::Arc;

use tower_layer::Layer;

use super::NextOrInner;
use crate::{Next, routes::Routing};

/// Wraps a service so that requests Next.js owns go to Next.js and the rest reach the
/// service. Next owns: `/_next/*`, explicit routes, and (with filename routes on) its
/// pages and route handlers, `public/` files, next.config redirect and rewrite sources and
/// middleware matchers.
#[derive(Clone, Debug)]
pub struct NextLayer {
    next: Next,
    routing: Arc<Routing>,
}

impl NextLayer {
    /// A layer serving the prepared app `next`.
    pub fn new(next: Next) -> Self {
        NextLayer {
            next,
            routing: Arc::default(),
        }
    }

    /// Renders Next page `page` for requests whose path matches `pattern`, with the
    /// request's query plus the pattern's parameters: the seed's custom route
    /// `app.render(req, res, '/b', query)` for `/a`. Patterns use axum's syntax:
    /// `/a`, `/posts/{id}`, `/files/{*path}`.
    ///
    /// # Panics
    /// When `pattern` or `page` does not start with `/`.
    pub fn route(mut self, pattern: &str, page: &str) -> Self {
        Arc::make_mut(&mut self.routing).add_route(pattern, page);
        self
    }

    /// Serve filename routes (`app/` and `pages/` files) or not: next.config's
    /// `useFileSystemPublicRoutes`, set on the layer. Default: next.config's value. When
    /// off, requests for filename routes reach the inner service, client-side navigations
    /// to them too (`/_next/data/…` and `RSC: 1`), while explicit routes, `/_next/*`,
    /// `public/` files and next.config rules still reach Next.js.
    pub fn use_file_system_public_routes(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.routing).set_file_system_routes(on);
        self
    }
}

impl<S> Layer<S> for NextLayer {
    type Service = NextOrInner<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NextOrInner::new(self.next.clone(), self.routing.clone(), inner)
    }
}
