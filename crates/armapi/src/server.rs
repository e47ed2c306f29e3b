//! One site's endpoint: binds loopback, serves TLS, checks tokens and dispatches requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::auth::{Principal, TokenKey};
use crate::backend::Backend;
use crate::error::ApiError;
use crate::groups::Groups;
use crate::ops::Realizer;
use crate::paths::{self, Target};
use crate::tls::LabTls;

/// What one site's endpoint serves.
pub struct EndpointConfig {
    /// The site's name (shown as the cloud's and subscription's display name).
    pub site: String,
    /// Its kind: API versions it accepts.
    pub kind: &'static site::KindProfile,
    /// The subscription its resources live in.
    pub subscription_id: String,
    /// Its own resource group (templates of lab.yaml deploy there).
    pub default_group: String,
    /// Its location.
    pub location: String,
    /// The service principal that may use it.
    pub principal: Principal,
    /// The lab's token key.
    pub key: TokenKey,
    /// Where resource groups made through the API are kept.
    pub groups_file: std::path::PathBuf,
    /// Port to listen on (0: any free one).
    pub port: u16,
}

/// Shared state of a running endpoint.
pub(crate) struct Ctx {
    pub(crate) cfg: EndpointConfig,
    pub(crate) base: String,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) realizer: Realizer,
    pub(crate) groups: Mutex<Groups>,
    /// Serializes writes (plan + apply) so a PUT sees the state the previous one left.
    pub(crate) write: tokio::sync::Mutex<()>,
}

impl Ctx {
    /// The audiences a token may carry: the endpoint with and without its trailing slash.
    fn audiences(&self) -> Vec<String> {
        vec![format!("{}/", self.base), self.base.clone()]
    }

    /// The authority (AD FS flavour).
    pub(crate) fn authority(&self) -> String {
        format!("{}/adfs", self.base)
    }
}

/// A running endpoint.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its base URL (`https://127.0.0.1:PORT`).
    pub url: String,
}

/// Binds the endpoint of one site and serves it on the current tokio runtime until the
/// process ends.
pub async fn serve(
    cfg: EndpointConfig,
    tls: &LabTls,
    backend: Arc<dyn Backend>,
) -> Result<Endpoint, std::io::Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", cfg.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let rustls = tls.server_config().map_err(std::io::Error::other)?;
    let groups = Groups::load(cfg.groups_file.clone());
    let ctx = Arc::new(Ctx {
        base: url.clone(),
        realizer: Realizer::start(backend.clone()),
        backend,
        groups: Mutex::new(groups),
        write: tokio::sync::Mutex::new(()),
        cfg,
    });
    // A controller that died between recording a change and realizing it left resources
    // Updating: its successor realizes them before anyone has to ask.
    let unrealized = ctx.backend.site().is_ok_and(|s| {
        s.resources().is_ok_and(|r| {
            r.iter()
                .any(|x| *x.provisioning_state() == site::ProvisioningState::Updating)
        })
    });
    if unrealized {
        ctx.realizer.submit();
    }
    let app = axum::Router::new().fallback(handle).with_state(ctx);
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(rustls),
    )?;
    tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!("API endpoint {addr}: {e}");
        }
    });
    Ok(Endpoint { addr, url })
}

/// The parsed query string.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &Uri) -> Query {
        Query(uri.query().map(url_pairs).unwrap_or_default())
    }

    /// A parameter, by case-insensitive name.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
}

