//! Aligned tables for people, JSON for scripts.

use serde_json::Value;

/// How to print results.
pub struct Output {
    /// JSON instead of tables.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `rows` under `headers` as an aligned table.
    pub fn table(&self, value: &Value, headers: &[&str], rows: Vec<Vec<String>>) {
        if self.json {
            println!("{value}");
            return;
        }
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(headers.to_vec());
        for row in &rows {
            line(row.iter().map(String::as_str).collect());
        }
    }

    /// Prints a one-line outcome, or `value` as JSON.
    pub fn done(&self, value: &Value, message: &str) {
        if self.json {
            println!("{value}");
        } else {
            println!("{message}");
        }
    }
}
