//! The admin listener: liveness and readiness over plain HTTP/1.1, on an
//! address of its own (loopback by default), for load balancers, process
//! supervisors and probes that do not speak gRPC.
//!
//! - `GET /healthz`: `200 ok` while the process answers at all (liveness).
//! - `GET /readyz`: `200 ready` when the process says it is ready, else
//!   `503 not ready: <reason>` (readiness). What "ready" means is the
//!   caller's: the listener only publishes the [`Readiness`] it is given on
//!   a watch channel, so the rule lives in one place per process.
//!
//! Built on the hyper server parts tonic already brings in; no framework.
//! Answers carry no secret: a reason is a fixed sentence about the
//! process's state (read model behind, store unreachable, draining).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Whether a process is ready for traffic, and if not why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready: serve it traffic.
    Ready,
    /// Not ready, with a sentence saying why (no secret in it).
    NotReady(String),
}

impl Readiness {
    /// Whether this is [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// Binds the admin address, naming it when that fails.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Listen { addr, source })
}

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("cannot listen on admin address {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Renders the Prometheus text format for `/metrics`.
pub type Render = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Answers `/healthz` and `/readyz` on `listener` from `readiness` (and
/// `/metrics` from `metrics`, when given) until `shutdown` completes;
/// connections still open then are dropped.
pub async fn serve(
    listener: TcpListener,
    readiness: watch::Receiver<Readiness>,
    metrics: Option<Render>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let reply = match (&metrics, request.uri().path()) {
                    (Some(render), "/metrics") if request.method() == Method::GET => {
                        metrics_response(render())
                    }
                    _ => to_response(answer(&request, &readiness.borrow())),
                };
                async move { Ok::<_, Infallible>(reply) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// An answer: status and body text.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, one line of text.
    pub body: String,
}

/// What the listener answers to `request` when the process is `readiness`.
pub fn answer<B>(request: &Request<B>, readiness: &Readiness) -> Answer {
    let reply = |status, body: &str| Answer {
        status,
        body: format!("{body}\n"),
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    match request.uri().path() {
        "/healthz" => reply(StatusCode::OK, "ok"),
        "/readyz" => match readiness {
            Readiness::Ready => reply(StatusCode::OK, "ready"),
            Readiness::NotReady(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}"),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "not found; try /healthz or /readyz"),
    }
}

fn metrics_response(text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
}

fn to_response(answer: Answer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn liveness_is_ok_whatever_the_readiness() {
        let not = Readiness::NotReady("draining".into());
        assert_eq!(answer(&get("/healthz"), &not).status, StatusCode::OK);
        assert_eq!(
            answer(&get("/healthz"), &Readiness::Ready).status,
            StatusCode::OK
        );
    }

    #[test]
    fn readiness_answers_503_with_the_reason_when_not_ready() {
        let ready = answer(&get("/readyz"), &Readiness::Ready);
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (StatusCode::OK, "ready\n")
        );
        let not = answer(
            &get("/readyz"),
            &Readiness::NotReady("the read model is behind".into()),
        );
        assert_eq!(not.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(not.body, "not ready: the read model is behind\n");
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        assert_eq!(
            answer(&get("/metricz"), &Readiness::Ready).status,
            StatusCode::NOT_FOUND
        );
        let post = Request::post("/readyz").body(()).unwrap();
        assert_eq!(
            answer(&post, &Readiness::Ready).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn it_serves_over_tcp_and_stops_on_shutdown() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (set, readiness) = watch::channel(Readiness::NotReady("starting".into()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let render: Render = std::sync::Arc::new(|| "up 1\n".to_owned());
        let server = tokio::spawn(serve(listener, readiness, Some(render), async {
            let _ = stopped.await;
        }));
        assert!(http_get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        set.send_replace(Readiness::Ready);
        assert!(http_get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(http_get(addr, "/metrics").await.ends_with("\r\n\r\nup 1\n"));
        let _ = stop.send(());
        server.await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    async fn http_get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }
}
