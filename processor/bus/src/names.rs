//! Redis names. The prefix `{p}` defaults to `mutt`; with Redis Cluster it is written as a
//! hash tag (`{mutt}`), so that every key of one deployment lives in one slot and the
//! multi-key scripts and transactions stay legal.

/// Consumer group of the alerters on `{p}:events`.
pub const ALERTER_GROUP: &str = "alerter";
/// Consumer group of the forwarders on `{p}:alerts`.
pub const FORWARDER_GROUP: &str = "forwarder";

/// The names of one deployment, derived from its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}:events`, written by ingest, read by the alerters.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// `{p}:alerts`, written by the alerters, read by the forwarders.
    pub fn alerts(&self) -> String {
        format!("{}:alerts", self.prefix)
    }

    /// `{p}:dlq:<group>`, the dead letters of one group.
    pub fn dlq(&self, group: &str) -> String {
        format!("{}:dlq:{group}", self.prefix)
    }

    /// `{p}:dlq:<group>:parked`: dead letters that only an operator replays (replayed too
    /// often, or refused for good), kept apart so that automatic rounds never rescan them.
    pub fn dlq_parked(&self, group: &str) -> String {
        format!("{}:dlq:{group}:parked", self.prefix)
    }

    /// `{p}:failures:<group>`: the last error of the group's entries that failed, until
    /// they are acknowledged or dead-lettered.
    pub fn failures(&self, group: &str) -> String {
        format!("{}:failures:{group}", self.prefix)
    }

    /// `{p}:ingest:idempotency`: the requests ingest appended under an `Idempotency-Key`,
    /// each until its window ends.
    pub fn idempotency(&self) -> String {
        format!("{}:ingest:idempotency", self.prefix)
    }

    /// `{p}:ingest:replication-mark`: a counter ingest increments just before each `WAIT`,
    /// so that the `WAIT` covers every earlier write (see `Bus::wait_replicas`).
    pub fn replication_mark(&self) -> String {
        format!("{}:ingest:replication-mark", self.prefix)
    }

    /// `{p}:control`, the pub/sub channel of the control plane.
    pub fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// The counter and the "triggered" marker of one host's unhandled fingerprint.
    pub fn unhandled(&self, hostname: &str, fingerprint: &str) -> (String, String) {
        let counter = format!(
            "{}:unhandled:{}:{fingerprint}",
            self.prefix,
            hostname.to_lowercase()
        );
        let triggered = format!("{counter}:triggered");
        (counter, triggered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names() {
        let n = Names::new("mutt");
        assert_eq!(n.events(), "mutt:events");
        assert_eq!(n.alerts(), "mutt:alerts");
        assert_eq!(n.dlq(ALERTER_GROUP), "mutt:dlq:alerter");
        assert_eq!(n.dlq(FORWARDER_GROUP), "mutt:dlq:forwarder");
        assert_eq!(n.control(), "mutt:control");
        assert_eq!(Names::new("{mutt}").events(), "{mutt}:events");
        assert_eq!(
            n.unhandled("Core-1", "ab").1,
            "mutt:unhandled:core-1:ab:triggered"
        );
    }
}
