//! The compiled-component cache on disk: compile a plugin once, not at every start of the host.
//!
//! ```text
//!  plugin.wasm ──SHA-256──┐
//!  engine configuration ──┴─► key ──► DIR/<wasm sha-256>-<engine hash>.cwasm
//!      found, ours, intact ──► Component::deserialize        (milliseconds)
//!      absent or refused   ──► Component::new ──► saved        (seconds)
//! ```
//!
//! Deserializing compiled code is `unsafe` on bytes the host did not write itself, so a cached file is
//! used only if every check passes, and is otherwise ignored (and replaced), never trusted:
//! - the folder is owned by the current user and private (0700; it is created so);
//! - the file is a regular file (not followed through a symlink), owned by the current user, private
//!   (0600: it is written so, under a temporary name, then renamed into place);
//! - its header holds the cache format, the key it was written for, the payload's length and the
//!   payload's SHA-256, all of which must match before the payload is handed to wasmtime.
//!
//! The folder is `--cache-dir` / `HOST_CACHE_DIR`, else `$XDG_CACHE_HOME/gitlab-host`, else
//! `~/.cache/gitlab-host`. It keeps the [`KEPT_ENTRIES`] compiled plugins used last (a load marks a
//! file as used; a save removes the oldest beyond that). Nothing about the cache ever stops the host: a folder it cannot use or a file
//! it cannot write is logged, and the plugin is compiled as if there were no cache.

use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The start of every cache file: what it is and the version of its layout.
const MAGIC: &[u8; 16] = b"gitlab-host-cc1\n";

/// The largest cache file read (compiled connectors are a few MiB).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// How many compiled plugins the cache keeps: the ones used last.
pub const KEPT_ENTRIES: usize = 16;

/// The extension of cache files.
const EXTENSION: &str = "cwasm";

/// The folder the cache lives in when none is given: `$XDG_CACHE_HOME/gitlab-host`, else
/// `~/.cache/gitlab-host`; none when neither variable names an absolute path.
pub fn default_dir() -> Option<PathBuf> {
    let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|d| d.join("gitlab-host"))
}

/// What a compiled component is cached under: the wasm's content and the engine's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    /// SHA-256 of the wasm, in hex.
    pub wasm_sha256: String,
    /// SHA-256 of `Engine::precompile_compatibility_hash`, in hex, shortened.
    pub engine: String,
}

impl CacheKey {
    /// The key of `wasm` compiled by `engine`.
    pub fn new(engine: &Engine, wasm: &[u8]) -> CacheKey {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine = hex(&hasher.0.finalize()[..8]);
        CacheKey { wasm_sha256: hex(&Sha256::digest(wasm)), engine }
    }

    fn file_name(&self) -> String {
        format!("{}-{}.{EXTENSION}", self.wasm_sha256, self.engine)
    }
}

