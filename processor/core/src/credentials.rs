//! Credentials with an overlap: CURRENT, and during a rotation NEXT.
//!
//! A rotation moves a secret through three steps, each announced to every process:
//!
//! 1. **stage**: NEXT becomes known everywhere; CURRENT stays in use. Systems that can hold
//!    two credentials at once are told to accept NEXT as well (a Redis ACL user gets the
//!    second password).
//! 2. **promote**: NEXT is used for everything new (new connections, live re-authentication,
//!    webhook requests); CURRENT is still accepted and tried as a fallback.
//! 3. **retire**: CURRENT is dropped; NEXT becomes CURRENT. Systems stop accepting the old
//!    value.
//!
//! `rollback` undoes the last step that can be undone (promoted → staged, staged → stable).
//! Every step raises the generation, which each process reports so that an operator sees
//! when a step has reached every pod. This module is the state machine; storing and
//! distributing states is the control plane's job.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The secrets MUTT rotates through the control plane. API keys rotate through their own
/// endpoint (`/api/v2/keys/{name}/rotate`): each key is its own credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretName {
    /// The password of MUTT's Redis ACL user.
    RedisPassword,
    /// The password of MUTT's PostgreSQL role.
    DatabasePassword,
    /// The bearer token sent to the webhook.
    WebhookToken,
    /// The SNMP communities the trap listener accepts (a comma-separated list: every
    /// community of CURRENT and NEXT is accepted during a rotation).
    SnmpCommunities,
}

impl SecretName {
    /// Every rotatable secret.
    pub const ALL: [SecretName; 4] = [
        SecretName::RedisPassword,
        SecretName::DatabasePassword,
        SecretName::WebhookToken,
        SecretName::SnmpCommunities,
    ];

    /// The name in the API, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RedisPassword => "redis_password",
            Self::DatabasePassword => "database_password",
            Self::WebhookToken => "webhook_token",
            Self::SnmpCommunities => "snmp_communities",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

impl std::fmt::Display for SecretName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// One value, in use.
    Stable,
    /// NEXT known everywhere, CURRENT in use.
    Staged,
    /// NEXT in use, CURRENT still accepted.
    Promoted,
}

impl Phase {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Staged => "staged",
            Self::Promoted => "promoted",
        }
    }
}

/// A rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Make NEXT known.
    Stage,
    /// Use NEXT.
    Promote,
    /// Drop CURRENT.
    Retire,
    /// Undo the last undoable step.
    Rollback,
}

impl Step {
    /// The name in the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stage => "stage",
            Self::Promote => "promote",
            Self::Retire => "retire",
            Self::Rollback => "rollback",
        }
    }
}

/// Why a step cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The step does not apply in this phase.
    #[error("cannot {step} {name}: the rotation is {phase}{hint}", step = .step.as_str(), phase = .phase.as_str())]
    WrongPhase {
        /// The secret.
        name: SecretName,
        /// The step asked for.
        step: Step,
        /// The phase it is in.
        phase: Phase,
        /// What to do instead.
        hint: &'static str,
    },
    /// Stage needs a value.
    #[error("stage needs the new value of {0}")]
    MissingValue(SecretName),
    /// The new value is unusable.
    #[error("the new value of {name} is unusable: {why}")]
    BadValue {
        /// The secret.
        name: SecretName,
        /// Why (never the value).
        why: &'static str,
    },
}

/// The longest value accepted (a token or password; the webhook header and the Redis AUTH
/// must stay small).
pub const MAX_SECRET_BYTES: usize = 4096;

/// Checks a new secret value. Control characters would break headers and protocols.
pub fn check_value(name: SecretName, value: &str) -> Result<(), StepError> {
    let bad = |why| Err(StepError::BadValue { name, why });
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.len() > MAX_SECRET_BYTES {
        return bad("it is longer than 4096 bytes");
    }
    if value.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    if value.trim() != value {
        return bad("it starts or ends with white space");
    }
    if name == SecretName::RedisPassword
        && (value.contains(' ') || value.starts_with(['>', '<', '#', '!']))
    {
        // ACL SETUSER takes `>password`; spaces would split the rule.
        return bad("a Redis password cannot contain spaces or start with > < # !");
    }
    Ok(())
}

/// One secret's state. `Debug` never shows the values ([`Secret`] redacts itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialState {
    /// Raised by every step; 0 for a value that came from the environment or a file and
    /// was never rotated through the control plane.
    pub generation: i64,
    /// Where the rotation stands.
    pub phase: Phase,
    /// The value in use (Stable, Staged) or still accepted (Promoted).
    pub current: Secret,
    /// The new value (Staged, Promoted).
    pub next: Option<Secret>,
    /// When the last step was taken, ms since the epoch.
    pub changed_ms: i64,
}

