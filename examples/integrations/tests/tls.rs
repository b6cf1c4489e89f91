//! `WsStream` over `wss://`: tokio-rustls (ring provider) with a self-signed certificate made by
//! rcgen, over TCP on 127.0.0.1 port 0.
//!
//! Servers on async-tungstenite (and tokio-tungstenite) drop TCP without a TLS `close_notify`,
//! so the client's rustls reports `UnexpectedEof` after the close handshake: these tests check
//! that the reader still ends with a clean EOF, whichever side closes first.

use std::{error::Error, future::Future, sync::Arc, time::Duration};

use asynchronous_codec::{Framed, LinesCodec};
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt, future::try_join};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
use ws_stream_tungstenite::async_tungstenite::{
    WebSocketStream,
    tokio::{TokioAdapter, accept_async, client_async},
};
use ws_stream_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use ws_stream_tungstenite::{WsErr, WsStream};

type BoxError = Box<dyn Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

type ClientWs = WsStream<TokioAdapter<client::TlsStream<TcpStream>>>;
type ServerWs = WsStream<TokioAdapter<server::TlsStream<TcpStream>>>;

/// Fails the test instead of hanging it.
async fn within<F: Future<Output = TestResult>>(fut: F) -> TestResult {
    tokio::time::timeout(Duration::from_secs(20), fut).await?
}

/// A client and a server `WsStream`, connected over TLS on a fresh port.
async fn wss_pair() -> Result<(ClientWs, ServerWs), BoxError> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(ring::default_provider());

    let server_config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let connector = TlsConnector::from(Arc::new(client_config));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();

    let server = async {
        let (tcp, _peer) = listener.accept().await?;
        let ws: WebSocketStream<_> = accept_async(acceptor.accept(tcp).await?).await?;
        Ok::<_, BoxError>(WsStream::new(ws))
    };
    let client = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (ws, _response) = client_async(format!("wss://localhost:{port}/"), tls).await?;
        Ok::<_, BoxError>(WsStream::new(ws))
    };
    try_join(client, server).await
}

#[tokio::test]
async fn lines_then_client_closes() -> TestResult {
    within(async {
        let (client, server) = wss_pair().await?;

        let server = tokio::spawn(async move {
            let mut lines = Framed::new(server, LinesCodec);
            let mut seen = Vec::new();
            while let Some(line) = lines.next().await {
                let line = line?;
                lines.send(line.to_uppercase()).await?;
                seen.push(line);
            }
            Ok::<_, BoxError>(seen)
        });

        let mut lines = Framed::new(client, LinesCodec);
        for line in ["hello\n", "über TLS\n"] {
            lines.send(line.to_string()).await?;
            let reply = lines.next().await.ok_or("server hung up")??;
            assert_eq!(reply, line.to_uppercase());
        }
        let mut client = lines.into_inner();
        client.close().await?;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await?;
        assert!(rest.is_empty());

        // The server's reader got EOF, not an error, and every line.
        assert_eq!(server.await??, ["hello\n", "über TLS\n"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn server_closes_first() -> TestResult {
    within(async {
        let (mut client, mut server) = wss_pair().await?;

        let server = tokio::spawn(async move {
            server.write_all(b"bye").await?;
            server.close().await?;
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await?;
            Ok::<_, BoxError>(rest)
        });

        // The server drops TCP without close_notify once the handshake is done: still EOF.
        let mut received = Vec::new();
        client.read_to_end(&mut received).await?;
        assert_eq!(received, b"bye");
        assert!(server.await??.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn peer_close_code_survives_the_tls_teardown() -> TestResult {
    within(async {
        let (mut client, mut server) = wss_pair().await?;

        let server = tokio::spawn(async move {
            server
                .close_with(CloseCode::Library(4000), "maintenance")
                .await?;
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await?;
            Ok::<_, BoxError>(())
        });

        // A close code other than 1000/1001 is an error, also when TLS then ends abruptly.
        let mut received = Vec::new();
        let err = client
            .read_to_end(&mut received)
            .await
            .err()
            .ok_or("expected an error")?;
        let inner = err.get_ref().ok_or("expected a WsErr inside")?;
        match inner.downcast_ref::<WsErr>() {
            Some(WsErr::PeerClosed { code, reason }) => {
                assert_eq!(*code, CloseCode::Library(4000));
                assert_eq!(reason, "maintenance");
            }
            other => return Err(format!("expected PeerClosed, got {other:?}").into()),
        }
        server.await??;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bulk_echo_through_split_halves() -> TestResult {
    within(async {
        let (client, server) = wss_pair().await?;

        // The echo is `futures::io::copy` over the split halves: it flushes only at the end,
        // so this also checks that a polled reader pushes the written bytes out.
        let server = tokio::spawn(async move {
            let (reader, mut writer) = server.split();
            futures::io::copy(reader, &mut writer).await?;
            Ok::<_, BoxError>(())
        });

        let data: Vec<u8> = (0..512 * 1024).map(|i: u32| (i % 251) as u8).collect();
        let (mut reader, mut writer) = client.split();
        let send = async {
            writer.write_all(&data).await?;
            writer.flush().await?;
            Ok::<_, BoxError>(())
        };
        let receive = async {
            let mut echoed = vec![0; data.len()];
            reader.read_exact(&mut echoed).await?;
            Ok::<_, BoxError>(echoed)
        };
        let ((), echoed) = try_join(send, receive).await?;
        assert!(echoed == data, "the echo differs from what was sent");

        let mut client = reader.reunite(writer)?;
        client.close().await?;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await?;
        assert!(rest.is_empty());
        server.await??;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dropped_connection_is_not_eof() -> TestResult {
    within(async {
        let (mut client, mut server) = wss_pair().await?;

        // No close frame: the server just goes away after some bytes.
        server.write_all(b"partial").await?;
        server.flush().await?;
        drop(server);

        let mut received = Vec::new();
        let err = client
            .read_to_end(&mut received)
            .await
            .err()
            .ok_or("a truncated stream must not end with EOF")?;
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(received, b"partial");
        Ok(())
    })
    .await
}
