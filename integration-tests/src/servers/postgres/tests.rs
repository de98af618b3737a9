use super::*;

/// A private PostgreSQL: passwords are checked over TCP, and drop stops it.
#[tokio::test]
async fn postgres_server() -> anyhow::Result<()> {
    let started = Instant::now();
    let pg = PostgresServer::start().await?;
    eprintln!("PostgresServer::start took {:?}", started.elapsed());
    let port = pg.port();
    can_connect(&pg.admin_url())
        .await
        .map_err(anyhow::Error::msg)?;
    pg.create_role("mutt_rot", "p1").await?;
    can_connect(&pg.url_for("mutt_rot", "p1", "mutt_rot"))
        .await
        .map_err(anyhow::Error::msg)?;
    let refused = can_connect(&pg.url_for("mutt_rot", "wrong", "mutt_rot"))
        .await
        .expect_err("a wrong password is refused");
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    // Quoting: a mixed-case name and a password with URL and SQL metacharacters.
    let odd = "p'@:/%? x";
    pg.create_role("Mutt-Odd", odd).await?;
    can_connect(&pg.url_for("Mutt-Odd", odd, "Mutt-Odd"))
        .await
        .map_err(anyhow::Error::msg)?;
    assert!(pg.log_tail().contains("ready to accept connections"));
    let stopping = Instant::now();
    drop(pg);
    eprintln!("PostgresServer drop took {:?}", stopping.elapsed());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts connections after drop"
    );
    Ok(())
}
