//! The site's embedded database (redb): one file per site. Resources, deployments and the site's
//! identity live in separate tables; shared keys live in their own table so that serializing a
//! resource can never leak one. Every change is one write transaction.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::SiteError;
use crate::model::{ProvisioningState, Resource, SharedKey};
use crate::DeploymentRecord;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");

const INFO_KEY: &str = "site";
const GENERATION_KEY: &str = "generation";

/// How long to wait for another process holding the database (e.g. a running `lab up`).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// A site's identity as stored: fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// Site name (also the database file's stem).
    pub name: String,
    /// Kind name.
    pub kind: String,
    /// Prefix public IPs are allocated from.
    pub public_prefix: ipnet::Ipv4Net,
    /// Subscription id used in resource ids.
    pub subscription_id: String,
    /// Resource group used in resource ids.
    pub resource_group: String,
    /// Location given to deployments (`resourceGroup().location`).
    pub location: String,
}

/// Everything written by one apply, committed in one transaction.
pub(crate) struct Commit<'a> {
    pub base_generation: u64,
    pub writes: &'a [Resource],
    pub deletes: &'a [String],
    pub deployment: &'a DeploymentRecord,
    pub deployment_name: &'a str,
}

pub(crate) struct Store {
    path: PathBuf,
    db: Database,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

impl Store {
    /// Opens (or, with `create`, creates) a site database, waiting briefly if another process has it open.
    pub fn open(path: &Path, create: bool) -> Result<Store, SiteError> {
        if !create && !path.exists() {
            return Err(SiteError::NoSuchSite {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                dir: path
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            });
        }
        if create && !path.exists() {
            // The file holds shared keys: only the owner may read it, from the first byte on.
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| SiteError::Io {
                    path: path.display().to_string(),
                    source: e,
                })?;
        }
        let started = Instant::now();
        let db = loop {
            match Database::create(path) {
                Ok(db) => break db,
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < LOCK_WAIT => {
                    thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(SiteError::store(path, e)),
            }
        };
        let store = Store {
            path: path.to_path_buf(),
            db,
        };
        if create {
            let tx = store.db.begin_write().map_err(|e| store.err(e))?;
            for t in [META, RESOURCES, SECRETS, DEPLOYMENTS] {
                tx.open_table(t).map_err(|e| store.err(e))?;
            }
            tx.commit().map_err(|e| store.err(e))?;
        }
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> SiteError {
        SiteError::store(&self.path, e)
    }

    fn decode<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T, SiteError> {
        serde_json::from_slice(bytes).map_err(|e| self.err(format!("corrupt {what} record: {e}")))
    }

    fn encode<T: Serialize>(&self, v: &T) -> Result<Vec<u8>, SiteError> {
        serde_json::to_vec(v).map_err(|e| self.err(e))
    }

    /// The site's identity, if it was created.
    pub fn info(&self) -> Result<Option<SiteInfo>, SiteError> {
        let rx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = rx.open_table(META).map_err(|e| self.err(e))?;
        match t.get(INFO_KEY).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(self.decode("site", v.value())?)),
            None => Ok(None),
        }
    }

