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
    UnknownKind {
        /// The name asked for.
        name: String,
        /// Every kind this build knows.
        known: Vec<String>,
    },
    /// A site name that cannot be a file name.
    #[error("invalid site name {0:?}: use letters, digits, '-' and '_'")]
    InvalidSiteName(String),
    /// `Site::create` on an existing site with a different kind or public prefix.
    #[error("site {name:?} already exists as {existing}, not {requested}")]
    SiteMismatch {
        /// The site.
        name: String,
        /// Kind and prefix it was created with.
        existing: String,
        /// Kind and prefix asked for now.
        requested: String,
    },
    /// `Site::open` on a site that was never created.
    #[error("site {name:?} does not exist in {dir}")]
    NoSuchSite {
        /// The site.
        name: String,
        /// The state directory looked in.
        dir: String,
    },
    /// The template engine rejected the template, its parameters or an expression.
    #[error("{0}")]
    Template(#[from] arm::ArmError),
    /// A property has a missing, mistyped or malformed value.
    #[error("{at}: {problem}")]
    InvalidProperty {
        /// The resource and property.
        at: Location,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// The site's kind does not support what the resource asks for.
    #[error("{at}: {problem}")]
    UnsupportedByKind {
        /// The resource and property.
        at: Location,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// A resource type the site's Resource Manager does not serve.
    #[error("{at}: {refusal}")]
    ResourceType {
        /// The resource.
        at: Location,
        /// Which of Azure's refusals, in plain words.
        refusal: crate::kind::TypeRefusal,
    },
    /// The template's `apiProfile` is not one the site's kind accepts.
    #[error("apiProfile: {profile} is not supported on {kind} site (supported: {supported})")]
    ApiProfile {
        /// The template's profile.
        profile: String,
        /// The site's kind, with its article ("an azure site").
        kind: String,
        /// Profiles the kind accepts, comma-separated.
        supported: String,
    },
    /// The API version is not served by the site's kind.
    #[error("{at}: {problem}")]
    ApiVersion {
        /// The resource and property.
        at: Location,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// A reference (resource id) points at nothing in the deployment or the site.
    #[error("{at}: {target} does not exist in this deployment or site")]
    MissingReference {
        /// Where the reference is written.
        at: Location,
        /// The resource id it names.
        target: String,
    },
    /// Prefixes overlap, or an address lies outside its range.
    #[error("{at}: {problem}")]
    AddressConflict {
        /// The resource and property.
        at: Location,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// No free address is left in a subnet or in the site's public prefix.
    #[error("{at}: {problem}")]
    PoolExhausted {
        /// The resource and property.
        at: Location,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// A gateway SKU's tunnel limit would be exceeded.
    #[error("{at}: {problem}")]
    TunnelLimit {
        /// The resource and property.
        at: Location,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// The same resource is declared twice in one template.
    #[error("{at}: resource {id} is also declared at {other}")]
    DuplicateResource {
        /// The second declaration.
        at: Location,
        /// The resource id declared twice.
        id: String,
        /// The first declaration.
        other: String,
    },
    /// The site changed between plan and apply.
    #[error("the plan for deployment {deployment:?} is stale: the site changed since it was planned; plan again")]
    StalePlan {
        /// The deployment's name.
        deployment: String,
    },
    /// The resource cannot be deleted while others refer to it (ARM's InUse errors).
    #[error("{id} is in use by {users}; delete those first")]
    InUse {
        /// The resource asked to be deleted.
        id: String,
        /// The resources that refer to it.
        users: String,
    },
    /// No resource with that id exists in the site.
    #[error("no resource {0} in this site")]
    NoSuchResource(String),
    /// The embedded database failed.
    #[error("site store {path}: {message}")]
    Store {
        /// The database file.
        path: String,
        /// What the database reported.
        message: String,
    },
    /// A file-system operation on the state directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system reported.
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
