//! `lab.yaml`: what a lab is made of.
//!
//! ```yaml
//! sites:
//!   - name: azure
//!     kind: azure                    # a site kind known to the `site` crate
//!     publicPrefix: 203.0.113.0/24   # the site's addresses on the simulated internet
//!   - name: stackhub
//!     kind: azure-stack-hub
//!     publicPrefix: 198.51.100.0/24
//!     nat: true                      # optional: the site sits behind NAT
//!     locations: ["East US"]         # optional: the ARM locations this site serves
//!     resourceGroup: hybrid          # optional: shared by sites deploying one template
//! deployments:                       # applied in this order
//!   - name: azure-network            # deployment name (unique in the lab)
//!     site: azure
//!     template: templates/azure-network.json           # relative to the lab directory
//!     parameters: templates/azure-network.parameters.json  # optional parameter file
//!     set:                                             # optional inline parameters (win over the file)
//!       vnetName: vnet1
//!       peerIp: "${sites.stackhub.publicIp.gw-pip}"
//! ```
//!
//! Substitution in inline values: `${deployments.<name>.outputs.<output>}` (an output of an
//! earlier deployment), `${sites.<site>.publicIp.<publicIPAddress name>}` (an allocated public
//! address) and `${sites.<site>.publicPrefix}`. A value that is exactly one `${…}` takes the
//! referenced JSON value as is (numbers, objects); otherwise references are spliced into the
//! string. `$${` stands for a literal `${`.

use ipnet::Ipv4Net;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Name of the lab description file inside a lab directory.
pub const LAB_FILE: &str = "lab.yaml";

/// A parsed `lab.yaml`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabSpec {
    /// The sites, each its own control plane.
    pub sites: Vec<SiteSpec>,
    /// Deployments applied in order by `lab up`.
    #[serde(default)]
    pub deployments: Vec<DeploymentSpec>,
}

/// One site of a lab.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteSpec {
    /// Site name: becomes part of namespace names, so letters, digits and `-` only.
    pub name: String,
    /// Site kind (`azure`, `azure-stack-hub`).
    pub kind: String,
    /// Public prefix on the simulated internet (documentation ranges only).
    pub public_prefix: Ipv4Net,
    /// Whether the site is behind NAT.
    #[serde(default)]
    pub nat: bool,
    /// ARM locations this site serves (e.g. `["North Europe"]`): a template whose resources
    /// span locations (vnet-to-vnet) is deployed to each site, which takes only its own
    /// locations' resources. Empty: the site takes every resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// Resource group (and subscription) shared by sites that deploy one template together,
    /// so that resource ids agree across them (like regions of one Azure resource group).
    /// Default: the site name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// The BGP router a strongSwan site's device runs beside charon (`bird` or `frr`),
    /// for connections with enableBgp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<crate::onprem_router::RouterKind>,
}

/// One deployment step.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Deployment name (unique in the lab; referenced by `${deployments.<name>…}`).
    pub name: String,
    /// Target site.
    pub site: String,
    /// Template path, relative to the lab directory.
    pub template: PathBuf,
    /// Parameter file path, relative to the lab directory.
    #[serde(default)]
    pub parameters: Option<PathBuf>,
    /// Inline parameters; they override the file's and may use `${…}` substitution.
    #[serde(default)]
    pub set: Map<String, Value>,
}

/// `lab.yaml` is unreadable or inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// YAML syntax or shape error (with line and column from the parser).
    #[error("{path}: {message}")]
    Yaml {
        /// Where it is.
        path: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
    /// A semantic problem, naming the offending entry.
    #[error("{path}: {place}: {message}")]
    Invalid {
        /// Where it is.
        path: PathBuf,
        /// The place.
        place: String,
        /// What is wrong, in words.
        message: String,
    },
}

/// A `${…}` reference that cannot be resolved or is malformed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubstError {
    /// `${` without a closing `}`.
    #[error("unterminated ${{ in {0:?}")]
    Unterminated(String),
    /// A reference that names nothing known.
    #[error("unknown reference ${{{0}}}: expected deployments.<name>.outputs.<output>, sites.<site>.publicIp.<name> or sites.<site>.publicPrefix")]
    Unknown(String),
    /// A reference to something that does not exist (yet).
    #[error("${{{reference}}}: {reason}")]
    Unresolved {
        /// The reference as written.
        reference: String,
        /// Why.
        reason: String,
    },
    /// A non-string value spliced into a longer string.
    #[error("${{{0}}} is not a string or number and cannot be part of a longer string")]
    NotScalar(String),
}

