//! gRPC push: Loki's `logproto.Pusher/Push`, for clients that push over
//! gRPC (Loki's port 9095). The tenant comes from the `x-scope-orgid`
//! metadata. Errors map to gRPC codes the way Loki's HTTP statuses map:
//! invalid input → `InvalidArgument`, limits → `ResourceExhausted`, WAL
//! failure or no memory left for decoding → `Unavailable`.
//!
//! The service is written out here rather than generated: its codec hands
//! over the message's bytes as received, so that the request is decoded by
//! the same metered decoder as HTTP pushes ([`crate::push::protobuf`]),
//! not by prost into structures nobody has counted. Messages are limited
//! to the largest decompressed size any tenant may send.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use larch_proto::larch::{ReadyRequest, ReadyResponse};
use larch_proto::logproto::PushResponse;
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body as HttpBody, BoxFuture, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::AppState;
use super::push::{PushError, admit, ingest, prepare};
use crate::push::{DecodeError, Format, body};
use crate::tenant::TenantId;

/// The `logproto.Pusher` service.
#[derive(Clone)]
pub struct PusherService {
    app: AppState,
    max_message: usize,
}

impl PusherService {
    /// The service over `app`.
    pub fn new(app: AppState) -> PusherService {
        let limit = app.decode_budget.limit();
        let max_message = std::iter::once(app.config.limits.clone())
            .chain(
                app.config
                    .overrides
                    .keys()
                    .map(|t| app.config.limits_for(t)),
            )
            .map(|l| body::max_decompressed(l.ingestion_burst_size_mb * 1024.0 * 1024.0, limit))
            .max()
            .unwrap_or(body::MIN_DECOMPRESSED);
        PusherService { app, max_message }
    }

    async fn push(
        app: AppState,
        request: Request<Bytes>,
        forwarded: bool,
    ) -> Result<Response<PushResponse>, Status> {
        let started = std::time::Instant::now();
        let org = request
            .metadata()
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let result = async {
            let tenant = TenantId::from_header(org.as_deref(), app.config.auth_enabled)
                .map_err(|e| PushError::Tenant(e.to_string()))?;
            let msg = request.into_inner();
            let mut meter = admit(&app, &tenant)?;
            if msg.len() > meter.max_decompressed {
                return Err(PushError::Decode(body::too_large(
                    msg.len(),
                    meter.max_decompressed,
                )));
            }
            meter.charge(msg.len()).map_err(PushError::Decode)?;
            let prepared = prepare(&app, &tenant, Format::Grpc, None, None, msg, meter).await?;
            ingest(&app, &tenant, prepared, forwarded).await
        }
        .await;
        let (status, out) = match result {
            Ok(()) => ("success", Ok(Response::new(PushResponse {}))),
            Err(e) => {
                let status = match e {
                    PushError::Tenant(m) => Status::unauthenticated(m),
                    PushError::Decode(DecodeError::BadRequest(m)) => Status::invalid_argument(m),
                    PushError::Decode(DecodeError::TooLarge(m)) | PushError::TooLarge(m) => {
                        Status::resource_exhausted(m)
                    }
                    PushError::Decode(DecodeError::Busy(m)) => Status::unavailable(m),
                    PushError::Rejected {
                        retry: true,
                        message,
                    } => Status::resource_exhausted(message),
                    PushError::Rejected {
                        retry: false,
                        message,
                    } => Status::invalid_argument(message),
                    PushError::Unavailable(m) => Status::unavailable(m),
                };
                ("error", Err(status))
            }
        };
        app.metrics
            .request_duration
            .get_or_create(&vec![
                (
                    "route",
                    if forwarded {
                        "larch_Replica_Push"
                    } else {
                        "logproto_Pusher_Push"
                    }
                    .to_string(),
                ),
                ("status_code", status.to_string()),
            ])
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

impl NamedService for PusherService {
    const NAME: &'static str = "logproto.Pusher";
}

impl<B> tonic::codegen::Service<http::Request<B>> for PusherService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if req.uri().path() != "/logproto.Pusher/Push" {
                return Ok(unimplemented());
            }
            let mut grpc = Grpc::new(RawCodec).max_decoding_message_size(this.max_message);
            Ok(grpc.unary(PushMethod(this.app, false), req).await)
        })
    }
}

fn unimplemented() -> http::Response<Body> {
    let mut response = http::Response::new(Body::default());
    let headers = response.headers_mut();
    headers.insert(
        Status::GRPC_STATUS,
        http::HeaderValue::from(tonic::Code::Unimplemented as i32),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}

struct PushMethod(AppState, bool);

impl UnaryService<Bytes> for PushMethod {
    type Response = PushResponse;
    type Future = BoxFuture<Response<PushResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        Box::pin(PusherService::push(self.0.clone(), request, self.1))
    }
}

/// `larch.Replica`, between write nodes (an administrator's route):
/// `Push` takes a push another member received and validated, and writes
/// it to this node's WAL only (never forwarding it again); `Ready` says
/// whether this node takes streams, or is leaving and still answers
/// queries (membership asks it).
#[derive(Clone)]
pub struct ReplicaService {
    pusher: PusherService,
}

impl ReplicaService {
    /// The service over `app`.
    pub fn new(app: AppState) -> ReplicaService {
        ReplicaService {
            pusher: PusherService::new(app),
        }
    }

    fn taking_streams(app: &AppState) -> bool {
        app.ready.load(std::sync::atomic::Ordering::Acquire)
            && app.ingester.is_healthy()
            && app.config.target.writes()
            && !app
                .ingester
                .cluster
                .as_ref()
                .is_some_and(|c| c.is_leaving())
    }
}

impl NamedService for ReplicaService {
    const NAME: &'static str = "larch.Replica";
}

struct ReadyMethod(AppState);

impl UnaryService<ReadyRequest> for ReadyMethod {
    type Response = ReadyResponse;
    type Future = BoxFuture<Response<ReadyResponse>, Status>;

    fn call(&mut self, _request: Request<ReadyRequest>) -> Self::Future {
        let ready = ReplicaService::taking_streams(&self.0);
        let cluster = self.0.ingester.cluster.as_ref();
        let identity = cluster.map(|c| c.self_addr.clone()).unwrap_or_default();
        // Leaving, but its query service still answers (it stops with
        // the gRPC server, after the linger).
        let leaving = cluster.is_some_and(|c| c.is_leaving());
        Box::pin(async move {
            Ok(Response::new(ReadyResponse {
                ready,
                identity,
                leaving,
            }))
        })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for ReplicaService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let app = this.pusher.app.clone();
            match req.uri().path() {
                "/larch.Replica/Push" => {
                    if !ReplicaService::taking_streams(&app) {
                        let status = Status::unavailable(
                            "this write node is leaving the cluster or not ready; the stream goes to its next owner",
                        );
                        return Ok(status.into_http());
                    }
                    let mut grpc =
                        Grpc::new(RawCodec).max_decoding_message_size(this.pusher.max_message);
                    Ok(grpc.unary(PushMethod(app, true), req).await)
                }
                "/larch.Replica/Ready" => {
                    let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
                    Ok(grpc.unary(ReadyMethod(app), req).await)
                }
                _ => Ok(unimplemented()),
            }
        })
    }
}

/// Requests as their bytes, responses as protobuf.
struct RawCodec;

impl Codec for RawCodec {
    type Encode = PushResponse;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = PushResponse;
    type Error = Status;

    fn encode(&mut self, item: PushResponse, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response failed: {e}")))
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}