/// Feeds what `Hash` writes into SHA-256, whose digest (not `finish`) is the result: stable across
/// runs, unlike the standard library's hashers.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cache folder the host may use.
#[derive(Debug)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// Use `dir`, creating it (0700) if need be; refused when it is not a folder owned by the current
    /// user and private to them.
    pub fn open(dir: &Path) -> Result<ComponentCache, String> {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
        let meta = fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a folder", dir.display()));
        }
        if meta.uid() != current_uid() || meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{} must be owned by you and private to you (mode {:o}, owner {}); run `chmod 700 {}` or choose \
                 another folder with --cache-dir",
                dir.display(),
                meta.mode() & 0o777,
                meta.uid(),
                dir.display()
            ));
        }
        Ok(ComponentCache { dir: dir.to_owned() })
    }

    /// Where `key` is cached.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The component cached under `key`: `Ok(None)` when there is none, `Err(why)` when there is a
    /// file but it failed a check (and must not be used).
    pub fn load(&self, engine: &Engine, key: &CacheKey) -> Result<Option<Component>, String> {
        let path = self.path(key);
        let mut file =
            match OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot open it: {e}")),
            };
        let bytes = read_own_private_file(&mut file)?;
        let payload = verify(&bytes, &key.file_name())?;
        // SAFETY: `payload` is exactly what this host serialized with `Component::serialize` and wrote
        // itself: the file is ours and private, and its header's key, length and SHA-256 match. The
        // bytes are in memory, so nothing can change them between the checks and the call. wasmtime
        // still checks its own version and the engine's configuration, and fails cleanly on a mismatch.
        let component =
            unsafe { Component::deserialize(engine, payload) }.map_err(|e| format!("wasmtime refused it: {e}"))?;
        // Mark it as used, for `prune`; a failure here costs nothing but an earlier eviction.
        let _ = file.set_modified(std::time::SystemTime::now());
        Ok(Some(component))
    }

    /// Cache `component` under `key`: written to a private temporary file, then renamed into place.
    pub fn save(&self, key: &CacheKey, component: &Component) -> Result<PathBuf, String> {
        let payload = component.serialize().map_err(|e| format!("cannot serialize the compiled plugin: {e}"))?;
        let path = self.path(key);
        let mut file = tempfile::Builder::new()
            .prefix(".")
            .suffix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(|e| format!("cannot create a file in {}: {e}", self.dir.display()))?;
        let written = file
            .write_all(&header(&key.file_name(), &payload))
            .and_then(|()| file.write_all(&payload))
            .and_then(|()| file.as_file().sync_all());
        written.map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
        file.persist(&path).map_err(|e| format!("cannot rename into {}: {e}", path.display()))?;
        self.prune(KEPT_ENTRIES);
        Ok(path)
    }

    /// Remove all but the `keep` cache files used last (only files named as this cache names them).
    fn prune(&self, keep: usize) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, old) in files.iter().skip(keep) {
            match fs::remove_file(old) {
                Ok(()) => tracing::debug!("removed the least recently used compiled plugin {}", old.display()),
                Err(e) => tracing::debug!("cannot remove {}: {e}", old.display()),
            }
        }
    }
}

fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Read `file` whole, if it is a regular file owned by the current user and private to them.
fn read_own_private_file(file: &mut File) -> Result<Vec<u8>, String> {
    let meta = file.metadata().map_err(|e| format!("cannot read its metadata: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.uid() != current_uid() {
        return Err(format!("it is owned by user {}, not by you", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!("its mode is {:o}, not private (600)", meta.mode() & 0o777));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("it is larger than {MAX_FILE_BYTES} bytes"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
}

/// MAGIC, the key's length (u16, little-endian) and the key, the payload's length (u64) and SHA-256.
fn header(key: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&(key.len() as u16).to_le_bytes());
    header.extend_from_slice(key.as_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&Sha256::digest(payload));
    header
}

/// The payload of a cache file, if its header is ours, for `key`, and matches the payload.
fn verify<'a>(bytes: &'a [u8], key: &str) -> Result<&'a [u8], String> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("it does not start with the cache's header")?;
    let (key_len, rest) = split(rest, 2)?;
    let (found_key, rest) = split(rest, u16::from_le_bytes([key_len[0], key_len[1]]) as usize)?;
    if found_key != key.as_bytes() {
        return Err(format!("it was written for another key ({})", String::from_utf8_lossy(found_key)));
    }
    let (length, rest) = split(rest, 8)?;
    let (checksum, payload) = split(rest, 32)?;
    let length = u64::from_le_bytes(length.try_into().map_err(|_| "bad length")?);
    if payload.len() as u64 != length {
        return Err(format!("its payload has {} bytes, its header says {length}", payload.len()));
    }
    if Sha256::digest(payload).as_slice() != checksum {
        return Err("its checksum does not match its content".into());
    }
    Ok(payload)
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), String> {
    if bytes.len() < at { Err("it is truncated".into()) } else { Ok(bytes.split_at(at)) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The smallest component there is: the preamble of a component binary and nothing else.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn setup() -> (tempfile::TempDir, ComponentCache, Engine, CacheKey) {
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::open(&dir.path().join("cache")).unwrap();
        let engine = Engine::default();
        let key = CacheKey::new(&engine, EMPTY_COMPONENT);
        (dir, cache, engine, key)
    }

    fn save(cache: &ComponentCache, engine: &Engine, key: &CacheKey) -> PathBuf {
        let component = Component::new(engine, EMPTY_COMPONENT).unwrap();
        cache.save(key, &component).unwrap()
    }

    #[test]
    fn a_saved_component_loads_back_and_its_file_and_folder_are_private() {
        let (_dir, cache, engine, key) = setup();
        assert!(cache.load(&engine, &key).unwrap().is_none(), "nothing cached yet");
        let path = save(&cache, &engine, &key);
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), format!("{}-{}.cwasm", key.wasm_sha256, key.engine));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&cache.dir).unwrap().mode() & 0o777, 0o700);
        assert!(cache.load(&engine, &key).unwrap().is_some());
        let leftovers: Vec<_> = fs::read_dir(&cache.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind: {leftovers:?}");
    }

    #[test]
    fn only_the_entries_used_last_are_kept() {
        let (_dir, cache, engine, key) = setup();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let keys: Vec<CacheKey> = (0..4).map(|i| CacheKey { engine: format!("{i:016}"), ..key.clone() }).collect();
        for key in &keys {
            let path = cache.save(key, &component).unwrap();
            File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        }
        // Loading the first marks it as used: keeping two keeps it and the newest.
        let _ = cache.load(&engine, &keys[0]);
        let newest = cache.save(&key, &component).unwrap();
        cache.prune(2);
        let mut left: Vec<PathBuf> = fs::read_dir(&cache.dir).unwrap().map(|e| e.unwrap().path()).collect();
        left.sort();
        let mut expected = vec![cache.path(&keys[0]), newest];
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    fn keys_depend_on_the_wasm_and_the_engine_configuration() {
        let engine = Engine::default();
        let key = CacheKey::new(&engine, EMPTY_COMPONENT);
        assert_eq!(key, CacheKey::new(&Engine::default(), EMPTY_COMPONENT), "stable for one configuration");
        assert_ne!(key.wasm_sha256, CacheKey::new(&engine, b"\0asm\x0d\0\x01\0\0").wasm_sha256);
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        assert_ne!(key.engine, CacheKey::new(&other, EMPTY_COMPONENT).engine);
        assert_eq!(key.wasm_sha256.len(), 64);
    }

    fn refused(cache: &ComponentCache, engine: &Engine, key: &CacheKey) -> String {
        match cache.load(engine, key) {
            Err(why) => why,
            Ok(found) => panic!("expected a refusal, got {:?}", found.is_some()),
        }
    }

    #[test]
    fn a_flipped_bit_a_truncation_or_garbage_is_refused() {
        let (_dir, cache, engine, key) = setup();
        let path = save(&cache, &engine, &key);
        let good = fs::read(&path).unwrap();
        let write = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        };
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        write(&flipped);
        assert_eq!(refused(&cache, &engine, &key), "its checksum does not match its content");
        write(&good[..good.len() - 1]);
        assert!(refused(&cache, &engine, &key).starts_with("its payload has"));
        write(&good[..20]);
        assert_eq!(refused(&cache, &engine, &key), "it is truncated");
        write(b"\x7fELF not ours at all");
        assert_eq!(refused(&cache, &engine, &key), "it does not start with the cache's header");
        write(&good);
        assert!(cache.load(&engine, &key).unwrap().is_some(), "the good bytes still load");
    }

    #[test]
    fn a_file_readable_by_others_renamed_or_behind_a_symlink_is_refused() {
        let (dir, cache, engine, key) = setup();
        let path = save(&cache, &engine, &key);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(refused(&cache, &engine, &key), "its mode is 644, not private (600)");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        // The same bytes under another key's name.
        let other = CacheKey { engine: "0000000000000000".into(), ..key.clone() };
        fs::copy(&path, cache.path(&other)).unwrap();
        assert!(refused(&cache, &engine, &other).starts_with("it was written for another key"));

        // A symlink to a good file elsewhere.
        let elsewhere = dir.path().join("elsewhere.cwasm");
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(refused(&cache, &engine, &key).starts_with("cannot open it"));
    }

    #[test]
    fn a_file_owned_by_someone_else_is_refused() {
        let (_dir, cache, engine, key) = setup();
        let path = save(&cache, &engine, &key);
        if current_uid() != 0 {
            return; // Only root can give a file away; the owner check is the same code either way.
        }
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert_eq!(refused(&cache, &engine, &key), "it is owned by user 65534, not by you");
    }

    #[test]
    fn a_folder_open_to_others_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let why = ComponentCache::open(&shared).unwrap_err();
        assert!(why.contains("must be owned by you and private to you (mode 777"), "{why}");
        assert!(why.contains("chmod 700"), "{why}");
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(ComponentCache::open(&file).unwrap_err().contains("is not a folder"));
    }
}
