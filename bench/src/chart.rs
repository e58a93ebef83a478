//! Line charts as self-contained SVG: no fonts, scripts or images to fetch.

use std::fmt::Write;

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: lines over shared axes, with a legend.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A logarithmic x axis (for table sizes spanning decades); x must be > 0.
    pub log_x: bool,
    pub series: Vec<Series>,
}

const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
/// Margins around the plot: the y ticks, the legend, the title, the x ticks.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

impl Chart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| &s.points);
        let fx = |x: f64| if self.log_x { x.max(1.0).log10() } else { x };
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0_f64);
        for &(x, y) in points {
            (x0, x1, y1) = (x0.min(fx(x)), x1.max(fx(x)), y1.max(y));
        }
        if x0 >= x1 {
            (x0, x1) = (x0.min(0.0), x0.max(0.0) + 1.0);
        }
        let y_step = nice_step(y1.max(1e-9) / 5.0);
        let y1 = (y1 / y_step).ceil().max(1.0) * y_step;
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| LEFT + (fx(x) - x0) / (x1 - x0) * plot_w;
        let py = |y: f64| TOP + plot_h - y / y1 * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        let mut y = 0.0;
        while y <= y1 + y_step / 2.0 {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
                LEFT + plot_w,
                py(y),
                LEFT - 6.0,
                py(y) + 4.0,
                number(y)
            );
            y += y_step;
        }
        let mut xs: Vec<f64> = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let every = xs.len().div_ceil(12).max(1);
        for x in xs.iter().step_by(every) {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="#eee"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
                px(*x),
                TOP + plot_h,
                TOP + plot_h + 16.0,
                number(*x)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
            LEFT + plot_w / 2.0,
            HEIGHT - 12.0,
            escape(&self.x_label),
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = series.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for &(x, y) in &series.points {
                let _ = writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#, px(x), py(y));
            }
            let ly = TOP + 10.0 + i as f64 * 18.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{0}" x2="{1}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
                WIDTH - RIGHT + 12.0,
                WIDTH - RIGHT + 32.0,
                WIDTH - RIGHT + 38.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10_f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// A tick label: 20M, 1.5k, 0.25.
fn number(v: f64) -> String {
    let trim = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    match v.abs() {
        a if a >= 1e6 => format!("{}M", trim(format!("{:.1}", v / 1e6))),
        a if a >= 1e4 => format!("{}k", trim(format!("{:.1}", v / 1e3))),
        a if a >= 10.0 => format!("{v:.0}"),
        _ => trim(format!("{v:.2}")),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_every_series_named() {
        let chart = Chart {
            title: "p99 <per> minute".into(),
            x_label: "minute".into(),
            y_label: "ms".into(),
            log_x: false,
            series: vec![
                Series { name: "p50".into(), points: vec![(1.0, 0.5), (2.0, 0.6)] },
                Series { name: "p99".into(), points: vec![(1.0, 3.0), (2.0, 2.5)] },
            ],
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">p50<") && svg.contains(">p99<") && svg.contains("&lt;per&gt;"));
        assert_eq!(number(20_000_000.0), "20M");
        assert_eq!(number(1_500.0), "1500");
        assert_eq!(nice_step(0.7), 1.0);
    }
}
