//! The raw ceiling of Redis for MUTT's work, without MUTT's logic: how fast this server
//! appends, and relays (read through a group, append elsewhere, acknowledge), entries of a
//! given size, through the same verbs MUTT uses (so the relay pays for the script that
//! makes an append and its acknowledgement atomic, as the alerter does). Benchmarks report
//! MUTT's rates as a share of it.

use std::time::{Duration, Instant};

use mutt_bus::{Bus, BusError, NewEntry, TraceContext};

/// Appends `n` entries of `payload` to `stream`, `batch` per pipeline; returns the time.
pub async fn append(
    bus: &Bus,
    stream: &str,
    n: usize,
    payload: &[u8],
    batch: usize,
) -> Result<Duration, BusError> {
    let entry = NewEntry::new(payload.to_vec(), TraceContext::default());
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(batch.max(1));
        bus.append(stream, &vec![entry.clone(); k]).await?;
        left -= k;
    }
    Ok(started.elapsed())
}

/// Relays every entry of `from` through a new group to `to`, `batch` at a time: read,
/// append each to `to` and acknowledge them. Returns the entries relayed and the time.
pub async fn relay(
    bus: &Bus,
    from: &str,
    to: &str,
    batch: usize,
) -> Result<(usize, Duration), BusError> {
    bus.ensure_group(from, "bench").await?;
    let mut reader = bus
        .reader(from, "bench", "relay", Duration::from_millis(10))
        .await?;
    // The consumer's own backlog first (empty: the group is new).
    reader.read(batch).await?;
    let started = Instant::now();
    let mut relayed = 0;
    loop {
        let entries = reader.read(batch).await?;
        if entries.is_empty() {
            break;
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let out: Vec<NewEntry> = entries
            .iter()
            .filter_map(|e| e.payload())
            .map(|p| NewEntry::new(p.to_vec(), TraceContext::default()))
            .collect();
        bus.ack_and_append(from, "bench", &ids, to, &out).await?;
        relayed += entries.len();
    }
    Ok((relayed, started.elapsed()))
}
