//! How a command finds the daemon that holds its store: `keel run` writes the address it
//! really listens on (`--listen` and port 0 included) to `data_dir/api.json` once it
//! listens, and removes the file when it stops. Every answer of the API names the store it
//! serves in [`STORE_HEADER`] (a digest of the store's absolute path), so a command checks
//! it talks to the daemon of *its* store, never to another Keel that happens to listen at
//! that address (a stale file, a copied one, a port reused since).
//!
//! Invariants: the file is written whole (a temporary file renamed into place); an answer
//! without the command's own store digest is an error before anything is read from it,
//! and a request that changes something is only sent after a read proved the daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The response header naming the store the daemon serves.
pub const STORE_HEADER: &str = "x-keel-store";

/// The file, under `data_dir`.
pub const FILE: &str = "api.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub addr: SocketAddr,
    pub instance: String,
    pub pid: u32,
}

/// The digest of `config`'s store (its absolute path), as [`STORE_HEADER`] says it.
pub fn store_id(config: &Config) -> String {
    use sha2::Digest;
    let dir = config.store_dir();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let digest = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random instance id (hex): tells apart two runs on one store, in the file.
pub fn instance_id() -> String {
    let mut raw = [0u8; 12];
    // Without randomness the id is still unique enough per process start.
    if getrandom::fill(&mut raw).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        raw[..8].copy_from_slice(&(t.as_nanos() as u64).to_be_bytes());
        raw[8..].copy_from_slice(&std::process::id().to_be_bytes());
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn path(config: &Config) -> PathBuf {
    config.data_dir.join(FILE)
}

/// Written while the guard lives; removed when it drops.
pub struct Announced(PathBuf);

impl Drop for Announced {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the announcement for `config`'s store.
pub fn announce(config: &Config, addr: SocketAddr, instance: &str) -> std::io::Result<Announced> {
    let file = path(config);
    let a = Announcement { addr, instance: instance.to_string(), pid: std::process::id() };
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&a).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, &file)?;
    Ok(Announced(file))
}

/// The announcement in `data_dir`, if a daemon left one.
pub fn read(file: &Path) -> Option<Announcement> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}
