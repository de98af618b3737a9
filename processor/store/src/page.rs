//! Paged query results.

use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Page number, from 1.
    pub page: u32,
    /// Rows per page.
    pub limit: u32,
    /// Rows in all.
    pub total: i64,
}

/// Appends `LIMIT … OFFSET …` for page `page` (from 1) of `limit` rows.
pub(crate) fn paginate(q: &mut QueryBuilder<'_, Postgres>, page: u32, limit: u32) {
    q.push(" LIMIT ")
        .push_bind(i64::from(limit))
        .push(" OFFSET ")
        .push_bind(i64::from(page.saturating_sub(1)) * i64::from(limit));
}
