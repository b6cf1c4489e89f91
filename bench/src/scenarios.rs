//! The scenarios. Every run opens fresh loopback connections; the client and the server each run
//! on their own thread with a current-thread tokio runtime.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};

use crate::alloc::Snapshot;
use crate::count::{Counted, Counts};
use crate::imps::{Conn, Impl, Role, setup};
use crate::sys;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// A single run that takes longer than this is abandoned as failed.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// One measured quantity of a scenario.
pub struct Metric {
    pub name: &'static str,
    /// Direction of "better"; used to word the ratios.
    pub higher_is_better: bool,
    /// Show min–max and the ratios against `at-msg` and `wst-0.15` for this metric.
    pub detailed: bool,
    pub decimals: usize,
}

const fn m(name: &'static str, higher: bool, detailed: bool, decimals: usize) -> Metric {
    Metric {
        name,
        higher_is_better: higher,
        detailed,
        decimals,
    }
}

#[derive(Clone, Debug)]
pub enum Kind {
    /// Client writes `total` bytes in writes of `write` bytes and flushes once; server reads and
    /// verifies every byte.
    Bulk { write: usize, total: u64 },
    /// `count` lines through `LinesCodec`, `send` (flush per line) or `feed` + one flush.
    Lines { count: usize, flush_each: bool },
    /// Client writes `size` bytes and flushes, server echoes them, `rounds` times.
    PingPong { rounds: usize, size: usize },
    /// `count` writes of `size` bytes, each flushed: allocations per message on both ends.
    Allocs { count: usize, size: usize },
    /// `conns` idle connections held open, then with a pending read on every endpoint.
    Idle { conns: usize },
}

pub struct Scenario {
    /// Short id, used on the command line (`--only`) and in the CSV.
    pub id: String,
    pub title: String,
    pub kind: Kind,
    pub reps: usize,
    pub warmup: bool,
}

impl Kind {
    pub fn metrics(&self) -> &'static [Metric] {
        const BULK: &[Metric] = &[
            m("MiB/s", true, true, 1),
            m("CPU s/GiB", false, false, 2),
            m("tx allocs/write", false, false, 2),
            m("rx allocs/MiB", false, false, 1),
            m("socket calls/MiB", false, false, 1),
            m("empty socket polls/MiB", false, false, 1),
            m("wake-ups/MiB", false, false, 1),
            m("context switches/MiB", false, false, 1),
        ];
        const LINES: &[Metric] = &[
            m("k lines/s", true, true, 1),
            m("MiB/s", true, false, 1),
            m("CPU ns/line", false, false, 0),
            m("socket calls/1k lines", false, false, 1),
            m("empty socket polls/1k lines", false, false, 1),
            m("wake-ups/1k lines", false, false, 1),
            m("context switches/1k lines", false, false, 1),
        ];
        const PING: &[Metric] = &[
            m("p50 µs", false, true, 1),
            m("p99 µs", false, true, 1),
            m("CPU µs/round", false, false, 1),
            m("socket calls/round", false, false, 2),
            m("empty socket polls/round", false, false, 2),
            m("wake-ups/round", false, false, 2),
            m("context switches/round", false, false, 2),
        ];
        const ALLOCS: &[Metric] = &[
            m("tx allocs/msg", false, true, 2),
            m("rx allocs/msg", false, true, 2),
            m("tx bytes/msg", false, false, 0),
            m("rx bytes/msg", false, false, 0),
            m("socket calls/msg", false, false, 2),
            m("empty socket polls/msg", false, false, 2),
            m("wake-ups/msg", false, false, 2),
            m("context switches/msg", false, false, 2),
        ];
        const IDLE: &[Metric] = &[
            m("held KiB/endpoint", false, true, 2),
            m("reading KiB/endpoint", false, true, 2),
            m("RSS held KiB/endpoint", false, false, 1),
            m("RSS reading KiB/endpoint", false, false, 1),
        ];
        match self {
            Kind::Bulk { .. } => BULK,
            Kind::Lines { .. } => LINES,
            Kind::PingPong { .. } => PING,
            Kind::Allocs { .. } => ALLOCS,
            Kind::Idle { .. } => IDLE,
        }
    }
}

/// What every run shares.
pub struct Env {
    /// Pin the client thread to this CPU.
    pub pin: Option<usize>,
    /// Pin the server thread to this CPU.
    pub pin_server: Option<usize>,
    pub pattern: Arc<Pattern>,
    pub lines: Arc<Lines>,
}

