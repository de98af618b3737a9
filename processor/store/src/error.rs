//! Errors of the PostgreSQL layer, and what they mean for the rows being written.

/// A PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query or the connection failed.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A setting or a row is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// What a failed write means for the rows it carried.
///
/// The question that matters is not "will a retry succeed" but "whose fault is it": a
/// server that refuses *every* row (read-only after a failover, a password refused during a
/// rotation, a revoked grant, a lock that times out, a missing table) is an outage, and the
/// rows must be held until it ends. Only a row that the server refuses on its own merits (a
/// value out of range, a constraint on that row's data) may be set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The database refuses every row for now: hold the rows and retry with backoff.
    Outage(OutageKind),
    /// The database refuses this row because of its data: it may be dead-lettered.
    Row,
}

/// Why the database refuses every row: the label of metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageKind {
    /// Connections cut, refused or timed out; the pool exhausted; the server shutting down.
    Unavailable,
    /// The server accepts only reads (SQLSTATE 25006): a replica after a failover.
    ReadOnly,
    /// Authentication or authorisation refused (classes 28, 42501): credentials or grants.
    Denied,
    /// A lock or statement timeout, a deadlock, a serialisation failure (55P03, 57014, 40).
    Contention,
    /// Out of disk, memory or connections on the server (53), or a system error (58).
    Resources,
    /// The schema is not what MUTT expects: a missing table, column or partition.
    Schema,
    /// Anything else: unknown errors are held too, because dead-lettering every event of a
    /// batch on an error nobody classified is exactly the loss this type exists to prevent.
    Other,
}

impl OutageKind {
    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::ReadOnly => "read_only",
            Self::Denied => "denied",
            Self::Contention => "contention",
            Self::Resources => "resources",
            Self::Schema => "schema",
            Self::Other => "other",
        }
    }

    /// Every kind, for zero-initialised metrics.
    pub const ALL: [OutageKind; 7] = [
        Self::Unavailable,
        Self::ReadOnly,
        Self::Denied,
        Self::Contention,
        Self::Resources,
        Self::Schema,
        Self::Other,
    ];
}

/// Classifies a SQLSTATE (and, for check violations, whether a named constraint failed).
///
/// Row refusals are the data exceptions of class 22 (a value too long, out of range, badly
/// encoded) and the integrity violations of class 23 (not null, unique, check, foreign key),
/// except "no partition of relation found for row", which PostgreSQL reports as a check
/// violation without a constraint name: that is missing schema, fixed by creating the
/// partition, and every row of that month would be refused the same way.
pub fn classify_sqlstate(code: &str, constraint: Option<&str>) -> Refusal {
    let class = code.get(..2).unwrap_or("");
    let outage = |k| Refusal::Outage(k);
    match (class, code) {
        (_, "23514") if constraint.is_none() => outage(OutageKind::Schema),
        ("22" | "23", _) => Refusal::Row,
        (_, "25006") => outage(OutageKind::ReadOnly),
        ("28", _) | (_, "42501") => outage(OutageKind::Denied),
        ("40", _) | (_, "55P03") | (_, "57014") => outage(OutageKind::Contention),
        ("08", _) | ("57", _) => outage(OutageKind::Unavailable),
        ("53", _) | ("58", _) => outage(OutageKind::Resources),
        (_, "42P01") | (_, "42703") | (_, "42883") | (_, "3F000") | (_, "3D000") => {
            outage(OutageKind::Schema)
        }
        _ => outage(OutageKind::Other),
    }
}

impl StoreError {
    /// What this error means for the rows of the failed write.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::Db(sqlx::Error::Database(d)) => match d.code() {
                Some(code) => classify_sqlstate(&code, d.constraint()),
                None => Refusal::Outage(OutageKind::Other),
            },
            Self::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => Refusal::Outage(OutageKind::Unavailable),
            // Encoding a value the driver cannot send is the row's own fault.
            Self::Db(sqlx::Error::Encode(_)) => Refusal::Row,
            Self::Db(_) | Self::Migrate(_) => Refusal::Outage(OutageKind::Other),
            Self::Invalid(_) => Refusal::Row,
        }
    }

    /// Whether the server refused the rows themselves (as opposed to refusing every row).
    pub fn is_row_refusal(&self) -> bool {
        self.refusal() == Refusal::Row
    }

    /// The SQLSTATE the server answered with, if it answered.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            Self::Db(sqlx::Error::Database(d)) => d.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_and_integrity_errors_refuse_a_row() {
        for row in [
            "22001", "22P02", "22021", "22008", "23505", "23502", "23503",
        ] {
            assert_eq!(classify_sqlstate(row, None), Refusal::Row, "{row}");
        }
        assert_eq!(
            classify_sqlstate("23514", Some("alert_rules_match_check")),
            Refusal::Row
        );
        for (code, kind) in [
            ("25006", OutageKind::ReadOnly),
            ("28P01", OutageKind::Denied),
            ("28000", OutageKind::Denied),
            ("42501", OutageKind::Denied),
            ("55P03", OutageKind::Contention),
            ("40001", OutageKind::Contention),
            ("40P01", OutageKind::Contention),
            ("57014", OutageKind::Contention),
            ("57P01", OutageKind::Unavailable),
            ("08006", OutageKind::Unavailable),
            ("53100", OutageKind::Resources),
            ("53300", OutageKind::Resources),
            ("58030", OutageKind::Resources),
            ("42P01", OutageKind::Schema),
            ("42703", OutageKind::Schema),
            // "no partition of relation … found for row": a check violation without a
            // constraint name.
            ("23514", OutageKind::Schema),
            ("XX000", OutageKind::Other),
            ("P0001", OutageKind::Other),
        ] {
            assert_eq!(
                classify_sqlstate(code, None),
                Refusal::Outage(kind),
                "{code}"
            );
        }
    }

    #[test]
    fn connection_trouble_is_an_outage() {
        let e = StoreError::Db(sqlx::Error::PoolTimedOut);
        assert_eq!(e.refusal(), Refusal::Outage(OutageKind::Unavailable));
        assert!(!e.is_row_refusal());
        assert_eq!(e.sqlstate(), None);
    }
}
