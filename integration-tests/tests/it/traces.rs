//! One trace per event, across the Redis hops, exported over OTLP (gRPC and HTTP/protobuf)
//! to a receiver in the test.

use std::collections::HashMap;
use std::time::Duration;

use mutt_integration_tests::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn traced_rule() -> mutt_core::rules::Rule {
    let mut r = forward_everything();
    r.match_string = Some("traced".into());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_one_trace_from_ingest_to_the_webhook() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    let (collector, endpoint) = grpc_collector(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[traced_rule()]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .consumer("traced-1")
            .set("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .set("OTEL_BSP_SCHEDULE_DELAY", "100"),
    )
    .await?;
    // The sender is itself traced: ingest continues its trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/ingest", all.ingest_url))
        .header("x-api-key", "test-key")
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({"hostname": "r1", "message": "traced event", "timestamp": "2026-11-26T10:00:00Z"}))
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    let names = [
        "POST /api/v2/ingest",
        "alerter.process",
        "audit.write",
        "forwarder.deliver",
    ];
    wait_until("the four spans", Duration::from_secs(20), || async {
        names
            .iter()
            .all(|n| !collector.named(n).is_empty())
            .then_some(())
    })
    .await?;
    let one = |n: &str| {
        let v = collector.named(n);
        assert_eq!(v.len(), 1, "{n}: {v:?}");
        v[0].clone()
    };
    let (ingest, alerter, audit, deliver) =
        (one(names[0]), one(names[1]), one(names[2]), one(names[3]));
    for g in [&ingest, &alerter, &audit, &deliver] {
        assert_eq!(
            hex(&g.span.trace_id),
            trace_id,
            "{} is in the sender's trace",
            g.span.name
        );
        assert_eq!(g.service, "mutt");
        assert_eq!(g.instance, "traced-1");
    }
    assert_eq!(hex(&ingest.span.parent_span_id), client_span);
    assert_eq!(ingest.span.kind, SpanKind::Server as i32);
    assert_eq!(alerter.span.parent_span_id, ingest.span.span_id);
    assert_eq!(alerter.span.kind, SpanKind::Consumer as i32);
    assert_eq!(audit.span.parent_span_id, alerter.span.span_id);
    assert_eq!(deliver.span.parent_span_id, alerter.span.span_id);
    assert_eq!(deliver.span.kind, SpanKind::Client as i32);
    // The webhook received the delivery span as its parent.
    let tp = sink
        .seen()
        .traceparents
        .first()
        .cloned()
        .expect("a traceparent at the webhook");
    assert_eq!(
        tp,
        format!("00-{trace_id}-{}-01", hex(&deliver.span.span_id))
    );
    drop(all);
    stop.cancel();
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_links_back_to_its_original_trace() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let stop = CancellationToken::new();
    let sink = start_sink(&stop).await?;
    let (collector, endpoint) = http_collector(&stop).await?;
    env.migrate().await?;
    env.insert_rules(&[traced_rule()]).await?;
    let all = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .set("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .set("OTEL_BSP_SCHEDULE_DELAY", "100")
            .set("MUTT_DLQ_REPLAY_INTERVAL", "0s"),
    )
    .await?;
    sink.set_behaviour(Behaviour::Fail(400, None));
    let r = post_events(&reqwest::Client::new(), &all.ingest_url, &json!({"hostname": "r1", "message": "traced and refused", "timestamp": "2026-11-26T10:00:00Z"})).await?;
    assert_eq!(r.status(), 202);
    let admin = Api::new(&all.control_url, "test-key");
    wait_until(
        "the alert dead-lettered",
        Duration::from_secs(20),
        || async {
            let d = admin.get("/api/v2/dlq/forwarder").await.ok()?;
            (d["entries"].as_array()?.len() == 1).then_some(())
        },
    )
    .await?;
    let original = wait_until("the ingest span", Duration::from_secs(10), || async {
        let v = collector.named("POST /api/v2/ingest");
        (!v.is_empty()).then_some(v)
    })
    .await?;
    assert_eq!(original.len(), 1);
    let original_trace = original[0].span.trace_id.clone();
    sink.set_behaviour(Behaviour::Accept);
    let (status, body, _) = admin
        .call(
            "POST",
            "/api/v2/dlq/forwarder/replay",
            Some(json!({"all": true, "reason": "trace test"})),
        )
        .await?;
    assert_eq!((status, body["replayed"].as_u64()), (200, Some(1)));
    wait_until(
        "the replayed alert delivered and traced",
        Duration::from_secs(20),
        || async {
            let delivered = sink.unique() == 1;
            let deliveries = collector.named("forwarder.deliver");
            (delivered
                && deliveries.iter().any(|d| !d.span.links.is_empty())
                && !collector.named("dlq.replay").is_empty())
            .then_some(())
        },
    )
    .await?;
    let replay = collector.named("dlq.replay").remove(0);
    assert!(
        replay
            .span
            .links
            .iter()
            .any(|l| l.trace_id == original_trace),
        "the replay links to the original trace: {:?}",
        replay.span.links
    );
    let again = collector
        .named("forwarder.deliver")
        .into_iter()
        .find(|d| !d.span.links.is_empty())
        .unwrap();
    assert_eq!(
        again.span.trace_id, original_trace,
        "the replayed alert stays in its trace"
    );
    assert!(
        again
            .span
            .links
            .iter()
            .any(|l| l.span_id == replay.span.span_id),
        "and links to the replay"
    );
    let by_trace: HashMap<Vec<u8>, usize> =
        collector.spans().iter().fold(HashMap::new(), |mut m, g| {
            *m.entry(g.span.trace_id.clone()).or_default() += 1;
            m
        });
    assert!(by_trace[&original_trace] >= 5, "{by_trace:?}");
    drop(all);
    stop.cancel();
    env.cleanup().await
}