impl Env {
    /// `pin`: (client CPU, server CPU).
    pub fn new(pin: Option<(usize, usize)>) -> Self {
        Self {
            pin: pin.map(|p| p.0),
            pin_server: pin.map(|p| p.1),
            pattern: Arc::new(Pattern::new()),
            lines: Arc::new(Lines::new(1000)),
        }
    }
}

/// Runs one repetition of `kind` over `imp` and returns the values of `kind.metrics()`.
pub fn run(env: &Env, kind: &Kind, imp: Impl) -> io::Result<Vec<f64>> {
    match *kind {
        Kind::Bulk { write, total } => bulk(env, imp, write, total),
        Kind::Lines { count, flush_each } => lines(env, imp, count, flush_each),
        Kind::PingPong { rounds, size } => ping_pong(env, imp, rounds, size),
        Kind::Allocs { count, size } => allocs(env, imp, count, size),
        Kind::Idle { conns } => idle(env, imp, conns),
    }
}

// ---- test data -----------------------------------------------------------------------------------

/// The byte sequence the bulk scenarios send: a pseudo-random pattern with a prime period, so
/// that it never lines up with write or message sizes. The receiver compares every byte.
pub struct Pattern {
    data: Vec<u8>,
}

const PERIOD: usize = 65_521;
const MAX_SLICE: usize = 64 * 1024;

impl Pattern {
    fn new() -> Self {
        let data = (0..PERIOD + MAX_SLICE)
            .map(|i| {
                let j = (i % PERIOD) as u32;
                (j.wrapping_mul(2_654_435_761) >> 24) as u8
            })
            .collect();
        Self { data }
    }

    /// The `len` bytes at stream offset `off` (`len` <= 64 KiB).
    fn slice(&self, off: u64, len: usize) -> &[u8] {
        let start = (off % PERIOD as u64) as usize;
        &self.data[start..start + len]
    }

    /// Checks that `got` is what was sent at stream offset `off`.
    fn check(&self, mut off: u64, got: &[u8]) -> io::Result<()> {
        for chunk in got.chunks(MAX_SLICE) {
            if chunk != self.slice(off, chunk.len()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt data near stream offset {off}"),
                ));
            }
            off += chunk.len() as u64;
        }
        Ok(())
    }
}

/// Text lines of equal length for the codec scenario.
pub struct Lines {
    lines: Vec<String>,
}

impl Lines {
    fn new(n: usize) -> Self {
        Self {
            lines: (0..n)
                .map(|i| format!("{i:07} the quick brown fox jumps over the lazy dog"))
                .collect(),
        }
    }

    fn get(&self, i: usize) -> &str {
        &self.lines[i % self.lines.len()]
    }

    /// Bytes on the wire per line, newline included.
    fn wire_len(&self) -> usize {
        self.lines[0].len() + 1
    }
}

// ---- harness -------------------------------------------------------------------------------------

/// Wall-clock start, CPU time and allocations of one thread over a measured section.
#[derive(Clone, Copy, Debug)]
struct Measured {
    start: Instant,
    end: Instant,
    cpu: Duration,
    allocs: Snapshot,
    counts: Counts,
}

struct Meter {
    start: Instant,
    cpu: Duration,
    allocs: Snapshot,
    counts: Counts,
}

impl Meter {
    /// Reading the context switches allocates: the counters are read outside the section
    /// whose allocations are counted.
    fn start() -> Self {
        let counts = Counts::now();
        let allocs = Snapshot::now();
        let cpu = sys::thread_cpu();
        Self {
            start: Instant::now(),
            cpu,
            allocs,
            counts,
        }
    }

    fn finish(&self) -> Measured {
        let end = Instant::now();
        let cpu = sys::thread_cpu() - self.cpu;
        let allocs = Snapshot::elapsed(self.allocs);
        Measured {
            start: self.start,
            end,
            cpu,
            allocs,
            counts: Counts::now().since(self.counts),
        }
    }
}

/// Socket calls, socket polls that found nothing, wake-ups and context switches of both sides,
/// per `unit` (MiB, lines, ...).
fn per(c: &Measured, s: &Measured, units: f64) -> [f64; 4] {
    let t = c.counts.plus(s.counts);
    [
        t.socket_calls as f64 / units,
        t.would_block as f64 / units,
        t.wakes as f64 / units,
        t.switches as f64 / units,
    ]
}

type LocalFut<T> = Pin<Box<dyn Future<Output = io::Result<(T, Conn)>>>>;

