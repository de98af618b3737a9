//! Secret rotation: each secret's phase, and the steps that move it.
//!
//! A step (stage, promote, retire, rollback; see `mutt_core::credentials`) is taken in this
//! order: check it against the stored state; before a retire, check that every live
//! process applied the promotion; make the outside system accept the change (the Redis ACL
//! user gets or loses a password, the PostgreSQL role gets its new password); store the
//! new state compare-and-set on the generation (undoing the outside change if another step
//! won the race); audit it without values; announce the name and generation.
//!
//! Values arrive in request bodies and go to the secret store only. Error messages never
//! quote the body: the body is parsed by hand, not by serde's messages, which would echo a
//! value given in the wrong field.

use std::collections::BTreeMap;
use std::time::Duration;

use mutt_bus::control::{Announcement, Applied};
use mutt_core::credentials::{CredentialState, Phase, SecretName, Step, StepError, StoredState};
use mutt_core::secret::Secret;
use mutt_store::{Actor, Change};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::Refused;
use crate::ControlState;

/// Processes not heard from for this long are not waited for.
const STALE: Duration = Duration::from_secs(30);

/// One step at a time from this process; a Redis lock covers the other replicas.
static STEPS: Mutex<()> = Mutex::const_new(());
/// The longest a step may hold the cluster-wide lock (it is released when the step ends).
const LOCK_TTL: Duration = Duration::from_secs(60);

fn bad(message: impl Into<String>) -> Refused {
    Refused::body(message)
}

fn secret_name(raw: &str) -> Result<SecretName, Refused> {
    SecretName::parse(raw).ok_or_else(|| {
        Refused::NotFound(format!(
            "no rotatable secret named {raw:?}; the secrets are {} (API keys rotate at /api/v2/keys/{{name}}/rotate)",
            SecretName::ALL.map(SecretName::as_str).join(", ")
        ))
    })
}

/// A rotation request, read without ever quoting a value back.
#[derive(Debug)]
struct RotateRequest {
    step: Step,
    value: Option<Secret>,
    reason: String,
    force: bool,
    manage_acl: bool,
}

/// Reads a rotation request from a request body.
fn parse_request(body: &[u8]) -> Result<RotateRequest, Refused> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad("the body must be a JSON object"));
    };
    for k in m.keys() {
        if !["step", "value", "reason", "force", "manage_acl"].contains(&k.as_str()) {
            // Not named: a value pasted as a key would be echoed.
            return Err(bad(
                "unknown field; the fields are step, value, reason, force, manage_acl",
            ));
        }
    }
    let text = |m: &Map<String, Value>, k: &str| -> Result<Option<String>, Refused> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{k} must be a string"))),
        }
    };
    let flag = |m: &Map<String, Value>, k: &str, default: bool| -> Result<bool, Refused> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!("{k} must be true or false"))),
        }
    };
    let step = match text(&m, "step")?.as_deref() {
        Some("stage") => Step::Stage,
        Some("promote") => Step::Promote,
        Some("retire") => Step::Retire,
        Some("rollback") => Step::Rollback,
        Some(_) => {
            return Err(bad("step must be one of stage, promote, retire, rollback"));
        }
        None => {
            return Err(bad("step is required: stage, promote, retire or rollback"));
        }
    };
    let value = text(&m, "value")?.map(Secret::new);
    if value.is_some() && step != Step::Stage {
        return Err(bad("value is given with stage only"));
    }
    let reason = text(&m, "reason")?
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad("reason: a reason is required for a rotation step"))?;
    if reason.chars().count() > 1000 {
        return Err(bad("reason: at most 1000 characters"));
    }
    if reason.contains('\0') {
        return Err(bad("text must not contain NUL characters"));
    }
    Ok(RotateRequest {
        step,
        value,
        reason,
        force: flag(&m, "force", false)?,
        manage_acl: flag(&m, "manage_acl", true)?,
    })
}

/// What a step or a listing starts from: the stored states and every live process's report.
async fn world(
    s: &ControlState,
) -> Result<(BTreeMap<SecretName, StoredState>, Vec<Applied>), Refused> {
    let stored = s.bus.secret_states().await?;
    let applied = s.bus.applied_versions(STALE, mutt_core::now_ms()).await?;
    Ok((stored, applied))
}

