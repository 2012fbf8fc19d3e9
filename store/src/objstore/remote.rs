//! Write nodes answering for their unflushed data, and read nodes asking
//! them: the gRPC service `larch.Querier` on a write node's `grpc_addr`.
//!
//! * `Streams(tenant, selector, start, end, since)`: the streams matching
//!   with unflushed data in the range (labels and sizes, for the metadata
//!   endpoints), and the chunks each published since `since`.
//! * `Scan(tenant, fp, start, end, since, literals, columns)`: a stream's
//!   unflushed blocks in the range (sealed, written but unpublished, open
//!   and head; merged and without duplicates, skipped by their token
//!   filters as on any scan), and the chunks it published since `since`,
//!   which the reader reads from the bucket itself.
//!
//! The messages are declared here with prost rather than in `proto/`:
//! they are Larch's own, between two Larch processes.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use larch_query::{Columns, Direction, LabelSet, Literal, Matcher, ScanRequest};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use super::config::ReadConfig;
use crate::chunk::DecodedBlock;
use crate::index::ChunkRef;
use crate::ingester::Ingester;
use crate::tenant::TenantId;

/// `Streams` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamsRequest {
    /// Tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// Matchers as a selector (`{a="b"}`); empty: every stream.
    #[prost(string, tag = "2")]
    pub selector: String,
    /// Range start (ns, inclusive).
    #[prost(int64, tag = "3")]
    pub start: i64,
    /// Range end (ns, exclusive).
    #[prost(int64, tag = "4")]
    pub end: i64,
    /// Report chunks published at or after this time (ns).
    #[prost(int64, tag = "5")]
    pub since: i64,
}

/// A chunk as a write node reports it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoteChunk {
    /// Chunk id; empty for a summary of unflushed data.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Smallest timestamp.
    #[prost(int64, tag = "2")]
    pub mint: i64,
    /// Largest timestamp.
    #[prost(int64, tag = "3")]
    pub maxt: i64,
    /// Entries.
    #[prost(uint64, tag = "4")]
    pub entries: u64,
    /// Stored size.
    #[prost(uint64, tag = "5")]
    pub bytes: u64,
    /// Highest WAL sequence number.
    #[prost(uint64, tag = "6")]
    pub max_seq: u64,
    /// Uncompressed size of its lines.
    #[prost(uint64, tag = "7")]
    pub raw_bytes: u64,
}

/// A stream a write node holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoteStream {
    /// Fingerprint.
    #[prost(fixed64, tag = "1")]
    pub fp: u64,
    /// Labels text.
    #[prost(string, tag = "2")]
    pub labels: String,
    /// Its unflushed data, summarised (empty ids).
    #[prost(message, repeated, tag = "3")]
    pub unflushed: Vec<RemoteChunk>,
    /// Chunks published since the request's `since`.
    #[prost(message, repeated, tag = "4")]
    pub published: Vec<RemoteChunk>,
}

/// `Streams` response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamsResponse {
    /// The streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<RemoteStream>,
    /// The answering node's writer id (the suffix of the chunks it
    /// writes), so its unflushed data and its chunks count as one
    /// replica's in statistics ([`crate::cluster::stats`]).
    #[prost(string, tag = "2")]
    pub writer: String,
}

/// `Scan` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanStreamRequest {
    /// Tenant.
    #[prost(string, tag = "1")]
    pub tenant: String,
    /// Stream fingerprint.
    #[prost(fixed64, tag = "2")]
    pub fp: u64,
    /// Range start.
    #[prost(int64, tag = "3")]
    pub start: i64,
    /// Range end.
    #[prost(int64, tag = "4")]
    pub end: i64,
    /// See [`StreamsRequest::since`].
    #[prost(int64, tag = "5")]
    pub since: i64,
    /// Literals every matching line contains.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub literals: Vec<Vec<u8>>,
    /// Which of them ignore case.
    #[prost(bool, repeated, tag = "7")]
    pub case_insensitive: Vec<bool>,
    /// Whether lines are wanted.
    #[prost(bool, tag = "8")]
    pub lines: bool,
    /// Whether structured metadata is wanted.
    #[prost(bool, tag = "9")]
    pub metadata: bool,
}