/// Waits on a barrier a fixed number of times in total: the rest of them on drop, so that a
/// thread that fails early never leaves the others waiting forever.
struct Phases {
    barrier: Arc<Barrier>,
    left: usize,
}

impl Phases {
    fn new(barrier: Arc<Barrier>, total: usize) -> Self {
        Self {
            barrier,
            left: total,
        }
    }

    fn next(&mut self) {
        if self.left > 0 {
            self.left -= 1;
            self.barrier.wait();
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        while self.left > 0 {
            self.next();
        }
    }
}

pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "run took too long")
}

fn spawn<T: Send + 'static>(
    name: &str,
    pin: Option<usize>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> thread::JoinHandle<io::Result<T>> {
    let spawned = thread::Builder::new().name(name.into()).spawn(move || {
        if let Some(cpu) = pin {
            sys::pin_current_thread(cpu)?;
        }
        f()
    });
    match spawned {
        Ok(handle) => handle,
        Err(e) => {
            // The peer thread may already wait on a barrier; there is no way to recover.
            eprintln!("cannot spawn a thread: {e}");
            std::process::exit(2);
        }
    }
}

fn join<T>(h: thread::JoinHandle<io::Result<T>>) -> io::Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(io::Error::other("bench thread panicked")))
}

/// Connects one client to one server over loopback, sets both up as `imp`, and runs `client` and
/// `server` on their threads. Both connections stay open until both sides are done.
fn run_pair<C, S, FC, FS>(env: &Env, imp: Impl, client: FC, server: FS) -> io::Result<(C, S)>
where
    C: Send + 'static,
    S: Send + 'static,
    FC: FnOnce(Conn) -> LocalFut<C> + Send + 'static,
    FS: FnOnce(Conn) -> LocalFut<S> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let done = Arc::new(Barrier::new(2));

    let done_s = done.clone();
    let s = spawn("bench-server", env.pin_server, move || {
        let mut phases = Phases::new(done_s, 1);
        runtime()?.block_on(Counted::new(async move {
            let work = async move {
                let listener = TcpListener::from_std(listener)?;
                let (tcp, _) = listener.accept().await?;
                drop(listener);
                tcp.set_nodelay(true)?;
                let conn = setup(imp, Role::Server, tcp).await?;
                server(conn).await
            };
            let res = tokio::time::timeout(RUN_LIMIT, work)
                .await
                .unwrap_or_else(|_| Err(timed_out()));
            phases.next();
            res.map(|(out, _conn)| out)
        }))
    });

    let c = spawn("bench-client", env.pin, move || {
        let mut phases = Phases::new(done, 1);
        runtime()?.block_on(Counted::new(async move {
            let work = async move {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let conn = setup(imp, Role::Client, tcp).await?;
                client(conn).await
            };
            let res = tokio::time::timeout(RUN_LIMIT, work)
                .await
                .unwrap_or_else(|_| Err(timed_out()));
            phases.next();
            res.map(|(out, _conn)| out)
        }))
    });

    let c = join(c);
    let s = join(s);
    match (c, s) {
        (Ok(c), Ok(s)) => Ok((c, s)),
        (Err(e), _) => Err(io::Error::new(e.kind(), format!("client: {e}"))),
        (_, Err(e)) => Err(io::Error::new(e.kind(), format!("server: {e}"))),
    }
}

