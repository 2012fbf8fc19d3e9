//! The one way tests and benchmarks find a workspace binary: build the
//! workspace's binaries with cargo, once per process, for the running
//! executable's profile (the crate docs say why).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The path of the workspace binary `name` (`larch-store`, `larch-agent`,
/// `larch`), fresh: the first call in a process runs `cargo build
/// --workspace --bins` with the profile and target directory of the
/// running executable (the command the test scripts run before the
/// tests, so that it finds nothing to do after them). Panics when the
/// build fails (cargo's messages are on stderr) or no binary is called
/// `name`.
///
/// A workspace binary that calls this (a benchmark harness) may be
/// replaced on disk by the build: it should take
/// [`std::env::current_exe`] before.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(build);
    built.get(name).cloned().unwrap_or_else(|| {
        panic!(
            "no binary {name} in the workspace (there are {:?})",
            built.keys().collect::<Vec<_>>()
        )
    })
}

/// Where the running executable was built: (target directory, profile).
/// `<target>/debug/deps/it-1a2b` (a test) and `<target>/debug/ingest` (a
/// binary) both give (`<target>`, `dev`); `release` gives `release`.
fn build_place() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the path of the running executable");
    let mut dir = exe
        .parent()
        .expect("the executable is in a directory")
        .to_path_buf();
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir.pop();
    }
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!("{} is not in a cargo profile directory", exe.display()),
    };
    let target = dir
        .parent()
        .unwrap_or_else(|| panic!("{} is not in a cargo target directory", exe.display()))
        .to_path_buf();
    (target, profile)
}

/// Builds the workspace's binaries; their paths by name.
fn build() -> BTreeMap<String, PathBuf> {
    let (target, profile) = build_place();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test kit is a directory of the workspace");
    // The cargo running these tests, else the one that built this crate.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")));
    let mut cmd = Command::new(&cargo);
    // Cargo gives the running test its package's identity in the
    // environment (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`...). Build
    // scripts that watch those variables would see them changed and build
    // again, so the build gets the environment without them.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(package_variable) {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["build", "--locked", "--quiet", "--workspace", "--bins"])
        .args(["--profile", &profile])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", Path::new(&cargo).display()));
    assert!(
        out.status.success(),
        "`cargo build --workspace --bins --profile {profile}` failed ({}); its messages are above",
        out.status
    );
    executables(&String::from_utf8_lossy(&out.stdout))
}

/// Whether cargo sets `key` for the package whose test or binary runs
/// (rather than it being the user's setting, like `CARGO_HOME` or
/// `CARGO_TARGET_DIR`).
fn package_variable(key: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ];
    key == "OUT_DIR" || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The binaries in cargo's JSON messages (`compiler-artifact` with an
/// `executable`): name → path.
fn executables(messages: &str) -> BTreeMap<String, PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_string();
            Some((name, PathBuf::from(m["executable"].as_str()?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_found_in_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"larch_store"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"larch"},"executable":"/t/debug/larch"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"larch-store"},"executable":"/t/debug/larch-store"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        let got = executables(messages);
        assert_eq!(got.len(), 2);
        assert_eq!(got["larch-store"], PathBuf::from("/t/debug/larch-store"));
        assert_eq!(got["larch"], PathBuf::from("/t/debug/larch"));
    }

    #[test]
    fn only_the_packages_variables_are_removed() {
        for key in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_BIN_EXE_larch",
            "OUT_DIR",
        ] {
            assert!(package_variable(key), "{key}");
        }
        for key in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO",
            "PATH",
        ] {
            assert!(!package_variable(key), "{key}");
        }
    }

    #[test]
    fn the_build_place_is_the_running_tests_profile_directory() {
        let (target, profile) = build_place();
        let dir = if profile == "dev" { "debug" } else { &profile };
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(target.join(dir)), "{}", exe.display());
    }
}
