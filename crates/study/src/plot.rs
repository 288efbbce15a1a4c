//! Line plots as PNG and SVG (plotters). Text is drawn with a font compiled into the binary
//! (Ubuntu Light from `epaint_default_fonts`, registered with plotters' ab_glyph backend), so
//! plots look the same on machines without any system fonts.

use crate::error::{Result, StudyError};
use flowscale_core::{write_atomic, IoError};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStyle {
    /// Measurements along a curve: a line with a marker per point.
    Measured,
    /// A fitted law or derived curve: a dashed line without markers.
    Fit,
    /// Unordered measurements (one point per run): markers only.
    Scatter,
}

/// One named curve.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub style: SeriesStyle,
}

#[derive(Debug, Clone)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 600;

fn font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                epaint_default_fonts::UBUNTU_LIGHT,
            )
            .map_err(|_| "the embedded font does not parse".to_owned())
        })
        .clone()
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> StudyError {
    StudyError::Plot {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Padded data range; on a log axis only positive values count.
fn range(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let v: Vec<f64> = values
        .filter(|x| x.is_finite() && (!log || *x > 0.0))
        .collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return None;
    }
    Some(if log {
        let (lo, hi) = if lo == hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo, hi)
        };
        (lo / (hi / lo).powf(0.05), hi * (hi / lo).powf(0.05))
    } else {
        let pad = if hi > lo {
            0.05 * (hi - lo)
        } else {
            0.5 * lo.abs().max(1.0)
        };
        (lo - pad, hi + pad)
    })
}

macro_rules! draw_chart {
    ($root:expr, $plot:expr, $xr:expr, $yr:expr) => {{
        let mut chart = ChartBuilder::on($root)
            .caption(&$plot.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d($xr, $yr)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc($plot.x_label.as_str())
            .y_desc($plot.y_label.as_str())
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in $plot.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let style = ShapeStyle::from(&color).stroke_width(2);
            match s.style {
                SeriesStyle::Fit => chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))
                    .map_err(|e| e.to_string())?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color)),
                SeriesStyle::Measured => chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(|e| e.to_string())?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color)),
                SeriesStyle::Scatter => chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))
                    .map_err(|e| e.to_string())?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| Circle::new((x + 9, y), 5, color.filled())),
            };
            if s.style == SeriesStyle::Measured {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }};
}

/// Tick labels: plain numbers in the usual range, scientific notation for very large or small.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &LinePlot,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let xs = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = plot
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = range(xs.clone(), plot.log_x).ok_or("no finite x values")?;
    let (y0, y1) = range(ys.clone(), plot.log_y).ok_or("no finite y values")?;
    // A log axis spanning less than a decade gets no labelled ticks from plotters, so such an
    // axis is drawn linear (its values are then readable); wide ranges stay logarithmic.
    let log_x = plot.log_x && x1 / x0 >= 10.0;
    let log_y = plot.log_y && y1 / y0 >= 10.0;
    let (x0, x1) = if log_x == plot.log_x {
        (x0, x1)
    } else {
        range(xs, false).ok_or("no finite x values")?
    };
    let (y0, y1) = if log_y == plot.log_y {
        (y0, y1)
    } else {
        range(ys, false).ok_or("no finite y values")?
    };
    match (log_x, log_y) {
        (true, true) => draw_chart!(root, plot, (x0..x1).log_scale(), (y0..y1).log_scale()),
        (true, false) => draw_chart!(root, plot, (x0..x1).log_scale(), y0..y1),
        (false, true) => draw_chart!(root, plot, x0..x1, (y0..y1).log_scale()),
        (false, false) => draw_chart!(root, plot, x0..x1, y0..y1),
    }?;
    root.present().map_err(|e| e.to_string())
}

/// Writes `<stem>.png` and `<stem>.svg`; returns both paths. Both are drawn in memory and
/// written atomically, so a reader never finds half a plot.
pub fn save(plot: &LinePlot, stem: &Path) -> Result<(PathBuf, PathBuf)> {
    font().map_err(|e| plot_error(stem, e))?;
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).map_err(|e| IoError::new(dir, e))?;
    }
    let svg = stem.with_extension("svg");
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, plot).map_err(|e| plot_error(&svg, e))?;
    }
    write_atomic(&svg, svg_text.as_bytes())?;
    let png_path = stem.with_extension("png");
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, plot).map_err(|e| plot_error(&png_path, e))?;
    }
    let mut png_bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| {
            w.write_image_data(&rgb)?;
            w.finish()
        })
        .map_err(|e| plot_error(&png_path, e))?;
    write_atomic(&png_path, &png_bytes)?;
    Ok((png_path, svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_with_text_and_curves() {
        let tmp = tempfile::tempdir().unwrap();
        let plot = LinePlot {
            title: "validation loss".into(),
            x_label: "training FLOPs".into(),
            y_label: "loss".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series {
                    label: "depth 2".into(),
                    points: vec![(1e12, 0.5), (1e13, 0.4), (1e14, 0.35)],
                    style: SeriesStyle::Measured,
                },
                Series {
                    label: "fit".into(),
                    points: vec![(1e12, 0.52), (1e14, 0.34)],
                    style: SeriesStyle::Fit,
                },
                Series {
                    label: "runs".into(),
                    points: vec![(2e12, 0.45), (3e13, 0.38)],
                    style: SeriesStyle::Scatter,
                },
            ],
        };
        let (png_path, svg) = save(&plot, &tmp.path().join("p")).unwrap();
        let svg_text = std::fs::read_to_string(svg).unwrap();
        assert!(svg_text.contains("validation loss"));
        assert!(svg_text.contains("depth 2"));
        // The PNG decodes to the plot size and is not blank: curves and text coloured pixels.
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(png_path).unwrap(),
        ));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        let non_white = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(non_white > 2000, "{non_white}");
        let coloured = buf
            .chunks(3)
            .filter(|p| {
                let (mx, mn) = (p.iter().max().unwrap(), p.iter().min().unwrap());
                mx - mn > 60
            })
            .count();
        assert!(coloured > 100, "{coloured}");
    }
}
