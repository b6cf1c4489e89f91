//! The shared `proto` crate in a browser: a WebSocket from `ws_stream_tungstenite`'s
//! `BrowserStream` (feature `browser`) carries the same framed protocol that the native server
//! speaks over `ws_stream_tungstenite::WsStream`, with the same contract on both sides (an end
//! of stream only after a clean close, backpressure, no silent loss).
//!
//! Build for `wasm32-unknown-unknown`; on other targets this crate is empty. Its browser test
//! (`tests/browser.rs`) runs against a live server: see `scripts/wasm-e2e.sh`.
#![forbid(unsafe_code)]
#![cfg(target_arch = "wasm32")]

use proto::{Client, Reply, Request};
use wasm_bindgen::{JsError, prelude::wasm_bindgen};
use ws_stream_tungstenite::{WsErr, browser::BrowserStream};

/// Open a WebSocket to `url` and speak `proto` over it.
///
/// # Errors
///
/// Whatever [`BrowserStream::connect`] reports: an invalid URL, or a connection or handshake
/// that failed.
pub async fn connect(url: &str) -> Result<Client<BrowserStream>, WsErr> {
    Ok(Client::new(BrowserStream::connect(url).await?))
}

/// For a web page: run a short session against the server at `url` and describe it.
///
/// ```js
/// import init, { demo } from "./wasm_client.js";
/// await init();
/// console.log(await demo("ws://127.0.0.1:9001"));
/// ```
///
/// # Errors
///
/// A connection or protocol error, as a JavaScript `Error`.
#[wasm_bindgen]
pub async fn demo(url: String) -> Result<String, JsError> {
    let mut client = connect(&url).await?;
    let echo = client
        .call(Request::Echo {
            text: "hello from the browser".into(),
        })
        .await?;
    let sum = client.call(Request::Add { a: 20, b: 22 }).await?;
    client.bye().await?;

    match (echo, sum) {
        (Reply::Echo { text }, Reply::Sum { value }) => {
            Ok(format!("echo: {text}; 20 + 22 = {value}"))
        }
        (echo, sum) => Err(JsError::new(&format!(
            "unexpected replies: {echo:?}, {sum:?}"
        ))),
    }
}
