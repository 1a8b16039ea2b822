//! Figures of the benchmarks, drawn with plotters into `.svg` or `.png` files (chosen by the
//! extension):
//! - ping-pong: latency and bandwidth against message size, log-log, one curve per
//!   implementation (ours and every `--compare` document);
//! - overlap: one heat map per side and implementation (x = message size, y = compute
//!   time, colour = overlap %, the value written in each cell);
//! - idle: CPU time as a percentage of the wall time blocked in a receive, one bar per
//!   implementation.
//!
//! `tocsin bench plot --plot FILE IN.json…` redraws a figure from saved documents.

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::schema::{self, Doc, IdleDoc, OverlapDoc, PingpongDoc};
use super::util::fmt_size;
use super::{BResult, BenchError};

type PResult = Result<(), Box<dyn Error>>;

const FONT: &str = "sans-serif";

/// Arguments of `tocsin bench plot`.
#[derive(clap::Args, Debug, Clone)]
pub struct PlotArgs {
    /// The figure to write (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub plot: std::path::PathBuf,
    /// Saved results, all of one benchmark kind (`tocsin bench … --json`, bench/peers).
    #[arg(required = true, value_name = "IN.json")]
    pub inputs: Vec<std::path::PathBuf>,
}

/// Draws the figure of saved documents; the first one is drawn as "ours".
pub fn replot(a: &PlotArgs) -> BResult<()> {
    check_path(&a.plot)?;
    let first = schema::load_any(&a.inputs[0])?;
    let rest = &a.inputs[1..];
    match first {
        Doc::Pingpong(d) => {
            let o = schema::load_compare(rest, "pingpong", |x| match x {
                Doc::Pingpong(p) => Some(p),
                _ => None,
            })?;
            pingpong(&a.plot, &d, &o)
        }
        Doc::Overlap(d) => {
            let o = schema::load_compare(rest, "overlap", |x| match x {
                Doc::Overlap(p) => Some(p),
                _ => None,
            })?;
            overlap(&a.plot, &d, &o)
        }
        Doc::Idle(d) => {
            let o = schema::load_compare(rest, "idle", |x| match x {
                Doc::Idle(p) => Some(p),
                _ => None,
            })?;
            idle(&a.plot, &d, &o)
        }
    }
}

/// The image formats, by file extension.
enum Format {
    Svg,
    Png,
}

fn format_of(p: &Path) -> BResult<Format> {
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(BenchError::Usage(format!(
            "--plot {}: the file name must end in .svg or .png",
            p.display()
        ))),
    }
}

/// Checks that a plot can be written to `p` (extension, existing directory).
pub fn check_path(p: &Path) -> BResult<()> {
    format_of(p)?;
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        if !d.is_dir() {
            return Err(BenchError::Usage(format!(
                "--plot {}: directory {} does not exist",
                p.display(),
                d.display()
            )));
        }
    }
    Ok(())
}

/// Draws with `$f(root, args…)` into an SVG or PNG file of `$size`.
macro_rules! render {
    ($path:expr, $size:expr, $f:ident ( $($arg:expr),* )) => {{
        let path: &Path = $path;
        let r: PResult = match format_of(path)? {
            Format::Svg => {
                let root = SVGBackend::new(path, $size).into_drawing_area();
                $f(&root $(, $arg)*).and_then(|()| root.present().map_err(Into::into))
            }
            Format::Png => {
                let root = BitMapBackend::new(path, $size).into_drawing_area();
                $f(&root $(, $arg)*).and_then(|()| root.present().map_err(Into::into))
            }
        };
        r.map_err(|e| BenchError::Plot(format!("{}: {e}", path.display())))
    }};
}

/// Colour of the `i`-th curve.
fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(0xd6, 0x27, 0x28), // ours first: red
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
    ];
    C[i % C.len()]
}

/// Latency and bandwidth against size, log-log; `ours` first, then `others`.
pub fn pingpong(path: &Path, ours: &PingpongDoc, others: &[PingpongDoc]) -> BResult<()> {
    let docs: Vec<&PingpongDoc> = std::iter::once(ours).chain(others).collect();
    render!(path, (1280, 560), draw_pingpong(&docs))
}

