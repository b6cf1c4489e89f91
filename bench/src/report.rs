//! Tables, target checks, CSV and the SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::imps::Impl;
use crate::scenarios::{Kind, Scenario};

/// Everything one run of the binary measured.
pub struct Results {
    pub scenarios: Vec<Scenario>,
    pub impls: Vec<Impl>,
    /// (scenario index, implementation) -> one vector of metric values per repetition.
    pub samples: BTreeMap<(usize, Impl), Vec<Vec<f64>>>,
    pub errors: BTreeMap<(usize, Impl), Vec<String>>,
}

#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

fn stat(mut v: Vec<f64>) -> Option<Stat> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stat {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

impl Results {
    pub fn stat(&self, scen: usize, imp: Impl, metric: usize) -> Option<Stat> {
        let samples = self.samples.get(&(scen, imp))?;
        stat(
            samples
                .iter()
                .filter_map(|s| s.get(metric).copied())
                .collect(),
        )
    }

    fn scenario(&self, id: &str) -> Option<usize> {
        self.scenarios.iter().position(|s| s.id == id)
    }

    fn median(&self, id: &str, imp: Impl, metric: usize) -> Option<f64> {
        self.stat(self.scenario(id)?, imp, metric).map(|s| s.median)
    }

    /// One Markdown table per scenario.
    pub fn tables(&self) -> String {
        let mut out = String::new();
        for (si, scen) in self.scenarios.iter().enumerate() {
            let metrics = scen.kind.metrics();
            let _ = writeln!(out, "### {} (`{}`)\n", scen.title, scen.id);
            let mut head = String::from("| implementation |");
            let mut rule = String::from("|---|");
            for m in metrics {
                let arrow = if m.higher_is_better { "↑" } else { "↓" };
                if m.detailed {
                    let _ = write!(
                        head,
                        " {} {arrow} | min–max | × at-msg | × wst-0.15 |",
                        m.name
                    );
                    rule.push_str("---:|---:|---:|---:|");
                } else {
                    let _ = write!(head, " {} {arrow} |", m.name);
                    rule.push_str("---:|");
                }
            }
            let _ = writeln!(out, "{head}\n{rule}");
            for &imp in &self.impls {
                let name = if matches!(imp, Impl::Ours | Impl::OursSmallRead) {
                    format!("**{}**", imp.label())
                } else {
                    imp.label().to_string()
                };
                let _ = write!(out, "| {name} |");
                if self.samples.get(&(si, imp)).is_none_or(|v| v.is_empty()) {
                    let why = self
                        .errors
                        .get(&(si, imp))
                        .and_then(|e| e.first())
                        .map_or("not run".to_string(), |e| format!("failed: {e}"));
                    let cols: usize = metrics.iter().map(|m| if m.detailed { 4 } else { 1 }).sum();
                    let _ = write!(out, " {} |", why.replace('|', "/"));
                    out.push_str(&" |".repeat(cols - 1));
                    out.push('\n');
                    continue;
                }
                for (mi, m) in metrics.iter().enumerate() {
                    let Some(s) = self.stat(si, imp, mi) else {
                        out.push_str(" – |");
                        continue;
                    };
                    let d = m.decimals;
                    let _ = write!(out, " {:.d$} |", s.median);
                    if m.detailed {
                        let _ = write!(out, " {:.d$}–{:.d$} |", s.min, s.max);
                        for reference in [Impl::AtMsg, Impl::Public] {
                            // A reference that rounds to zero gives no meaningful ratio.
                            let r = self
                                .stat(si, reference, mi)
                                .map(|r| r.median)
                                .filter(|r| r.abs() >= 0.5 * 10f64.powi(-(d as i32)));
                            let _ = write!(out, " {} |", ratio(s.median, r));
                        }
                    }
                }
                out.push('\n');
            }
            let failures: usize = self
                .errors
                .iter()
                .filter(|((s, _), _)| *s == si)
                .map(|(_, e)| e.len())
                .sum();
            if failures > 0 {
                let _ = writeln!(
                    out,
                    "\n{failures} run(s) of this scenario failed (see stderr)."
                );
            }
            out.push('\n');
        }
        out
    }

    /// The index of the first metric of scenario `id` whose name starts with `prefix`.
    fn metric(&self, id: &str, prefix: &str) -> Option<usize> {
        let si = self.scenario(id)?;
        self.scenarios[si]
            .kind
            .metrics()
            .iter()
            .position(|m| m.name.starts_with(prefix))
    }

    /// This crate's targets, checked for each variant of it. Throughput is decided by CPU time
    /// (the reference's CPU time per unit over ours, so higher is better; the wall-clock ratio
    /// is shown beside it), latency by the median round trip, the counters by count.
    pub fn targets(&self) -> String {
        let variants: Vec<Impl> = [Impl::Ours, Impl::OursSmallRead]
            .into_iter()
            .filter(|i| self.impls.contains(i))
            .collect();
        if variants.is_empty() {
            return "This crate was not part of this run.\n".into();
        }
        let mut out = String::from("| target |");
        let mut rule = String::from("|---|");
        for v in &variants {
            let _ = write!(out, " {} |", v.label());
            rule.push_str("---|");
        }
        let _ = writeln!(out, "\n{rule}");

        type Check<'a> = Box<dyn Fn(Impl) -> Option<(String, bool)> + 'a>;
        let faster = |id: &'static str, reference: Impl, min: f64| -> Check<'_> {
            Box::new(move |v| {
                let cpu = self.metric(id, "CPU")?;
                let by_cpu = self.median(id, reference, cpu)? / self.median(id, v, cpu)?;
                let by_wall = self.median(id, v, 0)? / self.median(id, reference, 0)?;
                Some((
                    format!("{by_cpu:.2}× (wall clock {by_wall:.2}×)"),
                    by_cpu >= min,
                ))
            })
        };
        let quicker = |id: &'static str, reference: Impl| -> Check<'_> {
            Box::new(move |v| {
                let r = self.median(id, v, 0)? / self.median(id, reference, 0)?;
                Some((format!("{r:.2}×"), r <= 1.0))
            })
        };
        // Counts depend on the schedule (how the kernel interleaves the two threads): within
        // 2 % of the reference's median, or within the range the reference itself spans over
        // the repetitions, still passes.
        let counted = |id: &'static str, reference: Impl| -> Check<'_> {
            Box::new(move |v| {
                let si = self.scenario(id)?;
                let calls = self.metric(id, "socket calls")?;
                let wakes = self.metric(id, "wake-ups")?;
                let (c, w) = (self.median(id, v, calls)?, self.median(id, v, wakes)?);
                let (rc, rw) = (
                    self.stat(si, reference, calls)?,
                    self.stat(si, reference, wakes)?,
                );
                let within = |x: f64, r: Stat| x <= (r.median * 1.02).max(r.max) + 1e-9;
                let pass = within(c, rc) && within(w, rw);
                Some((
                    format!(
                        "{c:.2} / {w:.2} ({} {:.2} / {:.2})",
                        reference.label(),
                        rc.median,
                        rw.median
                    ),
                    pass,
                ))
            })
        };
        let at = Impl::AtMsg;
        let pubc = Impl::Public;
        let tu = Impl::TokioUtil;
        // (scenario, what, reference, the least CPU-time ratio that passes)
        let throughput = [
            ("bulk-64k", "bulk, 64 KiB writes", at, 1.0),
            ("bulk-64k", "bulk, 64 KiB writes", tu, 1.0),
            ("bulk-64k", "bulk, 64 KiB writes", pubc, 1.05),
            ("bulk-1k", "bulk, 1 KiB writes", at, 1.0),
            ("bulk-1k", "bulk, 1 KiB writes", pubc, 1.3),
            ("bulk-16", "bulk, 16 B writes", at, 5.0),
            ("bulk-16", "bulk, 16 B writes", pubc, 5.0),
            ("lines-flush", "LinesCodec, flush per line", at, 1.0),
            ("lines-flush", "LinesCodec, flush per line", pubc, 1.0),
            ("lines-feed", "LinesCodec, `feed` + one flush", pubc, 1.0),
            (
                "lines-feed",
                "LinesCodec, `feed` + one flush",
                Impl::Tcp,
                0.95,
            ),
        ];
        let mut rows: Vec<(String, Check<'_>)> = throughput
            .into_iter()
            .map(|(id, what, reference, min)| {
                (
                    format!("{what}: ≥ {min}× {}", reference.label()),
                    faster(id, reference, min),
                )
            })
            .collect();
        rows.extend::<Vec<(String, Check<'_>)>>(vec![
            (
                "ping-pong 64 B, median round trip: ≤ 1.0× at-msg".into(),
                quicker("pingpong-64", at),
            ),
            (
                "ping-pong 64 B, median round trip: ≤ 1.0× tokio-util".into(),
                quicker("pingpong-64", tu),
            ),
            (
                "idle, held: ≤ at-msg + 1 KiB per endpoint".into(),
                Box::new(move |v| {
                    let d = self.median("idle-1000", v, 0)? - self.median("idle-1000", at, 0)?;
                    Some((format!("{d:+.2} KiB"), d <= 1.0))
                }),
            ),
            (
                "idle, read pending: ≤ at-msg + 1 KiB per endpoint".into(),
                Box::new(move |v| {
                    let d = self.median("idle-1000", v, 1)? - self.median("idle-1000", at, 1)?;
                    Some((format!("{d:+.2} KiB"), d <= 1.0))
                }),
            ),
            (
                "allocations ≤ 1 per outgoing message".into(),
                Box::new(move |v| {
                    let a = self.median("allocs-1k", v, 0)?;
                    Some((format!("{a:.2}"), a <= 1.0 + 1e-9))
                }),
            ),
            (
                "allocations per incoming message ≤ at-msg's".into(),
                Box::new(move |v| {
                    let a = self.median("allocs-1k", v, 1)?;
                    let r = self.median("allocs-1k", at, 1)?;
                    Some((format!("{a:.2} (at-msg {r:.2})"), a <= r + 0.01))
                }),
            ),
        ]);
        // `feed` + one flush: tokio-util's `FramedWrite` flushes its writer each time its
        // buffer passes 8 KiB, and a flush of a WebSocket byte stream is a socket write; at-msg
        // has no codec. That row compares with the published crate, under the same codec.
        for (id, unit, reference) in [
            ("bulk-64k", "MiB, 64 KiB writes", at),
            ("bulk-1k", "MiB, 1 KiB writes", at),
            ("bulk-16", "MiB, 16 B writes", at),
            ("lines-flush", "1k lines, flush per line", at),
            ("lines-feed", "1k lines, `feed` + one flush", pubc),
            ("pingpong-64", "round trip", at),
            ("allocs-1k", "1 KiB message, each flushed", at),
        ] {
            rows.push((
                format!(
                    "socket calls / wake-ups per {unit}: ≤ {}'s",
                    reference.label()
                ),
                counted(id, reference),
            ));
        }
        for (what, check) in rows {
            let _ = write!(out, "| {what} |");
            for &v in &variants {
                match check(v) {
                    Some((shown, true)) => {
                        let _ = write!(out, " {shown} ✅ |");
                    }
                    Some((shown, false)) => {
                        let _ = write!(out, " {shown} ❌ |");
                    }
                    None => out.push_str(" not measured |"),
                }
            }
            out.push('\n');
        }
        out
    }

    /// Every sample: `scenario,implementation,repetition,metric,value`.
    pub fn csv(&self) -> String {
        let mut out = String::from("scenario,implementation,repetition,metric,value\n");
        for ((si, imp), reps) in &self.samples {
            let scen = &self.scenarios[*si];
            let metrics = scen.kind.metrics();
            for (r, values) in reps.iter().enumerate() {
                for (m, v) in metrics.iter().zip(values) {
                    let _ = writeln!(out, "{},{},{},{},{}", scen.id, imp.label(), r, m.name, v);
                }
            }
        }
        out
    }

    /// Bulk throughput by write size: (implementation, [(write size, median, min, max)]).
    fn bulk_series(&self) -> Vec<(Impl, Vec<Point>)> {
        self.impls
            .iter()
            .map(|&imp| {
                let mut pts: Vec<_> = self
                    .scenarios
                    .iter()
                    .enumerate()
                    .filter_map(|(si, s)| match s.kind {
                        Kind::Bulk { write, .. } => self
                            .stat(si, imp, 0)
                            .map(|st| (write as f64, st.median, st.min, st.max)),
                        _ => None,
                    })
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (imp, pts)
            })
            .filter(|(_, pts)| !pts.is_empty())
            .collect()
    }

    /// Line chart of bulk throughput by write size, log-log, one line per implementation.
    pub fn svg(&self, path: &Path, subtitle: &str) -> Result<(), Box<dyn std::error::Error>> {
        use plotters::prelude::*;

        let series = self.bulk_series();
        if series.is_empty() {
            return Err("no bulk results to chart".into());
        }
        let lo = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.2))
            .fold(f64::INFINITY, f64::min)
            .max(0.01);
        let hi = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.3))
            .fold(0.0, f64::max);
        let (ymin, ymax) = (lo / 1.6, hi * 1.6);
        // The write sizes are evenly spaced on a log scale, so they are plotted as categories.
        let mut sizes: Vec<f64> = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.0))
            .collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        let x_of = |size: f64| {
            SegmentValue::CenterOf(sizes.iter().position(|s| *s == size).unwrap_or(0) as u32)
        };

        let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let (title_area, chart_area) = root.split_vertically(60);
        title_area.draw(&Text::new(
            "Bulk throughput by write size (client → server, loopback, median of repetitions)",
            (20, 10),
            ("sans-serif", 20).into_font(),
        ))?;
        title_area.draw(&Text::new(
            subtitle.to_string(),
            (20, 36),
            ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
        ))?;

        let mut chart = ChartBuilder::on(&chart_area)
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0..sizes.len().saturating_sub(1) as u32).into_segmented(),
                (ymin..ymax).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("write size")
            .y_desc("MiB/s (log scale)")
            .x_labels(sizes.len() + 1)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => sizes
                    .get(*i as usize)
                    .map_or(String::new(), |s| size_label(*s)),
                _ => String::new(),
            })
            .y_label_formatter(&|v| {
                if *v >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .draw()?;

        for (imp, pts) in &series {
            let color = impl_color(*imp);
            let width = if matches!(imp, Impl::Ours | Impl::OursSmallRead) {
                3
            } else {
                2
            };
            let style = color.stroke_width(width);
            let line = pts.iter().map(|p| (x_of(p.0), p.1));
            // The raw-TCP baselines are dashed.
            let drawn = if matches!(imp, Impl::Tcp | Impl::TcpBuf) {
                chart.draw_series(DashedLineSeries::new(line, 8, 5, style))?
            } else {
                chart.draw_series(LineSeries::new(line, style))?
            };
            drawn
                .label(imp.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
            chart.draw_series(
                pts.iter()
                    .map(|p| Circle::new((x_of(p.0), p.1), 4, color.filled())),
            )?;
            // min–max over the repetitions
            chart.draw_series(
                pts.iter()
                    .map(|p| PathElement::new(vec![(x_of(p.0), p.2), (x_of(p.0), p.3)], color)),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// (write size, median, min, max) of one implementation's bulk throughput.
type Point = (f64, f64, f64, f64);

/// A fixed colour per implementation, so charts of different runs compare at a glance.
fn impl_color(imp: Impl) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match imp {
        Impl::Tcp => RGBColor(130, 130, 130),
        Impl::TcpBuf => RGBColor(40, 40, 40),
        Impl::AtMsg => RGBColor(31, 119, 180),
        Impl::AtBytes => RGBColor(23, 170, 190),
        Impl::TokioUtil => RGBColor(255, 127, 14),
        Impl::Public => RGBColor(148, 103, 189),
        Impl::Ours => RGBColor(214, 39, 40),
        Impl::OursSmallRead => RGBColor(44, 160, 44),
    }
}

fn ratio(v: f64, reference: Option<f64>) -> String {
    match reference {
        Some(r) if r > 0.0 => format!("{:.2}×", v / r),
        _ => "–".into(),
    }
}

fn size_label(bytes: f64) -> String {
    let b = bytes.round() as u64;
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}
