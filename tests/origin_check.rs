//! The `Origin` check of docs/origin_check.rs.txt, compiled as it is and run through real
//! handshakes over an in-memory pipe.

use std::{error::Error, future::Future, time::Duration};

use async_tungstenite::{accept_hdr_async, client_async, tokio::TokioAdapter};
use tungstenite::{Error as TungErr, client::IntoClientRequest, http::HeaderValue};

// Brings `check_origin` and its imports (`Arc`, `StatusCode`, `ORIGIN`, ...).
include!("../docs/origin_check.rs.txt");

type BoxError = Box<dyn Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

/// Fails the test instead of hanging it.
async fn within<F: Future<Output = TestResult>>(fut: F) -> TestResult {
    tokio::time::timeout(Duration::from_secs(10), fut).await?
}

/// Runs a handshake with `origin` (if any) against a server allowing `allowed`: the server's
/// outcome, and the status the client got (101 or the refusal).
async fn handshake(allowed: &[&str], origin: Option<&str>) -> Result<(bool, StatusCode), BoxError> {
    let allowed: Arc<[String]> = allowed.iter().map(|s| s.to_string()).collect();
    let (a, b) = tokio::io::duplex(64 * 1024);

    let mut request = "ws://localhost/".into_client_request()?;
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert(ORIGIN, HeaderValue::from_str(origin)?);
    }

    let (client, server) = futures::join!(
        client_async(request, TokioAdapter::new(a)),
        accept_hdr_async(TokioAdapter::new(b), check_origin(allowed)),
    );
    let status = match client {
        Ok((_ws, response)) => response.status(),
        Err(TungErr::Http(response)) => response.status(),
        Err(other) => return Err(other.into()),
    };
    Ok((server.is_ok(), status))
}

#[tokio::test]
async fn listed_origin_is_accepted() -> TestResult {
    within(async {
        let allowed = ["https://example.com", "http://localhost:8080/"];
        assert_eq!(
            handshake(&allowed, Some("https://example.com")).await?,
            (true, StatusCode::SWITCHING_PROTOCOLS)
        );
        // Trailing slash in the list and ASCII case do not matter.
        assert_eq!(
            handshake(&allowed, Some("http://LOCALHOST:8080")).await?,
            (true, StatusCode::SWITCHING_PROTOCOLS)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn other_origins_get_403() -> TestResult {
    within(async {
        let allowed = ["https://example.com"];
        for origin in [
            "https://evil.example",
            "http://example.com",       // another scheme is another origin
            "https://example.com:8443", // and so is another port
            "https://example.com.evil.example",
            "null", // sandboxed frames and file: pages
        ] {
            assert_eq!(
                handshake(&allowed, Some(origin)).await?,
                (false, StatusCode::FORBIDDEN),
                "{origin}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn no_origin_means_no_browser_and_is_accepted() -> TestResult {
    within(async {
        assert_eq!(
            handshake(&["https://example.com"], None).await?,
            (true, StatusCode::SWITCHING_PROTOCOLS)
        );
        // An empty list refuses every browser but still serves other clients.
        assert_eq!(
            handshake(&[], Some("https://example.com")).await?,
            (false, StatusCode::FORBIDDEN)
        );
        Ok(())
    })
    .await
}
