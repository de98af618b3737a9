//! Alert rules: validated with the engine's own checks, written with their audit row,
//! announced so that every alerter reloads at once; and [`test()`]: which rule an event
//! matches and why, changing nothing.

use mutt_bus::control::Announcement;
use mutt_core::codec;
use mutt_core::event::{Envelope, Event, Limits, validate};
use mutt_core::rules::explain::{Verdict, explain};
use mutt_core::rules::{MatchType, Rule};
use mutt_store::Actor;
use mutt_store::rules::RuleRow;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Refused;
use crate::ControlState;
use crate::extract::reason;

/// A rule as a client sends it (every field optional: creation fills defaults, an update
/// keeps what is not given).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    #[serde(default, deserialize_with = "present")]
    match_string: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    trap_oid: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    syslog_severity: Option<Option<Value>>,
    match_type: Option<String>,
    priority: Option<i32>,
    prod_handling: Option<String>,
    dev_handling: Option<String>,
    team_assignment: Option<String>,
    is_active: Option<bool>,
    reason: Option<String>,
}

/// Tells "absent" (None: keep) from "null" (Some(None): clear).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl RuleBody {
    /// Applies the body to `base` (a new rule's defaults, or the stored rule) and checks
    /// the result; returns it with the reason given.
    fn apply(self, mut base: Rule) -> Result<(Rule, Option<String>), Refused> {
        if let Some(v) = self.match_string {
            base.match_string = v;
        }
        if let Some(v) = self.trap_oid {
            base.trap_oid = v;
        }
        if let Some(v) = self.syslog_severity {
            base.syslog_severity = match v {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(
                    n.as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| {
                            Refused::invalid("syslog_severity", "not an integer from 0 to 7")
                        })?,
                ),
                Some(Value::String(s)) => Some(
                    mutt_core::severity::SyslogSeverity::parse(&s)
                        .ok_or_else(|| {
                            Refused::invalid(
                                "syslog_severity",
                                format!("{s:?} is neither 0–7 nor a syslog name"),
                            )
                        })?
                        .number()
                        .into(),
                ),
                Some(_) => {
                    return Err(Refused::invalid(
                        "syslog_severity",
                        "a number or a syslog name",
                    ));
                }
            };
        }
        if let Some(v) = self.match_type {
            base.match_type = v
                .parse::<MatchType>()
                .map_err(|e| Refused::invalid("match_type", e.message))?;
        }
        if let Some(v) = self.priority {
            base.priority = v;
        }
        if let Some(v) = self.prod_handling {
            base.prod_handling = v;
        }
        if let Some(v) = self.dev_handling {
            base.dev_handling = v;
        }
        if let Some(v) = self.team_assignment {
            base.team_assignment = v;
        }
        if let Some(v) = self.is_active {
            base.is_active = v;
        }
        if let Some(s) = &base.match_string
            && s.chars().count() > 1000
        {
            return Err(Refused::invalid("match_string", "at most 1000 characters"));
        }
        base.validate()
            .map_err(|e| Refused::invalid(e.field, e.message))?;
        let r = reason(self.reason, false)?;
        Ok((base, r))
    }
}

/// The defaults of a new rule (MUTT v2's).
fn new_rule() -> Rule {
    Rule {
        id: 0,
        match_string: None,
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: 100,
        prod_handling: String::new(),
        dev_handling: String::new(),
        team_assignment: String::new(),
        is_active: true,
    }
}

/// A rule id from a path.
pub fn rule_id(raw: &str) -> Result<i32, Refused> {
    raw.parse::<i32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Refused::bad(format!("id: {raw:?} is not a rule id")))
}

fn not_found(id: i32) -> Refused {
    Refused::NotFound(format!("no rule {id}"))
}

/// Every rule, in priority order.
pub async fn list(s: &ControlState) -> Result<Vec<RuleRow>, Refused> {
    Ok(s.store.list_rules().await?)
}

/// One rule.
pub async fn get(s: &ControlState, id: i32) -> Result<RuleRow, Refused> {
    s.store.get_rule(id).await?.ok_or_else(|| not_found(id))
}

/// Creates a rule from `body` (defaults for what it does not give).
pub async fn create(
    s: &ControlState,
    body: RuleBody,
    actor: impl FnOnce(Option<String>) -> Actor,
) -> Result<RuleRow, Refused> {
    let (rule, why) = body.apply(new_rule())?;
    let stored = s.store.create_rule(&rule, &actor(why)).await?;
    s.announce(Announcement::Rules).await;
    Ok(stored)
}

