//! Serving connections so that no client can hold the server: at most [`MAX_CONNECTIONS`] at once,
//! headers within [`HEADER_TIMEOUT`], a whole request within [`REQUEST_TIMEOUT`], and a handler's
//! panic logged once, in a line, instead of a backtrace per request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::ApiError;

/// Connections served at once; further clients wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// A client must have sent a request's headers this long after connecting or after its last
/// answer, or the connection is closed (a slow client cannot hold one open).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request — its body, the computation and the answer — must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Middleware: a request that takes longer than [`REQUEST_TIMEOUT`] (a body trickling in) is
/// answered 408.
pub async fn request_deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Logs a panic as one line on standard error (the request that hit it is answered 500 without
/// its text, see `api::blocking`).
pub fn log_panics_in_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "convlearn serve: a request failed at {at}: {}",
            message.replace('\n', " ")
        );
    }));
}

/// Serves `app` on `listener` until `shutdown` completes, each connection under the limits above.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return,
            p = Arc::clone(&permits).acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    eprintln!("convlearn serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    app.clone().oneshot(request)
                });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            // A client that goes away mid-request is no error of the server's.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
}
