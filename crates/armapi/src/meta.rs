//! What a client reads before it has a token: the cloud's endpoints (`az cloud register`, the
//! SDK's cloud settings), the AD FS authority's OpenID configuration, and the token endpoint.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::TOKEN_LIFETIME_SECS;
use crate::error::ApiError;
use crate::server::Ctx;

/// `GET /metadata/endpoints`: Resource Manager's cloud metadata, in the shape of Azure's
/// 2022-09-01 document (which az reads) with the 2015-01-01 keys Azure Stack Hub's carries.
pub(crate) fn endpoints(ctx: &Ctx) -> Json<Value> {
    let base = &ctx.base;
    let audience = format!("{base}/");
    Json(json!({
        "name": format!("hybridnet-{}", ctx.cfg.site),
        "resourceManager": audience,
        "portal": format!("{base}/"),
        "gallery": format!("{base}/"),
        "graph": format!("{base}/"),
        "graphEndpoint": format!("{base}/"),
        "galleryEndpoint": format!("{base}/"),
        "portalEndpoint": format!("{base}/"),
        "authentication": {
            "loginEndpoint": ctx.authority(),
            "audiences": [audience],
            "tenant": "adfs",
            "identityProvider": "ADFS",
        },
        "suffixes": {
            "storage": "local.hybridnet.invalid",
            "keyVaultDns": "vault.local.hybridnet.invalid",
        },
    }))
}

/// `GET /adfs/.well-known/openid-configuration`.
pub(crate) fn openid_configuration(ctx: &Ctx) -> Json<Value> {
    let auth = ctx.authority();
    Json(json!({
        "issuer": auth,
        "token_endpoint": format!("{auth}/oauth2/token"),
        "authorization_endpoint": format!("{auth}/oauth2/authorize"),
        "jwks_uri": format!("{auth}/discovery/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code", "token"],
        "scopes_supported": ["openid"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "access_token_issuer": auth,
    }))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /adfs/oauth2/token`: the client-credentials grant for the site's principal.
pub(crate) fn token(ctx: &Ctx, body: &Bytes) -> Result<Response, ApiError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("client_credentials") {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "MSIS9611: only the client_credentials grant is offered by this lab's authority.",
        ));
    }
    let p = &ctx.cfg.principal;
    let client_ok = get("client_id") == Some(p.client_id.as_str());
    let secret_ok = get("client_secret").is_some_and(|s| p.secret_matches(s));
    if !(client_ok && secret_ok) {
        tracing::warn!(
            "token refused for client {:?} at site {}",
            get("client_id").unwrap_or(""),
            ctx.cfg.site
        );
        return Ok(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "MSIS9623: The OAuth client is not authorized to access the resource: unknown client or wrong client secret.",
        ));
    }
    // The audience the client asks for (`scope=<resource>/.default`, or AD FS's `resource`),
    // as an authority issues tokens for any resource; each endpoint then decides what the
    // principal may do there.
    let audience = get("resource")
        .map(str::to_string)
        .or_else(|| {
            get("scope")?
                .split_whitespace()
                .find_map(|s| s.strip_suffix(".default"))
                .map(|s| s.trim_end_matches('/').to_string() + "/")
        })
        .unwrap_or_else(|| format!("{}/", ctx.base));
    let token = ctx.cfg.key.issue(p, &audience, &ctx.authority())?;
    Ok(Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": token,
    }))
    .into_response())
}