fn draw_pingpong<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    docs: &[&PingpongDoc],
) -> PResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.draw_text(
        "Ping-pong on shared memory, 2 ranks (one-way latency = RTT/2)",
        &(FONT, 22).into_font().color(&BLACK),
        (20, 10),
    )?;
    let panels = body.split_evenly((1, 2));
    // (label, points) per document, sizes >= 1 B (log axis).
    let series = |f: fn(&super::schema::PingpongRow) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        docs.iter()
            .map(|d| {
                let pts = d
                    .results
                    .iter()
                    .filter(|r| r.bytes > 0 && f(r) > 0.0 && f(r).is_finite())
                    .map(|r| (r.bytes as f64, f(r)))
                    .collect();
                (Doc::label(&d.impl_, d.mode.as_deref()), pts)
            })
            .collect()
    };
    let lat = series(|r| r.latency_us);
    let bw = series(|r| r.bandwidth_mbps);
    loglog(&panels[0], "One-way latency", "latency (µs)", &lat, true)?;
    loglog(&panels[1], "Bandwidth", "bandwidth (MB/s)", &bw, false)?;
    Ok(())
}

fn loglog<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    ylabel: &str,
    series: &[(String, Vec<(f64, f64)>)],
    legend_upper_left: bool,
) -> PResult
where
    DB::ErrorType: 'static,
{
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmax, mut ymin, mut ymax) = (2.0f64, f64::INFINITY, 0.0f64);
    for &(x, y) in all {
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if !ymin.is_finite() || ymax <= 0.0 {
        (ymin, ymax) = (0.1, 10.0);
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0f64..xmax * 1.5).log_scale().base(2.0),
            (ymin / 1.5..ymax * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc(ylabel)
        .x_labels(12)
        .y_labels(10)
        .x_label_formatter(&|x| fmt_size(x.round() as usize))
        .y_label_formatter(&|y| {
            if *y >= 100.0 {
                format!("{y:.0}")
            } else if *y >= 1.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.2}")
            }
        })
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(if legend_upper_left {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

/// One heat map per side (columns) and implementation (rows: ours, then `others`).
pub fn overlap(path: &Path, ours: &OverlapDoc, others: &[OverlapDoc]) -> BResult<()> {
    let docs: Vec<&OverlapDoc> = std::iter::once(ours).chain(others).collect();
    let sides: Vec<&str> = ["sender", "receiver"]
        .into_iter()
        .filter(|s| docs.iter().any(|d| d.results.iter().any(|r| r.side == *s)))
        .collect();
    let w = 620 * sides.len().max(1) as u32 + COLOUR_BAR_W;
    let h = 60 + 440 * docs.len() as u32;
    render!(path, (w, h), draw_overlap(&docs, &sides))
}

fn draw_overlap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    docs: &[&OverlapDoc],
    sides: &[&str],
) -> PResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.draw_text(
        "Overlap of communication and computation (MadMPI-benchmark method), %",
        &(FONT, 22).into_font().color(&BLACK),
        (20, 14),
    )?;
    let (w, _) = body.dim_in_pixel();
    let (grid, bar) = body.split_horizontally(w.saturating_sub(COLOUR_BAR_W));
    colour_bar(&bar)?;
    let cells = grid.split_evenly((docs.len(), sides.len().max(1)));
    for (di, d) in docs.iter().enumerate() {
        for (si, side) in sides.iter().enumerate() {
            let area = &cells[di * sides.len() + si];
            let caption = format!(
                "{} — {side} computes",
                Doc::label(&d.impl_, d.mode.as_deref())
            );
            heat_map(area, &caption, d, side)?;
        }
    }
    Ok(())
}

/// Width of the colour scale at the right of the heat maps, pixels.
const COLOUR_BAR_W: u32 = 90;

