//! The GitLab source connector.
//!
//! Built for `wasm32-wasip2` this crate is `gitlab.wasm`, a component exporting the `dataflow:connector`
//! world of `wit/`. Built natively, or for wasm32 without the `component` feature (the benchmarks'
//! normalizer component links it that way), it is a plain library with the same logic.
//!
//! How a `read-page` call flows through the modules:
//!
//! ```text
//!  read-request ──► catalogue (which object, which endpoint, which fields)
//!               ──► filters   (validate each filter, turn it into GitLab query parameters)
//!               ──► request   (the URL of this page: first page from the plan, later pages from the token)
//!               ──► [guest: GET through wasi:http; the next page's GET sent before this one is
//!                    normalized, see `read_ahead`]
//!               ──► response  (status → typed error; Link header → next token; body → records)
//!               ──► normalize (GitLab JSON → typed, projected NDJSON, one buffer per page)
//! ```
//!
//! `list-scopes` (the projects of a group, a path's id) goes through [`scopes`] the same way, and
//! `check-connection` (`GET /user`) through [`identity`].
//!
//! Objects read per parent (the notes of each issue) go through [`fanout`], which reads several
//! parents' children per call.
//!
//! Nothing a page holds depends on state kept between calls: everything it needs is in the request and
//! its token. The one thing a sandbox keeps is a head start, the next page's request in flight, used
//! only when the next call asks for exactly that URL.

pub mod catalogue;
pub mod error;
pub mod fanout;
pub mod filters;
pub mod identity;
pub mod normalize;
pub mod pagination;
pub mod request;
pub mod response;
pub mod scopes;
pub mod types;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod guest;
#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod http;
#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod read_ahead;

pub use error::ConnectorError;
