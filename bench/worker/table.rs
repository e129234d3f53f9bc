//! The table the figures are printed in.

use super::*;

/// One row of the table.
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) value: String,
    pub(crate) floor: String,
    pub(crate) ratio: String,
    pub(crate) target: String,
    pub(crate) met: Option<bool>,
}

pub(crate) fn row(figure: &str, value: String, floor: String, ratio: String, target: &str) -> Row {
    Row {
        figure: figure.into(),
        value,
        floor,
        ratio,
        target: target.into(),
        met: None,
    }
}

pub(crate) fn row_of(figure: &str, value: String, floor: String, ratio: String) -> Row {
    row(figure, value, floor, ratio, "-")
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

pub(crate) fn ms(v: f64) -> String {
    format!("{v:.3} ms")
}

pub(crate) fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

pub(crate) fn print_table(rows: &[Row]) {
    let heads = ["figure", "value", "floor", "ratio", "target", "met?"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.value.clone(),
                r.floor.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "".into(),
                },
            ]
        })
        .collect();
    let mut width = heads.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[&str]| {
        let mut s = String::from("|");
        for (w, cell) in width.iter().zip(c) {
            let _ = write!(s, " {cell:<w$} |");
        }
        s
    };
    println!("{}", line(&heads));
    let dashes: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    println!(
        "{}",
        line(&dashes.iter().map(String::as_str).collect::<Vec<_>>())
    );
    for c in &cells {
        println!(
            "{}",
            line(&c.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
}
