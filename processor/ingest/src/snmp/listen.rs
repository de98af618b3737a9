//! The SNMP notification listener: datagrams decoded, their community checked against
//! the accepted ones, appended as events, and informs answered once their event is in
//! the stream (an inform that could not be appended gets no Response, so the sender
//! retries it).

use std::sync::Arc;

use mutt_worker::credentials::StateRx;
use subtle::ConstantTimeEq;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::intake::{Intake, Source};
use crate::udp;
use mutt_core::wire::snmp::{decode, inform_response};
use mutt_core::wire::trap_event::to_event;
use mutt_core::wire::traps::TrapTable;

/// Datagrams read in one batch at most.
const BATCH: usize = 256;

/// What the listener needs besides the intake.
#[derive(Debug, Clone)]
pub struct Options {
    /// The accepted communities (`MUTT_SNMP_COMMUNITIES`, rotatable): every value the
    /// secret's state accepts, each a comma-separated list.
    pub communities: StateRx,
    /// Names and severities of trap OIDs.
    pub table: Arc<TrapTable>,
    /// The longest message (`MUTT_INGEST_MAX_MESSAGE_BYTES`).
    pub max_message: usize,
}

/// Whether `community` is one of the accepted ones, compared in constant time.
fn accepted(communities: &StateRx, community: &[u8]) -> bool {
    let Some(state) = communities.borrow().clone() else {
        // Unset: every trap is refused.
        return false;
    };
    let mut ok = false;
    for value in state.accepted() {
        for c in value
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            // Not short-circuited: the time does not tell which entry (or whether any)
            // matched.
            ok |= bool::from(c.as_bytes().ct_eq(community));
        }
    }
    ok
}

/// Serves SNMP notifications until `stop`.
pub async fn serve(socket: UdpSocket, intake: Intake, opts: Options, stop: CancellationToken) {
    let socket = Arc::new(socket);
    let watch = tokio::spawn(udp::watch_kernel_drops(
        socket.clone(),
        Source::Snmp,
        stop.clone(),
    ));
    let mut batches = udp::Batches::new(socket.clone(), BATCH);
    while let Some(datagrams) = batches.next(Source::Snmp, &stop).await {
        let received = chrono::Utc::now();
        let mut values = Vec::with_capacity(datagrams.len());
        // The Response of each inform, by the position of its event in `values`.
        let mut responses = Vec::new();
        for (d, peer) in &datagrams {
            let n = match decode(d) {
                Ok(n) => n,
                Err(e) => {
                    intake.parse_error(e.kind());
                    continue;
                }
            };
            if !accepted(&opts.communities, n.community()) {
                // Counted, never logged with the community it carried.
                intake.parse_error("community");
                tracing::debug!(peer = %peer.ip(), "snmp notification refused: unknown community");
                continue;
            }
            if let Some(r) = inform_response(&n) {
                responses.push((values.len(), r, *peer));
            }
            values.push(to_event(
                &n,
                peer.ip().to_canonical(),
                received,
                &opts.table,
                opts.max_message,
            ));
        }
        let Some(batch) = intake.accept_datagrams(values).await else {
            continue;
        };
        // Only informs whose event is in the stream are answered: one refused by
        // validation, shed or over the rate gets no Response, so its sender retries.
        for (i, r, peer) in responses {
            if batch.kept.binary_search(&i).is_err() {
                continue;
            }
            if let Err(e) = socket.send_to(&r, peer).await {
                tracing::debug!(%peer, error = %e, "cannot answer an inform");
            }
        }
    }
    watch.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_core::credentials::CredentialState;
    use mutt_core::secret::Secret;

    #[test]
    fn every_listed_community_is_accepted_and_nothing_when_unset() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        assert!(!accepted(&rx, b"public"));
        tx.send_replace(Some(Arc::new(CredentialState::stable(
            Secret::new("alpha, beta".to_string()),
            0,
        ))));
        assert!(accepted(&rx, b"alpha"));
        assert!(accepted(&rx, b"beta"));
        assert!(!accepted(&rx, b"alph"));
        assert!(!accepted(&rx, b""));
    }
}
