//! One Child SA per selector pair (Azure's `usePolicyBasedTrafficSelectors`): the initiator
//! proposes the first (local, remote) pair in IKE_AUTH and asks for the others one by one with
//! CREATE_CHILD_SA; every Child SA holds exactly one pair, on both sides. Rekeys replace one
//! pair's Child SA and leave the others alone; the responder narrows a proposal of several
//! prefixes to one pair and, when it initiates too, fills in the pairs the peer left out.

mod common;

use common::*;
use ike::codec::{exchange, flags, Header};
use ike::{ChildSaKeys, ConfigError, TrafficSelector};
use std::collections::BTreeMap;
use std::time::Duration;

const A_NETS: [&str; 2] = ["10.1.0.0/16", "10.11.0.0/16"];
const B_NETS: [&str; 2] = ["10.2.0.0/16", "10.12.0.0/16"];

/// A's side: both of A's prefixes toward both of B's.
fn a_side(pairs: bool) -> Conn {
    Conn::new(A, B)
        .local_ts(&A_NETS)
        .remote_ts(&B_NETS)
        .selector_pairs(pairs)
}

/// B's side, the mirror image.
fn b_side(pairs: bool) -> Conn {
    Conn::new(B, A)
        .local_ts(&B_NETS)
        .remote_ts(&A_NETS)
        .selector_pairs(pairs)
}

/// Each live Child SA's (local, remote) pair, asserting it holds one selector on each side.
fn pairs_of(live: &[ChildSaKeys]) -> Vec<(TrafficSelector, TrafficSelector)> {
    let mut v: Vec<_> = live
        .iter()
        .map(|c| {
            assert_eq!(
                (c.local_ts.len(), c.remote_ts.len()),
                (1, 1),
                "one selector each: {c:?}"
            );
            (c.local_ts[0], c.remote_ts[0])
        })
        .collect();
    v.sort_by_key(|(l, r)| (l.to_string(), r.to_string()));
    v
}

/// Every pair of `local` × `remote`, sorted as [`pairs_of`] sorts.
fn all_pairs(local: &[&str], remote: &[&str]) -> Vec<(TrafficSelector, TrafficSelector)> {
    let mut v: Vec<_> = local
        .iter()
        .flat_map(|l| remote.iter().map(move |r| (ts(l), ts(r))))
        .collect();
    v.sort_by_key(|(l, r)| (l.to_string(), r.to_string()));
    v
}

/// CREATE_CHILD_SA requests on the wire sent by A (`from_a`) or by B.
fn create_requests(n: &Net, from_a: bool) -> usize {
    n.wire
        .iter()
        .filter(|(a, _, p)| {
            let p = if p.starts_with(&[0, 0, 0, 0]) {
                &p[4..]
            } else {
                &p[..]
            };
            *a == from_a
                && Header::decode(p).is_ok_and(|h| {
                    h.exchange == exchange::CREATE_CHILD_SA && h.flags & flags::RESPONSE == 0
                })
        })
        .count()
}

/// A's and B's live Child SAs are each other's mirror images (SPIs and keys).
fn assert_mirrored(la: &[ChildSaKeys], lb: &[ChildSaKeys]) {
    assert_eq!(la.len(), lb.len(), "{la:?}\n{lb:?}");
    for a in la {
        let b = lb
            .iter()
            .find(|b| b.spi_in == a.spi_out)
            .unwrap_or_else(|| panic!("B has no Child SA for {a:?}"));
        assert_eq!(b.spi_out, a.spi_in);
        assert_eq!(b.enc_key_in, a.enc_key_out);
        assert_eq!(b.enc_key_out, a.enc_key_in);
        assert_eq!((&b.local_ts, &b.remote_ts), (&a.remote_ts, &a.local_ts));
    }
}

#[test]
fn two_by_two_prefixes_make_four_child_sas_of_one_pair_each() {
    let mut n = Net::new();
    n.add_b(b_side(true));
    n.add_a(a_side(true).initiate(true));
    n.run_for(Duration::from_secs(5));
    assert!(
        downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
        "{:?} {:?}",
        n.ev_a,
        n.ev_b
    );
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!(pairs_of(&la), all_pairs(&A_NETS, &B_NETS), "{la:?}");
    assert_eq!(pairs_of(&lb), all_pairs(&B_NETS, &A_NETS), "{lb:?}");
    assert_mirrored(&la, &lb);
    // IKE_AUTH carried the first pair; the other three came one request each, from A only
    let first = &children(&n.ev_a)[0];
    assert_eq!(
        (first.local_ts.clone(), first.remote_ts.clone()),
        (vec![ts(A_NETS[0])], vec![ts(B_NETS[0])])
    );
    assert_eq!(create_requests(&n, true), 3);
    assert_eq!(
        create_requests(&n, false),
        0,
        "the responder asks for nothing"
    );
    for st in [&n.a.status()[0], &n.b.status()[0]] {
        assert_eq!(st.state, "established");
        assert_eq!(st.selector_warning, None, "every pair is covered");
    }
    assert_eq!(n.a.dropped() + n.b.dropped(), 0);
}