fn ws_err(e: async_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

fn codec_err(e: LinesCodecError) -> io::Error {
    match e {
        LinesCodecError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

fn early_eof(got: u64, want: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("stream ended after {got} of {want}"),
    )
}

/// Next binary payload from a raw WebSocket; other messages are skipped.
async fn next_binary(ws: &mut crate::imps::Ws) -> io::Result<Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ws_err(e)),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

// ---- bulk ---------------------------------------------------------------------------------------

fn bulk(env: &Env, imp: Impl, write: usize, total: u64) -> io::Result<Vec<f64>> {
    let (pc, ps) = (env.pattern.clone(), env.pattern.clone());
    let (c, s) = run_pair(
        env,
        imp,
        move |conn| Box::pin(send_chunks(conn, pc, write, total, false)),
        move |conn| Box::pin(receive_bytes(conn, ps, total)),
    )?;
    let secs = s.end.duration_since(c.start).as_secs_f64();
    let writes = total.div_ceil(write as u64) as f64;
    let mib = total as f64 / MIB;
    let mut v = vec![
        mib / secs,
        (c.cpu + s.cpu).as_secs_f64() / (total as f64 / GIB),
        c.allocs.allocs as f64 / writes,
        s.allocs.allocs as f64 / mib,
    ];
    v.extend(per(&c, &s, mib));
    Ok(v)
}

/// Sends `total` pattern bytes in writes of `write` bytes; flushes after every write if
/// `flush_each`, else once at the end.
async fn send_chunks(
    mut conn: Conn,
    pat: Arc<Pattern>,
    write: usize,
    total: u64,
    flush_each: bool,
) -> io::Result<(Measured, Conn)> {
    let meter = Meter::start();
    let mut off = 0u64;
    match &mut conn {
        Conn::Io(io) => {
            while off < total {
                let n = write.min((total - off) as usize);
                io.write_all(pat.slice(off, n)).await?;
                if flush_each {
                    io.flush().await?;
                }
                off += n as u64;
            }
            io.flush().await?;
        }
        Conn::Msg(ws) => {
            while off < total {
                let n = write.min((total - off) as usize);
                let msg = Message::Binary(Bytes::copy_from_slice(pat.slice(off, n)));
                if flush_each {
                    ws.send(msg).await.map_err(ws_err)?;
                } else {
                    ws.feed(msg).await.map_err(ws_err)?;
                }
                off += n as u64;
            }
            ws.flush().await.map_err(ws_err)?;
        }
    }
    Ok((meter.finish(), conn))
}

/// Reads exactly `total` bytes and checks each against the pattern.
async fn receive_bytes(
    mut conn: Conn,
    pat: Arc<Pattern>,
    total: u64,
) -> io::Result<(Measured, Conn)> {
    let mut buf = vec![0u8; 64 * 1024];
    let meter = Meter::start();
    let mut got = 0u64;
    match &mut conn {
        Conn::Io(io) => {
            while got < total {
                let n = io.read(&mut buf).await?;
                if n == 0 {
                    return Err(early_eof(got, total));
                }
                pat.check(got, &buf[..n])?;
                got += n as u64;
            }
        }
        Conn::Msg(ws) => {
            while got < total {
                let b = next_binary(ws)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("{e} after {got} bytes")))?;
                pat.check(got, &b)?;
                got += b.len() as u64;
            }
        }
    }
    let measured = meter.finish();
    if got != total {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("received {got} bytes, {total} were sent"),
        ));
    }
    Ok((measured, conn))
}

// ---- lines ---------------------------------------------------------------------------------------

fn lines(env: &Env, imp: Impl, count: usize, flush_each: bool) -> io::Result<Vec<f64>> {
    let (lc, ls) = (env.lines.clone(), env.lines.clone());
    let wire = env.lines.wire_len() as f64;
    let (c, s) = run_pair(
        env,
        imp,
        move |conn| Box::pin(send_lines(conn, lc, count, flush_each)),
        move |conn| Box::pin(receive_lines(conn, ls, count)),
    )?;
    let secs = s.end.duration_since(c.start).as_secs_f64();
    let n = count as f64;
    let mut v = vec![
        n / secs / 1000.0,
        n * wire / MIB / secs,
        (c.cpu + s.cpu).as_secs_f64() * 1e9 / n,
    ];
    v.extend(per(&c, &s, n / 1000.0));
    Ok(v)
}

async fn send_lines(
    mut conn: Conn,
    lines: Arc<Lines>,
    count: usize,
    flush_each: bool,
) -> io::Result<(Measured, Conn)> {
    let meter = Meter::start();
    match &mut conn {
        Conn::Io(io) => {
            let mut sink = FramedWrite::new(&mut **io, LinesCodec::new());
            for i in 0..count {
                let line = lines.get(i);
                if flush_each {
                    sink.send(line).await.map_err(codec_err)?;
                } else {
                    sink.feed(line).await.map_err(codec_err)?;
                }
            }
            SinkExt::<&str>::flush(&mut sink).await.map_err(codec_err)?;
        }
        Conn::Msg(ws) => {
            // The message-API equivalent: one binary message per line, newline included.
            for i in 0..count {
                let line = lines.get(i).as_bytes();
                let mut payload = Vec::with_capacity(line.len() + 1);
                payload.extend_from_slice(line);
                payload.push(b'\n');
                let msg = Message::Binary(payload.into());
                if flush_each {
                    ws.send(msg).await.map_err(ws_err)?;
                } else {
                    ws.feed(msg).await.map_err(ws_err)?;
                }
            }
            ws.flush().await.map_err(ws_err)?;
        }
    }
    Ok((meter.finish(), conn))
}

