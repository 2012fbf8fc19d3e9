//! A real Azure Blob Storage emulator for the object storage tests:
//! Azurite (npm, `testkit/azurite/package.json`), on a free port of
//! 127.0.0.1, over a temporary directory, with one container created
//! through Microsoft's JavaScript client.
//!
//! Installed once into `.test-deps/azurite/` of the workspace
//! (`scripts/install-test-deps` does it; a test that finds it missing
//! runs the same `npm install` itself, under a lock so that parallel tests
//! install it once).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::process::{Process, ProcessBuilder};

/// The account Azurite serves.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its shared key: Azurite's published development key, the only one it
/// accepts for that account.
pub const ACCESS_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

static INSTALL: Mutex<()> = Mutex::new(());

/// `testkit/azurite`: the manifest and the container script.
fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("azurite")
}

/// `.test-deps/azurite`, installed first if it is not there.
fn installed_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test kit is a directory of the workspace")
        .join(".test-deps")
        .join("azurite");
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !root.join("node_modules/.bin/azurite-blob").exists() {
        std::fs::create_dir_all(&root).expect("creating .test-deps/azurite");
        std::fs::copy(source_dir().join("package.json"), root.join("package.json"))
            .expect("copying Azurite's package.json");
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&root)
            .status()
            .expect("running npm install (Azurite)");
        assert!(status.success(), "npm install of Azurite failed: {status}");
    }
    root
}

/// A running Azurite blob service, killed when dropped.
pub struct AzuriteServer {
    _process: Process,
    /// Its port.
    pub port: u16,
}

impl AzuriteServer {
    /// Starts a server holding the empty container `container`.
    pub fn start(container: &str) -> AzuriteServer {
        let deps = installed_dir();
        let port = crate::free_port();
        let b = ProcessBuilder::new("azurite", deps.join("node_modules/.bin/azurite-blob"));
        let data = b.dir().join("blobs");
        std::fs::create_dir_all(&data).expect("creating Azurite's directory");
        let process = b
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .start();
        let s = AzuriteServer {
            _process: process,
            port,
        };
        s.wait_listening();
        crate::process::run_ok(
            Command::new("node")
                .arg(source_dir().join("container.js"))
                .args([&s.account_url(), ACCOUNT, ACCESS_KEY, container])
                .env("NODE_PATH", deps.join("node_modules")),
            "creating the container (node container.js)",
        );
        s
    }

    fn wait_listening(&self) {
        crate::port::wait_listening("Azurite", self.port, Duration::from_secs(60));
    }

    /// The account's URL (Azurite names the account in the path).
    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// A store's `storage:` block for `container` on this server.
    pub fn storage_yaml(&self, container: &str) -> String {
        format!(
            "storage:\n  backend: azure\n  azure:\n    account: {ACCOUNT}\n    container: {container}\n    access_key: \"{ACCESS_KEY}\"\n    endpoint: {}\n",
            self.account_url()
        )
    }
}
