//! The browser side's contract, in headless Chromium, against `contract-server`, which
//! misbehaves on purpose. Run by `scripts/wasm-e2e.sh`, which starts the server and passes its
//! address at build time in `CONTRACT_URL`.
//!
//! One test per row of the contract table (the README's "In the browser"), each bounded by a
//! timeout. A test that needs to know what the server saw asks it for the session's report
//! over a second connection (`/report/<id>`).
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with a message"
)]

use std::{
    collections::HashMap,
    future::{Future, poll_fn},
    io,
    pin::{Pin, pin},
    task::Poll,
    time::Duration,
};

use futures::{
    AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt,
    future::{Either, join, select},
};
use gloo_timers::future::TimeoutFuture;
use pharos::{Observable, ObserveConfig};
use tungstenite::protocol::frame::coding::CloseCode;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use ws_stream_tungstenite::{Config, WsErr, WsEvent, browser::BrowserStream};

wasm_bindgen_test_configure!(run_in_browser);

const BASE: &str = match option_env!("CONTRACT_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9002",
};

const MIB: usize = 1024 * 1024;

/// Fails the test if `future` takes longer than `secs`.
async fn within<F: Future>(secs: u32, future: F) -> F::Output {
    match select(pin!(future), TimeoutFuture::new(secs * 1000)).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("the test timed out after {secs} s"),
    }
}

/// A fresh session id.
fn id() -> String {
    format!("{:x}", (js_sys::Math::random() * 2f64.powi(52)) as u64)
}

fn url(scenario: &str, id: &str) -> String {
    format!("{BASE}/{scenario}/{id}")
}

/// The pattern the server sends and the tests write: byte `i` is `i % 251`.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

fn fnv(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return format!("{:016x}", 0);
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// What the server saw in session `id`.
async fn report(id: &str) -> HashMap<String, String> {
    let mut stream = BrowserStream::connect(&url("report", id))
        .await
        .expect("connect for the report");
    let mut line = String::new();
    stream
        .read_to_string(&mut line)
        .await
        .expect("read the report");
    // `reason` comes last and may hold spaces.
    let (pairs, reason) = line.split_once(" reason=").unwrap_or((&line, ""));
    let mut report: HashMap<String, String> = pairs
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    report.insert("reason".to_owned(), reason.to_owned());
    report
}

fn number(report: &HashMap<String, String>, key: &str) -> usize {
    report
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {report:?}"))
}

fn ws_err(err: &io::Error) -> &WsErr {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<WsErr>())
        .unwrap_or_else(|| panic!("not a WsErr: {err:?}"))
}

/// Reads to the end: the bytes, and how it ended.
async fn read_all(stream: &mut BrowserStream) -> (Vec<u8>, io::Result<usize>) {
    let mut bytes = Vec::new();
    let end = stream.read_to_end(&mut bytes).await;
    (bytes, end)
}

/// Connects to `scenario`, reads to the end, and returns the bytes, the end and the events.
async fn session(scenario: &str) -> (Vec<u8>, io::Result<usize>, Vec<WsEvent>, String) {
    let id = id();
    let mut stream = BrowserStream::connect(&url(scenario, &id))
        .await
        .expect("connect");
    let events = stream
        .observe(ObserveConfig::default())
        .await
        .expect("observe");
    let (bytes, end) = read_all(&mut stream).await;
    // The observers' streams end after `Closed`.
    let events = events.collect::<Vec<_>>().await;
    (bytes, end, events, id)
}

// ------------------------------------------------------------------------------------------
// Reading: how the stream ends
// ------------------------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn close_1011_after_1000_bytes_is_connection_aborted() {
    within(20, async {
        let (bytes, end, events, _) = session("close/1011").await;

        assert_eq!(bytes, pattern(0, 1000));
        let err = end.expect_err("1011 is not an end of stream");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        match ws_err(&err) {
            WsErr::PeerClosed { code, reason } => {
                assert_eq!(u16::from(*code), 1011);
                assert_eq!(reason, "boom");
            }
            other => panic!("expected PeerClosed, got {other:?}"),
        }
        assert!(
            matches!(&events[..], [WsEvent::CloseFrame(Some(frame)), WsEvent::Error(e), WsEvent::Closed]
                if u16::from(frame.code) == 1011 && frame.reason == "boom"
                    && matches!(**e, WsErr::PeerClosed { .. })),
            "{events:?}"
        );
    })
    .await;
}

