//! [`PrometheusServer`]: a private Prometheus scraping the test's processes, with MUTT's
//! rule files loaded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use mutt_devkit::local::free_port;

use super::which;
use crate::wait::wait_until;

/// A private Prometheus (the Debian package's binary) scraping `targets` every second,
/// with MUTT's rule files loaded.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    /// Its URL.
    pub url: String,
    dir: PathBuf,
}

impl PrometheusServer {
    /// Starts one; `targets` are `host:port` of ops listeners.
    pub async fn start(targets: &[String]) -> anyhow::Result<Self> {
        let bin = which("prometheus")
            .context("the prometheus binary is missing: install the Debian package prometheus")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("mutt-prom-{port}"));
        std::fs::create_dir_all(dir.join("data"))?;
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/mutt-slo.rules.yml\n  - {}/mutt-alerts.rules.yml\nscrape_configs:\n  - job_name: mutt\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            rules.display(),
            targets
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        wait_until("prometheus ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move {
                reqwest::get(ready)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await?;
        Ok(Self { child, url, dir })
    }
}

impl PrometheusServer {
    /// Its log and configuration, for a failing test's message.
    pub fn diagnostics(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "config:\n{}\nlog:\n{}",
            read("prometheus.yml"),
            read("prometheus.log")
        )
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept when the test failed, to read its log.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
