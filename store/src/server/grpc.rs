//! gRPC push: Loki's `logproto.Pusher/Push`, for clients that push over
//! gRPC (Loki's port 9095). The tenant comes from the `x-scope-orgid`
//! metadata. Errors map to gRPC codes the way Loki's HTTP statuses map:
//! invalid input → `InvalidArgument`, limits → `ResourceExhausted`, WAL
//! failure → `Unavailable`.

use larch_proto::logproto::pusher_server::Pusher;
use larch_proto::logproto::{PushRequest, PushResponse};
use tonic::{Request, Response, Status};

use super::AppState;
use super::push::{PushError, ingest};
use crate::push::{DecodeError, protobuf};
use crate::tenant::TenantId;

/// The `logproto.Pusher` service.
pub struct GrpcPusher {
    /// Shared state.
    pub app: AppState,
}

#[tonic::async_trait]
impl Pusher for GrpcPusher {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let started = std::time::Instant::now();
        let org = request
            .metadata()
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let result = async {
            let tenant = TenantId::from_header(org.as_deref(), self.app.config.auth_enabled)
                .map_err(|e| PushError::Tenant(e.to_string()))?;
            let push = protobuf::from_proto(request.into_inner()).map_err(PushError::Decode)?;
            ingest(&self.app, &tenant, push).await
        }
        .await;
        let (status, out) = match result {
            Ok(()) => ("success", Ok(Response::new(PushResponse {}))),
            Err(e) => {
                let status = match e {
                    PushError::Tenant(m) => Status::unauthenticated(m),
                    PushError::Decode(DecodeError::BadRequest(m)) => Status::invalid_argument(m),
                    PushError::Decode(DecodeError::TooLarge(m)) => Status::resource_exhausted(m),
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
        self.app
            .metrics
            .request_duration
            .get_or_create(&vec![
                ("route", "logproto_Pusher_Push".to_string()),
                ("status_code", status.to_string()),
            ])
            .observe(started.elapsed().as_secs_f64());
        out
    }
}