#[wasm_bindgen_test]
async fn tcp_drop_after_1000_bytes_is_unexpected_eof() {
    within(20, async {
        let (bytes, end, events, _) = session("drop").await;

        assert_eq!(bytes, pattern(0, 1000));
        let err = end.expect_err("a cut connection is not an end of stream");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(matches!(ws_err(&err), WsErr::ClosedWithoutHandshake));
        // No close frame came, so no CloseFrame event.
        assert!(
            matches!(&events[..], [WsEvent::Error(_), WsEvent::Closed]),
            "{events:?}"
        );
    })
    .await;
}

#[wasm_bindgen_test]
async fn tcp_reset_after_1000_bytes_is_unexpected_eof() {
    within(20, async {
        let (bytes, end, _, _) = session("reset").await;

        assert_eq!(bytes, pattern(0, 1000));
        let err = end.expect_err("a reset connection is not an end of stream");
        // Browsers report a reset as 1006 like any cut: UnexpectedEof, not ConnectionReset.
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(matches!(ws_err(&err), WsErr::ClosedWithoutHandshake));
    })
    .await;
}

#[wasm_bindgen_test]
async fn close_4000_is_peer_closed_with_the_code_and_reason() {
    within(20, async {
        let (bytes, end, _, _) = session("close/4000").await;

        assert_eq!(bytes, pattern(0, 1000));
        let err = end.expect_err("4000 is not an end of stream");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        match ws_err(&err) {
            WsErr::PeerClosed { code, reason } => {
                assert_eq!(u16::from(*code), 4000);
                assert_eq!(reason, "app error");
            }
            other => panic!("expected PeerClosed, got {other:?}"),
        }
    })
    .await;
}

#[wasm_bindgen_test]
async fn clean_close_1000_is_eof() {
    within(20, async {
        let id = id();
        let mut stream = BrowserStream::connect(&url("close/1000", &id))
            .await
            .expect("connect");
        let (bytes, end) = read_all(&mut stream).await;

        assert_eq!(bytes, pattern(0, 1000));
        assert_eq!(end.expect("a clean close is the end of the stream"), 1000);
        // And stays there.
        assert_eq!(stream.read(&mut [0; 8]).await.expect("EOF again"), 0);
        // Nothing was written: closing now is Ok.
        stream
            .close()
            .await
            .expect("close after the peer's clean close");
    })
    .await;
}

#[wasm_bindgen_test]
async fn empty_messages_are_skipped_by_poll_read() {
    within(20, async {
        let mut stream = BrowserStream::connect(&url("empty", &id()))
            .await
            .expect("connect");
        let mut got = Vec::new();
        loop {
            let mut buf = [0; 16];
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        // Ok(0) came only at the end: after all six bytes.
        assert_eq!(got, b"abcdef");
    })
    .await;
}

#[wasm_bindgen_test]
async fn empty_messages_are_skipped_by_fill_buf() {
    within(20, async {
        let mut stream = BrowserStream::connect(&url("empty", &id()))
            .await
            .expect("connect");
        let mut chunks = Vec::new();
        loop {
            let chunk = stream.fill_buf().await.expect("fill_buf").to_vec();
            if chunk.is_empty() {
                break;
            }
            stream.consume_unpin(chunk.len());
            chunks.push(chunk);
        }
        // One chunk per non-empty message, and an empty one only at the end.
        assert_eq!(chunks, [b"abc".to_vec(), b"def".to_vec()]);
    })
    .await;
}

#[wasm_bindgen_test]
async fn text_message_is_invalid_data_after_the_earlier_bytes_and_closes_4003() {
    within(20, async {
        let (bytes, end, events, id) = session("text").await;

        assert_eq!(bytes, pattern(0, 1000), "the text must not enter the stream");
        let err = end.expect_err("text is an error");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(ws_err(&err), WsErr::ReceivedText));
        assert!(
            matches!(&events[..], [WsEvent::Error(e), .., WsEvent::Closed] if matches!(**e, WsErr::ReceivedText)),
            "{events:?}"
        );
        let seen = report(&id).await;
        assert_eq!(seen["close"], "4003", "{seen:?}");
        assert_eq!(seen["reason"], "only binary messages are supported", "{seen:?}");
    })
    .await;
}

