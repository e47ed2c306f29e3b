//! Deployments: one ARM template with its parameters applied to one site of a running lab
//! (`hybridnet deploy`, and each deployment step of lab.yaml), with `${…}` references in
//! parameters resolved against the lab's sites.

use crate::lab::{site_err, ApplyReport, Lab, LabError};
use crate::progress::Progress;
use crate::spec::{substitute, DeploymentSpec, Reference, SubstError};
use serde_json::{Map, Value};
use site::{ChangeAction, Resource, Site};
use std::path::{Path, PathBuf};

/// One deployment to apply: what `hybridnet deploy` and each lab.yaml step amount to.
#[derive(Clone, Debug)]
pub struct DeployRequest {
    /// Deployment name.
    pub name: String,
    /// Target site.
    pub site: String,
    /// Template file.
    pub template: PathBuf,
    /// Optional parameter file.
    pub parameters_file: Option<PathBuf>,
    /// Inline parameters (with `${…}` substitution), overriding the file.
    pub set: Map<String, Value>,
}

impl DeployRequest {
    /// The request for a lab.yaml deployment step (paths relative to the lab directory).
    pub fn from_spec(dir: &Path, d: &DeploymentSpec) -> DeployRequest {
        DeployRequest {
            name: d.name.clone(),
            site: d.site.clone(),
            template: dir.join(&d.template),
            parameters_file: d.parameters.as_ref().map(|p| dir.join(p)),
            set: d.set.clone(),
        }
    }

    /// Parses `--set NAME=VALUE`: VALUE is taken as JSON when it is a number, boolean, array,
    /// object or quoted string, and as a plain string otherwise.
    pub fn parse_set(arg: &str) -> Result<(String, Value), LabError> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| LabError::BadSet(arg.to_string()))?;
        if k.is_empty() {
            return Err(LabError::BadSet(arg.to_string()));
        }
        let value = match serde_json::from_str::<Value>(v) {
            Ok(j) if !j.is_null() => j,
            _ => Value::String(v.to_string()),
        };
        Ok((k.to_string(), value))
    }
}

impl Lab {
    /// Applies one deployment (template + parameters) to a site, then realizes the lab.
    /// A rejected deployment changes no resource and no namespace; it is recorded as failed.
    pub fn deploy(
        &self,
        req: &DeployRequest,
        progress: &mut Progress,
    ) -> Result<ApplyReport, LabError> {
        let _lock = self.dir.lock()?;
        // What `lab up` last recorded, read under the lock (it may have changed since open).
        let lab = Lab {
            dir: self.dir.clone(),
            record: self.dir.record()?,
        };
        let mut report = ApplyReport::new(lab.id());
        report.resource_changes += lab.apply_deployment(req, progress)?;
        lab.realize(&mut report, progress)?;
        Ok(report)
    }

    /// Plans and applies one deployment to its site (no realization); returns how many
    /// resources it created, updated or deleted.
    pub(crate) fn apply_deployment(
        &self,
        req: &DeployRequest,
        progress: &mut Progress,
    ) -> Result<usize, LabError> {
        let mut site = self.site(&req.site)?;
        let template_text =
            std::fs::read_to_string(&req.template).map_err(|source| LabError::ReadFile {
                path: req.template.clone(),
                source,
            })?;
        let mut params = Map::new();
        if let Some(pf) = &req.parameters_file {
            let text = std::fs::read_to_string(pf).map_err(|source| LabError::ReadFile {
                path: pf.clone(),
                source,
            })?;
            params = arm::parse_parameters(&text).map_err(|source| LabError::ParameterFile {
                path: pf.clone(),
                source,
            })?;
        }
        for (k, v) in &req.set {
            let resolved = substitute(v, &|r, text| self.resolve(r, text)).map_err(|source| {
                LabError::Substitution {
                    deployment: req.name.clone(),
                    parameter: k.clone(),
                    source,
                }
            })?;
            params.insert(k.clone(), resolved);
        }
        let label = format!("deploy {} -> {}", req.name, req.site);
        progress.step(&label, || {
            let options = self.plan_options(&req.site)?;
            let plan = match site.plan_with(&template_text, params.clone(), &req.name, &options) {
                Ok(p) => p,
                Err(source) => {
                    // Recorded so status shows the failed deployment; resources are untouched.
                    let _ =
                        site.record_failed_deployment(&template_text, &params, &req.name, &source);
                    return Err(LabError::Deployment {
                        deployment: req.name.clone(),
                        site: req.site.clone(),
                        template: req.template.display().to_string(),
                        source: Box::new(source),
                    });
                }
            };
            let count = |a: ChangeAction| plan.changes.iter().filter(|c| c.action == a).count();
            let (created, updated, same, deleted) = (
                count(ChangeAction::Create),
                count(ChangeAction::Update),
                count(ChangeAction::NoChange),
                count(ChangeAction::Delete),
            );
            site.apply(plan).map_err(site_err(&req.site))?;
            Ok((
                created + updated + deleted,
                format!(
                    "{created} created, {updated} updated, {deleted} deleted, {same} unchanged"
                ),
            ))
        })
    }

