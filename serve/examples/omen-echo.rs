//! `omen-echo`: the gRPC ceiling of bench/serve.sh. A bare tonic server of the same proto and
//! the same transport settings as `omen-serve` (HTTP/2 over TCP with `TCP_NODELAY`, 1024 streams
//! per connection, mimalloc), whose `Score` decodes the request as tonic does (tonic-prost's own
//! codec, `omen_serve::plain_proto`; omen-serve decodes from one slice, `omen_serve::codec`) and
//! answers a fixed `ScoreResponse` without any work: what tonic, HTTP/2 and protobuf cost on this
//! machine.
//! With `--response FILE` (proto3 JSON, e.g. an answer of `omen-serve`'s `POST /v1/score`) the
//! answer is as large as omen's; without it, the empty response.
//!
//! `omen-echo --listen 127.0.0.1:PORT [--response FILE]`; prints
//! `omen-echo: listening on grpc://ADDR` on stderr; stops on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::{Context, Result};
use clap::Parser;
use omen_serve::plain_proto::{self as proto, canary_scorer_server::CanaryScorer};
use omen_serve::proto::DESCRIPTOR;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A bare tonic CanaryScorer answering a fixed ScoreResponse.
#[derive(Debug, Parser)]
#[command(name = "omen-echo")]
struct Args {
    /// gRPC listen address
    #[arg(long, default_value = "127.0.0.1:50061")]
    listen: SocketAddr,
    /// The answer, a ScoreResponse as proto3 JSON [default: the empty response]
    #[arg(long)]
    response: Option<PathBuf>,
}

#[derive(Debug)]
struct Echo {
    response: proto::ScoreResponse,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<proto::ScoreResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl CanaryScorer for Echo {
    async fn score(&self, _request: Request<proto::ScoreRequest>) -> Result<Response<proto::ScoreResponse>, Status> {
        Ok(Response::new(self.response.clone()))
    }

    type ScoreStreamStream = ResponseStream;

    async fn score_stream(&self, _request: Request<Streaming<proto::ScoreRequest>>) -> Result<Response<Self::ScoreStreamStream>, Status> {
        Err(Status::unimplemented("omen-echo answers Score only"))
    }

    async fn get_models(&self, _request: Request<proto::GetModelsRequest>) -> Result<Response<proto::GetModelsResponse>, Status> {
        Err(Status::unimplemented("omen-echo answers Score only"))
    }
}

fn response_from_json(path: &PathBuf) -> Result<proto::ScoreResponse> {
    let raw = std::fs::read(path).with_context(|| format!("reading --response {}", path.display()))?;
    let pool = DescriptorPool::decode(DESCRIPTOR)?;
    let desc = pool.get_message_by_name("omen.v1.ScoreResponse").context("no omen.v1.ScoreResponse in the descriptor")?;
    let mut de = serde_json::Deserializer::from_slice(&raw);
    let msg = DynamicMessage::deserialize(desc, &mut de).with_context(|| format!("--response {}", path.display()))?;
    de.end()?;
    Ok(msg.transcode_to::<proto::ScoreResponse>()?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let response = match &args.response {
        Some(p) => response_from_json(p)?,
        None => proto::ScoreResponse::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let service = proto::canary_scorer_server::CanaryScorerServer::new(Echo { response });
        let server = tonic::transport::Server::builder().tcp_nodelay(true).max_concurrent_streams(Some(1024)).add_service(service);
        let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding --listen {}", args.listen))?;
        eprintln!("omen-echo: listening on grpc://{}", listener.local_addr()?);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        server
            .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)), async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            })
            .await
            .with_context(|| format!("serving on {}", args.listen))?;
        Ok::<_, anyhow::Error>(())
    })
}