async fn receive_lines(
    mut conn: Conn,
    lines: Arc<Lines>,
    count: usize,
) -> io::Result<(Measured, Conn)> {
    let meter = Meter::start();
    let bad = |i: usize| io::Error::new(io::ErrorKind::InvalidData, format!("line {i} differs"));
    match &mut conn {
        Conn::Io(io) => {
            let mut source = FramedRead::new(&mut **io, LinesCodec::new());
            for i in 0..count {
                match source.next().await {
                    Some(Ok(line)) if line == lines.get(i) => {}
                    Some(Ok(_)) => return Err(bad(i)),
                    Some(Err(e)) => return Err(codec_err(e)),
                    None => return Err(early_eof(i as u64, count as u64)),
                }
            }
        }
        Conn::Msg(ws) => {
            for i in 0..count {
                let b = next_binary(ws).await?;
                let want = lines.get(i).as_bytes();
                if b.len() != want.len() + 1 || &b[..want.len()] != want || b[want.len()] != b'\n' {
                    return Err(bad(i));
                }
            }
        }
    }
    Ok((meter.finish(), conn))
}

// ---- ping-pong -----------------------------------------------------------------------------------

/// The client's view of a ping-pong run.
struct PingOut {
    measured: Measured,
    /// Round-trip times in nanoseconds.
    rtts: Vec<u64>,
}

fn ping_pong(env: &Env, imp: Impl, rounds: usize, size: usize) -> io::Result<Vec<f64>> {
    let (c, s) = run_pair(
        env,
        imp,
        move |conn| Box::pin(ping(conn, rounds, size)),
        move |conn| Box::pin(pong(conn, rounds, size)),
    )?;
    let mut rtts = c.rtts;
    rtts.sort_unstable();
    let pct = |p: f64| {
        let i = ((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len()) - 1;
        rtts[i] as f64 / 1000.0
    };
    let mut v = vec![
        pct(0.50),
        pct(0.99),
        (c.measured.cpu + s.cpu).as_secs_f64() * 1e6 / rounds as f64,
    ];
    v.extend(per(&c.measured, &s, rounds as f64));
    Ok(v)
}

async fn ping(mut conn: Conn, rounds: usize, size: usize) -> io::Result<(PingOut, Conn)> {
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(rounds);
    let meter = Meter::start();
    for r in 0..rounds {
        out.fill(r as u8);
        let t = Instant::now();
        match &mut conn {
            Conn::Io(io) => {
                io.write_all(&out).await?;
                io.flush().await?;
                io.read_exact(&mut back).await?;
            }
            Conn::Msg(ws) => {
                ws.send(Message::Binary(Bytes::copy_from_slice(&out)))
                    .await
                    .map_err(ws_err)?;
                let b = next_binary(ws).await?;
                if b.len() != size {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "echo size"));
                }
                back.copy_from_slice(&b);
            }
        }
        rtts.push(t.elapsed().as_nanos() as u64);
        if back != out {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
        }
    }
    let measured = meter.finish();
    Ok((PingOut { measured, rtts }, conn))
}

async fn pong(mut conn: Conn, rounds: usize, size: usize) -> io::Result<(Measured, Conn)> {
    let mut buf = vec![0u8; size];
    let meter = Meter::start();
    for _ in 0..rounds {
        match &mut conn {
            Conn::Io(io) => {
                io.read_exact(&mut buf).await?;
                io.write_all(&buf).await?;
                io.flush().await?;
            }
            Conn::Msg(ws) => {
                let b = next_binary(ws).await?;
                ws.send(Message::Binary(b)).await.map_err(ws_err)?;
            }
        }
    }
    Ok((meter.finish(), conn))
}

// ---- allocations ---------------------------------------------------------------------------------

fn allocs(env: &Env, imp: Impl, count: usize, size: usize) -> io::Result<Vec<f64>> {
    let (pc, ps) = (env.pattern.clone(), env.pattern.clone());
    let total = (count * size) as u64;
    let (c, s) = run_pair(
        env,
        imp,
        move |conn| Box::pin(send_chunks(conn, pc, size, total, true)),
        move |conn| Box::pin(receive_bytes(conn, ps, total)),
    )?;
    let n = count as f64;
    let mut v = vec![
        c.allocs.allocs as f64 / n,
        s.allocs.allocs as f64 / n,
        c.allocs.bytes as f64 / n,
        s.allocs.bytes as f64 / n,
    ];
    v.extend(per(&c, &s, n));
    Ok(v)
}

// ---- idle connections ----------------------------------------------------------------------------

