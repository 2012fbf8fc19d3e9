//! A real S3-compatible server for the object storage tests: `s3s-fs`
//! 0.14.1 (the last version that builds with our toolchain), on a free
//! port of 127.0.0.1, over a temporary directory.
//!
//! The binary is installed once into `.test-deps/s3s-fs/` of the
//! workspace (`scripts/install-test-deps` does it; a test that finds it
//! missing installs it itself, which takes about four minutes, under a
//! lock so that parallel tests install it once).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::process::{Process, ProcessBuilder};

/// The version installed and run.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "larch-test-key";
/// The secret key the server accepts.
pub const SECRET_KEY: &str = "larch-test-secret";

static INSTALL: Mutex<()> = Mutex::new(());

/// The `s3s-fs` binary, installed first if it is not there.
pub fn s3s_fs_binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test kit is a directory of the workspace")
        .join(".test-deps")
        .join("s3s-fs");
    let bin = root.join("bin").join("s3s-fs");
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !bin.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "s3s-fs", "--version", S3S_FS_VERSION])
            .args(["--locked", "--features", "binary", "--root"])
            .arg(&root)
            .status()
            .expect("running cargo install s3s-fs");
        assert!(status.success(), "cargo install s3s-fs failed: {status}");
    }
    bin
}

/// A running `s3s-fs`, killed when dropped.
pub struct S3Server {
    process: Process,
    /// Its port.
    pub port: u16,
    /// Where its buckets are (one directory each).
    pub root: PathBuf,
}

impl S3Server {
    /// Starts a server with the bucket `bucket` (an empty directory).
    pub fn start(bucket: &str) -> S3Server {
        let port = crate::free_port();
        let b = ProcessBuilder::new("s3s-fs", s3s_fs_binary());
        let root = b.dir().join("buckets");
        std::fs::create_dir_all(root.join(bucket)).expect("creating the bucket's directory");
        let process = b
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .start();
        let s = S3Server {
            process,
            port,
            root,
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&self) {
        crate::port::wait_listening("s3s-fs", self.port, Duration::from_secs(30));
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A store's `storage:` block for `bucket` on this server, with the
    /// credentials taken from the environment variables
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (`${VAR}`).
    pub fn storage_yaml(&self, bucket: &str) -> String {
        format!(
            "storage:\n  backend: s3\n  s3:\n    endpoint: {}\n    bucket: {bucket}\n    region: us-east-1\n    access_key_id: ${{AWS_ACCESS_KEY_ID}}\n    secret_access_key: ${{AWS_SECRET_ACCESS_KEY}}\n    force_path_style: true\n",
            self.endpoint()
        )
    }

    /// Kills it (SIGKILL): the bucket is unreachable until
    /// [`restart`](S3Server::restart).
    pub fn kill(&self) {
        self.process.kill9();
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&self) {
        self.process.restart();
        self.wait_listening();
    }
}
