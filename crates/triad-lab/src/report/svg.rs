//! Charts as inline SVG, drawn with plotters: line charts, bar charts and Gantt charts of task
//! timelines.
//!
//! Only the plot is drawn here; the title and the legend are HTML around it (see `html.rs`), so
//! long titles wrap and legends never cover data. A log axis is drawn as a linear axis over
//! log10 of the values, with tick labels turned back into values: one drawing path serves every
//! combination of scales. Values that a log axis cannot show (zero or negative) are left out,
//! and [`Drawn::hidden`] says how many. Bar charts with many or long category names are drawn
//! with horizontal bars, names on the left.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::{Chart, ChartKind, Point, Scale, Timeline};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 360;
/// Above this many categories (or with long names) bars are drawn horizontally.
const MOST_UPRIGHT_BARS: usize = 5;
/// Roughly how wide one character of a 13 px label is.
const CHAR_WIDTH: f64 = 6.6;

/// Series colours: the Okabe–Ito set, then four darker ones for charts with many series.
const PALETTE: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(100, 100, 100),
    RGBColor(200, 185, 40),
    RGBColor(40, 40, 120),
    RGBColor(140, 30, 40),
    RGBColor(90, 110, 30),
    RGBColor(20, 20, 20),
];

/// The colour of series (or task) `index`.
fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// The colour of series `index` as CSS, for the HTML legend.
pub fn css_colour(index: usize) -> String {
    let RGBColor(r, g, b) = colour(index);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A drawn chart.
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The `<svg>` element.
    pub svg: String,
    /// How many values a log axis could not show.
    pub hidden: usize,
}

/// Draws `chart` (without its title and legend).
pub fn chart(chart: &Chart) -> Drawn {
    let horizontal = chart.kind == ChartKind::Bar && wants_horizontal_bars(chart);
    let height = if horizontal {
        let rows = chart.categories.len().max(1) as u32;
        let per_row = (10 * chart.series.len().max(1) as u32).clamp(22, 60);
        (70 + rows * per_row).clamp(200, 1400)
    } else {
        HEIGHT
    };
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let drawn = match chart.kind {
            ChartKind::Line => line_chart(&root, chart),
            ChartKind::Bar => bar_chart(&root, chart, horizontal),
        };
        drawn.and_then(|hidden| root.present().map(|()| hidden).map_err(|e| e.to_string()))
    };
    match drawn {
        Ok(hidden) => Drawn { svg, hidden },
        Err(error) => Drawn {
            svg: error_svg(&error),
            hidden: 0,
        },
    }
}

/// Draws `timeline` as a Gantt chart: one row per lane, one bar per span, coloured by task.
pub fn gantt(timeline: &Timeline) -> String {
    let mut svg = String::new();
    let drawn = {
        let rows = timeline.lanes.len().max(1) as u32;
        let height = (60 + 34 * rows).min(900);
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        gantt_chart(&root, timeline).and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match drawn {
        Ok(()) => svg,
        Err(error) => error_svg(&error),
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Cartesian =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

/// Whether category names would collide under upright bars.
fn wants_horizontal_bars(chart: &Chart) -> bool {
    let longest = chart
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let slot = (f64::from(WIDTH) - 90.0) / chart.categories.len().max(1) as f64;
    chart.categories.len() > MOST_UPRIGHT_BARS || longest as f64 * CHAR_WIDTH > slot
}

/// Maps a value onto an axis: itself, or its log10 (`None` when a log axis cannot show it).
fn to_axis(scale: Scale, value: f64) -> Option<f64> {
    match scale {
        Scale::Linear => value.is_finite().then_some(value),
        Scale::Log => (value > 0.0 && value.is_finite()).then(|| value.log10()),
    }
}

/// A tick label for an axis position. A log axis that spans a decade or more is labelled at
/// powers of ten only.
fn tick_label(scale: Scale, span: f64, position: f64) -> String {
    match scale {
        Scale::Linear => compact_number(position),
        Scale::Log if span >= 1.0 && (position - position.round()).abs() > 1e-6 => String::new(),
        Scale::Log => compact_number(10f64.powf(position)),
    }
}

/// A number in at most about four characters of digits: 1.5k, 20M, 0.003, 3e-7.
fn compact_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        return "0".to_owned();
    }
    let trimmed = |text: String| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    };
    for (limit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if magnitude >= limit {
            return format!("{}{suffix}", trimmed(format!("{:.2}", value / limit)));
        }
    }
    if magnitude >= 1e-3 {
        trimmed(format!("{value:.3}"))
    } else {
        format!("{value:.0e}")
    }
}