#[wasm_bindgen_test]
async fn refused_handshake_and_bad_url_are_errors() {
    within(20, async {
        let err = BrowserStream::connect(&url("refuse", &id()))
            .await
            .expect_err("a refused handshake");
        assert!(matches!(err, WsErr::ConnectFailed { .. }), "{err:?}");
        assert_eq!(
            io::Error::from(err).kind(),
            io::ErrorKind::ConnectionRefused
        );

        let err = BrowserStream::connect("ftp://example.com/")
            .await
            .expect_err("an invalid URL");
        assert!(matches!(err, WsErr::InvalidUrl { .. }), "{err:?}");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Writing and closing
// ------------------------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn small_writes_arrive_as_few_messages() {
    within(20, async {
        let id = id();
        let mut stream = BrowserStream::connect(&url("sink", &id))
            .await
            .expect("connect");
        let data = pattern(0, 10_000);
        for chunk in data.chunks(10) {
            stream.write_all(chunk).await.expect("write");
        }
        stream.flush().await.expect("flush");
        stream.close().await.expect("close");

        let seen = report(&id).await;
        assert_eq!(number(&seen, "bytes"), 10_000, "{seen:?}");
        assert_eq!(seen["fnv"], fnv(&data), "{seen:?}");
        assert!(number(&seen, "messages") <= 3, "1000 writes: {seen:?}");
        assert_eq!(seen["close"], "1000", "{seen:?}");
        assert_eq!(seen["end"], "eof", "{seen:?}");
    })
    .await;
}

#[wasm_bindgen_test]
async fn echo_of_4_mib_over_split_halves_is_byte_exact() {
    within(30, async {
        let id = id();
        let stream = BrowserStream::connect(&url("echo", &id))
            .await
            .expect("connect");
        let data = pattern(0, 4 * MIB);
        let (mut reader, mut writer) = stream.split();

        let write = async {
            // Odd-sized writes, so messages and writes never line up.
            for chunk in data.chunks(7919) {
                writer.write_all(chunk).await.expect("write");
            }
            writer.flush().await.expect("flush");
        };
        let read = async {
            let mut echoed = vec![0; data.len()];
            reader.read_exact(&mut echoed).await.expect("read the echo");
            echoed
        };
        let ((), echoed) = join(write, read).await;
        assert!(echoed == data, "the echo differs");

        let mut stream = reader.reunite(writer).expect("the halves of one stream");
        stream.close().await.expect("close");
        let seen = report(&id).await;
        assert_eq!(number(&seen, "bytes"), 4 * MIB, "{seen:?}");
        assert_eq!(seen["fnv"], fnv(&data), "{seen:?}");
    })
    .await;
}

#[wasm_bindgen_test]
async fn close_with_sends_the_code_and_reason_the_server_sees() {
    within(20, async {
        let id = id();
        let mut stream = BrowserStream::connect(&url("sink", &id))
            .await
            .expect("connect");
        stream.write_all(b"last words").await.expect("write");
        stream
            .close_with(CloseCode::Library(4000), "bye")
            .await
            .expect("close_with");
        // Our close completed: the reader is at the end.
        assert_eq!(stream.read(&mut [0; 8]).await.expect("EOF"), 0);
        // Writes are refused now.
        let err = stream.write(b"late").await.expect_err("write after close");
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);

        let seen = report(&id).await;
        assert_eq!(seen["close"], "4000", "{seen:?}");
        assert_eq!(seen["reason"], "bye", "{seen:?}");
        assert_eq!(number(&seen, "bytes"), 10, "{seen:?}");

        let err = BrowserStream::connect(&url("sink", &crate::id()))
            .await
            .expect("connect")
            .close_with(CloseCode::Unsupported, "1003 is not for pages")
            .await
            .expect_err("a code a page may not send");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    })
    .await;
}

#[wasm_bindgen_test]
async fn dropping_an_open_stream_closes_with_4006() {
    within(20, async {
        let id = id();
        let mut stream = BrowserStream::connect(&url("sink", &id))
            .await
            .expect("connect");
        let events = stream
            .observe(ObserveConfig::default())
            .await
            .expect("observe");
        stream.write_all(b"abc").await.expect("write");
        stream.flush().await.expect("flush");
        drop(stream);
        // The observers' streams end with the stream.
        assert_eq!(events.count().await, 0);

        let seen = report(&id).await;
        assert_eq!(seen["close"], "4006", "{seen:?}");
        assert_eq!(number(&seen, "bytes"), 3, "{seen:?}");
    })
    .await;
}

#[wasm_bindgen_test]
async fn close_is_bounded_by_the_close_timeout() {
    within(20, async {
        let config = Config::default().close_timeout(Some(Duration::from_millis(500)));
        let mut stream = BrowserStream::connect_with(&url("stall", &id()), config)
            .await
            .expect("connect");
        stream.write_all(b"abc").await.expect("write");
        let err = stream.close().await.expect_err("the server never answers");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let err = stream.read(&mut [0; 8]).await.expect_err("the reader too");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    })
    .await;
}

/// `poll_write` until all of `buf` is taken, counting `Pending`s and the largest
/// `bufferedAmount` seen after a write.
async fn write_counted(
    stream: &mut BrowserStream,
    mut buf: &[u8],
    pendings: &mut usize,
    max_buffered: &mut usize,
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = poll_fn(|cx| match Pin::new(&mut *stream).poll_write(cx, buf) {
            Poll::Pending => {
                *pendings += 1;
                Poll::Pending
            }
            ready => ready,
        })
        .await?;
        buf = &buf[n..];
        *max_buffered = (*max_buffered).max(stream.buffered_amount());
    }
    Ok(())
}

