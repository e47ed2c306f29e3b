//! The lab's web view and Prometheus metrics, served by the lab controller over plain HTTP on
//! the host's loopback (one origin, no external assets): the topology picture, a page per
//! connection like Azure's connection blade, deployments with their operations, live updates
//! as server-sent events (`/events`), and `/metrics` for Prometheus.
//!
//! Plain HTTP because it is bound to 127.0.0.1 only, shows no secret (pre-shared keys never
//! reach a status, page or metric), and a browser or Prometheus then needs no lab CA.

mod html;
mod live;
mod metrics;
mod topology;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use tokio::sync::watch;

use crate::LabId;

/// The running web view.
#[derive(Debug, Clone)]
pub struct ViewEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its base URL (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// Prometheus' scrape target (`http://127.0.0.1:PORT/metrics`).
    pub metrics_url: String,
}

/// Shared by the handlers.
struct Ctx {
    snap: watch::Receiver<Arc<live::Snapshot>>,
    metrics: metrics::Metrics,
    /// Unix time in milliseconds of the last request that read a snapshot.
    last_request: std::sync::atomic::AtomicU64,
}

/// Binds the web view of lab `id` on 127.0.0.1:`port` (0: any free port), starts its
/// background refresher and serves it on the current tokio runtime until the process ends.
pub async fn serve(root: PathBuf, id: LabId, port: u16) -> std::io::Result<ViewEndpoint> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(Arc::new(live::empty(&id)));
    let ctx = Arc::new(Ctx {
        snap: rx,
        metrics: metrics::Metrics::new(),
        last_request: std::sync::atomic::AtomicU64::new(0),
    });
    let observer = ctx.clone();
    let watcher = ctx.clone();
    live::spawn(
        root,
        id,
        tx,
        move |s| observer.metrics.observe(s),
        move || watcher.watched(),
    )?;
    let app = axum::Router::new()
        .route("/", get(overview))
        .route("/connections/{site}/{name}", get(connection))
        .route("/topology.svg", get(topology_svg))
        .route("/events", get(events))
        .route("/live.json", get(live_doc))
        .route("/metrics", get(metrics_text))
        .route("/static/view.css", get(css))
        .route("/static/view.js", get(js))
        .fallback(not_found)
        .with_state(ctx)
        .layer(axum::middleware::from_fn(move |req, next| {
            same_host(addr.port(), req, next)
        }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("web view on {addr}: {e}");
        }
    });
    let url = format!("http://127.0.0.1:{}/", addr.port());
    Ok(ViewEndpoint {
        addr,
        metrics_url: format!("{url}metrics"),
        url,
    })
}

type Shared = State<Arc<Ctx>>;

/// Answers only requests addressed to this loopback listener by address or `localhost`, so a
/// web page elsewhere cannot read the view through a DNS name rebound to 127.0.0.1; answers
/// are never sniffed into another type and send no referrer.
async fn same_host(
    port: u16,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ok = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
    .iter()
    .any(|h| h == host);
    if ok {
        let mut res = next.run(req).await;
        let h = res.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        res
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers only to 127.0.0.1\n",
        )
            .into_response()
    }
}

impl Ctx {
    /// The latest snapshot; a request for it counts as someone looking.
    fn now(&self) -> Arc<live::Snapshot> {
        self.last_request.store(live::now_ms(), Ordering::Relaxed);
        self.snap.borrow().clone()
    }

    /// Whether a page follows the live updates or anything was asked for in the last 10 s.
    fn watched(&self) -> bool {
        self.metrics.sse_clients.load(Ordering::Relaxed) > 0
            || live::now_ms().saturating_sub(self.last_request.load(Ordering::Relaxed)) < 10_000
    }
}

/// Same-origin only, nothing inline: what a page may load.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn html_page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Html(body),
    )
        .into_response()
}

async fn overview(State(ctx): Shared) -> Response {
    ctx.metrics.pages.fetch_add(1, Ordering::Relaxed);
    html_page(StatusCode::OK, html::overview(&ctx.now()))
}

async fn connection(State(ctx): Shared, Path((site, name)): Path<(String, String)>) -> Response {
    ctx.metrics.pages.fetch_add(1, Ordering::Relaxed);
    let snap = ctx.now();
    match snap
        .model
        .connections
        .iter()
        .find(|c| c.site == site && c.name.eq_ignore_ascii_case(&name))
    {
        Some(c) => html_page(StatusCode::OK, html::connection(&snap, c)),
        None => html_page(
            StatusCode::NOT_FOUND,
            html::not_found(&snap, &format!("Site {site} has no connection {name}.")),
        ),
    }
}

async fn not_found(State(ctx): Shared) -> Response {
    html_page(
        StatusCode::NOT_FOUND,
        html::not_found(&ctx.now(), "There is no such page."),
    )
}

async fn topology_svg(State(ctx): Shared) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        topology::svg(&ctx.now()),
    )
        .into_response()
}

async fn live_doc(State(ctx): Shared) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html::live_json(&ctx.now()),
    )
        .into_response()
}

async fn metrics_text(State(ctx): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        ctx.metrics.render(&ctx.now()),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        include_str!("view.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        include_str!("view.js"),
    )
        .into_response()
}

/// Counts a live client for as long as its stream lives.
struct ClientGuard(Arc<std::sync::atomic::AtomicI64>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `/events`: the live document each time the refresher publishes a snapshot (every 250 ms),
/// as `event: state`.
async fn events(State(ctx): Shared) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = ctx.snap.clone();
    rx.mark_changed();
    ctx.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(ctx.metrics.sse_clients.clone());
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.changed().await.ok()?;
        let snap = rx.borrow_and_update().clone();
        // a browser that loses the stream (the controller restarted) tries again after 500 ms
        let ev = Event::default()
            .event("state")
            .retry(Duration::from_millis(500))
            .data(html::live_json(&snap));
        Some((Ok(ev), (rx, guard)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}
