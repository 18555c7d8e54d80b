//! How the CLI prints: human tables or JSON for scripts, colours only on a terminal, and one
//! error line per failure.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;

/// `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables and sentences for people.
    Table,
    /// One JSON document per command (one JSON line per record for `consume --format json`).
    Json,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colours when the stream is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// A colour for one table cell or word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Red,
    Green,
    Yellow,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Bold => "1",
        }
    }
}

/// Where and how to print.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub format: Format,
    /// Colour on stdout.
    pub color: bool,
    /// Colour on stderr.
    pub color_err: bool,
}

impl Out {
    pub fn new(format: Format, choice: ColorChoice) -> Self {
        let allowed = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
        };
        Self {
            format,
            color: allowed(std::io::stdout().is_terminal()),
            color_err: allowed(std::io::stderr().is_terminal()),
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// `text` in `color` on stdout when colours are on.
    pub fn paint(&self, text: &str, color: Color) -> String {
        paint(self.color, text, color)
    }

    /// Prints a JSON value on one line.
    pub fn print_json(&self, v: &serde_json::Value) {
        println!("{v}");
    }
}

pub fn paint(on: bool, text: &str, color: Color) -> String {
    if on {
        format!("\x1b[{}m{text}\x1b[0m", color.code())
    } else {
        text.to_string()
    }
}

/// A table cell: text and an optional colour (ignored for the column width).
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self { text, color: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self {
            text: text.to_string(),
            color: None,
        }
    }
}

/// A cell in a colour.
pub fn colored(text: impl Into<String>, color: Color) -> Cell {
    Cell {
        text: text.into(),
        color: Some(color),
    }
}

/// A plain table: a bold header row and left-aligned columns two spaces apart.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Self {
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn print(&self, out: &Out) {
        let lines = self.render(out);
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = stdout.write_all(lines.as_bytes());
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self, out: &Out) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.text.chars().count());
                }
            }
        }
        let mut lines = String::new();
        let header: Vec<String> = self
            .headers
            .iter()
            .zip(&widths)
            .map(|(h, w)| out.paint(&format!("{h:<w$}"), Color::Bold))
            .collect();
        lines.push_str(header.join("  ").trim_end());
        lines.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| {
                    let padded = format!("{:<w$}", c.text);
                    match c.color {
                        Some(color) => out.paint(&padded, color),
                        None => padded,
                    }
                })
                .collect();
            lines.push_str(cells.join("  ").trim_end());
            lines.push('\n');
        }
        lines
    }
}

/// Joins node ids: `[2, 3, 1]` → `2,3,1`.
pub fn ids(ids: &[u64]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
