//! The real Azure CLI against a lab's Resource Manager endpoints: a private config directory
//! per test, the lab CA as the trust bundle, `az cloud register` + `az login` in one call.
//! scripts/install-az.sh installs az in a virtualenv (HYBRIDNET_AZ_VENV, default
//! /opt/hybridnet-az), and az 2.66 LTS, which has the hybrid API profiles, in another
//! (HYBRIDNET_AZ_LTS_VENV, default /opt/hybridnet-az-lts).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::lab::{scratch_dir, show, Lab};

/// The az executable the project's install script puts in place.
pub fn az_bin() -> PathBuf {
    venv_az("HYBRIDNET_AZ_VENV", "/opt/hybridnet-az")
}

/// az 2.66 LTS (the release Microsoft names for Azure Stack Hub), which still has the hybrid
/// API profiles.
pub fn az_lts_bin() -> PathBuf {
    venv_az("HYBRIDNET_AZ_LTS_VENV", "/opt/hybridnet-az-lts")
}

fn venv_az(var: &str, default: &str) -> PathBuf {
    let venv = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    let bin = venv.join("bin/az");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-az.sh (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A lab's Resource Manager endpoints, as `lab status --json` shows them under `api`.
pub struct Api {
    /// The `api` object (controller pids, CA, endpoints).
    pub doc: Value,
    /// The lab CA clients trust.
    pub ca: PathBuf,
}

impl Api {
    /// The endpoints of a running lab; panics if it has none.
    pub fn of(lab: &Lab) -> Api {
        let doc = lab.status()["api"].clone();
        let ca = PathBuf::from(
            doc["caFile"]
                .as_str()
                .unwrap_or_else(|| panic!("lab status shows no API: {doc:#}")),
        );
        Api { doc, ca }
    }

    /// One site's endpoint entry (url, tenant, principal, secret file, subscription).
    pub fn endpoint(&self, site: &str) -> Value {
        self.doc["endpoints"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["site"] == site))
            .cloned()
            .unwrap_or_else(|| panic!("no endpoint for {site}: {:#}", self.doc))
    }

    /// az logged in to `site`.
    pub fn login(&self, site: &str) -> Az {
        Az::login(&self.endpoint(site), &self.ca)
    }

    /// az 2.66 LTS logged in to `site`, its cloud registered with API profile `profile`
    /// (e.g. `2019-03-01-hybrid`), as Azure Stack Hub users set it up.
    pub fn login_with_profile(&self, site: &str, profile: &str) -> Az {
        Az::login_as(az_lts_bin(), &self.endpoint(site), &self.ca, Some(profile))
    }
}

/// The virtualenv's Python, which has the Azure SDK (azure-identity, azure-mgmt-*).
pub fn sdk_python() -> PathBuf {
    az_bin().with_file_name("python")
}

/// One az configuration (its own `AZURE_CONFIG_DIR`), logged in to one site.
pub struct Az {
    bin: PathBuf,
    config: PathBuf,
    ca: PathBuf,
}

impl Az {
    /// Registers the endpoint (an entry of `lab status --json`'s `api.endpoints`) as a cloud
    /// and logs in with the site's service principal.
    pub fn login(endpoint: &Value, ca: &Path) -> Az {
        Az::login_as(az_bin(), endpoint, ca, None)
    }

    /// Like [`Az::login`] with the az executable `bin` and, if given, an API profile for the
    /// registered cloud.
    pub fn login_as(bin: PathBuf, endpoint: &Value, ca: &Path, profile: Option<&str>) -> Az {
        let az = Az {
            bin,
            config: scratch_dir("az"),
            ca: ca.to_path_buf(),
        };
        let site = endpoint["site"].as_str().unwrap();
        let cloud = format!("hn-{site}");
        let secret = std::fs::read_to_string(endpoint["secretFile"].as_str().unwrap()).unwrap();
        let mut register = vec![
            "cloud",
            "register",
            "-n",
            &cloud,
            "--endpoint-resource-manager",
            endpoint["url"].as_str().unwrap(),
        ];
        if let Some(p) = profile {
            register.extend_from_slice(&["--profile", p]);
        }
        az.ok(&register);
        az.ok(&["cloud", "set", "-n", &cloud]);
        az.ok(&[
            "login",
            "--service-principal",
            "-u",
            endpoint["clientId"].as_str().unwrap(),
            "-p",
            secret.trim(),
            "--tenant",
            endpoint["tenantId"].as_str().unwrap(),
        ]);
        az
    }

    /// `az ARGS…`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("AZURE_CONFIG_DIR", &self.config)
            .env("REQUESTS_CA_BUNDLE", &self.ca)
            .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
            .env("AZURE_CORE_NO_COLOR", "true")
            .output()
            .expect("run az")
    }

    /// `az ARGS… -o json`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend_from_slice(&["-o", "json"]);
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "az {}:\n{}",
            args.join(" "),
            show(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `az rest --method METHOD --url URL [--body BODY]`, which must succeed.
    pub fn rest(&self, method: &str, url: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string);
        let mut args = vec!["rest", "--method", method, "--url", url];
        if let Some(b) = &body {
            args.extend_from_slice(&["--body", b]);
        }
        self.ok(&args)
    }

    /// `az ARGS…`, which must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "az {} succeeded:\n{}",
            args.join(" "),
            show(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for Az {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config);
    }
}
