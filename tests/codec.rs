//! Codecs over the byte stream: asynchronous-codec and tokio-util's LinesCodec.

mod support;

use asynchronous_codec::{Framed, LinesCodec};
use futures::{SinkExt, StreamExt, TryStreamExt};
use support::*;
use ws_stream_tungstenite::WsStream;

#[tokio::test]
async fn asynchronous_codec_lines_round_trip() {
    within(10, async {
        let (client, server) = ws_pair().await;
        let server = async {
            let mut lines = Framed::new(WsStream::new(server), LinesCodec);
            while let Some(line) = lines.try_next().await.unwrap() {
                lines.send(line.to_uppercase()).await.unwrap();
            }
        };
        let client = async {
            let mut lines = Framed::new(WsStream::new(client), LinesCodec);
            let mut replies = Vec::new();
            for word in ["alpha\n", "beta\n", "gamma\n"] {
                lines.send(word.to_owned()).await.unwrap();
                replies.push(lines.next().await.unwrap().unwrap());
            }
            lines.close().await.unwrap();
            assert!(lines.next().await.is_none(), "clean EOF after close");
            replies
        };
        let ((), replies) = futures::join!(server, client);
        assert_eq!(replies, ["ALPHA\n", "BETA\n", "GAMMA\n"]);
    })
    .await;
}

#[cfg(feature = "tokio_io")]
mod tokio_codec {
    use super::*;
    use tokio_util::codec::{Framed, LinesCodec, LinesCodecError};

    #[tokio::test]
    async fn tokio_util_lines_round_trip() {
        within(10, async {
            let (client, server) = ws_pair().await;
            let server = async {
                let mut lines = Framed::new(WsStream::new(server), LinesCodec::new());
                while let Some(line) = lines.next().await {
                    lines
                        .send(line.unwrap().chars().rev().collect::<String>())
                        .await
                        .unwrap();
                }
            };
            let client = async {
                let mut lines = Framed::new(WsStream::new(client), LinesCodec::new());
                lines.send("hello").await.unwrap();
                let reply = lines.next().await.unwrap().unwrap();
                SinkExt::<&str>::close(&mut lines).await.unwrap();
                assert!(lines.next().await.is_none());
                reply
            };
            let ((), reply) = futures::join!(server, client);
            assert_eq!(reply, "olleh");
        })
        .await;
    }

    #[tokio::test]
    async fn a_line_over_the_max_length_is_an_error_not_a_hang() {
        within(10, async {
            let (client, server) = ws_pair().await;
            let server = async {
                let mut lines =
                    Framed::new(WsStream::new(server), LinesCodec::new_with_max_length(16));
                let first = lines.next().await.unwrap();
                let second = lines.next().await.unwrap();
                (first, second)
            };
            let client = async {
                let mut lines = Framed::new(WsStream::new(client), LinesCodec::new());
                lines.send("short").await.unwrap();
                lines.send("x".repeat(100)).await.unwrap();
                lines
            };
            let ((first, second), _client) = futures::join!(server, client);
            assert_eq!(first.unwrap(), "short");
            assert!(matches!(
                second,
                Err(LinesCodecError::MaxLineLengthExceeded)
            ));
        })
        .await;
    }
}
