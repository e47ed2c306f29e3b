//! The two deterministic name generators of ARM: `uniqueString()` (a 64-bit Murmur-style hash of
//! the UTF-8 text, written as 13 base-32 characters) and `guid()` (a name-based version-5 UUID
//! in ARM's fixed namespace). Both must match Azure's output so names in a lab equal names a user
//! would see in Azure for the same inputs.

use sha1::{Digest, Sha1};

/// ARM's namespace for `guid()`: 11fb06fb-712d-4ddd-98c7-e71bbd588830, in RFC 4122 byte order.
const GUID_NAMESPACE: [u8; 16] = [
    0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30,
];

const C1: u32 = 0xab0e_9789;
const C2: u32 = 0x239b_961b;
const C3: u32 = 0x85eb_ca6b;
const C4: u32 = 0xc2b2_ae35;

fn le32(b: &[u8]) -> u32 {
    let mut v = 0u32;
    for (i, byte) in b.iter().take(4).enumerate() {
        v |= (*byte as u32) << (8 * i);
    }
    v
}

fn fmix(mut h: u32) -> u32 {
    h = (h ^ (h >> 16)).wrapping_mul(C3);
    h = (h ^ (h >> 13)).wrapping_mul(C4);
    h ^ (h >> 16)
}

/// The 64-bit hash behind `uniqueString()`: two interleaved 32-bit Murmur3-style lanes over
/// 8-byte blocks, then a combined finalisation.
fn hash64(data: &[u8]) -> u64 {
    let len = data.len() as u32;
    let (mut h1, mut h2) = (0u32, 0u32);
    let mut chunks = data.chunks_exact(8);
    for block in &mut chunks {
        let k1 = le32(&block[..4])
            .wrapping_mul(C2)
            .rotate_left(15)
            .wrapping_mul(C1);
        let k2 = le32(&block[4..])
            .wrapping_mul(C1)
            .rotate_left(17)
            .wrapping_mul(C2);
        h1 = (h1 ^ k1)
            .rotate_left(19)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x561c_cd1b);
        h2 = (h2 ^ k2)
            .rotate_left(13)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x0bca_a747);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let k1 = le32(&tail[..tail.len().min(4)])
            .wrapping_mul(C2)
            .rotate_left(15)
            .wrapping_mul(C1);
        h1 ^= k1;
        if tail.len() > 4 {
            let k2 = le32(&tail[4..])
                .wrapping_mul(C1)
                .rotate_left(17)
                .wrapping_mul(C2);
            h2 ^= k2;
        }
    }
    let a = h2 ^ len;
    let b = (h1 ^ len).wrapping_add(a);
    let c = a.wrapping_add(b);
    let b = fmix(b);
    let c = fmix(c);
    let lo = b.wrapping_add(c);
    let hi = c.wrapping_add(lo);
    ((hi as u64) << 32) | lo as u64
}

/// `uniqueString(a, b, ...)`: the arguments joined with '-', hashed, and the top 65 bits written
/// as 13 characters of the RFC 4648 base-32 alphabet in lower case.
pub(crate) fn unique_string(joined: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut h = hash64(joined.as_bytes());
    let mut out = String::with_capacity(13);
    for _ in 0..13 {
        out.push(ALPHABET[(h >> 59) as usize] as char);
        h <<= 5;
    }
    out
}

/// `guid(a, b, ...)`: UUID version 5 (SHA-1, RFC 4122 §4.3) of the arguments joined with '-'.
pub(crate) fn guid(joined: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(GUID_NAMESPACE);
    sha.update(joined.as_bytes());
    let d = sha.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values observed from real Azure deployments (published alongside third-party
    /// re-implementations); they pin the algorithm, including every tail length.
    #[test]
    fn unique_string_matches_azure() {
        assert_eq!(unique_string("aaa"), "zavj67f3en4hc");
        assert_eq!(unique_string("bbb"), "w5eragfxe33cy");
        assert_eq!(unique_string("zzz"), "cryksdzzzawae");
        assert_eq!(unique_string("xxx-yyy-zzz"), "lghi7k5js7itq");
        assert_eq!(unique_string("test"), "rbgf3xv4ufgzg");
        assert_eq!(unique_string("hello-world"), "a7wkljktk6wne");
        assert_eq!(unique_string("abc"), "cgtzqvhu4i23s");
        assert_eq!(unique_string("foo-bar-baz"), "xzi4ioaxtmth4");
        assert_eq!(
            unique_string(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg"
            ),
            "bmg7c6xu4tw46"
        );
    }

    #[test]
    fn unique_string_shape() {
        for s in ["", "a", "ab", "abcdefgh", "abcdefghi", "abcdefghijklm"] {
            let u = unique_string(s);
            assert_eq!(u.len(), 13);
            assert!(
                u.chars()
                    .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
                "{u}"
            );
        }
        assert_ne!(unique_string("ABC"), unique_string("abc"));
    }

    #[test]
    fn guid_is_uuid_v5_in_arm_namespace() {
        let g = guid("a-b-c");
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "5");
        assert!(matches!(&g[19..20], "8" | "9" | "a" | "b"));
        // RFC 4122 v5 of "a-b-c" in namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830 (checked
        // against Python's uuid.uuid5)
        assert_eq!(g, "a98fa280-e03f-5afa-8d8e-92d0a9c201e8");
        assert_ne!(g, guid("a-b-d"));
    }
}