#[test]
fn rekeying_one_pair_leaves_the_others_alone() {
    let mut n = Net::new();
    let lifetimes = |c: Conn| c.lifetimes(Duration::from_secs(3600), Duration::from_secs(60));
    n.add_b(lifetimes(b_side(true)));
    n.add_a(lifetimes(a_side(true)).initiate(true));
    n.run_for(Duration::from_secs(3));
    let before = live(&n.ev_a);
    assert_eq!(before.len(), 4, "{before:?}");
    // the data path asks for one Child SA's rekey (its sequence numbers ran low)
    let target = before
        .iter()
        .find(|c| c.local_ts == vec![ts(A_NETS[1])] && c.remote_ts == vec![ts(B_NETS[0])])
        .expect("the pair's Child SA")
        .clone();
    let now = n.now;
    assert!(n.a.rekey_child(n.conns_a[0], target.spi_in, now));
    n.run_for(Duration::from_secs(3));
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!(pairs_of(&la), all_pairs(&A_NETS, &B_NETS), "{la:?}");
    assert_mirrored(&la, &lb);
    let spis = |v: &[ChildSaKeys]| -> BTreeMap<String, u32> {
        v.iter()
            .map(|c| (format!("{:?}", (c.local_ts[0], c.remote_ts[0])), c.spi_in))
            .collect()
    };
    let (old, new) = (spis(&before), spis(&la));
    for (pair, spi) in &old {
        if *spi == target.spi_in {
            assert_ne!(new[pair], *spi, "{pair} was rekeyed");
        } else {
            assert_eq!(new[pair], *spi, "{pair} is untouched");
        }
    }
    assert_eq!(
        create_requests(&n, true),
        4,
        "three pairs and one rekey, nothing asked again"
    );
    // time-driven rekeys (every 51-57 s) and idle liveness checks: still one SA per pair
    let installs = children(&n.ev_a).len();
    n.run_for(Duration::from_secs(180));
    assert!(
        downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty(),
        "{:?} {:?}",
        n.ev_a,
        n.ev_b
    );
    assert!(
        children(&n.ev_a).len() >= installs + 4 * 3,
        "each pair rekeyed on its own lifetime"
    );
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!(pairs_of(&la), all_pairs(&A_NETS, &B_NETS), "{la:?}");
    assert_mirrored(&la, &lb);
    assert_eq!(n.a.status()[0].selector_warning, None);
    // a DELETE of the IKE SA takes every pair's Child SA along
    let (now, conn) = (n.now, n.conns_a[0]);
    n.a.remove_connection(conn, now);
    n.run_for(Duration::from_secs(1));
    assert!(live(&n.ev_a).is_empty() && live(&n.ev_b).is_empty());
}