    /// Records the site's identity.
    pub fn write_info(&self, info: &SiteInfo) -> Result<(), SiteError> {
        let bytes = self.encode(info)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(META).map_err(|e| self.err(e))?;
            t.insert(INFO_KEY, bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Every resource (shared keys re-attached) and the configuration generation, read in one
    /// transaction so a plan built on them is either current or detectably stale.
    pub fn snapshot(&self) -> Result<(u64, Vec<Resource>), SiteError> {
        let rx = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = rx.open_table(META).map_err(|e| self.err(e))?;
        let generation = match meta.get(GENERATION_KEY).map_err(|e| self.err(e))? {
            Some(v) => self.decode("generation", v.value())?,
            None => 0,
        };
        let t = rx.open_table(RESOURCES).map_err(|e| self.err(e))?;
        let secrets = rx.open_table(SECRETS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let mut r: Resource = self.decode("resource", v.value())?;
            if let Resource::Connection(c) = &mut r {
                if let Some(s) = secrets.get(k.value()).map_err(|e| self.err(e))? {
                    let key = String::from_utf8(s.value().to_vec())
                        .map_err(|_| self.err("corrupt secret record"))?;
                    c.shared_key = Some(SharedKey::new(key));
                }
            }
            out.push(r);
        }
        Ok((generation, out))
    }

    /// Every resource, with shared keys re-attached.
    pub fn resources(&self) -> Result<Vec<Resource>, SiteError> {
        Ok(self.snapshot()?.1)
    }

    /// Every deployment record.
    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, SiteError> {
        let rx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = rx.open_table(DEPLOYMENTS).map_err(|e| self.err(e))?;
        let mut out: Vec<DeploymentRecord> = Vec::new();
        for entry in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = entry.map_err(|e| self.err(e))?;
            out.push(self.decode("deployment", v.value())?);
        }
        out.sort_by_key(|d| d.sequence);
        Ok(out)
    }

    /// Writes one deployment's result atomically; fails if another apply happened since the plan.
    pub fn commit(&self, c: Commit<'_>) -> Result<(), SiteError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let current: u64 = match meta.get(GENERATION_KEY).map_err(|e| self.err(e))? {
                Some(v) => self.decode("generation", v.value())?,
                None => 0,
            };
            if current != c.base_generation {
                return Err(SiteError::StalePlan {
                    deployment: c.deployment_name.to_string(),
                });
            }
            let next = self.encode(&(current + 1))?;
            meta.insert(GENERATION_KEY, next.as_slice())
                .map_err(|e| self.err(e))?;
            let mut res = tx.open_table(RESOURCES).map_err(|e| self.err(e))?;
            let mut sec = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            for r in c.writes {
                let k = key(r.id());
                let bytes = self.encode(r)?;
                res.insert(k.as_str(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                match r {
                    Resource::Connection(conn) => match &conn.shared_key {
                        Some(s) => {
                            sec.insert(k.as_str(), s.expose().as_bytes())
                                .map_err(|e| self.err(e))?;
                        }
                        None => {
                            sec.remove(k.as_str()).map_err(|e| self.err(e))?;
                        }
                    },
                    _ => {
                        sec.remove(k.as_str()).map_err(|e| self.err(e))?;
                    }
                }
            }
            for id in c.deletes {
                let k = key(id);
                res.remove(k.as_str()).map_err(|e| self.err(e))?;
                sec.remove(k.as_str()).map_err(|e| self.err(e))?;
            }
            let mut dep = tx.open_table(DEPLOYMENTS).map_err(|e| self.err(e))?;
            let bytes = self.encode(c.deployment)?;
            dep.insert(key(c.deployment_name).as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Removes one resource if the configuration did not change since `base_generation`.
    pub fn delete(&self, base_generation: u64, id: &str) -> Result<(), SiteError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let current: u64 = match meta.get(GENERATION_KEY).map_err(|e| self.err(e))? {
                Some(v) => self.decode("generation", v.value())?,
                None => 0,
            };
            if current != base_generation {
                return Err(SiteError::StalePlan {
                    deployment: format!("delete {id}"),
                });
            }
            let next = self.encode(&(current + 1))?;
            meta.insert(GENERATION_KEY, next.as_slice())
                .map_err(|e| self.err(e))?;
            let k = key(id);
            let mut res = tx.open_table(RESOURCES).map_err(|e| self.err(e))?;
            if res.remove(k.as_str()).map_err(|e| self.err(e))?.is_none() {
                return Err(SiteError::NoSuchResource(id.to_string()));
            }
            let mut sec = tx.open_table(SECRETS).map_err(|e| self.err(e))?;
            sec.remove(k.as_str()).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records a deployment (e.g. a failed one) without touching resources.
    pub fn put_deployment(&self, d: &DeploymentRecord) -> Result<(), SiteError> {
        let bytes = self.encode(d)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut dep = tx.open_table(DEPLOYMENTS).map_err(|e| self.err(e))?;
            dep.insert(key(&d.name).as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets a deployment's record (its resources stay, as ARM's deployment delete leaves
    /// them); `false` if there was none.
    pub fn delete_deployment(&self, name: &str) -> Result<bool, SiteError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut dep = tx.open_table(DEPLOYMENTS).map_err(|e| self.err(e))?;
            let r = dep.remove(key(name).as_str()).map_err(|e| self.err(e))?;
            r.is_some()
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Sets one resource's realization state (does not bump the configuration generation).
    pub fn set_state(&self, id: &str, state: ProvisioningState) -> Result<(), SiteError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut res = tx.open_table(RESOURCES).map_err(|e| self.err(e))?;
            let k = key(id);
            let mut r: Resource = match res.get(k.as_str()).map_err(|e| self.err(e))? {
                Some(v) => self.decode("resource", v.value())?,
                None => return Err(SiteError::NoSuchResource(id.to_string())),
            };
            r.meta_mut().provisioning_state = state;
            let bytes = self.encode(&r)?;
            res.insert(k.as_str(), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}