/// A decoded block.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoteBlock {
    /// Timestamps, ascending.
    #[prost(int64, repeated, tag = "1")]
    pub ts: Vec<i64>,
    /// Line offsets (n + 1, or none).
    #[prost(uint32, repeated, tag = "2")]
    pub offsets: Vec<u32>,
    /// Line bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub lines: Vec<u8>,
    /// Metadata offsets (n + 1, or none).
    #[prost(uint32, repeated, tag = "4")]
    pub meta_offsets: Vec<u32>,
    /// Metadata bytes.
    #[prost(bytes = "vec", tag = "5")]
    pub meta: Vec<u8>,
}

/// `Scan` response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanStreamResponse {
    /// Unflushed blocks, ascending, not overlapping.
    #[prost(message, repeated, tag = "1")]
    pub blocks: Vec<RemoteBlock>,
    /// Chunks published since the request's `since`.
    #[prost(message, repeated, tag = "2")]
    pub published: Vec<RemoteChunk>,
}

fn to_remote(c: &ChunkRef) -> RemoteChunk {
    RemoteChunk {
        id: c.id.clone(),
        mint: c.mint,
        maxt: c.maxt,
        entries: c.entries,
        bytes: c.bytes,
        max_seq: c.max_seq,
        raw_bytes: c.raw_bytes,
    }
}

/// A chunk reference from a write node's answer (`None` for a summary or
/// an id that cannot name an object).
pub fn from_remote(c: &RemoteChunk) -> Option<ChunkRef> {
    crate::index::valid_chunk_id(&c.id).then(|| ChunkRef {
        id: c.id.clone(),
        mint: c.mint,
        maxt: c.maxt,
        entries: c.entries,
        bytes: c.bytes,
        max_seq: c.max_seq,
        raw_bytes: c.raw_bytes,
    })
}

/// Chunks of a stream's state published at or after `since` (all of
/// them when the process started after `since`) overlapping the range.
fn retention_cutoff(ing: &Ingester, tenant: &TenantId) -> i64 {
    let period = ing.config.limits_for(tenant.as_str()).retention_period;
    if period.is_zero() {
        return i64::MIN;
    }
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap_or(i64::MAX)
        .saturating_sub(period.as_nanos_i64())
}

fn published_since(
    ing: &Ingester,
    tenant: &TenantId,
    st: &crate::ingester::stream::StreamState,
    since: i64,
    start: i64,
    end: i64,
) -> Vec<RemoteChunk> {
    // Chunks past the tenant's retention are the compactor's to drop;
    // a write node does not bring them back.
    let cutoff = retention_cutoff(ing, tenant);
    let overlaps = |c: &ChunkRef| c.maxt >= start && c.mint < end && c.maxt >= cutoff;
    if since < ing.started_at_ns {
        st.chunks
            .iter()
            .filter(|c| overlaps(c))
            .map(to_remote)
            .collect()
    } else {
        st.recent
            .iter()
            .filter(|(t, c)| *t >= since && overlaps(c))
            .map(|(_, c)| to_remote(c))
            .collect()
    }
}

