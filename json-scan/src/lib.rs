//! A validating JSON scanner that reads records as their fields' raw texts.
//!
//! Connectors and destinations mostly move JSON values along as they came: a GitLab record's
//! `author` object or `description` string is copied into NDJSON as it is, a destination stores it
//! as it is. What they need from a parser is where each field's value starts and ends, and the
//! certainty that it is well-formed JSON (RFC 8259): nothing is built, no value is unescaped (but
//! on request: [`unescape`] reads a string value's escapes, for a destination storing it as text).
//!
//! How a page flows through it:
//!
//! ```text
//!  text (bytes or &str; strings checked to be UTF-8 as they are read, see `utf8`)
//!    ──► Scanner::open_array / next_element   a page: [ record, record, ... ]
//!    ──► Scanner::object                      one record: (name, raw value text) per field, in order,
//!                                             names borrowed unless written with escapes
//!        Scanner::object_in_order             the same, each name matched with the `"name":` the
//!                                             record before had there (`KeyOrder`), read if not
//!    ──► Scanner::value                       any value: grammar checked, its text returned
//!    ──► Scanner::finish                      nothing but whitespace after
//!  a string value's text ──► unescape         its value, as a column of text stores it
//! ```
//!
//! Most of a GitLab page is string contents, so `runs` finds a string's end (and a number's last
//! digit) 16 bytes at a time (SSE2 natively, simd128 in wasm). serde_json, which this replaces on the hot path, steps a machine
//! word at a time: 8 bytes natively, but 4 in wasm32, which made the plugin's normalizing 1.6x slower
//! in wasm than natively.
//!
//! It accepts what serde_json accepts (`tests/against_serde.rs` checks both on generated and broken
//! texts), with one limit of its own: values nest at most 128 levels deep (serde_json's recursion
//! limit), and the skipped values' `\u` escapes are checked for four hex digits, not for paired
//! surrogates, as serde_json skips them.

mod error;
mod key_order;
mod runs;
mod scanner;
mod short_copy;
mod short_eq;
mod unescape;
mod utf8;

pub use error::Error;
pub use key_order::KeyOrder;
pub use scanner::{Field, Scanner, validate};
pub use short_copy::append;
pub use short_eq::short_eq;
pub use unescape::unescape;
