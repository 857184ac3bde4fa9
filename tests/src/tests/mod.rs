//! The crate's own tests: the generated world ([`world`]) and the HTTP behaviour of a started
//! simulator, through a real HTTP client ([`http`] for projects, groups, issues and merge
//! requests; [`objects`] for every other object).

mod http;
mod objects;
mod world;
