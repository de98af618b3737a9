//! The native syslog and SNMP listeners, driven by the clients network teams run:
//! util-linux `logger`, net-snmp's `snmptrap` and `snmpinform`, `rsyslog` forwarding over
//! TCP with octet counting, and `openssl s_client` for TLS. What arrives is read back from
//! the events stream and, for routing, from the webhook.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mutt_core::codec;
use mutt_core::event::{Event, Limits};
use mutt_integration_tests::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The events in the test's stream, decoded.
async fn events(env: &TestEnv) -> anyhow::Result<Vec<Event>> {
    read_stream(env, "events")
        .await?
        .iter()
        .map(|(_, f)| Ok(codec::decode_event(&f["payload"], &Limits::default())?))
        .collect()
}

/// Waits until an event with each of `messages` is in the stream.
async fn wait_messages(env: &TestEnv, messages: &[&str]) -> anyhow::Result<HashMap<String, Event>> {
    wait_until(
        &format!("events {messages:?}"),
        Duration::from_secs(15),
        || async {
            let by: HashMap<String, Event> = events(env)
                .await
                .ok()?
                .into_iter()
                .map(|e| (e.message.clone(), e))
                .collect();
            messages.iter().all(|m| by.contains_key(*m)).then_some(by)
        },
    )
    .await
}

async fn wait_events(env: &TestEnv, n: usize, within: Duration) -> anyhow::Result<Vec<Event>> {
    wait_until(&format!("{n} events in the stream"), within, || async {
        let e = events(env).await.ok()?;
        (e.len() >= n).then_some(e)
    })
    .await
}

/// Runs a client program to completion (bounded), failing with its output.
async fn run(program: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(program).args(args).kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{program} {args:?} did not finish in 20 s"))??;
    Ok(out)
}

