//! Documentation moves with the code: every setting the code reads is in the README.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
}

#[test]
fn the_readme_documents_every_setting() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let settings = std::fs::read_to_string(repo().join("processor/core/src/settings.rs"))
        .expect("settings.rs");
    let re = regex::Regex::new(r#""(MUTT_[A-Z_]+|OTEL_[A-Z_]+)""#).unwrap();
    let mut names: Vec<String> = re
        .captures_iter(&settings)
        .map(|c| c[1].to_string())
        .collect();
    names.extend(mutt_core::hot::REGISTRY.iter().map(|s| s.env()));
    assert!(names.len() > 30, "{names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "settings missing from README.md: {missing:?}"
    );
}
