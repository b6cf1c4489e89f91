//! Talks to a live `server` from headless Chromium. Run by `scripts/wasm-e2e.sh`, which starts
//! the server and passes its address at build time in `WS_E2E_URL`.
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with a message"
)]

use std::{future::Future, pin::pin};

use futures::{
    StreamExt,
    future::{Either, select},
};
use gloo_timers::future::TimeoutFuture;
use pharos::{Events, Observable, ObserveConfig};
use proto::{Client, Reply, Request};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use ws_stream_tungstenite::{WsEvent, browser::BrowserStream};

wasm_bindgen_test_configure!(run_in_browser);

const URL: &str = match option_env!("WS_E2E_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9001",
};

/// Fails the test if `future` takes longer than 20 s.
async fn within<F: Future>(future: F) -> F::Output {
    match select(pin!(future), TimeoutFuture::new(20_000)).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("the test timed out"),
    }
}

/// A client whose stream's events we watch: the byte stream cannot tell the close code.
async fn observed_client() -> (Events<WsEvent>, Client<BrowserStream>) {
    let mut stream = BrowserStream::connect(URL).await.expect("connect");
    let events = stream
        .observe(ObserveConfig::default())
        .await
        .expect("observe the WebSocket");
    (events, Client::new(stream))
}

/// The close code of the peer's close frame among `events`, which must end with `Closed`.
async fn close_code(events: Events<WsEvent>) -> Option<u16> {
    let events = events.collect::<Vec<_>>().await;
    assert!(matches!(events.last(), Some(WsEvent::Closed)), "{events:?}");
    events.iter().find_map(|event| match event {
        WsEvent::CloseFrame(frame) => frame.as_ref().map(|f| u16::from(f.code)),
        _ => None,
    })
}

#[wasm_bindgen_test]
async fn several_requests_then_the_browser_closes() {
    within(async {
        let (events, mut client) = observed_client().await;

        let echo = client
            .call(Request::Echo {
                text: "hello, server".into(),
            })
            .await
            .expect("echo");
        let sum = client
            .call(Request::Add { a: -7, b: 49 })
            .await
            .expect("add");
        let reversed = client
            .call(Request::Reverse {
                text: "wasm ↔ tungstenite".into(),
            })
            .await
            .expect("reverse");
        let overflow = client
            .call(Request::Add { a: i64::MIN, b: -1 })
            .await
            .expect("add overflowing");
        // Larger than one browser message and than the server's read buffer.
        let big = "0123456789".repeat(5_000);
        let big_echo = client
            .call(Request::Echo { text: big.clone() })
            .await
            .expect("big echo");

        // Ok only if the close completed cleanly: BrowserStream closes with 1000, the server's
        // WsStream reads a clean end of stream (its log says "closed cleanly") and answers.
        client.close().await.expect("clean close");

        assert_eq!(
            echo,
            Reply::Echo {
                text: "hello, server".into()
            }
        );
        assert_eq!(sum, Reply::Sum { value: 42 });
        assert_eq!(
            reversed,
            Reply::Reversed {
                text: "etinetsgnut ↔ msaw".into()
            }
        );
        assert!(matches!(overflow, Reply::Error { message } if message.contains("overflow")));
        assert_eq!(big_echo, Reply::Echo { text: big });
        // The server's answer to our close 1000.
        assert_eq!(close_code(events).await, Some(1000));
    })
    .await;
}

#[wasm_bindgen_test]
async fn bye_lets_the_server_close_with_1000() {
    within(async {
        let (events, mut client) = observed_client().await;

        let echo = client
            .call(Request::Echo {
                text: "bye soon".into(),
            })
            .await
            .expect("echo");
        // Ok only if the stream ended in a clean end of stream.
        client.bye().await.expect("bye and clean close");

        assert_eq!(
            echo,
            Reply::Echo {
                text: "bye soon".into()
            }
        );
        // The server's WsStream closed with 1000 (normal closure).
        assert_eq!(close_code(events).await, Some(1000));
    })
    .await;
}

#[wasm_bindgen_test]
async fn demo_for_web_pages_runs_a_session() {
    within(async {
        let summary = wasm_client::demo(URL.to_string())
            .await
            .map_err(wasm_bindgen::JsValue::from)
            .expect("demo");

        assert_eq!(summary, "echo: hello from the browser; 20 + 22 = 42");
    })
    .await;
}
