//! The compiled-plugin cache: a second start deserializes what the first compiled; a cached file that
//! was tampered with, or is not private, is refused and rebuilt; an unusable cache folder is ignored.
//! The real `host`, the real `gitlab.wasm`; `HOST_LOG=host=debug` says what the cache did.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::{HostRun, artifacts, host_with_env, temp_dir};

const COMPILED: &str = "compiled the plugin";
const LOADED: &str = "loaded the compiled plugin";
const IGNORED: &str = "ignored the cached compiled plugin";

/// `host objects --json` with the cache in `cache`, logging what the cache does.
fn objects(cache: &Path) -> HostRun {
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let run = host_with_env(
        &["objects", "--plugin", &plugin, "--json", "--cache-dir", cache.to_str().unwrap()],
        None,
        &[("HOST_LOG", "warn,host=debug")],
    );
    assert!(run.success, "the cache never stops the host: {}", run.output());
    run
}

/// The cache's files (its one compiled plugin).
fn cached_files(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_second_start_loads_the_compiled_plugin_from_the_cache() {
    let dir = temp_dir();
    let cache = dir.path().join("cache");
    let first = objects(&cache);
    assert!(first.stderr.contains(COMPILED) && first.stderr.contains("saved it to the cache"), "{}", first.stderr);
    assert!(!first.stderr.contains(LOADED), "{}", first.stderr);
    let files = cached_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "cwasm"), "{files:?}");
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&files[0]), 0o600);

    let second = objects(&cache);
    assert!(second.stderr.contains(LOADED), "{}", second.stderr);
    assert!(!second.stderr.contains(COMPILED), "{}", second.stderr);
    assert_eq!(second.stdout, first.stdout, "the cached plugin answers as the compiled one");
    assert!(second.stdout.contains("\"project_merge_request\""));
}

#[test]
fn a_tampered_or_exposed_cache_file_is_refused_and_rebuilt() {
    let dir = temp_dir();
    let cache = dir.path().join("cache");
    let reference = objects(&cache).stdout;
    let file = cached_files(&cache).remove(0);
    let good = std::fs::read(&file).unwrap();

    // One flipped bit in the compiled code, another's garbage, a truncation: each refused, each rebuilt.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let cases: [(&[u8], &str); 3] = [
        (&flipped, "its checksum does not match its content"),
        (b"\x7fELF\x02\x01\x01 pretending to be compiled code", "it does not start with the cache's header"),
        (&good[..good.len() / 3], "its payload has"),
    ];
    for (bytes, why) in cases {
        std::fs::write(&file, bytes).unwrap();
        let run = objects(&cache);
        let refusal = run.stderr.lines().find(|l| l.contains(IGNORED)).unwrap_or_else(|| panic!("{}", run.stderr));
        assert!(refusal.contains(why), "{refusal}");
        assert!(run.stderr.contains("saved it to the cache"), "rebuilt: {}", run.stderr);
        assert_eq!(run.stdout, reference);
        assert_eq!(std::fs::read(&file).unwrap(), good, "the rebuilt file is the good one again");
    }

    // A good file that others could have written is not trusted either.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = objects(&cache);
    assert!(run.stderr.contains("its mode is 666, not private (600)"), "{}", run.stderr);
    assert_eq!(mode(&file), 0o600, "rebuilt private");

    let after = objects(&cache);
    assert!(after.stderr.contains(LOADED) && !after.stderr.contains(IGNORED), "{}", after.stderr);
}

#[test]
fn a_cache_folder_open_to_others_is_not_used() {
    let dir = temp_dir();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = objects(&shared);
    assert!(run.stderr.contains("not caching compiled plugins"), "{}", run.stderr);
    assert!(run.stderr.contains("chmod 700"), "{}", run.stderr);
    assert!(run.stderr.contains(COMPILED), "{}", run.stderr);
    assert!(cached_files(&shared).is_empty(), "nothing written to a folder others can write");
}

#[test]
fn an_empty_cache_folder_turns_the_cache_off() {
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let run = host_with_env(
        &["objects", "--plugin", &plugin],
        None,
        &[("HOST_LOG", "warn,host=debug"), ("HOST_CACHE_DIR", "")],
    );
    assert!(run.success, "{}", run.output());
    assert!(run.stderr.contains("no cache folder (turned off"), "{}", run.stderr);
    assert!(run.stderr.contains(COMPILED) && !run.stderr.contains("saved it to the cache"), "{}", run.stderr);
}
