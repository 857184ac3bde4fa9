//! The crate's own tests: the generated world ([`world`]) and the HTTP behaviour of a started
//! simulator, through a real HTTP client ([`http`]).

mod http;
mod world;
