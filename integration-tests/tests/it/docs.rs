//! Documentation moves with the code: every setting the code reads is in the README.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
}

/// The README's two settings tables are the registries' rows, in order: a setting added,
/// renamed, re-defaulted or re-described in code must be in the README the same way.
#[test]
fn the_readme_documents_every_setting() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let rows = |header: &str| -> Vec<String> {
        let at = readme
            .find(header)
            .unwrap_or_else(|| panic!("{header:?} in README.md"));
        readme[at..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(str::to_string)
            .collect()
    };
    let static_rows: Vec<String> = mutt_core::settings::REGISTRY
        .iter()
        .map(|s| s.readme_row())
        .collect();
    let hot_rows: Vec<String> = mutt_core::hot::REGISTRY
        .iter()
        .map(|s| {
            format!(
                "| `{}` | `{}` | {} | {} |",
                s.env(),
                s.default,
                if s.roles.len() == 4 {
                    "all".to_string()
                } else {
                    s.roles.join(", ")
                },
                s.help
            )
        })
        .collect();
    assert!(static_rows.len() > 30 && hot_rows.len() > 20);
    assert_eq!(
        rows("| variable | default | meaning |"),
        static_rows,
        "README.md's settings table; expected:\n{}",
        static_rows.join("\n")
    );
    assert_eq!(
        rows("| variable | default | read by | meaning |"),
        hot_rows,
        "README.md's hot settings table; expected:\n{}",
        hot_rows.join("\n")
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

/// The modules a Rust file declares in files of their own (`mod x;`), tests excepted.
fn declared_modules(src: &str) -> Vec<String> {
    let re = regex::Regex::new(r"(?m)^(?:pub(?:\([a-z]+\))? )?mod ([a-z_0-9]+);").unwrap();
    re.captures_iter(src)
        .map(|c| c[1].to_string())
        .filter(|m| m != "tests")
        .collect()
}

/// The names a `# Layout` section of module docs lists: each bullet
/// (`//! - [`a`], `b`: what they hold`) names its modules before the first colon.
fn layout_names(src: &str) -> Option<Vec<String>> {
    let docs: Vec<&str> = src
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let start = docs.iter().position(|l| *l == "# Layout")?;
    let name = regex::Regex::new(r"`([a-z_0-9]+)`").unwrap();
    Some(
        docs[start + 1..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("- "))
            .filter_map(|l| l.split_once(':').map(|(names, _)| names))
            .flat_map(|names| name.captures_iter(names).map(|c| c[1].to_string()))
            .collect(),
    )
}

/// A guide that has drifted misleads more than none: every crate's root (and every module
/// with modules of its own) lists each of its modules, and only those, in a `# Layout`
/// section of its docs.
#[test]
fn every_module_is_in_its_layout_section() {
    let mut files = Vec::new();
    sources(&repo().join("processor"), &mut files);
    sources(&repo().join("integration-tests/src"), &mut files);
    let mut problems = Vec::new();
    let mut roots = 0;
    for file in &files {
        let src = std::fs::read_to_string(file).expect("source");
        let declared = declared_modules(&src);
        let is_root = file.ends_with("src/lib.rs") || file.ends_with("src/main.rs");
        roots += usize::from(is_root);
        if declared.is_empty() && !is_root {
            continue;
        }
        let shown = file.strip_prefix(repo()).unwrap_or(file).display();
        let Some(listed) = layout_names(&src) else {
            problems.push(format!("{shown}: no # Layout section"));
            continue;
        };
        for m in &declared {
            if !listed.contains(m) {
                problems.push(format!("{shown}: module {m} is not in # Layout"));
            }
        }
        for m in &listed {
            if !declared.contains(m) {
                problems.push(format!(
                    "{shown}: # Layout lists {m}, which is not a module"
                ));
            }
        }
    }
    assert!(roots >= 10, "{roots} crate roots found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every ADR names the modules it governs, and every path it names exists.
#[test]
fn every_adr_names_modules_that_exist() {
    let path = regex::Regex::new(r"`((?:processor|integration-tests)/[A-Za-z0-9_./-]+)`").unwrap();
    let mut problems = Vec::new();
    let mut adrs = 0;
    for entry in std::fs::read_dir(repo().join("adr"))
        .expect("adr/")
        .flatten()
    {
        let p = entry.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".md") || !name.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        adrs += 1;
        let text = std::fs::read_to_string(&p).expect("adr");
        let named: Vec<String> = path
            .captures_iter(&text)
            .map(|c| c[1].to_string())
            .collect();
        if named.is_empty() {
            problems.push(format!("{name}: names no module it governs"));
        }
        for n in named {
            if !repo().join(n.trim_end_matches('/')).exists() {
                problems.push(format!("{name}: {n} does not exist"));
            }
        }
    }
    assert!(adrs >= 10, "{adrs} ADRs found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
