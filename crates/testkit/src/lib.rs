//! The test kit: what several test suites need, and nothing of the project's own crates.
//!
//! * [`netns`]: network namespaces deleted (with every process in them) on drop, veth pairs,
//!   unique names;
//! * [`process`]: background processes ended on drop, scratch directories kept when a test
//!   fails, and the one [`wait_for`](process::wait_for) every suite polls with;
//! * [`swan`]: a strongSwan charon in a namespace, its connection config and its SAs (VICI);
//! * [`bgp`]: a gateway's BGP routes and peers, routes in a namespace, router processes;
//! * [`lab`]: a hybridnet lab in one line (`Lab::up("examples/two-sites")`), torn down on drop.
//!
//! Everything a test creates is owned by a guard that removes it on drop, also when the test
//! panics. Namespace tests need root; they fail (never skip) when a namespace cannot be made.

pub mod az;
pub mod bgp;
pub mod lab;
pub mod netns;
pub mod process;
pub mod swan;
