//! Talks to a live `server` from headless Chromium. Run by `scripts/wasm-e2e.sh`, which starts
//! the server and passes its address at build time in `WS_E2E_URL`.
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::expect_used,
    reason = "a test fails by panicking, with a message"
)]

use futures::StreamExt;
use pharos::{Filter, Observable, ObserveConfig};
use proto::{Reply, Request};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use ws_stream_wasm::{CloseEvent, WsEvent, WsMeta, WsState};

wasm_bindgen_test_configure!(run_in_browser);

const URL: &str = match option_env!("WS_E2E_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9001",
};

/// Watch for the browser's close event before anything can close the socket.
async fn on_close(meta: &mut WsMeta) -> impl Future<Output = Option<CloseEvent>> + use<> {
    let filter = Filter::Pointer(WsEvent::is_closed);
    let mut events = meta
        .observe(ObserveConfig::from(filter))
        .await
        .expect("observe the WebSocket");
    async move {
        match events.next().await? {
            WsEvent::Closed(event) => Some(event),
            _ => None,
        }
    }
}

#[wasm_bindgen_test]
async fn several_requests_then_the_browser_closes() {
    let (mut meta, mut client) = wasm_client::connect(URL).await.expect("connect");
    let closed = on_close(&mut meta).await;

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

    client.close().await.expect("clean close");
    let closed = closed.await.expect("close event");

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
    assert_eq!(meta.ready_state(), WsState::Closed);
    assert!(closed.was_clean, "close not clean: {closed:?}");
    // ws_stream_wasm closes with `WebSocket.close()`, which sends a close frame without a
    // status code: 1005 "no status received". The server's WsStream counts that as a clean
    // end of stream (its log says "closed cleanly"), and echoes it.
    assert_eq!(closed.code, 1005, "{closed:?}");
}

#[wasm_bindgen_test]
async fn bye_lets_the_server_close_with_1000() {
    let (mut meta, mut client) = wasm_client::connect(URL).await.expect("connect");
    let closed = on_close(&mut meta).await;

    let echo = client
        .call(Request::Echo {
            text: "bye soon".into(),
        })
        .await
        .expect("echo");
    client.bye().await.expect("bye and clean close");
    let closed = closed.await.expect("close event");

    assert_eq!(
        echo,
        Reply::Echo {
            text: "bye soon".into()
        }
    );
    assert_eq!(meta.ready_state(), WsState::Closed);
    assert!(closed.was_clean, "close not clean: {closed:?}");
    // The server's WsStream closed with 1000 (normal closure).
    assert_eq!(closed.code, 1000, "{closed:?}");
}

#[wasm_bindgen_test]
async fn demo_for_web_pages_runs_a_session() {
    let summary = wasm_client::demo(URL.to_string())
        .await
        .map_err(wasm_bindgen::JsValue::from)
        .expect("demo");

    assert_eq!(summary, "echo: hello from the browser; 20 + 22 = 42");
}