impl CredentialState {
    /// A value that is not being rotated.
    pub fn stable(value: Secret, generation: i64) -> Self {
        Self {
            generation,
            phase: Phase::Stable,
            current: value,
            next: None,
            changed_ms: crate::now_ms(),
        }
    }

    /// The value to use for anything new.
    pub fn active(&self) -> &Secret {
        match (self.phase, &self.next) {
            (Phase::Promoted, Some(n)) => n,
            _ => &self.current,
        }
    }

    /// The other accepted value during a rotation: tried once when the active one is
    /// refused (a webhook answering 401 while it has not switched yet, or has already).
    pub fn fallback(&self) -> Option<&Secret> {
        match (self.phase, &self.next) {
            (Phase::Promoted, Some(_)) => Some(&self.current),
            (Phase::Staged, Some(n)) => Some(n),
            _ => None,
        }
    }

    /// Every value accepted now (active first).
    pub fn accepted(&self) -> Vec<&Secret> {
        std::iter::once(self.active())
            .chain(self.fallback())
            .collect()
    }

    /// The state after `step`, for secret `name`. `value` is the new value (stage only).
    pub fn apply(
        &self,
        name: SecretName,
        step: Step,
        value: Option<Secret>,
        now_ms: i64,
    ) -> Result<Self, StepError> {
        let wrong = |hint| {
            Err(StepError::WrongPhase {
                name,
                step,
                phase: self.phase,
                hint,
            })
        };
        let (phase, current, next) = match (step, self.phase) {
            (Step::Stage, Phase::Stable) => {
                let v = value.ok_or(StepError::MissingValue(name))?;
                check_value(name, v.expose())?;
                if v == self.current {
                    return Err(StepError::BadValue {
                        name,
                        why: "it is the value in use",
                    });
                }
                (Phase::Staged, self.current.clone(), Some(v))
            }
            (Step::Stage, _) => return wrong(" (finish it with retire, or undo it with rollback)"),
            (Step::Promote, Phase::Staged) => {
                (Phase::Promoted, self.current.clone(), self.next.clone())
            }
            (Step::Promote, Phase::Stable) => return wrong(" (stage a new value first)"),
            (Step::Promote, Phase::Promoted) => return wrong(" (retire the old value next)"),
            (Step::Retire, Phase::Promoted) => {
                let Some(n) = self.next.clone() else {
                    return wrong(" (the state has no new value)");
                };
                (Phase::Stable, n, None)
            }
            (Step::Retire, Phase::Staged) => return wrong(" (promote it first)"),
            (Step::Retire, Phase::Stable) => return wrong(" (there is nothing to retire)"),
            (Step::Rollback, Phase::Promoted) => {
                (Phase::Staged, self.current.clone(), self.next.clone())
            }
            (Step::Rollback, Phase::Staged) => (Phase::Stable, self.current.clone(), None),
            (Step::Rollback, Phase::Stable) => {
                return wrong(" (a retired value cannot come back: rotate again)");
            }
        };
        Ok(Self {
            generation: self.generation + 1,
            phase,
            current,
            next,
            changed_ms: now_ms,
        })
    }
}

/// The stored form of a state, with the values. It lives only in the secret store and in
/// process memory; it is never logged, announced or audited.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// See [`CredentialState::generation`].
    pub generation: i64,
    /// See [`CredentialState::phase`].
    pub phase: Phase,
    /// The current value.
    pub current: String,
    /// The next value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// See [`CredentialState::changed_ms`].
    pub changed_ms: i64,
}

impl std::fmt::Debug for StoredState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredState")
            .field("generation", &self.generation)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl From<&CredentialState> for StoredState {
    fn from(s: &CredentialState) -> Self {
        Self {
            generation: s.generation,
            phase: s.phase,
            current: s.current.expose().to_string(),
            next: s.next.as_ref().map(|n| n.expose().to_string()),
            changed_ms: s.changed_ms,
        }
    }
}

