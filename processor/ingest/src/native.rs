//! The socket listeners of `mutt ingest`, bound at start from their settings (a port in
//! use stops the process, naming the setting) and served beside the HTTP API.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::FixedOffset;
use mutt_core::settings::{SnmpSettings, SyslogSettings};
use mutt_worker::credentials::StateRx;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::IngestState;
use crate::intake::{Intake, Source};
use crate::{snmp, syslog, udp};
use mutt_core::wire::traps::TrapTable;

/// A listener that could not be set up; names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ListenError {
    /// The setting at fault.
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The bound listeners, not yet served.
#[derive(Default)]
pub struct Listeners {
    syslog_udp: Option<UdpSocket>,
    syslog_tcp: Option<TcpListener>,
    syslog_tls: Option<(TcpListener, TlsAcceptor)>,
    snmp: Option<(UdpSocket, Arc<TrapTable>)>,
    options: Option<syslog::listen::Options>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("addresses", &self.addresses())
            .finish_non_exhaustive()
    }
}

fn failed(setting: &'static str, addr: SocketAddr, e: std::io::Error) -> ListenError {
    ListenError {
        setting,
        message: format!("cannot listen on {addr}: {e}"),
    }
}

impl Listeners {
    /// Binds every listener that is set, and reads the TLS files and the trap table.
    pub async fn bind(
        sys: &SyslogSettings,
        snmp_settings: &SnmpSettings,
        limits: &mutt_core::event::Limits,
    ) -> Result<Self, ListenError> {
        let mut l = Self::default();
        if let Some(a) = sys.udp_listen {
            l.syslog_udp = Some(udp::bind(a).map_err(|e| failed("MUTT_SYSLOG_UDP_LISTEN", a, e))?);
        }
        if let Some(a) = sys.tcp_listen {
            l.syslog_tcp = Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| failed("MUTT_SYSLOG_TCP_LISTEN", a, e))?,
            );
        }
        if let (Some(a), Some(cert), Some(key)) =
            (sys.tls_listen, &sys.tls_cert_file, &sys.tls_key_file)
        {
            let acceptor = syslog::tls::acceptor(cert, key).map_err(|e| ListenError {
                setting: e.setting,
                message: e.message,
            })?;
            let tcp = TcpListener::bind(a)
                .await
                .map_err(|e| failed("MUTT_SYSLOG_TLS_LISTEN", a, e))?;
            l.syslog_tls = Some((tcp, acceptor));
        }
        if let Some(a) = snmp_settings.listen {
            let table =
                TrapTable::load(snmp_settings.traps_file.as_deref()).map_err(|e| ListenError {
                    setting: "MUTT_SNMP_TRAPS_FILE",
                    message: e.to_string(),
                })?;
            let socket = udp::bind(a).map_err(|e| failed("MUTT_SNMP_LISTEN", a, e))?;
            l.snmp = Some((socket, Arc::new(table)));
        }
        let zone = FixedOffset::east_opt(sys.timezone_offset_secs).ok_or(ListenError {
            setting: "MUTT_SYSLOG_TIMEZONE",
            message: "the offset is out of range".into(),
        })?;
        l.options = Some(syslog::listen::Options {
            zone,
            max_frame: limits.max_event_bytes,
            max_message: limits.max_message_bytes,
            max_connections: sys.max_connections.max(1),
        });
        Ok(l)
    }

    /// Where each bound listener listens, for the start-up log.
    pub fn addresses(&self) -> Vec<(Source, SocketAddr)> {
        let mut out = Vec::new();
        if let Some(a) = self.syslog_udp.as_ref().and_then(|s| s.local_addr().ok()) {
            out.push((Source::SyslogUdp, a));
        }
        if let Some(a) = self.syslog_tcp.as_ref().and_then(|s| s.local_addr().ok()) {
            out.push((Source::SyslogTcp, a));
        }
        if let Some(a) = self
            .syslog_tls
            .as_ref()
            .and_then(|(s, _)| s.local_addr().ok())
        {
            out.push((Source::SyslogTls, a));
        }
        if let Some(a) = self.snmp.as_ref().and_then(|(s, _)| s.local_addr().ok()) {
            out.push((Source::Snmp, a));
        }
        out
    }

    /// The futures that serve the listeners until `stop` (TCP and TLS then drain their
    /// connections). `communities` are the accepted SNMP communities.
    pub fn serve(
        self,
        state: Arc<IngestState>,
        communities: StateRx,
        stop: CancellationToken,
    ) -> Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> {
        let mut out: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
        let Some(opts) = self.options else {
            return out;
        };
        let intake = |s| Intake::new(state.clone(), s, stop.clone());
        if let Some(sock) = self.syslog_udp {
            out.push(Box::pin(syslog::listen::serve_udp(
                sock,
                intake(Source::SyslogUdp),
                opts,
                stop.clone(),
            )));
        }
        if let Some(l) = self.syslog_tcp {
            out.push(Box::pin(syslog::listen::serve_stream(
                l,
                None,
                intake(Source::SyslogTcp),
                opts,
                stop.clone(),
            )));
        }
        if let Some((l, acceptor)) = self.syslog_tls {
            out.push(Box::pin(syslog::listen::serve_stream(
                l,
                Some(acceptor),
                intake(Source::SyslogTls),
                opts,
                stop.clone(),
            )));
        }
        if let Some((sock, table)) = self.snmp {
            out.push(Box::pin(snmp::listen::serve(
                sock,
                intake(Source::Snmp),
                snmp::listen::Options {
                    communities,
                    table,
                    max_message: opts.max_message,
                },
                stop.clone(),
            )));
        }
        out
    }
}
