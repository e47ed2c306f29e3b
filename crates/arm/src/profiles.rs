//! Azure Stack Hub API profiles: a template with `"apiProfile": "2018-03-01-hybrid"` may omit a
//! resource's `apiVersion`, and ARM takes the version the profile assigns to the resource's
//! provider (or to the specific type where the profile differs per type). Data from the published
//! profile definitions (azure-rest-api-specs `profiles/definitions`, Azure Stack Hub docs).

/// (profile, provider namespace, resource type below the namespace or "" for the provider
/// default, API version). Lookups ignore case.
const PROFILE_VERSIONS: &[(&str, &str, &str, &str)] = &[
    ("2018-03-01-hybrid", "Microsoft.Compute", "", "2017-03-30"),
    ("2018-03-01-hybrid", "Microsoft.Network", "", "2017-10-01"),
    (
        "2018-03-01-hybrid",
        "Microsoft.Network",
        "dnsZones",
        "2016-04-01",
    ),
    ("2018-03-01-hybrid", "Microsoft.Storage", "", "2016-01-01"),
    ("2018-03-01-hybrid", "Microsoft.KeyVault", "", "2016-10-01"),
    ("2018-03-01-hybrid", "Microsoft.Resources", "", "2018-02-01"),
    (
        "2018-03-01-hybrid",
        "Microsoft.Authorization",
        "",
        "2015-07-01",
    ),
    (
        "2018-03-01-hybrid",
        "Microsoft.Authorization",
        "locks",
        "2016-09-01",
    ),
    ("2019-03-01-hybrid", "Microsoft.Compute", "", "2017-12-01"),
    ("2019-03-01-hybrid", "Microsoft.Network", "", "2017-10-01"),
    (
        "2019-03-01-hybrid",
        "Microsoft.Network",
        "dnsZones",
        "2016-04-01",
    ),
    ("2019-03-01-hybrid", "Microsoft.Storage", "", "2017-10-01"),
    ("2019-03-01-hybrid", "Microsoft.KeyVault", "", "2016-10-01"),
    ("2019-03-01-hybrid", "Microsoft.Resources", "", "2018-05-01"),
    ("2019-03-01-hybrid", "Microsoft.Web", "", "2018-02-01"),
    ("2019-03-01-hybrid", "Microsoft.Insights", "", "2018-01-01"),
    (
        "2019-03-01-hybrid",
        "Microsoft.Authorization",
        "",
        "2016-09-01",
    ),
    ("2020-09-01-hybrid", "Microsoft.Compute", "", "2020-06-01"),
    ("2020-09-01-hybrid", "Microsoft.Network", "", "2018-11-01"),
    ("2020-09-01-hybrid", "Microsoft.Storage", "", "2019-06-01"),
    ("2020-09-01-hybrid", "Microsoft.KeyVault", "", "2019-09-01"),
    ("2020-09-01-hybrid", "Microsoft.Resources", "", "2016-06-01"),
    ("2020-09-01-hybrid", "Microsoft.Web", "", "2018-02-01"),
    ("2020-09-01-hybrid", "Microsoft.Insights", "", "2018-01-01"),
    (
        "2020-09-01-hybrid",
        "Microsoft.Authorization",
        "",
        "2016-09-01",
    ),
];

/// The API profiles this engine knows.
pub fn known_api_profiles() -> Vec<&'static str> {
    let mut v: Vec<&str> = PROFILE_VERSIONS.iter().map(|p| p.0).collect();
    v.dedup();
    v
}

/// The API version `profile` assigns to `resource_type` (e.g. `Microsoft.Network/virtualNetworks`),
/// or `None` if the profile or the provider is unknown. Child types use their top-level type's
/// entry, falling back to the provider default.
pub fn api_profile_version(profile: &str, resource_type: &str) -> Option<&'static str> {
    let mut segs = resource_type.trim_matches('/').split('/');
    let namespace = segs.next()?;
    let top = segs.next().unwrap_or("");
    let rows = || {
        PROFILE_VERSIONS.iter().filter(move |p| {
            p.0.eq_ignore_ascii_case(profile) && p.1.eq_ignore_ascii_case(namespace)
        })
    };
    rows()
        .find(|p| !p.2.is_empty() && p.2.eq_ignore_ascii_case(top))
        .or_else(|| rows().find(|p| p.2.is_empty()))
        .map(|p| p.3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_profile_versions() {
        assert_eq!(
            api_profile_version("2018-03-01-hybrid", "Microsoft.Network/virtualNetworks"),
            Some("2017-10-01")
        );
        assert_eq!(
            api_profile_version(
                "2018-03-01-HYBRID",
                "microsoft.network/virtualNetworks/subnets"
            ),
            Some("2017-10-01")
        );
        assert_eq!(
            api_profile_version("2018-03-01-hybrid", "Microsoft.Network/dnszones"),
            Some("2016-04-01")
        );
        assert_eq!(
            api_profile_version("2018-03-01-hybrid", "Microsoft.Compute/virtualMachines"),
            Some("2017-03-30")
        );
        assert_eq!(
            api_profile_version("2020-09-01-hybrid", "Microsoft.Network/connections"),
            Some("2018-11-01")
        );
        assert_eq!(
            api_profile_version("2018-03-01-hybrid", "Contoso.Foo/bars"),
            None
        );
        assert_eq!(
            api_profile_version("1999-01-01-hybrid", "Microsoft.Network/virtualNetworks"),
            None
        );
        assert_eq!(
            known_api_profiles(),
            vec![
                "2018-03-01-hybrid",
                "2019-03-01-hybrid",
                "2020-09-01-hybrid"
            ]
        );
    }
}
