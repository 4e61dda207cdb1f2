//! The texts a set of playbooks and rules was loaded from: every playbook, email
//! template, rule file and the health model, keyed by its path relative to the folder it
//! came from (`playbooks/renewal-90.yaml`, `playbooks/templates/renewal_90.txt`,
//! `rules/health.rhai`).
//!
//! The daemon records the set it runs as these texts (`store::running`), and `keel plan`
//! compares two sets by them; [`Sources::materialise`] writes them back out as two
//! folders that [`super::Loaded::load`] reads exactly as it read the originals, so a
//! recorded set is loaded by the very code that loaded it the first time.
//!
//! Invariants:
//! - A key is `playbooks/<name>`, `playbooks/templates/<name>` or `rules/<name>`, with
//!   `<name>` one plain file name ending in an extension the loaders read: a key never
//!   names a file outside the folder it is materialised into ([`check_key`] refuses `..`,
//!   separators and anything else). The prefixes stand for the config's `playbooks` and
//!   `rules` folders, whatever those are called on disk.
//! - The texts are what the loaders read (`diagnostic::read_source`: without a
//!   byte-order mark), so a playbook's digest is the same loaded from either place.
//! - A file over [`FILE_LIMIT`], or one that is not UTF-8, is left out and named in
//!   [`Sources::skipped`], never read whole: the loaders refuse such a playbook or rule
//!   themselves, and only an unused template can be left out of a set that loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A file larger than this is not taken into a set (the loaders' own limit on a template
/// or a description is 1 MiB of text).
pub const FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// Which files of which folder a set holds: the loaders' own choice of files.
const FOLDERS: [(&str, &[&str]); 3] =
    [("rules", &["rhai", "yaml"]), ("playbooks", &["yaml", "yml"]), ("playbooks/templates", &["txt", "html"])];

/// The texts of a set, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    pub files: BTreeMap<String, String>,
    /// Files left out, with why (too large, not text): for a log line, not compared.
    #[serde(skip)]
    pub skipped: Vec<String>,
}

impl Sources {
    /// Reads the files [`super::Loaded::load`] reads from `rules_dir` and `playbooks_dir`
    /// (every template, not only those a playbook names). A missing folder holds none.
    pub fn read(rules_dir: &Path, playbooks_dir: &Path) -> Sources {
        let mut sources = Sources::default();
        for (prefix, exts) in FOLDERS {
            let dir = match prefix {
                "rules" => rules_dir.to_path_buf(),
                "playbooks" => playbooks_dir.to_path_buf(),
                _ => playbooks_dir.join("templates"),
            };
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().and_then(|x| x.to_str()).is_some_and(|x| exts.contains(&x)))
                .collect();
            files.sort();
            for file in files {
                // The rules folder's only YAML file is the model; other YAML there is not read.
                let Some(name) = file.file_name().and_then(|n| n.to_str()) else { continue };
                if prefix == "rules" && name.ends_with(".yaml") && name != "health.yaml" {
                    continue;
                }
                let key = format!("{prefix}/{name}");
                let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                if len > FILE_LIMIT {
                    sources.skipped.push(format!("{key}: {len} bytes, over the {FILE_LIMIT}-byte limit"));
                    continue;
                }
                match crate::diagnostic::read_source(&file) {
                    Ok(text) => {
                        sources.files.insert(key, text);
                    }
                    Err(e) => sources.skipped.push(format!("{key}: {e}")),
                }
            }
        }
        sources
    }

    /// A digest over every key and text: two sets with the same fingerprint are the same
    /// files with the same contents.
    pub fn fingerprint(&self) -> String {
        let parts: Vec<&str> = self.files.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]).collect();
        super::digest(&parts)
    }

    /// The bytes of text held.
    pub fn total_bytes(&self) -> usize {
        self.files.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Writes the files under `root` as `root/rules` and `root/playbooks` (both made,
    /// even empty) and returns those two folders. Every key is checked first: nothing is
    /// written for a set with a key [`check_key`] refuses.
    pub fn materialise(&self, root: &Path) -> Result<(PathBuf, PathBuf), String> {
        for key in self.files.keys() {
            check_key(key)?;
        }
        let (rules, playbooks) = (root.join("rules"), root.join("playbooks"));
        for dir in [&rules, &playbooks, &playbooks.join("templates")] {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        for (key, text) in &self.files {
            let path = root.join(key);
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok((rules, playbooks))
    }
}

/// Whether `key` is one a set can hold: a folder prefix and one plain file name with an
/// extension the loaders read in that folder.
pub fn check_key(key: &str) -> Result<(), String> {
    let refuse = || {
        Err(format!(
            "{key:?} is not a file of a set: expected rules/NAME.rhai, rules/health.yaml, playbooks/NAME.yaml \
             or playbooks/templates/NAME.txt|html"
        ))
    };
    let Some((prefix, name)) = key.rsplit_once('/') else { return refuse() };
    let Some((_, exts)) = FOLDERS.iter().find(|(p, _)| *p == prefix) else { return refuse() };
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| !c.is_control() && !matches!(c, '/' | '\\' | ':'))
        && name.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && exts.contains(&ext));
    let model_only = prefix != "rules" || !name.ends_with(".yaml") || name == "health.yaml";
    if plain && model_only {
        Ok(())
    } else {
        refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_a_plain_file_of_one_of_the_folders_and_nothing_else() {
        for ok in ["rules/health.rhai", "rules/health.yaml", "playbooks/a.yaml", "playbooks/templates/x.html"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "playbooks/../keel.yaml",
            "playbooks/..",
            "/etc/passwd",
            "playbooks/a/b.yaml",
            "playbooks/templates/a.yaml",
            "rules/other.yaml",
            "playbooks/.yaml",
            "playbooks/a.sh",
            "playbooks/a\\b.yaml",
            "other/a.yaml",
            "a.yaml",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_set_materialised_reads_back_as_the_same_set() {
        let dir = tempfile::tempdir().unwrap();
        let (rules, playbooks) = (dir.path().join("r"), dir.path().join("p"));
        std::fs::create_dir_all(playbooks.join("templates")).unwrap();
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::write(playbooks.join("a.yaml"), "\u{feff}id: a\n").unwrap();
        std::fs::write(playbooks.join("notes.md"), "not read").unwrap();
        std::fs::write(playbooks.join("templates/t.txt"), "Subject: hi\nbody\n").unwrap();
        std::fs::write(rules.join("health.rhai"), "fn x() { 1 }").unwrap();
        std::fs::write(rules.join("other.yaml"), "not read").unwrap();
        let set = Sources::read(&rules, &playbooks);
        let keys: Vec<&str> = set.files.keys().map(String::as_str).collect();
        assert_eq!(keys, ["playbooks/a.yaml", "playbooks/templates/t.txt", "rules/health.rhai"]);
        assert_eq!(set.files["playbooks/a.yaml"], "id: a\n", "read as the loaders read it");
        let out = tempfile::tempdir().unwrap();
        let (r, p) = set.materialise(out.path()).unwrap();
        let again = Sources::read(&r, &p);
        assert_eq!(again, set);
        assert_eq!(again.fingerprint(), set.fingerprint());
        let mut bad = set.clone();
        bad.files.insert("playbooks/../../x.yaml".into(), String::new());
        assert!(bad.materialise(tempfile::tempdir().unwrap().path()).is_err());
    }
}
