//! The lab registry on disk: `<root>/labs/<id>/lab.json` (+ each site's store and
//! `fabric.json`, the realized namespaces and interfaces with what each stands for).
//!
//! `<root>` is `$HYBRIDNET_STATE_DIR` or `/var/lib/hybridnet`. `lab.json` is written before
//! any namespace exists, so a crashed `lab up` can always be found and torn down; it is
//! written only under the lab's lock (and a new lab is registered under the registry's lock),
//! and every file is replaced durably ([`write_durable`]).

use crate::desired::DesiredState;
use crate::names::LabId;
use crate::spec::SiteSpec;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};

/// Name prefix of a lab directory being created (renamed to the lab id when complete).
const NEW_LAB_PREFIX: &str = ".new-";

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
        /// Where it is.
        path: PathBuf,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// A registry file is not the JSON we wrote.
    #[error("{path}: corrupt: {detail}")]
    Corrupt {
        /// Where it is.
        path: PathBuf,
        /// What happened, in words.
        detail: String,
    },
    /// No lab with that id.
    #[error("no lab with id {0} (see `hybridnet lab status`)")]
    NoSuchLab(String),
    /// No lab for that directory.
    #[error("no lab is running for {0}")]
    NoLabForDir(PathBuf),
    /// No lab was named and none is registered.
    #[error("no lab is running (state in {0})")]
    NoLab(PathBuf),
    /// No lab was named and several are registered: the user must say which.
    #[error(
        "{} labs are running and none was named:\n{}\nsay which one with --id ID (e.g. --id {}) or by its directory (`lab status DIR`, `lab down DIR`; `--lab DIR` for `lab exec`, `deploy` and `vpn-connection`), or run the command inside the lab's directory",
        .0.len(),
        .0.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"),
        .0.first().map(|l| l.id.to_string()).unwrap_or_default()
    )]
    SeveralLabs(Vec<LabListing>),
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

/// Writes `data` to `path` so that a crash or a power loss leaves either the old content or
/// the new one, never a mix or an empty file: a temp file in the same directory (mode
/// `mode`, exactly), written and fsync'd, renamed over `path`, then the directory fsync'd so
/// that the rename itself is on disk.
pub fn write_durable(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // created with `mode` (0600 for keys: never readable by others, not even briefly) and
    // removed again if anything below fails
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    // The umask may only take bits away; the file gets exactly `mode`.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// fsyncs a directory, making the creations, renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes a registry file durably ([`write_durable`], mode 0644).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    write_durable(path, data, 0o644).map_err(io(path))
}

/// An exclusive `flock(2)` on a lock file, released when dropped (or when the process dies,
/// so a crashed holder never blocks anyone).
pub struct FileLock {
    _lock: Flock<std::fs::File>,
}

