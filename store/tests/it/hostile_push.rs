//! Hostile pushes against a real `larch-store` process with its default
//! limits: the store answers each in Loki's words, its memory stays bounded
//! by its decode budget, and `/ready` keeps answering.
//!
//! Figures measured on the development machine (2 cores shared, debug
//! build; run with `--nocapture` to see them; BENCHMARKS.md has the table):
//! * 2 million rejected entries, 20 000 streams with unparsable labels and
//!   20 overlong lines under 30 KB of labels (654 KB body): 400 with a
//!   33 KB response, in 1.5-3 s;
//! * 20 million empty entries (a 3 KB gzip body): 413 in 0.9 s, the
//!   store's peak RSS 56 MiB;
//! * six 421 KB gzip bodies each holding a 400 MiB line, at once: each
//!   refused (413 at the 48 MiB decompressed limit, or 503 when the decode
//!   budget is full), the store's peak RSS 245-257 MiB;
//! * `/ready` during the bombs and during a 45 MB chunked body without
//!   `Content-Length`: at most 101 ms.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use larch_proto::logproto;
use prost::Message;

use larch_testkit::procfs;

use crate::support::{Response, StoreProcess, now_ns, protobuf_lines, request};

/// The store's peak resident memory so far (`VmHWM`), in bytes.
fn peak_rss(store: &StoreProcess) -> u64 {
    procfs::peak_rss_bytes(store.pid())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A JSON push whose single line is `mib` MiB of `a`, gzip-compressed to
/// a few hundred KB: one gzip member for the JSON around the line and one
/// (repeated) per MiB of line, which a gzip reader reads as one stream.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut body = gzip(
        format!(
            r#"{{"streams":[{{"stream":{{"app":"bomb"}},"values":[["{}",""#,
            now_ns()
        )
        .as_bytes(),
    );
    let mib_of_a = gzip(&vec![b'a'; 1 << 20]);
    for _ in 0..mib {
        body.extend_from_slice(&mib_of_a);
    }
    body.extend_from_slice(&gzip(br#""]]}]}"#));
    body
}

/// Polls `/ready` until `stop`, returning the slowest answer.
fn watch_ready(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::Acquire) {
            let t = Instant::now();
            let r = request(port, "GET", "/ready", &[], b"").unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        worst
    })
}