/// The range covering `values`, padded, never empty.
fn padded_range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        low = low.min(0.0);
    }
    if (high - low).abs() < 1e-12 {
        let pad = if high == 0.0 { 1.0 } else { high.abs() * 0.1 };
        return (low - pad, high + pad);
    }
    let pad = (high - low) * 0.06;
    (
        if from_zero && low == 0.0 {
            0.0
        } else {
            low - pad
        },
        high + pad,
    )
}

/// A point placed on the axes: position, and the ends of its error bar.
#[derive(Debug, Clone, Copy)]
struct Placed {
    x: f64,
    y: f64,
    low: f64,
    high: f64,
}

/// A point placed on the axes, or `None` when an axis cannot show it.
fn on_axes(chart: &Chart, point: &Point, x_scale: Scale) -> Option<Placed> {
    let x = to_axis(x_scale, point.x)?;
    let y = to_axis(chart.y_scale, point.y)?;
    let low = point
        .low
        .and_then(|v| to_axis(chart.y_scale, v))
        .unwrap_or(y)
        .min(y);
    let high = point
        .high
        .and_then(|v| to_axis(chart.y_scale, v))
        .unwrap_or(y)
        .max(y);
    Some(Placed { x, y, low, high })
}

/// Which axis, if any, names categories (one label per category, no grid lines across it).
#[derive(Debug, Clone, Copy)]
enum Categories {
    None,
    OnX(usize),
    OnY(usize),
}

/// What the axes say: their descriptions, tick labels, and which one names categories.
struct Axes<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    x_format: &'a dyn Fn(&f64) -> String,
    y_format: &'a dyn Fn(&f64) -> String,
    categories: Categories,
}

/// Draws the axes and the grid in the report's style.
fn draw_axes(
    context: &mut ChartContext<'_, SVGBackend<'_>, Cartesian>,
    axes: &Axes<'_>,
) -> Result<(), String> {
    let mut mesh = context.configure_mesh();
    match axes.categories {
        Categories::None => {}
        // Labels at every half step: the formatters name the whole steps, the categories.
        Categories::OnX(count) => {
            mesh.disable_x_mesh().x_labels(count * 2 + 1);
        }
        Categories::OnY(count) => {
            mesh.disable_y_mesh().y_labels(count * 2 + 1);
        }
    }
    mesh.x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .x_label_formatter(axes.x_format)
        .y_label_formatter(axes.y_format)
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())
}

fn line_chart(root: &Area<'_>, chart: &Chart) -> Result<usize, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut hidden = 0;
    let mut series: Vec<Vec<Placed>> = Vec::new();
    for s in &chart.series {
        series.push(
            s.points
                .iter()
                .filter_map(|p| {
                    let placed = on_axes(chart, p, chart.x_scale);
                    hidden += usize::from(placed.is_none());
                    placed
                })
                .collect(),
        );
    }
    let all = || series.iter().flatten();
    let x_range = padded_range(all().map(|p| p.x), false);
    let y_range = padded_range(
        all().flat_map(|p| [p.low, p.high]),
        chart.y_scale == Scale::Linear,
    );
    let mut context = ChartBuilder::on(root)
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(|e| e.to_string())?;
    let x_format = |v: &f64| tick_label(chart.x_scale, x_range.1 - x_range.0, *v);
    let y_format = |v: &f64| tick_label(chart.y_scale, y_range.1 - y_range.0, *v);
    draw_axes(
        &mut context,
        &Axes {
            x_desc: &chart.x_label,
            y_desc: &chart.y_label,
            x_format: &x_format,
            y_format: &y_format,
            categories: Categories::None,
        },
    )?;
    for (index, points) in series.iter().enumerate() {
        let colour = colour(index);
        context
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.x, p.y)),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        context
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.x, p.y), 3, colour.filled())),
            )
            .map_err(|e| e.to_string())?;
        context
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.high > p.low)
                    .map(|p| ErrorBar::new_vertical(p.x, p.low, p.y, p.high, colour, 6)),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(hidden)
}

/// Bars placed on the value axis: series index, the bar's offset in its group, and the value.
fn place_bars(chart: &Chart, width: f64) -> (Vec<(usize, f64, Placed)>, usize) {
    let mut hidden = 0;
    let mut bars = Vec::new();
    for (index, s) in chart.series.iter().enumerate() {
        for point in &s.points {
            match on_axes(chart, point, Scale::Linear) {
                Some(placed) => bars.push((index, placed.x - 0.4 + width * index as f64, placed)),
                None => hidden += 1,
            }
        }
    }
    (bars, hidden)
}