async fn handle(
    State(ctx): State<Arc<Ctx>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = paths::parse(uri.path());
    let query = Query::parse(&uri);
    let started = std::time::Instant::now();
    let resp = match route(&ctx, &method, &target, &query, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::info!(
        "{} {} {} {} ms",
        method,
        uri.path(),
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

async fn route(
    ctx: &Arc<Ctx>,
    method: &Method,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    match target {
        Target::Metadata => return Ok(crate::meta::endpoints(ctx).into_response()),
        Target::OpenIdConfiguration => {
            return Ok(crate::meta::openid_configuration(ctx).into_response())
        }
        Target::Token if method == Method::POST => return crate::meta::token(ctx, &body),
        _ => {}
    }
    let claims = bearer(ctx, headers)?;
    if claims.appid != ctx.cfg.principal.client_id || claims.tid != ctx.cfg.principal.tenant_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client '{}' with object id '{}' does not have authorization to perform this action over scope '/subscriptions/{}' of site {}, or the scope is invalid.",
                claims.appid, claims.oid, ctx.cfg.subscription_id, ctx.cfg.site
            ),
        ));
    }
    let sub_ok = |s: &str| {
        if s.eq_ignore_ascii_case(&ctx.cfg.subscription_id) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{s}' could not be found."),
            ))
        }
    };
    let api_version = query.get("api-version");
    if !matches!(target, Target::Operation { .. }) {
        let Some(v) = api_version else {
            return Err(ApiError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        };
        if site::parse_api_date(v).is_none() {
            return Err(ApiError::bad_request(
                "InvalidApiVersionParameter",
                format!("The api-version '{v}' is invalid. The supported versions are those of a {} site ({}).", ctx.cfg.kind.name, ctx.cfg.kind.api_profiles.join(", ")),
            ));
        }
    }
    let v = api_version.unwrap_or_default();
    match target {
        Target::Tenants => Ok(crate::subs::tenants(ctx)),
        Target::Subscriptions => Ok(crate::subs::list(ctx)),
        Target::Subscription(s) => {
            sub_ok(s)?;
            Ok(crate::subs::one(ctx))
        }
        Target::Locations(s) => {
            sub_ok(s)?;
            Ok(crate::subs::locations(ctx))
        }
        Target::Providers(s, ns) => {
            sub_ok(s)?;
            Ok(crate::subs::providers(ctx, ns.as_deref()))
        }
        Target::Operation { sub, id, result } => {
            sub_ok(sub)?;
            crate::resources::operation(ctx, id, *result)
        }
        Target::VmImages { sub, rest } => {
            sub_ok(sub)?;
            crate::subs::vm_images(ctx, rest)
        }
        Target::Groups(s) => {
            sub_ok(s)?;
            check_version(ctx, "Microsoft.Resources/resourceGroups", v)?;
            Ok(crate::subs::groups(ctx))
        }
        Target::Group(s, g) => {
            sub_ok(s)?;
            check_version(ctx, "Microsoft.Resources/resourceGroups", v)?;
            crate::subs::group(ctx, method, g, &body).await
        }
        Target::GroupResources(s, g) => {
            sub_ok(s)?;
            crate::resources::list_group(ctx, g)
        }
        Target::Deployment {
            sub,
            group,
            name,
            action,
        } => {
            sub_ok(sub)?;
            check_version(ctx, "Microsoft.Resources/deployments", v)?;
            crate::deployments::handle(
                ctx,
                method,
                group,
                name.as_deref(),
                action.as_deref(),
                &body,
            )
            .await
        }
        Target::Resource(r) => {
            sub_ok(&r.sub)?;
            check_version(ctx, &r.full_type(), v)?;
            let expand = query.get("$expand").map(str::to_string);
            let peer = query.get("peer").map(str::to_string);
            let extra = crate::resources::Query {
                expand: expand.as_deref(),
                peer: peer.as_deref(),
            };
            crate::resources::handle(ctx, method, r, v, extra, headers, &body).await
        }
        Target::SubscriptionType { sub, full_type } => {
            sub_ok(sub)?;
            check_version(ctx, full_type, v)?;
            crate::resources::list_type(ctx, None, full_type)
        }
        Target::Metadata | Target::OpenIdConfiguration | Target::Token | Target::Unknown => {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                "The resource type could not be found in this site's namespace.",
            ))
        }
    }
}

/// The api-version checked against the site's kind, refused as Azure Stack Hub refuses a
/// version it does not serve.
fn check_version(ctx: &Ctx, resource_type: &str, v: &str) -> Result<(), ApiError> {
    ctx.cfg.kind.check_api_version(resource_type, v).map_err(|why| {
        if resource_type.to_ascii_lowercase().starts_with("microsoft.resources/") {
            // Resource Manager's own types answer as ARM does, not as a provider
            return ApiError::bad_request(
                "InvalidApiVersionParameter",
                format!("The api-version '{v}' is invalid. {why}"),
            );
        }
        let short = resource_type.split_once('/').map_or(resource_type, |(_, t)| t);
        ApiError::bad_request(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{}' and API version '{v}' for type '{short}'. {why}",
                ctx.cfg.location
            ),
        )
    })
}

fn bearer(ctx: &Ctx, headers: &HeaderMap) -> Result<crate::auth::Claims, ApiError> {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return Err(ApiError::unauthorized(
            "AuthenticationFailedInvalidHeader",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ));
    };
    ctx.cfg.key.check(token.trim(), &ctx.audiences())
}
