//! Finding SQLite's amalgamation: the `sqlite3/` folder of the pinned `libsqlite3-sys` package, as
//! `cargo metadata` of the guest workspace names it in the local registry. Shared by this crate's
//! build script and the native builds of `tests/sqlite_native` (which include this file).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that ships the amalgamation, and its pinned version.
pub const SOURCE_PACKAGE: &str = "libsqlite3-sys";
pub const SOURCE_VERSION: &str = "0.40.0";

/// The folder holding `sqlite3.c` and `sqlite3.h`, from `cargo metadata --locked` of the
/// manifest `manifest` (any manifest of the guest workspace).
pub fn dir(manifest: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad cargo metadata: {e}"))?;
    let manifest_path = meta["packages"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["name"] == SOURCE_PACKAGE && p["version"] == SOURCE_VERSION)
        })
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or(format!(
            "{SOURCE_PACKAGE} {SOURCE_VERSION} is not in the guest workspace's dependency graph"
        ))?;
    let dir = Path::new(manifest_path)
        .parent()
        .ok_or("manifest path without a folder")?
        .join("sqlite3");
    if dir.join("sqlite3.c").is_file() {
        Ok(dir)
    } else {
        Err(format!("{} has no sqlite3.c", dir.display()))
    }
}
