//! The control plane's operations, one module per resource. A service validates what it
//! is given, writes through the store (the change and its audit row in one transaction),
//! publishes and announces, and returns a domain result or why it [`Refused`]. The v2 and
//! v1 handlers are adapters over these: they parse requests and shape answers, nothing
//! else.
//!
//! # Layout
//!
//! - [`rules`], [`hosts`], [`teams`]: the routing data the alerters load.
//! - [`settings`]: hot settings, their snapshots and which version each process applied.
//! - [`keys`]: API keys: created and rotated (shown once), revoked, published with the
//!   version of the key set; the calling key's own scopes (`whoami`).
//! - [`dlq`]: dead letters: listed, replayed, purged, and the automatic replay.
//! - [`secrets`]: credential rotations: stage, promote, retire, with their Redis steps.
//! - [`slo`]: the service-level objectives, asked of Prometheus.
//! - [`retention`]: the retention policy, its runs, schedule and partitions.
//! - [`audit`]: the config and event audit trails, queried.
//! - [`overview`]: what the console polls: streams, groups, DLQs, every process's
//!   readiness and counters, from Redis only.

pub mod audit;
pub mod dlq;
pub mod hosts;
pub mod keys;
pub mod overview;
pub mod retention;
pub mod rules;
pub mod secrets;
pub mod settings;
pub mod slo;
pub mod teams;

use axum::http::StatusCode;
use serde_json::{Value, json};

use mutt_worker::http::ApiError;

/// Why an operation did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The request is wrong.
    Invalid {
        /// `invalid` (a value), `invalid_query`, `invalid_body`.
        code: &'static str,
        /// What is wrong, naming the field.
        message: String,
        /// Extra fields for the answer (the field at fault).
        details: Option<Value>,
    },
    /// The record does not exist.
    NotFound(String),
    /// The state does not allow it now (exists already, another step in progress, …).
    Conflict {
        /// A stable code (`conflict`, `wrong_phase`, `not_converged`, …).
        code: &'static str,
        /// What is wrong.
        message: String,
        /// When trying again makes sense, in seconds.
        retry_after: Option<u64>,
        /// Extra fields for the answer.
        details: Option<Value>,
    },
    /// A dependency (PostgreSQL, Redis, Prometheus) is unavailable.
    Unavailable {
        /// What is unavailable, for the answer.
        message: String,
        /// When trying again makes sense, in seconds.
        retry_after: u64,
    },
    /// A system MUTT changes on the operator's behalf refused (a secret rotation's effect).
    Upstream(String),
}

impl Refused {
    /// A wrong value of `field` (the answer names it in `field` too).
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "invalid",
            message: format!("{field}: {}", message.into()),
            details: Some(json!({"field": field})),
        }
    }

    /// A wrong request (the message names what is wrong).
    pub fn bad(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "invalid",
            message: message.into(),
            details: None,
        }
    }

    /// A malformed query parameter.
    pub fn query(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "invalid_query",
            message: message.into(),
            details: None,
        }
    }

    /// A malformed body.
    pub fn body(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "invalid_body",
            message: message.into(),
            details: None,
        }
    }

    /// A plain conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            code: "conflict",
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }
}

impl From<mutt_store::StoreError> for Refused {
    /// A client mistake the store caught is invalid; anything else means the database is
    /// unavailable (never a bare 500).
    fn from(e: mutt_store::StoreError) -> Self {
        match e {
            mutt_store::StoreError::Invalid(m) => Self::bad(m),
            e => {
                tracing::warn!(error = %e, "control: database error");
                Self::Unavailable {
                    message: "the database is unavailable; retry later".into(),
                    retry_after: 2,
                }
            }
        }
    }
}

impl From<mutt_bus::BusError> for Refused {
    fn from(e: mutt_bus::BusError) -> Self {
        tracing::warn!(error = %e, "control: redis error");
        Self::Unavailable {
            message: "redis is unavailable; retry later".into(),
            retry_after: 2,
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Invalid {
                code,
                message,
                details,
            } => {
                let mut e = ApiError::new(StatusCode::BAD_REQUEST, code, message);
                e.details = details;
                e
            }
            Refused::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            Refused::Conflict {
                code,
                message,
                retry_after,
                details,
            } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, code, message);
                e.retry_after = retry_after;
                e.details = details;
                e
            }
            Refused::Unavailable {
                message,
                retry_after,
            } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
                .retry_after(retry_after),
            Refused::Upstream(m) => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_refused", m),
        }
    }
}

/// A record's outcome, for records named in messages (`the development host`).
pub(crate) fn outcome(o: mutt_store::Outcome, what: &str) -> Result<(), Refused> {
    match o {
        mutt_store::Outcome::Done => Ok(()),
        mutt_store::Outcome::NotFound => Err(Refused::NotFound(format!("no such {what}"))),
        mutt_store::Outcome::Conflict => {
            Err(Refused::conflict(format!("the {what} exists already")))
        }
    }
}

/// A host name as the control API accepts it.
pub(crate) fn check_host(h: &str) -> Result<(), Refused> {
    if h.trim().is_empty() || h.len() > 255 || h.chars().any(char::is_control) {
        return Err(Refused::invalid(
            "hostname",
            "1–255 characters without control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_answers() {
        let e: ApiError = Refused::invalid("priority", "not a number").into();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "invalid"));
        assert_eq!(e.message, "priority: not a number");
        assert_eq!(e.details, Some(json!({"field": "priority"})));
        let e: ApiError = Refused::Unavailable {
            message: "x".into(),
            retry_after: 2,
        }
        .into();
        assert_eq!(
            (e.status, e.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(2))
        );
        let e: ApiError = Refused::from(mutt_store::StoreError::Invalid("bad rule".into())).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
