//! HTTP/1.1 upgrades (WebSocket, Next's HMR socket): after the worker answers
//! `101 Switching Protocols`, the two connections become one byte tunnel. Nothing is
//! re-framed; when either side closes, the other is closed.

use http::{HeaderMap, HeaderValue, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// A client's request to switch protocols, with the server's handle to its connection.
pub(crate) struct ClientUpgrade {
    on_upgrade: OnUpgrade,
    protocol: HeaderValue,
}

/// Takes the upgrade from a request that asks for one and whose server supports it
/// (hyper's `with_upgrades`, as `axum::serve` does). Other requests are proxied plainly.
pub(crate) fn take<B>(request: &mut http::Request<B>) -> Option<ClientUpgrade> {
    let asks = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = request.headers().get(header::UPGRADE)?.clone();
    if !asks {
        return None;
    }
    let on_upgrade = request.extensions_mut().remove::<OnUpgrade>()?;
    Some(ClientUpgrade {
        on_upgrade,
        protocol,
    })
}

impl ClientUpgrade {
    /// Puts back the two headers that the hop-by-hop cleanup removed.
    pub(crate) fn restore_request_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// Joins the client's connection and the worker's once both have switched.
    pub(crate) fn tunnel(self, worker: OnUpgrade) {
        tokio::spawn(async move {
            let (client, worker) = match tokio::try_join!(self.on_upgrade, worker) {
                Ok(both) => both,
                Err(err) => {
                    tracing::warn!(error = %err, "upgrade failed before the tunnel opened");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut worker = TokioIo::new(worker);
            match tokio::io::copy_bidirectional(&mut client, &mut worker).await {
                Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
                Err(err) => tracing::debug!(error = %err, "upgraded connection ended"),
            }
        });
    }
}

/// The `Connection` and `Upgrade` headers of a worker's `101` response, which the
/// hop-by-hop cleanup would drop.
pub(crate) fn switching_headers(headers: &HeaderMap) -> Vec<(header::HeaderName, HeaderValue)> {
    [header::CONNECTION, header::UPGRADE]
        .into_iter()
        .filter_map(|name| Some((name.clone(), headers.get(&name)?.clone())))
        .collect()
}