#[wasm_bindgen_test]
async fn writes_to_a_slow_reader_block_and_memory_stays_bounded() {
    within(90, async {
        const SLOW_SECS: u32 = 5;
        let id = id();
        let config = Config::default();
        let (high_water, max_message) = (
            config.get_browser_high_water(),
            config.get_max_message_size(),
        );
        let data = pattern(0, 64 * MIB);
        let mut stream =
            BrowserStream::connect_with(&url(&format!("slow/{SLOW_SECS}"), &id), config)
                .await
                .expect("connect");
        // The server's slow phase starts with the first message.
        let start = js_sys::Date::now();
        let (mut pendings, mut max_buffered, mut taken_in_slow_phase) = (0, 0, 0);
        let mut taken = 0;
        for chunk in data.chunks(64 * 1024) {
            write_counted(&mut stream, chunk, &mut pendings, &mut max_buffered)
                .await
                .expect("write");
            taken += chunk.len();
            if js_sys::Date::now() - start < f64::from(SLOW_SECS - 1) * 1000.0 {
                taken_in_slow_phase = taken;
            }
        }
        stream.flush().await.expect("flush");
        stream.close().await.expect("close");
        let elapsed = (js_sys::Date::now() - start) / 1000.0;

        let seen = report(&id).await;
        web_sys_log(&format!(
            "slow reader: {pendings} Pending writes, max bufferedAmount {max_buffered}, \
             {taken_in_slow_phase} bytes taken in the first {} s, 64 MiB in {elapsed:.1} s; \
             server: {seen:?}",
            SLOW_SECS - 1
        ));
        assert!(pendings > 0, "the writes never blocked");
        assert!(
            max_buffered < high_water + max_message,
            "bufferedAmount reached {max_buffered}"
        );
        // At 1 MiB/s the server read at most ~4 MiB in that time; what the writes took beyond
        // it sits in the browser (bounded above) and in the network buffers between us.
        assert!(
            taken_in_slow_phase < 24 * MIB,
            "the writes took {taken_in_slow_phase} bytes while the server read 1 MiB/s"
        );
        assert_eq!(number(&seen, "bytes"), 64 * MIB, "{seen:?}");
        assert_eq!(seen["fnv"], fnv(&data), "{seen:?}");
    })
    .await;
}

