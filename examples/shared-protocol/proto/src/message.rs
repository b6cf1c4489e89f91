use serde::{Deserialize, Serialize};

/// What a client may ask.
///
/// Serialized as JSON with the variant name in the field `op`, e.g.
/// `{"op":"add","a":2,"b":3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Send `text` back unchanged. Answered with [`Reply::Echo`].
    Echo {
        /// The text to echo.
        text: String,
    },
    /// Add two integers. Answered with [`Reply::Sum`], or [`Reply::Error`] on overflow.
    Add {
        /// First operand.
        a: i64,
        /// Second operand.
        b: i64,
    },
    /// Reverse `text` character by character. Answered with [`Reply::Reversed`].
    Reverse {
        /// The text to reverse.
        text: String,
    },
    /// Ask the server to end the session: it answers [`Reply::Bye`], then closes the
    /// connection from its side.
    Bye,
}

/// What the server answers, one reply per request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// Answer to [`Request::Echo`].
    Echo {
        /// The text that was sent.
        text: String,
    },
    /// Answer to [`Request::Add`].
    Sum {
        /// `a + b`.
        value: i64,
    },
    /// Answer to [`Request::Reverse`].
    Reversed {
        /// The text, reversed.
        text: String,
    },
    /// Answer to [`Request::Bye`]; the server closes the connection after it.
    Bye,
    /// The request was understood as a frame but could not be served (bad JSON, overflow).
    /// The connection stays usable.
    Error {
        /// What went wrong, for humans.
        message: String,
    },
}
