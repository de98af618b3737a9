use super::*;
use mutt_core::settings::Sources;

fn settings(env: &[(&str, String)]) -> Settings {
    let map: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let src = Sources::new(move |k: &str| map.get(k).cloned(), None).unwrap();
    Settings::load(&src).unwrap()
}

#[test]
fn sources_at_start_and_a_changed_file() {
    let dir = std::env::temp_dir().join(format!("mutt-cred-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "tok-1\n").unwrap();
    let c = Credentials::load(&settings(&[
        ("MUTT_REDIS_URL", "redis://mutt:rp1@127.0.0.1:6379".into()),
        ("MUTT_WEBHOOK_TOKEN_FILE", token.display().to_string()),
        ("MUTT_SECRET_FILE_POLL", "1ms".into()),
        ("MUTT_SECRET_FILE_OVERLAP", "50ms".into()),
    ]))
    .unwrap();
    assert_eq!(
        c.state(SecretName::RedisPassword).unwrap().active(),
        &Secret::new("rp1")
    );
    assert!(c.state(SecretName::DatabasePassword).is_none());
    let auth = c.redis_auth("redis://mutt:rp1@127.0.0.1:6379").unwrap();
    assert_eq!(auth.username(), "mutt");
    let webhook = c.state(SecretName::WebhookToken).unwrap();
    assert_eq!(webhook.accepted(), vec![&Secret::new("tok-1")]);

    std::fs::write(&token, "tok-2\n").unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.check_files().0, vec![SecretName::WebhookToken]);
    let st = c.state(SecretName::WebhookToken).unwrap();
    assert_eq!(st.active(), &Secret::new("tok-2"));
    assert_eq!(st.fallback(), Some(&Secret::new("tok-1")));
    // Unchanged: nothing happens; after the overlap the old value goes.
    std::thread::sleep(Duration::from_millis(60));
    let (changed, _) = c.check_files();
    assert_eq!(changed, vec![SecretName::WebhookToken]);
    assert_eq!(
        c.state(SecretName::WebhookToken).unwrap().accepted(),
        vec![&Secret::new("tok-2")]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_newer_than_the_stored_state_wins_at_start() {
    let dir = std::env::temp_dir().join(format!("mutt-cred-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "file-value").unwrap();
    // Started with the file, then synced with a store holding generation 3.
    let load_and_sync = || {
        let c = Credentials::load(&settings(&[(
            "MUTT_WEBHOOK_TOKEN_FILE",
            token.display().to_string(),
        )]))
        .unwrap();
        c.apply_stored(BTreeMap::from([(
            SecretName::WebhookToken,
            StoredState::from(&CredentialState::stable(Secret::new("stored-value"), 3)),
        )]));
        c
    };
    let c = load_and_sync();
    assert_eq!(
        c.state(SecretName::WebhookToken).unwrap().active(),
        &Secret::new("stored-value")
    );
    c.reconcile_files();
    let st = c.state(SecretName::WebhookToken).unwrap();
    assert_eq!(st.active(), &Secret::new("file-value"));
    assert_eq!(st.fallback(), Some(&Secret::new("stored-value")));
    // A file holding a value the state knows changes nothing.
    std::fs::write(&token, "stored-value").unwrap();
    let again = load_and_sync();
    again.reconcile_files();
    assert_eq!(
        again
            .state(SecretName::WebhookToken)
            .unwrap()
            .accepted()
            .len(),
        1
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_file_names_its_setting_and_never_the_value() {
    let e = Credentials::load(&settings(&[(
        "MUTT_DATABASE_PASSWORD_FILE",
        "/nonexistent/mutt/db".into(),
    )]))
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("MUTT_DATABASE_PASSWORD_FILE"),
        "{e:#}"
    );
}

#[test]
fn newer_stored_states_win_and_generations_are_reported() {
    let c = Credentials::load(&settings(&[("MUTT_WEBHOOK_TOKEN", "t1".into())])).unwrap();
    let g = c.generations();
    assert_eq!(g.borrow().get("webhook_token"), Some(&0));
    let staged = CredentialState::stable(Secret::new("t1"), 0)
        .apply(
            SecretName::WebhookToken,
            mutt_core::credentials::Step::Stage,
            Some(Secret::new("t2")),
            1,
        )
        .unwrap();
    let mut stored = BTreeMap::new();
    stored.insert(SecretName::WebhookToken, StoredState::from(&staged));
    assert_eq!(
        c.apply_stored(stored.clone()),
        vec![SecretName::WebhookToken]
    );
    assert!(c.apply_stored(stored).is_empty(), "same generation");
    assert_eq!(g.borrow().get("webhook_token"), Some(&1));
    // With a database, the password is reported once its pool confirms it.
    c.slot(SecretName::DatabasePassword)
        .confirmed_by_user
        .store(true, Ordering::Relaxed);
    let mut db = BTreeMap::new();
    db.insert(
        SecretName::DatabasePassword,
        StoredState::from(&CredentialState::stable(Secret::new("d"), 3)),
    );
    c.apply_stored(db);
    assert_eq!(g.borrow().get("database_password"), Some(&0));
    c.confirm(SecretName::DatabasePassword, 3);
    assert_eq!(g.borrow().get("database_password"), Some(&3));
}
