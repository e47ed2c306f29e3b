//! Request paths in Resource Manager's shape, parsed case-insensitively (ARM treats names and
//! segment keywords without regard to case).

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/metadata/endpoints`.
    Metadata,
    /// `/adfs/.well-known/openid-configuration` (or `/{tenant}/…`).
    OpenIdConfiguration,
    /// `/adfs/oauth2/token` (or `/{tenant}/oauth2/token`).
    Token,
    /// `/tenants`.
    Tenants,
    /// `/subscriptions`.
    Subscriptions,
    /// `/subscriptions/{id}`.
    Subscription(String),
    /// `/subscriptions/{id}/providers[/{namespace}[/register]]`.
    Providers(String, Option<String>),
    /// `/subscriptions/{id}/locations`.
    Locations(String),
    /// `/subscriptions/{id}/providers/{ns}/locations/{loc}/operations|operationResults/{op}`.
    Operation {
        /// Subscription.
        sub: String,
        /// The op id.
        id: String,
        /// Whether it is the `operationResults` (Location header) form.
        result: bool,
    },
    /// `/subscriptions/{id}/providers/Microsoft.Compute/locations/{loc}/publishers/…`: the
    /// VM image catalogue (`az vm create --image` resolves its image there).
    VmImages {
        /// Subscription.
        sub: String,
        /// The segments after `publishers` (publisher, `artifacttypes`, `vmimage`, `offers`, …).
        rest: Vec<String>,
    },
    /// `/subscriptions/{id}/resourcegroups`.
    Groups(String),
    /// `/subscriptions/{id}/resourcegroups/{rg}`.
    Group(String, String),
    /// `/subscriptions/{id}/resourcegroups/{rg}/resources`.
    GroupResources(String, String),
    /// `…/providers/Microsoft.Resources/deployments[/{name}[/{action}]]`.
    Deployment {
        /// Subscription.
        sub: String,
        /// Resource group.
        group: String,
        /// Deployment name (`None`: the list).
        name: Option<String>,
        /// `validate`, `whatIf`, `operations`, `cancel`, `exportTemplate`.
        action: Option<String>,
    },
    /// `/subscriptions/{id}/resourcegroups/{rg}/providers/{ns}/{type}[/{name}[/{child}/{name}]][/{action…}]`.
    Resource(ResourcePath),
    /// `/subscriptions/{id}/providers/{ns}/{type}`: a type listed across the subscription.
    SubscriptionType {
        /// Subscription.
        sub: String,
        /// Full type (`Microsoft.Network/virtualNetworks`).
        full_type: String,
    },
    /// Anything else.
    Unknown,
}

/// A resource (or a collection of one type) inside a resource group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// Subscription.
    pub sub: String,
    /// Resource group.
    pub group: String,
    /// Provider namespace (`Microsoft.Network`).
    pub namespace: String,
    /// Type segments (`virtualNetworks`, or `virtualNetworks`, `subnets`).
    pub types: Vec<String>,
    /// Name segments, one per type segment or one fewer for a collection.
    pub names: Vec<String>,
    /// Segments after the resource (`sharedkey`, `sharedkey/reset`, `reset`).
    pub action: Vec<String>,
}

/// Child types the lab knows; anything after a resource name that is not one is an action.
const CHILD_TYPES: &[&str] = &["subnets", "securityRules"];

impl ResourcePath {
    /// The full type: `Microsoft.Network/virtualNetworks/subnets`.
    pub fn full_type(&self) -> String {
        let mut t = self.namespace.clone();
        for s in &self.types {
            t.push('/');
            t.push_str(s);
        }
        t
    }

    /// Whether the path names one resource (not a collection).
    pub fn is_item(&self) -> bool {
        self.names.len() == self.types.len()
    }

    /// The resource's name as a template names it (`vnet/subnet` for a child).
    pub fn template_name(&self) -> String {
        self.names.join("/")
    }

    /// The resource id (or the collection's path).
    pub fn id(&self) -> String {
        let mut id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{}",
            self.sub, self.group, self.namespace
        );
        for (i, t) in self.types.iter().enumerate() {
            id.push('/');
            id.push_str(t);
            if let Some(n) = self.names.get(i) {
                id.push('/');
                id.push_str(n);
            }
        }
        id
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Parses a request path.
pub fn parse(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [m, e] if eq(m, "metadata") && eq(e, "endpoints") => Target::Metadata,
        [_, w, o] if eq(w, ".well-known") && eq(o, "openid-configuration") => {
            Target::OpenIdConfiguration
        }
        [_, o, t] if eq(o, "oauth2") && eq(t, "token") => Target::Token,
        [t] if eq(t, "tenants") => Target::Tenants,
        [s] if eq(s, "subscriptions") => Target::Subscriptions,
        [s, id] if eq(s, "subscriptions") => Target::Subscription(id.to_string()),
        [s, id, l] if eq(s, "subscriptions") && eq(l, "locations") => {
            Target::Locations(id.to_string())
        }
        [s, id, p] if eq(s, "subscriptions") && eq(p, "providers") => {
            Target::Providers(id.to_string(), None)
        }
        [s, id, p, ns] if eq(s, "subscriptions") && eq(p, "providers") => {
            Target::Providers(id.to_string(), Some(ns.to_string()))
        }
        [s, id, p, ns, r] if eq(s, "subscriptions") && eq(p, "providers") && eq(r, "register") => {
            Target::Providers(id.to_string(), Some(ns.to_string()))
        }
        [s, id, p, _, l, _, o, op]
            if eq(s, "subscriptions")
                && eq(p, "providers")
                && eq(l, "locations")
                && (eq(o, "operations")
                    || eq(o, "operationResults")
                    || eq(o, "operationStatuses")) =>
        {
            Target::Operation {
                sub: id.to_string(),
                id: op.to_string(),
                result: eq(o, "operationResults"),
            }
        }
        [s, id, p, ns, l, _, pubs, rest @ ..]
            if eq(s, "subscriptions")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(l, "locations")
                && eq(pubs, "publishers") =>
        {
            Target::VmImages {
                sub: id.to_string(),
                rest: rest.iter().map(|s| s.to_string()).collect(),
            }
        }
        [s, id, p, ns, t] if eq(s, "subscriptions") && eq(p, "providers") && !eq(t, "register") => {
            Target::SubscriptionType {
                sub: id.to_string(),
                full_type: format!("{ns}/{t}"),
            }
        }
        [s, id, g] if eq(s, "subscriptions") && eq(g, "resourcegroups") => {
            Target::Groups(id.to_string())
        }
        [s, id, g, rg] if eq(s, "subscriptions") && eq(g, "resourcegroups") => {
            Target::Group(id.to_string(), rg.to_string())
        }
        [s, id, g, rg, r]
            if eq(s, "subscriptions") && eq(g, "resourcegroups") && eq(r, "resources") =>
        {
            Target::GroupResources(id.to_string(), rg.to_string())
        }
        [s, id, g, rg, p, ns, d, rest @ ..]
            if eq(s, "subscriptions")
                && eq(g, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Resources")
                && eq(d, "deployments") =>
        {
            Target::Deployment {
                sub: id.to_string(),
                group: rg.to_string(),
                name: rest.first().map(|s| s.to_string()),
                action: (rest.len() > 1).then(|| rest[1..].join("/")),
            }
        }
        [s, id, g, rg, p, ns, t, rest @ ..]
            if eq(s, "subscriptions") && eq(g, "resourcegroups") && eq(p, "providers") =>
        {
            let mut types = vec![t.to_string()];
            let mut names = Vec::new();
            let mut action = Vec::new();
            let mut i = 0;
            while i < rest.len() {
                if names.len() < types.len() {
                    names.push(rest[i].to_string());
                } else if CHILD_TYPES.iter().any(|c| eq(c, rest[i])) {
                    types.push(rest[i].to_string());
                } else {
                    action = rest[i..].iter().map(|s| s.to_ascii_lowercase()).collect();
                    break;
                }
                i += 1;
            }
            Target::Resource(ResourcePath {
                sub: id.to_string(),
                group: rg.to_string(),
                namespace: ns.to_string(),
                types,
                names,
                action,
            })
        }
        _ => Target::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths_split_into_types_names_and_actions() {
        let Target::Resource(r) = parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/GatewaySubnet",
        ) else {
            panic!()
        };
        assert_eq!(r.full_type(), "Microsoft.Network/virtualNetworks/subnets");
        assert_eq!(r.template_name(), "v/GatewaySubnet");
        assert!(r.is_item() && r.action.is_empty());
        let Target::Resource(r) = parse(
            "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Network/connections/c/sharedkey/reset",
        ) else {
            panic!()
        };
        assert_eq!(r.action, vec!["sharedkey", "reset"]);
        let Target::Resource(r) =
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks")
        else {
            panic!()
        };
        assert!(!r.is_item());
        assert_eq!(
            parse("/subscriptions/s/resourcegroups/rg/providers/Microsoft.Resources/deployments/d/validate"),
            Target::Deployment {
                sub: "s".into(),
                group: "rg".into(),
                name: Some("d".into()),
                action: Some("validate".into())
            }
        );
        assert_eq!(
            parse("/adfs/.well-known/openid-configuration"),
            Target::OpenIdConfiguration
        );
        assert_eq!(parse("/nowhere"), Target::Unknown);
    }

    proptest::proptest! {
        /// Any path parses without panicking, and a resource's id parses back to itself.
        #[test]
        fn any_path_parses_and_resource_ids_round_trip(
            segs in proptest::collection::vec("[A-Za-z0-9._%-]{0,12}", 0..12),
        ) {
            let path = format!("/{}", segs.join("/"));
            if let Target::Resource(r) = parse(&path) {
                if r.is_item() && r.action.is_empty() {
                    proptest::prop_assert_eq!(parse(&r.id()), Target::Resource(r.clone()));
                }
            }
        }

        /// Resource paths as clients build them parse into their parts, whatever the case.
        #[test]
        fn resource_paths_parse_into_their_parts(
            sub in "[a-f0-9-]{1,36}", group in "[A-Za-z0-9._()-]{1,20}",
            name in "[A-Za-z0-9._-]{1,20}", child in proptest::option::of("[A-Za-z0-9._-]{1,20}"),
            upper in proptest::bool::ANY,
        ) {
            let mut path = format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/{name}");
            if let Some(c) = &child {
                path.push_str(&format!("/subnets/{c}"));
            }
            if upper {
                path = path.replace("resourceGroups", "RESOURCEGROUPS").replace("subnets", "Subnets");
            }
            let Target::Resource(r) = parse(&path) else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("not a resource: {path}")));
            };
            proptest::prop_assert_eq!(&r.group, &group);
            proptest::prop_assert!(r.is_item());
            proptest::prop_assert_eq!(r.names.last().unwrap(), child.as_ref().unwrap_or(&name));
        }
    }
}
