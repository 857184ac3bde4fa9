//! Where each part of a flow was written, so that an error found at any stage names it.
//!
//! Keys are paths into the flow file (`objects[1].filters[0]`, `connection.credential.env`), used the
//! same way whatever built the flow. A flow file records the line of each key it holds; the command
//! line records the flag each key came from. An error about a key then reads
//! `flow.toml:12: objects[1].filters[0]: ...` or `--filter 'state >= opened': ...`.

use std::collections::HashMap;
use std::fmt::Display;

/// Where one key was written.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// A line of the flow file (1-based).
    Line(usize),
    /// A command-line flag, as written (`--filter 'state = opened'`) or an environment variable.
    Flag(String),
}

/// The places of a flow's keys.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    /// The flow file as people named it, if the flow came from one.
    file: Option<String>,
    places: HashMap<String, Place>,
}

impl Origins {
    /// The origins of a flow read from `file` (as the user named it).
    pub fn file(file: impl Into<String>) -> Origins {
        Origins { file: Some(file.into()), places: HashMap::new() }
    }

    /// The origins of a flow built from command-line flags.
    pub fn flags() -> Origins {
        Origins::default()
    }

    /// Note that `key` was written at `place` (a later note for the same key wins: a flag overriding
    /// the file).
    pub fn record(&mut self, key: impl Into<String>, place: Place) {
        self.places.insert(key.into(), place);
    }

    /// Where `key` was written: its own place or, failing that, the nearest enclosing key's.
    fn place(&self, key: &str) -> Option<&Place> {
        let mut key = key;
        loop {
            if let Some(place) = self.places.get(key) {
                return Some(place);
            }
            key = &key[..key.rfind(['.', '['])?];
        }
    }

    /// The prefix of an error about `key`: `flow.toml:12: objects[1].filters[0]`, `--filter '...'`,
    /// or nothing for a flow of flags that did not write that key.
    pub fn locate(&self, key: &str) -> Option<String> {
        match (self.place(key), &self.file) {
            (Some(Place::Flag(flag)), _) => Some(flag.clone()),
            (Some(Place::Line(line)), Some(file)) => Some(format!("{file}:{line}: {key}")),
            (_, Some(file)) => Some(format!("{file}: {key}")),
            (_, None) => None,
        }
    }

    /// `message` about `key`, located.
    pub fn message(&self, key: &str, message: impl Display) -> String {
        match self.locate(key) {
            Some(place) => format!("{place}: {message}"),
            None => message.to_string(),
        }
    }

    /// An error about `key`, located.
    pub fn error(&self, key: &str, message: impl Display) -> anyhow::Error {
        anyhow::anyhow!(self.message(key, message))
    }

    /// The flow file, when the flow came from one.
    pub fn file_name(&self) -> Option<&str> {
        self.file.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_line_and_key_or_the_flag() {
        let mut origins = Origins::file("flow.toml");
        origins.record("objects[1]", Place::Line(9));
        origins.record("objects[1].filters[0]", Place::Line(12));
        origins.record("mode", Place::Flag("--mode full".into()));
        assert_eq!(origins.message("objects[1].filters[0]", "bad"), "flow.toml:12: objects[1].filters[0]: bad");
        // A key without a line of its own takes the enclosing key's.
        assert_eq!(origins.message("objects[1].fields", "bad"), "flow.toml:9: objects[1].fields: bad");
        assert_eq!(origins.message("plugin", "missing"), "flow.toml: plugin: missing");
        assert_eq!(origins.message("mode", "bad"), "--mode full: bad");

        let flags = Origins::flags();
        assert_eq!(flags.message("objects[0].object", "unknown"), "unknown");
    }
}
