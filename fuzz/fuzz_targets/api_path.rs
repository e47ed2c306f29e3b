//! Request paths of the sites' Resource Manager endpoints, fed hostile input: parsing never
//! panics, and a resource the parser recognizes has an id that parses back to the same resource.
#![no_main]

use armapi::paths::{parse, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Target::Resource(r) = parse(path) {
        let _ = (r.full_type(), r.template_name(), r.is_item());
        if r.is_item() && r.action.is_empty() && r.names.iter().all(|n| !n.contains('/')) {
            assert_eq!(parse(&r.id()), Target::Resource(r.clone()));
        }
    }
});
