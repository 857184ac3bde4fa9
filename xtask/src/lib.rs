//! Running cargo from a program cargo started (a recipe, an integration test, a bench) as if it were
//! typed in a shell.
//!
//! Cargo gives the programs it runs their own package's variables (`CARGO_MANIFEST_DIR`,
//! `CARGO_PKG_NAME`, `OUT_DIR`...), and a cargo started from them hands those on to the build
//! scripts it runs. Some build scripts ask to run again when such a variable changes (ring's, through
//! `rerun-if-env-changed`), so a `cargo build` from a test rebuilt ring and everything above it
//! (rustls, reqwest, object_store, the host: 2 to 3 minutes), and the next `cargo test` from the
//! shell rebuilt them again. [`cargo`] leaves those variables out; what configures cargo itself
//! (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_PROFILE_*`...) is kept.

use std::process::Command;

/// A command running the cargo that started this program (`$CARGO`, else `cargo` on the `PATH`),
/// without the variables cargo set for this program's package.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_a_package) {
            command.env_remove(name);
        }
    }
    command
}

/// Whether cargo sets the variable `name` for the crate it builds or runs (as opposed to reading it).
fn set_for_a_package(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    NAMES.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packages_variables_are_left_out_and_cargos_own_kept() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "OUT_DIR", "CARGO_BIN_EXE_host"]
        {
            assert!(set_for_a_package(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_PROFILE_RELEASE_LTO", "CARGO_BUILD_JOBS", "PATH"]
        {
            assert!(!set_for_a_package(name), "{name}");
        }
    }

    #[test]
    fn a_command_from_a_test_drops_what_cargo_set_for_it() {
        // `cargo test` runs this test with its package's variables; the command must not pass them on.
        assert_eq!(std::env::var("CARGO_PKG_NAME").as_deref(), Ok("xtask"), "run by cargo test");
        let command = cargo();
        let removed: Vec<_> = command.get_envs().filter(|(_, value)| value.is_none()).map(|(name, _)| name).collect();
        for name in ["CARGO_PKG_NAME", "CARGO_MANIFEST_DIR"] {
            assert!(removed.contains(&std::ffi::OsStr::new(name)), "{name} is passed on: {removed:?}");
        }
        assert!(!removed.contains(&std::ffi::OsStr::new("PATH")));
    }
}
