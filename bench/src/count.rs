//! Counters that explain the timings: socket reads and writes, task wake-ups and polls, and
//! context switches, per thread. They count events, so they do not depend on the clock; they
//! do depend on the schedule (how the two threads interleave), which is what they explain.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

thread_local! {
    /// Socket reads and writes that moved bytes (or read EOF): one system call each.
    static SOCKET_CALLS: Cell<u64> = const { Cell::new(0) };
    /// Socket reads and writes that returned `Pending` (at most one failed system call each).
    static WOULD_BLOCK: Cell<u64> = const { Cell::new(0) };
    /// Polls of this thread's task.
    static POLLS: Cell<u64> = const { Cell::new(0) };
    /// The wake-up counter of this thread's task.
    static WAKES: RefCell<Option<Arc<WakeCount>>> = const { RefCell::new(None) };
}

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>) {
    c.with(|c| c.set(c.get() + 1));
}

/// A TCP stream that counts, on the thread that polls it, how often it reached the kernel.
/// Every implementation runs over it, so they all pay the same (one thread-local increment
/// per call).
pub struct Sock {
    tcp: TcpStream,
}

impl Sock {
    pub fn new(tcp: TcpStream) -> Self {
        Self { tcp }
    }
}

/// Counts the outcome of one socket poll.
fn count<T>(p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    match &p {
        Poll::Ready(Ok(_)) => bump(&SOCKET_CALLS),
        Poll::Pending => bump(&WOULD_BLOCK),
        Poll::Ready(Err(_)) => {}
    }
    p
}

impl AsyncRead for Sock {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        count(Pin::new(&mut self.tcp).poll_read(cx, buf))
    }
}

impl AsyncWrite for Sock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        count(Pin::new(&mut self.tcp).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        count(Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The wake-up counter of one task: a wake-up is a wake that found the task not already woken
/// since its last poll (further ones cost the runtime nothing: it polls once).
#[derive(Default)]
struct WakeCount {
    woken: AtomicBool,
    count: AtomicU64,
}

/// Forwards wake-ups to the runtime's waker, counting them.
struct CountingWaker {
    inner: Waker,
    wakes: Arc<WakeCount>,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.wakes.woken.swap(true, Ordering::Relaxed) {
            self.wakes.count.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.wake_by_ref();
    }
}

/// Runs `fut` as this thread's task, counting its polls and wake-ups. A counting waker is made
/// for each distinct waker of the runtime (tokio's `block_on` polls with a few, alternating),
/// the first time each is seen: no allocation in the measured sections.
pub struct Counted<F> {
    fut: Pin<Box<F>>,
    /// (the runtime's waker as given, data and vtable addresses; the counting waker around it).
    /// Compared by address: a clone of tokio's waker is not `will_wake`-equal to it.
    wakers: Vec<((usize, usize), Waker)>,
    wakes: Arc<WakeCount>,
}

/// Distinct runtime wakers remembered; more are replaced oldest first.
const WAKERS_KEPT: usize = 8;

impl<F: Future> Counted<F> {
    pub fn new(fut: F) -> Self {
        let wakes = Arc::new(WakeCount::default());
        WAKES.with(|w| *w.borrow_mut() = Some(Arc::clone(&wakes)));
        Self {
            fut: Box::pin(fut),
            wakers: Vec::with_capacity(WAKERS_KEPT),
            wakes,
        }
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        bump(&POLLS);
        this.wakes.woken.store(false, Ordering::Relaxed);
        let given = cx.waker();
        let key = (
            given.data() as usize,
            std::ptr::from_ref(given.vtable()) as usize,
        );
        let i = match this.wakers.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if this.wakers.len() == WAKERS_KEPT {
                    this.wakers.remove(0);
                }
                let counting = Waker::from(Arc::new(CountingWaker {
                    inner: cx.waker().clone(),
                    wakes: Arc::clone(&this.wakes),
                }));
                this.wakers.push((key, counting));
                this.wakers.len() - 1
            }
        };
        let counting = &this.wakers[i].1;
        this.fut.as_mut().poll(&mut Context::from_waker(counting))
    }
}

/// This thread's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub socket_calls: u64,
    pub would_block: u64,
    pub polls: u64,
    pub wakes: u64,
    pub switches: u64,
}

impl Counts {
    pub fn now() -> Self {
        Self {
            socket_calls: SOCKET_CALLS.with(Cell::get),
            would_block: WOULD_BLOCK.with(Cell::get),
            polls: POLLS.with(Cell::get),
            wakes: WAKES.with(|w| {
                w.borrow()
                    .as_ref()
                    .map_or(0, |a| a.count.load(Ordering::Relaxed))
            }),
            switches: context_switches(),
        }
    }

    /// What happened since `earlier`.
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            socket_calls: self.socket_calls - earlier.socket_calls,
            would_block: self.would_block - earlier.would_block,
            polls: self.polls - earlier.polls,
            wakes: self.wakes - earlier.wakes,
            switches: self.switches - earlier.switches,
        }
    }

    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            socket_calls: self.socket_calls + o.socket_calls,
            would_block: self.would_block + o.would_block,
            polls: self.polls + o.polls,
            wakes: self.wakes + o.wakes,
            switches: self.switches + o.switches,
        }
    }
}

/// Voluntary plus involuntary context switches of the calling thread, from
/// `/proc/thread-self/status`.
fn context_switches() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/thread-self/status") else {
        return 0;
    };
    s.lines()
        .filter_map(|l| {
            l.strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        })
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}
