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

/// (method, path) of every route declared in a router source file, under `prefix`.
fn routes(file: &str, prefix: &str) -> Vec<(String, String)> {
    let src = std::fs::read_to_string(repo().join(file)).expect(file);
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let starts: Vec<(usize, String)> = route
        .captures_iter(&src)
        .map(|c| (c.get(0).unwrap().start(), c[1].to_string()))
        .collect();
    let mut out = Vec::new();
    for (i, (at, path)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(src.len(), |(n, _)| *n);
        let segment = &src[*at..end];
        // A route's methods end where the router does: at a layer, a fallback, or the end
        // of the function that builds it.
        let end = [".layer(", ".fallback(", "\n}"]
            .iter()
            .filter_map(|m| segment.find(m))
            .min()
            .unwrap_or(segment.len());
        let segment = &segment[..end];
        for m in method.captures_iter(segment) {
            out.push((m[1].to_string(), format!("{prefix}{path}")));
        }
    }
    out
}

/// Whether an OpenAPI YAML document has `method` under `path` (indentation-based: paths at
/// two spaces, methods at four).
fn documented(doc: &str, method: &str, path: &str) -> bool {
    let mut in_path = false;
    for line in doc.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_end();
        if indent == 2 && t.trim_start().ends_with(':') {
            let key = t
                .trim_start()
                .trim_end_matches(':')
                .trim_matches(|c| c == '"' || c == '\'');
            in_path = key == path;
        } else if indent < 2 && !t.is_empty() {
            in_path = false;
        } else if in_path && indent == 4 && t.trim_start() == format!("{method}:") {
            return true;
        }
    }
    false
}

#[test]
fn every_route_is_in_the_openapi_documents() {
    let control = std::fs::read_to_string(repo().join("schemas/control.openapi.yaml"))
        .expect("control.openapi.yaml");
    let ingest = std::fs::read_to_string(repo().join("schemas/ingest.openapi.yaml"))
        .expect("ingest.openapi.yaml");
    let mut checked = 0;
    let mut missing = Vec::new();
    for (doc, file, prefix) in [
        (&control, "processor/control/src/v2.rs", "/api/v2"),
        (&control, "processor/control/src/v1.rs", "/api/v1"),
        (&ingest, "processor/ingest/src/lib.rs", ""),
    ] {
        for (method, path) in routes(file, prefix) {
            checked += 1;
            if !documented(doc, &method, &path) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        checked > 40,
        "{checked} routes found: the route scanner is broken"
    );
    assert!(
        missing.is_empty(),
        "routes missing from schemas/*.openapi.yaml: {missing:?}"
    );
}

#[test]
fn the_slo_rules_file_is_generated_from_the_definitions() {
    let committed = std::fs::read_to_string(repo().join("ops/prometheus/mutt-slo.rules.yml"))
        .expect("rules file");
    assert_eq!(
        committed,
        mutt_telemetry::slo::prometheus_rules(),
        "regenerate: cargo run --bin muttdev -- slo-rules > ops/prometheus/mutt-slo.rules.yml"
    );
}

#[test]
fn every_metric_in_rules_and_dashboards_is_emitted() {
    let metrics_src = std::fs::read_to_string(repo().join("processor/telemetry/src/metrics.rs"))
        .expect("metrics.rs");
    let name = regex::Regex::new(r"\bmutt_[a-z_]+").unwrap();
    let mut files = vec![
        repo().join("ops/prometheus/mutt-alerts.rules.yml"),
        repo().join("ops/prometheus/mutt-slo.rules.yml"),
    ];
    if let Ok(dir) = std::fs::read_dir(repo().join("ops/grafana")) {
        files.extend(
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json")),
        );
    }
    let mut missing = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("rules or dashboard");
        for m in name.find_iter(&text) {
            let n = m.as_str();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .fold(n, |b, s| b.strip_suffix(s).unwrap_or(b));
            if !metrics_src.contains(&format!("\"{base}\"")) {
                missing.push(format!("{n} in {}", f.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics that MUTT never emits: {missing:?}"
    );
}

/// Every list of hot-setting keys in the control document is the registry's, in order.
#[test]
fn the_openapi_documents_every_hot_setting() {
    let control = std::fs::read_to_string(repo().join("schemas/control.openapi.yaml"))
        .expect("control.openapi.yaml");
    let keys: Vec<&str> = mutt_core::hot::REGISTRY.iter().map(|s| s.key).collect();
    let lines: Vec<&str> = control.lines().collect();
    let mut lists = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.trim() != "- log_level" {
            continue;
        }
        lists += 1;
        let listed: Vec<&str> = lines[i..]
            .iter()
            .map(|l| l.trim())
            .map_while(|l| {
                l.strip_prefix("- ").filter(|k| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            })
            .collect();
        assert_eq!(
            listed,
            keys,
            "the hot-setting enum at line {} of control.openapi.yaml",
            i + 1
        );
    }
    assert!(lists >= 3, "{lists} hot-setting enums found");
}

/// Every Rust source file under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// A hot setting that no code reads is a claim that does not exist (MUTT v2.5's defect);
/// one that is read only at start does not change live. So every setting of the registry
/// must be read by product code, and be changed live, with its effect observed, by a
/// `set_live` call in `tests/it/live.rs`.
#[test]
fn every_hot_setting_is_read_and_tested_live() {
    let mut files = Vec::new();
    sources(&repo().join("processor"), &mut files);
    let product: String = files
        .iter()
        .filter(|p| !p.ends_with("core/src/hot.rs"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == "tests"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    let live = std::fs::read_to_string(repo().join("integration-tests/tests/it/live.rs"))
        .expect("live.rs");
    let set_live = regex::Regex::new(r#"set_live\(\s*&[a-z_()&]+,\s*"([a-z_]+)""#).unwrap();
    let mut tested: std::collections::HashSet<String> = set_live
        .captures_iter(&live)
        .map(|c| c[1].to_string())
        .collect();
    // `for key in [...] { set_live(&api, key, ...) }` in the ingest test.
    let listed = regex::Regex::new(r#"for key in \[([^\]]*)\]"#).unwrap();
    for c in listed.captures_iter(&live) {
        tested.extend(
            c[1].split(',')
                .map(|k| k.trim().trim_matches('"').to_string()),
        );
    }
    let mut unread = Vec::new();
    let mut untested = Vec::new();
    for spec in mutt_core::hot::REGISTRY {
        let read = regex::Regex::new(&format!(r"\.{}\b", spec.key)).unwrap();
        if !read.is_match(&product) {
            unread.push(spec.key);
        }
        if !tested.contains(spec.key) {
            untested.push(spec.key);
        }
    }
    assert!(unread.is_empty(), "hot settings no code reads: {unread:?}");
    assert!(
        untested.is_empty(),
        "hot settings without a live behaviour test in live.rs: {untested:?}"
    );
}
