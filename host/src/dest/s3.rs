//! The S3 destination: file parts published to an S3 bucket (AWS or any S3-compatible store) through
//! the `object_store` crate.
//!
//! `s3://BUCKET/PREFIX[?format=jsonl|csv|parquet][&spool=DIR]`: parts go to
//! `PREFIX/OBJECT/RUN-SCOPE.EXT` and manifests to `PREFIX/_manifests/RUN.json`, exactly as in a local
//! folder (see [`super::files`]); the format defaults to JSONL. Parts are spooled in the local folder
//! `spool` (default `$XDG_STATE_HOME/gitlab-host/s3/BUCKET/PREFIX`, else under `~/.local/state`),
//! which also holds the default checkpoint store, so that a killed run resumes from it; a part is
//! uploaded when its partition's read completes, in one request up to [`MULTIPART_THRESHOLD`], in a
//! multipart upload of [`MULTIPART_CHUNK`] parts beyond.
//!
//! The endpoint, region and keys come from the usual AWS environment variables (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`
//! for a plain-HTTP test server...). The keys are never shown: every error is scrubbed of them. With no
//! credentials in the environment, object_store asks the EC2 instance metadata service for them (an
//! instance profile); where that fails, the first request's error says which variables to set.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::files::{FileDestination, Target};
use super::format::FileFormat;
use crate::io_thread::IoThread;

/// Parts up to this size are uploaded in one request.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// The size of each part of a multipart upload (S3 wants at least 5 MiB).
pub const MULTIPART_CHUNK: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;

/// A parsed `s3://` destination.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Url {
    pub bucket: String,
    /// Without leading or trailing slashes; empty for the bucket's root.
    pub prefix: String,
    pub format: FileFormat,
    /// The local folder of spools, runs and (by default) checkpoints.
    pub spool: PathBuf,
}

impl std::str::FromStr for S3Url {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let usage = "write s3://BUCKET/PREFIX[?format=jsonl|csv|parquet][&spool=LOCAL_DIR]";
        let rest = text.strip_prefix("s3://").ok_or_else(|| anyhow!("'{text}' is not an s3:// URL: {usage}"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            bail!("'{bucket}' in '{text}' is not an S3 bucket name (3 to 63 of a-z, 0-9, '-' and '.'): {usage}");
        }
        let prefix = prefix.trim_matches('/').to_owned();
        let mut format = FileFormat::Jsonl;
        let mut spool = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "format" => {
                    format = FileFormat::from_name(&value).ok_or_else(|| {
                        anyhow!("unknown format '{value}' in '{text}': choose one of {}", FileFormat::names())
                    })?;
                }
                "spool" if !value.is_empty() => spool = Some(PathBuf::from(value.as_ref())),
                other => bail!("unknown option '{other}' in '{text}': {usage}"),
            }
        }
        let spool = match spool {
            Some(spool) => spool,
            None => default_spool(bucket, &prefix).ok_or_else(|| {
                anyhow!("neither XDG_STATE_HOME nor HOME is set to keep the local spool of '{text}' in: add &spool=LOCAL_DIR")
            })?,
        };
        Ok(S3Url { bucket: bucket.to_owned(), prefix, format, spool })
    }
}

/// `$XDG_STATE_HOME/gitlab-host/s3/BUCKET/PREFIX`, else `~/.local/state/...`.
fn default_spool(bucket: &str, prefix: &str) -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| Path::new(&h).join(".local/state")))?;
    let mut dir = state.join("gitlab-host").join("s3").join(super::path_component(bucket));
    for segment in prefix.split('/').filter(|s| !s.is_empty()) {
        dir.push(super::path_component(segment));
    }
    Some(dir)
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)?;
        if self.format != FileFormat::Jsonl {
            write!(f, "?format={}", self.format.name())?;
        }
        Ok(())
    }
}

/// Open the S3 destination at `url`: check that the bucket answers, then spool locally.
pub fn open(url: &S3Url) -> Result<FileDestination> {
    let target = S3Target::connect(url)?;
    FileDestination::open(url.format, Box::new(target), &url.spool)
}

/// `text` without the values of the AWS secrets in the environment.
fn scrub(text: String) -> String {
    ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"]
        .iter()
        .filter_map(|name| std::env::var(name).ok().filter(|v| v.len() >= 4))
        .fold(text, |text, secret| text.replace(&secret, "***"))
}

/// The environment variables from which object_store takes credentials (keys, a web identity, a
/// container's) or is told to sign nothing; with none of them set, it asks the EC2 instance metadata
/// service.
const CREDENTIAL_VARIABLES: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_SKIP_SIGNATURE",
];

/// What to add to the first request's `error`: where the credentials were looked for, when it was
/// the instance metadata service (no credentials in the environment) that failed (its paths start
/// with `/latest/`).
fn credentials_hint(error: &str) -> &'static str {
    let from_environment = CREDENTIAL_VARIABLES.iter().any(|name| std::env::var_os(name).is_some());
    if from_environment || !error.contains("/latest/") {
        ""
    } else {
        "; no AWS credentials are set, so they were asked of the EC2 instance metadata service, which \
         gave none: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for an \
         S3-compatible store)"
    }
}

