//! Bad input from the peer: the matching close code, an event, every earlier byte, then an error.

mod support;

use std::io;

use futures::AsyncReadExt;
use support::*;
use tungstenite::{Message, protocol::WebSocketConfig};
use ws_stream_tungstenite::{Config, TextPolicy, WsErr, WsStream};

fn ws_err(err: &io::Error) -> &WsErr {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<WsErr>())
        .expect("a WsErr payload")
}

/// The server (our stream) reads what a raw client sends; returns the bytes read, the error,
/// and the close code the raw client received.
async fn serve_raw(
    frames: Vec<Vec<u8>>,
    ws_config: Option<WebSocketConfig>,
) -> (Vec<u8>, io::Error, Option<u16>) {
    let (ws, mut raw) = raw_client(ws_config).await;
    // The raw peer never answers our close frame: do not wait the default 10 s for it.
    let config = Config::default().close_timeout(Some(std::time::Duration::from_millis(300)));
    let mut stream = WsStream::with_config(ws, config);
    for f in &frames {
        send_raw(&mut raw, f).await;
    }
    let reader = async {
        let mut got = Vec::new();
        let err = stream.read_to_end(&mut got).await.unwrap_err();
        (got, err)
    };
    let (reader, code) = futures::join!(reader, read_close_code(&mut raw));
    (reader.0, reader.1, code)
}

#[tokio::test]
async fn text_is_refused_with_1003_after_the_earlier_bytes() {
    within(10, async {
        let (got, err, code) = serve_raw(
            vec![
                frame(true, 0x2, b"binary first", true),
                frame(true, 0x1, b"text", true),
                frame(true, 0x2, b"after the text", true),
            ],
            None,
        )
        .await;
        assert_eq!(got, b"binary first");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(ws_err(&err), WsErr::ReceivedText));
        assert_eq!(code, Some(1003));
    })
    .await;
}

#[tokio::test]
async fn the_text_close_handshake_completes() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let stream = WsStream::new(ws);
        peer.send(Message::binary(b"ok".to_vec())).await.unwrap();
        peer.send(Message::text("nope")).await.unwrap();
        // The plain peer answers our 1003 and sees the connection end cleanly.
        let (read, peer_saw) = futures::join!(read_all_then_drop(stream), drain_messages(peer));
        let err = read.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            peer_saw.last(),
            Some(Message::Close(Some(f))) if u16::from(f.code) == 1003
        ));
    })
    .await;
}

#[tokio::test]
async fn text_can_be_accepted_as_bytes() {
    within(10, async {
        let (mut peer, ws) = ws_pair().await;
        let stream = WsStream::with_config(ws, Config::default().text_policy(TextPolicy::Accept));
        peer.send(Message::binary(b"bin,".to_vec())).await.unwrap();
        peer.send(Message::text("text,ünïcode")).await.unwrap();
        peer.send(Message::text("")).await.unwrap();
        peer.close(None).await.unwrap();
        let (read, _) = futures::join!(read_all_then_drop(stream), drain_messages(peer));
        assert_eq!(read.unwrap(), "bin,text,ünïcode".as_bytes());
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_is_refused_with_1007() {
    within(10, async {
        let (got, err, code) = serve_raw(
            vec![
                frame(true, 0x2, b"before", true),
                frame(true, 0x1, &[0xff, 0xfe, 0xfd], true),
            ],
            None,
        )
        .await;
        assert_eq!(got, b"before");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(ws_err(&err), WsErr::InvalidUtf8 { .. }));
        assert_eq!(code, Some(1007));
    })
    .await;
}

#[tokio::test]
async fn oversized_messages_are_refused_with_1009() {
    within(10, async {
        let config = WebSocketConfig::default()
            .max_message_size(Some(1000))
            .max_frame_size(Some(1000));
        // One frame over the limit.
        let (got, err, code) = serve_raw(
            vec![
                frame(true, 0x2, b"before", true),
                frame(true, 0x2, &[1u8; 1001], true),
            ],
            Some(config),
        )
        .await;
        assert_eq!(got, b"before");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(ws_err(&err), WsErr::MessageTooBig { .. }));
        assert_eq!(code, Some(1009));

        // A message over the limit, made of frames under it.
        let (got, err, code) = serve_raw(
            vec![
                frame(true, 0x2, b"before", true),
                frame(false, 0x2, &[1u8; 600], true),
                frame(true, 0x0, &[1u8; 600], true),
            ],
            Some(config),
        )
        .await;
        assert_eq!(got, b"before");
        assert!(matches!(ws_err(&err), WsErr::MessageTooBig { .. }));
        assert_eq!(code, Some(1009));
    })
    .await;
}

#[tokio::test]
async fn protocol_violations_are_refused_with_1002() {
    within(10, async {
        let cases: Vec<Vec<u8>> = vec![
            frame(true, 0x3, b"reserved data opcode", true),
            frame(true, 0xB, b"reserved control opcode", true),
            frame(true, 0x2, b"unmasked client frame", false),
            frame(true, 0x0, b"continuation without a start", true),
            frame(false, 0x9, b"fragmented ping", true),
            {
                let mut f = frame(true, 0x2, b"reserved bits", true);
                f[0] |= 0x40;
                f
            },
        ];
        for bad in cases {
            let (got, err, code) =
                serve_raw(vec![frame(true, 0x2, b"before", true), bad.clone()], None).await;
            assert_eq!(got, b"before", "{bad:?}");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
            assert!(matches!(ws_err(&err), WsErr::Protocol { .. }), "{bad:?}");
            assert_eq!(code, Some(1002), "{bad:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_close_frame_with_an_invalid_code_is_answered_with_1002() {
    within(10, async {
        let (ws, mut raw) = raw_client(None).await;
        let mut stream = WsStream::new(ws);
        send_raw(&mut raw, &frame(true, 0x2, b"before", true)).await;
        send_raw(&mut raw, &frame(true, 0x8, &close_payload(1005, ""), true)).await;
        let reader = async {
            let mut got = Vec::new();
            let result = stream.read_to_end(&mut got).await;
            (got, result)
        };
        let ((got, result), code) = futures::join!(reader, read_close_code(&mut raw));
        assert_eq!(got, b"before");
        // tungstenite answers an invalid code with 1002 and reports it as the peer's code.
        assert_eq!(code, Some(1002));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    })
    .await;
}