    /// How deployments to `site` are planned: only its locations (when it declares some),
    /// with the other sites' resources visible to references (e.g. a Vnet2Vnet peer gateway).
    pub(crate) fn plan_options(&self, site: &str) -> Result<site::PlanOptions, LabError> {
        let spec = self.record.sites.iter().find(|s| s.name == site);
        let locations = spec
            .filter(|s| !s.locations.is_empty())
            .map(|s| s.locations.clone());
        let mut foreign = Vec::new();
        if locations.is_some() {
            for other in self.record.sites.iter().filter(|s| s.name != site) {
                if let Ok(o) = Site::open(&self.dir.sites_path(), &other.name) {
                    foreign.extend(o.resources().map_err(site_err(&other.name))?);
                }
            }
        }
        Ok(site::PlanOptions {
            mode: site::DeploymentMode::Incremental,
            locations,
            foreign,
            resource_group: None,
        })
    }

    /// Resolves `${…}` references against the lab's sites.
    fn resolve(&self, r: &Reference, text: &str) -> Result<Value, SubstError> {
        let unresolved = |reason: String| SubstError::Unresolved {
            reference: text.to_string(),
            reason,
        };
        match r {
            Reference::Output { deployment, output } => {
                for s in &self.record.sites {
                    let site = Site::open(&self.dir.sites_path(), &s.name)
                        .map_err(|e| unresolved(e.to_string()))?;
                    let deps = site.deployments().map_err(|e| unresolved(e.to_string()))?;
                    if let Some(d) = deps.iter().find(|d| &d.name == deployment) {
                        return d
                            .outputs
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(output))
                            .map(|(_, v)| v.clone())
                            .ok_or_else(|| {
                                unresolved(format!(
                                    "deployment {deployment:?} has no output {output:?} (outputs: {})",
                                    d.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                                ))
                            });
                    }
                }
                Err(unresolved(format!(
                    "no deployment named {deployment:?} has been applied (yet)"
                )))
            }
            Reference::PublicIp { site, name } => {
                let s = self.site(site).map_err(|e| unresolved(e.to_string()))?;
                let resources = s.resources().map_err(|e| unresolved(e.to_string()))?;
                resources
                    .iter()
                    .find_map(|r| match r {
                        Resource::PublicIpAddress(p) if p.meta.name.eq_ignore_ascii_case(name) => {
                            Some(Value::String(p.ip_address.to_string()))
                        }
                        _ => None,
                    })
                    .ok_or_else(|| {
                        unresolved(format!("site {site} has no public IP named {name:?}"))
                    })
            }
            Reference::PublicPrefix { site } => self
                .record
                .sites
                .iter()
                .find(|s| &s.name == site)
                .map(|s| Value::String(s.public_prefix.to_string()))
                .ok_or_else(|| unresolved(format!("no site named {site:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_values_are_json_when_they_look_like_json() {
        let p = |s: &str| DeployRequest::parse_set(s).unwrap();
        assert_eq!(p("count=3"), ("count".into(), json!(3)));
        assert_eq!(p("on=true"), ("on".into(), json!(true)));
        assert_eq!(p("list=[\"a\",1]"), ("list".into(), json!(["a", 1])));
        assert_eq!(p("name=vm1"), ("name".into(), json!("vm1")));
        assert_eq!(
            p("prefix=10.1.0.0/16"),
            ("prefix".into(), json!("10.1.0.0/16"))
        );
        assert_eq!(p("quoted=\"42\""), ("quoted".into(), json!("42")));
        assert_eq!(p("empty="), ("empty".into(), json!("")));
        assert_eq!(
            p("ref=${sites.azure.publicPrefix}"),
            ("ref".into(), json!("${sites.azure.publicPrefix}"))
        );
        assert!(matches!(
            DeployRequest::parse_set("novalue"),
            Err(LabError::BadSet(_))
        ));
        assert!(matches!(
            DeployRequest::parse_set("=x"),
            Err(LabError::BadSet(_))
        ));
    }
}
