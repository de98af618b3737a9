//! The services of a developer's machine and their URLs: the local Redis and PostgreSQL
//! (overridden by `REDIS_URL` and `DATABASE_URL`), free loopback ports, and scratch
//! database URLs next to a server's. Shared by `muttdev bench` and the integration tests.

/// The local Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The local PostgreSQL server, as its superuser.
pub const DEFAULT_POSTGRES_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The local Redis, unless `REDIS_URL` says otherwise.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

/// The local PostgreSQL server (a superuser URL; the database part is replaced), unless
/// `DATABASE_URL` says otherwise.
pub fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_SERVER_URL.into())
}

/// A free TCP port on loopback, or why there is none.
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A free TCP port on loopback (panics when there is none).
pub fn free_port() -> u16 {
    try_free_port().expect("a free port on loopback")
}

/// `server_url` with its database replaced by `db`; the query string (`?sslmode=…`) is
/// kept.
pub fn with_database(server_url: &str, db: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
