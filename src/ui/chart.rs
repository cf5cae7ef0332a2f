//! A hand-written SVG line chart: no library, nothing fetched, readable
//! without JavaScript, with the same figures as a table beside it.

use serde::Serialize;

/// Chart area in SVG user units (the SVG scales to its container).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

#[derive(Serialize)]
pub struct Series {
    pub name: &'static str,
    /// CSS class giving the line its colour (`s-sent`, ...).
    pub class: &'static str,
    pub total: i64,
    /// `points` attribute of the polyline.
    pub points: String,
}

#[derive(Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub series: Vec<Series>,
    /// Horizontal grid lines: (y, label).
    pub grid: Vec<(f64, i64)>,
    /// Day labels along the bottom: (x, label), every few days.
    pub days: Vec<(f64, String)>,
    pub left: f64,
    pub right: f64,
    pub bottom: f64,
    pub empty: bool,
}

/// A chart of `values[series][day]` over `labels` (one per day).
pub fn line_chart(labels: &[String], values: Vec<(&'static str, &'static str, Vec<i64>)>) -> Chart {
    let max = values.iter().flat_map(|(_, _, v)| v.iter().copied()).max().unwrap_or(0);
    let top_value = nice_ceiling(max.max(1));
    let n = labels.len().max(2);
    let x = |i: usize| LEFT + (WIDTH - LEFT - 10.0) * i as f64 / (n - 1) as f64;
    let y = |v: i64| TOP + (HEIGHT - BOTTOM - TOP) * (1.0 - v as f64 / top_value as f64);
    let series = values
        .into_iter()
        .map(|(name, class, v)| Series {
            name,
            class,
            total: v.iter().sum(),
            points: v
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{:.1},{:.1}", x(i), y(*n)))
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect();
    let grid = (0..=4).map(|i| top_value * i / 4).map(|v| (y(v), v)).collect();
    let step = (labels.len() / 6).max(1);
    let days = labels.iter().enumerate().filter(|(i, _)| i % step == 0).map(|(i, l)| (x(i), l.clone())).collect();
    Chart {
        width: WIDTH,
        height: HEIGHT,
        series,
        grid,
        days,
        left: LEFT,
        right: WIDTH - 10.0,
        bottom: HEIGHT - BOTTOM,
        empty: max == 0,
    }
}

/// The smallest of 4, 8, 20, 40, 80, 200, ... at least `v` (grid lines at quarters stay whole).
fn nice_ceiling(v: i64) -> i64 {
    let mut scale = 1;
    loop {
        for m in [4, 8, 20] {
            if m * scale >= v {
                return m * scale;
            }
        }
        scale *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round_and_cover_the_maximum() {
        assert_eq!(nice_ceiling(1), 4);
        assert_eq!(nice_ceiling(5), 8);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(150), 200);
    }

    #[test]
    fn a_chart_has_one_point_per_day_for_each_series() {
        let labels: Vec<String> = (1..=30).map(|d| format!("{d}")).collect();
        let c = line_chart(&labels, vec![("Sent", "s-sent", vec![1; 30])]);
        assert_eq!(c.series[0].points.split(' ').count(), 30);
        assert_eq!(c.series[0].total, 30);
        assert!(!c.empty);
    }
}