/// The colour scale of the heat maps, 0–100 %.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> PResult
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(60)
        .margin_right(10)
        .y_label_area_size(0)
        .right_y_label_area_size(40)
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..100.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| format!("{v:.0}%"))
        .label_style((FONT, 12))
        .draw()?;
    chart.draw_series((0..100).map(|k| {
        let v = k as f64;
        Rectangle::new(
            [(0.0, v), (1.0, v + 1.0)],
            ViridisRGB::get_color_normalized(v + 0.5, 0.0, 100.0).filled(),
        )
    }))?;
    Ok(())
}

fn heat_map<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    d: &OverlapDoc,
    side: &str,
) -> PResult
where
    DB::ErrorType: 'static,
{
    let rows: Vec<_> = d.results.iter().filter(|r| r.side == side).collect();
    let mut sizes: Vec<u64> = rows.iter().map(|r| r.bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut comps: Vec<u64> = rows.iter().map(|r| r.compute_us).collect();
    comps.sort_unstable();
    comps.dedup();
    let (nx, ny) = (sizes.len().max(1), comps.len().max(1));
    // Cell (i, j) is centred on integer coordinates (i, j).
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 17))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)?;
    let size_name = |b: u64| fmt_size(b as usize);
    let comp_name = |t: u64| t.to_string();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("message size (bytes)")
        .y_desc("compute time (µs)")
        .x_labels(nx + 1)
        .y_labels(ny + 1)
        .x_label_formatter(&|v| cell_label(*v, &sizes, &size_name))
        .y_label_formatter(&|v| cell_label(*v, &comps, &comp_name))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for r in &rows {
        let (Some(i), Some(j)) = (
            sizes.iter().position(|&s| s == r.bytes),
            comps.iter().position(|&t| t == r.compute_us),
        ) else {
            continue;
        };
        let (x, y) = (i as f64, j as f64);
        let v = r.overlap_pct.clamp(0.0, 100.0);
        let fill = ViridisRGB::get_color_normalized(v, 0.0, 100.0);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
            fill.filled(),
        )))?;
        let ink = if v > 60.0 { BLACK } else { WHITE };
        chart.draw_series(std::iter::once(Text::new(
            format!("{v:.0}"),
            (x, y),
            centred((FONT, 16).into_font().color(&ink)),
        )))?;
    }
    Ok(())
}

/// Text anchored at its centre.
fn centred<'a>(s: TextStyle<'a>) -> TextStyle<'a> {
    s.pos(Pos::new(HPos::Center, VPos::Center))
}

/// The name of the cell at integer coordinate `v`, blank between cells.
fn cell_label(v: f64, names: &[u64], f: &dyn Fn(u64) -> String) -> String {
    let i = v.round();
    if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        f(names[i as usize])
    } else {
        String::new()
    }
}

/// CPU time / wall time of the blocked receive (median of the repetitions), one bar per
/// implementation.
pub fn idle(path: &Path, ours: &IdleDoc, others: &[IdleDoc]) -> BResult<()> {
    let docs: Vec<&IdleDoc> = std::iter::once(ours).chain(others).collect();
    let w = (300 + 160 * docs.len() as u32).max(640);
    render!(path, (w, 480), draw_idle(&docs))
}

fn draw_idle<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, docs: &[&IdleDoc]) -> PResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = docs.len();
    let mut chart = ChartBuilder::on(root)
        .caption(
            "CPU used while blocked in a receive (% of wall time)",
            (FONT, 20),
        )
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0f64..110.0)?;
    let names: Vec<u64> = (0..n as u64).collect();
    let labels: Vec<String> = docs
        .iter()
        .map(|d| Doc::label(&d.impl_, d.mode.as_deref()))
        .collect();
    let name = |i: u64| labels[i as usize].clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|v| cell_label(*v, &names, &name))
        .y_desc("CPU / wall (%)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    for (i, d) in docs.iter().enumerate() {
        let (w, c) = super::idle::medians(d);
        let pct = if w > 0.0 { 100.0 * c / w } else { 0.0 };
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.35, 0.0), (x + 0.35, pct.min(110.0))],
            colour(i).mix(0.8).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{pct:.1}%"),
            (x, pct.min(100.0) + 4.0),
            centred((FONT, 15).into_font().into()),
        )))?;
    }
    Ok(())
}
