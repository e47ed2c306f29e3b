//! ARM template engine: parses Azure Resource Manager deployment templates and evaluates them the
//! way Azure does — typed parameters with `allowedValues` and expression defaults, variables,
//! the template expression language, resources (top-level and nested children, `copy` loops,
//! `condition`), `dependsOn` ordering and outputs. It knows nothing about sites: `reference()`
//! goes through a [`ReferenceResolver`] supplied by whoever deploys the resources.
//!
//! Every error names the template path of the offending value
//! (`resources[3].properties.subnets[1].properties.addressPrefix: ...`), and securestring /
//! secureObject values never appear in errors or `Debug` output.
//!
//! Evaluation is bounded, so a small template cannot exhaust memory, CPU or the stack: no value
//! may exceed Azure's 4 MB (as JSON) or nest deeper than 128 levels, and each evaluation has a
//! budget of work and of recursion depth. Functions whose result can outgrow their arguments
//! check its size before they build it. Hitting a bound is [`ArmError::Limit`], naming the path
//! and the expression.
//!
//! ```
//! use arm::{parse_template, Deployment, DeploymentContext, Map, ReferenceResolver, Value};
//!
//! struct Deployed;
//! impl ReferenceResolver for Deployed {
//!     fn reference(&self, _id: &str) -> Option<Value> {
//!         Some(serde_json::json!({"ipAddress": "203.0.113.9"}))
//!     }
//! }
//!
//! let template = parse_template(r#"{
//!   "parameters": {"prefix": {"type": "string", "defaultValue": "lab"}},
//!   "resources": [
//!     {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2020-05-01",
//!      "name": "[concat(parameters('prefix'), '-ip')]", "location": "[resourceGroup().location]"},
//!     {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2020-05-01",
//!      "name": "[concat(parameters('prefix'), '-vnet')]",
//!      "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}},
//!      "resources": [{"type": "subnets", "apiVersion": "2020-05-01", "name": "default",
//!                     "properties": {"addressPrefix": "[cidrSubnet('10.1.0.0/16', 24, 0)]"}}]}
//!   ],
//!   "outputs": {"ip": {"type": "string", "value": "[reference(resourceId('Microsoft.Network/publicIPAddresses', 'lab-ip')).ipAddress]"}}
//! }"#).unwrap();
//! let ctx = DeploymentContext {
//!     subscription_id: "00000000-0000-0000-0000-000000000000".into(),
//!     resource_group: "rg".into(),
//!     location: "westeurope".into(),
//!     deployment_name: "example".into(),
//! };
//! let deployment = Deployment::new(&template, &Map::new(), &ctx).unwrap();
//! let names: Vec<&str> = deployment.resources_in_order().iter().map(|r| r.name.as_str()).collect();
//! assert_eq!(names, ["lab-ip", "lab-vnet", "lab-vnet/default"]);
//! let subnet = deployment.evaluate_resource(&deployment.resources_in_order()[2], &Deployed).unwrap();
//! assert_eq!(subnet.resource_type, "Microsoft.Network/virtualNetworks/subnets");
//! assert_eq!(subnet.body["properties"]["addressPrefix"], "10.1.0.0/24");
//! assert_eq!(deployment.outputs(&Deployed).unwrap()["ip"], "203.0.113.9");
//! ```

#![forbid(unsafe_code)]

mod budget;
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