/// The state a step starts from, and the stored generation to compare-and-set against
/// (0: nothing stored). Nothing stored (never rotated, or the hash was lost): this
/// process's value in use, as a stable state whose generation is above every generation a
/// process reports, so that every process adopts what the step stores.
fn state_of(
    s: &ControlState,
    name: SecretName,
    stored: &BTreeMap<SecretName, StoredState>,
    applied: &[Applied],
) -> Option<(CredentialState, i64)> {
    if let Some(st) = stored.get(&name) {
        let st = CredentialState::from(st.clone());
        let g = st.generation;
        return Some((st, g));
    }
    let own = s.credentials.state(name)?;
    let reported = applied
        .iter()
        .filter_map(|a| a.generations.get(name.as_str()).copied())
        .max()
        .unwrap_or(0);
    let generation = own.generation.max(reported);
    Some((CredentialState::stable(own.active().clone(), generation), 0))
}

fn describe(name: SecretName, st: &CredentialState) -> Value {
    json!({
        "name": name.as_str(),
        "phase": st.phase.as_str(),
        "generation": st.generation,
        "changed_at": mutt_core::rfc3339_ms(st.changed_ms),
        "accepted_values": st.accepted().len(),
        "next_step": match st.phase {
            Phase::Stable => "stage",
            Phase::Staged => "promote",
            Phase::Promoted => "retire",
        },
    })
}

/// Each secret's phase and generation, and the generation every live process applied.
/// Never a value.
pub async fn list(s: &ControlState) -> Result<Vec<Value>, Refused> {
    let (stored, applied) = world(s).await?;
    let mut out = Vec::new();
    for name in SecretName::ALL {
        let Some((st, _)) = state_of(s, name, &stored, &applied) else {
            out.push(json!({"name": name.as_str(), "configured": false}));
            continue;
        };
        let mut d = describe(name, &st);
        let processes: Vec<Value> = applied
            .iter()
            .map(|a| {
                json!({
                    "consumer": a.consumer,
                    "roles": a.roles,
                    "generation": a.generations.get(name.as_str()),
                })
            })
            .collect();
        let converged = applied.iter().all(|a| {
            a.generations
                .get(name.as_str())
                .is_some_and(|g| *g >= st.generation)
        });
        if let Value::Object(m) = &mut d {
            m.insert("configured".into(), Value::Bool(true));
            m.insert("converged".into(), Value::Bool(converged));
            m.insert("processes".into(), Value::Array(processes));
        }
        out.push(d);
    }
    Ok(out)
}

/// An outside system refused its part of a step.
fn upstream(what: &str, e: impl std::fmt::Display, hint: &str) -> Refused {
    tracing::warn!(error = %e, "secret rotation: {what} failed");
    Refused::Upstream(format!("{what} failed: {e}. {hint}"))
}

/// What the outside systems must do for a step, and how to undo it.
enum Effect {
    AclAdd(String, Secret),
    AclRemove(String, Secret),
    DbPassword(Secret),
}

async fn run_effect(s: &ControlState, e: &Effect) -> Result<(), Refused> {
    const ACL_HINT: &str = "Give MUTT's Redis user the ACL SETUSER permission (+acl|setuser), or change the ACL yourself and pass \"manage_acl\": false";
    match e {
        Effect::AclAdd(user, pw) => s
            .bus
            .acl_add_password(user, pw)
            .await
            .map_err(|e| upstream("adding the password to the Redis ACL user", e, ACL_HINT)),
        Effect::AclRemove(user, pw) => s
            .bus
            .acl_remove_password(user, pw)
            .await
            .map_err(|e| upstream("removing the password from the Redis ACL user", e, ACL_HINT)),
        Effect::DbPassword(pw) => s.store.set_own_password(pw).await.map_err(|e| {
            upstream(
                "setting the PostgreSQL role's password",
                e,
                "The role needs to be allowed to change its own password (the default for a login role)",
            )
        }),
    }
}

fn undo(e: Effect) -> Option<Effect> {
    match e {
        Effect::AclAdd(u, p) => Some(Effect::AclRemove(u, p)),
        Effect::AclRemove(u, p) => Some(Effect::AclAdd(u, p)),
        // The previous password is the one to restore; the caller knows it.
        Effect::DbPassword(_) => None,
    }
}

