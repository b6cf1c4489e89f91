//! A hand-made WebSocket frame codec for raw peers: it builds any frame, valid or not
//! (reserved opcodes and bits, unmasked client frames, arbitrary fragmentation), and decodes
//! what the stream under test sends.

pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One frame to build. `mask` is required from a client, forbidden from a server.
#[derive(Debug, Clone)]
pub struct Frame {
    pub fin: bool,
    /// The three reserved bits, as the top bits of the first byte (0x70 mask).
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload: payload.into(),
        }
    }

    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    pub fn masked(mut self, mask: [u8; 4]) -> Self {
        self.mask = Some(mask);
        self
    }

    /// Masks the frame when `client` (the frame is sent by a client).
    pub fn sent_by_client(self, client: bool) -> Self {
        if client {
            self.masked([0x37, 0xfa, 0x21, 0x3d])
        } else {
            self
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 14);
        out.push(u8::from(self.fin) << 7 | (self.rsv & 0x70) | (self.opcode & 0x0f));
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= u16::MAX as usize {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match self.mask {
            Some(mask) => {
                out.extend_from_slice(&mask);
                out.extend(
                    self.payload
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ mask[i % 4]),
                );
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// A close frame payload: the code and a reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// A decoded frame (payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Decoded {
    /// The close code of a close frame, if it carries one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Splits a byte sequence into frames; incomplete trailing bytes wait for more input.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if there is one.
    pub fn next_frame(&mut self) -> Option<Decoded> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let mask = if masked {
            if b.len() < at + 4 {
                return None;
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if b.len() < at + len {
            return None;
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x ^= m[i % 4]);
        }
        let frame = Decoded {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0f,
            masked,
            payload,
        };
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// All complete frames.
    pub fn frames(&mut self) -> Vec<Decoded> {
        std::iter::from_fn(|| self.next_frame()).collect()
    }

    /// Bytes of an incomplete frame left over.
    pub fn leftover(&self) -> usize {
        self.buf.len()
    }
}

/// Decodes a whole byte sequence.
pub fn decode_all(bytes: &[u8]) -> Vec<Decoded> {
    let mut d = Decoder::default();
    d.push(bytes);
    d.frames()
}

/// The concatenated payloads of the binary messages (with their continuation frames).
pub fn binary_payload(frames: &[Decoded]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_binary = false;
    for f in frames {
        match f.opcode {
            BINARY => {
                out.extend_from_slice(&f.payload);
                in_binary = !f.fin;
            }
            CONT if in_binary => {
                out.extend_from_slice(&f.payload);
                in_binary = !f.fin;
            }
            _ => {}
        }
    }
    out
}
