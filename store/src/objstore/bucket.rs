//! The bucket: blocking calls over `object_store`, for the store's own
//! threads (flusher, query workers, compactor).
//!
//! Every backend is an `object_store` store. The filesystem backend
//! differs in two places only, both for durability and speed rather than
//! behaviour: a put is written the way the single-node store writes chunk
//! files (temp file, fsync, rename, fsync of the directory; object_store's
//! local put does not fsync), and byte ranges are read with `pread`
//! without the cache. Listing and deleting go through `object_store`'s
//! `LocalFileSystem` as for the other backends.
//!
//! Calls return `std::io::Result` so that the write and read paths, which
//! were written for files, keep their error handling: a missing object is
//! `ErrorKind::NotFound`, anything else `ErrorKind::Other` with the
//! operation, the key and `object_store`'s message.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::cache::DiskCache;
use super::config::{Backend, StorageConfig};
use super::metrics::ObjstoreMetrics;

/// Writes every byte of `parts`, in order, with as few `writev` calls as
/// the kernel takes them in.
fn write_all_vectored(w: &mut impl std::io::Write, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| std::io::IoSlice::new(p))
        .collect();
    let mut rest = slices.as_mut_slice();
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ));
            }
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// When it was written (milliseconds since the epoch).
    pub modified_ms: i64,
    /// Its entity tag, when the backend gives one (changes with every
    /// write, even within the same second).
    pub e_tag: Option<String>,
}

/// The bucket.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// The root directory of the filesystem backend.
    local: Option<PathBuf>,
    handle: tokio::runtime::Handle,
    _runtime: OwnRuntime,
    metrics: ObjstoreMetrics,
    cache: Option<DiskCache>,
    describe: String,
}

/// A runtime that shuts down without waiting when dropped: the bucket
/// may be dropped from async code, where a runtime may not block.
pub struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    /// Owns `rt`.
    pub fn new(rt: tokio::runtime::Runtime) -> OwnRuntime {
        OwnRuntime(Some(rt))
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn other(op: &str, key: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{op} {key}: {e}"))
}

fn map_err(op: &str, key: &str, e: object_store::Error) -> std::io::Error {
    use std::io::ErrorKind;
    match e {
        object_store::Error::NotFound { .. } => {
            std::io::Error::new(ErrorKind::NotFound, format!("{op} {key}: not found"))
        }
        e @ (object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }) => {
            std::io::Error::new(ErrorKind::PermissionDenied, format!("{op} {key}: {e}"))
        }
        e => other(op, key, e),
    }
}

/// The URL object_store wants for `endpoint`: with virtual-hosted
/// requests (`force_path_style: false`) the bucket is the host's first
/// label (`https://larch.minio.example`), added here unless the endpoint
/// already has it; with path-style requests the endpoint as given.
fn endpoint_url(endpoint: &str, bucket: &str, path_style: bool) -> String {
    if path_style {
        return endpoint.to_string();
    }
    let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    if host.starts_with(&format!("{bucket}.")) {
        endpoint.to_string()
    } else {
        format!("{scheme}://{bucket}.{host}")
    }
}

/// The base URL a GCS client built from `b` sends its requests to, when
/// it is not Google's: `GOOGLE_BASE_URL`, or else the `gcs_base_url` of
/// the service account key (a file, or the key's JSON itself), the order
/// `object_store` reads them in. An `http://` one is allowed, as an S3 or
/// Azure endpoint that says `http://` is (an emulator, a private
/// gateway); object_store's client refuses plain HTTP otherwise. A key
/// that cannot be read or parsed gives `None` here: building the client
/// reads it again and reports why.
fn gcs_base_url(b: &object_store::gcp::GoogleCloudStorageBuilder) -> Option<String> {
    use object_store::gcp::GoogleConfigKey;
    if let Some(url) = b.get_config_value(&GoogleConfigKey::BaseUrl) {
        return Some(url);
    }
    let key = match b.get_config_value(&GoogleConfigKey::ServiceAccountKey) {
        Some(json) => json,
        None => {
            std::fs::read_to_string(b.get_config_value(&GoogleConfigKey::ServiceAccount)?).ok()?
        }
    };
    let key: serde_json::Value = serde_json::from_str(&key).ok()?;
    key.get("gcs_base_url")?.as_str().map(str::to_string)
}

/// `e` and every error it was caused by, as one text.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether `e` says that an object does not exist.
pub fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