/// Takes one rotation step of secret `raw` (the path's name), as the request `body`
/// says.
pub async fn rotate(
    s: &ControlState,
    raw: &str,
    body: &[u8],
    actor: impl FnOnce(String) -> Actor,
    cid: &str,
) -> Result<Value, Refused> {
    let name = secret_name(raw)?;
    let req = parse_request(body)?;
    let _one_at_a_time = STEPS.lock().await;
    // One step at a time across control replicas too: a client retrying a step against
    // another replica must not run it twice (the loser's undo would reverse the winner).
    let lock = format!("secrets:{name}");
    let owner = format!("{}:{cid}", uuid::Uuid::new_v4());
    if !s.bus.try_lock(&lock, &owner, LOCK_TTL).await? {
        return Err(Refused::Conflict {
            code: "conflict",
            message: format!("another {name} rotation step is in progress: retry in a few seconds"),
            retry_after: Some(2),
            details: None,
        });
    }
    let result = step(s, name, req, actor).await;
    if let Err(e) = s.bus.unlock(&lock, &owner).await {
        tracing::warn!(error = %e, "releasing the rotation lock (it expires by itself)");
    }
    result
}

async fn step(
    s: &ControlState,
    name: SecretName,
    req: RotateRequest,
    actor: impl FnOnce(String) -> Actor,
) -> Result<Value, Refused> {
    let (stored, applied) = world(s).await?;
    let Some((state, expected)) = state_of(s, name, &stored, &applied) else {
        return Err(Refused::Conflict {
            code: "not_configured",
            message: format!(
                "{name} is not configured in MUTT (no value at start and none stored): there is nothing to rotate"
            ),
            retry_after: None,
            details: None,
        });
    };
    let now = mutt_core::now_ms();
    let next = state
        .apply(name, req.step, req.value, now)
        .map_err(|e| match e {
            StepError::WrongPhase { .. } => Refused::Conflict {
                code: "wrong_phase",
                message: e.to_string(),
                retry_after: None,
                details: Some(json!({"secret": describe(name, &state)})),
            },
            other => bad(other.to_string()),
        })?;

    // Each step builds on the previous one having reached every live process: promoting
    // before all know the new value, or retiring before all use it, would leave a process
    // with a value the other side no longer takes.
    if matches!(req.step, Step::Promote | Step::Retire) && !req.force {
        let lagging: Vec<String> = applied
            .iter()
            .filter(|a| {
                a.generations
                    .get(name.as_str())
                    .is_none_or(|g| *g < state.generation)
            })
            .map(|a| a.consumer.clone())
            .collect();
        if !lagging.is_empty() {
            return Err(Refused::Conflict {
                code: "not_converged",
                message: format!(
                    "{} process(es) have not applied generation {} of {name} yet: {}. Wait a few seconds (GET /api/v2/secrets shows progress), or pass \"force\": true",
                    lagging.len(),
                    state.generation,
                    lagging.join(", ")
                ),
                retry_after: Some(2),
                details: None,
            });
        }
    }

    let acl_user = if name == SecretName::RedisPassword && req.manage_acl {
        match s.bus.auth() {
            Some(a) => Some(a.username().to_string()),
            None => Some(s.bus.acl_whoami().await?),
        }
    } else {
        None
    };
    let effect = match (name, req.step, state.phase) {
        (SecretName::RedisPassword, Step::Stage, _) => acl_user
            .zip(next.next.clone())
            .map(|(u, p)| Effect::AclAdd(u, p)),
        (SecretName::RedisPassword, Step::Retire, _) => {
            acl_user.map(|u| Effect::AclRemove(u, state.current.clone()))
        }
        (SecretName::RedisPassword, Step::Rollback, Phase::Staged) => acl_user
            .zip(state.next.clone())
            .map(|(u, p)| Effect::AclRemove(u, p)),
        (SecretName::DatabasePassword, Step::Promote, _) => {
            Some(Effect::DbPassword(next.active().clone()))
        }
        (SecretName::DatabasePassword, Step::Rollback, Phase::Promoted) => {
            Some(Effect::DbPassword(next.active().clone()))
        }
        _ => None,
    };
    if let Some(e) = &effect {
        run_effect(s, e).await?;
    }

    let stored = s
        .bus
        .put_secret_state(name, &StoredState::from(&next), expected)
        .await;
    let conflict = match stored {
        Ok(Ok(())) => None,
        Ok(Err(c)) => Some(Refused::conflict(format!(
            "{name} changed while this step ran (generation {} now): read it again and retry",
            c.found
        ))),
        // The write may have landed before the connection failed: look before undoing.
        Err(e) => match s.bus.secret_states().await {
            Ok(now) if now.get(&name) == Some(&StoredState::from(&next)) => None,
            _ => Some(Refused::from(e)),
        },
    };
    if let Some(err) = conflict {
        // Put the outside system back as it was.
        let back = match effect {
            Some(Effect::DbPassword(_)) => Some(Effect::DbPassword(state.active().clone())),
            Some(e) => undo(e),
            None => None,
        };
        if let Some(b) = back
            && let Err(e) = run_effect(s, &b).await
        {
            tracing::error!(secret = %name, error = ?e, "secret rotation: undoing the outside change failed");
        }
        return Err(err);
    }

    // Announced before the audit row is written: a PostgreSQL password changed by this
    // step refuses the old one from now on, and every process should switch before it
    // needs a new connection.
    s.announce(Announcement::Secrets {
        name: name.as_str().to_string(),
        generation: next.generation,
    })
    .await;
    // This process follows at once rather than at its next poll.
    s.credentials
        .apply_stored(std::iter::once((name, StoredState::from(&next))).collect());

    let actor = actor(req.reason);
    let change = Change {
        operation: "ROTATE",
        table: "secrets",
        record_id: None,
        record_key: Some(name.as_str()),
        old: Some(json!({"phase": state.phase.as_str(), "generation": state.generation})),
        new: Some(json!({
            "step": req.step.as_str(),
            "phase": next.phase.as_str(),
            "generation": next.generation,
            "forced": req.force,
            "acl_managed": name == SecretName::RedisPassword && req.manage_acl,
        })),
    };
    if let Err(e) = s.store.record_change(&actor, &change).await {
        // The step happened; losing its audit row must be loud, not a failed request
        // that an operator would retry into a second step.
        tracing::error!(secret = %name, step = req.step.as_str(), error = %e, "secret rotation step not audited");
    }
    tracing::info!(secret = %name, step = req.step.as_str(), generation = next.generation, who = %actor.who, "secret rotation step");
    Ok(describe(name, &next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_without_quoting_values() {
        let r = parse_request(br#"{"step":"stage","value":"n3xt","reason":"quarterly"}"#).unwrap();
        assert_eq!(r.step, Step::Stage);
        assert_eq!(r.value.as_ref().map(Secret::expose), Some("n3xt"));
        assert!(r.manage_acl && !r.force);
        for (body, expect) in [
            (
                &br#"{"step":"promote","value":"n3xt","reason":"x"}"#[..],
                "value is given with stage only",
            ),
            (
                br#"{"step":"stage","value":"n3xt","reason":"x","force":"n3xt"}"#,
                "force must be true or false",
            ),
            (br#"{"step":"n3xt","reason":"x"}"#, "step must be one of"),
            (br#"{"step":"stage","value":"n3xt"}"#, "reason"),
            (
                br#"{"step":"stage","value":"n3xt","reason":"x","n3xt":1}"#,
                "unknown field",
            ),
            (br#"["n3xt"]"#, "JSON object"),
            (
                br#"{"step":"stage","value":7,"reason":"x"}"#,
                "value must be a string",
            ),
        ] {
            let e = mutt_worker::http::ApiError::from(parse_request(body).err().unwrap());
            assert!(e.message.contains(expect), "{}", e.message);
            assert!(!e.message.contains("n3xt"), "{}", e.message);
        }
    }

    #[test]
    fn unknown_secrets_list_the_known_ones() {
        let e = mutt_worker::http::ApiError::from(secret_name("vault").unwrap_err());
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        assert!(
            e.message
                .contains("redis_password, database_password, webhook_token, snmp_communities")
        );
    }
}
