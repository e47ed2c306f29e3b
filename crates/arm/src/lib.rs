//! ARM template engine: parses Azure Resource Manager deployment templates and evaluates them the
//! way Azure does — typed parameters with `allowedValues` and expression defaults, variables,
//! the template expression language, resources (top-level and nested children, `copy` loops,
//! `condition`), `dependsOn` ordering and outputs. It knows nothing about sites: `reference()`
//! goes through a [`ReferenceResolver`] supplied by whoever deploys the resources.
//!
//! Every error names the template path of the offending value
//! (`resources[3].properties.subnets[1].properties.addressPrefix: ...`), and securestring /
//! secureObject values never appear in errors or `Debug` output.

mod cidr;
mod deployment;
mod error;
mod eval;
mod expr;
#[cfg(test)]
mod function_tests;
mod functions;
mod hash;
mod json;
mod profiles;
mod secret;
mod template;

pub use deployment::{
    CopyInstance, Deployment, DeploymentContext, EvaluatedResource, PendingResource,
    ReferenceResolver,
};
pub use error::ArmError;
pub use profiles::{api_profile_version, known_api_profiles};
pub use template::{parse_parameters, parse_template, ParameterDef, ParameterType, Template};

/// Re-exported so users of the API need not depend on serde_json separately.
pub use serde_json::{Map, Value};
