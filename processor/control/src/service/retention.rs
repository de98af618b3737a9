//! Retention's status: the policy in force, the last runs (of any replica or CronJob),
//! when the next scheduled run is due, and the partitions with their row estimates.

use mutt_store::retention::Partitioned;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Refused;
use crate::ControlState;
use crate::retention::{Policy, next_run};

/// Runs shown by the status.
const RUNS_SHOWN: i64 = 10;

/// The status document of `GET /api/v2/retention`.
pub async fn status(s: &ControlState) -> Result<Value, Refused> {
    let hot = s.hot.borrow().clone();
    let runs = s.store.retention_runs(RUNS_SHOWN).await?;
    let last = runs.first().map(|r| r.finished_at);
    let next = hot
        .retention_enabled
        .then(|| next_run(last, hot.retention_interval));
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    Ok(json!({
        "enabled": hot.retention_enabled,
        "interval": humantime::format_duration(hot.retention_interval).to_string(),
        "policy": Policy::from_hot(&hot),
        "last_run_at": last.map(rfc3339),
        "next_run_at": next.map(rfc3339),
        "runs": runs,
        "partitions": {
            "event_audit_log": s.store.partitions(Partitioned::EventAudit).await?,
            "event_audit_log_archive": s.store.partitions(Partitioned::Archive).await?,
        },
    }))
}