impl FileLock {
    /// Opens (creating) `path` and waits for the exclusive lock on it.
    fn acquire(path: &Path) -> std::io::Result<FileLock> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            match Flock::lock(f, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(FileLock { _lock: lock }),
                Err((back, Errno::EINTR)) => f = back,
                Err((_, e)) => return Err(e.into()),
            }
        }
    }

    /// Like [`FileLock::acquire`], giving up after `patience`.
    fn acquire_within(path: &Path, patience: std::time::Duration) -> Option<FileLock> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ok()?;
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Some(FileLock { _lock: lock }),
                Err((back, _)) => f = back,
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// The registry's own lock (`<root>/labs/.lock`): held while a lab directory is looked up by
/// its source directory and, if there is none, created, so that two `lab up` of one
/// directory never register two labs for it.
pub fn lock_registry(root: &Path) -> Result<FileLock, StateError> {
    let labs = root.join("labs");
    std::fs::create_dir_all(&labs).map_err(io(&labs))?;
    let path = labs.join(".lock");
    FileLock::acquire(&path).map_err(io(&path))
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

    /// Writes lab.json; the caller holds the lab's lock ([`LabDir::lock`]).
    pub fn write_record(&self, _lock: &FileLock, rec: &LabRecord) -> Result<(), StateError> {
        std::fs::create_dir_all(self.sites_path()).map_err(io(&self.path))?;
        let data = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&self.record_path(), &data)
    }

    /// Registers a new lab: its directory appears complete (lock file held by us, `sites/`,
    /// lab.json) or not at all, because it is built under a temporary name and renamed into
    /// place. The caller holds the registry lock, so any temporary directory left there is
    /// a crashed creator's and is removed first.
    pub fn create(
        root: &Path,
        _registry: &FileLock,
        rec: &LabRecord,
    ) -> Result<(LabDir, FileLock), StateError> {
        let labs = root.join("labs");
        if let Ok(rd) = std::fs::read_dir(&labs) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(NEW_LAB_PREFIX) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let tmp = labs.join(format!("{NEW_LAB_PREFIX}{}-{}", rec.id, std::process::id()));
        std::fs::create_dir_all(tmp.join("sites")).map_err(io(&tmp))?;
        let lock_path = tmp.join("lock");
        let lock = FileLock::acquire(&lock_path).map_err(io(&lock_path))?;
        let data = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&tmp.join("lab.json"), &data)?;
        let dir = LabDir::new(root, &rec.id);
        std::fs::rename(&tmp, &dir.path).map_err(io(&dir.path))?;
        sync_dir(&labs).map_err(io(&labs))?;
        Ok((dir, lock))
    }

    /// Waits for the lab's lock, held by whoever changes the lab (`lab up`, `deploy`,
    /// `lab down`). Fails with [`StateError::NoSuchLab`] when the lab is gone, also when a
    /// `lab down` removed it while we waited.
    pub fn lock(&self) -> Result<FileLock, StateError> {
        if !self.path.is_dir() {
            return Err(StateError::NoSuchLab(self.id.to_string()));
        }
        let path = self.path.join("lock");
        let lock = FileLock::acquire(&path).map_err(io(&path))?;
        if !self.record_path().exists() {
            return Err(StateError::NoSuchLab(self.id.to_string()));
        }
        Ok(lock)
    }

    /// The lab's lock if it can be had within `patience` (`lab down` goes on without it
    /// after a crash left the lab half-made).
    pub fn lock_within(&self, patience: std::time::Duration) -> Option<FileLock> {
        if !self.path.is_dir() {
            return None;
        }
        FileLock::acquire_within(&self.path.join("lock"), patience)
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

/// One registered lab as a refusal to guess lists it: its id and where it was built from.
#[derive(Clone, Debug)]
pub struct LabListing {
    /// The lab id.
    pub id: LabId,
    /// Its lab directory, or why lab.json could not be read.
    pub source: Result<PathBuf, String>,
}

impl std::fmt::Display for LabListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Ok(dir) => write!(f, "{}  {}", self.id, dir.display()),
            Err(e) => write!(f, "{}  (lab.json unreadable: {e})", self.id),
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
    /// Nothing said: the lab of the current directory (one holding lab.yaml), else the only
    /// registered lab; with several, the command is refused ([`StateError::SeveralLabs`]).
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
            let mut labs = list_labs(root);
            match labs.len() {
                0 => Err(StateError::NoLab(root.to_path_buf())),
                1 => Ok(labs.remove(0).0),
                _ => Err(StateError::SeveralLabs(
                    labs.into_iter()
                        .map(|(d, r)| LabListing {
                            id: d.id,
                            source: r.map(|r| r.source_dir).map_err(|e| e.to_string()),
                        })
                        .collect(),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn durable_writes_replace_whole_files_with_the_mode_asked_and_leave_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("hn-state-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("gw.toml");
        std::fs::write(&p, "old, world-readable").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_durable(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["gw.toml".to_string()]);
        assert!(write_durable(&dir.join("missing/x"), b"x", 0o600).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