/// What one side of the idle scenario measured: live heap bytes held by this thread, relative
/// to before the first connection.
struct IdleSide {
    held: i64,
    reading: i64,
}

/// Barrier points per thread in the idle scenario (see `idle`).
const IDLE_PHASES: usize = 6;

fn idle(env: &Env, imp: Impl, conns: usize) -> io::Result<Vec<f64>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let barrier = Arc::new(Barrier::new(3));

    let b = barrier.clone();
    let s = spawn("idle-server", env.pin_server, move || {
        let phases = Phases::new(b, IDLE_PHASES);
        runtime()?.block_on(idle_side(phases, conns, imp, Endpoint::Server(listener)))
    });
    let b = barrier.clone();
    let c = spawn("idle-client", env.pin, move || {
        let phases = Phases::new(b, IDLE_PHASES);
        runtime()?.block_on(idle_side(phases, conns, imp, Endpoint::Client(addr)))
    });

    // The main thread reads RSS while both sides stand still at a barrier.
    let mut main = Phases::new(barrier, IDLE_PHASES);
    main.next();
    let rss0 = sys::rss_bytes() as f64;
    main.next();
    main.next();
    let rss_held = sys::rss_bytes() as f64;
    main.next();
    main.next();
    let rss_reading = sys::rss_bytes() as f64;
    main.next();

    let c = join(c).map_err(|e| io::Error::new(e.kind(), format!("client: {e}")))?;
    let s = join(s).map_err(|e| io::Error::new(e.kind(), format!("server: {e}")))?;
    let per = |bytes: f64| bytes / (2 * conns) as f64 / 1024.0;
    Ok(vec![
        per((c.held + s.held) as f64),
        per((c.reading + s.reading) as f64),
        per(rss_held - rss0),
        per(rss_reading - rss0),
    ])
}

enum Endpoint {
    Server(std::net::TcpListener),
    Client(std::net::SocketAddr),
}

enum Opener {
    Server(TcpListener),
    Client(std::net::SocketAddr),
}

impl Opener {
    async fn open(&self, imp: Impl) -> io::Result<Conn> {
        let (tcp, role) = match self {
            Opener::Server(l) => (l.accept().await?.0, Role::Server),
            Opener::Client(addr) => (TcpStream::connect(addr).await?, Role::Client),
        };
        tcp.set_nodelay(true)?;
        setup(imp, role, tcp).await
    }
}

/// One side of the idle scenario. Barrier points: 1-2 baseline taken (main reads RSS between
/// them), 3-4 all connections held, 5-6 a read pending on every connection.
async fn idle_side(
    mut phases: Phases,
    conns: usize,
    imp: Impl,
    endpoint: Endpoint,
) -> io::Result<IdleSide> {
    let opener = match endpoint {
        Endpoint::Server(l) => Opener::Server(TcpListener::from_std(l)?),
        Endpoint::Client(addr) => Opener::Client(addr),
    };
    // Everything the harness itself needs is allocated before the baseline.
    let mut held: Vec<Conn> = Vec::with_capacity(conns);
    let mut bufs = vec![[0u8; 64]; conns];
    let mut reads: Vec<Pin<Box<dyn Future<Output = io::Result<usize>> + '_>>> =
        Vec::with_capacity(conns);
    let base = Snapshot::now();
    phases.next();
    phases.next();

    for _ in 0..conns {
        let conn = tokio::time::timeout(RUN_LIMIT, opener.open(imp))
            .await
            .unwrap_or_else(|_| Err(timed_out()))?;
        held.push(conn);
    }
    let held_bytes = Snapshot::elapsed(base).live;
    phases.next();
    phases.next();

    for (conn, buf) in held.iter_mut().zip(bufs.iter_mut()) {
        reads.push(Box::pin(pending_read(conn, buf)));
    }
    for read in &mut reads {
        if let Poll::Ready(r) = futures::poll!(read.as_mut()) {
            return Err(io::Error::other(format!(
                "a read on an idle connection completed: {r:?}"
            )));
        }
    }
    let reading_bytes = Snapshot::elapsed(base).live;
    phases.next();
    phases.next();

    drop(reads);
    drop(held);
    Ok(IdleSide {
        held: held_bytes,
        reading: reading_bytes,
    })
}

async fn pending_read(conn: &mut Conn, buf: &mut [u8]) -> io::Result<usize> {
    match conn {
        Conn::Io(io) => io.read(buf).await,
        Conn::Msg(ws) => next_binary(ws).await.map(|b| b.len()),
    }
}
