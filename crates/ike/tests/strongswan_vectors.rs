//! Key derivation checked against exchanges captured from strongSwan 5.9.8 (charon with
//! `ike = 4`, `chd = 4` logging, lab-only throwaway keys, PSK "labsecret"). Each vector holds
//! the DH shared secret, the signed octets (which contain the complete IKE_SA_INIT messages as
//! sent), charon's SKEYSEED, SK_*, AUTH values and Child SA KEYMAT. We parse the messages with
//! our codec (and re-encode them byte for byte), then derive everything ourselves.

use std::collections::HashMap;

use ike::codec::{Message, PayloadBody};
use ike::config::{Encryption, Integrity, Prf};
use ike::crypto::{self, IkeSuite};
use ike::proposal;

fn load(text: &str) -> HashMap<String, Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .map(|l| {
            let (k, v) = l.split_once(" = ").unwrap();
            (k.to_string(), hex::decode(v.trim()).unwrap())
        })
        .collect()
}

fn nonce(m: &Message) -> Vec<u8> {
    m.payloads
        .iter()
        .find_map(|p| match &p.body {
            PayloadBody::Nonce(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap()
}

fn check(text: &str, ike_proposal: &str, esp: (Encryption, Option<Integrity>)) {
    let v = load(text);
    let prf_len_of = |p: Prf| p.output_len();
    // The two signed-octet dumps: message 1 has a zero responder SPI.
    let mut sets = vec![];
    for (okey, akey, ikey) in [("octets", "auth", "idx"), ("octets2", "auth2", "idx2")] {
        sets.push((v[okey].clone(), v[akey].clone(), v[ikey].clone()));
    }
    sets.sort_by_key(|(o, _, _)| o[8..16] != [0u8; 8]);
    let msg_len = |o: &[u8]| u32::from_be_bytes(o[24..28].try_into().unwrap()) as usize;
    let m1_bytes = sets[0].0[..msg_len(&sets[0].0)].to_vec();
    let m2_bytes = sets[1].0[..msg_len(&sets[1].0)].to_vec();
    let m1 = Message::decode(&m1_bytes).expect("strongSwan/our IKE_SA_INIT request parses");
    let m2 = Message::decode(&m2_bytes).expect("IKE_SA_INIT response parses");
    assert_eq!(m1.encode(), m1_bytes, "request re-encodes byte for byte");
    assert_eq!(m2.encode(), m2_bytes, "response re-encodes byte for byte");
    let (ni, nr) = (nonce(&m1), nonce(&m2));
    let (spi_i, spi_r) = (m2.header.spi_i, m2.header.spi_r);
    let ours: Vec<ike::Proposal> = vec![ike_proposal.parse().unwrap()];
    let sa = m2
        .payloads
        .iter()
        .find_map(|p| match &p.body {
            PayloadBody::Sa(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    let suite: IkeSuite = proposal::accept_ike(&ours, &sa).expect("selected proposal is ours");
    assert_eq!(
        *crypto::skeyseed(suite.prf, &ni, &nr, &v["shared"]),
        v["skeyseed"]
    );
    let k = crypto::derive_ike_keys(suite, &v["shared"], &ni, &nr, spi_i, spi_r);
    assert_eq!(k.sk_d(), v["sk_d"]);
    assert_eq!(k.sk_ei(), v["sk_ei"]);
    assert_eq!(k.sk_er(), v["sk_er"]);
    assert_eq!(k.sk_pi(), v["sk_pi"]);
    assert_eq!(k.sk_pr(), v["sk_pr"]);
    if let Some(ai) = v.get("sk_ai") {
        assert_eq!(k.sk_ai(), *ai);
        assert_eq!(k.sk_ar(), v["sk_ar"]);
    } else {
        assert!(k.sk_ai().is_empty());
    }
    // AUTH: octets = message | peer nonce | prf(SK_p, IDx').
    let pl = prf_len_of(suite.prf);
    for (idx, (octets, auth, id)) in sets.iter().enumerate() {
        let (msg, sk_p, peer_nonce) = if idx == 0 {
            (&m1_bytes, k.sk_pi(), &nr)
        } else {
            (&m2_bytes, k.sk_pr(), &ni)
        };
        assert_eq!(&octets[msg.len()..octets.len() - pl], &peer_nonce[..]);
        assert_eq!(
            &octets[octets.len() - pl..],
            &crypto::prf(suite.prf, sk_p, &[id])[..]
        );
        let ours = crypto::psk_auth(suite.prf, &v["psk"], msg, peer_nonce, sk_p, id);
        assert_eq!(*ours, *auth, "AUTH {idx}");
    }
    let [ei, ai, er, ar] = crypto::child_keymat(suite.prf, k.sk_d(), None, &ni, &nr, esp.0, esp.1);
    assert_eq!(*ei, v["child_enc_i"]);
    assert_eq!(*er, v["child_enc_r"]);
    if let Some(ci) = v.get("child_integ_i") {
        assert_eq!(*ai, *ci);
        assert_eq!(*ar, v["child_integ_r"]);
    }
}

#[test]
fn strongswan_gcm_ecp384_we_initiate() {
    check(
        include_str!("vectors/strongswan-gcm-ecp384.txt"),
        "aes256gcm16-prfsha384-ecp384",
        (Encryption::AesGcm16_256, None),
    );
}

#[test]
fn strongswan_cbc_modp2048_strongswan_initiates() {
    check(
        include_str!("vectors/strongswan-cbc-modp2048.txt"),
        "aes256-sha256-modp2048",
        (Encryption::AesCbc256, Some(Integrity::HmacSha256_128)),
    );
}
