//! Custom IPsec/IKE policies (`ipsecPolicies[]`): the ARM enumerations and their translation to
//! strongSwan-style proposals.

use serde::{Deserialize, Serialize};

macro_rules! arm_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }
        impl $name {
            /// Every value ARM accepts, spelled as in the REST API.
            pub const ALL: &'static [&'static str] = &[$($text),+];
            /// Parses the ARM spelling (case-insensitive).
            pub fn parse(s: &str) -> Option<Self> {
                $(if s.eq_ignore_ascii_case($text) { return Some($name::$variant); })+
                None
            }
            /// The ARM spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

arm_enum!(
    /// `ikeEncryption`.
    IkeEncryption { /** DES */ Des = "DES", /** 3DES */ Des3 = "DES3", /** AES-128-CBC */ Aes128 = "AES128", /** AES-192-CBC */ Aes192 = "AES192", /** AES-256-CBC */ Aes256 = "AES256", /** AES-128-GCM */ GcmAes128 = "GCMAES128", /** AES-256-GCM */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `ikeIntegrity`.
    IkeIntegrity { /** HMAC-MD5 */ Md5 = "MD5", /** HMAC-SHA1 */ Sha1 = "SHA1", /** HMAC-SHA256 */ Sha256 = "SHA256", /** HMAC-SHA384 */ Sha384 = "SHA384", /** GCM (AEAD) */ GcmAes128 = "GCMAES128", /** GCM (AEAD) */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `dhGroup` of the IKE SA.
    DhGroup { /** no DH */ None = "None", /** MODP 768 */ DhGroup1 = "DHGroup1", /** MODP 1024 */ DhGroup2 = "DHGroup2", /** MODP 2048 */ DhGroup14 = "DHGroup14", /** MODP 2048 (= 14) */ DhGroup2048 = "DHGroup2048", /** NIST P-256 */ Ecp256 = "ECP256", /** NIST P-384 */ Ecp384 = "ECP384", /** MODP 2048 with 256-bit subgroup */ DhGroup24 = "DHGroup24" }
);
arm_enum!(
    /// `ipsecEncryption`.
    IpsecEncryption { /** NULL cipher */ None = "None", /** DES */ Des = "DES", /** 3DES */ Des3 = "DES3", /** AES-128-CBC */ Aes128 = "AES128", /** AES-192-CBC */ Aes192 = "AES192", /** AES-256-CBC */ Aes256 = "AES256", /** AES-128-GCM */ GcmAes128 = "GCMAES128", /** AES-192-GCM */ GcmAes192 = "GCMAES192", /** AES-256-GCM */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `ipsecIntegrity`.
    IpsecIntegrity { /** HMAC-MD5 */ Md5 = "MD5", /** HMAC-SHA1 */ Sha1 = "SHA1", /** HMAC-SHA256 */ Sha256 = "SHA256", /** GCM (AEAD) */ GcmAes128 = "GCMAES128", /** GCM (AEAD) */ GcmAes192 = "GCMAES192", /** GCM (AEAD) */ GcmAes256 = "GCMAES256" }
);
arm_enum!(
    /// `pfsGroup` of Child SAs.
    PfsGroup { /** no PFS */ None = "None", /** MODP 768 */ Pfs1 = "PFS1", /** MODP 1024 */ Pfs2 = "PFS2", /** MODP 2048 */ Pfs2048 = "PFS2048", /** NIST P-256 */ Ecp256 = "ECP256", /** NIST P-384 */ Ecp384 = "ECP384", /** MODP 2048 with 256-bit subgroup */ Pfs24 = "PFS24", /** MODP 2048 */ Pfs14 = "PFS14", /** same group as the IKE SA */ PfsMm = "PFSMM" }
);

/// One custom IPsec/IKE policy (`ipsecPolicies[]`), all eight fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecPolicy {
    /// Child SA lifetime in seconds (≥ 300).
    pub sa_life_time_seconds: u32,
    /// Child SA lifetime in kilobytes (≥ 1024).
    pub sa_data_size_kilobytes: u64,
    /// IKE encryption.
    pub ike_encryption: IkeEncryption,
    /// IKE integrity.
    pub ike_integrity: IkeIntegrity,
    /// IKE DH group.
    pub dh_group: DhGroup,
    /// ESP encryption.
    pub ipsec_encryption: IpsecEncryption,
    /// ESP integrity.
    pub ipsec_integrity: IpsecIntegrity,
    /// Child SA PFS group.
    pub pfs_group: PfsGroup,
}

fn dh_name(g: DhGroup) -> Option<&'static str> {
    Some(match g {
        DhGroup::None => return None,
        DhGroup::DhGroup1 => "modp768",
        DhGroup::DhGroup2 => "modp1024",
        DhGroup::DhGroup14 | DhGroup::DhGroup2048 => "modp2048",
        DhGroup::Ecp256 => "ecp256",
        DhGroup::Ecp384 => "ecp384",
        DhGroup::DhGroup24 => "modp2048s256",
    })
}

impl IpsecPolicy {
    /// The IKE proposal in strongSwan syntax, e.g. `aes256-sha384-ecp384`.
    /// For GCM the PRF is HMAC-SHA256 (Azure does not say which it uses).
    pub fn ike_proposal(&self) -> String {
        let enc = match self.ike_encryption {
            IkeEncryption::Des => "des",
            IkeEncryption::Des3 => "3des",
            IkeEncryption::Aes128 => "aes128",
            IkeEncryption::Aes192 => "aes192",
            IkeEncryption::Aes256 => "aes256",
            IkeEncryption::GcmAes128 => "aes128gcm16",
            IkeEncryption::GcmAes256 => "aes256gcm16",
        };
        let integ = match self.ike_integrity {
            IkeIntegrity::Md5 => "md5",
            IkeIntegrity::Sha1 => "sha1",
            IkeIntegrity::Sha256 => "sha256",
            IkeIntegrity::Sha384 => "sha384",
            IkeIntegrity::GcmAes128 | IkeIntegrity::GcmAes256 => "prfsha256",
        };
        let mut parts = vec![enc, integ];
        parts.extend(dh_name(self.dh_group));
        parts.join("-")
    }

    /// The ESP proposal in strongSwan syntax, e.g. `aes256gcm16-ecp384`.
    pub fn esp_proposal(&self) -> String {
        let enc = match self.ipsec_encryption {
            IpsecEncryption::None => "null",
            IpsecEncryption::Des => "des",
            IpsecEncryption::Des3 => "3des",
            IpsecEncryption::Aes128 => "aes128",
            IpsecEncryption::Aes192 => "aes192",
            IpsecEncryption::Aes256 => "aes256",
            IpsecEncryption::GcmAes128 => "aes128gcm16",
            IpsecEncryption::GcmAes192 => "aes192gcm16",
            IpsecEncryption::GcmAes256 => "aes256gcm16",
        };
        let integ = match self.ipsec_integrity {
            IpsecIntegrity::Md5 => Some("md5"),
            IpsecIntegrity::Sha1 => Some("sha1"),
            IpsecIntegrity::Sha256 => Some("sha256"),
            IpsecIntegrity::GcmAes128 | IpsecIntegrity::GcmAes192 | IpsecIntegrity::GcmAes256 => {
                None
            }
        };
        let pfs = match self.pfs_group {
            PfsGroup::None => None,
            PfsGroup::Pfs1 => Some("modp768"),
            PfsGroup::Pfs2 => Some("modp1024"),
            PfsGroup::Pfs2048 | PfsGroup::Pfs14 => Some("modp2048"),
            PfsGroup::Ecp256 => Some("ecp256"),
            PfsGroup::Ecp384 => Some("ecp384"),
            PfsGroup::Pfs24 => Some("modp2048s256"),
            PfsGroup::PfsMm => dh_name(self.dh_group),
        };
        let mut parts = vec![enc];
        parts.extend(integ);
        parts.extend(pfs);
        parts.join("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> IpsecPolicy {
        IpsecPolicy {
            sa_life_time_seconds: 27000,
            sa_data_size_kilobytes: 102_400_000,
            ike_encryption: IkeEncryption::Aes256,
            ike_integrity: IkeIntegrity::Sha384,
            dh_group: DhGroup::Ecp384,
            ipsec_encryption: IpsecEncryption::GcmAes256,
            ipsec_integrity: IpsecIntegrity::GcmAes256,
            pfs_group: PfsGroup::Ecp384,
        }
    }

    #[test]
    fn ash_custom_policy_maps_to_ash_default_proposals() {
        let p = policy();
        let ash = crate::kind("azure-stack-hub").unwrap();
        assert_eq!(p.ike_proposal(), ash.default_policy.ike_proposals[0]);
        assert_eq!(
            p.esp_proposal(),
            ash.default_policy.esp_initiator_proposals[0]
        );
    }

    #[test]
    fn pfsmm_uses_ike_group() {
        let p = IpsecPolicy {
            pfs_group: PfsGroup::PfsMm,
            ipsec_encryption: IpsecEncryption::Aes128,
            ipsec_integrity: IpsecIntegrity::Sha256,
            ..policy()
        };
        assert_eq!(p.esp_proposal(), "aes128-sha256-ecp384");
    }

    #[test]
    fn enum_parse_case_insensitive() {
        assert_eq!(DhGroup::parse("dhgroup24"), Some(DhGroup::DhGroup24));
        assert_eq!(PfsGroup::parse("PFSMM"), Some(PfsGroup::PfsMm));
        assert_eq!(IkeEncryption::parse("AES512"), None);
    }
}