/// The write node's side of `Streams`.
pub fn serve_streams(ing: &Ingester, req: &StreamsRequest) -> Result<StreamsResponse, String> {
    let tenant = TenantId::new(&req.tenant).map_err(|e| e.to_string())?;
    let streams = if req.selector.trim().is_empty() {
        ing.streams_in_range(&tenant, req.start, req.end)
    } else {
        let m =
            larch_query::logql::parse_matchers(&req.selector, false).map_err(|e| e.to_string())?;
        ing.select_streams(&tenant, &m, req.start, req.end)
    };
    let mut out = StreamsResponse {
        writer: ing.writer_id.clone(),
        ..StreamsResponse::default()
    };
    for s in streams {
        let st = s.state.lock();
        let unflushed: Vec<RemoteChunk> = crate::cluster::stats::unflushed(&st)
            .into_iter()
            .filter(|(mint, maxt, _, _)| *maxt >= req.start && *mint < req.end)
            .map(|(mint, maxt, entries, raw)| RemoteChunk {
                mint,
                maxt,
                entries,
                raw_bytes: raw,
                ..RemoteChunk::default()
            })
            .collect();
        let published = published_since(ing, &tenant, &st, req.since, req.start, req.end);
        if unflushed.is_empty() && published.is_empty() {
            continue;
        }
        out.streams.push(RemoteStream {
            fp: s.fp,
            labels: s.labels.to_string(),
            unflushed,
            published,
        });
    }
    Ok(out)
}

