//! The accept loop shared by the binary's HTTP listeners (the API, the
//! replication metrics): `cutover-net`'s, re-exported here.

pub use cutover_net::{Limits, accept_loop, http1};