/// One round: writes of 100 bytes, a flush after every `flush_every`, while the server closes
/// with 1011 `after_ms` after the first message. Returns (bytes confirmed by a successful
/// flush, bytes the server received).
async fn round_under_1011(after_ms: usize, flush_every: usize) -> (usize, usize) {
    let id = id();
    // One message per write: every write goes to the browser at once, as with ws_stream_wasm.
    let config = Config::default().max_message_size(100);
    let mut stream =
        BrowserStream::connect_with(&url(&format!("fast-1011/{after_ms}"), &id), config)
            .await
            .expect("connect");
    let data = pattern(0, 2 * MIB);
    let (mut written, mut confirmed, mut failed) = (0, 0, None);
    for (i, chunk) in data.chunks(100).enumerate() {
        if let Err(e) = stream.write_all(chunk).await {
            failed = Some(e);
            break;
        }
        written += chunk.len();
        if (i + 1) % flush_every == 0 {
            match stream.flush().await {
                Ok(()) => confirmed = written,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    let failed = failed.expect("the server closed: some write or flush must fail");
    assert_ne!(failed.kind(), io::ErrorKind::Other, "{failed:?}");
    stream
        .close()
        .await
        .expect_err("close after lost bytes must fail");

    let seen = report(&id).await;
    let received = number(&seen, "bytes");
    assert_eq!(seen["fnv"], fnv(&data[..received]), "{seen:?}");
    (confirmed, received)
}

#[wasm_bindgen_test]
async fn fast_writes_while_the_server_closes_1011_lose_no_confirmed_byte() {
    // `CONTRACT_ROUNDS` at build time runs more rounds, to measure.
    let rounds: usize = option_env!("CONTRACT_ROUNDS").map_or(12, |r| r.parse().unwrap());
    within(30 + 5 * rounds as u32, async {
        let mut summary = Vec::new();
        for round in 0..rounds {
            let after_ms = 40 + (round * 37) % 300;
            let flush_every = [1, 1, 3, 10][round % 4];
            let (confirmed, received) = round_under_1011(after_ms, flush_every).await;
            summary.push(format!("{confirmed}/{received}"));
            assert!(
                confirmed <= received,
                "round {round}: {confirmed} bytes confirmed by flush, {received} arrived"
            );
        }
        web_sys_log(&format!("confirmed/received per round: {summary:?}"));
    })
    .await;
}

/// The limit of what a page can know: Chromium hands bytes to its network process through a
/// data pipe of 131,000 bytes, and `bufferedAmount` drops as soon as they are in it. While the
/// peer reads nothing, the network process cannot take them out, yet `bufferedAmount` is 0 and
/// the socket is open, so a flush counts them as delivered; when the peer then closes, the
/// network process drops them. This measures that loss and checks it stays within the pipe.
#[wasm_bindgen_test]
async fn a_stalled_peer_that_closes_drops_at_most_the_browser_pipe() {
    const CHROMIUM_SEND_PIPE: usize = 131_000;
    within(30, async {
        let id = id();
        let data = pattern(0, 64 * MIB);
        let mut stream = BrowserStream::connect(&url("stall-1011/4000", &id))
            .await
            .expect("connect");
        let (mut written, mut confirmed) = (0, 0);
        // Writes of 32 KiB, each flushed, until a flush waits (the path is full) or fails.
        for chunk in data.chunks(32 * 1024) {
            stream.write_all(chunk).await.expect("write");
            written += chunk.len();
            match select(pin!(stream.flush()), TimeoutFuture::new(300)).await {
                Either::Left((Ok(()), _)) => confirmed = written,
                Either::Left((Err(_), _)) | Either::Right(_) => break,
            }
        }
        let end = stream
            .flush()
            .await
            .expect_err("the server closed with 1011");
        assert_eq!(end.kind(), io::ErrorKind::ConnectionAborted);

        let seen = report(&id).await;
        let received = number(&seen, "bytes");
        assert_eq!(seen["fnv"], fnv(&data[..received]), "{seen:?}");
        let dropped = confirmed.saturating_sub(received);
        web_sys_log(&format!(
            "stalled peer: {written} written, {confirmed} confirmed by flush, {received} \
             received: {dropped} confirmed bytes dropped"
        ));
        assert!(
            dropped <= CHROMIUM_SEND_PIPE,
            "{dropped} confirmed bytes dropped, more than the browser's pipe"
        );
    })
    .await;
}

fn web_sys_log(line: &str) {
    wasm_bindgen_test::console_log!("{line}");
}
