//! Resource groups: the site's own (always there while it holds resources) and those created
//! through the API, kept in a small JSON file beside the lab's state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One resource group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// Its name as created.
    pub name: String,
    /// Location.
    pub location: String,
    /// Tags.
    #[serde(default)]
    pub tags: serde_json::Map<String, serde_json::Value>,
}

/// The groups of one site (keys lower-case: ARM names are case-insensitive).
#[derive(Debug)]
pub struct Groups {
    path: PathBuf,
    map: BTreeMap<String, Group>,
}

impl Groups {
    /// The groups recorded in `path` (none if it does not exist yet).
    pub fn load(path: PathBuf) -> Groups {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Groups { path, map }
    }

    fn save(&self) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(&self.map).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// The group named `name`, any case.
    pub fn get(&self, name: &str) -> Option<&Group> {
        self.map.get(&name.to_ascii_lowercase())
    }

    /// Every group.
    pub fn all(&self) -> impl Iterator<Item = &Group> {
        self.map.values()
    }

    /// Creates or updates a group; `true` if it was new.
    pub fn put(&mut self, g: Group) -> std::io::Result<bool> {
        let key = g.name.to_ascii_lowercase();
        let new = match self.map.get(&key) {
            Some(old) => {
                let name = old.name.clone();
                self.map.insert(key, Group { name, ..g });
                false
            }
            None => {
                self.map.insert(key, g);
                true
            }
        };
        self.save()?;
        Ok(new)
    }

    /// Removes a group.
    pub fn remove(&mut self, name: &str) -> std::io::Result<()> {
        self.map.remove(&name.to_ascii_lowercase());
        self.save()
    }
}
