//! What every `muttdev` command that talks to a running MUTT shares: the control API
//! client (its address and key), and output as humans and scripts want it (tables or
//! `--json`, colours only on a terminal and never with `NO_COLOR`, progress bars on stderr
//! only when it is a terminal).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the control API is and how to reach it (flattened into each command's args).
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// The control API's base URL.
    #[arg(
        long = "control",
        env = "MUTT_CONTROL_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub control: String,
    /// Print JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The control API of one MUTT, with the caller's key.
#[derive(Debug, Clone)]
pub struct Control {
    base: String,
    key: String,
    client: reqwest::Client,
}

/// The key file read when `MUTT_API_KEY` is not set: `$XDG_CONFIG_HOME/mutt/api-key`
/// (else `~/.config/mutt/api-key`).
pub fn key_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("mutt").join("api-key"))
}

/// Reads a key file, refusing one that others may read (it holds a credential).
pub fn read_key_file(path: &Path) -> anyhow::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} may be read by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    let key = std::fs::read_to_string(path)?.trim().to_string();
    if key.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(key)
}

impl Control {
    /// A client for `args.control`, with the key from `MUTT_API_KEY`, else the key file.
    pub fn new(args: &ControlArgs) -> anyhow::Result<Self> {
        let key = match std::env::var("MUTT_API_KEY") {
            Ok(k) if !k.is_empty() => k,
            _ => {
                let path = key_file().context("no MUTT_API_KEY and no home directory")?;
                if !path.exists() {
                    bail!(
                        "no API key: set MUTT_API_KEY or write one to {} (mode 600)",
                        path.display()
                    );
                }
                read_key_file(&path)?
            }
        };
        Ok(Self {
            base: args.control.trim_end_matches('/').to_string(),
            key,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request; returns the status and the JSON body (Null when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", &self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("the control API at {} does not answer", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// GET, failing with the API's message on anything but 2xx.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await?;
        ok_or_error(status, v)
    }

    /// A change (POST, PUT, DELETE), failing with the API's message on anything but 2xx.
    pub async fn change(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body).await?;
        ok_or_error(status, v)
    }
}

/// The body of a 2xx, else an error saying what the API said.
fn ok_or_error(status: u16, v: Value) -> anyhow::Result<Value> {
    if (200..300).contains(&status) {
        return Ok(v);
    }
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .map_or_else(|| v.to_string(), str::to_string);
    bail!("{status}: {message}")
}

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON instead of tables.
    pub json: bool,
    color: bool,
}

/// A colour for a verdict.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    /// All is well.
    Good,
    /// Worth a look.
    Warn,
    /// A problem.
    Bad,
}

impl Output {
    /// Tables (or JSON with `json`) on stdout; colours only when stdout is a terminal and
    /// `NO_COLOR` is not set.
    pub fn new(json: bool) -> Self {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, color }
    }

    /// `text` in the colour of `tone`, when colours are on.
    pub fn paint(&self, text: &str, tone: Tone) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Prints a JSON value, pretty.
    pub fn print_json(&self, v: &Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }

    /// Prints a table: a header and rows, columns padded to their widest cell.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        print!("{}", render_table(header, rows));
    }
}

/// The text of a table (cells' display width by characters; ANSI codes are not counted).
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let visible = |s: &str| {
        let mut n = 0;
        let mut esc = false;
        for c in s.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, _) => n += 1,
            }
        }
        n
    };
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| visible(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(visible(c));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(width[i] - visible(c) + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// A progress bar on stderr of `len` steps, shown only when stderr is a terminal.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{wide_bar}] {pos}/{len} ({eta} left)")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// A counter on stderr (`reading dead letters: 1400`) for work of unknown length, shown
/// only when stderr is a terminal.
pub fn spinner(what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos}") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_ignore_colour_codes() {
        let t = render_table(
            &["name", "state"],
            &[
                vec!["ingest".into(), "\x1b[32mready\x1b[0m".into()],
                vec!["alerter-1".into(), "down".into()],
            ],
        );
        assert_eq!(
            t,
            "name       state\ningest     \x1b[32mready\x1b[0m\nalerter-1  down\n"
        );
    }

    #[test]
    fn a_key_file_others_may_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("muttdev-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("api-key");
        std::fs::write(&p, "secret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(read_key_file(&p).is_err());
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(read_key_file(&p).unwrap(), "secret");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