/// Changes the fields of rule `id` that `body` gives.
pub async fn update(
    s: &ControlState,
    id: i32,
    body: RuleBody,
    actor: impl FnOnce(Option<String>) -> Actor,
) -> Result<RuleRow, Refused> {
    let current = get(s, id).await?;
    let (rule, why) = body.apply(current.rule)?;
    let stored = s
        .store
        .update_rule(id, &rule, &actor(why))
        .await?
        .ok_or_else(|| not_found(id))?;
    s.announce(Announcement::Rules).await;
    Ok(stored)
}

/// Deletes rule `id`; returns it as it was.
pub async fn delete(s: &ControlState, id: i32, actor: Actor) -> Result<RuleRow, Refused> {
    let old = s
        .store
        .delete_rule(id, &actor)
        .await?
        .ok_or_else(|| not_found(id))?;
    s.announce(Announcement::Rules).await;
    Ok(old)
}

/// What `POST /api/v2/rules/test` is given: an event as ingest takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    event: Value,
}

/// Validates `raw` exactly as ingest does (default limits, the encoded size included); a
/// refusal names the field (`event.timestamp`).
fn test_event(raw: Value, cid: &str) -> Result<Event, Refused> {
    let envelope = Envelope {
        id: "rules-test".into(),
        correlation_id: cid.to_string(),
        received_at_ms: mutt_core::now_ms(),
    };
    let limits = Limits::default();
    let named = |field: &str| {
        if field == "event" {
            "event".to_string()
        } else {
            format!("event.{field}")
        }
    };
    let event = validate(raw, envelope, &limits)
        .map_err(|e| Refused::invalid(&named(&e.field), e.message))?;
    let size = codec::encode_event(&event)
        .map_err(|e| Refused::invalid("event", e.to_string()))?
        .len();
    if size > limits.max_event_bytes {
        return Err(Refused::invalid(
            "event",
            format!(
                "the event takes {size} bytes; the limit is {}",
                limits.max_event_bytes
            ),
        ));
    }
    Ok(event)
}

/// Which rule `body`'s event matches and why: every rule (inactive ones too) in the order
/// the alerters try them, with its outcome, and the verdict; for an unhandled event its
/// fingerprint and where its counter stands. Nothing is sent, written or audited.
pub async fn test(s: &ControlState, body: TestBody, cid: &str) -> Result<Value, Refused> {
    let event = test_event(body.event, cid)?;
    let rules: Vec<Rule> = s
        .store
        .list_rules()
        .await?
        .into_iter()
        .map(|r| r.rule)
        .collect();
    let dev_hosts = s.store.list_dev_hosts().await?;
    let teams = s.store.list_teams().await?;
    let hot = s.hot.borrow().clone();
    let x = explain(
        &rules,
        &dev_hosts,
        &teams,
        &hot.unhandled_default_team,
        &event,
    );
    let counter = match &x.verdict {
        Verdict::Unhandled { fingerprint, .. } => {
            let c = s.bus.unhandled_count(&event.hostname, fingerprint).await?;
            Some(json!({
                "count": c.count,
                "threshold": hot.unhandled_threshold,
                "window": hot.get("unhandled_window").unwrap_or_default(),
                "window_left_ms": c.window_left_ms,
                "silenced": c.silenced_by.is_some(),
                "silence_left_ms": c.silence_left_ms,
            }))
        }
        Verdict::Handled { .. } => None,
    };
    let mut answer = serde_json::to_value(&x).map_err(|e| Refused::bad(e.to_string()))?;
    if let Value::Object(m) = &mut answer {
        m.insert("event".into(), event.to_json());
        if let Some(c) = counter {
            m.insert("counter".into(), c);
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_event_is_validated_as_ingest_does() {
        let ok = test_event(
            json!({"hostname": "r1", "message": "x", "timestamp": "2026-11-26T10:00:00Z",
                   "syslog_severity": "critical", "trap_oid": ".1.3.6"}),
            "c",
        )
        .unwrap();
        assert_eq!(ok.syslog_severity, Some(2));
        assert_eq!(ok.trap_oid.as_deref(), Some("1.3.6"));
        for (bad, field) in [
            (json!({"hostname": "r1", "message": "x"}), "event.timestamp"),
            (
                json!({"hostname": "r1", "message": "x", "timestamp": "yesterday"}),
                "event.timestamp",
            ),
            (
                json!({"hostname": "r1", "message": "x", "timestamp": "2026-11-26T10:00:00Z",
                       "syslog_severity": 9}),
                "event.syslog_severity",
            ),
            (json!([1]), "event"),
        ] {
            match test_event(bad, "c") {
                Err(Refused::Invalid { details, .. }) => {
                    assert_eq!(details, Some(json!({"field": field})));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
