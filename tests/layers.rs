//! The source tree reads top-down: each layer of `src/` imports only the layers below it
//! (docs/architecture.md lists them), so there is no import cycle and a newcomer can read
//! a layer knowing only what is under it. This test reads every `crate::<module>` path in
//! `src/` and fails naming the file that reaches upward.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, bottom to top; a module may use modules of lower rank only.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("diagnostic", 0),
    ("clock", 0),
    ("lang", 1),
    ("store", 2),
    ("sync", 3),
    ("config", 4),
    ("decide", 5),
    ("deliver", 6),
    ("services", 7),
    ("daemon", 8),
    ("api", 9),
    ("cli", 10),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut seen = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs");
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(&own) = rank.get(top) else { panic!("{} is in no layer: add it to LAYERS", rel.display()) };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                seen += 1;
                match rank.get(used.as_str()) {
                    Some(&r) if used == top || r < own => {}
                    Some(_) => upward.push(format!("{}:{}: {top} uses {used}", rel.display(), n + 1)),
                    None => panic!("{}:{}: crate::{used} is in no layer", rel.display(), n + 1),
                }
            }
        }
    }
    assert!(seen > 100, "the scan found the crate's imports ({seen})");
    assert!(upward.is_empty(), "imports that reach upward:\n{}", upward.join("\n"));
}