/// An S3 bucket and prefix.
pub struct S3Target {
    store: Arc<AmazonS3>,
    prefix: String,
    shown: String,
    io: IoThread,
}

impl S3Target {
    /// Configure the client from the environment and make one request (a listing of the prefix) so that
    /// a wrong bucket, endpoint or key fails the run before anything is read.
    pub fn connect(url: &S3Url) -> Result<S3Target> {
        // object_store's HTTP client uses rustls without choosing its cryptography: ring, as the rest of the host.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shown = format!("s3://{}/{}", url.bucket, url.prefix);
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .build()
            .map_err(|e| anyhow!("cannot configure S3 for {shown}: {}", scrub(e.to_string())))?;
        let target = S3Target { store: Arc::new(store), prefix: url.prefix.clone(), shown, io: IoThread::start("s3")? };
        let (store, prefix) = (target.store.clone(), target.path("")?);
        target.io.run(async move { store.list_with_delimiter(Some(&prefix)).await.map(drop) })?.map_err(|e| {
            let error = scrub(e.to_string());
            anyhow!("cannot reach {}: {error}{}", target.shown, credentials_hint(&error))
        })?;
        Ok(target)
    }

    /// The object path of `name` under the prefix.
    fn path(&self, name: &str) -> Result<ObjectPath> {
        let full = match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{name}", self.prefix),
        };
        ObjectPath::parse(&full).map_err(|e| anyhow!("'{full}' is not a valid object path: {e}"))
    }

    /// Run `work` with the store on the I/O thread; errors are scrubbed and name `what`.
    fn run<T, F, Fut>(&self, what: &str, work: F) -> Result<T>
    where
        F: FnOnce(Arc<AmazonS3>) -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.io.run(work(self.store.clone()))?.map_err(|e| anyhow!("{what}: {}", scrub(e.to_string())))
    }
}

/// Upload the file at `file` to `path`: in one request if small, else in a multipart upload.
async fn upload(store: Arc<AmazonS3>, file: PathBuf, path: ObjectPath) -> Result<()> {
    let size = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?.len();
    if size <= MULTIPART_THRESHOLD {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        store.put(&path, PutPayload::from(bytes)).await.map_err(|e| anyhow!(scrub(e.to_string())))?;
        return Ok(());
    }
    let upload = store.put_multipart(&path).await.map_err(|e| anyhow!(scrub(e.to_string())))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
    let mut reader = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error).with_context(|| format!("cannot read {}", file.display()));
            }
        };
        if let Err(error) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
            return Err(anyhow!(scrub(error.to_string())));
        }
        writer.write(&buffer[..read]);
    }
    writer.finish().await.map(drop).map_err(|e| anyhow!(scrub(e.to_string())))
}

impl Target for S3Target {
    fn location(&self) -> String {
        self.shown.clone()
    }

    fn publish(&mut self, file: &Path, name: &str) -> Result<()> {
        let (store, path, file) = (self.store.clone(), self.path(name)?, file.to_owned());
        self.io.run(upload(store, file, path))?.with_context(|| format!("cannot upload {name} to {}", self.shown))
    }

    fn exists(&mut self, name: &str) -> Result<bool> {
        let path = self.path(name)?;
        let what = format!("cannot look for {name} in {}", self.shown);
        self.run(&what, |store| async move {
            match store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(error) => Err(error),
            }
        })
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        let what = format!("cannot remove {name} from {}", self.shown);
        self.run(&what, |store| async move {
            match store.delete(&path).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let (path, payload) = (self.path(name)?, PutPayload::from(bytes.to_vec()));
        let what = format!("cannot write {name} to {}", self.shown);
        self.run(&what, |store| async move { store.put(&path, payload).await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        let url: S3Url = "s3://my-bucket/exports/gitlab/?format=csv&spool=/tmp/s".parse().unwrap();
        assert_eq!(url.bucket, "my-bucket");
        assert_eq!(url.prefix, "exports/gitlab");
        assert_eq!(url.format, FileFormat::Csv);
        assert_eq!(url.spool, PathBuf::from("/tmp/s"));
        assert_eq!(url.to_string(), "s3://my-bucket/exports/gitlab?format=csv");
        let url: S3Url = "s3://bucket".parse().unwrap();
        assert_eq!((url.prefix.as_str(), url.format), ("", FileFormat::Jsonl));
        for (bad, says) in [
            ("s3://B/x", "not an S3 bucket name"),
            ("s3://bucket/x?format=xml", "unknown format 'xml'"),
            ("s3://bucket/x?region=eu", "unknown option 'region'"),
        ] {
            let err = bad.parse::<S3Url>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
