//! Side-by-side benchmark of ways to get a byte stream over a WebSocket.
//!
//! `cargo run --release -p ws_stream_bench -- [--quick] [--pin] [--out DIR]`; see README.md.

mod alloc;
mod count;
mod imps;
mod report;
mod scenarios;
mod sys;

// The `h2` scenario, with a table of its own (see `h2::hook`).
mod h2;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use imps::Impl;
use report::Results;
use scenarios::{Env, Kind, Scenario};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const USAGE: &str = "\
ws_stream_bench: the same scenarios over every implementation, interleaved.

USAGE: ws_stream_bench [OPTIONS]

  --quick            short run (well under a minute)
  --pin              pin client and server thread to the same CPU
  --pin-apart        pin the client thread to one CPU and the server thread to another
  --out DIR          write RESULTS.md, throughput.svg and samples.csv to DIR
                     (default: target/ws_stream_bench)
  --reps N           repetitions per scenario (default: 7 quick, 11 full; 1/3 for
                     the idle memory scenario)
  --only ID[,ID..]   run only these scenarios (ids: see --list)
  --impls L[,L..]    run only these implementations (labels: see --list)
  --list             list scenarios and implementations
  -h, --help         this text
";

struct Args {
    quick: bool,
    pin: bool,
    pin_apart: bool,
    out: PathBuf,
    reps: Option<usize>,
    only: Option<Vec<String>>,
    impls: Option<Vec<String>>,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        pin: false,
        pin_apart: false,
        out: PathBuf::from("target/ws_stream_bench"),
        reps: None,
        only: None,
        impls: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    let list = |s: String| s.split(',').map(|x| x.trim().to_string()).collect();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--pin" => args.pin = true,
            "--pin-apart" => args.pin_apart = true,
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--reps" => {
                let n = value("--reps")?;
                let n: usize = n.parse().map_err(|_| format!("bad --reps {n}"))?;
                args.reps = Some(n.max(1));
            }
            "--only" => args.only = Some(list(value("--only")?)),
            "--impls" => args.impls = Some(list(value("--impls")?)),
            "--list" => args.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;

/// The scenarios, in the order they run. Quick mode transfers less and repeats less.
fn plan(quick: bool, reps: Option<usize>) -> Vec<Scenario> {
    let q = |quick_v: usize, full_v: usize| if quick { quick_v } else { full_v };
    let qm = |quick_v: u64, full_v: u64| if quick { quick_v } else { full_v } * MIB;
    let reps_main = reps.unwrap_or(q(7, 11));
    let reps_few = reps.unwrap_or(q(1, 3));
    let bulk_64k = qm(16, 64);
    let bulk_1k = qm(16, 64);
    let bulk_16 = qm(2, 8);
    let lines_flush = q(20_000, 100_000);
    let lines_feed = q(100_000, 500_000);
    let rounds = q(2_000, 10_000);
    let alloc_msgs = q(5_000, 20_000);
    let idle_conns = 1_000;
    vec![
        Scenario {
            id: "idle-1000".into(),
            title: format!("Memory per idle endpoint, {idle_conns} connections"),
            kind: Kind::Idle { conns: idle_conns },
            reps: reps_few,
            warmup: false,
        },
        Scenario {
            id: "bulk-64k".into(),
            title: format!("Bulk transfer, 64 KiB writes, {} MiB", bulk_64k / MIB),
            kind: Kind::Bulk {
                write: 64 * KIB,
                total: bulk_64k,
            },
            reps: reps_main,
            warmup: !quick,
        },
        Scenario {
            id: "bulk-1k".into(),
            title: format!("Bulk transfer, 1 KiB writes, {} MiB", bulk_1k / MIB),
            kind: Kind::Bulk {
                write: KIB,
                total: bulk_1k,
            },
            reps: reps_main,
            warmup: !quick,
        },
        Scenario {
            id: "bulk-16".into(),
            title: format!("Bulk transfer, 16 B writes, {} MiB", bulk_16 / MIB),
            kind: Kind::Bulk {
                write: 16,
                total: bulk_16,
            },
            reps: reps_main,
            warmup: !quick,
        },
        Scenario {
            id: "lines-flush".into(),
            title: format!("tokio-util LinesCodec, flush per line, {lines_flush} lines of 52 B"),
            kind: Kind::Lines {
                count: lines_flush,
                flush_each: true,
            },
            reps: reps_main,
            warmup: false,
        },
        Scenario {
            id: "lines-feed".into(),
            title: format!("tokio-util LinesCodec, `feed` + one flush, {lines_feed} lines of 52 B"),
            kind: Kind::Lines {
                count: lines_feed,
                flush_each: false,
            },
            reps: reps_main,
            warmup: false,
        },
        Scenario {
            id: "pingpong-64".into(),
            title: format!("Ping-pong latency, 64 B, {rounds} round trips"),
            kind: Kind::PingPong { rounds, size: 64 },
            reps: reps_main,
            warmup: false,
        },
        Scenario {
            id: "allocs-1k".into(),
            title: format!(
                "Heap allocations per message, {alloc_msgs} writes of 1 KiB, each flushed"
            ),
            kind: Kind::Allocs {
                count: alloc_msgs,
                size: KIB,
            },
            // The allocation counts do not vary, but its socket counters do.
            reps: reps_main,
            warmup: false,
        },
    ]
}

