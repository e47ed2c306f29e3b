//! Errors of the site control plane. Every plan-time error names the template resource and the
//! property path, so a user can find the offending value without reading code.

use std::fmt;

/// Where in a deployment a problem sits: the template resource and a property path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Template path of the resource, e.g. `resources[2]`.
    pub resource_path: String,
    /// Full resource type, e.g. `Microsoft.Network/virtualNetworks`.
    pub resource_type: String,
    /// Resource name, e.g. `vnet1` (`vnet1/sub1` for child resources).
    pub name: String,
    /// Property path inside the resource, e.g. `properties.subnets[1].properties.addressPrefix`;
    /// empty for the resource as a whole.
    pub property: String,
}

impl Location {
    /// The same resource, another property path.
    pub fn at(&self, property: impl Into<String>) -> Location {
        Location {
            property: property.into(),
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} '{}')",
            self.resource_path, self.resource_type, self.name
        )?;
        if !self.property.is_empty() {
            write!(f, ".{}", self.property)?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in a site: bad templates, kind limits, address pools, the store.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The embedded kind data files are malformed (a build defect, caught by unit tests).
    #[error("site kind data: {0}")]
    KindData(String),
    /// No kind of that name exists.
    #[error("unknown site kind {name:?} (known: {})", known.join(", "))]
    UnknownKind { name: String, known: Vec<String> },
    /// A site name that cannot be a file name.
    #[error("invalid site name {0:?}: use letters, digits, '-' and '_'")]
    InvalidSiteName(String),
    /// `Site::create` on an existing site with a different kind or public prefix.
    #[error("site {name:?} already exists as {existing}, not {requested}")]
    SiteMismatch {
        name: String,
        existing: String,
        requested: String,
    },
    /// `Site::open` on a site that was never created.
    #[error("site {name:?} does not exist in {dir}")]
    NoSuchSite { name: String, dir: String },
    /// The template engine rejected the template, its parameters or an expression.
    #[error("{0}")]
    Template(#[from] arm::ArmError),
    /// A property has a missing, mistyped or malformed value.
    #[error("{at}: {problem}")]
    InvalidProperty { at: Location, problem: String },
    /// The site's kind does not support what the resource asks for.
    #[error("{at}: {problem}")]
    UnsupportedByKind { at: Location, problem: String },
    /// The template's `apiProfile` is not one the site's kind accepts.
    #[error("apiProfile: {profile} is not supported on a {kind} site (supported: {supported})")]
    ApiProfile {
        profile: String,
        kind: String,
        supported: String,
    },
    /// The API version is not served by the site's kind.
    #[error("{at}: {problem}")]
    ApiVersion { at: Location, problem: String },
    /// A reference (resource id) points at nothing in the deployment or the site.
    #[error("{at}: {target} does not exist in this deployment or site")]
    MissingReference { at: Location, target: String },
    /// Prefixes overlap, or an address lies outside its range.
    #[error("{at}: {problem}")]
    AddressConflict { at: Location, problem: String },
    /// No free address is left in a subnet or in the site's public prefix.
    #[error("{at}: {problem}")]
    PoolExhausted { at: Location, problem: String },
    /// A gateway SKU's tunnel limit would be exceeded.
    #[error("{at}: {problem}")]
    TunnelLimit { at: Location, problem: String },
    /// The same resource is declared twice in one template.
    #[error("{at}: resource {id} is also declared at {other}")]
    DuplicateResource {
        at: Location,
        id: String,
        other: String,
    },
    /// The site changed between plan and apply.
    #[error("the plan for deployment {deployment:?} is stale: the site changed since it was planned; plan again")]
    StalePlan { deployment: String },
    /// The resource cannot be deleted while others refer to it (ARM's InUse errors).
    #[error("{id} is in use by {users}; delete those first")]
    InUse { id: String, users: String },
    /// No resource with that id exists in the site.
    #[error("no resource {0} in this site")]
    NoSuchResource(String),
    /// The embedded database failed.
    #[error("site store {path}: {message}")]
    Store { path: String, message: String },
    /// A file-system operation on the state directory failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl SiteError {
    /// Masks secret values (secure parameters) wherever they could appear in a message: a
    /// securestring used by mistake as, say, an address prefix must not be echoed back.
    pub(crate) fn redact(self, mask: &dyn Fn(&str) -> String) -> SiteError {
        match self {
            SiteError::InvalidProperty { at, problem } => SiteError::InvalidProperty {
                at,
                problem: mask(&problem),
            },
            SiteError::UnsupportedByKind { at, problem } => SiteError::UnsupportedByKind {
                at,
                problem: mask(&problem),
            },
            SiteError::ApiVersion { at, problem } => SiteError::ApiVersion {
                at,
                problem: mask(&problem),
            },
            SiteError::MissingReference { at, target } => SiteError::MissingReference {
                at,
                target: mask(&target),
            },
            SiteError::AddressConflict { at, problem } => SiteError::AddressConflict {
                at,
                problem: mask(&problem),
            },
            SiteError::PoolExhausted { at, problem } => SiteError::PoolExhausted {
                at,
                problem: mask(&problem),
            },
            SiteError::TunnelLimit { at, problem } => SiteError::TunnelLimit {
                at,
                problem: mask(&problem),
            },
            other => other,
        }
    }

    /// Wraps any redb error with the database path.
    pub(crate) fn store(path: &std::path::Path, e: impl fmt::Display) -> SiteError {
        SiteError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