impl From<StoredState> for CredentialState {
    fn from(s: StoredState) -> Self {
        // A promoted or staged state without a new value cannot be used as such.
        let phase = if s.next.is_none() {
            Phase::Stable
        } else {
            s.phase
        };
        Self {
            generation: s.generation,
            phase,
            current: Secret::new(s.current),
            next: s.next.map(Secret::new),
            changed_ms: s.changed_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: &str) -> Secret {
        Secret::new(v)
    }

    #[test]
    fn a_full_rotation_moves_use_then_drops_the_old_value() {
        let n = SecretName::WebhookToken;
        let a = CredentialState::stable(s("old-token"), 0);
        assert_eq!(a.accepted(), vec![&s("old-token")]);
        let b = a.apply(n, Step::Stage, Some(s("new-token")), 1).unwrap();
        assert_eq!((b.phase, b.generation), (Phase::Staged, 1));
        assert_eq!(b.active(), &s("old-token"));
        assert_eq!(b.fallback(), Some(&s("new-token")));
        let c = b.apply(n, Step::Promote, None, 2).unwrap();
        assert_eq!(c.active(), &s("new-token"));
        assert_eq!(c.fallback(), Some(&s("old-token")));
        let d = c.apply(n, Step::Retire, None, 3).unwrap();
        assert_eq!(d.accepted(), vec![&s("new-token")]);
        assert_eq!((d.phase, d.generation), (Phase::Stable, 3));
    }

    #[test]
    fn steps_out_of_order_say_what_to_do() {
        let n = SecretName::RedisPassword;
        let a = CredentialState::stable(s("p1"), 4);
        let e = a.apply(n, Step::Promote, None, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot promote redis_password: the rotation is stable (stage a new value first)"
        );
        assert!(matches!(
            a.apply(n, Step::Retire, None, 1),
            Err(StepError::WrongPhase { .. })
        ));
        assert_eq!(
            a.apply(n, Step::Stage, None, 1),
            Err(StepError::MissingValue(n))
        );
        assert!(
            a.apply(n, Step::Stage, Some(s("p1")), 1).is_err(),
            "the same value"
        );
        assert!(
            a.apply(n, Step::Stage, Some(s(">p2")), 1).is_err(),
            "an ACL rule"
        );
        assert!(a.apply(n, Step::Stage, Some(s("two words")), 1).is_err());
        let b = a.apply(n, Step::Stage, Some(s("p2")), 1).unwrap();
        assert!(b.apply(n, Step::Stage, Some(s("p3")), 1).is_err());
        assert!(b.apply(n, Step::Retire, None, 1).is_err());
        // Rollback undoes one step at a time.
        let c = b.apply(n, Step::Promote, None, 1).unwrap();
        let back = c.apply(n, Step::Rollback, None, 1).unwrap();
        assert_eq!((back.phase, back.active()), (Phase::Staged, &s("p1")));
        let stable = back.apply(n, Step::Rollback, None, 1).unwrap();
        assert_eq!(stable.accepted(), vec![&s("p1")]);
        assert_eq!(stable.generation, 8);
    }

    #[test]
    fn stored_states_never_print_their_values() {
        let st = CredentialState::stable(s("p1"), 0)
            .apply(
                SecretName::DatabasePassword,
                Step::Stage,
                Some(s("hunter2-next")),
                1,
            )
            .unwrap();
        let stored = StoredState::from(&st);
        for text in [format!("{st:?}"), format!("{stored:?}")] {
            assert!(!text.contains("hunter2") && !text.contains("p1"), "{text}");
        }
        assert_eq!(CredentialState::from(stored), st);
    }

    #[test]
    fn names_round_trip() {
        for n in SecretName::ALL {
            assert_eq!(SecretName::parse(n.as_str()), Some(n));
        }
        assert_eq!(SecretName::parse("api_key"), None);
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Stage),
            Just(Step::Promote),
            Just(Step::Retire),
            Just(Step::Rollback)
        ]
    }

    proptest! {
        /// Whatever the sequence of steps: the active value is always accepted, at most two
        /// values are, a refused step changes nothing, and an accepted one raises the
        /// generation by one.
        #[test]
        fn any_sequence_keeps_the_invariants(steps in proptest::collection::vec((step(), "[a-z0-9]{1,8}"), 0..30)) {
            let n = SecretName::WebhookToken;
            let mut st = CredentialState::stable(s("v0"), 0);
            for (step, v) in steps {
                if let Ok(next) = st.apply(n, step, Some(s(&v)), 0) {
                    prop_assert_eq!(next.generation, st.generation + 1);
                    st = next;
                }
                let accepted = st.accepted();
                prop_assert!(accepted.contains(&st.active()));
                prop_assert!(accepted.len() <= 2);
                prop_assert_eq!(st.next.is_some(), st.phase != Phase::Stable);
            }
        }
    }
}
