use super::*;
use std::collections::HashMap;

fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let src = Sources::new(
        move |k: &str| map.get(k).cloned(),
        file.map(|f| ("mutt.toml", f)),
    )?;
    Settings::load(&src)
}

#[test]
fn each_secret_comes_from_one_place() {
    let s = load(
        &[
            ("MUTT_REDIS_PASSWORD_FILE", "/run/secrets/redis"),
            ("MUTT_DATABASE_PASSWORD", "pw"),
            ("MUTT_WEBHOOK_TOKEN_FILE", "/run/secrets/token"),
            ("MUTT_SECRET_FILE_POLL", "2s"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        s.secrets.redis_password_file.as_deref(),
        Some(std::path::Path::new("/run/secrets/redis"))
    );
    assert_eq!(
        s.secrets.database_password.as_ref().map(Secret::expose),
        Some("pw")
    );
    assert_eq!(s.secrets.file_poll, Duration::from_secs(2));
    assert_eq!(s.secrets.file_overlap, Duration::from_secs(600));

    let e = load(
        &[
            ("MUTT_WEBHOOK_TOKEN", "t"),
            ("MUTT_WEBHOOK_TOKEN_FILE", "/x"),
            ("MUTT_REDIS_URL", "redis://mutt:p1@127.0.0.1:6379"),
            ("MUTT_REDIS_PASSWORD", "p2"),
        ],
        None,
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("MUTT_WEBHOOK_TOKEN_FILE: the secret is also given by MUTT_WEBHOOK_TOKEN"),
        "{text}"
    );
    assert!(text.contains("MUTT_REDIS_PASSWORD or MUTT_REDIS_PASSWORD_FILE: the secret is also given by MUTT_REDIS_URL"), "{text}");
    assert!(!text.contains("p1") && !text.contains("p2"), "{text}");
}

#[test]
fn defaults_match_the_contract() {
    let s = load(&[], None).unwrap();
    assert_eq!(s.redis_url, "redis://127.0.0.1:6379");
    assert_eq!(s.database_url, "postgres://postgres@127.0.0.1:5432/mutt");
    assert_eq!(s.prefix, "mutt");
    assert_eq!(s.ingest_listen.port(), 8080);
    assert_eq!(s.control_listen.port(), 8090);
    assert_eq!(s.ops_listen.port(), 9464);
    assert!(s.webhook_url.is_none() && s.api_key.is_none());
    assert!(s.require_webhook().is_err());
}

#[test]
fn env_wins_over_file_and_durations_are_humantime() {
    let s = load(
        &[("MUTT_PREFIX", "env"), ("MUTT_READ_BLOCK", "250ms")],
        Some("prefix = \"file\"\nunhandled_window = \"5m\"\nalerter_batch = 64\n"),
    )
    .unwrap();
    assert_eq!(s.prefix, "env");
    assert_eq!(s.read_block, Duration::from_millis(250));
    assert_eq!(s.hot.unhandled_window, Duration::from_secs(300));
    assert_eq!(s.hot.alerter_batch, 64);
}

#[test]
fn every_bad_setting_is_named() {
    let e = load(
        &[
            ("MUTT_OPS_LISTEN", "nowhere"),
            ("MUTT_REDIS_URL", "http://x"),
            ("MUTT_READ_BLOCK", "soon"),
            ("MUTT_WEBHOOK_URL", "ftp://user:pw@host/x"),
        ],
        Some("alerter_batch = 0\nbogus = 1\n"),
    )
    .unwrap_err();
    let names: Vec<&str> = e.0.iter().map(|e| e.setting.as_str()).collect();
    assert_eq!(
        names,
        [
            "MUTT_REDIS_URL",
            "MUTT_OPS_LISTEN",
            "MUTT_WEBHOOK_URL",
            "MUTT_READ_BLOCK",
            "alerter_batch in mutt.toml",
            "bogus in mutt.toml"
        ]
    );
    let text = e.to_string();
    assert!(!text.contains("pw"), "{text}");
    assert!(load(&[], Some("not = [toml")).is_err());
}

#[test]
fn the_registry_names_each_setting_once_and_its_defaults_are_valid() {
    let mut seen = std::collections::HashSet::new();
    for spec in REGISTRY {
        assert!(seen.insert(spec.env), "{} registered twice", spec.env);
        assert!(!spec.help.is_empty(), "{} has no description", spec.env);
        if let Initial::Value(v) = spec.initial {
            let mut s = Settings::blank("c".into());
            assert_eq!(spec.apply(&mut s, v), Ok(()), "default of {}", spec.env);
        }
    }
    // A hot setting and a static one must not share a file key.
    for spec in crate::hot::REGISTRY {
        assert!(
            REGISTRY.iter().all(|s| s.file_key() != spec.key),
            "{} is both hot and static",
            spec.key
        );
    }
}

#[test]
fn the_event_limits_default_to_what_the_validator_assumes() {
    let s = load(&[], None).unwrap();
    assert_eq!(s.ingest.limits, Limits::default());
    assert_eq!(s.read_block, Duration::from_secs(1));
    assert_eq!(s.secrets.file_overlap, Duration::from_secs(600));
    assert!(!s.otel_http && s.log_format == LogFormat::Text);
}

#[test]
fn every_static_setting_is_read_from_the_file_under_its_key() {
    let s = load(
        &[],
        Some(concat!(
            "shutdown_grace = \"3s\"\n",
            "otel_exporter_otlp_protocol = \"http/protobuf\"\n",
            "ingest_max_batch = 7\n",
            "secret_file_poll = \"1s\"\n",
        )),
    )
    .unwrap();
    assert_eq!(s.shutdown_grace, Duration::from_secs(3));
    assert!(s.otel_http);
    assert_eq!(s.ingest.max_batch_items, 7);
    assert_eq!(s.secrets.file_poll, Duration::from_secs(1));
    let keys: Vec<String> = REGISTRY.iter().map(Spec::file_key).collect();
    assert!(keys.contains(&"redis_url".to_string()));
    assert!(keys.contains(&"otel_service_name".to_string()));
}

#[test]
fn sentinel_addresses_become_urls_and_a_bad_one_is_named_without_its_password() {
    let s = load(
        &[
            (
                "MUTT_REDIS_SENTINELS",
                "10.0.0.5:26379, redis://:pw@s2:26379",
            ),
            ("MUTT_REDIS_MASTER_NAME", "mutt-redis"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        s.redis_sentinels,
        Some(vec![
            "redis://10.0.0.5:26379".to_string(),
            "redis://:pw@s2:26379".to_string()
        ])
    );
    assert_eq!(s.redis_master_name, "mutt-redis");
    let s = load(&[], None).unwrap();
    assert_eq!(
        (s.redis_sentinels, s.redis_master_name.as_str()),
        (None, "mymaster")
    );
    for bad in [
        "s1:26379,nohost",
        "s1:26379,:26379",
        "s1:0",
        "http://s1:26379",
        ":s3cret@s1",
        "user:s3cret@s1:26379x",
    ] {
        let e = load(&[("MUTT_REDIS_SENTINELS", bad)], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("MUTT_REDIS_SENTINELS"), "{bad}: {e}");
        assert!(!e.contains("s3cret"), "{bad}: {e}");
    }
}