fn main() -> ExitCode {
    let mut args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}\n");
            }
            eprint!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };

    // `h2` has a table of its own (bench/src/h2.rs); it runs first when named in `--only`.
    if let Some(code) = h2::hook(&mut args.only, args.list, args.quick, args.reps, &args.out) {
        return code;
    }
    let mut scenarios = plan(args.quick, args.reps);
    if args.list {
        println!("scenarios:");
        for s in &scenarios {
            println!("  {:<12} {}", s.id, s.title);
        }
        println!("implementations:");
        for i in Impl::ALL {
            let avail = if i.available() {
                ""
            } else {
                " (not available in this build)"
            };
            println!("  {:<11} {}{avail}", i.label(), i.describe());
        }
        return ExitCode::SUCCESS;
    }
    if let Some(only) = &args.only {
        if let Some(bad) = only
            .iter()
            .find(|id| !scenarios.iter().any(|s| &s.id == *id))
        {
            eprintln!("unknown scenario {bad} (see --list)");
            return ExitCode::FAILURE;
        }
        scenarios.retain(|s| only.contains(&s.id));
    }
    let mut impls: Vec<Impl> = Impl::ALL.into_iter().filter(|i| i.available()).collect();
    if let Some(want) = &args.impls {
        if let Some(bad) = want
            .iter()
            .find(|l| !Impl::ALL.iter().any(|i| i.label() == *l))
        {
            eprintln!("unknown implementation {bad} (see --list)");
            return ExitCode::FAILURE;
        }
        impls.retain(|i| want.iter().any(|l| l == i.label()));
    }
    for i in Impl::ALL {
        if !i.available() {
            eprintln!(
                "note: {} is not available in this build, skipped",
                i.label()
            );
        }
    }

    let nofile = sys::raise_nofile_limit();
    // (client CPU, server CPU)
    let pin = if args.pin || args.pin_apart {
        match sys::allowed_cpus() {
            Ok(cpus) if args.pin_apart && cpus.len() >= 2 => Some((cpus[0], cpus[1])),
            Ok(_) if args.pin_apart => {
                eprintln!("--pin-apart: this process may run on one CPU only");
                return ExitCode::FAILURE;
            }
            Ok(cpus) if !cpus.is_empty() => Some((cpus[0], cpus[0])),
            Ok(_) => {
                eprintln!("--pin: empty CPU affinity set");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("--pin: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if scenarios
        .iter()
        .any(|s| matches!(s.kind, Kind::Idle { .. }))
        && nofile < 2_100
    {
        eprintln!("warning: open-file limit {nofile} is too low for 1,000 connections");
    }

    let env = Env::new(pin);
    let load_before = sys::load_average();
    let started = Instant::now();
    let mut samples: BTreeMap<(usize, Impl), Vec<Vec<f64>>> = BTreeMap::new();
    let mut errors: BTreeMap<(usize, Impl), Vec<String>> = BTreeMap::new();

    for (si, scen) in scenarios.iter().enumerate() {
        let t = Instant::now();
        eprintln!(
            "== {} ({}), {} repetition(s)",
            scen.title, scen.id, scen.reps
        );
        if scen.warmup {
            for &imp in &impls {
                if let Err(e) = scenarios::run(&env, &scen.kind, imp) {
                    eprintln!("   warm-up {}: {e}", imp.label());
                }
            }
        }
        let metrics = scen.kind.metrics();
        for rep in 0..scen.reps {
            // Round-robin over the implementations, starting one further each repetition.
            for k in 0..impls.len() {
                let imp = impls[(k + rep) % impls.len()];
                match scenarios::run(&env, &scen.kind, imp) {
                    Ok(values) => {
                        eprintln!(
                            "   rep {rep} {:<11} {} {:.2}",
                            imp.label(),
                            metrics[0].name,
                            values[0]
                        );
                        samples.entry((si, imp)).or_default().push(values);
                    }
                    Err(e) => {
                        eprintln!("   rep {rep} {:<11} FAILED: {e}", imp.label());
                        errors.entry((si, imp)).or_default().push(e.to_string());
                    }
                }
            }
        }
        eprintln!("   ({:.1} s)", t.elapsed().as_secs_f64());
    }
    let elapsed = started.elapsed();

    let results = Results {
        scenarios,
        impls: impls.clone(),
        samples,
        errors,
    };
    let mode = if args.quick { "quick" } else { "full" };
    let pinning = match pin {
        Some((c, s)) if c == s => format!("client and server pinned to CPU {c}"),
        Some((c, s)) => format!("client pinned to CPU {c}, server to CPU {s}"),
        None => "not pinned".into(),
    };
    let subtitle = format!("{mode} run, {pinning}; {}", sys::machine());

    let (copy_whole, copy_pieces) = sys::memcpy_speeds();
    let mut md = String::new();
    md.push_str("# ws_stream_bench results\n\n");
    md.push_str(&format!(
        "- mode: **{mode}**, {pinning}, benchmark time {:.1} s\n- machine: {}\n- memcpy of 64 KiB on this machine: {copy_whole:.1} GB/s in one call, {copy_pieces:.1} GB/s in 1 KiB pieces\n- load average before / after: {load_before} / {}\n- command: `cargo run --release -p ws_stream_bench -- {}`\n\n",
        elapsed.as_secs_f64(),
        sys::machine(),
        sys::load_average(),
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    md.push_str("Implementations:\n\n");
    for &i in &impls {
        md.push_str(&format!("- `{}`: {}\n", i.label(), i.describe()));
    }
    md.push_str(
        "\nMedians over the repetitions; `min–max` is the range over the repetitions; `× at-msg` \
         and `× wst-0.15` divide this row's median by that implementation's median (for \
         throughput higher is better, for latency, memory and allocations lower is better). See \
         bench/README.md for what each column measures.\n\n",
    );
    md.push_str("## Targets\n\n");
    md.push_str(
        "Each row is a target this crate sets itself against the alternatives. Throughput rows \
         compare CPU time per unit of work (the alternative's over this crate's: above 1 is \
         cheaper), with the wall-clock speed ratio beside it; latency rows compare median round \
         trips (below 1 is quicker); counter rows compare medians of counts over both ends \
         (within 2 % of the reference, or within the range it spans, passes).\n\n",
    );
    md.push_str(&results.targets());
    md.push_str("\n## Results\n\n");
    md.push_str(&results.tables());

    println!("{md}");

    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    let write = |name: &str, data: &str| -> bool {
        let p = args.out.join(name);
        match std::fs::write(&p, data) {
            Ok(()) => {
                eprintln!("wrote {}", p.display());
                true
            }
            Err(e) => {
                eprintln!("cannot write {}: {e}", p.display());
                false
            }
        }
    };
    ok &= write("RESULTS.md", &md);
    ok &= write("samples.csv", &results.csv());
    let svg = args.out.join("throughput.svg");
    match results.svg(&svg, &subtitle) {
        Ok(()) => eprintln!("wrote {}", svg.display()),
        Err(e) => eprintln!("no chart: {e}"),
    }
    eprintln!("total benchmark time {:.1} s", elapsed.as_secs_f64());
    if ok && results.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
