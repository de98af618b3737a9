//! Compiles the console (`ui/`) into the binary: every file under `ui/` becomes an entry of
//! `ASSETS` in `$OUT_DIR/ui_assets.rs`, so that `mutt control` serves it with no files
//! beside the binary and no runtime build step. Dotfiles are skipped (editor droppings).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// FNV-1a: a stable tag of a file's bytes for `ETag` (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("ui");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut code = String::from("static ASSETS: &[Asset] = &[\n");
    for f in &files {
        // Directories are watched by their mtime only: name every file too, so an edit
        // inside `ui/views/` rebuilds.
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(&root)
            .expect("under ui/")
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(f).expect("read a ui file");
        writeln!(
            code,
            "    Asset {{ path: {rel:?}, bytes: include_bytes!({:?}), etag: \"\\\"{:016x}\\\"\" }},",
            f.display().to_string(),
            fnv1a(&bytes)
        )
        .expect("write to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("ui_assets.rs");
    std::fs::write(out, code).expect("write ui_assets.rs");
}