/// The value axis of a bar chart: from zero on a linear scale, from a power of ten on a log one.
fn value_range(chart: &Chart, bars: &[(usize, f64, Placed)]) -> (f64, f64) {
    match chart.y_scale {
        Scale::Linear => padded_range(bars.iter().flat_map(|b| [b.2.y, b.2.high]), true),
        Scale::Log => {
            let (low, high) =
                padded_range(bars.iter().flat_map(|b| [b.2.y, b.2.low, b.2.high]), false);
            (low.floor(), high)
        }
    }
}

/// The name of the category at an axis position (category `index` sits at `index`).
fn category_at(chart: &Chart, position: f64) -> String {
    let index = position.round();
    if (position - index).abs() < 1e-6 && index >= 0.0 {
        chart
            .categories
            .get(index as usize)
            .cloned()
            .unwrap_or_default()
    } else {
        String::new()
    }
}

/// Grouped bars: upright, categories along the bottom; or horizontal, category names on the
/// left and the first category on top.
fn bar_chart(root: &Area<'_>, chart: &Chart, horizontal: bool) -> Result<usize, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let groups = chart.categories.len().max(1);
    let width = 0.8 / chart.series.len().max(1) as f64;
    let (bars, hidden) = place_bars(chart, width);
    let (base, top) = value_range(chart, &bars);
    let categories = -0.5..(groups as f64 - 0.5);
    // Where category `position` sits along its axis: rows of horizontal bars run downwards.
    let slot = |position: f64| {
        if horizontal {
            (groups - 1) as f64 - position
        } else {
            position
        }
    };
    // A point from its place along the category axis and its value.
    let at = |along: f64, value: f64| {
        if horizontal {
            (value, along)
        } else {
            (along, value)
        }
    };
    let (x_range, y_range, name_area) = if horizontal {
        (base..top, categories, label_width(&chart.categories, 330))
    } else {
        (categories, base..top, 64)
    };
    let mut context = ChartBuilder::on(root)
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(name_area)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| e.to_string())?;
    let name_format = |v: &f64| category_at(chart, slot(*v));
    let value_format = |v: &f64| tick_label(chart.y_scale, top - base, *v);
    let axes = if horizontal {
        Axes {
            x_desc: &chart.y_label,
            y_desc: "",
            x_format: &value_format,
            y_format: &name_format,
            categories: Categories::OnY(groups),
        }
    } else {
        Axes {
            x_desc: &chart.x_label,
            y_desc: &chart.y_label,
            x_format: &name_format,
            y_format: &value_format,
            categories: Categories::OnX(groups),
        }
    };
    draw_axes(&mut context, &axes)?;
    for index in 0..chart.series.len() {
        let style = colour(index).filled();
        let mine = || bars.iter().filter(move |b| b.0 == index);
        // The stretch of the category axis a bar covers: in a group the first series comes
        // first, left to right or top to bottom.
        let stretch = |b: &(usize, f64, Placed)| {
            if horizontal {
                let end = slot(b.2.x) + 0.4 - width * index as f64;
                (end - width * 0.92, end)
            } else {
                (b.1, b.1 + width * 0.92)
            }
        };
        context
            .draw_series(mine().map(|b| {
                let (start, end) = stretch(b);
                Rectangle::new([at(start, base), at(end, b.2.y)], style)
            }))
            .map_err(|e| e.to_string())?;
        // Error bars at the quartiles, across the middle of each bar.
        let spread = || {
            mine().filter(|b| b.2.high > b.2.low).map(|b| {
                let (start, end) = stretch(b);
                ((start + end) / 2.0, b.2)
            })
        };
        let ink = BLACK.mix(0.7);
        if horizontal {
            context.draw_series(
                spread().map(|(middle, p)| {
                    ErrorBar::new_horizontal(middle, p.low, p.y, p.high, ink, 5)
                }),
            )
        } else {
            context.draw_series(
                spread()
                    .map(|(middle, p)| ErrorBar::new_vertical(middle, p.low, p.y, p.high, ink, 5)),
            )
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(hidden)
}

/// The width of a label area that fits the longest of `labels`, at most `most` pixels.
fn label_width(labels: &[String], most: u32) -> u32 {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    ((longest as f64 * CHAR_WIDTH) as u32 + 16).clamp(60, most)
}

fn gantt_chart(root: &Area<'_>, timeline: &Timeline) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let rows = timeline.lanes.len().max(1);
    let end_ms = timeline
        .lanes
        .iter()
        .flat_map(|lane| lane.spans.iter())
        .map(|span| span.end_ns as f64 / 1e6)
        .fold(0.0, f64::max)
        .max(1e-3);
    let labels: Vec<String> = timeline
        .lanes
        .iter()
        .map(|lane| lane.label.clone())
        .collect();
    let mut context = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_width(&labels, 300))
        .build_cartesian_2d(0.0..end_ms * 1.02, -0.5..(rows as f64 - 0.5))
        .map_err(|e| e.to_string())?;
    let lane_label = |v: &f64| {
        let index = v.round();
        if (v - index).abs() < 1e-6 && index >= 0.0 {
            timeline
                .lanes
                .get(rows - 1 - index as usize)
                .map(|lane| lane.label.clone())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    let time_label = |v: &f64| compact_number(*v);
    draw_axes(
        &mut context,
        &Axes {
            x_desc: "time (ms)",
            y_desc: "",
            x_format: &time_label,
            y_format: &lane_label,
            categories: Categories::OnY(rows),
        },
    )?;
    for (row, lane) in timeline.lanes.iter().enumerate() {
        let y = (rows - 1 - row) as f64;
        context
            .draw_series(lane.spans.iter().map(|span| {
                let start = span.start_ns as f64 / 1e6;
                let end = (span.end_ns as f64 / 1e6).max(start + end_ms * 0.002);
                Rectangle::new(
                    [(start, y - 0.35), (end, y + 0.35)],
                    colour(span.task as usize).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A small SVG that says why a chart could not be drawn (so the page still shows the rest).
fn error_svg(error: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart-error\" width=\"{WIDTH}\" height=\"40\"><text x=\"10\" y=\"25\">chart not drawn: {}</text></svg>",
        super::html::escape(error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Lane, Series, TimelineSpan};

    fn series(label: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.to_owned(),
            points: points
                .iter()
                .map(|&(x, y)| Point {
                    x,
                    y,
                    low: Some(y * 0.9),
                    high: Some(y * 1.1),
                })
                .collect(),
        }
    }

    #[test]
    fn a_log_log_line_chart_draws_every_series() {
        let chart = Chart {
            title: "cost".into(),
            kind: ChartKind::Line,
            x_label: "n".into(),
            y_label: "µs".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            categories: vec![],
            series: vec![
                series("select", &[(10.0, 1.0), (1000.0, 100.0)]),
                series("epoll", &[(10.0, 0.5), (1000.0, 0.0)]),
            ],
        };
        let drawn = super::chart(&chart);
        assert!(drawn.svg.starts_with("<svg"), "{}", drawn.svg);
        assert_eq!(drawn.hidden, 1, "the zero on a log axis is counted");
        assert!(drawn.svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn a_bar_chart_labels_its_categories() {
        let chart = Chart {
            title: "switch".into(),
            kind: ChartKind::Bar,
            x_label: "".into(),
            y_label: "ns".into(),
            y_scale: Scale::Log,
            categories: vec!["thread".into(), "process".into()],
            series: vec![series("Rust", &[(0.0, 2000.0), (1.0, 5000.0)])],
            ..Chart::default()
        };
        let svg = super::chart(&chart).svg;
        assert!(svg.contains("thread") && svg.contains("process"));
        assert!(svg.matches("<rect").count() >= 2);
        let many = Chart {
            categories: (0..8)
                .map(|i| format!("a long category name {i}"))
                .collect(),
            series: vec![series("Rust", &[(0.0, 1.0), (7.0, 5.0)])],
            ..chart
        };
        assert!(wants_horizontal_bars(&many));
        let svg = super::chart(&many).svg;
        assert!(svg.contains("a long category name 7") && !svg.contains("chart-error"));
    }

    #[test]
    fn a_gantt_chart_has_one_bar_per_span() {
        let span = |task, start_ns, end_ns| TimelineSpan {
            task,
            start_ns,
            end_ns,
            cpu: Some(0),
        };
        let timeline = Timeline {
            title: "two threads, one core".into(),
            lanes: vec![
                Lane {
                    label: "task A".into(),
                    spans: vec![span(0, 0, 2_000_000), span(0, 4_000_000, 6_000_000)],
                },
                Lane {
                    label: "task B".into(),
                    spans: vec![span(1, 2_000_000, 4_000_000)],
                },
            ],
        };
        let svg = gantt(&timeline);
        assert!(svg.contains("task A") && svg.contains("task B"));
        let filled =
            svg.matches("fill=\"#0072B2\"").count() + svg.matches("fill=\"#D55E00\"").count();
        assert!(filled >= 3, "{svg}");
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact_number(1500.0), "1.5k");
        assert_eq!(compact_number(20e6), "20M");
        assert_eq!(compact_number(0.25), "0.25");
        assert_eq!(compact_number(3e-7), "3e-7");
        assert_eq!(compact_number(0.0), "0");
    }
}
