//! Which configured connections may answer a peer, found without scanning them all: a gateway
//! with thousands of tunnels to one peer (or to thousands of peers) would otherwise compare
//! every connection for each IKE_SA_INIT and IKE_AUTH it answers.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::config::Identity;

/// Connection indices by the peer address and by the peer identity they name, each list in
/// ascending order, which is configuration order (an endpoint never reuses an index).
#[derive(Default)]
pub(super) struct PeerIndex {
    by_addr: HashMap<IpAddr, Vec<u32>>,
    /// Connections that accept any peer address (IPv4 or IPv6 unspecified).
    any_addr: Vec<u32>,
    /// Keyed by a hash of the identity: the caller compares the identity itself, and a second
    /// copy of every identity would cost memory in every tunnel.
    by_id: HashMap<u64, Vec<u32>>,
    /// Connections that accept any peer identity.
    any_id: Vec<u32>,
}

fn id_key(id: &Identity) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

fn insert_sorted(list: &mut Vec<u32>, index: u32) {
    if let Err(pos) = list.binary_search(&index) {
        list.insert(pos, index);
    }
}

fn remove_sorted(list: &mut Vec<u32>, index: u32) {
    if let Ok(pos) = list.binary_search(&index) {
        list.remove(pos);
    }
}

impl PeerIndex {
    pub(super) fn insert(&mut self, index: u32, remote: IpAddr, remote_id: Option<&Identity>) {
        if remote.is_unspecified() {
            insert_sorted(&mut self.any_addr, index);
        } else {
            insert_sorted(self.by_addr.entry(remote).or_default(), index);
        }
        match remote_id {
            Some(id) => insert_sorted(self.by_id.entry(id_key(id)).or_default(), index),
            None => insert_sorted(&mut self.any_id, index),
        }
    }

    pub(super) fn remove(&mut self, index: u32, remote: IpAddr, remote_id: Option<&Identity>) {
        if remote.is_unspecified() {
            remove_sorted(&mut self.any_addr, index);
        } else if let Some(list) = self.by_addr.get_mut(&remote) {
            remove_sorted(list, index);
            if list.is_empty() {
                self.by_addr.remove(&remote);
            }
        }
        match remote_id {
            Some(id) => {
                let key = id_key(id);
                if let Some(list) = self.by_id.get_mut(&key) {
                    remove_sorted(list, index);
                    if list.is_empty() {
                        self.by_id.remove(&key);
                    }
                }
            }
            None => remove_sorted(&mut self.any_id, index),
        }
    }

    /// Connections naming `remote` as their peer, then those accepting any address, each in
    /// configuration order.
    pub(super) fn by_address(&self, remote: IpAddr) -> impl Iterator<Item = u32> + '_ {
        let exact = self.by_addr.get(&remote).map(Vec::as_slice);
        exact
            .unwrap_or_default()
            .iter()
            .chain(&self.any_addr)
            .copied()
    }

    /// Connections that may accept identity `id` (naming it, or a colliding one, or accepting
    /// any), in configuration order.
    pub(super) fn by_identity(&self, id: &Identity) -> Vec<u32> {
        let named = self.by_id.get(&id_key(id)).map(Vec::as_slice);
        let mut all: Vec<u32> = named
            .unwrap_or_default()
            .iter()
            .chain(&self.any_id)
            .copied()
            .collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fqdn(s: &str) -> Identity {
        Identity::Fqdn(s.to_string())
    }

    #[test]
    fn lists_stay_in_configuration_order_and_forget_removed_connections() {
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let mut ix = PeerIndex::default();
        ix.insert(0, any, None);
        ix.insert(1, peer, Some(&fqdn("b")));
        ix.insert(2, peer, Some(&fqdn("a")));
        ix.insert(3, peer, None);
        assert_eq!(ix.by_address(peer).collect::<Vec<_>>(), [1, 2, 3, 0]);
        assert_eq!(ix.by_address(any).collect::<Vec<_>>(), [0]);
        ix.insert(4, "::".parse().unwrap(), None);
        assert_eq!(ix.by_address(peer).collect::<Vec<_>>(), [1, 2, 3, 0, 4]);
        ix.remove(4, "::".parse().unwrap(), None);
        assert_eq!(ix.by_identity(&fqdn("a")), [0, 2, 3]);
        assert_eq!(ix.by_identity(&fqdn("c")), [0, 3]);
        ix.remove(2, peer, Some(&fqdn("a")));
        ix.remove(0, any, None);
        assert_eq!(ix.by_address(peer).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(ix.by_identity(&fqdn("a")), [3]);
        assert!(ix.by_address("192.0.2.9".parse().unwrap()).next().is_none());
    }
}
