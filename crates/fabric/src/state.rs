//! The lab registry on disk: `<root>/labs/<id>/lab.json` (+ each site's store and
//! `fabric.json`, the realized namespaces and interfaces with what each stands for).
//!
//! `<root>` is `$HYBRIDNET_STATE_DIR` or `/var/lib/hybridnet`. `lab.json` is written before
//! any namespace exists, so a crashed `lab up` can always be found and torn down.

use crate::desired::DesiredState;
use crate::names::LabId;
use crate::spec::SiteSpec;
use std::path::{Path, PathBuf};

/// Environment variable overriding the state root.
pub const STATE_DIR_ENV: &str = "HYBRIDNET_STATE_DIR";
/// Default state root.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hybridnet";

/// Problems with the lab registry.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory of the registry could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A registry file is not the JSON we wrote.
    #[error("{path}: corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// No lab with that id.
    #[error("no lab with id {0} (see `hybridnet lab status`)")]
    NoSuchLab(String),
    /// No lab for that directory.
    #[error("no lab is running for {0}")]
    NoLabForDir(PathBuf),
    /// The lab could not be chosen implicitly.
    #[error("{0}")]
    Ambiguous(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state root (`$HYBRIDNET_STATE_DIR` or `/var/lib/hybridnet`).
pub fn state_root() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// `lab.json`: who the lab is and what it was built from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabRecord {
    /// The lab id (prefix of every object).
    pub id: LabId,
    /// Canonical path of the lab directory (the one holding lab.yaml).
    pub source_dir: PathBuf,
    /// Sites as declared when the lab was last brought up.
    pub sites: Vec<SiteSpec>,
    /// Unix time the lab was created.
    pub created_unix: u64,
    /// The lab lays the gateways' namespaces and wires but runs no gateway process in them
    /// (`lab up --no-gateways`): the user brings their own VPN device (e.g. strongSwan from
    /// `vpn-connection device-config`, or `hybridnet gateway run` by hand).
    #[serde(default)]
    pub external_gateways: bool,
}

/// A lab's directory in the registry.
#[derive(Clone, Debug)]
pub struct LabDir {
    /// The lab's id.
    pub id: LabId,
    /// `<root>/labs/<id>`.
    pub path: PathBuf,
}

/// Writes `data` to `path` atomically (temp file + rename) so a crash never leaves half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl LabDir {
    /// The directory of lab `id` under `root` (whether or not it exists).
    pub fn new(root: &Path, id: &LabId) -> LabDir {
        LabDir {
            id: id.clone(),
            path: root.join("labs").join(id.as_str()),
        }
    }

    /// Path of lab.json.
    pub fn record_path(&self) -> PathBuf {
        self.path.join("lab.json")
    }

    /// Path of fabric.json (what was realized).
    pub fn fabric_path(&self) -> PathBuf {
        self.path.join("fabric.json")
    }

    /// Directory holding the site stores.
    pub fn sites_path(&self) -> PathBuf {
        self.path.join("sites")
    }

    /// Reads lab.json.
    pub fn record(&self) -> Result<LabRecord, StateError> {
        let p = self.record_path();
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: p,
            detail: e.to_string(),
        })
    }

    /// Writes lab.json (creating the directory).
    pub fn write_record(&self, rec: &LabRecord) -> Result<(), StateError> {
        std::fs::create_dir_all(self.sites_path()).map_err(io(&self.path))?;
        let data = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&self.record_path(), &data)
    }

    /// Reads fabric.json, if the lab was realized at least once.
    pub fn realized(&self) -> Option<DesiredState> {
        let text = std::fs::read_to_string(self.fabric_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records what was realized.
    pub fn write_realized(&self, state: &DesiredState) -> Result<(), StateError> {
        let data = serde_json::to_vec_pretty(state).expect("state serializes");
        write_atomic(&self.fabric_path(), &data)
    }

    /// Removes the lab's whole state directory.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.path)(e)),
            _ => Ok(()),
        }
    }
}

/// All labs in the registry under `root`, with their records (or the error reading them).
pub fn list_labs(root: &Path) -> Vec<(LabDir, Result<LabRecord, StateError>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.join("labs")) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let Some(id) = e.file_name().to_str().and_then(|s| LabId::parse(s).ok()) else {
            continue;
        };
        let dir = LabDir::new(root, &id);
        let rec = dir.record();
        out.push((dir, rec));
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    out
}

/// Canonical form of a lab directory (the key "one lab per directory" is about).
pub fn canonical_dir(dir: &Path) -> Result<PathBuf, StateError> {
    std::fs::canonicalize(dir).map_err(io(dir))
}

/// The lab built from `dir`, if any.
pub fn find_by_dir(root: &Path, dir: &Path) -> Result<Option<(LabDir, LabRecord)>, StateError> {
    let canon = canonical_dir(dir)?;
    Ok(list_labs(root)
        .into_iter()
        .find_map(|(d, r)| r.ok().filter(|r| r.source_dir == canon).map(|r| (d, r))))
}

/// A fresh lab id that no registered lab and no existing namespace uses.
pub fn fresh_id(root: &Path) -> LabId {
    loop {
        let id = LabId::random();
        let taken = LabDir::new(root, &id).path.exists()
            || !crate::netns::netns_entries(&id.netns_prefix()).is_empty();
        if !taken {
            return id;
        }
    }
}

/// Which lab a command means, as the user said it.
#[derive(Clone, Debug)]
pub enum LabSelector {
    /// `--id ID`
    Id(LabId),
    /// A lab directory.
    Dir(PathBuf),
    /// Nothing said: the lab of the current directory, else the only lab.
    Implicit,
}

/// Resolves a selector to a registered lab directory.
pub fn select(root: &Path, sel: &LabSelector) -> Result<LabDir, StateError> {
    match sel {
        LabSelector::Id(id) => {
            let d = LabDir::new(root, id);
            if d.path.exists() {
                Ok(d)
            } else {
                Err(StateError::NoSuchLab(id.to_string()))
            }
        }
        LabSelector::Dir(dir) => match find_by_dir(root, dir)? {
            Some((d, _)) => Ok(d),
            None => Err(StateError::NoLabForDir(dir.clone())),
        },
        LabSelector::Implicit => {
            if let Ok(cwd) = std::env::current_dir() {
                if cwd.join(crate::spec::LAB_FILE).exists() {
                    if let Some((d, _)) = find_by_dir(root, &cwd)? {
                        return Ok(d);
                    }
                }
            }
            let labs = list_labs(root);
            match labs.len() {
                1 => Ok(labs.into_iter().next().expect("one").0),
                0 => Err(StateError::Ambiguous(format!(
                    "no lab is running (state in {})",
                    root.display()
                ))),
                n => Err(StateError::Ambiguous(format!(
                    "{n} labs are running ({}); choose one with --id or a lab directory",
                    labs.iter()
                        .map(|(d, _)| d.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}