impl Bucket {
    /// Opens the bucket `storage` describes; `data_dir` roots the
    /// filesystem backend (and the cache) when their directories are not
    /// set. Checks nothing remote: see [`Bucket::check`].
    pub fn open(
        storage: &StorageConfig,
        data_dir: &Path,
        metrics: ObjstoreMetrics,
    ) -> std::io::Result<Bucket> {
        // TLS for every HTTP backend: ring, as the rest of the workspace
        // (a second install is refused, which is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("larch-objstore")
            .enable_all()
            .build()?;
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
        };
        let client = object_store::ClientOptions::new()
            .with_timeout(Duration::from_secs(30))
            .with_connect_timeout(Duration::from_secs(5));
        let mut local = None;
        let (store, describe): (Arc<dyn ObjectStore>, String) = match storage.backend {
            Backend::Filesystem => {
                let dir = if storage.filesystem.dir.as_os_str().is_empty() {
                    data_dir.to_path_buf()
                } else {
                    storage.filesystem.dir.clone()
                };
                crate::quarantine::create_dirs_durably(&dir)?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| other("opening", &dir.display().to_string(), e))?;
                local = Some(dir.clone());
                (Arc::new(fs), format!("filesystem {}", dir.display()))
            }
            Backend::S3 => {
                let s = &storage.s3;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s.bucket)
                    .with_retry(retry)
                    .with_client_options(
                        client.with_allow_http(s.insecure || s.endpoint.starts_with("http://")),
                    )
                    .with_virtual_hosted_style_request(!s.force_path_style);
                if !s.endpoint.is_empty() {
                    b = b.with_endpoint(endpoint_url(&s.endpoint, &s.bucket, s.force_path_style));
                }
                if !s.region.is_empty() {
                    b = b.with_region(&s.region);
                } else if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    b = b.with_region("us-east-1");
                }
                if !s.access_key_id.is_empty() {
                    b = b
                        .with_access_key_id(&s.access_key_id)
                        .with_secret_access_key(&s.secret_access_key);
                }
                if !s.session_token.is_empty() {
                    b = b.with_token(&s.session_token);
                }
                let store = b
                    .build()
                    .map_err(|e| other("configuring", "storage.s3", e))?;
                let at = if s.endpoint.is_empty() {
                    "AWS".to_string()
                } else {
                    s.endpoint.clone()
                };
                (Arc::new(store), format!("s3 bucket {} at {at}", s.bucket))
            }
            Backend::Gcs => {
                let g = &storage.gcs;
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&g.bucket)
                    .with_retry(retry);
                if !g.service_account_path.is_empty() {
                    b = b.with_service_account_path(&g.service_account_path);
                }
                let http = gcs_base_url(&b).is_some_and(|u| u.starts_with("http://"));
                b = b.with_client_options(client.with_allow_http(http));
                let store = b
                    .build()
                    .map_err(|e| other("configuring", "storage.gcs", e))?;
                (Arc::new(store), format!("gcs bucket {}", g.bucket))
            }
            Backend::Azure => {
                let a = &storage.azure;
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(&a.account)
                    .with_container_name(&a.container)
                    .with_retry(retry)
                    .with_client_options(client.with_allow_http(a.endpoint.starts_with("http://")));
                if !a.access_key.is_empty() {
                    b = b.with_access_key(&a.access_key);
                }
                if !a.endpoint.is_empty() {
                    b = b.with_endpoint(a.endpoint.clone());
                }
                let store = b
                    .build()
                    .map_err(|e| other("configuring", "storage.azure", e))?;
                (
                    Arc::new(store),
                    format!("azure container {}/{}", a.account, a.container),
                )
            }
        };
        let cache = if local.is_none() && storage.cache.max_size.0 > 0 {
            let dir = if storage.cache.dir.as_os_str().is_empty() {
                data_dir.join("cache")
            } else {
                storage.cache.dir.clone()
            };
            Some(DiskCache::open(
                &dir,
                storage.cache.max_size.0,
                metrics.clone(),
            )?)
        } else {
            None
        };
        Ok(Bucket {
            store,
            local,
            handle: runtime.handle().clone(),
            _runtime: OwnRuntime(Some(runtime)),
            metrics,
            cache,
            describe,
        })
    }

    /// What the bucket is, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The root directory of the filesystem backend.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The file of `key` with the filesystem backend.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.local.as_ref().map(|d| d.join(key))
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    fn record<T>(&self, op: &'static str, started: Instant, r: &std::io::Result<T>) {
        let result = match r {
            Ok(_) => "success",
            Err(e) if is_not_found(e) => "not_found",
            Err(_) => "error",
        };
        self.metrics
            .requests
            .get_or_create(&vec![
                ("op", op.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
        self.metrics
            .duration
            .get_or_create(&vec![("op", op.to_string())])
            .observe(started.elapsed().as_secs_f64());
    }

    fn count_bytes(&self, direction: &'static str, n: usize) {
        self.metrics
            .bytes
            .get_or_create(&vec![("direction", direction.to_string())])
            .inc_by(n as u64);
    }

    /// Checks that the bucket can be used (at start: a wrong endpoint,
    /// bucket or credentials is said at once, naming the bucket). Refused
    /// credentials are `PermissionDenied`, a missing bucket `NotFound`,
    /// anything else (an unreachable endpoint) another kind.
    ///
    /// Two requests: the metadata of a key that need not exist, whose
    /// answer has the HTTP status mapped (a listing's refusal arrives as a
    /// generic error on some backends), then a listing of `segments/`.
    pub fn check(&self) -> std::io::Result<()> {
        let started = Instant::now();
        let probe = ObjPath::from("segments/.probe");
        let r = match self.block(self.store.head(&probe)) {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("reading", "segments/.probe", e)),
        };
        self.record("head", started, &r);
        let r = r.and_then(|()| {
            let started = Instant::now();
            let path = ObjPath::from("segments");
            let r = self
                .block(self.store.list_with_delimiter(Some(&path)))
                .map(|_| ())
                .map_err(|e| {
                    // S3 names a missing bucket `NoSuchBucket`, Azure a
                    // missing container `ContainerNotFound`; both arrive
                    // as generic errors of a listing. GCS's XML API, which
                    // object_store's GCS client lists with, documents the
                    // same `NoSuchBucket` as S3 (not checked against a
                    // server: no emulator here speaks that API).
                    let chain = error_chain(&e);
                    let missing = matches!(e, object_store::Error::NotFound { .. })
                        || chain.contains("NoSuchBucket")
                        || chain.contains("ContainerNotFound");
                    let e = map_err("listing", "segments/", e);
                    if missing {
                        std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
                    } else {
                        e
                    }
                });
            self.record("list", started, &r);
            r
        });
        r.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => "the credentials were refused",
                std::io::ErrorKind::NotFound => "the bucket does not exist",
                _ => "check storage: the endpoint, the bucket and the credentials",
            };
            std::io::Error::new(
                e.kind(),
                format!("cannot use {}: {e}; {hint}", self.describe),
            )
        })
    }

    /// Writes `bytes` at `key` (whole, or not at all).
    pub fn put(&self, key: &str, bytes: Bytes) -> std::io::Result<()> {
        if self.local.is_some() {
            return self.put_parts(key, &[&bytes]);
        }
        let started = Instant::now();
        let n = bytes.len();
        let path = ObjPath::from(key);
        let r = self
            .block(self.store.put(&path, bytes.into()))
            .map(|_| ())
            .map_err(|e| map_err("writing", key, e));
        self.record("put", started, &r);
        if r.is_ok() {
            self.count_bytes("upload", n);
        }
        r
    }

    /// Writes the concatenation of `parts` at `key` (whole, or not at
    /// all). On a local disk the parts go to the file as they are, in
    /// vectored writes; an object store is sent one buffer of them.
    pub fn put_parts(&self, key: &str, parts: &[&[u8]]) -> std::io::Result<()> {
        let Some(root) = &self.local else {
            return self.put(key, Bytes::from(parts.concat()));
        };
        let started = Instant::now();
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let r = crate::ingester::flusher::write_durably(&root.join(key), |f| {
            write_all_vectored(f, parts)
        });
        self.record("put", started, &r);
        if r.is_ok() {
            self.count_bytes("upload", n);
        }
        r
    }

    /// The whole object at `key`.
    pub fn get(&self, key: &str) -> std::io::Result<Bytes> {
        self.get_inner(key, true)
    }

    /// The whole object at `key`, bypassing the cache (read once, for
    /// the compactor: whole chunks would only crowd out ranges).
    pub fn get_uncached(&self, key: &str) -> std::io::Result<Bytes> {
        self.get_inner(key, false)
    }

    fn get_inner(&self, key: &str, cached: bool) -> std::io::Result<Bytes> {
        if let Some(root) = &self.local {
            return std::fs::read(root.join(key)).map(Bytes::from);
        }
        let cache = self.cache.as_ref().filter(|_| cached);
        if let Some(c) = cache
            && let Some(b) = c.get(key, None)
        {
            return Ok(b);
        }
        let started = Instant::now();
        let path = ObjPath::from(key);
        let r = self
            .block(async {
                let got = self.store.get(&path).await?;
                got.bytes().await
            })
            .map_err(|e| map_err("reading", key, e));
        self.record("get", started, &r);
        if let Ok(b) = &r {
            self.count_bytes("download", b.len());
            if let Some(c) = cache {
                c.put(key, None, b);
            }
        }
        r
    }

    /// Byte ranges of the object at `key`, through the cache; requests
    /// for ranges close together are merged.
    pub fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> std::io::Result<Vec<Bytes>> {
        if let Some(root) = &self.local {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::open(root.join(key))?;
            return ranges
                .iter()
                .map(|r| {
                    let mut buf = vec![0u8; usize::try_from(r.end - r.start).unwrap_or(0)];
                    f.read_exact_at(&mut buf, r.start)?;
                    Ok(Bytes::from(buf))
                })
                .collect();
        }
        let mut out: Vec<Option<Bytes>> = vec![None; ranges.len()];
        let mut missing = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            match self
                .cache
                .as_ref()
                .and_then(|c| c.get(key, Some(r.clone())))
            {
                Some(b) => out[i] = Some(b),
                None => missing.push(i),
            }
        }
        if !missing.is_empty() {
            let want: Vec<Range<u64>> = missing.iter().map(|&i| ranges[i].clone()).collect();
            let started = Instant::now();
            let path = ObjPath::from(key);
            let r = self
                .block(self.store.get_ranges(&path, &want))
                .map_err(|e| map_err("reading", key, e));
            self.record("get_range", started, &r);
            let got = r?;
            for (&i, b) in missing.iter().zip(got) {
                self.count_bytes("download", b.len());
                if let Some(c) = &self.cache {
                    c.put(key, Some(ranges[i].clone()), &b);
                }
                out[i] = Some(b);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// One byte range of the object at `key`.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes> {
        let mut v = self.get_ranges(key, std::slice::from_ref(&range))?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Every object under `prefix` (a key prefix ending in `/`).
    pub fn list(&self, prefix: &str) -> std::io::Result<Vec<Listed>> {
        let started = Instant::now();
        let path = ObjPath::from(prefix.trim_end_matches('/'));
        let r: std::io::Result<Vec<Listed>> = self.block(async {
            let mut s = self.store.list(Some(&path));
            let mut out = Vec::new();
            while let Some(m) = s.next().await {
                match m {
                    Ok(m) => out.push(Listed {
                        key: m.location.to_string(),
                        size: m.size,
                        modified_ms: m.last_modified.timestamp_millis(),
                        e_tag: m.e_tag,
                    }),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(map_err("listing", prefix, e)),
                }
            }
            Ok(out)
        });
        self.record("list", started, &r);
        r
    }

    /// The names of the "directories" right under `prefix`.
    pub fn list_dirs(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let started = Instant::now();
        let path = ObjPath::from(prefix.trim_end_matches('/'));
        let r = self
            .block(self.store.list_with_delimiter(Some(&path)))
            .map(|l| {
                l.common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect()
            });
        let r = match r {
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            r => r.map_err(|e| map_err("listing", prefix, e)),
        };
        self.record("list", started, &r);
        r
    }

    /// Deletes the object at `key`; a missing one is not an error.
    pub fn delete(&self, key: &str) -> std::io::Result<()> {
        let started = Instant::now();
        let path = ObjPath::from(key);
        let r = match self.block(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("deleting", key, e)),
        };
        self.record("delete", started, &r);
        r
    }

    /// The metrics.
    pub fn metrics(&self) -> &ObjstoreMetrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `most` bytes a call, and is interrupted every third
    /// call, as a pipe or a signal can make a file write.
    struct Trickle {
        got: Vec<u8>,
        most: usize,
        calls: usize,
    }

    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[std::io::IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.most - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.most {
                    break;
                }
            }
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_write_every_part_whatever_each_call_takes() {
        let parts: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i % 7) * 5]).collect();
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        for most in [1, 3, 17, 1000] {
            let mut w = Trickle {
                got: Vec::new(),
                most,
                calls: 0,
            };
            write_all_vectored(&mut w, &slices).unwrap();
            assert_eq!(w.got, slices.concat(), "{most} bytes a call");
        }
        let mut full = Trickle {
            got: Vec::new(),
            most: 0,
            calls: 0,
        };
        let err = write_all_vectored(&mut full, &slices).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
    }

    #[test]
    fn the_gcs_base_url_comes_from_the_environment_or_the_key() {
        use object_store::gcp::GoogleCloudStorageBuilder;
        let key = r#"{"private_key": "", "private_key_id": "", "client_email": "",
            "disable_oauth": true, "gcs_base_url": "http://127.0.0.1:4443"}"#;
        let inline = GoogleCloudStorageBuilder::new().with_service_account_key(key);
        assert_eq!(
            gcs_base_url(&inline).as_deref(),
            Some("http://127.0.0.1:4443")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, key).unwrap();
        let file = GoogleCloudStorageBuilder::new()
            .with_service_account_path(path.to_str().unwrap().to_string());
        assert_eq!(
            gcs_base_url(&file).as_deref(),
            Some("http://127.0.0.1:4443")
        );
        // GOOGLE_BASE_URL (the builder's own setting) goes first, as it
        // does when the client is built.
        let set = file.with_base_url("https://gcs.example.com");
        assert_eq!(
            gcs_base_url(&set).as_deref(),
            Some("https://gcs.example.com")
        );
        // Google's own: no base URL in the key; a key that is not JSON or
        // a file that is not there says nothing either.
        let plain = GoogleCloudStorageBuilder::new()
            .with_service_account_key(r#"{"private_key": "", "client_email": ""}"#);
        assert_eq!(gcs_base_url(&plain), None);
        let garbled = GoogleCloudStorageBuilder::new().with_service_account_key("not json");
        assert_eq!(gcs_base_url(&garbled), None);
        let missing = GoogleCloudStorageBuilder::new().with_service_account_path(
            dir.path().join("absent.json").to_str().unwrap().to_string(),
        );
        assert_eq!(gcs_base_url(&missing), None);
        assert_eq!(gcs_base_url(&GoogleCloudStorageBuilder::new()), None);
    }

    /// A GCS key whose `gcs_base_url` says `http://` is reached over plain
    /// HTTP: object_store's client refuses such a URL unless told to allow
    /// it, and every request then failed before it was sent ("builder
    /// error"), which the start took for an unreachable bucket.
    #[test]
    fn a_gcs_base_url_over_plain_http_is_reached() {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.json");
        std::fs::write(
            &key,
            format!(
                r#"{{"private_key": "", "private_key_id": "", "client_email": "",
                "disable_oauth": true, "gcs_base_url": "http://127.0.0.1:{port}"}}"#
            ),
        )
        .unwrap();
        let mut storage = StorageConfig {
            backend: Backend::Gcs,
            ..StorageConfig::default()
        };
        storage.gcs.bucket = "larch".into();
        storage.gcs.service_account_path = key.to_str().unwrap().to_string();
        storage.cache.max_size.0 = 0;
        let bucket = Bucket::open(&storage, dir.path(), ObjstoreMetrics::default()).unwrap();
        // The first request's line, read by a thread that then closes the
        // connection and the listener (the check fails after its retries);
        // none within 10 seconds is a failure, not a hang.
        listener.set_nonblocking(true).unwrap();
        let first = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break Some(conn),
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break None,
                }
            };
            let conn = conn?;
            conn.set_nonblocking(false).unwrap();
            let mut line = String::new();
            BufReader::new(conn).read_line(&mut line).unwrap();
            Some(line)
        });
        let err = bucket.check().unwrap_err();
        assert!(
            err.to_string().contains("cannot use gcs bucket larch"),
            "{err}"
        );
        assert!(!err.to_string().contains("builder error"), "{err}");
        assert_eq!(
            first.join().unwrap().as_deref(),
            Some("HEAD /larch/segments%2F%2Eprobe HTTP/1.1\r\n"),
            "the check's first request reached the server"
        );
    }

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000", "b", true),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint_url("https://s3.example.com", "b", false),
            "https://b.s3.example.com"
        );
        assert_eq!(
            endpoint_url("https://b.s3.example.com", "b", false),
            "https://b.s3.example.com"
        );
        assert_eq!(
            endpoint_url("minio:9000", "b", false),
            "https://b.minio:9000"
        );
    }
}
