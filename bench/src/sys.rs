//! Thin wrappers over Linux facilities: per-thread CPU time, RSS, CPU pinning, fd limit.

use std::io;
use std::time::Duration;

/// CPU time consumed by the calling thread (user + system).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Resident set size of the process, from `/proc/self/status` (`VmRSS`), in bytes.
pub fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid (empty) set and the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pointer and size describe `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was obtained from the allowed set and is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pointer and size describe `set`; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (the idle scenario holds 2,000 sockets).
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// A one-line description of the machine: CPU model, logical CPUs, kernel.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{model}, {cpus} logical CPUs available, Linux {kernel}")
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), as written there.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// How fast this machine copies 64 KiB between two heap buffers in one `copy_from_slice` and in
/// 1 KiB pieces, in GB/s. glibc's `memcpy` uses `rep movsb` above about 2 KiB; on some CPUs that
/// is an order of magnitude slower than its vector loop, and this crate copies in 1 KiB pieces
/// because of it (src/copy.rs). The buffers sit 14 bytes apart from a page boundary, like a
/// payload behind its frame header.
pub fn memcpy_speeds() -> (f64, f64) {
    const N: usize = 64 * 1024;
    const ROUNDS: usize = 2_000;
    let src = vec![7u8; N + 4096];
    let mut dst = vec![0u8; N + 4096];
    let mut time = |pieces: Option<usize>| {
        let start = std::time::Instant::now();
        for _ in 0..ROUNDS {
            let s = std::hint::black_box(&src[14..14 + N]);
            let d = &mut dst[..N];
            match pieces {
                None => d.copy_from_slice(s),
                Some(p) => {
                    for (d, s) in d.chunks_mut(p).zip(s.chunks(p)) {
                        d.copy_from_slice(s);
                    }
                }
            }
            std::hint::black_box(&mut dst);
        }
        (N * ROUNDS) as f64 / start.elapsed().as_secs_f64() / 1e9
    };
    let whole = time(None);
    let pieces = time(Some(1024));
    (whole, pieces)
}
