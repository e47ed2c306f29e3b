//! The IKE SAs by our SPI, with what lets one message or timer find its work without looking
//! at every SA: the SAs of each connection, and the SAs changed since their timers were last
//! looked at. A gateway with 10,000 tunnels holds 10,000 SAs; a scan of all of them for every
//! datagram, every poll for the next timeout and every question about one connection made
//! setting them up quadratic (seconds of CPU at 1,000 tunnels, minutes at 10,000).

use std::collections::{HashMap, HashSet};

use super::{ConnectionId, IkeSa};

/// The SA map and its per-connection index; see the module documentation. An SA's `conn`
/// must not change while it is in the table (the responder learns it at IKE_AUTH, while the
/// SA is taken out for the exchange), or the index would keep it under the old connection.
#[derive(Default)]
pub(super) struct SaTable {
    /// Boxed: an IKE SA is ~1 KB, and a hash table keeps up to twice its entries' room
    /// free (capacities are powers of two): inline that was 2 KB per SA.
    map: HashMap<u64, Box<IkeSa>>,
    /// Our SPIs of each connection's SAs (a handful each: the SA, its rekey, a collision).
    by_conn: HashMap<ConnectionId, Vec<u64>>,
    /// SAs inserted or lent out mutably since [`Self::take_touched`]: their timers may have
    /// moved.
    touched: HashSet<u64>,
}

impl SaTable {
    pub(super) fn insert(&mut self, spi: u64, sa: IkeSa) {
        let conn = sa.conn;
        if let Some(old) = self.map.insert(spi, Box::new(sa)) {
            self.unindex(spi, old.conn);
        }
        self.by_conn.entry(conn).or_default().push(spi);
        self.touched.insert(spi);
    }

    pub(super) fn remove(&mut self, spi: &u64) -> Option<IkeSa> {
        let sa = self.map.remove(spi)?;
        self.unindex(*spi, sa.conn);
        Some(*sa)
    }

    fn unindex(&mut self, spi: u64, conn: ConnectionId) {
        if let Some(v) = self.by_conn.get_mut(&conn) {
            v.retain(|s| *s != spi);
            if v.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    pub(super) fn get(&self, spi: &u64) -> Option<&IkeSa> {
        self.map.get(spi).map(|b| &**b)
    }

    pub(super) fn get_mut(&mut self, spi: &u64) -> Option<&mut IkeSa> {
        let sa = self.map.get_mut(spi)?;
        self.touched.insert(*spi);
        Some(&mut **sa)
    }

    pub(super) fn contains_key(&self, spi: &u64) -> bool {
        self.map.contains_key(spi)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &u64> {
        self.map.keys()
    }

    /// The SAs of connection `conn`, by our SPI.
    pub(super) fn of_conn(&self, conn: ConnectionId) -> impl Iterator<Item = (u64, &IkeSa)> {
        self.by_conn
            .get(&conn)
            .into_iter()
            .flatten()
            .filter_map(|spi| self.map.get(spi).map(|sa| (*spi, &**sa)))
    }

    /// Our SPIs of connection `conn`'s SAs.
    pub(super) fn spis_of(&self, conn: ConnectionId) -> Vec<u64> {
        self.by_conn.get(&conn).cloned().unwrap_or_default()
    }

    /// The SAs changed since the last call.
    pub(super) fn take_touched(&mut self) -> HashSet<u64> {
        std::mem::take(&mut self.touched)
    }
}