/// The write node's side of `Scan`.
pub fn serve_scan(ing: &Ingester, req: &ScanStreamRequest) -> Result<ScanStreamResponse, String> {
    let tenant = TenantId::new(&req.tenant).map_err(|e| e.to_string())?;
    let scan = ScanRequest {
        start: req.start,
        end: req.end,
        direction: Direction::Forward,
        columns: Columns {
            lines: req.lines,
            lengths: req.lines,
            metadata: req.metadata,
        },
        must_contain: req
            .literals
            .iter()
            .enumerate()
            .map(|(i, b)| Literal {
                bytes: b.clone(),
                case_insensitive: req.case_insensitive.get(i).copied().unwrap_or(true),
            })
            .collect(),
        whole: None,
    };
    let mut out = ScanStreamResponse::default();
    ing.scan_memory(&tenant, req.fp, &scan, &mut |b| {
        out.blocks.push(RemoteBlock {
            ts: b.timestamps.to_vec(),
            offsets: b.offsets.to_vec(),
            lines: b.lines.to_vec(),
            meta_offsets: b.metadata_offsets.to_vec(),
            meta: b.metadata.to_vec(),
        });
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    if let Some(s) = ing.existing_tenant(&tenant).and_then(|t| t.get(req.fp)) {
        out.published =
            published_since(ing, &tenant, &s.state.lock(), req.since, req.start, req.end);
    }
    Ok(out)
}

/// A block from a write node, checked: offsets in bounds and ascending,
/// timestamps ascending (what the engine's contract needs).
pub fn to_decoded(b: RemoteBlock) -> Result<DecodedBlock, String> {
    let n = b.ts.len();
    let ok = |offs: &[u32], len: usize| {
        offs.is_empty()
            || (offs.len() == n + 1
                && offs[0] == 0
                && offs.windows(2).all(|w| w[0] <= w[1])
                && offs[n] as usize == len)
    };
    if !ok(&b.offsets, b.lines.len())
        || !ok(&b.meta_offsets, b.meta.len())
        || !b.ts.windows(2).all(|w| w[0] <= w[1])
    {
        return Err("a write node sent a malformed block".into());
    }
    let mut d = DecodedBlock::default();
    d.ts = b.ts;
    d.offsets = if b.offsets.is_empty() {
        vec![0; n + 1]
    } else {
        b.offsets
    };
    d.lines = b.lines;
    d.meta_offsets = b.meta_offsets;
    d.meta = b.meta;
    Ok(d)
}

/// A write node that did not answer (or refused): the query cannot be
/// answered whole, so it fails (503) rather than miss unflushed lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WriteNodeError(pub String);

/// The write nodes a read node (or, with `cluster:`, a write node) asks:
/// `read.write_nodes`, or the current members.
pub struct WriteNodes {
    source: Source,
    timeout: Duration,
    token_file: Option<std::path::PathBuf>,
    /// `read.write_node_max_message_size`.
    max_message: usize,
}

enum Source {
    /// `read.write_nodes`, with a runtime of their own.
    Static {
        nodes: Vec<(String, Channel)>,
        handle: tokio::runtime::Handle,
        _runtime: super::bucket::OwnRuntime,
        /// `read.write_node_tls`, kept so its client certificate stays
        /// watched (boxed: it is large and only held).
        _tls: Option<Box<crate::tls_client::ClientTls>>,
    },
    /// Every member but this node, as the member set is when a request
    /// starts.
    Cluster(Arc<crate::cluster::Cluster>),
}

impl WriteNodes {
    /// Clients of every node of `config` (connected on first use), over
    /// TLS as `read.write_node_tls` says (`serves_tls`: the store's own
    /// `tls.cert_file` is set). The CA and the client certificate are read
    /// here, so files that do not load stop the store at start.
    pub fn new(config: &ReadConfig, serves_tls: bool) -> std::io::Result<WriteNodes> {
        config
            .check_write_node_tls(serves_tls, false)
            .map_err(|(k, r)| std::io::Error::other(format!("{k}: {r}")))?;
        let tls = config
            .write_node_tls_on(serves_tls)
            .then(|| {
                crate::tls_client::ClientTls::load(
                    &config.write_node_tls,
                    "read.write_node_tls",
                    crate::tls_client::Roots::Required,
                    config.index_refresh_period.0,
                )
            })
            .transpose()?;
        let connector = tls.as_ref().map(|t| t.grpc_connector());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("larch-remote")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let _guard = handle.enter();
        let scheme = if connector.is_some() { "https" } else { "http" };
        let mut nodes = Vec::new();
        for addr in &config.write_nodes {
            let uri = if addr.contains("://") {
                addr.clone()
            } else {
                format!("{scheme}://{addr}")
            };
            let ep = Endpoint::from_shared(uri)
                .map_err(|e| std::io::Error::other(format!("write node {addr}: {e}")))?
                .connect_timeout(Duration::from_secs(5))
                .timeout(config.write_node_timeout.0);
            let ch = match &connector {
                Some(c) => ep.connect_with_connector_lazy(c.clone()),
                None => ep.connect_lazy(),
            };
            nodes.push((addr.clone(), ch));
        }
        drop(_guard);
        Ok(WriteNodes {
            source: Source::Static {
                nodes,
                handle,
                _runtime: super::bucket::OwnRuntime::new(runtime),
                _tls: tls.map(Box::new),
            },
            timeout: config.write_node_timeout.0,
            token_file: config.write_node_token_file.clone(),
            max_message: usize::try_from(config.write_node_max_message_size.0)
                .unwrap_or(usize::MAX),
        })
    }

    /// The other members of `cluster` (the token as the cluster sends it).
    pub fn from_cluster(cluster: Arc<crate::cluster::Cluster>, config: &ReadConfig) -> WriteNodes {
        WriteNodes {
            token_file: cluster
                .config
                .token_file
                .clone()
                .or_else(|| config.write_node_token_file.clone()),
            source: Source::Cluster(cluster),
            timeout: config.write_node_timeout.0,
            max_message: usize::try_from(config.write_node_max_message_size.0)
                .unwrap_or(usize::MAX),
        }
    }

    /// The nodes to ask now, each with whether it is a leaving member
    /// (whose failure to answer is its exit, see [`WriteNodes::ask_all`]).
    fn targets(&self) -> Result<Vec<(String, Channel, bool)>, WriteNodeError> {
        match &self.source {
            Source::Static { nodes, .. } => Ok(nodes
                .iter()
                .map(|(a, ch)| (a.clone(), ch.clone(), false))
                .collect()),
            Source::Cluster(c) => c
                .members()
                .query_targets()
                .map(|(m, leaving)| {
                    c.channel(m)
                        .map(|ch| (m.clone(), ch, leaving))
                        .map_err(WriteNodeError)
                })
                .collect(),
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match &self.source {
            Source::Static { handle, .. } => handle,
            Source::Cluster(c) => c.handle(),
        }
    }

    /// Asks every node at once; the answers in node order. A node that
    /// does not answer fails the whole request, unless the nodes are a
    /// cluster's members replicating each stream to a quorum: then as many
    /// as a quorum less one may be missing (every acknowledged entry is on
    /// a quorum of members, so one of them still answers for it). A
    /// leaving member that does not answer is left out without counting
    /// as missing: it answers until it exits, and it exits only after
    /// lingering past the moment every reader's view of the bucket lists
    /// the chunks it flushed (`cluster.leave_linger`), so what it held is
    /// in the bucket by then.
    fn ask_all<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Vec<Resp>, WriteNodeError>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let token = match &self.token_file {
            // Read at every request, so a rotated token is used at once.
            Some(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    WriteNodeError(format!("write node token file {}: {e}", path.display()))
                })?;
                let value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
                    format!("Bearer {}", token.trim()).parse().map_err(|_| {
                        WriteNodeError(format!(
                            "write node token file {}: not a token",
                            path.display()
                        ))
                    })?;
                Some(value)
            }
            None => None,
        };
        let tolerated = match &self.source {
            Source::Cluster(c) => {
                let rf = c.members().replication_factor(c.config.replication_factor);
                crate::cluster::ClusterConfig::quorum(rf) - 1
            }
            Source::Static { .. } => 0,
        };
        let timeout = self.timeout;
        let max_message = self.max_message;
        let calls = self.targets()?.into_iter().map(|(addr, ch, leaving)| {
            let mut request = tonic::Request::new(req.clone());
            if let Some(t) = &token {
                request.metadata_mut().insert("authorization", t.clone());
            }
            async move {
                let mut grpc = tonic::client::Grpc::new(ch)
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(usize::MAX);
                let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
                let fut = async move {
                    grpc.ready().await.map_err(|e| e.to_string())?;
                    grpc.unary(request, PathAndQuery::from_static(path), codec)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| {
                            if s.code() == tonic::Code::OutOfRange {
                                format!(
                                    "its answer is over read.write_node_max_message_size ({max_message} bytes): {}",
                                    s.message()
                                )
                            } else {
                                s.message().to_string()
                            }
                        })
                };
                tokio::time::timeout(timeout, fut)
                    .await
                    .map_err(|_| "timed out".to_string())
                    .and_then(|r| r)
                    .map_err(|e| (leaving, format!("write node {addr} did not answer: {e}")))
            }
        });
        let answers = self
            .handle()
            .block_on(futures_util::future::join_all(calls));
        let mut out = Vec::with_capacity(answers.len());
        let mut failures = Vec::new();
        for a in answers {
            match a {
                Ok(r) => out.push(r),
                Err((true, e)) => {
                    tracing::debug!(error = %e, "A leaving member did not answer: it has exited, its chunks are in the bucket.")
                }
                Err((false, e)) => failures.push(e),
            }
        }
        if failures.len() > tolerated {
            return Err(WriteNodeError(failures.join("; ")));
        }
        for f in failures {
            tracing::warn!(error = %f, "A member did not answer; its streams' other replicas answer for it.");
        }
        Ok(out)
    }

    /// Every node's streams (see `Streams`), each with the writer id of
    /// the node that answered (`node<i>` for a node that sends none).
    pub fn streams(
        &self,
        req: &StreamsRequest,
    ) -> Result<Vec<(String, RemoteStream)>, WriteNodeError> {
        let answers: Vec<StreamsResponse> = self.ask_all("/larch.Querier/Streams", req.clone())?;
        Ok(answers
            .into_iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let writer = if r.writer.is_empty() {
                    format!("node{i}")
                } else {
                    r.writer
                };
                r.streams.into_iter().map(move |s| (writer.clone(), s))
            })
            .collect())
    }

    /// Every node's unflushed blocks and recent chunks of one stream.
    pub fn scan(
        &self,
        req: &ScanStreamRequest,
    ) -> Result<(Vec<DecodedBlock>, Vec<ChunkRef>), WriteNodeError> {
        let mut blocks = Vec::new();
        let mut chunks = Vec::new();
        let answers: Vec<ScanStreamResponse> = self.ask_all("/larch.Querier/Scan", req.clone())?;
        for r in answers {
            for b in r.blocks {
                if !b.ts.is_empty() {
                    blocks.push(to_decoded(b).map_err(WriteNodeError)?);
                }
            }
            chunks.extend(r.published.iter().filter_map(from_remote));
        }
        Ok((blocks, chunks))
    }

    /// The selector text of `matchers`.
    pub fn selector(matchers: &[Matcher]) -> String {
        let parts: Vec<String> = matchers.iter().map(ToString::to_string).collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// Parses a remote stream's labels.
pub fn labels_of(s: &RemoteStream) -> Option<LabelSet> {
    let pairs = larch_query::parse_labels(&s.labels).ok()?;
    let l = LabelSet::from_unique_pairs(pairs).ok()?;
    (l.fingerprint() == s.fp).then_some(l)
}

/// The gRPC service of a write node.
pub mod service {
    use super::*;
    use std::convert::Infallible;
    use std::task::{Context, Poll};
    use tonic::body::Body;
    use tonic::codegen::{Body as HttpBody, BoxFuture, StdError, http};
    use tonic::server::{Grpc, NamedService, UnaryService};
    use tonic::{Request, Response, Status};

    /// `larch.Querier`.
    #[derive(Clone)]
    pub struct QuerierService {
        ing: Arc<Ingester>,
    }

    impl QuerierService {
        /// The service over `ing`.
        pub fn new(ing: Arc<Ingester>) -> QuerierService {
            QuerierService { ing }
        }
    }

    impl NamedService for QuerierService {
        const NAME: &'static str = "larch.Querier";
    }

    struct StreamsMethod(Arc<Ingester>);
    struct ScanMethod(Arc<Ingester>);

    impl UnaryService<StreamsRequest> for StreamsMethod {
        type Response = StreamsResponse;
        type Future = BoxFuture<Response<StreamsResponse>, Status>;
        fn call(&mut self, request: Request<StreamsRequest>) -> Self::Future {
            let ing = self.0.clone();
            Box::pin(async move {
                let req = request.into_inner();
                tokio::task::spawn_blocking(move || serve_streams(&ing, &req))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map(Response::new)
                    .map_err(Status::invalid_argument)
            })
        }
    }

    impl UnaryService<ScanStreamRequest> for ScanMethod {
        type Response = ScanStreamResponse;
        type Future = BoxFuture<Response<ScanStreamResponse>, Status>;
        fn call(&mut self, request: Request<ScanStreamRequest>) -> Self::Future {
            let ing = self.0.clone();
            Box::pin(async move {
                let req = request.into_inner();
                tokio::task::spawn_blocking(move || serve_scan(&ing, &req))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map(Response::new)
                    .map_err(Status::invalid_argument)
            })
        }
    }

    impl<B> tonic::codegen::Service<http::Request<B>> for QuerierService
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
            let ing = self.ing.clone();
            Box::pin(async move {
                match req.uri().path() {
                    "/larch.Querier/Streams" => {
                        let mut g = Grpc::new(tonic_prost::ProstCodec::default());
                        Ok(g.unary(StreamsMethod(ing), req).await)
                    }
                    "/larch.Querier/Scan" => {
                        let mut g = Grpc::new(tonic_prost::ProstCodec::default())
                            .max_encoding_message_size(usize::MAX);
                        Ok(g.unary(ScanMethod(ing), req).await)
                    }
                    _ => {
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
                        Ok(response)
                    }
                }
            })
        }
    }
}