/// A peer that proposes all its prefixes in one Child SA: the responder narrows each
/// proposal to one pair, the peer asks for what it misses, and the responder (which
/// initiates too, as Azure's gateways do) asks for the pair still left out once the peer had
/// its chance.
#[test]
fn the_responder_narrows_to_one_pair_and_fills_in_what_the_peer_left_out() {
    let mut n = Net::new();
    n.add_b(b_side(true).initiate(false));
    n.add_a(a_side(false).initiate(true));
    n.pump();
    let first = &children(&n.ev_b)[0];
    assert_eq!(
        (first.local_ts.clone(), first.remote_ts.clone()),
        (vec![ts(B_NETS[0])], vec![ts(A_NETS[0])]),
        "IKE_AUTH narrowed to the first pair"
    );
    n.run_for(Duration::from_secs(5));
    // A (one SA for everything) stops once its prefixes are all covered somewhere; a
    // responder that does not initiate leaves the last pair to the peer and says so
    let lb = live(&n.ev_b);
    assert_eq!(lb.len(), 3, "{lb:?}");
    pairs_of(&lb);
    let w = n.b.status()[0].selector_warning.clone().expect("a warning");
    assert!(
        w.contains(
            "one Child SA per selector pair; not tunneled: local 10.12.0.0/16 remote 10.11.0.0/16;"
        ),
        "{w}"
    );
    assert_eq!(create_requests(&n, false), 0);

    // the same with a responder that initiates as well, whose own first IKE_SA_INIT was
    // lost: the peer's IKE SA comes up first and B's attempt gives way to it
    let mut n = Net::new();
    n.drop = vec![1]; // A's IKE_SA_INIT is #0, B's #1
    n.add_b(b_side(true).initiate(true));
    n.add_a(a_side(false).initiate(true));
    n.run_for(Duration::from_secs(1));
    assert_eq!(
        create_requests(&n, false),
        0,
        "on the peer's IKE SA the peer goes first"
    );
    n.run_for(Duration::from_secs(5));
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_eq!(pairs_of(&lb), all_pairs(&B_NETS, &A_NETS), "{lb:?}");
    assert_mirrored(&la, &lb);
    assert_eq!(create_requests(&n, false), 1, "the one pair A left out");
    let inits_from_b = n
        .wire
        .iter()
        .filter(|(a, port, p)| {
            !*a && *port == 500
                && Header::decode(p).is_ok_and(|h| {
                    h.exchange == exchange::IKE_SA_INIT && h.flags & flags::RESPONSE == 0
                })
        })
        .count();
    assert_eq!(inits_from_b, 1, "B's lost attempt was not sent again");
    for st in [&n.a.status(), &n.b.status()] {
        assert!(st.iter().all(|s| s.selector_warning.is_none()), "{st:?}");
    }
}

/// A pair the peer refuses is asked for once and named in the warning; the others work.
#[test]
fn a_refused_pair_is_asked_for_once_and_reported() {
    let mut n = Net::new();
    n.add_b(Conn::new(B, A).local_ts(&["10.2.0.0/16"]));
    n.add_a(
        Conn::new(A, B)
            .remote_ts(&["10.2.0.0/16", "10.3.0.0/16"])
            .selector_pairs(true)
            .initiate(true),
    );
    n.run_for(Duration::from_secs(5));
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    let la = live(&n.ev_a);
    assert_eq!(
        pairs_of(&la),
        all_pairs(&["10.1.0.0/16"], &["10.2.0.0/16"]),
        "{la:?}"
    );
    assert_eq!(create_requests(&n, true), 1, "asked once, not in a loop");
    let w = n.a.status()[0].selector_warning.clone().expect("a warning");
    assert!(
        w.contains("not tunneled: local 10.1.0.0/16 remote 10.3.0.0/16;"),
        "{w}"
    );
    assert!(
        w.contains("cover: local [10.1.0.0/16] remote [10.2.0.0/16]"),
        "{w}"
    );
    assert!(w.contains("TS_UNACCEPTABLE"), "{w}");
}

/// Both sides initiate at the same moment: two IKE SAs, each with one Child SA per pair
/// (neither side asks for a pair the IKE SA's initiator already set up).
#[test]
fn simultaneous_initiation_gives_each_ike_sa_one_child_sa_per_pair() {
    let mut n = Net::new();
    n.add_b(b_side(true).initiate(true));
    n.add_a(a_side(true).initiate(true));
    n.run_for(Duration::from_secs(8));
    assert!(downs(&n.ev_a).is_empty() && downs(&n.ev_b).is_empty());
    let (la, lb) = (live(&n.ev_a), live(&n.ev_b));
    assert_mirrored(&la, &lb);
    let got = pairs_of(&la);
    let want = all_pairs(&A_NETS, &B_NETS);
    let ike_sas = got.len() / want.len();
    assert!(ike_sas >= 1 && got.len() == ike_sas * want.len(), "{got:?}");
    for p in &want {
        assert_eq!(
            got.iter().filter(|g| *g == p).count(),
            ike_sas,
            "{p:?} once per IKE SA: {got:?}"
        );
    }
    assert!(create_requests(&n, true) + create_requests(&n, false) == ike_sas * 3);
}

#[test]
fn too_many_pairs_are_refused_up_front() {
    let many: Vec<String> = (0..17).map(|k| format!("10.{k}.0.0/16")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cfg = Conn::new(A, B)
        .local_ts(&many)
        .remote_ts(&many)
        .selector_pairs(true)
        .build();
    assert_eq!(
        cfg.validate(),
        Err(ConfigError::TooManySelectorPairs {
            pairs: 289,
            max: ike::config::MAX_SELECTOR_PAIRS
        })
    );
    let one_sa = Conn::new(A, B).local_ts(&many).remote_ts(&many).build();
    assert_eq!(one_sa.validate(), Ok(()), "one Child SA for all: no limit");
}
