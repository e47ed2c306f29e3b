//! Errors as Resource Manager returns them: an HTTP status and `{"error":{"code","message"}}`
//! with Azure's codes, so az and the SDKs show what they show against Azure.

pub use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One refused request: status, Azure error code and message (never a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Azure's error code (`ResourceNotFound`, `InvalidApiVersionParameter`, …).
    pub code: String,
    /// What went wrong, in the request's terms.
    pub message: String,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `ResourceNotFound` for a resource id, worded as ARM words it.
    pub fn not_found(resource_type: &str, name: &str, group: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource '{resource_type}/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
        )
    }

    /// 404 `ResourceGroupNotFound`.
    pub fn group_not_found(group: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{group}' could not be found."),
        )
    }

    /// 401 for a request without a valid token.
    pub fn unauthorized(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 500 for a failure of the lab itself (its store, its processes).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// The error body ARM sends.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message, "details": [] } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                "WWW-Authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// Maps what the site's planner refused to Azure's code for it.
pub fn from_site(e: &site::SiteError, during_deployment: bool) -> ApiError {
    use site::SiteError as E;
    let code = match e {
        E::InUse { id, .. } if id.to_ascii_lowercase().contains("/subnets/") => {
            "InUseSubnetCannotBeDeleted"
        }
        E::InUse { .. } => "InUseResourceCannotBeDeleted",
        E::NoSuchResource(_) => "ResourceNotFound",
        E::AddressConflict { .. } => "NetcfgSubnetRangesOverlap",
        E::PoolExhausted { .. } => "SubnetIsFull",
        E::MissingReference { .. } => "InvalidResourceReference",
        E::ApiVersion { .. } | E::ApiProfile { .. } => "NoRegisteredProviderFound",
        E::ResourceType {
            refusal: site::TypeRefusal::NoProvider(_),
            ..
        } => "NoRegisteredProviderFound",
        E::ResourceType { .. } => "InvalidResourceType",
        E::UnsupportedByKind { .. } => "UnsupportedFeature",
        E::StalePlan { .. } => "Conflict",
        E::Template(_) if during_deployment => "InvalidTemplate",
        _ if during_deployment => "InvalidTemplateDeployment",
        _ => "InvalidRequestFormat",
    };
    let status = match e {
        E::NoSuchResource(_) => StatusCode::NOT_FOUND,
        E::StalePlan { .. } => StatusCode::CONFLICT,
        E::Store { .. } | E::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, code, e.to_string())
}