async fn ok(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = run(program, args).await?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Whether an inform (coldStart) sent with `community` to `target` is answered within 1 s.
async fn answered_inform(target: &str, community: &str) -> bool {
    let args = [
        "-v",
        "2c",
        "-c",
        community,
        "-t",
        "1",
        "-r",
        "0",
        target,
        "",
        "1.3.6.1.6.3.1.1.5.1",
    ];
    run("snmpinform", &args)
        .await
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    which(program).is_some()
}

/// `logger` and the sample lines: the same events over UDP (RFC 3164) and TCP (RFC 5424,
/// octet-counted) as over HTTP reach the webhook with the same routing.
#[tokio::test]
async fn logger_lines_are_routed_like_the_same_events_over_http() -> anyhow::Result<()> {
    anyhow::ensure!(have("logger"), "util-linux logger is needed");
    let (env, stop, sink) = env_with_sink(&mutt_devkit::samples::rules()).await?;
    let udp = free_port();
    let tcp = free_port();
    let m = Mutt::start(
        &env,
        &MuttConfig::new("all")
            .webhook(sink.url())
            .set("MUTT_SYSLOG_UDP_LISTEN", &format!("127.0.0.1:{udp}"))
            .set("MUTT_SYSLOG_TCP_LISTEN", &format!("127.0.0.1:{tcp}")),
    )
    .await?;
    // One line per distinct message of the sample data, with its severity.
    let mut seen = HashSet::new();
    let samples: Vec<Value> = mutt_devkit::samples::syslog_events()
        .into_iter()
        .filter(|e| seen.insert(e["message"].as_str().unwrap_or("").to_string()))
        .collect();
    let sev = |e: &Value| {
        mutt_core::severity::SyslogSeverity::parse(e["syslog_severity"].as_str().unwrap_or(""))
            .map_or(5, |s| s.number())
    };
    let names = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    for (i, e) in samples.iter().enumerate() {
        let msg = e["message"].as_str().unwrap();
        let prio = format!("local7.{}", names[usize::from(sev(e))]);
        let port = if i % 2 == 0 { udp } else { tcp };
        let port = port.to_string();
        let mut args = vec![
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-p",
            &prio,
            "-t",
            "netdev",
            "--socket-errors=on",
        ];
        // logger has no host name option: the line's host is this machine's. HTTP gets
        // the same below.
        if i % 2 == 0 {
            args.extend(["--udp", "--rfc3164"]);
        } else {
            args.extend(["--tcp", "--rfc5424", "--octet-count"]);
        }
        args.push(msg);
        ok("logger", &args).await?;
    }
    let n = samples.len();
    let by_syslog = wait_events(&env, n, Duration::from_secs(20)).await?;
    let machine = by_syslog[0].hostname.clone();
    for e in &by_syslog {
        assert_eq!(
            e.hostname, machine,
            "every line carries this machine's name"
        );
        assert_eq!(e.source_type.as_deref(), Some("syslog"));
        assert_eq!(e.attributes["appname"], "netdev");
    }
    // The same events over HTTP, with the host name the lines carried.
    let http: Vec<Value> = samples
        .iter()
        .map(|e| {
            json!({"hostname": machine, "message": e["message"], "syslog_severity": sev(e),
                   "timestamp": "2026-12-07T10:00:00Z", "source_type": "http-twin"})
        })
        .collect();
    let r = post_events(&reqwest::Client::new(), &m.ingest_url, &Value::Array(http)).await?;
    anyhow::ensure!(r.status() == 202, "HTTP twin refused: {}", r.text().await?);
    // Both halves processed by the alerter and the forwarder, then compare what reached
    // the webhook.
    wait_until("both halves processed", Duration::from_secs(30), || async {
        let audited = env
            .count("SELECT count(*) FROM event_audit_log")
            .await
            .ok()?;
        let alerter = env.group_state("events", "alerter").await.ok()?;
        let forwarder = env.group_state("alerts", "forwarder").await.ok()?;
        (audited > 0 && alerter == (0, 0) && forwarder == (0, 0)).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let routed = |twin: bool| -> BTreeMap<String, (Value, Value)> {
        sink.seen()
            .events
            .iter()
            .filter(|a| (a["custom_info"]["source_type"] == "http-twin") == twin)
            .map(|a| {
                (
                    a["custom_info"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    (a["class"].clone(), a["severity"].clone()),
                )
            })
            .collect()
    };
    let over_syslog = routed(false);
    let over_http = routed(true);
    assert!(
        !over_http.is_empty(),
        "the sample rules forward some of the events"
    );
    assert_eq!(over_syslog, over_http, "syslog and HTTP route alike");
    // And the audit agrees event by event: the same rule and handling for each message.
    let mut db = env.db().await?;
    let rows: Vec<(Option<String>, Option<i32>, Option<String>)> = sqlx::query_as(
        "SELECT raw_message::jsonb->>'message', matched_rule_id, handling_decision FROM event_audit_log",
    )
    .fetch_all(&mut db)
    .await?;
    // One row per handled event: as many from each half.
    assert_eq!(rows.len() % 2, 0, "{} audit rows", rows.len());
    let mut per_message: HashMap<Option<String>, HashSet<Decision>> = HashMap::new();
    let total_rows = rows.len();
    for (msg, rule, handling) in rows {
        per_message.entry(msg).or_default().insert((rule, handling));
    }
    for (msg, outcomes) in &per_message {
        assert_eq!(
            outcomes.len(),
            1,
            "{msg:?} was decided differently: {outcomes:?}"
        );
    }
    assert_eq!(
        total_rows,
        2 * per_message.len(),
        "each handled message audited once per half"
    );
    let udp_events = metric_labelled(&m.ops_url, "mutt_ingest_events_total", "syslog_udp").await;
    let tcp_events = metric_labelled(&m.ops_url, "mutt_ingest_events_total", "syslog_tcp").await;
    assert_eq!((udp_events + tcp_events) as usize, n);
    assert!(udp_events > 0.0 && tcp_events > 0.0);
    drop(m);
    stop.cancel();
    env.cleanup().await
}

/// What the alerter decided for an event: the rule and the handling.
type Decision = (Option<i32>, Option<String>);

/// The sum of a metric's samples whose labels contain every one of `labels` (a
/// comma-separated list of label values).
async fn metric_labelled(ops_url: &str, name: &str, labels: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{ops_url}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{name}{{"))
                && labels.split(',').all(|v| l.contains(&format!("\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Raw lines of the vendor variants logger cannot write (Cisco IOS headers, no priority),
/// a time zone (`MUTT_SYSLOG_TIMEZONE`), and garbage that must not stop the listener.
#[tokio::test]
async fn vendor_variants_and_garbage_over_udp_and_tcp() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let udp = free_port();
    let tcp = free_port();
    let m = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_SYSLOG_UDP_LISTEN", &format!("127.0.0.1:{udp}"))
            .set("MUTT_SYSLOG_TCP_LISTEN", &format!("127.0.0.1:{tcp}"))
            .set("MUTT_SYSLOG_TIMEZONE", "-05:00"),
    )
    .await?;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let target = format!("127.0.0.1:{udp}");
    // Datagrams that cannot be an event at all: counted, and the listener goes on.
    for junk in [&b""[..], b"\0\0\0", b" \r\n", &[0u8; 65_000][..]] {
        sock.send_to(junk, &target).await?;
    }
    let lines = [
        "<187>52: *Dec  6 09:46:11.123 UTC: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to down",
        "<189>1234: dist-sw-03: Dec 6 2026 23:10:00 UTC: %SYS-5-CONFIG_I: Configured from console by admin",
        "<13>Dec  6 08:00:00 edge-01 app: a BSD line in the configured zone",
        "no priority at all",
    ];
    for l in &lines[..2] {
        sock.send_to(l.as_bytes(), &target).await?;
    }
    // TCP: a stream that ends inside an octet-counted frame is counted; the next
    // connection is read as usual, its last line without a line feed too.
    let mut bad = tokio::net::TcpStream::connect(("127.0.0.1", tcp)).await?;
    bad.write_all(b"300 <14>the start of a frame that never ends")
        .await?;
    bad.shutdown().await?;
    let mut good = tokio::net::TcpStream::connect(("127.0.0.1", tcp)).await?;
    good.write_all(format!("{}\n{}", lines[2], lines[3]).as_bytes())
        .await?;
    good.shutdown().await?;
    let messages = [
        "%LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to down",
        "%SYS-5-CONFIG_I: Configured from console by admin",
        "a BSD line in the configured zone",
        "no priority at all",
    ];
    let got = wait_messages(&env, &messages).await?;
    let cisco = &got[messages[0]];
    assert_eq!(cisco.hostname, "127.0.0.1");
    assert_eq!(cisco.syslog_severity, Some(3));
    assert!(
        cisco.timestamp.ends_with("09:46:11.123Z"),
        "{}",
        cisco.timestamp
    );
    assert_eq!(cisco.attributes["cisco_mnemonic"], "UPDOWN");
    let origin = &got[messages[1]];
    assert_eq!(origin.hostname, "dist-sw-03");
    assert_eq!(origin.timestamp, "2026-12-06T23:10:00Z");
    let bsd = &got[messages[2]];
    assert!(
        bsd.timestamp.ends_with("T08:00:00-05:00"),
        "{}",
        bsd.timestamp
    );
    assert_eq!(bsd.hostname, "edge-01");
    let plain = &got[messages[3]];
    assert_eq!(plain.syslog_severity, Some(5));
    wait_until("garbage counted", Duration::from_secs(5), || async {
        let empty = metric_labelled(
            &m.ops_url,
            "mutt_ingest_parse_errors_total",
            "syslog_udp,empty",
        )
        .await;
        let framing = metric_labelled(
            &m.ops_url,
            "mutt_ingest_parse_errors_total",
            "syslog_tcp,framing",
        )
        .await;
        (empty >= 4.0 && framing >= 1.0).then_some(())
    })
    .await?;
    // Still listening after all that.
    sock.send_to(b"<14>after the garbage", &target).await?;
    wait_messages(&env, &["after the garbage"]).await?;
    drop(m);
    env.cleanup().await
}

/// The trap table the test gives (`MUTT_SNMP_TRAPS_FILE`): a severity for each sample OID
/// the built-in table does not name, and an override of one it does.
fn trap_table(dir: &Path) -> anyhow::Result<(std::path::PathBuf, HashMap<String, u8>)> {
    let mut expected: HashMap<String, u8> = HashMap::new();
    let mut toml = String::new();
    for (i, t) in sample_traps().iter().enumerate() {
        let oid = t["trap_oid"].as_str().unwrap().to_string();
        if expected.contains_key(&oid) {
            continue;
        }
        let builtin = match oid.as_str() {
            "1.3.6.1.6.3.1.1.5.1" => Some(4), // coldStart
            "1.3.6.1.6.3.1.1.5.3" => Some(3), // linkDown
            "1.3.6.1.2.1.14.16.2.2" => Some(4),
            "1.3.6.1.4.1.9.9.41.2.0.1" => Some(4),
            _ => None,
        };
        let sev = match builtin {
            // One built-in entry overridden by the file.
            Some(_) if oid == "1.3.6.1.4.1.9.9.41.2.0.1" => 1,
            Some(s) => {
                expected.insert(oid, s);
                continue;
            }
            None => (i % 8) as u8,
        };
        toml.push_str(&format!(
            "[[trap]]\noid = \"{oid}\"\nname = \"sample{i}\"\nseverity = {sev}\n\n"
        ));
        expected.insert(oid, sev);
    }
    let path = dir.join("traps.toml");
    std::fs::write(&path, toml)?;
    Ok((path, expected))
}

fn sample_traps() -> Vec<Value> {
    let text = include_str!("../../../processor/devkit/data/demo_snmp_traps.json");
    serde_json::from_str(text.trim_start_matches('\u{feff}')).unwrap()
}

/// `@{oid=…; value=…}` → (oid, net-snmp type, value).
fn varbind(s: &str) -> (String, &'static str, String) {
    let inner = s.trim().trim_start_matches("@{").trim_end_matches('}');
    let (o, v) = inner.split_once(';').unwrap();
    let oid = o.trim().trim_start_matches("oid=").to_string();
    let value = v.trim().trim_start_matches("value=").to_string();
    let kind = if value.parse::<i64>().is_ok() {
        "i"
    } else if value.parse::<std::net::Ipv4Addr>().is_ok() {
        "a"
    } else {
        "s"
    };
    (oid, kind, value)
}

/// Every sample trap sent with `snmptrap -v 2c` arrives with the expected host (sysName,
/// else the original agent address carried as snmpTrapAddress.0), OID and severity; a v1
/// trap is mapped per RFC 3584; an inform is answered only once appended and only with a
/// known community; refused traps are counted.
#[tokio::test]
async fn net_snmp_traps_and_informs() -> anyhow::Result<()> {
    anyhow::ensure!(
        have("snmptrap"),
        "net-snmp's snmptrap is needed (Debian: snmp)"
    );
    let env = TestEnv::new().await?;
    let port = free_port();
    let (table, expected) = trap_table(&env.dir)?;
    let m = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_SNMP_LISTEN", &format!("127.0.0.1:{port}"))
            .set("MUTT_SNMP_COMMUNITIES", "public, n0c-2026")
            .set("MUTT_SNMP_TRAPS_FILE", table.to_str().unwrap())
            .set("MUTT_LOG_LEVEL", "mutt_ingest=debug,info"),
    )
    .await?;
    let target = format!("127.0.0.1:{port}");
    let traps = sample_traps();
    let mut want = Vec::new();
    for (i, t) in traps.iter().enumerate() {
        let oid = t["trap_oid"].as_str().unwrap();
        let vbs: Vec<(String, &str, String)> = t["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| varbind(v.as_str().unwrap()))
            .collect();
        let sys_name = vbs
            .iter()
            .find(|(o, ..)| o == "1.3.6.1.2.1.1.5.0")
            .map(|(.., v)| v.clone());
        let source_ip = t["source_ip"].as_str().unwrap().to_string();
        let community = if i % 2 == 0 { "public" } else { "n0c-2026" };
        let mut args: Vec<String> = ["-v", "2c", "-c", community, &target, "", oid]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (o, k, v) in &vbs {
            if o == "1.3.6.1.2.1.1.3.0" {
                continue; // sysUpTime.0 is the header's ("" = now)
            }
            args.extend([o.clone(), k.to_string(), v.clone()]);
        }
        // The original agent, as a proxy would carry it (RFC 3584 §3.1).
        args.extend(["1.3.6.1.6.3.18.1.3.0".into(), "a".into(), source_ip.clone()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok("snmptrap", &refs).await?;
        want.push((
            sys_name.unwrap_or(source_ip),
            oid.to_string(),
            expected[oid],
        ));
    }
    let got = wait_events(&env, traps.len(), Duration::from_secs(20)).await?;
    let mut got_set: Vec<(String, String, u8)> = got
        .iter()
        .map(|e| {
            (
                e.hostname.clone(),
                e.trap_oid.clone().unwrap(),
                e.syslog_severity.unwrap(),
            )
        })
        .collect();
    got_set.sort();
    want.sort();
    assert_eq!(got_set, want, "host, OID and severity of every sample trap");
    let link_down = got
        .iter()
        .find(|e| e.trap_oid.as_deref() == Some("1.3.6.1.6.3.1.1.5.3"))
        .unwrap();
    assert_eq!(link_down.attributes["trap_name"], "linkDown");
    assert!(
        link_down
            .message
            .starts_with("linkDown (1.3.6.1.6.3.1.1.5.3): "),
        "{}",
        link_down.message
    );
    assert_eq!(link_down.source_type.as_deref(), Some("snmp"));
    assert!(
        got.iter()
            .all(|e| !e.message.contains("public") && !e.message.contains("n0c-2026"))
    );

    // A v1 trap: generic 2 is linkDown; the agent address names the host.
    ok(
        "snmptrap",
        &[
            "-v",
            "1",
            "-c",
            "public",
            &target,
            "1.3.6.1.4.1.9.9.41",
            "10.20.30.40",
            "2",
            "0",
            "",
        ],
    )
    .await?;
    let got = wait_events(&env, traps.len() + 1, Duration::from_secs(10)).await?;
    let v1 = got.last().unwrap();
    assert_eq!(v1.trap_oid.as_deref(), Some("1.3.6.1.6.3.1.1.5.3"));
    assert_eq!(v1.hostname, "10.20.30.40");
    assert_eq!(v1.attributes["snmp_version"], "1");

    // An inform is acknowledged (snmpinform exits 0 only on a Response)…
    ok(
        "snmpinform",
        &[
            "-v",
            "2c",
            "-c",
            "public",
            "-t",
            "3",
            "-r",
            "0",
            &target,
            "",
            "1.3.6.1.6.3.1.1.5.1",
        ],
    )
    .await?;
    let got = wait_events(&env, traps.len() + 2, Duration::from_secs(10)).await?;
    assert_eq!(got.last().unwrap().attributes["inform"], true);
    // …but not with an unknown community: refused, counted, no event.
    let refused_before =
        metric_labelled(&m.ops_url, "mutt_ingest_parse_errors_total", "community").await;
    let out = run(
        "snmpinform",
        &[
            "-v",
            "2c",
            "-c",
            "wr0ng-c0mmunity",
            "-t",
            "1",
            "-r",
            "0",
            &target,
            "",
            "1.3.6.1.6.3.1.1.5.1",
        ],
    )
    .await?;
    assert!(
        !out.status.success(),
        "an inform with an unknown community is not answered"
    );
    ok(
        "snmptrap",
        &[
            "-v",
            "2c",
            "-c",
            "wr0ng-c0mmunity",
            &target,
            "",
            "1.3.6.1.6.3.1.1.5.1",
        ],
    )
    .await?;
    wait_until("refused traps counted", Duration::from_secs(5), || async {
        (metric_labelled(&m.ops_url, "mutt_ingest_parse_errors_total", "community").await
            >= refused_before + 2.0)
            .then_some(())
    })
    .await?;
    // SNMPv3 is refused (ADR 0020) and counted as such.
    ok(
        "snmptrap",
        &[
            "-v",
            "3",
            "-u",
            "noc",
            "-l",
            "noAuthNoPriv",
            "-e",
            "0x8000000001020304",
            &target,
            "",
            "1.3.6.1.6.3.1.1.5.1",
        ],
    )
    .await?;
    wait_until("the v3 trap counted", Duration::from_secs(5), || async {
        (metric_labelled(&m.ops_url, "mutt_ingest_parse_errors_total", "snmp,version").await >= 1.0)
            .then_some(())
    })
    .await?;
    assert_eq!(events(&env).await?.len(), traps.len() + 2);
    let log = m.log_text();
    assert!(
        log.contains("unknown community"),
        "the refusal is logged at debug"
    );
    assert!(
        !log.contains("wr0ng-c0mmunity"),
        "a refused community is never logged"
    );
    drop(m);
    env.cleanup().await
}

/// Communities from a file rotate without a restart: the new list is accepted at once,
/// the old one only for the overlap (`MUTT_SNMP_COMMUNITIES_FILE`).
#[tokio::test]
async fn snmp_communities_rotate_through_their_file() -> anyhow::Result<()> {
    anyhow::ensure!(
        have("snmpinform"),
        "net-snmp's snmpinform is needed (Debian: snmp)"
    );
    let env = TestEnv::new().await?;
    let port = free_port();
    let file = env.dir.join("communities");
    std::fs::write(&file, "old-one\n")?;
    let _m = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_SNMP_LISTEN", &format!("127.0.0.1:{port}"))
            .set("MUTT_SNMP_COMMUNITIES_FILE", file.to_str().unwrap())
            .set("MUTT_SECRET_FILE_POLL", "200ms")
            .set("MUTT_SECRET_FILE_OVERLAP", "2s"),
    )
    .await?;
    let target = format!("127.0.0.1:{port}");
    let inform = |c: &'static str| answered_inform(&target, c);
    assert!(inform("old-one").await);
    assert!(!inform("new-one").await);
    std::fs::write(&file, "new-one\n")?;
    wait_until(
        "the new community accepted",
        Duration::from_secs(10),
        || async { inform("new-one").await.then_some(()) },
    )
    .await?;
    wait_until(
        "the old community retired after the overlap",
        Duration::from_secs(10),
        || async { (!inform("old-one").await).then_some(()) },
    )
    .await?;
    env.cleanup().await
}

/// rsyslog reads a file of the sample lines and forwards it over TCP with octet counting
/// (`omfwd`, a disk-less action queue that retries forever); ingest is stopped (SIGTERM)
/// and started again on the same port while lines flow: every line arrives.
#[tokio::test]
async fn rsyslog_forwarding_loses_nothing_across_an_ingest_restart() -> anyhow::Result<()> {
    anyhow::ensure!(have("rsyslogd"), "rsyslog is needed (Debian: rsyslog)");
    let env = TestEnv::new().await?;
    let port = free_port();
    let cfg = MuttConfig::new("ingest").set("MUTT_SYSLOG_TCP_LISTEN", &format!("127.0.0.1:{port}"));
    let mut m = Mutt::start(&env, &cfg).await?;
    let work = env.dir.join("rsyslog");
    std::fs::create_dir_all(&work)?;
    let input = work.join("input.log");
    std::fs::write(&input, "")?;
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{w}")
module(load="imfile" mode="polling" PollingInterval="1")
input(type="imfile" File="{input}" Tag="sample:" Severity="warning" Facility="local7" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" Target="127.0.0.1" Port="{port}" Protocol="tcp" TCP_Framing="octet-counted"
         Template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.size="100000"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"#,
            w = work.display(),
            input = input.display(),
        ),
    )?;
    let mut rsyslog = Command::new("rsyslogd")
        .args([
            "-n",
            "-f",
            conf.to_str().unwrap(),
            "-i",
            work.join("pid").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            work.join("rsyslog.err"),
        )?))
        .kill_on_drop(true)
        .spawn()?;
    let samples = mutt_devkit::samples::syslog_events();
    let total = 1200usize;
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .await?;
    for i in 0..total {
        let msg = samples[i % samples.len()]["message"].as_str().unwrap();
        file.write_all(format!("seq={i} {msg}\n").as_bytes())
            .await?;
        if i % 50 == 49 {
            file.flush().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if i == total / 2 {
            // Ingest restarts while rsyslog keeps forwarding.
            m.terminate()?;
            anyhow::ensure!(
                m.wait_exit(Duration::from_secs(20)).await?,
                "ingest did not stop"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            m = Mutt::start(&env, &cfg).await?;
        }
    }
    file.flush().await?;
    let got = wait_until(
        &format!("{total} lines in the stream"),
        Duration::from_secs(60),
        || async {
            let seqs: HashSet<usize> = events(&env)
                .await
                .ok()?
                .iter()
                .filter_map(|e| {
                    e.message
                        .strip_prefix("seq=")?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .collect();
            (seqs.len() == total).then_some(seqs)
        },
    )
    .await;
    let _ = rsyslog.kill().await;
    let seqs = got?;
    assert_eq!(seqs, (0..total).collect::<HashSet<_>>());
    let e = events(&env).await?;
    let sample = e.iter().find(|e| e.message.starts_with("seq=0 ")).unwrap();
    assert_eq!(sample.syslog_severity, Some(4));
    assert_eq!(sample.attributes["facility"], "local7");
    assert_eq!(sample.attributes["transport"], "tcp");
    drop(m);
    env.cleanup().await
}

/// TLS (RFC 5425): `openssl s_client` sends octet-counted and plain lines; a client that
/// speaks plain TCP to the TLS port is refused and counted, and the listener goes on.
#[tokio::test]
async fn a_tls_listener_accepts_openssl_s_client() -> anyhow::Result<()> {
    anyhow::ensure!(have("openssl"), "openssl is needed");
    let env = TestEnv::new().await?;
    let (cert, key) = (env.dir.join("cert.pem"), env.dir.join("key.pem"));
    ok(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
        ],
    )
    .await?;
    let port = free_port();
    let m = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_SYSLOG_TLS_LISTEN", &format!("127.0.0.1:{port}"))
            .set("MUTT_SYSLOG_TLS_CERT_FILE", cert.to_str().unwrap())
            .set("MUTT_SYSLOG_TLS_KEY_FILE", key.to_str().unwrap()),
    )
    .await?;
    // Plain TCP to the TLS port: refused, counted.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    plain.write_all(b"<14>1 - h a - - - not tls\n").await?;
    drop(plain);
    let line = "<165>1 2026-12-07T10:00:00Z tls-host app - - - over tls";
    let mut s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-quiet",
            "-CAfile",
            cert.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = s_client.stdin.take().unwrap();
    stdin
        .write_all(format!("{} {line}\n<14>plain line over tls\n", line.len()).as_bytes())
        .await?;
    let got = wait_events(&env, 2, Duration::from_secs(15)).await?;
    drop(stdin);
    let _ = s_client.kill().await;
    let tls = got.iter().find(|e| e.message == "over tls").unwrap();
    assert_eq!(tls.hostname, "tls-host");
    assert_eq!(tls.attributes["transport"], "tls");
    assert!(got.iter().any(|e| e.message == "plain line over tls"));
    wait_until(
        "the plain client counted",
        Duration::from_secs(5),
        || async {
            (metric_labelled(
                &m.ops_url,
                "mutt_ingest_parse_errors_total",
                "tls_handshake",
            )
            .await
                >= 1.0)
                .then_some(())
        },
    )
    .await?;
    drop(m);
    env.cleanup().await
}

/// Over the lag cap a TCP listener stops reading (nothing dropped: the sender waits) and a
/// UDP listener drops and counts; `MUTT_SYSLOG_MAX_CONNECTIONS` caps connections.
#[tokio::test]
async fn shedding_pauses_streams_and_counts_datagram_drops() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.migrate().await?;
    let (udp, tcp) = (free_port(), free_port());
    let m = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_SYSLOG_UDP_LISTEN", &format!("127.0.0.1:{udp}"))
            .set("MUTT_SYSLOG_TCP_LISTEN", &format!("127.0.0.1:{tcp}"))
            .set("MUTT_SYSLOG_MAX_CONNECTIONS", "1")
            .set("MUTT_INGEST_MAX_LAG", "100"),
    )
    .await?;
    // No alerter runs: the lag grows with every event. More lines than a few reads hold,
    // however late the lag measurement (every 200 ms) catches up.
    const LINES: usize = 20_000;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", tcp)).await?;
    let mut body = String::new();
    for i in 0..LINES {
        body.push_str(&format!("<12>Dec  7 10:00:00 h app: stream line {i}\n"));
    }
    let writer = tokio::spawn(async move {
        let r = conn.write_all(body.as_bytes()).await;
        (conn, r)
    });
    wait_events(&env, 101, Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = events(&env).await?.len();
    assert!(
        held < LINES / 2,
        "the listener stopped reading at the cap ({held} appended)"
    );
    assert_eq!(
        metric_labelled(&m.ops_url, "mutt_ingest_connections", "syslog_tcp").await,
        1.0,
        "the held connection is open"
    );
    // A second connection is over MUTT_SYSLOG_MAX_CONNECTIONS: closed at once.
    let mut second = tokio::net::TcpStream::connect(("127.0.0.1", tcp)).await?;
    let mut b = [0u8; 1];
    let closed = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut second, &mut b),
    )
    .await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the second connection is closed"
    );
    // Datagrams over the cap are dropped and counted.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for i in 0..20 {
        sock.send_to(format!("<12>dgram {i}").as_bytes(), ("127.0.0.1", udp))
            .await?;
    }
    wait_until("datagram drops counted", Duration::from_secs(5), || async {
        (metric_labelled(&m.ops_url, "mutt_ingest_dropped_events_total", "lag").await >= 20.0)
            .then_some(())
    })
    .await?;
    // An alerter drains the stream: the held stream data flows in, none lost.
    let alerter = Mutt::start(&env, &MuttConfig::new("alerter")).await?;
    // Counted by the listener's metric: the alerter's trimming may remove entries.
    wait_until(
        "every stream line appended",
        Duration::from_secs(60),
        || async {
            let n = metric_labelled(
                &m.ops_url,
                "mutt_ingest_events_total",
                "syslog_tcp,accepted",
            )
            .await;
            (n as usize == LINES).then_some(())
        },
    )
    .await?;
    let (_conn, r) = writer.await?;
    r?;
    assert_eq!(
        metric_labelled(&m.ops_url, "mutt_ingest_dropped_events_total", "syslog_tcp").await,
        0.0
    );
    drop(alerter);
    drop(m);
    env.cleanup().await
}

/// The communities rotate through the control plane like any secret: staged, the new one
/// is accepted beside the old; retired, only the new one.
#[tokio::test]
async fn snmp_communities_rotate_through_the_control_plane() -> anyhow::Result<()> {
    anyhow::ensure!(
        have("snmpinform"),
        "net-snmp's snmpinform is needed (Debian: snmp)"
    );
    let env = TestEnv::new().await?;
    env.migrate().await?;
    let port = free_port();
    let ingest = Mutt::start(
        &env,
        &MuttConfig::new("ingest")
            .set("MUTT_SNMP_LISTEN", &format!("127.0.0.1:{port}"))
            .set("MUTT_SNMP_COMMUNITIES", "first-community"),
    )
    .await?;
    // Like every secret, the control plane knows the value the processes started with.
    let control = Mutt::start(
        &env,
        &MuttConfig::new("control").set("MUTT_SNMP_COMMUNITIES", "first-community"),
    )
    .await?;
    let api = Api::new(&control.control_url, "test-key");
    let target = format!("127.0.0.1:{port}");
    let inform = |c: &'static str| answered_inform(&target, c);
    let step = |step: &'static str, value: Option<&'static str>| {
        let api = &api;
        async move {
            let mut body = json!({"step": step, "reason": format!("snmp communities: {step}")});
            if let Some(v) = value {
                body["value"] = json!(v);
            }
            wait_until(
                &format!("the {step} step"),
                Duration::from_secs(20),
                || async {
                    let (status, v, _) = api
                        .call(
                            "POST",
                            "/api/v2/secrets/snmp_communities/rotate",
                            Some(body.clone()),
                        )
                        .await
                        .ok()?;
                    // Promote and retire wait until every process applied the previous step.
                    (status == 200).then_some(v)
                },
            )
            .await
        }
    };
    assert!(inform("first-community").await);
    assert!(!inform("second-community").await);
    step("stage", Some("second-community")).await?;
    wait_until(
        "the staged community accepted",
        Duration::from_secs(10),
        || async { inform("second-community").await.then_some(()) },
    )
    .await?;
    assert!(inform("first-community").await, "staged: both accepted");
    step("promote", None).await?;
    step("retire", None).await?;
    wait_until(
        "the first community retired",
        Duration::from_secs(10),
        || async { (!inform("first-community").await).then_some(()) },
    )
    .await?;
    assert!(inform("second-community").await);
    // The values appear in no log and no audit row.
    for m in [&ingest, &control] {
        let log = m.log_text();
        assert!(!log.contains("first-community") && !log.contains("second-community"));
    }
    let mut db = env.db().await?;
    let audit: Vec<(String,)> = sqlx::query_as(
        "SELECT coalesce(old_values::text, '') || coalesce(new_values::text, '') FROM config_audit_log",
    )
    .fetch_all(&mut db)
    .await?;
    assert!(audit.len() >= 3, "every step audited: {audit:?}");
    assert!(
        audit
            .iter()
            .all(|(t,)| !t.contains("first-community") && !t.contains("second-community")),
        "{audit:?}"
    );
    drop((ingest, control));
    env.cleanup().await
}