/// What a `${…}` reference can point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `deployments.<name>.outputs.<output>`
    Output {
        /// The deployment concerned.
        deployment: String,
        /// The output concerned.
        output: String,
    },
    /// `sites.<site>.publicIp.<name>`
    PublicIp {
        /// The site concerned.
        site: String,
        /// The name concerned.
        name: String,
    },
    /// `sites.<site>.publicPrefix`
    PublicPrefix {
        /// The site concerned.
        site: String,
    },
}

impl Reference {
    /// Parses the text between `${` and `}`.
    pub fn parse(text: &str) -> Result<Reference, SubstError> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        match parts.as_slice() {
            ["deployments", d, "outputs", o] => Ok(Reference::Output {
                deployment: d.to_string(),
                output: o.to_string(),
            }),
            ["sites", s, "publicIp", n] => Ok(Reference::PublicIp {
                site: s.to_string(),
                name: n.to_string(),
            }),
            ["sites", s, "publicPrefix"] => Ok(Reference::PublicPrefix {
                site: s.to_string(),
            }),
            _ => Err(SubstError::Unknown(text.to_string())),
        }
    }
}

/// Replaces every `${…}` in `value` (recursively through arrays and objects) using `resolve`.
pub fn substitute(
    value: &Value,
    resolve: &dyn Fn(&Reference, &str) -> Result<Value, SubstError>,
) -> Result<Value, SubstError> {
    match value {
        Value::String(s) => substitute_str(s, resolve),
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .map(|v| substitute(v, resolve))
                .collect::<Result<_, _>>()?,
        )),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, v) in o {
                out.insert(k.clone(), substitute(v, resolve)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn substitute_str(
    s: &str,
    resolve: &dyn Fn(&Reference, &str) -> Result<Value, SubstError>,
) -> Result<Value, SubstError> {
    // Whole-value reference keeps the JSON type.
    if let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !inner.contains("${") && !inner.contains('}') {
            return resolve(&Reference::parse(inner)?, inner);
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SubstError::Unterminated(s.to_string()))?;
        let inner = &after[..end];
        match resolve(&Reference::parse(inner)?, inner)? {
            Value::String(v) => out.push_str(&v),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(&b.to_string()),
            _ => return Err(SubstError::NotScalar(inner.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 40
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl LabSpec {
    /// Reads and checks `DIR/lab.yaml`.
    pub fn load(dir: &Path) -> Result<LabSpec, SpecError> {
        let path = dir.join(LAB_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| SpecError::Read {
            path: path.clone(),
            source,
        })?;
        LabSpec::parse(&text, &path)
    }

    /// Parses and checks lab.yaml text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<LabSpec, SpecError> {
        let spec: LabSpec = serde_yaml_ng::from_str(text).map_err(|e| SpecError::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |place: String, message: String| SpecError::Invalid {
            path: path.to_path_buf(),
            place,
            message,
        };
        if spec.sites.is_empty() {
            return Err(invalid(
                "sites".into(),
                "a lab needs at least one site".into(),
            ));
        }
        for (i, s) in spec.sites.iter().enumerate() {
            let place = format!("sites[{i}]");
            if !valid_name(&s.name) {
                return Err(invalid(
                    format!("{place}.name"),
                    format!("{:?}: use 1-40 letters, digits, '-' or '_'", s.name),
                ));
            }
            if spec.sites[..i].iter().any(|o| o.name == s.name) {
                return Err(invalid(
                    format!("{place}.name"),
                    format!("site {:?} is defined twice", s.name),
                ));
            }
            if s.router.is_some() && !crate::strongswan_site::is_strongswan(s) {
                return Err(invalid(
                    format!("{place}.router"),
                    format!(
                        "a BGP router runs beside a strongSwan device: only sites of kind strongswan take one (this one is {})",
                        s.kind
                    ),
                ));
            }
            if s.public_prefix.prefix_len() > 29 {
                return Err(invalid(
                    format!("{place}.publicPrefix"),
                    format!("{} is too small (at most /29)", s.public_prefix),
                ));
            }
            if s.public_prefix.network() != s.public_prefix.addr() {
                return Err(invalid(
                    format!("{place}.publicPrefix"),
                    format!(
                        "{} has host bits set; did you mean {}?",
                        s.public_prefix,
                        s.public_prefix.trunc()
                    ),
                ));
            }
            if let Some(o) = spec.sites[..i].iter().find(|o| {
                o.public_prefix.contains(&s.public_prefix.network())
                    || s.public_prefix.contains(&o.public_prefix.network())
            }) {
                return Err(invalid(
                    format!("{place}.publicPrefix"),
                    format!(
                        "{} overlaps site {:?}'s {}",
                        s.public_prefix, o.name, o.public_prefix
                    ),
                ));
            }
        }
        for (i, d) in spec.deployments.iter().enumerate() {
            let place = format!("deployments[{i}]");
            if !valid_name(&d.name) {
                return Err(invalid(
                    format!("{place}.name"),
                    format!("{:?}: use 1-40 letters, digits, '-' or '_'", d.name),
                ));
            }
            if spec.deployments[..i].iter().any(|o| o.name == d.name) {
                return Err(invalid(
                    format!("{place}.name"),
                    format!("deployment {:?} is defined twice", d.name),
                ));
            }
            if !spec.sites.iter().any(|s| s.name == d.site) {
                return Err(invalid(
                    format!("{place}.site"),
                    format!("no site named {:?}", d.site),
                ));
            }
        }
        Ok(spec)
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Option<&SiteSpec> {
        self.sites.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolver(r: &Reference, text: &str) -> Result<Value, SubstError> {
        match r {
            Reference::Output { deployment, output }
                if deployment == "net" && output == "vnetId" =>
            {
                Ok(json!("/subs/x/vnet1"))
            }
            Reference::Output { deployment, output }
                if deployment == "net" && output == "count" =>
            {
                Ok(json!(3))
            }
            Reference::PublicIp { site, name } if site == "azure" && name == "gw-pip" => {
                Ok(json!("203.0.113.4"))
            }
            _ => Err(SubstError::Unresolved {
                reference: text.to_string(),
                reason: "not deployed".into(),
            }),
        }
    }

    #[test]
    fn substitution() {
        assert_eq!(
            substitute(&json!("${deployments.net.outputs.count}"), &resolver).unwrap(),
            json!(3)
        );
        assert_eq!(
            substitute(&json!("ip=${sites.azure.publicIp.gw-pip}/32"), &resolver).unwrap(),
            json!("ip=203.0.113.4/32")
        );
        assert_eq!(
            substitute(&json!(["${deployments.net.outputs.vnetId}"]), &resolver).unwrap(),
            json!(["/subs/x/vnet1"])
        );
        assert_eq!(
            substitute(&json!("cost $${x}"), &resolver).unwrap(),
            json!("cost ${x}")
        );
        assert!(matches!(
            substitute(&json!("${nope}"), &resolver),
            Err(SubstError::Unknown(_))
        ));
        assert!(matches!(
            substitute(&json!("a ${deployments.net.outputs.vnetId"), &resolver),
            Err(SubstError::Unterminated(_))
        ));
        assert!(matches!(
            substitute(&json!("${deployments.other.outputs.x}"), &resolver),
            Err(SubstError::Unresolved { .. })
        ));
    }

    #[test]
    fn lab_yaml_is_checked() {
        let p = Path::new("lab.yaml");
        let ok = "sites:\n  - name: azure\n    kind: azure\n    publicPrefix: 203.0.113.0/24\ndeployments:\n  - name: d1\n    site: azure\n    template: t.json\n    set:\n      a: 1\n";
        let spec = LabSpec::parse(ok, p).unwrap();
        assert_eq!(spec.deployments[0].set["a"], json!(1));
        let bad_site = ok.replace("site: azure", "site: nowhere");
        let e = LabSpec::parse(&bad_site, p).unwrap_err().to_string();
        assert!(
            e.contains("deployments[0].site") && e.contains("nowhere"),
            "{e}"
        );
        let unknown = ok.replace("kind: azure", "kind: azure\n    color: red");
        assert!(LabSpec::parse(&unknown, p)
            .unwrap_err()
            .to_string()
            .contains("color"));
        let overlap = "sites:\n  - {name: a, kind: azure, publicPrefix: 203.0.113.0/24}\n  - {name: b, kind: azure, publicPrefix: 203.0.113.128/25}\n";
        assert!(LabSpec::parse(overlap, p)
            .unwrap_err()
            .to_string()
            .contains("overlaps"));
        let router = ok.replace("kind: azure", "kind: azure\n    router: bird");
        let e = LabSpec::parse(&router, p).unwrap_err().to_string();
        assert!(
            e.contains("sites[0].router") && e.contains("only sites of kind strongswan"),
            "{e}"
        );
        let device = "sites:\n  - {name: onprem, kind: strongswan, publicPrefix: 192.0.2.0/24, router: frr}\n";
        assert_eq!(
            LabSpec::parse(device, p).unwrap().sites[0].router,
            Some(crate::onprem_router::RouterKind::Frr)
        );
    }
}
