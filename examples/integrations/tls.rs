//! A line protocol over `wss://`: TLS with rustls, a self-signed certificate made at start.
//!
//! Run: `cargo run -p integrations --example tls` (prints the exchange and exits 0 within a second).
//!
//! Shows that TLS is the business of the layers under `WsStream`:
//! - server: tokio-rustls' `TlsAcceptor` over the TCP stream, then async-tungstenite's
//!   `accept_async` over the TLS stream, then `WsStream::new`;
//! - client: tokio-rustls' `TlsConnector`, with a root store that holds only our certificate,
//!   then async-tungstenite's `client_async` over the TLS stream. (async-tungstenite's
//!   `client_async_tls_with_connector`, feature `tokio-rustls-manual-roots`, does the same in one
//!   call; this crate's examples avoid that feature because it breaks the build of
//!   async-tungstenite 0.35 when `smol-runtime` is on too.)
//! - both use rustls' `ring` provider (it builds with a C compiler; `aws-lc-rs` may need cmake);
//! - the byte streams carry lines through `asynchronous_codec::LinesCodec`, and the client
//!   closes with the close handshake, so both sides see a clean end (`None`).

use std::{error::Error, sync::Arc, time::Duration};

use asynchronous_codec::{Framed, LinesCodec};
use futures::{AsyncReadExt, SinkExt, StreamExt};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use ws_stream_tungstenite::WsStream;
use ws_stream_tungstenite::async_tungstenite::tokio::{accept_async, client_async};

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tokio::time::timeout(Duration::from_secs(10), run()).await?
}

async fn run() -> Result<(), BoxError> {
    // A certificate for "localhost", made fresh: nothing secret is stored in the repository.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));

    // Name the provider instead of relying on the process default, which rustls cannot pick
    // by itself when more than one provider is compiled in.
    let provider = Arc::new(ring::default_provider());
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&provider, cert.clone(), key)?));
    let connector = TlsConnector::from(Arc::new(client_config(&provider, cert)?));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    println!("listening on wss://localhost:{port}/");

    let server = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await?;
        let tls = acceptor.accept(tcp).await?;
        let ws = accept_async(tls).await?;
        println!("server: connection from {peer}");
        serve(WsStream::new(ws)).await
    });

    // The certificate is checked against the name "localhost"; the socket goes to 127.0.0.1.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (ws, _response) = client_async(format!("wss://localhost:{port}/"), tls).await?;
    let mut lines = Framed::new(WsStream::new(ws), LinesCodec);

    for line in ["hello", "over TLS"] {
        lines.send(format!("{line}\n")).await?;
        let reply = lines.next().await.ok_or("server hung up")??;
        println!("client: sent {line:?}, got {:?}", reply.trim_end());
    }

    // Close (sends close 1000), then read until the server's close frame completes the
    // handshake: EOF, not an error.
    let mut stream = lines.into_inner();
    futures::AsyncWriteExt::close(&mut stream).await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;

    let served = server.await??;
    println!("client: closed cleanly; server answered {served} lines");
    Ok(())
}

/// Answers each line with its upper-case version until the client closes.
async fn serve<S>(stream: WsStream<S>) -> Result<usize, BoxError>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut lines = Framed::new(stream, LinesCodec);
    let mut served = 0;
    while let Some(line) = lines.next().await {
        lines.send(line?.to_uppercase()).await?;
        served += 1;
    }
    Ok(served)
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
}

fn client_config(
    provider: &Arc<CryptoProvider>,
    cert: CertificateDer<'static>,
) -> Result<ClientConfig, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
