//! The IKE message decoder fed hostile input: must never panic, and whatever it accepts must
//! encode to octets that decode to the same message (the codec is lossless for what it parses).
#![no_main]

use ike::codec::{decode_chain, sk_offset, Header, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(data);
    let _ = sk_offset(data);
    if let Ok(m) = Message::decode(data) {
        let enc = m.encode();
        let again = Message::decode(&enc).expect("re-encoded message must parse");
        assert_eq!(again, m);
        assert_eq!(again.encode(), enc);
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(p) = decode_chain(first, rest) {
            let mut out = vec![];
            let f = ike::codec::encode_chain(&p, &mut out);
            assert_eq!(decode_chain(f, &out).expect("re-encoded chain must parse"), p);
        }
    }
});
