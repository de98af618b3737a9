//! An OTLP trace receiver, the other side of the exporter: gRPC or HTTP/protobuf, keeping
//! every span with its resource's `service.name` and `service.instance.id`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio_util::sync::CancellationToken;

/// A span with the attributes of its resource.
#[derive(Debug, Clone)]
pub struct Got {
    /// The span.
    pub span: Span,
    /// Its resource's `service.name`.
    pub service: String,
    /// Its resource's `service.instance.id`.
    pub instance: String,
}

/// The spans received so far.
#[derive(Debug, Clone, Default)]
pub struct Collector(Arc<Mutex<Vec<Got>>>);

impl Collector {
    fn take(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let attr = |k: &str| {
                rs.resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == k))
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default()
            };
            let (service, instance) = (attr("service.name"), attr("service.instance.id"));
            for ss in rs.scope_spans {
                for span in ss.spans {
                    all.push(Got {
                        span,
                        service: service.clone(),
                        instance: instance.clone(),
                    });
                }
            }
        }
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }

    /// The spans called `name`.
    pub fn named(&self, name: &str) -> Vec<Got> {
        self.spans()
            .into_iter()
            .filter(|g| g.span.name == name)
            .collect()
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A gRPC receiver on a free loopback port; returns it and its endpoint URL.
pub async fn grpc_collector(stop: &CancellationToken) -> anyhow::Result<(Collector, String)> {
    let c = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let svc = TraceServiceServer::new(c.clone());
    let stop = stop.clone();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            )
            .await;
    });
    Ok((c, format!("http://{addr}")))
}

/// An HTTP/protobuf receiver (`POST /v1/traces`) on a free loopback port; returns it and
/// its endpoint URL.
pub async fn http_collector(stop: &CancellationToken) -> anyhow::Result<(Collector, String)> {
    http_collector_on("127.0.0.1:0", stop).await
}

/// An HTTP/protobuf receiver bound at `addr` (the compose stack's containers export to a
/// fixed address of the host).
pub async fn http_collector_on(
    addr: &str,
    stop: &CancellationToken,
) -> anyhow::Result<(Collector, String)> {
    let c = Collector::default();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let c2 = c.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let c = c2.clone();
            async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(req) => {
                        c.take(req);
                        let resp = ExportTraceServiceResponse {
                            partial_success: None,
                        }
                        .encode_to_vec();
                        (
                            axum::http::StatusCode::OK,
                            [("content-type", "application/x-protobuf")],
                            resp,
                        )
                    }
                    Err(_) => (
                        axum::http::StatusCode::BAD_REQUEST,
                        [("content-type", "text/plain")],
                        Vec::new(),
                    ),
                }
            }
        }),
    );
    let stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok((c, format!("http://{addr}")))
}
