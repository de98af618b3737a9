//! The webhook: reachable (`HEAD` only, never an event).

use super::*;

/// The webhook answers a HEAD (any HTTP answer will do: it is reachable). Never an event.
pub(super) async fn webhook_check(url: Option<&str>) -> Check {
    const NAME: &str = "webhook";
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        return row(
            NAME,
            Verdict::Warn,
            "MUTT_WEBHOOK_URL is not set: the forwarder needs it",
            "set MUTT_WEBHOOK_URL (or --webhook-url) to the AIOps endpoint (muttdev sink is a \
             stand-in)",
        );
    };
    let shown = mutt_core::url::redact(url);
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return row(NAME, Verdict::Warn, format!("not checked: {e}"), ""),
    };
    match client.head(url).send().await {
        Ok(r) if r.status().is_server_error() => row(
            NAME,
            Verdict::Warn,
            format!("{shown} answers HEAD with {}", r.status()),
            "check the webhook's health: the forwarders retry 5xx and hold alerts meanwhile",
        ),
        Ok(r) => ok(NAME, format!("{shown} answers (HEAD: {})", r.status())),
        Err(e) => row(
            NAME,
            Verdict::Fail,
            format!(
                "{shown} does not answer: {}",
                mutt_core::url::redact(&chain(&e))
            ),
            "check the URL, DNS, TLS and firewalls from where the forwarders run",
        ),
    }
}

/// An error with its causes, `a: b: c`.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