/// Sends `head` and then `write`s the body from another thread while
/// reading the response, so that a server answering before the whole body
/// has arrived (and closing) is seen answering; errors writing are ignored.
fn exchange(
    port: u16,
    head: String,
    write: impl FnOnce(&mut TcpStream) -> std::io::Result<()> + Send + 'static,
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = write(&mut w);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived (the server closed with
            // our body unread).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    larch_testkit::http::read_response(&mut raw.as_slice(), false).unwrap()
}

fn request_head(path: &str, headers: &[(&str, &str)], framing: &str) -> String {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{framing}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A POST whose body is sent in chunks of `chunk` bytes with
/// `Transfer-Encoding: chunked` and no `Content-Length`.
fn http_chunked(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    chunk: usize,
) -> Response {
    let head = request_head(path, headers, "Transfer-Encoding: chunked");
    exchange(port, head, move |s| {
        for part in body.chunks(chunk) {
            s.write_all(format!("{:x}\r\n", part.len()).as_bytes())?;
            s.write_all(part)?;
            s.write_all(b"\r\n")?;
        }
        s.write_all(b"0\r\n\r\n")
    })
}

/// A POST with `Content-Length` whose body may be refused before it is
/// all sent.
fn http_eager(port: u16, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
    let head = request_head(path, headers, &format!("Content-Length: {}", body.len()));
    exchange(port, head, move |s| s.write_all(&body))
}

/// A snappy protobuf stream with `n` entries of `entry` (already encoded).
fn proto_stream(labels: &str, n: usize, entry: &logproto::Entry) -> Vec<u8> {
    let one = entry.encode_to_vec();
    let mut stream = logproto::Stream {
        labels: labels.to_string(),
        entries: vec![],
        hash: 0,
    }
    .encode_to_vec();
    for _ in 0..n {
        stream.push(0x12);
        prost::encoding::encode_varint(one.len() as u64, &mut stream);
        stream.extend_from_slice(&one);
    }
    let mut out = vec![0x0a];
    prost::encoding::encode_varint(stream.len() as u64, &mut out);
    out.extend_from_slice(&stream);
    out
}

fn entry(ts: Option<i64>, line: String) -> logproto::Entry {
    logproto::Entry {
        timestamp: ts.map(larch_testkit::push::timestamp),
        line,
        structured_metadata: vec![],
        parsed: vec![],
    }
}

#[test]
fn a_maximally_bad_request_gets_a_small_response() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    // 2 million entries without a timestamp (too old), 20 000 streams whose
    // labels do not parse, 20 lines over max_line_size on a stream with 15
    // labels of 2000 bytes, and a good entry.
    let mut raw = proto_stream(r#"{app="old"}"#, 2_000_000, &entry(None, String::new()));
    for i in 0..20_000 {
        raw.extend(proto_stream(
            &format!("{{bad{i}"),
            1,
            &entry(Some(now_ns()), "x".into()),
        ));
    }
    let long_labels = (0..15)
        .map(|i| format!(r#"l{i}="{}""#, "v".repeat(2000)))
        .collect::<Vec<_>>()
        .join(",");
    raw.extend(proto_stream(
        &format!("{{{long_labels}}}"),
        20,
        &entry(Some(now_ns()), "y".repeat(300_000)),
    ));
    raw.extend(proto_stream(
        r#"{app="good"}"#,
        1,
        &entry(Some(now_ns()), "fine".into()),
    ));
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let started = Instant::now();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .unwrap();
    let took = started.elapsed();
    let text = r.text();
    eprintln!(
        "maximally bad request: {} body bytes ({} decompressed), status {}, {} response bytes, {:?}, store peak RSS {} MiB",
        body.len(),
        raw.len(),
        r.status,
        r.body.len(),
        took,
        peak_rss(&store) >> 20
    );
    assert_eq!(r.status, 400, "{}", &text[..text.len().min(2000)]);
    assert!(r.body.len() < 64 << 10, "{} bytes", r.body.len());
    assert!(
        text.contains(
            "user 'fake', total ignored: 2000000 out of 2000000 for stream: {app=\"old\", service_name=\"old\"}"
        ),
        "{}",
        &text[..text.len().min(4000)]
    );
    assert!(text.contains("has timestamp too old"));
    assert!(text.contains("error parsing labels '{bad0'"));
    assert!(
        text.trim_end().ends_with("more errors not listed"),
        "{text}"
    );
    // The good entry was stored; the discards were counted in full.
    let metrics = request(store.http, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    for needle in [
        r#"larch_discarded_entries_total{tenant="fake",reason="greater_than_max_sample_age"} 2000000"#,
        r#"larch_discarded_entries_total{tenant="fake",reason="invalid_labels"} 20000"#,
        r#"larch_discarded_entries_total{tenant="fake",reason="line_too_long"} 20"#,
        r#"larch_discarded_bytes_total{tenant="fake",reason="line_too_long"} 6000000"#,
    ] {
        assert!(metrics.contains(needle), "{needle} not in {metrics}");
    }
    let q = request(
        store.http,
        "GET",
        "/loki/api/v1/query_range?query=%7Bapp%3D%22good%22%7D&limit=10",
        &[],
        b"",
    )
    .unwrap();
    assert!(q.text().contains("fine"), "{}", q.text());
}

/// A long `level` label is copied into every entry as its
/// `detected_level`: 200 000 one-byte lines on a stream whose level is
/// 2 000 bytes would store 400 MB. The copies are charged to the decode
/// budget first, so the push is refused as needing too much memory; the
/// same push is stored for a tenant without level discovery.
#[test]
fn a_long_level_label_on_many_entries_is_charged_before_it_is_copied() {
    let store = StoreProcess::builder()
        .config("overrides:\n  quiet:\n    discover_log_levels: false\n")
        .start();
    let labels = format!(r#"{{app="x", level="{}"}}"#, "v".repeat(2000));
    let raw = proto_stream(&labels, 200_000, &entry(Some(now_ns()), "x".into()));
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let push = |tenant: &str| {
        request(
            store.http,
            "POST",
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("X-Scope-OrgID", tenant),
            ],
            &body,
        )
        .unwrap()
    };
    let started = Instant::now();
    let r = push("fake");
    let peak = peak_rss(&store);
    eprintln!(
        "200k entries with a 2000-byte level: status {} in {:?}, peak RSS {} MiB: {}",
        r.status,
        started.elapsed(),
        peak >> 20,
        r.text()
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text().starts_with(
            "request body too large: decoding it needs more than 268435456 bytes of memory"
        ),
        "{}",
        r.text()
    );
    assert!(peak < 512 << 20, "peak RSS {peak}");
    let started = Instant::now();
    let r = push("quiet");
    eprintln!("without discovery: {} in {:?}", r.status, started.elapsed());
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn twenty_million_empty_entries_are_refused_without_decoding_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    // Two bytes per entry on the wire, 40 MB in all: under the
    // decompressed limit, but 1.3 GB as decoded entries.
    let raw = proto_stream(r#"{app="x"}"#, 20_000_000, &entry(None, String::new()));
    let body = gzip(&snap::raw::Encoder::new().compress_vec(&raw).unwrap());
    let before = peak_rss(&store);
    let started = Instant::now();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    )
    .unwrap();
    let took = started.elapsed();
    let after = peak_rss(&store);
    eprintln!(
        "20M empty entries: {} body bytes, status {}, {:?}, peak RSS {} MiB -> {} MiB: {}",
        body.len(),
        r.status,
        took,
        before >> 20,
        after >> 20,
        r.text()
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text().starts_with(
            "request body too large: decoding it needs more than 268435456 bytes of memory"
        ),
        "{}",
        r.text()
    );
    assert!(after < 512 << 20, "peak RSS {after}");
    let metrics = request(store.http, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    assert!(
        metrics.contains(&format!(
            r#"larch_discarded_bytes_total{{tenant="fake",reason="request_body_too_large"}} {}"#,
            body.len()
        )),
        "{metrics}"
    );
}

#[test]
fn gzip_bombs_at_once_stay_within_memory_and_ready_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let port = store.http;
    let bomb = Arc::new(gzip_bomb(400));
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());

    // Six bombs at once.
    let stop = Arc::new(AtomicBool::new(false));
    let ready = watch_ready(port, stop.clone());
    let started = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let bomb = bomb.clone();
            std::thread::spawn(move || {
                request(
                    port,
                    "POST",
                    "/loki/api/v1/push",
                    &[
                        ("Content-Type", "application/json"),
                        ("Content-Encoding", "gzip"),
                    ],
                    &bomb,
                )
                .unwrap()
            })
        })
        .collect();
    let answers: Vec<Response> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    let worst_ready = ready.join().unwrap();
    let peak = peak_rss(&store);
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    eprintln!(
        "six {}-byte gzip bombs (400 MiB line each) at once: statuses {statuses:?} in {took:?}; store peak RSS {} MiB; slowest /ready {worst_ready:?}",
        bomb.len(),
        peak >> 20
    );
    for r in &answers {
        let text = r.text();
        match r.status {
            413 => assert_eq!(
                text.trim_end(),
                format!(
                    "request body too large: decompressed message size too large than max ({} vs {})",
                    (48 << 20) + 1,
                    48 << 20
                )
            ),
            503 => assert!(
                text.starts_with(
                    "push request denied: the store is decoding other requests and has no memory left for this one (decode memory limit: 268435456 bytes), retry later"
                ),
                "{text}"
            ),
            other => panic!("a bomb got {other}: {text}"),
        }
    }
    assert!(statuses.contains(&413), "{statuses:?}");
    assert!(peak < 512 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(worst_ready < Duration::from_secs(1), "{worst_ready:?}");

    // A 42 MB chunked body without Content-Length: 400 000 ordinary
    // entries, decoded on the blocking pool (then more than the burst:
    // 413), while /ready answers.
    let mut json = String::from(r#"{"streams":[{"stream":{"app":"chunked"},"values":["#);
    let now = now_ns();
    for i in 0..400_000 {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(r#"["{}","line {i:0>80}"]"#, now + i));
    }
    json.push_str("]}]}");
    let json_len = json.len();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = watch_ready(port, stop.clone());
    let started = Instant::now();
    let r = http_chunked(
        port,
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        json.into_bytes(),
        64 << 10,
    );
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    let worst_ready = ready.join().unwrap();
    eprintln!(
        "{json_len}-byte chunked JSON push: status {} in {took:?}; slowest /ready {worst_ready:?}; store peak RSS {} MiB",
        r.status,
        peak_rss(&store) >> 20
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text().starts_with(
            "ingestion burst size limit exceeded for user fake (limit: 6291456 bytes) while attempting to ingest '400000' lines"
        ),
        "{}",
        r.text()
    );
    assert!(worst_ready < Duration::from_secs(1), "{worst_ready:?}");

    // The store still takes ordinary pushes, chunked ones included.
    let body = protobuf_lines(r#"{app="after"}"#, now_ns(), &["still here".to_string()]);
    let r = http_chunked(
        port,
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        body,
        7,
    );
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn bodies_over_the_limit_are_refused_as_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    // 60 MiB of JSON, over the default tenant's limit (8 x 6 MiB): refused
    // by its Content-Length, and without one once 48 MiB have arrived.
    let big = vec![b' '; 60 << 20];
    let json = [("Content-Type", "application/json")];
    let r = http_eager(store.http, "/loki/api/v1/push", &json, big.clone());
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(
        r.text().trim_end(),
        format!(
            "request body too large: message size too large than max ({} vs {})",
            60 << 20,
            48 << 20
        )
    );
    let r = http_chunked(store.http, "/loki/api/v1/push", &json, big, 1 << 20);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text()
            .starts_with("request body too large: message size too large than max ("),
        "{}",
        r.text()
    );
    assert!(peak_rss(&store) < 256 << 20);
}

/// Sends raw bytes as a gRPC message and decodes the (empty) answer.
#[derive(Clone, Copy)]
pub(crate) struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = logproto::PushResponse;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = logproto::PushResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<logproto::PushResponse>, tonic::Status> {
        logproto::PushResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[test]
fn grpc_pushes_are_decoded_under_the_same_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let push = |msg: Vec<u8>| {
        rt.block_on(async {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", store.grpc))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
            let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(msg),
                "/logproto.Pusher/Push".parse().unwrap(),
                RawBytes,
            )
            .await
            .map(|_| ())
        })
    };
    // An ordinary push.
    let ok = proto_stream(
        r#"{app="grpc"}"#,
        3,
        &entry(Some(now_ns()), "over grpc".into()),
    );
    push(ok).unwrap();
    // 5 million empty entries: 10 MB, but 320 MB as entries.
    let many = proto_stream(r#"{app="grpc"}"#, 5_000_000, &entry(None, String::new()));
    let e = push(many).unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message()
            .starts_with("request body too large: decoding it needs more than"),
        "{e:?}"
    );
    // A message over the largest decompressed limit is refused by size.
    let mut huge = Vec::new();
    huge.push(0x4a); // field 9, length-delimited: an unknown field
    prost::encoding::encode_varint((49 << 20) as u64, &mut huge);
    huge.resize(huge.len() + (49 << 20), b'z');
    let e = push(huge).unwrap_err();
    assert!(e.message().contains("too large"), "{e:?}");
    // Bad input is an invalid argument.
    let e = push(vec![0xff, 0xff]).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message()
            .starts_with("failed to parse push request protobuf"),
        "{e:?}"
    );
    assert!(peak_rss(&store) < 256 << 20);
}
